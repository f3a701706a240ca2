//! Flink SQL data types in SQL text: parsing them from sqlparser's token stream into our
//! [`SqlType`] (DDL column types and `CAST` targets), and translating between [`SqlType`] and
//! sqlparser's [`ast::DataType`] (the planner's `TypePlanner` calls [`sql_type_from_ast`] for every
//! type it meets in a query).
//!
//! Data path: SQL text → tokens → [`parse_flink_type`] → `SqlType` (stored by catalogs, turned
//! into Arrow by the planner). In queries, `CAST(x AS <flink type>)` is parsed by the dialect hook
//! with [`parse_flink_type`] and carried in the AST as [`sql_type_to_ast`]'s canonical form.
//!
//! Defaults follow Flink's DDL: `DECIMAL` = `DECIMAL(10, 0)`, `CHAR`/`BINARY` = length 1,
//! `VARCHAR`/`VARBINARY` without a length = `STRING`/`BYTES` (Flink's type system gives them the
//! maximum length), `TIME` = `TIME(0)`, `TIMESTAMP` and `TIMESTAMP_LTZ` = precision 6.

use datafusion::sql::sqlparser::ast::{
    self, ArrayElemTypeDef, BinaryLength, CharacterLength, ExactNumberInfo, Ident, ObjectName,
    StructBracketKind, StructField, TimezoneInfo,
};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{Error, Result};
use crate::sql::support::{
    error_at, parse_optional_comment, parse_word, parse_words, peek_nth_word, peek_word,
};
use crate::types::{MAX_LENGTH, RowField, SqlType};

/// A few valid type names, for the "unknown type" error.
const SOME_TYPES: &str = "BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL(p, s), STRING, VARCHAR(n), BYTES, DATE, \
                          TIME(p), TIMESTAMP(p), TIMESTAMP_LTZ(p), ARRAY<T>, MAP<K, V>, ROW<name T, ...>";

/// Parses one Flink data type at the parser's position, e.g. `DECIMAL(10, 2)`,
/// `TIMESTAMP(3) WITH LOCAL TIME ZONE`, `ARRAY<ROW<a INT NOT NULL>>`, `INT ARRAY`.
/// Nullability of the type itself (`NOT NULL` after a column type) is left to the caller.
pub fn parse_flink_type(p: &mut Parser) -> Result<SqlType, ParserError> {
    let mut pending_gt = 0usize;
    let t = parse_type(p, &mut pending_gt)?;
    if pending_gt > 0 {
        let tok = p.peek_token();
        return Err(error_at(
            format!("Unmatched '>' in data type, found: {tok}"),
            &tok,
        ));
    }
    Ok(t)
}

