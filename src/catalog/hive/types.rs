//! Hive column types ↔ Weir's [`SqlType`]: parsing the type strings a Hive Metastore stores in
//! its field schemas (`int`, `decimal(10,2)`, `array<struct<a:int,b:string>>`, ...) and writing
//! them back for tables Weir creates.
//!
//! Data path: metastore `FieldSchema.type` → [`parse_hive_type`] → `SqlType` (the catalog's column
//! type; its Arrow form is what the Hive connector reads and writes) and, for `CREATE TABLE` in a
//! Hive catalog, `SqlType` → [`to_hive_type`] → `FieldSchema.type`.
//!
//! Mapping (Hive → Weir): `tinyint`/`smallint`/`int`/`bigint` → TINYINT..BIGINT, `float` →
//! FLOAT, `double` → DOUBLE, `decimal(p,s)` → DECIMAL(p, s) (`decimal` alone is
//! `decimal(10,0)`), `string` → STRING, `varchar(n)` → VARCHAR(n), `char(n)` → CHAR(n),
//! `boolean` → BOOLEAN, `date` → DATE, `timestamp` → TIMESTAMP(6) (microseconds, as Spark and
//! the Hive connector read it), `binary` → BYTES, `array<T>` → ARRAY<T>, `map<K,V>` →
//! MAP<K, V>, `struct<a:T,..>` → ROW<a T, ..>. Hive's `uniontype`, `interval_*` and `void` are
//! not supported.

use crate::error::{Error, Result};
use crate::types::{MAX_LENGTH, RowField, SqlType};

/// Hive's largest `varchar` length; longer Weir VARCHARs are stored as `string`.
const HIVE_MAX_VARCHAR: u32 = 65535;
/// Hive's largest `char` length.
const HIVE_MAX_CHAR: u32 = 255;

/// Parses a Hive type string (case-insensitive, spaces allowed between tokens).
///
/// # Errors
/// `Invalid` naming the position for a malformed string; `NotSupported` for Hive types Weir has
/// no equivalent for (`uniontype`, intervals, `void`).
pub fn parse_hive_type(text: &str) -> Result<SqlType> {
    let mut p = TypeParser {
        text,
        chars: text.char_indices().collect(),
        pos: 0,
    };
    let t = p.parse_type()?;
    p.skip_ws();
    if p.pos < p.chars.len() {
        return Err(p.error("unexpected text after the type"));
    }
    Ok(t)
}

/// The Hive type string for a Weir type (lower case, as Hive writes it).
///
/// # Errors
/// `NotSupported` for types Hive 2.3 cannot store (TIME, TIMESTAMP_LTZ, INTERVAL, NULL).
pub fn to_hive_type(t: &SqlType) -> Result<String> {
    Ok(match t {
        SqlType::Boolean => "boolean".into(),
        SqlType::TinyInt => "tinyint".into(),
        SqlType::SmallInt => "smallint".into(),
        SqlType::Int => "int".into(),
        SqlType::BigInt => "bigint".into(),
        SqlType::Float => "float".into(),
        SqlType::Double => "double".into(),
        SqlType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        SqlType::Char { length } if *length <= HIVE_MAX_CHAR => format!("char({length})"),
        SqlType::Varchar { length } if *length <= HIVE_MAX_VARCHAR => {
            format!("varchar({length})")
        }
        SqlType::Char { .. } | SqlType::Varchar { .. } | SqlType::String => "string".into(),
        SqlType::Binary { .. } | SqlType::Varbinary { .. } | SqlType::Bytes => "binary".into(),
        SqlType::Date => "date".into(),
        SqlType::Timestamp { .. } => "timestamp".into(),
        SqlType::Array { element, .. } => format!("array<{}>", to_hive_type(element)?),
        SqlType::Map { key, value, .. } => {
            format!("map<{},{}>", to_hive_type(key)?, to_hive_type(value)?)
        }
        SqlType::Row { fields } => {
            let mut parts = Vec::with_capacity(fields.len());
            for f in fields {
                parts.push(format!("{}:{}", f.name, to_hive_type(&f.data_type)?));
            }
            format!("struct<{}>", parts.join(","))
        }
        SqlType::Time { .. } | SqlType::TimestampLtz { .. } | SqlType::Interval | SqlType::Null => {
            return Err(Error::not_supported(format!(
                "type {t} cannot be stored in a Hive table yet (Hive 2.3 has no equivalent)"
            )));
        }
    })
}

struct TypeParser<'a> {
    text: &'a str,
    chars: Vec<(usize, char)>,
    pos: usize,
}

