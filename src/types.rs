//! Flink SQL's logical types, as written in DDL (`STRING`, `TIMESTAMP(3)`, `ARRAY<INT>`, ...),
//! and their mapping to Arrow. The SQL layer parses them, the catalog stores them (as JSON through
//! serde), the planner turns them into Arrow fields. `Display` prints Flink's spelling, which is
//! what `DESCRIBE` and `SHOW CREATE TABLE` show.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, IntervalUnit, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A Flink SQL logical type. Nullability belongs to the column (or row field), not the type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SqlType {
    Boolean,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Char {
        length: u32,
    },
    Varchar {
        length: u32,
    },
    /// `STRING`, i.e. `VARCHAR(2147483647)`.
    String,
    Binary {
        length: u32,
    },
    Varbinary {
        length: u32,
    },
    /// `BYTES`, i.e. `VARBINARY(2147483647)`.
    Bytes,
    Date,
    Time {
        precision: u8,
    },
    Timestamp {
        precision: u8,
    },
    /// `TIMESTAMP_LTZ(p)` / `TIMESTAMP(p) WITH LOCAL TIME ZONE`: an instant, shown in the
    /// session time zone.
    TimestampLtz {
        precision: u8,
    },
    /// `INTERVAL DAY TO SECOND` style intervals (kept as Arrow month-day-nano).
    Interval,
    Array {
        element: Box<SqlType>,
        element_nullable: bool,
    },
    Map {
        key: Box<SqlType>,
        value: Box<SqlType>,
        value_nullable: bool,
    },
    Row {
        fields: Vec<RowField>,
    },
    Null,
}

/// A field of a `ROW<...>` type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowField {
    pub name: String,
    pub data_type: SqlType,
    pub nullable: bool,
}

/// Largest length Flink allows for CHAR/VARCHAR/BINARY/VARBINARY; `STRING` is VARCHAR of it.
pub const MAX_LENGTH: u32 = i32::MAX as u32;

impl SqlType {
    /// The Arrow type values of this SQL type are stored as.
    pub fn to_arrow(&self) -> DataType {
        match self {
            SqlType::Boolean => DataType::Boolean,
            SqlType::TinyInt => DataType::Int8,
            SqlType::SmallInt => DataType::Int16,
            SqlType::Int => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Float => DataType::Float32,
            SqlType::Double => DataType::Float64,
            SqlType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            SqlType::Char { .. } | SqlType::Varchar { .. } | SqlType::String => DataType::Utf8,
            SqlType::Binary { .. } | SqlType::Varbinary { .. } | SqlType::Bytes => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Time { precision } => match precision {
                0..=3 => DataType::Time32(TimeUnit::Millisecond),
                4..=6 => DataType::Time64(TimeUnit::Microsecond),
                _ => DataType::Time64(TimeUnit::Nanosecond),
            },
            SqlType::Timestamp { precision } => DataType::Timestamp(time_unit(*precision), None),
            SqlType::TimestampLtz { precision } => {
                DataType::Timestamp(time_unit(*precision), Some(Arc::from("UTC")))
            }
            SqlType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            SqlType::Array {
                element,
                element_nullable,
            } => DataType::List(Arc::new(Field::new(
                "item",
                element.to_arrow(),
                *element_nullable,
            ))),
            SqlType::Map {
                key,
                value,
                value_nullable,
            } => DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", key.to_arrow(), false),
                        Field::new("value", value.to_arrow(), *value_nullable),
                    ])),
                    false,
                )),
                false,
            ),
            SqlType::Row { fields } => DataType::Struct(Fields::from(
                fields
                    .iter()
                    .map(|f| Field::new(&f.name, f.data_type.to_arrow(), f.nullable))
                    .collect::<Vec<_>>(),
            )),
            SqlType::Null => DataType::Null,
        }
    }

    /// The SQL type that best describes an Arrow type (used for `CREATE TABLE AS`, `DESCRIBE`
    /// of query results and views).
    pub fn from_arrow(data_type: &DataType) -> Result<SqlType> {
        Ok(match data_type {
            DataType::Null => SqlType::Null,
            DataType::Boolean => SqlType::Boolean,
            DataType::Int8 => SqlType::TinyInt,
            DataType::Int16 | DataType::UInt8 => SqlType::SmallInt,
            DataType::Int32 | DataType::UInt16 => SqlType::Int,
            DataType::Int64 | DataType::UInt32 => SqlType::BigInt,
            DataType::UInt64 => SqlType::Decimal {
                precision: 20,
                scale: 0,
            },
            DataType::Float16 | DataType::Float32 => SqlType::Float,
            DataType::Float64 => SqlType::Double,
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
                SqlType::Decimal {
                    precision: *p,
                    scale: *s,
                }
            }
            DataType::Decimal256(p, s) if *p <= 38 => SqlType::Decimal {
                precision: *p,
                scale: *s,
            },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SqlType::String,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => SqlType::Bytes,
            DataType::FixedSizeBinary(n) => SqlType::Binary { length: *n as u32 },
            DataType::Date32 | DataType::Date64 => SqlType::Date,
            DataType::Time32(unit) | DataType::Time64(unit) => SqlType::Time {
                precision: precision_of(unit),
            },
            DataType::Timestamp(unit, None) => SqlType::Timestamp {
                precision: precision_of(unit),
            },
            DataType::Timestamp(unit, Some(_)) => SqlType::TimestampLtz {
                precision: precision_of(unit),
            },
            DataType::Interval(_) | DataType::Duration(_) => SqlType::Interval,
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::FixedSizeList(f, _)
            | DataType::ListView(f)
            | DataType::LargeListView(f) => SqlType::Array {
                element: Box::new(SqlType::from_arrow(f.data_type())?),
                element_nullable: f.is_nullable(),
            },
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => SqlType::Map {
                    key: Box::new(SqlType::from_arrow(kv[0].data_type())?),
                    value: Box::new(SqlType::from_arrow(kv[1].data_type())?),
                    value_nullable: kv[1].is_nullable(),
                },
                other => {
                    return Err(Error::internal(format!(
                        "malformed Arrow map entries type {other}"
                    )));
                }
            },
            DataType::Struct(fields) => SqlType::Row {
                fields: fields
                    .iter()
                    .map(|f| {
                        Ok(RowField {
                            name: f.name().clone(),
                            data_type: SqlType::from_arrow(f.data_type())?,
                            nullable: f.is_nullable(),
                        })
                    })
                    .collect::<Result<_>>()?,
            },
            DataType::Dictionary(_, value) => SqlType::from_arrow(value)?,
            other => {
                return Err(Error::not_supported(format!(
                    "Arrow type {other} has no Flink SQL type yet"
                )));
            }
        })
    }
}