/// `pending_gt` counts `>` already consumed as part of a `>>` token but not yet matched.
fn parse_type(p: &mut Parser, pending_gt: &mut usize) -> Result<SqlType, ParserError> {
    let tok = p.next_token();
    let name = match &tok.token {
        Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        _ => return p.expected("a data type", tok),
    };
    let mut t = match name.as_str() {
        "BOOLEAN" => SqlType::Boolean,
        "TINYINT" => SqlType::TinyInt,
        "SMALLINT" => SqlType::SmallInt,
        "INT" | "INTEGER" => SqlType::Int,
        "BIGINT" => SqlType::BigInt,
        "FLOAT" => SqlType::Float,
        "DOUBLE" => {
            let _ = parse_word(p, "PRECISION");
            SqlType::Double
        }
        "DECIMAL" | "DEC" | "NUMERIC" => {
            let (precision, scale) = parse_precision_scale(p)?;
            SqlType::Decimal { precision, scale }
        }
        "CHAR" | "CHARACTER" if parse_word(p, "VARYING") => varchar(parse_length(p, "VARCHAR")?),
        "CHAR" | "CHARACTER" => SqlType::Char {
            length: parse_length(p, "CHAR")?.unwrap_or(1),
        },
        "VARCHAR" => varchar(parse_length(p, "VARCHAR")?),
        "STRING" => SqlType::String,
        "BINARY" if parse_word(p, "VARYING") => varbinary(parse_length(p, "VARBINARY")?),
        "BINARY" => SqlType::Binary {
            length: parse_length(p, "BINARY")?.unwrap_or(1),
        },
        "VARBINARY" => varbinary(parse_length(p, "VARBINARY")?),
        "BYTES" => SqlType::Bytes,
        "DATE" => SqlType::Date,
        "TIME" => {
            let precision = parse_time_precision(p, "TIME", 0)?;
            let _ = parse_words(p, &["WITHOUT", "TIME", "ZONE"]);
            SqlType::Time { precision }
        }
        "TIMESTAMP" => {
            let precision = parse_time_precision(p, "TIMESTAMP", 6)?;
            if parse_words(p, &["WITH", "LOCAL", "TIME", "ZONE"]) {
                SqlType::TimestampLtz { precision }
            } else if peek_word(p, "WITH") && peek_nth_word(p, 1, "TIME") {
                let at = p.peek_token();
                return Err(error_at(
                    "TIMESTAMP WITH TIME ZONE is not supported by Flink; use TIMESTAMP_LTZ or TIMESTAMP WITH LOCAL TIME ZONE",
                    &at,
                ));
            } else {
                let _ = parse_words(p, &["WITHOUT", "TIME", "ZONE"]);
                SqlType::Timestamp { precision }
            }
        }
        "TIMESTAMP_LTZ" => SqlType::TimestampLtz {
            precision: parse_time_precision(p, "TIMESTAMP_LTZ", 6)?,
        },
        "INTERVAL" => parse_interval_type(p)?,
        "NULL" => SqlType::Null,
        "ARRAY" => {
            if p.consume_token(&Token::Lt) {
                let (element, element_nullable) = parse_element(p, pending_gt)?;
                close_angle(p, pending_gt)?;
                SqlType::Array {
                    element: Box::new(element),
                    element_nullable,
                }
            } else {
                return p.expected("'<' after ARRAY", p.peek_token());
            }
        }
        "MAP" => {
            // `MAP<K, V>`; `MAP(K, V)` is also read, as sqlparser prints maps that way.
            let angle = if p.consume_token(&Token::Lt) {
                true
            } else if p.consume_token(&Token::LParen) {
                false
            } else {
                return p.expected("'<' after MAP", p.peek_token());
            };
            let (key, _) = parse_element(p, pending_gt)?;
            p.expect_token(&Token::Comma)?;
            let (value, value_nullable) = parse_element(p, pending_gt)?;
            if angle {
                close_angle(p, pending_gt)?;
            } else {
                p.expect_token(&Token::RParen)?;
            }
            SqlType::Map {
                key: Box::new(key),
                value: Box::new(value),
                value_nullable,
            }
        }
        // `STRUCT<...>` is how sqlparser prints a row type; accept it back.
        "ROW" | "STRUCT" => parse_row(p, pending_gt)?,
        _ => {
            return Err(error_at(
                format!(
                    "Unknown data type '{}'; valid types include {SOME_TYPES}",
                    tok.token
                ),
                &tok,
            ));
        }
    };
    // Postfix array syntax: `INT ARRAY`, `STRING ARRAY ARRAY`.
    while *pending_gt == 0
        && peek_word(p, "ARRAY")
        && !matches!(p.peek_nth_token_ref(1).token, Token::Lt | Token::LBracket)
    {
        p.advance_token();
        t = SqlType::Array {
            element: Box::new(t),
            element_nullable: true,
        };
    }
    Ok(t)
}

fn varchar(length: Option<u32>) -> SqlType {
    match length {
        None | Some(MAX_LENGTH) => SqlType::String,
        Some(length) => SqlType::Varchar { length },
    }
}

fn varbinary(length: Option<u32>) -> SqlType {
    match length {
        None | Some(MAX_LENGTH) => SqlType::Bytes,
        Some(length) => SqlType::Varbinary { length },
    }
}

