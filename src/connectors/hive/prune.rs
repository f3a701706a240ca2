//! Partition pruning for Hive table scans: the query's filters on partition keys become a
//! metastore filter string (so the metastore returns only candidate partitions, via
//! `get_partitions_by_filter`), and are then evaluated on the returned partitions' values (the
//! metastore's answer is only a superset, and some predicates cannot be sent to it).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

use super::HivePartition;
use super::adapt::safe;
use crate::error::{Error, Result};

/// The directory name Hive gives a NULL or empty partition value.
pub(crate) const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Whether `expr` refers only to the partition keys (and so can prune partitions).
pub(crate) fn only_keys(expr: &Expr, keys: &[Field]) -> bool {
    let cols = expr.column_refs();
    !cols.is_empty()
        && cols
            .iter()
            .all(|c| keys.iter().any(|k| k.name() == &c.name))
}

/// The metastore filter for `filters` (conjunctions whose translation fails are left out, so the
/// result selects a superset), or `None` when nothing could be translated.
pub(crate) fn metastore_filter(filters: &[Expr], keys: &[Field]) -> Option<String> {
    let parts: Vec<String> = filters
        .iter()
        .flat_map(split_conjunction)
        .filter_map(|e| translate(e, keys))
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" and "))
    }
}

fn translate(expr: &Expr, keys: &[Field]) -> Option<String> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => match (translate(left, keys), translate(right, keys)) {
                (Some(l), Some(r)) => Some(format!("({l} and {r})")),
                (Some(x), None) | (None, Some(x)) => Some(x),
                (None, None) => None,
            },
            Operator::Or => {
                let (l, r) = (translate(left, keys)?, translate(right, keys)?);
                Some(format!("({l} or {r})"))
            }
            _ => {
                let (key, op, value) = match (key_of(left, keys), literal(right)) {
                    (Some(k), Some(v)) => (k, *op, v),
                    _ => (key_of(right, keys)?, op.swap()?, literal(left)?),
                };
                comparison(key, op, value)
            }
        },
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => {
            let key = key_of(expr, keys)?;
            let parts = list
                .iter()
                .map(|v| comparison(key, Operator::Eq, literal(v)?))
                .collect::<Option<Vec<_>>>()?;
            Some(format!("({})", parts.join(" or ")))
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let key = key_of(expr, keys)?;
            let lo = comparison(key, Operator::GtEq, literal(low)?)?;
            let hi = comparison(key, Operator::LtEq, literal(high)?)?;
            Some(format!("({lo} and {hi})"))
        }
        _ => None,
    }
}

fn key_of<'a>(expr: &Expr, keys: &'a [Field]) -> Option<&'a Field> {
    match expr {
        Expr::Column(Column { name, .. }) => keys.iter().find(|k| k.name() == name),
        // `CAST(hr AS BIGINT) = 1`: the comparison means the same on the integer key itself.
        Expr::Cast(c) if c.field.data_type().is_integer() => {
            key_of(&c.expr, keys).filter(|k| k.data_type().is_integer())
        }
        _ => None,
    }
}

fn literal(expr: &Expr) -> Option<&ScalarValue> {
    match expr {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

/// `key op value` in the metastore's filter syntax. String keys compare as strings (all
/// comparisons); integer keys only with `=`/`<>` (the metastore may compare their text).
fn comparison(key: &Field, op: Operator, value: &ScalarValue) -> Option<String> {
    let op_text = match op {
        Operator::Eq => "=",
        Operator::NotEq => "<>",
        Operator::Lt => "<",
        Operator::LtEq => "<=",
        Operator::Gt => ">",
        Operator::GtEq => ">=",
        _ => return None,
    };
    let name = key.name();
    match key.data_type() {
        DataType::Utf8 => {
            let s = match value {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)) => s,
                _ => return None,
            };
            if s.contains(['"', '\\']) {
                return None;
            }
            Some(format!("{name} {op_text} \"{s}\""))
        }
        t if t.is_integer() && matches!(op, Operator::Eq | Operator::NotEq) => {
            let n: i64 = match value {
                ScalarValue::Int8(Some(v)) => i64::from(*v),
                ScalarValue::Int16(Some(v)) => i64::from(*v),
                ScalarValue::Int32(Some(v)) => i64::from(*v),
                ScalarValue::Int64(Some(v)) => *v,
                _ => return None,
            };
            Some(format!("{name} {op_text} {n}"))
        }
        _ => None,
    }
}