fn time_unit(precision: u8) -> TimeUnit {
    match precision {
        0..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

fn precision_of(unit: &TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not_null = |nullable: bool| if nullable { "" } else { " NOT NULL" };
        match self {
            SqlType::Boolean => write!(f, "BOOLEAN"),
            SqlType::TinyInt => write!(f, "TINYINT"),
            SqlType::SmallInt => write!(f, "SMALLINT"),
            SqlType::Int => write!(f, "INT"),
            SqlType::BigInt => write!(f, "BIGINT"),
            SqlType::Float => write!(f, "FLOAT"),
            SqlType::Double => write!(f, "DOUBLE"),
            SqlType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            SqlType::Char { length } => write!(f, "CHAR({length})"),
            SqlType::Varchar { length } if *length == MAX_LENGTH => write!(f, "STRING"),
            SqlType::Varchar { length } => write!(f, "VARCHAR({length})"),
            SqlType::String => write!(f, "STRING"),
            SqlType::Binary { length } => write!(f, "BINARY({length})"),
            SqlType::Varbinary { length } if *length == MAX_LENGTH => write!(f, "BYTES"),
            SqlType::Varbinary { length } => write!(f, "VARBINARY({length})"),
            SqlType::Bytes => write!(f, "BYTES"),
            SqlType::Date => write!(f, "DATE"),
            SqlType::Time { precision } => write!(f, "TIME({precision})"),
            SqlType::Timestamp { precision } => write!(f, "TIMESTAMP({precision})"),
            SqlType::TimestampLtz { precision } => write!(f, "TIMESTAMP_LTZ({precision})"),
            SqlType::Interval => write!(f, "INTERVAL"),
            SqlType::Array {
                element,
                element_nullable,
            } => {
                write!(f, "ARRAY<{element}{}>", not_null(*element_nullable))
            }
            SqlType::Map {
                key,
                value,
                value_nullable,
            } => {
                write!(f, "MAP<{key}, {value}{}>", not_null(*value_nullable))
            }
            SqlType::Row { fields } => {
                write!(f, "ROW<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(
                        f,
                        "`{}` {}{}",
                        field.name,
                        field.data_type,
                        not_null(field.nullable)
                    )?;
                }
                write!(f, ">")
            }
            SqlType::Null => write!(f, "NULL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_round_trip_keeps_flink_spelling() {
        let t = SqlType::Row {
            fields: vec![
                RowField {
                    name: "a".into(),
                    data_type: SqlType::Int,
                    nullable: false,
                },
                RowField {
                    name: "b".into(),
                    data_type: SqlType::Array {
                        element: Box::new(SqlType::String),
                        element_nullable: true,
                    },
                    nullable: true,
                },
            ],
        };
        let back = SqlType::from_arrow(&t.to_arrow()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.to_string(), "ROW<`a` INT NOT NULL, `b` ARRAY<STRING>>");
        assert_eq!(
            SqlType::TimestampLtz { precision: 3 }
                .to_arrow()
                .to_string(),
            "Timestamp(ms, \"UTC\")"
        );
    }
}
