//! Hive column types ↔ Arrow types. The Hive catalog's storage descriptor names column types as
//! Hive type strings (`int`, `decimal(10,2)`, `array<struct<a:int,b:string>>`, ...); readers and
//! writers of the table's files work on Arrow arrays. The mapping is the one Weir's own SQL types
//! use (`crate::types::SqlType::to_arrow`): `timestamp` is `Timestamp(Microsecond, None)` like
//! Weir's `TIMESTAMP`, strings (`string`, `varchar(n)`, `char(n)`) are `Utf8`, lists' item field is
//! `item`, maps' entries are `entries { key, value }`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};

use crate::error::{Error, Result};
use crate::types::SqlType;

/// The Arrow type of a Hive type string (case-insensitive, spaces allowed between tokens).
///
/// # Errors
/// `Invalid` naming the position for a malformed string; `NotSupported` for Hive types Weir does
/// not read (`uniontype`, `interval_*`, `timestamp with local time zone`, ...).
pub fn hive_to_arrow(type_string: &str) -> Result<DataType> {
    let mut p = TypeParser {
        text: type_string,
        pos: 0,
    };
    let t = p.parse_type()?;
    p.skip_ws();
    if p.pos < p.text.len() {
        return Err(p.error("unexpected text after the type"));
    }
    Ok(t)
}

/// The Hive type string of an Arrow type (lower case, as Hive's `DESCRIBE` prints it), for
/// `CREATE TABLE` and writers.
///
/// # Errors
/// `NotSupported` for Arrow types Hive has no type for (unsigned integers, time of day,
/// intervals, ...).
pub fn arrow_to_hive(data_type: &DataType) -> Result<String> {
    Ok(match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::List(f) | DataType::LargeList(f) => {
            format!("array<{}>", arrow_to_hive(f.data_type())?)
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{},{}>",
                arrow_to_hive(kv[0].data_type())?,
                arrow_to_hive(kv[1].data_type())?
            ),
            other => {
                return Err(Error::internal(format!(
                    "map entries of type {other} are not a key/value struct"
                )));
            }
        },
        DataType::Struct(fields) => {
            let parts = fields
                .iter()
                .map(|f| Ok(format!("{}:{}", f.name(), arrow_to_hive(f.data_type())?)))
                .collect::<Result<Vec<_>>>()?;
            format!("struct<{}>", parts.join(","))
        }
        other => {
            return Err(Error::not_supported(format!(
                "Arrow type {other} has no Hive column type; it cannot be stored in a Hive table \
                 yet"
            )));
        }
    })
}

struct TypeParser<'a> {
    text: &'a str,
    pos: usize,
}

impl TypeParser<'_> {
    fn error(&self, what: &str) -> Error {
        Error::invalid(format!(
            "invalid Hive type '{}': {what} at character {}",
            self.text,
            self.pos + 1
        ))
    }

    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        }
    }

    /// A word of letters, digits and `_` (a type name or a struct field name).
    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(rest.len());
        self.pos += len;
        &self.text[start..start + len]
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.text[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{c}'")))
        }
    }

    fn number(&mut self) -> Result<u32> {
        let w = self.word().to_string();
        w.parse::<u32>()
            .map_err(|_| self.error(&format!("expected a number, found '{w}'")))
    }

    /// `(n)` or `(p,s)` after a type name; returns the numbers.
    fn args(&mut self) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        if self.eat('(') {
            loop {
                out.push(self.number()?);
                if self.eat(')') {
                    break;
                }
                self.expect(',')?;
            }
        }
        Ok(out)
    }

    fn parse_type(&mut self) -> Result<DataType> {
        let start = self.pos;
        let name = self.word().to_ascii_lowercase();
        if name.is_empty() {
            return Err(self.error("expected a type name"));
        }
        let t = match name.as_str() {
            "boolean" => SqlType::Boolean.to_arrow(),
            "tinyint" => SqlType::TinyInt.to_arrow(),
            "smallint" => SqlType::SmallInt.to_arrow(),
            "int" | "integer" => SqlType::Int.to_arrow(),
            "bigint" => SqlType::BigInt.to_arrow(),
            "float" => SqlType::Float.to_arrow(),
            "double" => {
                // `double precision` is Hive's synonym.
                let save = self.pos;
                if !self.word().eq_ignore_ascii_case("precision") {
                    self.pos = save;
                }
                SqlType::Double.to_arrow()
            }
            "decimal" | "numeric" => {
                let args = self.args()?;
                let (p, s) = match args.as_slice() {
                    [] => (10, 0),
                    [p] => (*p, 0),
                    [p, s] => (*p, *s),
                    _ => return Err(self.error("decimal takes at most two arguments")),
                };
                if !(1..=38).contains(&p) || s > p {
                    self.pos = start;
                    return Err(self.error(&format!(
                        "decimal({p},{s}) is out of range (precision 1..38, scale 0..precision)"
                    )));
                }
                // Checked above: both fit.
                SqlType::Decimal {
                    precision: p as u8,
                    scale: s as i8,
                }
                .to_arrow()
            }
            "string" => SqlType::String.to_arrow(),
            "varchar" | "char" => {
                if self.args()?.len() > 1 {
                    return Err(self.error(&format!("{name} takes one length")));
                }
                SqlType::String.to_arrow()
            }
            "binary" => SqlType::Bytes.to_arrow(),
            "date" => SqlType::Date.to_arrow(),
            "timestamp" => {
                let save = self.pos;
                if self.word().eq_ignore_ascii_case("with") {
                    self.pos = start;
                    return Err(Error::not_supported(format!(
                        "Hive type '{}' (timestamp with local time zone) is not supported yet",
                        self.text
                    )));
                }
                self.pos = save;
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            "array" => {
                self.expect('<')?;
                let item = self.parse_type()?;
                self.expect('>')?;
                DataType::List(Arc::new(Field::new("item", item, true)))
            }
            "map" => {
                self.expect('<')?;
                let key = self.parse_type()?;
                self.expect(',')?;
                let value = self.parse_type()?;
                self.expect('>')?;
                map_type(key, value)
            }
            "struct" => {
                self.expect('<')?;
                let mut fields = Vec::new();
                loop {
                    let field = self.word().to_string();
                    if field.is_empty() {
                        return Err(self.error("expected a struct field name"));
                    }
                    self.expect(':')?;
                    let t = self.parse_type()?;
                    fields.push(Field::new(field, t, true));
                    if self.eat('>') {
                        break;
                    }
                    self.expect(',')?;
                }
                DataType::Struct(Fields::from(fields))
            }
            other => {
                self.pos = start;
                return Err(Error::not_supported(format!(
                    "Hive type '{other}' (in '{}') is not supported yet",
                    self.text
                )));
            }
        };
        Ok(t)
    }
}

