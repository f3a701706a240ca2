//! Hive column types as Arrow types, for the connector's readers and writers. There is one Hive
//! type-string parser, the catalog's ([`crate::catalog::hive::types`], Hive string ↔ `SqlType`);
//! the Arrow form is `SqlType::to_arrow`, so the connector reads and writes exactly the types the
//! catalog declares: `timestamp` is `Timestamp(Microsecond, None)` like Weir's `TIMESTAMP(6)`,
//! strings (`string`, `varchar(n)`, `char(n)`) are `Utf8`, lists' item field is `item`, maps'
//! entries are `entries { key, value }`.

use datafusion::arrow::datatypes::DataType;

use crate::catalog::hive::types::parse_hive_type;
use crate::error::Result;

/// The Arrow type of a Hive type string (case-insensitive, spaces allowed between tokens).
///
/// # Errors
/// As [`parse_hive_type`]: `Invalid` naming the position for a malformed string;
/// `NotSupported` for Hive types Weir does not read (`uniontype`, `interval_*`, `void`).
pub fn hive_to_arrow(type_string: &str) -> Result<DataType> {
    Ok(parse_hive_type(type_string)?.to_arrow())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SqlType;

    #[test]
    fn arrow_types_are_the_catalog_types_arrow_form() {
        let cases = [
            ("tinyint", DataType::Int8),
            ("SMALLINT", DataType::Int16),
            ("int", DataType::Int32),
            ("bigint", DataType::Int64),
            ("float", DataType::Float32),
            ("double precision", DataType::Float64),
            ("decimal", DataType::Decimal128(10, 0)),
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
        assert_eq!(
            hive_to_arrow("map<string,int>").unwrap(),
            SqlType::Map {
                key: Box::new(SqlType::String),
                value: Box::new(SqlType::Int),
                value_nullable: true
            }
            .to_arrow()
        );
        let e = hive_to_arrow("array<int").unwrap_err().to_string();
        assert!(e.contains("'>'"), "{e}");
        assert!(hive_to_arrow("uniontype<int,string>").is_err());
    }
}