/// A type inside `ARRAY<..>`, `MAP<..>`: the type and whether it is nullable (`NOT NULL`).
fn parse_element(p: &mut Parser, pending_gt: &mut usize) -> Result<(SqlType, bool), ParserError> {
    let t = parse_type(p, pending_gt)?;
    let nullable = parse_nullability(p, pending_gt);
    Ok((t, nullable))
}

fn parse_nullability(p: &mut Parser, pending_gt: &usize) -> bool {
    if *pending_gt > 0 {
        return true;
    }
    if parse_words(p, &["NOT", "NULL"]) {
        false
    } else {
        let _ = parse_word(p, "NULL");
        true
    }
}

/// Matches one `>`, possibly the second half of a `>>` token.
fn close_angle(p: &mut Parser, pending_gt: &mut usize) -> Result<(), ParserError> {
    if *pending_gt > 0 {
        *pending_gt -= 1;
        return Ok(());
    }
    let tok = p.next_token();
    match tok.token {
        Token::Gt => Ok(()),
        Token::ShiftRight => {
            *pending_gt += 1;
            Ok(())
        }
        _ => p.expected(">", tok),
    }
}

/// `ROW<name T [NOT NULL] [COMMENT 'c'], ...>` or `ROW(name T, ...)`; `ROW` is consumed.
fn parse_row(p: &mut Parser, pending_gt: &mut usize) -> Result<SqlType, ParserError> {
    let angle = if p.consume_token(&Token::Neq) {
        return Ok(SqlType::Row { fields: Vec::new() }); // `ROW<>`
    } else if p.consume_token(&Token::Lt) {
        true
    } else if p.consume_token(&Token::LParen) {
        false
    } else {
        return p.expected("'<' or '(' after ROW", p.peek_token());
    };
    let mut fields = Vec::new();
    let empty = if angle {
        matches!(p.peek_token_ref().token, Token::Gt | Token::ShiftRight)
    } else {
        p.peek_token_ref().token == Token::RParen
    };
    if !empty {
        loop {
            let name = crate::sql::support::parse_name(p)?.value;
            let data_type = parse_type(p, pending_gt)?;
            let nullable = parse_nullability(p, pending_gt);
            if *pending_gt == 0 {
                let _ = parse_optional_comment(p)?;
            }
            fields.push(RowField {
                name,
                data_type,
                nullable,
            });
            if *pending_gt == 0 && p.consume_token(&Token::Comma) {
                continue;
            }
            break;
        }
    }
    if angle {
        close_angle(p, pending_gt)?;
    } else {
        p.expect_token(&Token::RParen)?;
    }
    Ok(SqlType::Row { fields })
}

/// `INTERVAL YEAR [(p)] [TO MONTH]`, `INTERVAL DAY [(p)] TO SECOND [(p)]`, ...
fn parse_interval_type(p: &mut Parser) -> Result<SqlType, ParserError> {
    const UNITS: &[&str] = &["YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"];
    let unit = |p: &mut Parser| -> Result<(), ParserError> {
        let tok = p.next_token();
        if UNITS
            .iter()
            .any(|u| crate::sql::support::is_word(&tok.token, u))
        {
            if p.consume_token(&Token::LParen) {
                p.parse_literal_uint()?;
                p.expect_token(&Token::RParen)?;
            }
            Ok(())
        } else {
            p.expected(
                "an interval unit (YEAR, MONTH, DAY, HOUR, MINUTE, SECOND)",
                tok,
            )
        }
    };
    unit(p)?;
    if parse_word(p, "TO") {
        unit(p)?;
    }
    Ok(SqlType::Interval)
}

/// `[(n)]` for CHAR/VARCHAR/BINARY/VARBINARY: 1..=2147483647.
fn parse_length(p: &mut Parser, what: &str) -> Result<Option<u32>, ParserError> {
    if !p.consume_token(&Token::LParen) {
        return Ok(None);
    }
    let at = p.peek_token();
    let n = p.parse_literal_uint()?;
    if n < 1 || n > u64::from(MAX_LENGTH) {
        return Err(error_at(
            format!("{what} length must be between 1 and {MAX_LENGTH}, found {n}"),
            &at,
        ));
    }
    p.expect_token(&Token::RParen)?;
    Ok(Some(n as u32))
}

