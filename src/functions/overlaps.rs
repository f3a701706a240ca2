//! Flink's `(start1, end1) OVERLAPS (start2, end2)` predicate, in expression evaluation (both
//! engines). The dialect's parse hook (`sql::dialect`) turns the syntax into
//! `overlaps(start1, end1, start2, end2)`.
//!
//! Each period is two points of the same datetime type (`DATE`, `TIME`, `TIMESTAMP`,
//! `TIMESTAMP_LTZ`), or a point and an interval (the end is the point plus the interval; for
//! `TIME` it wraps around midnight, as Flink's time arithmetic does). A period whose end is
//! before its start is turned around. The result is TRUE when the closed periods share a point
//! (`end1 >= start2 AND end2 >= start1`, so periods that only touch overlap, as in Flink), and
//! NULL when any operand is NULL.

use std::cmp::Ordering;

use datafusion::arrow::array::{ArrayRef, BooleanArray, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::numeric::add;
use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::rowwise::sql_name;

/// `overlaps(start1, end1, start2, end2)`: see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Overlaps {
    signature: Signature,
}

impl Overlaps {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Overlaps {
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

fn is_point(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Timestamp(_, _)
            | DataType::Null
    )
}

fn is_interval(t: &DataType) -> bool {
    matches!(t, DataType::Interval(_) | DataType::Duration(_))
}

impl ScalarUDFImpl for Overlaps {
    fn name(&self) -> &str {
        "overlaps"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.len() != 4 {
            return plan_err!(
                "OVERLAPS compares two periods (start, end), got {} operands",
                arg_types.len()
            );
        }
        // The points' common type; intervals stay as they are.
        let mut common = DataType::Null;
        for (i, t) in arg_types.iter().enumerate() {
            if i % 2 == 1 && is_interval(t) {
                continue;
            }
            if !is_point(t) {
                return plan_err!(
                    "OVERLAPS takes DATE, TIME or TIMESTAMP periods (an end may be an interval), got {} as operand {}",
                    sql_name(t),
                    i + 1
                );
            }
            common = match comparison_coercion(&common, t) {
                Some(c) if is_point(&c) => c,
                _ => {
                    return plan_err!(
                        "OVERLAPS: the periods' points have different types ({} and {})",
                        sql_name(&common),
                        sql_name(t)
                    );
                }
            };
        }
        Ok(arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if i % 2 == 1 && is_interval(t) {
                    t.clone()
                } else {
                    common.clone()
                }
            })
            .collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<DfResult<_>>()?;
        let [s1, e1, s2, e2] = arrays.as_slice() else {
            return exec_err!("OVERLAPS takes 4 operands, got {}", arrays.len());
        };
        let point_type = s1.data_type().clone();
        let e1 = end_point(s1, e1, &point_type)?;
        let e2 = end_point(s2, e2, &point_type)?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let row = [
                ScalarValue::try_from_array(s1, i)?,
                ScalarValue::try_from_array(&e1, i)?,
                ScalarValue::try_from_array(s2, i)?,
                ScalarValue::try_from_array(&e2, i)?,
            ];
            if row.iter().any(ScalarValue::is_null) {
                out.push(None);
                continue;
            }
            let [a, b, c, d] = row;
            let (lo1, hi1) = ordered(a, b)?;
            let (lo2, hi2) = ordered(c, d)?;
            out.push(Some(
                cmp(&hi1, &lo2)? != Ordering::Less && cmp(&hi2, &lo1)? != Ordering::Less,
            ));
        }
        let result = BooleanArray::from(out);
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(std::sync::Arc::new(result)))
    }
}

fn cmp(a: &ScalarValue, b: &ScalarValue) -> DfResult<Ordering> {
    match a.partial_cmp(b) {
        Some(o) => Ok(o),
        None => exec_err!(
            "OVERLAPS cannot compare {} with {}",
            sql_name(&a.data_type()),
            sql_name(&b.data_type())
        ),
    }
}

