//! `TIMESTAMPDIFF` and `TIMESTAMPADD`, Flink's date-time arithmetic by unit, as DataFusion scalar
//! UDFs evaluated in expressions by both engines. The SQL layer turns the unit keyword into a
//! string literal first argument (`TIMESTAMPDIFF(DAY, a, b)` → `timestampdiff('DAY', a, b)`, see
//! `crate::sql::dialect`).
//!
//! Semantics (Flink's, which are Calcite's; NULL in → NULL out):
//! - `TIMESTAMPDIFF(unit, t1, t2)`: `t2 - t1` in whole units, as `INT`. For `SECOND` … `WEEK`
//!   the exact difference divided by the unit, truncated toward zero. For `MONTH`, `QUARTER`
//!   and `YEAR` the whole months from `t1` to `t2` (a month is whole when the same day-of-month
//!   and time is reached, the day clamped to the month's end: Jan 31 → Feb 29 is one month),
//!   then divided by 3 or 12 toward zero; `t2` before `t1` gives the negated count of `t2` to
//!   `t1`. `t1` and `t2` are `TIMESTAMP`, `TIMESTAMP_LTZ` (in the session time zone) or `DATE`.
//!   A difference beyond `INT` is an error.
//! - `TIMESTAMPADD(unit, n, t)`: `t` plus `n` units, same type as `t`; adding months clamps the
//!   day to the month's end (Jan 31 + 1 month = Feb 28/29). On a `DATE`, `DAY` and larger units
//!   give a `DATE`, `SECOND`/`MINUTE`/`HOUR` a `TIMESTAMP(3)`. A result out of range is an
//!   error. On a `TIMESTAMP_LTZ`, months are added on the UTC calendar (not yet the session
//!   zone's).

use std::sync::Arc;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int32Builder, PrimitiveArray, PrimitiveBuilder,
};
use datafusion::arrow::datatypes::{
    ArrowTimestampType, DataType, Date32Type, Field, FieldRef, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::{DataFusionError, ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::flink::{check_arity, coerce_integer, local_datetimes, run, session_zone, split_epoch};

/// A unit of `TIMESTAMPDIFF` / `TIMESTAMPADD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// A fixed length, in nanoseconds.
    Fixed(i64),
    /// A number of calendar months.
    Months(i64),
}

impl Unit {
    fn parse(func: &str, text: &str) -> DfResult<Unit> {
        const NANOS_PER_SECOND: i64 = 1_000_000_000;
        Ok(match text.to_ascii_uppercase().as_str() {
            "SECOND" => Unit::Fixed(NANOS_PER_SECOND),
            "MINUTE" => Unit::Fixed(60 * NANOS_PER_SECOND),
            "HOUR" => Unit::Fixed(3_600 * NANOS_PER_SECOND),
            "DAY" => Unit::Fixed(86_400 * NANOS_PER_SECOND),
            "WEEK" => Unit::Fixed(7 * 86_400 * NANOS_PER_SECOND),
            "MONTH" => Unit::Months(1),
            "QUARTER" => Unit::Months(3),
            "YEAR" => Unit::Months(12),
            other => return plan_err!("{func}: unknown time unit '{other}'"),
        })
    }

    /// The unit from the first argument, which must be a string literal.
    fn of_literal(func: &str, value: Option<&ScalarValue>) -> DfResult<Unit> {
        match value {
            Some(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => {
                Unit::parse(func, s)
            }
            _ => plan_err!("{func}: the first argument must be a time unit such as DAY"),
        }
    }

    /// Does adding this unit to a DATE keep a DATE (a whole number of days)?
    fn keeps_dates(self) -> bool {
        match self {
            Unit::Fixed(nanos) => nanos % (86_400 * 1_000_000_000) == 0,
            Unit::Months(_) => true,
        }
    }
}

/// The unit argument of an invocation (a scalar after planning).
fn unit_argument(func: &str, args: &ScalarFunctionArgs) -> DfResult<Unit> {
    match args.args.first() {
        Some(ColumnarValue::Scalar(v)) => Unit::of_literal(func, Some(v)),
        _ => exec_err!("{func}: the first argument must be a time unit such as DAY"),
    }
}

fn out_of_range(func: &str) -> DataFusionError {
    DataFusionError::Execution(format!("{func}: the result is out of range"))
}

/// `date` plus `months` calendar months, the day clamped to the month's end.
fn add_months(t: NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    let step = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    if months >= 0 {
        t.checked_add_months(step)
    } else {
        t.checked_sub_months(step)
    }
}

/// Whole months from `a` to `b` (see the module documentation).
fn months_between(a: NaiveDateTime, b: NaiveDateTime) -> Option<i64> {
    if b < a {
        return months_between(b, a).map(|m| -m);
    }
    let mut m = (i64::from(b.year()) * 12 + i64::from(b.month0()))
        - (i64::from(a.year()) * 12 + i64::from(a.month0()));
    if add_months(a, m)? > b {
        m -= 1;
    }
    Some(m)
}

fn nanos_of(t: NaiveDateTime) -> i128 {
    let utc = t.and_utc();
    i128::from(utc.timestamp()) * 1_000_000_000 + i128::from(utc.timestamp_subsec_nanos())
}

/// Date-times of a `TIMESTAMP` or `DATE` argument, row by row.
fn datetimes_of(array: &ArrayRef, zone: Option<&str>) -> DfResult<Vec<Option<NaiveDateTime>>> {
    match array.data_type() {
        DataType::Date32 => Ok(array
            .as_primitive::<Date32Type>()
            .iter()
            .map(|d| d.and_then(date_of).and_then(|d| d.and_hms_opt(0, 0, 0)))
            .collect()),
        _ => local_datetimes(array, zone),
    }
}

fn date_of(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(i64::from(days)))
}

fn days_of(date: NaiveDate) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from(date.signed_duration_since(epoch).num_days()).ok()
}

