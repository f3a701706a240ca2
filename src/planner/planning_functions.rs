//! Flink built-ins whose answer the planner knows and expression evaluation does not:
//!
//! - `TYPEOF(x [, force_serializable])` → `STRING`: the Flink SQL type of `x` as planned,
//!   with ` NOT NULL` when `x` cannot be NULL (Flink's summary string; with `TRUE` for
//!   `force_serializable`, the serializable spelling: `VARCHAR(2147483647)` for `STRING`,
//!   `VARBINARY(2147483647)` for `BYTES`, `TIMESTAMP(p) WITH LOCAL TIME ZONE` for
//!   `TIMESTAMP_LTZ(p)`). The type is Weir's (`crate::types::SqlType` of the Arrow type), so it
//!   names what Weir computes: an integer literal is `BIGINT`, a string literal `STRING`.
//!   Registered in the session's function registry; the value comes from the argument's
//!   planned field, so it is the same in both engines.
//! - `CURRENT_DATABASE()` → `STRING`: the session's current database when the statement is
//!   planned, given by [`super::context::PlanningContext`] (which builds this function from its
//!   catalog snapshot).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::types::{MAX_LENGTH, SqlType};

/// `TYPEOF`; see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TypeOf {
    signature: Signature,
}

impl TypeOf {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(TypeOf {
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

/// A type's Flink name: the summary string, or the serializable one.
pub fn flink_type_name(t: &SqlType, nullable: bool, serializable: bool) -> String {
    let not_null = |nullable: bool| if nullable { "" } else { " NOT NULL" };
    let name = match t {
        SqlType::String | SqlType::Varchar { length: MAX_LENGTH } if serializable => {
            format!("VARCHAR({MAX_LENGTH})")
        }
        SqlType::Bytes | SqlType::Varbinary { length: MAX_LENGTH } if serializable => {
            format!("VARBINARY({MAX_LENGTH})")
        }
        SqlType::TimestampLtz { precision } if serializable => {
            format!("TIMESTAMP({precision}) WITH LOCAL TIME ZONE")
        }
        SqlType::Array {
            element,
            element_nullable,
        } => format!(
            "ARRAY<{}>",
            flink_type_name(element, *element_nullable, serializable)
        ),
        SqlType::Map {
            key,
            value,
            value_nullable,
        } => format!(
            "MAP<{}, {}>",
            // Map keys are never NULL in Weir's maps (Arrow's map keys are not nullable).
            flink_type_name(key, false, serializable),
            flink_type_name(value, *value_nullable, serializable)
        ),
        SqlType::Row { fields } => {
            let fields: Vec<String> = fields
                .iter()
                .map(|f| {
                    format!(
                        "`{}` {}",
                        f.name.replace('`', "``"),
                        flink_type_name(&f.data_type, f.nullable, serializable)
                    )
                })
                .collect();
            format!("ROW<{}>", fields.join(", "))
        }
        other => other.to_string(),
    };
    format!("{name}{}", not_null(nullable || *t == SqlType::Null))
}

impl ScalarUDFImpl for TypeOf {
    fn name(&self) -> &str {
        "typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [t] => Ok(vec![t.clone()]),
            [t, DataType::Boolean] => Ok(vec![t.clone(), DataType::Boolean]),
            [_, other] => plan_err!(
                "TYPEOF's second argument (force_serializable) must be a BOOLEAN literal, got {}",
                SqlType::from_arrow(other)
                    .map(|t| t.to_string())
                    .unwrap_or_else(|_| other.to_string())
            ),
            _ => plan_err!("TYPEOF takes 1 or 2 arguments, got {}", arg_types.len()),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(Field::new("typeof", DataType::Utf8, false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(field) = args.arg_fields.first() else {
            return exec_err!("TYPEOF takes 1 or 2 arguments, got none");
        };
        let serializable = match args.args.get(1) {
            None => false,
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(b)))) => *b,
            Some(_) => {
                return exec_err!(
                    "TYPEOF's second argument (force_serializable) must be a BOOLEAN literal"
                );
            }
        };
        let t = SqlType::from_arrow(field.data_type())
            .map_err(|e| datafusion::error::DataFusionError::Execution(format!("TYPEOF: {e}")))?;
        let name = flink_type_name(&t, field.is_nullable(), serializable);
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

/// `CURRENT_DATABASE()` for one statement: the database is fixed when the statement is planned.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CurrentDatabase {
    database: String,
    signature: Signature,
}

impl CurrentDatabase {
    pub fn udf(database: &str) -> ScalarUDF {
        ScalarUDF::new_from_impl(CurrentDatabase {
            database: database.to_string(),
            signature: Signature::nullary(Volatility::Stable),
        })
    }
}

impl ScalarUDFImpl for CurrentDatabase {
    fn name(&self) -> &str {
        "current_database"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(Field::new(
            "current_database",
            DataType::Utf8,
            false,
        )))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            self.database.clone(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::RowField;

    #[test]
    fn names_as_flink_prints_them() {
        assert_eq!(
            flink_type_name(&SqlType::BigInt, false, false),
            "BIGINT NOT NULL"
        );
        assert_eq!(flink_type_name(&SqlType::String, true, false), "STRING");
        assert_eq!(
            flink_type_name(&SqlType::String, true, true),
            "VARCHAR(2147483647)"
        );
        assert_eq!(
            flink_type_name(&SqlType::TimestampLtz { precision: 3 }, false, true),
            "TIMESTAMP(3) WITH LOCAL TIME ZONE NOT NULL"
        );
        assert_eq!(flink_type_name(&SqlType::Null, false, false), "NULL");
        let row = SqlType::Row {
            fields: vec![RowField {
                name: "a".into(),
                data_type: SqlType::Array {
                    element: Box::new(SqlType::Int),
                    element_nullable: false,
                },
                nullable: true,
            }],
        };
        assert_eq!(
            flink_type_name(&row, false, false),
            "ROW<`a` ARRAY<INT NOT NULL>> NOT NULL"
        );
    }
}