fn ordered(a: ScalarValue, b: ScalarValue) -> DfResult<(ScalarValue, ScalarValue)> {
    Ok(if cmp(&a, &b)? == Ordering::Greater {
        (b, a)
    } else {
        (a, b)
    })
}

/// A period's end as a point: the end itself, or the start plus the interval.
fn end_point(start: &ArrayRef, end: &ArrayRef, point_type: &DataType) -> DfResult<ArrayRef> {
    if !is_interval(end.data_type()) {
        return Ok(cast(end, point_type)?);
    }
    if matches!(point_type, DataType::Null) {
        return Ok(new_null_array(point_type, start.len()));
    }
    if let DataType::Time32(_) | DataType::Time64(_) = point_type {
        return time_plus(start, end, point_type);
    }
    let sum = add(start, end)?;
    Ok(cast(&sum, point_type)?)
}

const DAY_NANOS: i64 = 86_400_000_000_000;

/// `TIME + interval`, wrapping around midnight (only the interval's time part counts).
fn time_plus(start: &ArrayRef, interval: &ArrayRef, point_type: &DataType) -> DfResult<ArrayRef> {
    let start = cast(start, &DataType::Time64(TimeUnit::Nanosecond))?;
    let interval = cast(interval, &DataType::Interval(IntervalUnit::MonthDayNano))?;
    let mut out = Vec::with_capacity(start.len());
    for i in 0..start.len() {
        let (ScalarValue::Time64Nanosecond(Some(t)), ScalarValue::IntervalMonthDayNano(Some(d))) = (
            ScalarValue::try_from_array(&start, i)?,
            ScalarValue::try_from_array(&interval, i)?,
        ) else {
            out.push(ScalarValue::Time64Nanosecond(None));
            continue;
        };
        let sum = (t + d.nanoseconds.rem_euclid(DAY_NANOS)).rem_euclid(DAY_NANOS);
        out.push(ScalarValue::Time64Nanosecond(Some(sum)));
    }
    let array = ScalarValue::iter_to_array(out)?;
    Ok(cast(&array, point_type)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Field, IntervalMonthDayNano};
    use datafusion::config::ConfigOptions;
    use std::sync::Arc;

    fn time(h: i64, m: i64) -> ScalarValue {
        ScalarValue::Time64Nanosecond(Some((h * 3600 + m * 60) * 1_000_000_000))
    }

    fn hours(h: i64) -> ScalarValue {
        ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
            0,
            0,
            h * 3_600_000_000_000,
        )))
    }

    fn call(args: [ScalarValue; 4]) -> Option<bool> {
        let f = Overlaps {
            signature: Signature::user_defined(Volatility::Immutable),
        };
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        let r = f
            .invoke_with_args(ScalarFunctionArgs {
                args: args.into_iter().map(ColumnarValue::Scalar).collect(),
                arg_fields,
                number_rows: 1,
                return_field: Arc::new(Field::new("r", DataType::Boolean, true)),
                config_options: Arc::new(ConfigOptions::default()),
            })
            .unwrap();
        let a = r.to_array(1).unwrap();
        let b = a.as_boolean();
        (!b.is_null(0)).then(|| b.value(0))
    }

    #[test]
    fn periods_overlap_as_in_flink() {
        // Flink's documented examples.
        assert_eq!(
            call([time(2, 55), hours(1), time(3, 30), hours(2)]),
            Some(true)
        );
        assert_eq!(
            call([time(9, 0), time(10, 0), time(10, 15), hours(3)]),
            Some(false)
        );
        // Touching periods overlap; reversed periods are turned around.
        assert_eq!(
            call([time(1, 0), time(2, 0), time(2, 0), time(3, 0)]),
            Some(true)
        );
        assert_eq!(
            call([time(2, 0), time(1, 0), time(3, 0), time(1, 30)]),
            Some(true)
        );
        assert_eq!(
            call([
                time(1, 0),
                ScalarValue::Time64Nanosecond(None),
                time(3, 0),
                time(4, 0)
            ]),
            None
        );
    }
}
