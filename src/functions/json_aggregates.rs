//! Flink's JSON aggregates, as DataFusion aggregate UDFs registered in the session (batch plans
//! run them; DataFusion's partial / final split merges their states). The streaming engine has
//! no accumulator for them yet, so a streaming query using them fails at planning with a
//! "not supported yet" error (`stream::ops::aggregate`) rather than answering wrongly.
//!
//! The SQL layer's parse hooks (`sql::json_syntax`) turn `JSON_ARRAYAGG(v [NULL | ABSENT ON
//! NULL])` and `JSON_OBJECTAGG([KEY] k VALUE v [NULL | ABSENT ON NULL])` into calls of the
//! functions below, the value already JSON text (`json_string(v)`, `json(..)` or a nested
//! constructor), as Flink's `WrapJsonAggFunctionArgumentsRule` wraps it in `JSON_STRING`.
//!
//! - `json_arrayagg_absent_on_null(j)` (Flink's default) / `json_arrayagg_null_on_null(j)` →
//!   `STRING`: the values as a JSON array, in input order; `[]` when there are none.
//! - `json_objectagg_null_on_null(k, j)` (Flink's default) / `json_objectagg_absent_on_null(k,
//!   j)` → `STRING`: a JSON object of the key/value pairs, keys in sorted order (Flink's follow
//!   its hash map); `{}` when there are none. A NULL key or a key seen twice raises (Flink:
//!   "Duplicate keys are not allowed in JSON_OBJECTAGG").

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::json_build::quote;
use super::rowwise::{is_string, sql_name};

/// The aggregates of this module, ready to register in a session.
pub fn udafs() -> Vec<AggregateUDF> {
    [
        (Shape::Array, false),
        (Shape::Array, true),
        (Shape::Object, false),
        (Shape::Object, true),
    ]
    .into_iter()
    .map(|(shape, absent_on_null)| AggregateUDF::new_from_impl(JsonAgg::new(shape, absent_on_null)))
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Shape {
    Array,
    Object,
}

/// One of the four JSON aggregates; see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonAgg {
    name: &'static str,
    shape: Shape,
    absent_on_null: bool,
    signature: Signature,
}

impl JsonAgg {
    fn new(shape: Shape, absent_on_null: bool) -> Self {
        let name = match (shape, absent_on_null) {
            (Shape::Array, false) => "json_arrayagg_null_on_null",
            (Shape::Array, true) => "json_arrayagg_absent_on_null",
            (Shape::Object, false) => "json_objectagg_null_on_null",
            (Shape::Object, true) => "json_objectagg_absent_on_null",
        };
        JsonAgg {
            name,
            shape,
            absent_on_null,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn sql(&self) -> &'static str {
        match self.shape {
            Shape::Array => "JSON_ARRAYAGG",
            Shape::Object => "JSON_OBJECTAGG",
        }
    }
}

impl AggregateUDFImpl for JsonAgg {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let want = match self.shape {
            Shape::Array => 1,
            Shape::Object => 2,
        };
        if arg_types.len() != want {
            return plan_err!(
                "{} takes {want} arguments, got {}",
                self.name,
                arg_types.len()
            );
        }
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if is_string(t) || t == &DataType::Null {
                    Ok(DataType::Utf8)
                } else if self.shape == Shape::Object && i == 0 {
                    plan_err!("JSON_OBJECTAGG keys must be strings, got {}", sql_name(t))
                } else {
                    plan_err!("{}: the value is not JSON text", self.sql())
                }
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        let list = || DataType::new_list(DataType::Utf8, true);
        let mut fields = vec![Arc::new(Field::new(
            format_state_name(args.name, "values"),
            list(),
            true,
        ))];
        if self.shape == Shape::Object {
            fields.push(Arc::new(Field::new(
                format_state_name(args.name, "keys"),
                list(),
                true,
            )));
        }
        Ok(fields)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(match self.shape {
            Shape::Array => Box::new(ArrayAcc {
                absent_on_null: self.absent_on_null,
                values: Vec::new(),
                bytes: 0,
            }),
            Shape::Object => Box::new(ObjectAcc {
                absent_on_null: self.absent_on_null,
                entries: BTreeMap::new(),
                bytes: 0,
            }),
        })
    }
}

/// A value: JSON text, checked (the functions can be called by their names too).
fn json_text(func: &str, v: &str) -> DfResult<()> {
    match serde_json::from_str::<serde::de::IgnoredAny>(v) {
        Ok(_) => Ok(()),
        Err(_) => exec_err!("{func}: the value {v:?} is not JSON text"),
    }
}

fn strings(a: &ArrayRef) -> DfResult<ArrayRef> {
    Ok(cast(a, &DataType::Utf8)?)
}

fn list_state(items: impl Iterator<Item = Option<String>>) -> ScalarValue {
    let values: Vec<ScalarValue> = items.map(ScalarValue::Utf8).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Utf8))
}

#[derive(Debug)]
struct ArrayAcc {
    absent_on_null: bool,
    /// JSON texts; `None` is a JSON `null` (kept only with `NULL ON NULL`).
    values: Vec<Option<String>>,
    bytes: usize,
}

impl ArrayAcc {
    fn push(&mut self, v: Option<&str>) -> DfResult<()> {
        match v {
            Some(v) => {
                json_text("JSON_ARRAYAGG", v)?;
                self.bytes += v.len();
                self.values.push(Some(v.to_string()));
            }
            None if self.absent_on_null => {}
            None => self.values.push(None),
        }
        Ok(())
    }
}