/// The Arrow map type Weir uses (`entries { key not null, value }`), as `SqlType` maps it.
pub(crate) fn map_type(key: DataType, value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", key, false),
                Field::new("value", value, true),
            ])),
            false,
        )),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_map_like_weir_sql_types() {
        let cases = [
            ("tinyint", DataType::Int8),
            ("SMALLINT", DataType::Int16),
            ("int", DataType::Int32),
            ("bigint", DataType::Int64),
            ("float", DataType::Float32),
            ("double", DataType::Float64),
            ("double precision", DataType::Float64),
            ("decimal", DataType::Decimal128(10, 0)),
            ("decimal(10,2)", DataType::Decimal128(10, 2)),
            ("decimal( 38 , 18 )", DataType::Decimal128(38, 18)),
            ("string", DataType::Utf8),
            ("varchar(20)", DataType::Utf8),
            ("char(3)", DataType::Utf8),
            ("boolean", DataType::Boolean),
            ("date", DataType::Date32),
            ("timestamp", SqlType::Timestamp { precision: 6 }.to_arrow()),
            ("binary", DataType::Binary),
        ];
        for (hive, arrow) in cases {
            assert_eq!(hive_to_arrow(hive).unwrap(), arrow, "{hive}");
        }
    }

    #[test]
    fn nested_types_round_trip() {
        for s in [
            "array<int>",
            "map<string,int>",
            "struct<a:int,b:string>",
            "array<struct<a:int,b:map<string,array<decimal(10,2)>>>>",
            "map<int,struct<x:timestamp,y:binary>>",
        ] {
            let t = hive_to_arrow(s).unwrap();
            assert_eq!(arrow_to_hive(&t).unwrap(), s);
        }
        let t = hive_to_arrow("ARRAY< STRUCT< A : INT > >").unwrap();
        assert_eq!(arrow_to_hive(&t).unwrap(), "array<struct<A:int>>");
        assert_eq!(
            hive_to_arrow("map<string,int>").unwrap(),
            SqlType::Map {
                key: Box::new(SqlType::String),
                value: Box::new(SqlType::Int),
                value_nullable: true
            }
            .to_arrow()
        );
    }

    #[test]
    fn bad_type_strings_say_where() {
        let e = hive_to_arrow("array<int").unwrap_err().to_string();
        assert!(
            e.contains("expected '>'") && e.contains("character 10"),
            "{e}"
        );
        let e = hive_to_arrow("struct<a int>").unwrap_err().to_string();
        assert!(e.contains("expected ':'"), "{e}");
        let e = hive_to_arrow("decimal(40,2)").unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = hive_to_arrow("uniontype<int,string>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported"), "{e}");
        let e = hive_to_arrow("int garbage").unwrap_err().to_string();
        assert!(e.contains("unexpected text"), "{e}");
        assert!(hive_to_arrow("").is_err());
        assert!(arrow_to_hive(&DataType::UInt32).is_err());
    }
}