/// `[(p)]` for TIME/TIMESTAMP/TIMESTAMP_LTZ: 0..=9.
fn parse_time_precision(p: &mut Parser, what: &str, default: u8) -> Result<u8, ParserError> {
    if !p.consume_token(&Token::LParen) {
        return Ok(default);
    }
    let at = p.peek_token();
    let n = p.parse_literal_uint()?;
    if n > 9 {
        return Err(error_at(
            format!("{what} precision must be between 0 and 9, found {n}"),
            &at,
        ));
    }
    p.expect_token(&Token::RParen)?;
    Ok(n as u8)
}

/// `[(p [, s])]` for DECIMAL: 1 <= p <= 38, 0 <= s <= p; default (10, 0).
fn parse_precision_scale(p: &mut Parser) -> Result<(u8, i8), ParserError> {
    if !p.consume_token(&Token::LParen) {
        return Ok((10, 0));
    }
    let at = p.peek_token();
    let precision = p.parse_literal_uint()?;
    if !(1..=38).contains(&precision) {
        return Err(error_at(
            format!("DECIMAL precision must be between 1 and 38, found {precision}"),
            &at,
        ));
    }
    let scale = if p.consume_token(&Token::Comma) {
        let at = p.peek_token();
        let s = p.parse_literal_uint()?;
        if s > precision {
            return Err(error_at(
                format!(
                    "DECIMAL scale must be between 0 and the precision ({precision}), found {s}"
                ),
                &at,
            ));
        }
        s
    } else {
        0
    };
    p.expect_token(&Token::RParen)?;
    Ok((precision as u8, scale as i8))
}