impl Accumulator for ArrayAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let a = strings(&values[0])?;
        for v in a.as_string::<i32>() {
            self.push(v)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let items: Vec<&str> = self
            .values
            .iter()
            .map(|v| v.as_deref().unwrap_or("null"))
            .collect();
        Ok(ScalarValue::Utf8(Some(format!("[{}]", items.join(",")))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bytes + self.values.len() * 24
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![list_state(self.values.iter().cloned())])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let lists = states[0].as_list::<i32>();
        for row in 0..lists.len() {
            if lists.is_null(row) {
                continue;
            }
            let items = lists.value(row);
            for v in items.as_string::<i32>() {
                // Nulls in a state are JSON nulls kept under NULL ON NULL.
                match v {
                    Some(v) => {
                        self.bytes += v.len();
                        self.values.push(Some(v.to_string()));
                    }
                    None => self.values.push(None),
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct ObjectAcc {
    absent_on_null: bool,
    /// Key → JSON text (`None`: a JSON `null`).
    entries: BTreeMap<String, Option<String>>,
    bytes: usize,
}

impl ObjectAcc {
    fn insert(&mut self, key: Option<&str>, value: Option<&str>, check: bool) -> DfResult<()> {
        let Some(key) = key else {
            return exec_err!("JSON_OBJECTAGG: a key is NULL (keys must not be NULL)");
        };
        if self.entries.contains_key(key) {
            return exec_err!(
                "JSON_OBJECTAGG: key '{key}' is already present; duplicate keys are not allowed"
            );
        }
        match value {
            Some(v) => {
                if check {
                    json_text("JSON_OBJECTAGG", v)?;
                }
                self.bytes += key.len() + v.len();
                self.entries.insert(key.to_string(), Some(v.to_string()));
            }
            None if self.absent_on_null => {}
            None => {
                self.bytes += key.len();
                self.entries.insert(key.to_string(), None);
            }
        }
        Ok(())
    }
}

impl Accumulator for ObjectAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let keys = strings(&values[0])?;
        let vals = strings(&values[1])?;
        for (k, v) in keys.as_string::<i32>().iter().zip(vals.as_string::<i32>()) {
            self.insert(k, v, true)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let parts: Vec<String> = self
            .entries
            .iter()
            .map(|(k, v)| format!("{}:{}", quote(k), v.as_deref().unwrap_or("null")))
            .collect();
        Ok(ScalarValue::Utf8(Some(format!("{{{}}}", parts.join(",")))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bytes + self.entries.len() * 64
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![
            list_state(self.entries.values().cloned()),
            list_state(self.entries.keys().map(|k| Some(k.clone()))),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let values = states[0].as_list::<i32>();
        let keys = states[1].as_list::<i32>();
        for row in 0..keys.len() {
            if keys.is_null(row) || values.is_null(row) {
                continue;
            }
            let (ks, vs) = (keys.value(row), values.value(row));
            for (k, v) in ks.as_string::<i32>().iter().zip(vs.as_string::<i32>()) {
                self.insert(k, v, false)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;

    fn col(items: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(items.to_vec()))
    }

    #[test]
    fn arrays_keep_order_and_null_mode() {
        let input = col(&[Some("1"), None, Some("\"a\"")]);
        for (absent, want) in [(true, "[1,\"a\"]"), (false, "[1,null,\"a\"]")] {
            let mut acc = ArrayAcc {
                absent_on_null: absent,
                values: Vec::new(),
                bytes: 0,
            };
            acc.update_batch(std::slice::from_ref(&input)).unwrap();
            // A second partition merged in after the first.
            let mut other = ArrayAcc {
                absent_on_null: absent,
                values: Vec::new(),
                bytes: 0,
            };
            other.update_batch(&[col(&[Some("[2]")])]).unwrap();
            let state = other.state().unwrap()[0].to_array().unwrap();
            acc.merge_batch(&[state]).unwrap();
            let want = format!("{},[2]]", want.trim_end_matches(']'));
            assert_eq!(acc.evaluate().unwrap(), ScalarValue::Utf8(Some(want)));
        }
        let mut empty = ArrayAcc {
            absent_on_null: true,
            values: Vec::new(),
            bytes: 0,
        };
        assert_eq!(
            empty.evaluate().unwrap(),
            ScalarValue::Utf8(Some("[]".into()))
        );
        assert!(empty.update_batch(&[col(&[Some("x y")])]).is_err());
    }

    #[test]
    fn objects_reject_duplicate_and_null_keys() {
        let mut acc = ObjectAcc {
            absent_on_null: false,
            entries: BTreeMap::new(),
            bytes: 0,
        };
        acc.update_batch(&[col(&[Some("b"), Some("a")]), col(&[None, Some("1")])])
            .unwrap();
        assert_eq!(
            acc.evaluate().unwrap(),
            ScalarValue::Utf8(Some(r#"{"a":1,"b":null}"#.into()))
        );
        let state: Vec<ArrayRef> = acc
            .state()
            .unwrap()
            .iter()
            .map(|s| s.to_array().unwrap())
            .collect();
        assert!(acc.merge_batch(&state).is_err(), "duplicate keys");
        assert!(
            acc.update_batch(&[col(&[None]), col(&[Some("1")])])
                .is_err()
        );
        let mut absent = ObjectAcc {
            absent_on_null: true,
            entries: BTreeMap::new(),
            bytes: 0,
        };
        absent
            .update_batch(&[col(&[Some("a"), Some("b")]), col(&[Some("1"), None])])
            .unwrap();
        assert_eq!(
            absent.evaluate().unwrap(),
            ScalarValue::Utf8(Some(r#"{"a":1}"#.into()))
        );
    }
}