/// Keeps timestamps and dates as they are (a `DATE` is not widened: `TIMESTAMPADD(DAY, 1, d)`
/// stays a `DATE`).
fn coerce_time_point(func: &str, t: &DataType) -> DfResult<DataType> {
    match t {
        DataType::Timestamp(_, _) | DataType::Date32 => Ok(t.clone()),
        DataType::Date64 | DataType::Null => Ok(DataType::Date32),
        other => plan_err!("{func} expects a TIMESTAMP or DATE argument, got {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// TIMESTAMPDIFF
// ---------------------------------------------------------------------------------------------

/// `TIMESTAMPDIFF(unit, t1, t2)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimestampDiff {
    signature: Signature,
}

impl TimestampDiff {
    pub fn new() -> Self {
        TimestampDiff {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for TimestampDiff {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for TimestampDiff {
    fn name(&self) -> &str {
        "timestampdiff"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        check_arity("TIMESTAMPDIFF", arg_types, &[3])?;
        Ok(vec![
            DataType::Utf8,
            coerce_time_point("TIMESTAMPDIFF", &arg_types[1])?,
            coerce_time_point("TIMESTAMPDIFF", &arg_types[2])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        const FUNC: &str = "TIMESTAMPDIFF";
        let unit = unit_argument(FUNC, &args)?;
        let zone = session_zone(&args);
        run(&args.args, |arrays| {
            let [_, from, to] = arrays else {
                return exec_err!("{FUNC} takes 3 arguments");
            };
            let from = datetimes_of(from, zone.as_deref())?;
            let to = datetimes_of(to, zone.as_deref())?;
            let mut out = Int32Builder::with_capacity(from.len());
            for (a, b) in from.iter().zip(&to) {
                let (Some(a), Some(b)) = (a, b) else {
                    out.append_null();
                    continue;
                };
                let diff = match unit {
                    // Integer division truncates toward zero, as Java's.
                    Unit::Fixed(nanos) => (nanos_of(*b) - nanos_of(*a)) / i128::from(nanos),
                    Unit::Months(per) => {
                        i128::from(months_between(*a, *b).ok_or_else(|| out_of_range(FUNC))? / per)
                    }
                };
                out.append_value(i32::try_from(diff).map_err(|_| out_of_range(FUNC))?);
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// TIMESTAMPADD
// ---------------------------------------------------------------------------------------------

/// `TIMESTAMPADD(unit, n, t)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimestampAdd {
    signature: Signature,
}

impl TimestampAdd {
    pub fn new() -> Self {
        TimestampAdd {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for TimestampAdd {
    fn default() -> Self {
        Self::new()
    }
}

/// The result type of `TIMESTAMPADD(unit, n, <t>)`.
fn add_result_type(unit: Unit, t: &DataType) -> DataType {
    match t {
        DataType::Date32 if !unit.keeps_dates() => DataType::Timestamp(TimeUnit::Millisecond, None),
        other => other.clone(),
    }
}

/// Adds `n` units to every timestamp of `points` (of any time unit; its zone is kept).
fn add_to_timestamps(
    func: &str,
    points: &ArrayRef,
    amounts: &PrimitiveArray<Int64Type>,
    unit: Unit,
) -> DfResult<ArrayRef> {
    let DataType::Timestamp(time_unit, zone) = points.data_type() else {
        return exec_err!("{func} expects a TIMESTAMP, got {}", points.data_type());
    };
    let zone = zone.clone();
    Ok(match time_unit {
        TimeUnit::Second => Arc::new(
            add_typed::<TimestampSecondType>(func, points.as_primitive(), amounts, unit)?
                .with_timezone_opt(zone),
        ),
        TimeUnit::Millisecond => Arc::new(
            add_typed::<TimestampMillisecondType>(func, points.as_primitive(), amounts, unit)?
                .with_timezone_opt(zone),
        ),
        TimeUnit::Microsecond => Arc::new(
            add_typed::<TimestampMicrosecondType>(func, points.as_primitive(), amounts, unit)?
                .with_timezone_opt(zone),
        ),
        TimeUnit::Nanosecond => Arc::new(
            add_typed::<TimestampNanosecondType>(func, points.as_primitive(), amounts, unit)?
                .with_timezone_opt(zone),
        ),
    })
}

/// [`add_to_timestamps`] for one time unit `T`.
fn add_typed<T: ArrowTimestampType>(
    func: &str,
    values: &PrimitiveArray<T>,
    amounts: &PrimitiveArray<Int64Type>,
    unit: Unit,
) -> DfResult<PrimitiveArray<T>> {
    let time_unit = T::UNIT;
    let per_second: i64 = match time_unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let mut out = PrimitiveBuilder::<T>::with_capacity(values.len());
    for (v, n) in values.iter().zip(amounts.iter()) {
        let (Some(v), Some(n)) = (v, n) else {
            out.append_null();
            continue;
        };
        let result = match unit {
            Unit::Fixed(nanos) => {
                // Every unit is a whole number of seconds.
                let step = (nanos / 1_000_000_000) * per_second;
                n.checked_mul(step).and_then(|d| v.checked_add(d))
            }
            Unit::Months(per) => {
                let (secs, sub) = split_epoch(v, time_unit);
                DateTime::from_timestamp(secs, sub)
                    .and_then(|t| add_months(t.naive_utc(), n.checked_mul(per)?))
                    .and_then(|t| {
                        let t = t.and_utc();
                        let whole = t.timestamp().checked_mul(per_second)?;
                        let frac =
                            i64::from(t.timestamp_subsec_nanos()) / (1_000_000_000 / per_second);
                        whole.checked_add(frac)
                    })
            }
        };
        out.append_value(result.ok_or_else(|| out_of_range(func))?);
    }
    Ok(out.finish())
}

impl ScalarUDFImpl for TimestampAdd {
    fn name(&self) -> &str {
        "timestampadd"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        check_arity("TIMESTAMPADD", arg_types, &[3])?;
        Ok(vec![
            DataType::Utf8,
            coerce_integer("TIMESTAMPADD", &arg_types[1])?,
            coerce_time_point("TIMESTAMPADD", &arg_types[2])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        // The type depends on the unit: `return_field_from_args` answers.
        exec_err!("TIMESTAMPADD's type depends on its unit")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let unit = Unit::of_literal(
            "TIMESTAMPADD",
            args.scalar_arguments.first().copied().flatten(),
        )?;
        let Some(point) = args.arg_fields.get(2) else {
            return plan_err!("TIMESTAMPADD takes 3 arguments");
        };
        Ok(Arc::new(Field::new(
            self.name(),
            add_result_type(unit, point.data_type()),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        const FUNC: &str = "TIMESTAMPADD";
        let unit = unit_argument(FUNC, &args)?;
        run(&args.args, |arrays| {
            let [_, amounts, points] = arrays else {
                return exec_err!("{FUNC} takes 3 arguments");
            };
            let amounts = amounts.as_primitive::<Int64Type>();
            let result: ArrayRef = match points.data_type().clone() {
                DataType::Date32 if unit.keeps_dates() => {
                    let dates = points.as_primitive::<Date32Type>();
                    let mut out = Vec::with_capacity(dates.len());
                    for (d, n) in dates.iter().zip(amounts.iter()) {
                        let (Some(d), Some(n)) = (d, n) else {
                            out.push(None);
                            continue;
                        };
                        let added = match unit {
                            Unit::Fixed(nanos) => {
                                let days = nanos / (86_400 * 1_000_000_000);
                                n.checked_mul(days)
                                    .and_then(|k| i32::try_from(k).ok())
                                    .and_then(|k| d.checked_add(k))
                            }
                            Unit::Months(per) => date_of(d)
                                .and_then(|date| date.and_hms_opt(0, 0, 0))
                                .and_then(|t| add_months(t, n.checked_mul(per)?))
                                .and_then(|t| days_of(t.date())),
                        };
                        out.push(Some(added.ok_or_else(|| out_of_range(FUNC))?));
                    }
                    Arc::new(Date32Array::from(out))
                }
                DataType::Date32 => {
                    // SECOND/MINUTE/HOUR on a DATE: a TIMESTAMP(3) from midnight.
                    let millis = datafusion::arrow::compute::cast(
                        points,
                        &DataType::Timestamp(TimeUnit::Millisecond, None),
                    )?;
                    add_to_timestamps(FUNC, &millis, amounts, unit)?
                }
                DataType::Timestamp(_, _) => add_to_timestamps(FUNC, points, amounts, unit)?,
                other => return exec_err!("{FUNC} expects a TIMESTAMP or DATE, got {other}"),
            };
            Ok(result)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn whole_months_follow_calcite() {
        let m = |a: &str, b: &str| months_between(at(a), at(b)).unwrap();
        assert_eq!(m("2020-01-31 00:00:00", "2020-02-29 00:00:00"), 1);
        assert_eq!(m("2020-01-15 10:00:00", "2020-02-15 09:59:59"), 0);
        assert_eq!(m("2020-01-15 10:00:00", "2020-02-15 10:00:00"), 1);
        assert_eq!(m("2019-03-01 00:00:00", "2020-02-29 00:00:00"), 11);
        // Backwards: the negated forward count (Feb 29 → Jan 31 is -1, as Calcite).
        assert_eq!(m("2020-02-29 00:00:00", "2020-01-31 00:00:00"), -1);
        assert_eq!(m("2020-05-01 00:00:00", "2020-05-01 00:00:00"), 0);
    }

    #[test]
    fn adding_months_clamps_the_day() {
        assert_eq!(
            add_months(at("2020-01-31 12:00:00"), 1),
            Some(at("2020-02-29 12:00:00"))
        );
        assert_eq!(
            add_months(at("2020-03-31 00:00:00"), -1),
            Some(at("2020-02-29 00:00:00"))
        );
        assert_eq!(add_months(at("2020-03-31 00:00:00"), i64::MAX), None);
    }

    #[test]
    fn units_parse() {
        assert_eq!(
            Unit::parse("F", "day").unwrap(),
            Unit::Fixed(86_400_000_000_000)
        );
        assert_eq!(Unit::parse("F", "QUARTER").unwrap(), Unit::Months(3));
        assert!(Unit::parse("F", "FORTNIGHT").is_err());
        assert!(Unit::Months(12).keeps_dates());
        assert!(!Unit::Fixed(3_600_000_000_000).keeps_dates());
    }
}