/// Maps a type as sqlparser's AST holds it (from `CAST(x AS <type>)`, typed literals, or
/// [`sql_type_to_ast`]) to our [`SqlType`]. Used by the planner as DataFusion's `TypePlanner`.
///
/// # Errors
/// `NotSupported` for types Flink does not have (e.g. `UUID`, `JSON`).
pub fn sql_type_from_ast(t: &ast::DataType) -> Result<SqlType> {
    use ast::DataType as D;
    let length = |l: &Option<CharacterLength>| -> Result<Option<u32>> {
        match l {
            None | Some(CharacterLength::Max) => Ok(None),
            Some(CharacterLength::IntegerLength { length, .. }) => to_length(*length).map(Some),
        }
    };
    Ok(match t {
        D::Boolean | D::Bool => SqlType::Boolean,
        D::TinyInt(_) => SqlType::TinyInt,
        D::SmallInt(_) | D::Int2(_) | D::Int16 => SqlType::SmallInt,
        D::Int(_) | D::Integer(_) | D::Int4(_) | D::Int32 => SqlType::Int,
        D::BigInt(_) | D::Int8(_) | D::Int64 => SqlType::BigInt,
        D::Float(_) | D::Real | D::Float4 | D::Float32 => SqlType::Float,
        D::Double(_) | D::DoublePrecision | D::Float8 | D::Float64 => SqlType::Double,
        D::Decimal(info) | D::Dec(info) | D::Numeric(info) => {
            let (precision, scale) = match info {
                ExactNumberInfo::None => (10, 0),
                ExactNumberInfo::Precision(p) => (*p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
            };
            if !(1..=38).contains(&precision) || scale < 0 || scale > precision as i64 {
                return Err(Error::invalid(format!(
                    "DECIMAL({precision}, {scale}) is out of range: precision must be 1..=38 and scale 0..=precision"
                )));
            }
            SqlType::Decimal {
                precision: precision as u8,
                scale: scale as i8,
            }
        }
        D::Char(l) | D::Character(l) => SqlType::Char {
            length: length(l)?.unwrap_or(1),
        },
        D::Varchar(l) | D::CharVarying(l) | D::CharacterVarying(l) | D::Nvarchar(l) => {
            varchar(length(l)?)
        }
        D::String(_) | D::Text => SqlType::String,
        D::Binary(n) => SqlType::Binary {
            length: n.map(to_length).transpose()?.unwrap_or(1),
        },
        D::Varbinary(l) => varbinary(match l {
            None | Some(BinaryLength::Max) => None,
            Some(BinaryLength::IntegerLength { length }) => Some(to_length(*length)?),
        }),
        D::Bytes(_) | D::Bytea | D::Blob(_) => SqlType::Bytes,
        D::Date => SqlType::Date,
        D::Time(p, _) => SqlType::Time {
            precision: to_precision(*p, 0)?,
        },
        D::Timestamp(p, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone)
        | D::TimestampNtz(p)
        | D::Datetime(p) => SqlType::Timestamp {
            precision: to_precision(*p, 6)?,
        },
        D::Timestamp(p, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => SqlType::TimestampLtz {
            precision: to_precision(*p, 6)?,
        },
        D::Interval { .. } => SqlType::Interval,
        D::Array(elem) => match elem {
            ArrayElemTypeDef::AngleBracket(t)
            | ArrayElemTypeDef::SquareBracket(t, _)
            | ArrayElemTypeDef::Parenthesis(t) => SqlType::Array {
                element: Box::new(sql_type_from_ast(t)?),
                element_nullable: true,
            },
            ArrayElemTypeDef::None => {
                return Err(Error::invalid(
                    "ARRAY needs an element type, e.g. ARRAY<INT>",
                ));
            }
        },
        D::Map(k, v) => SqlType::Map {
            key: Box::new(sql_type_from_ast(k)?),
            value: Box::new(sql_type_from_ast(v)?),
            value_nullable: true,
        },
        D::Struct(fields, _) => SqlType::Row {
            fields: fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    Ok(RowField {
                        name: f
                            .field_name
                            .as_ref()
                            .map(|n| n.value.clone())
                            .unwrap_or_else(|| format!("f{i}")),
                        data_type: sql_type_from_ast(&f.field_type)?,
                        nullable: true,
                    })
                })
                .collect::<Result<_>>()?,
        },
        D::Custom(name, modifiers) => custom_type(name, modifiers)?,
        other => {
            return Err(Error::not_supported(format!(
                "data type {other} is not supported; valid types include {SOME_TYPES}"
            )));
        }
    })
}

/// Types sqlparser does not know keep their name: `TIMESTAMP_LTZ(3)`, `STRING`, `BYTES`.
fn custom_type(name: &ObjectName, modifiers: &[String]) -> Result<SqlType> {
    let text = name.to_string().to_ascii_uppercase();
    let precision = |default: u8| -> Result<u8> {
        match modifiers.first() {
            None => Ok(default),
            Some(m) => {
                let p: u64 = m
                    .trim()
                    .parse()
                    .map_err(|_| Error::invalid(format!("invalid precision '{m}' for {text}")))?;
                to_precision(Some(p), default)
            }
        }
    };
    Ok(match text.as_str() {
        "TIMESTAMP_LTZ" => SqlType::TimestampLtz {
            precision: precision(6)?,
        },
        "STRING" => SqlType::String,
        "BYTES" => SqlType::Bytes,
        "TINYINT" => SqlType::TinyInt,
        _ => {
            return Err(Error::not_supported(format!(
                "data type {text} is not supported; valid types include {SOME_TYPES}"
            )));
        }
    })
}

fn to_length(n: u64) -> Result<u32> {
    if n < 1 || n > u64::from(MAX_LENGTH) {
        return Err(Error::invalid(format!(
            "length must be between 1 and {MAX_LENGTH}, found {n}"
        )));
    }
    Ok(n as u32)
}