impl TypeParser<'_> {
    fn error(&self, what: &str) -> Error {
        Error::invalid(format!(
            "malformed Hive type '{}': {what} at character {}",
            self.text,
            self.pos + 1
        ))
    }

    fn skip_ws(&mut self) {
        while self.pos < self.chars.len() && self.chars[self.pos].1.is_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.pos).map(|(_, c)| *c)
    }

    fn expect(&mut self, c: char) -> Result<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{c}'")))
        }
    }

    /// A word: letters, digits, `_`, or a back-quoted name (for struct field names).
    fn word(&mut self) -> Result<String> {
        self.skip_ws();
        if self.peek() == Some('`') {
            self.pos += 1;
            let mut out = String::new();
            loop {
                match self.chars.get(self.pos).map(|(_, c)| *c) {
                    Some('`') if self.chars.get(self.pos + 1).map(|(_, c)| *c) == Some('`') => {
                        out.push('`');
                        self.pos += 2;
                    }
                    Some('`') => {
                        self.pos += 1;
                        return Ok(out);
                    }
                    Some(c) => {
                        out.push(c);
                        self.pos += 1;
                    }
                    None => return Err(self.error("unterminated back-quoted name")),
                }
            }
        }
        let start = self.pos;
        while let Some((_, c)) = self.chars.get(self.pos) {
            if c.is_alphanumeric() || *c == '_' || *c == '$' {
                self.pos += 1;
            } else {
                break;
            }
        }
        if start == self.pos {
            return Err(self.error("expected a name"));
        }
        Ok(self.chars[start..self.pos].iter().map(|(_, c)| c).collect())
    }

    fn number(&mut self) -> Result<u32> {
        let w = self.word()?;
        w.parse::<u32>()
            .map_err(|_| self.error(&format!("expected a number, found '{w}'")))
    }

    /// `(n)` or `(p, s)` after a type name, if present.
    fn params(&mut self) -> Result<Vec<u32>> {
        if self.peek() != Some('(') {
            return Ok(Vec::new());
        }
        self.pos += 1;
        let mut out = vec![self.number()?];
        while self.peek() == Some(',') {
            self.pos += 1;
            out.push(self.number()?);
        }
        self.expect(')')?;
        Ok(out)
    }

    fn parse_type(&mut self) -> Result<SqlType> {
        let name = self.word()?.to_ascii_lowercase();
        let t = match name.as_str() {
            "boolean" => SqlType::Boolean,
            "tinyint" => SqlType::TinyInt,
            "smallint" => SqlType::SmallInt,
            "int" | "integer" => SqlType::Int,
            "bigint" => SqlType::BigInt,
            "float" => SqlType::Float,
            "double" => {
                // `double precision` is Hive's synonym.
                let save = self.pos;
                if !self
                    .word()
                    .is_ok_and(|w| w.eq_ignore_ascii_case("precision"))
                {
                    self.pos = save;
                }
                SqlType::Double
            }
            "decimal" | "numeric" => {
                let params = self.params()?;
                let (precision, scale) = match params.as_slice() {
                    [] => (10, 0),
                    [p] => (*p, 0),
                    [p, s] => (*p, *s),
                    _ => return Err(self.error("decimal takes (precision, scale)")),
                };
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(self.error(&format!(
                        "decimal({precision},{scale}) is out of range (precision 1..38, scale <= precision)"
                    )));
                }
                SqlType::Decimal {
                    precision: precision as u8,
                    scale: scale as i8,
                }
            }
            "string" => SqlType::String,
            "varchar" | "char" => {
                let length = match self.params()?.as_slice() {
                    [n] if *n >= 1 && *n <= MAX_LENGTH => *n,
                    _ => return Err(self.error(&format!("{name} needs one length (n >= 1)"))),
                };
                if name == "char" {
                    SqlType::Char { length }
                } else {
                    SqlType::Varchar { length }
                }
            }
            "binary" => SqlType::Bytes,
            "date" => SqlType::Date,
            "timestamp" => SqlType::Timestamp { precision: 6 },
            "array" => {
                self.expect('<')?;
                let element = self.parse_type()?;
                self.expect('>')?;
                SqlType::Array {
                    element: Box::new(element),
                    element_nullable: true,
                }
            }
            "map" => {
                self.expect('<')?;
                let key = self.parse_type()?;
                self.expect(',')?;
                let value = self.parse_type()?;
                self.expect('>')?;
                SqlType::Map {
                    key: Box::new(key),
                    value: Box::new(value),
                    value_nullable: true,
                }
            }
            "struct" => {
                self.expect('<')?;
                let mut fields = Vec::new();
                if self.peek() != Some('>') {
                    loop {
                        let field = self.word()?;
                        self.expect(':')?;
                        let data_type = self.parse_type()?;
                        fields.push(RowField {
                            name: field,
                            data_type,
                            nullable: true,
                        });
                        if self.peek() == Some(',') {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect('>')?;
                SqlType::Row { fields }
            }
            "uniontype" | "interval_year_month" | "interval_day_time" | "void" => {
                return Err(Error::not_supported(format!(
                    "Hive type '{}' is not supported yet",
                    self.text
                )));
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown Hive type '{other}' in '{}'",
                    self.text
                )));
            }
        };
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(text: &str) -> String {
        to_hive_type(&parse_hive_type(text).unwrap()).unwrap()
    }

    #[test]
    fn every_primitive_maps_both_ways() {
        let cases = [
            ("tinyint", SqlType::TinyInt),
            ("smallint", SqlType::SmallInt),
            ("int", SqlType::Int),
            ("bigint", SqlType::BigInt),
            ("float", SqlType::Float),
            ("double", SqlType::Double),
            (
                "decimal(10,2)",
                SqlType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            ("string", SqlType::String),
            ("varchar(20)", SqlType::Varchar { length: 20 }),
            ("char(3)", SqlType::Char { length: 3 }),
            ("boolean", SqlType::Boolean),
            ("date", SqlType::Date),
            ("timestamp", SqlType::Timestamp { precision: 6 }),
            ("binary", SqlType::Bytes),
        ];
        for (hive, weir) in cases {
            assert_eq!(parse_hive_type(hive).unwrap(), weir, "{hive}");
            assert_eq!(to_hive_type(&weir).unwrap(), hive);
        }
        assert_eq!(
            parse_hive_type("DECIMAL").unwrap(),
            SqlType::Decimal {
                precision: 10,
                scale: 0
            }
        );
        assert_eq!(
            parse_hive_type("double precision").unwrap(),
            SqlType::Double
        );
        assert_eq!(parse_hive_type("INTEGER").unwrap(), SqlType::Int);
    }

    #[test]
    fn nested_types_round_trip() {
        for t in [
            "array<int>",
            "map<string,int>",
            "struct<a:int,b:string>",
            "array<struct<a:int,b:map<string,array<decimal(38,18)>>>>",
            "map<int,struct<x:timestamp,y:date>>",
        ] {
            assert_eq!(round(t), t);
        }
        assert_eq!(
            parse_hive_type("struct< a : int , `b c` : string >").unwrap(),
            SqlType::Row {
                fields: vec![
                    RowField {
                        name: "a".into(),
                        data_type: SqlType::Int,
                        nullable: true
                    },
                    RowField {
                        name: "b c".into(),
                        data_type: SqlType::String,
                        nullable: true
                    },
                ]
            }
        );
    }

    #[test]
    fn weir_only_types_are_written_as_the_nearest_hive_type_or_rejected() {
        assert_eq!(
            to_hive_type(&SqlType::Varchar { length: 100_000 }).unwrap(),
            "string"
        );
        assert_eq!(
            to_hive_type(&SqlType::Varchar { length: MAX_LENGTH }).unwrap(),
            "string"
        );
        assert_eq!(
            to_hive_type(&SqlType::Char { length: 300 }).unwrap(),
            "string"
        );
        assert_eq!(
            to_hive_type(&SqlType::Varbinary { length: 4 }).unwrap(),
            "binary"
        );
        assert_eq!(
            to_hive_type(&SqlType::Timestamp { precision: 3 }).unwrap(),
            "timestamp"
        );
        let err = to_hive_type(&SqlType::TimestampLtz { precision: 3 }).unwrap_err();
        assert!(err.message.contains("TIMESTAMP_LTZ(3)"), "{err}");
        assert!(to_hive_type(&SqlType::Time { precision: 0 }).is_err());
    }

    #[test]
    fn bad_type_strings_say_what_and_where() {
        let err = parse_hive_type("array<int").unwrap_err();
        assert!(err.message.contains("expected '>'"), "{err}");
        assert!(err.message.contains("character 10"), "{err}");
        let err = parse_hive_type("map<string>").unwrap_err();
        assert!(err.message.contains("expected ','"), "{err}");
        let err = parse_hive_type("intt").unwrap_err();
        assert!(err.message.contains("unknown Hive type 'intt'"), "{err}");
        let err = parse_hive_type("uniontype<int,string>").unwrap_err();
        assert!(err.message.contains("not supported"), "{err}");
        assert!(parse_hive_type("decimal(40,2)").is_err());
        assert!(parse_hive_type("varchar").is_err());
        assert!(parse_hive_type("int int").is_err());
        assert!(parse_hive_type("").is_err());
    }
}
