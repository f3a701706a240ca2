//! Native implementations of user-defined functions. Flink's `CREATE FUNCTION name AS 'class'`
//! names a JVM class; Weir runs no JVM, so the session looks the class up in [`CLASSES`], a small
//! table of known classes, each mapped to a DataFusion scalar UDF registered under the function's
//! name. Registered in the session's DataFusion state, a UDF is evaluated the same way by batch
//! plans and by the streaming operators (which evaluate DataFusion physical expressions).
//!
//! Known classes:
//! - `com.github.nexmark.flink.udf.CountChar` (Nexmark q14): `count_char(s, c)` is the number of
//!   occurrences of the character `c` (its first character; an empty `c` counts nothing) in the
//!   string `s`, as `BIGINT`; NULL when either argument is NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// A known implementation class and how to build its function under a given name.
pub struct NativeClass {
    pub class: &'static str,
    /// What the function does (for error messages and docs).
    pub description: &'static str,
    build: fn(&str) -> ScalarUDF,
}

/// Every class `CREATE FUNCTION` accepts.
pub const CLASSES: &[NativeClass] = &[NativeClass {
    class: "com.github.nexmark.flink.udf.CountChar",
    description: "count_char(s STRING, c STRING) BIGINT: occurrences of the character c in s",
    build: |name| ScalarUDF::new_from_impl(CountChar::new(name)),
}];

/// The scalar UDF implementing `class`, registered as `name`; `None` when the class is unknown.
pub fn native_udf(class: &str, name: &str) -> Option<ScalarUDF> {
    CLASSES
        .iter()
        .find(|c| c.class == class)
        .map(|c| (c.build)(name))
}

/// The class names of [`CLASSES`], for error messages.
pub fn known_classes() -> Vec<&'static str> {
    CLASSES.iter().map(|c| c.class).collect()
}

/// `count_char(s, c)`: see the module doc.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CountChar {
    name: String,
    signature: Signature,
}

impl CountChar {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CountChar {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let [s, c] = args.args.as_slice() else {
            return exec_err!("{} takes 2 arguments", self.name);
        };
        let scalar = matches!((s, c), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let s: ArrayRef = cast(&s.to_array(n)?, &DataType::Utf8)?;
        let c: ArrayRef = cast(&c.to_array(n)?, &DataType::Utf8)?;
        let (s, c) = (s.as_string::<i32>(), c.as_string::<i32>());
        let mut out = Int64Builder::with_capacity(s.len());
        for i in 0..s.len() {
            if s.is_null(i) || c.is_null(i) {
                out.append_null();
                continue;
            }
            let count = match c.value(i).chars().next() {
                Some(ch) => s.value(i).chars().filter(|x| *x == ch).count() as i64,
                None => 0,
            };
            out.append_value(count);
        }
        let array: ArrayRef = Arc::new(out.finish());
        if scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&array, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(array))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::config::ConfigOptions;

    #[test]
    fn count_char_counts_one_character() {
        let udf = native_udf("com.github.nexmark.flink.udf.CountChar", "count_char").unwrap();
        assert_eq!(udf.name(), "count_char");
        let s: ArrayRef = Arc::new(StringArray::from(vec![
            Some("abcabc"),
            Some(""),
            None,
            Some("ccc"),
            Some("héllo é"),
        ]));
        let c: ArrayRef = Arc::new(StringArray::from(vec![
            Some("c"),
            Some("c"),
            Some("c"),
            None,
            Some("é"),
        ]));
        let result = udf
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![ColumnarValue::Array(s), ColumnarValue::Array(c)],
                arg_fields: vec![
                    Arc::new(Field::new("s", DataType::Utf8, true)),
                    Arc::new(Field::new("c", DataType::Utf8, true)),
                ],
                number_rows: 5,
                return_field: Arc::new(Field::new("r", DataType::Int64, true)),
                config_options: Arc::new(ConfigOptions::default()),
            })
            .unwrap()
            .to_array(5)
            .unwrap();
        let result = result.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(
            result.iter().collect::<Vec<_>>(),
            vec![Some(2), Some(0), None, None, Some(2)]
        );
    }

    #[test]
    fn unknown_classes_have_no_implementation() {
        assert!(native_udf("com.example.Nope", "f").is_none());
        assert!(known_classes().contains(&"com.github.nexmark.flink.udf.CountChar"));
    }
}