fn to_precision(p: Option<u64>, default: u8) -> Result<u8> {
    match p {
        None => Ok(default),
        Some(p) if p <= 9 => Ok(p as u8),
        Some(p) => Err(Error::invalid(format!(
            "time precision must be between 0 and 9, found {p}"
        ))),
    }
}

/// The canonical sqlparser form of a Flink type, which [`sql_type_from_ast`] maps back to the same
/// [`SqlType`] (except the `NOT NULL` of element types, which the AST cannot hold) and whose
/// `Display` re-parses under the Flink dialect.
pub fn sql_type_to_ast(t: &SqlType) -> ast::DataType {
    use ast::DataType as D;
    let len = |n: u32| {
        Some(CharacterLength::IntegerLength {
            length: u64::from(n),
            unit: None,
        })
    };
    match t {
        SqlType::Boolean => D::Boolean,
        SqlType::TinyInt => D::TinyInt(None),
        SqlType::SmallInt => D::SmallInt(None),
        SqlType::Int => D::Int(None),
        SqlType::BigInt => D::BigInt(None),
        SqlType::Float => D::Float(ExactNumberInfo::None),
        SqlType::Double => D::Double(ExactNumberInfo::None),
        SqlType::Decimal { precision, scale } => D::Decimal(ExactNumberInfo::PrecisionAndScale(
            u64::from(*precision),
            i64::from(*scale),
        )),
        SqlType::Char { length } => D::Char(len(*length)),
        SqlType::Varchar { length } => D::Varchar(len(*length)),
        SqlType::String => D::String(None),
        SqlType::Binary { length } => D::Binary(Some(u64::from(*length))),
        SqlType::Varbinary { length } => D::Varbinary(Some(BinaryLength::IntegerLength {
            length: u64::from(*length),
        })),
        SqlType::Bytes => D::Bytes(None),
        SqlType::Date => D::Date,
        SqlType::Time { precision } => D::Time(Some(u64::from(*precision)), TimezoneInfo::None),
        SqlType::Timestamp { precision } => {
            D::Timestamp(Some(u64::from(*precision)), TimezoneInfo::None)
        }
        SqlType::TimestampLtz { precision } => D::Custom(
            ObjectName::from(vec![Ident::new("TIMESTAMP_LTZ")]),
            vec![precision.to_string()],
        ),
        SqlType::Interval => D::Interval {
            fields: None,
            precision: None,
        },
        SqlType::Array { element, .. } => D::Array(ArrayElemTypeDef::AngleBracket(Box::new(
            sql_type_to_ast(element),
        ))),
        SqlType::Map { key, value, .. } => D::Map(
            Box::new(sql_type_to_ast(key)),
            Box::new(sql_type_to_ast(value)),
        ),
        SqlType::Row { fields } => D::Struct(
            fields
                .iter()
                .map(|f| StructField {
                    field_name: Some(Ident::with_quote('`', f.name.clone())),
                    field_type: sql_type_to_ast(&f.data_type),
                    options: None,
                })
                .collect(),
            StructBracketKind::AngleBrackets,
        ),
        SqlType::Null => D::Custom(ObjectName::from(vec![Ident::new("NULL")]), vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::dialect::FlinkDialect;

    fn ty(sql: &str) -> Result<SqlType, ParserError> {
        let mut p = Parser::new(&FlinkDialect).try_with_sql(sql)?;
        let t = parse_flink_type(&mut p)?;
        crate::sql::support::expect_end(&p)?;
        Ok(t)
    }

    fn ok(sql: &str) -> SqlType {
        match ty(sql) {
            Ok(t) => t,
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    fn arr(t: SqlType, nullable: bool) -> SqlType {
        SqlType::Array {
            element: Box::new(t),
            element_nullable: nullable,
        }
    }

    #[test]
    fn scalar_types_and_defaults() {
        assert_eq!(ok("BOOLEAN"), SqlType::Boolean);
        assert_eq!(ok("tinyint"), SqlType::TinyInt);
        assert_eq!(ok("SMALLINT"), SqlType::SmallInt);
        assert_eq!(ok("INT"), SqlType::Int);
        assert_eq!(ok("INTEGER"), SqlType::Int);
        assert_eq!(ok("BIGINT"), SqlType::BigInt);
        assert_eq!(ok("FLOAT"), SqlType::Float);
        assert_eq!(ok("DOUBLE"), SqlType::Double);
        assert_eq!(ok("DOUBLE PRECISION"), SqlType::Double);
        assert_eq!(
            ok("DECIMAL"),
            SqlType::Decimal {
                precision: 10,
                scale: 0
            }
        );
        assert_eq!(
            ok("DEC(5)"),
            SqlType::Decimal {
                precision: 5,
                scale: 0
            }
        );
        assert_eq!(
            ok("NUMERIC(23, 3)"),
            SqlType::Decimal {
                precision: 23,
                scale: 3
            }
        );
        assert_eq!(ok("CHAR"), SqlType::Char { length: 1 });
        assert_eq!(ok("CHAR(4)"), SqlType::Char { length: 4 });
        assert_eq!(ok("VARCHAR(10)"), SqlType::Varchar { length: 10 });
        assert_eq!(ok("VARCHAR"), SqlType::String);
        assert_eq!(ok("VARCHAR(2147483647)"), SqlType::String);
        assert_eq!(ok("STRING"), SqlType::String);
        assert_eq!(ok("BINARY"), SqlType::Binary { length: 1 });
        assert_eq!(ok("VARBINARY(8)"), SqlType::Varbinary { length: 8 });
        assert_eq!(ok("BYTES"), SqlType::Bytes);
        assert_eq!(ok("DATE"), SqlType::Date);
        assert_eq!(ok("TIME"), SqlType::Time { precision: 0 });
        assert_eq!(ok("TIME(3)"), SqlType::Time { precision: 3 });
        assert_eq!(ok("TIMESTAMP"), SqlType::Timestamp { precision: 6 });
        assert_eq!(ok("TIMESTAMP(3)"), SqlType::Timestamp { precision: 3 });
        assert_eq!(
            ok("TIMESTAMP(3) WITHOUT TIME ZONE"),
            SqlType::Timestamp { precision: 3 }
        );
        assert_eq!(
            ok("TIMESTAMP(3) WITH LOCAL TIME ZONE"),
            SqlType::TimestampLtz { precision: 3 }
        );
        assert_eq!(
            ok("TIMESTAMP WITH LOCAL TIME ZONE"),
            SqlType::TimestampLtz { precision: 6 }
        );
        assert_eq!(ok("TIMESTAMP_LTZ"), SqlType::TimestampLtz { precision: 6 });
        assert_eq!(
            ok("TIMESTAMP_LTZ(3)"),
            SqlType::TimestampLtz { precision: 3 }
        );
        assert_eq!(ok("INTERVAL DAY(2) TO SECOND(3)"), SqlType::Interval);
    }

    #[test]
    fn nested_types_and_shift_right() {
        assert_eq!(ok("ARRAY<INT>"), arr(SqlType::Int, true));
        assert_eq!(ok("ARRAY<INT NOT NULL>"), arr(SqlType::Int, false));
        assert_eq!(ok("ARRAY<ARRAY<INT>>"), arr(arr(SqlType::Int, true), true));
        assert_eq!(
            ok("ARRAY<ARRAY<ARRAY<INT>>>"),
            arr(arr(arr(SqlType::Int, true), true), true)
        );
        assert_eq!(ok("INT ARRAY"), arr(SqlType::Int, true));
        assert_eq!(
            ok("MAP<STRING, ARRAY<BIGINT>>"),
            SqlType::Map {
                key: Box::new(SqlType::String),
                value: Box::new(arr(SqlType::BigInt, true)),
                value_nullable: true
            }
        );
        assert_eq!(
            ok("MAP<STRING, INT NOT NULL>"),
            SqlType::Map {
                key: Box::new(SqlType::String),
                value: Box::new(SqlType::Int),
                value_nullable: false
            }
        );
        let row = ok(
            "ROW<id BIGINT NOT NULL, `dateTime` TIMESTAMP(3) COMMENT 'event time', tags ARRAY<STRING>>",
        );
        assert_eq!(
            row,
            SqlType::Row {
                fields: vec![
                    RowField {
                        name: "id".into(),
                        data_type: SqlType::BigInt,
                        nullable: false
                    },
                    RowField {
                        name: "dateTime".into(),
                        data_type: SqlType::Timestamp { precision: 3 },
                        nullable: true
                    },
                    RowField {
                        name: "tags".into(),
                        data_type: arr(SqlType::String, true),
                        nullable: true
                    },
                ]
            }
        );
        assert_eq!(
            ok("ROW(a INT, b STRING)").to_string(),
            "ROW<`a` INT, `b` STRING>"
        );
        assert_eq!(
            ok("ROW<a ROW<b ARRAY<INT>>>").to_string(),
            "ROW<`a` ROW<`b` ARRAY<INT>>>"
        );
    }

    #[test]
    fn bad_types_are_errors_with_positions() {
        let e = ty("STRNG").unwrap_err().to_string();
        assert!(
            e.contains("Unknown data type 'STRNG'") && e.contains("STRING"),
            "{e}"
        );
        assert!(e.ends_with("at Line: 1, Column: 1"), "{e}");
        let e = ty("DECIMAL(40, 2)").unwrap_err().to_string();
        assert!(
            e.contains("precision must be between 1 and 38, found 40") && e.contains("Column: 9"),
            "{e}"
        );
        let e = ty("DECIMAL(5, 6)").unwrap_err().to_string();
        assert!(e.contains("scale"), "{e}");
        let e = ty("TIMESTAMP(12)").unwrap_err().to_string();
        assert!(e.contains("between 0 and 9"), "{e}");
        assert!(ty("VARCHAR(0)").is_err());
        assert!(ty("ARRAY<INT").is_err());
        assert!(ty("ARRAY<INT>>").is_err());
        assert!(ty("MAP<INT>").is_err());
        assert!(ty("TIMESTAMP WITH TIME ZONE").is_err());
    }

    #[test]
    fn ast_round_trip() {
        for sql in [
            "BOOLEAN",
            "TINYINT",
            "DECIMAL(12, 2)",
            "CHAR(3)",
            "VARCHAR(5)",
            "STRING",
            "BINARY(2)",
            "VARBINARY(9)",
            "BYTES",
            "DATE",
            "TIME(3)",
            "TIMESTAMP(3)",
            "TIMESTAMP_LTZ(3)",
            "ARRAY<BIGINT>",
            "MAP<STRING, DOUBLE>",
            "ROW<a INT, `b c` ARRAY<STRING>>",
        ] {
            let t = ok(sql);
            let ast = sql_type_to_ast(&t);
            assert_eq!(sql_type_from_ast(&ast).unwrap(), t, "{sql}");
            // The AST's own spelling parses back to the same type.
            assert_eq!(ok(&ast.to_string()), t, "{sql} printed as {ast}");
        }
    }

    #[test]
    fn ast_types_from_sqlparser() {
        use ast::DataType as D;
        assert_eq!(
            sql_type_from_ast(&D::Varchar(None)).unwrap(),
            SqlType::String
        );
        assert_eq!(
            sql_type_from_ast(&D::Timestamp(None, TimezoneInfo::None)).unwrap(),
            SqlType::Timestamp { precision: 6 }
        );
        assert_eq!(
            sql_type_from_ast(&D::Custom(
                ObjectName::from(vec![Ident::new("timestamp_ltz")]),
                vec!["3".into()]
            ))
            .unwrap(),
            SqlType::TimestampLtz { precision: 3 }
        );
        assert!(sql_type_from_ast(&D::Uuid).is_err());
        assert!(sql_type_from_ast(&D::Decimal(ExactNumberInfo::PrecisionAndScale(50, 2))).is_err());
    }
}