/// The partitions among `partitions` whose values satisfy every filter in `filters` (filters on
/// partition keys only).
///
/// # Errors
/// Errors of evaluating the filters.
pub(crate) fn prune(
    state: &dyn Session,
    filters: &[Expr],
    keys: &[Field],
    partitions: Vec<HivePartition>,
) -> Result<Vec<HivePartition>> {
    if filters.is_empty() || partitions.is_empty() {
        return Ok(partitions);
    }
    let schema: SchemaRef = Arc::new(Schema::new(
        keys.iter()
            .map(|k| k.clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let columns = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let texts: StringArray = partitions
                .iter()
                .map(|p| p.values.get(i).filter(|v| *v != DEFAULT_PARTITION).cloned())
                .collect();
            let texts: ArrayRef = Arc::new(texts);
            Ok(datafusion::arrow::compute::cast_with_options(
                &texts,
                k.data_type(),
                &safe(),
            )?)
        })
        .collect::<Result<Vec<_>>>()?;
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
    let mut keep = vec![true; partitions.len()];
    for filter in filters {
        let physical = state.create_physical_expr(filter.clone(), &df_schema)?;
        let result = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
        let result = result.as_boolean_opt().ok_or_else(|| {
            Error::internal(format!("partition filter {filter} is not a predicate"))
        })?;
        for (i, k) in keep.iter_mut().enumerate() {
            *k = *k && result.is_valid(i) && result.value(i);
        }
    }
    Ok(partitions
        .into_iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(p))
        .collect())
}

/// A partition value as typed by its key (`__HIVE_DEFAULT_PARTITION__` and unparsable text are
/// NULL).
pub(crate) fn typed_value(text: &str, data_type: &DataType) -> Result<ScalarValue> {
    if text == DEFAULT_PARTITION {
        return ScalarValue::try_from(data_type).map_err(Error::from);
    }
    let array: ArrayRef = Arc::new(StringArray::from(vec![text]));
    let cast = datafusion::arrow::compute::cast_with_options(&array, data_type, &safe())?;
    Ok(ScalarValue::try_from_array(&cast, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn keys() -> Vec<Field> {
        vec![
            Field::new("dt", DataType::Utf8, true),
            Field::new("hr", DataType::Int32, true),
        ]
    }

    #[test]
    fn translates_comparisons_in_lists_and_conjunctions() {
        let f = vec![
            col("dt").eq(lit("2024-01-01")).and(col("hr").eq(lit(1i32))),
            col("x").gt(lit(3)),
        ];
        assert_eq!(
            metastore_filter(&f, &keys()).as_deref(),
            Some("dt = \"2024-01-01\" and hr = 1")
        );
        let f = vec![col("dt").in_list(vec![lit("a"), lit("b")], false)];
        assert_eq!(
            metastore_filter(&f, &keys()).as_deref(),
            Some("(dt = \"a\" or dt = \"b\")")
        );
        let f = vec![lit("2024-01-02").lt_eq(col("dt"))];
        assert_eq!(
            metastore_filter(&f, &keys()).as_deref(),
            Some("dt >= \"2024-01-02\"")
        );
        // Integer keys: only equality is sent; an OR with an untranslatable side is dropped.
        let f = vec![
            col("hr").gt(lit(0i32)),
            col("dt").eq(lit("a")).or(col("x").eq(lit(1))),
        ];
        assert_eq!(metastore_filter(&f, &keys()), None);
        let f = vec![col("dt").eq(lit("a\"b"))];
        assert_eq!(metastore_filter(&f, &keys()), None);
    }

    #[test]
    fn typed_values_and_default_partition() {
        assert_eq!(
            typed_value("7", &DataType::Int32).unwrap(),
            ScalarValue::Int32(Some(7))
        );
        assert_eq!(
            typed_value(DEFAULT_PARTITION, &DataType::Int32).unwrap(),
            ScalarValue::Int32(None)
        );
        assert!(only_keys(&col("hr").eq(lit(1)), &keys()));
        assert!(!only_keys(&col("hr").eq(col("x")), &keys()));
    }
}
