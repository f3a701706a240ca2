//! Flink's conversions between epoch numbers, strings and timestamps that DataFusion lacks,
//! evaluated row by row through `rowwise::RowFn` in expression evaluation (both engines).
//! Strings are read and written in the session time zone (`table.local-time-zone`, UTC when
//! unset) with Java date-time patterns (the letters `DATE_FORMAT` supports, see `flink`).
//! NULL in → NULL out.
//!
//! - `UNIX_TIMESTAMP()` → `BIGINT`: now, in epoch seconds. `UNIX_TIMESTAMP(str [, pattern])`:
//!   `str` (default pattern `yyyy-MM-dd HH:mm:ss`) read as a local date-time, in epoch seconds;
//!   a string that does not parse gives `Long.MIN_VALUE`, as in Flink.
//! - `FROM_UNIXTIME(seconds [, pattern])` → `STRING`: the local date-time of an epoch second.
//! - `TO_TIMESTAMP_LTZ(number [, precision])` → `TIMESTAMP_LTZ(3)`: epoch seconds (precision
//!   0) or milliseconds (3, the default). `TO_TIMESTAMP_LTZ(str [, pattern])`: a local
//!   date-time string; NULL when it does not parse.
//! - `CONVERT_TZ(str, from, to)` → `STRING`: a `yyyy-MM-dd HH:mm:ss` date-time moved from one
//!   zone to another.
//! - `TO_TIMESTAMP(str [, pattern])` → `TIMESTAMP(3)` and `TO_DATE(str [, pattern])` → `DATE`
//!   (over DataFusion's): NULL when the string does not parse; without a pattern a day past
//!   the month's end is clamped for `TO_TIMESTAMP` (Java's smart resolver) but not `TO_DATE`.
//! - `CURRENT_ROW_TIMESTAMP()` → `TIMESTAMP_LTZ(3)`: the wall clock, read for every row.
//! - `LOCALTIMESTAMP` → `TIMESTAMP(3)` and `LOCALTIME` → `TIME(0)` (stored as Weir stores a
//!   `TIME(0)` column, whole seconds in Arrow's millisecond time): the statement's start time
//!   (as `CURRENT_TIMESTAMP`) as a local date-time / time of day in the session time zone,
//!   folded to a literal when the statement is planned (DataFusion's simplifier, as `NOW()`).
//!   sqlparser reads the bare keywords as calls without arguments.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::ScalarUDF;

use super::flink::{Token, compile_pattern, format_datetime, parse_timestamp_str};
use super::rowwise::{
    Ctx, RowFn, all_strings, int_arg, int_of, is_string, need_int, need_str, sql_name, string,
    string_arg,
};
use super::strings::ret_string;

const DEFAULT_PATTERN: &str = "yyyy-MM-dd HH:mm:ss";

/// The functions of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        RowFn::new(
            "unix_timestamp",
            &[0, 1, 2],
            all_strings,
            ret_bigint,
            unix_timestamp,
        )
        .volatile()
        .udf(),
        RowFn::new(
            "from_unixtime",
            &[1, 2],
            from_unixtime_coerce,
            ret_string,
            from_unixtime,
        )
        .udf(),
        RowFn::new(
            "to_timestamp_ltz",
            &[1, 2],
            ltz_coerce,
            ret_ltz,
            to_timestamp_ltz,
        )
        .udf(),
        RowFn::new("convert_tz", &[3], all_strings, ret_string, convert_tz).udf(),
        RowFn::new(
            "to_timestamp",
            &[1, 2],
            all_strings,
            ret_timestamp3,
            to_timestamp,
        )
        .udf(),
        RowFn::new("to_date", &[1, 2], all_strings, ret_date, to_date).udf(),
        RowFn::new(
            "current_row_timestamp",
            &[0],
            all_strings,
            ret_ltz,
            |_, _| {
                let now = chrono::Utc::now().timestamp_millis();
                Ok(ScalarValue::TimestampMillisecond(
                    Some(now),
                    Some("UTC".into()),
                ))
            },
        )
        .volatile()
        .udf(),
    ]
}

fn ret_bigint(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Int64)
}

fn ret_ltz(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Timestamp(
        TimeUnit::Millisecond,
        Some("UTC".into()),
    ))
}

fn ret_timestamp3(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
}

fn ret_date(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Date32)
}

/// Java's `ResolverStyle.SMART`: a day past the month's end (up to 31) becomes its last day.
fn clamp_day(s: &str) -> Option<NaiveDateTime> {
    let (y, rest) = s.split_once('-')?;
    let (m, rest) = rest.split_once('-')?;
    let day_len = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (d, tail) = rest.split_at(day_len);
    let (y, m, d): (i32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(29..=31).contains(&d) {
        return None;
    }
    let first_next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)?
    };
    let last = first_next.pred_opt()?;
    parse_timestamp_str(&format!("{}{tail}", last.format("%Y-%m-%d")))
}

/// `TO_TIMESTAMP(str [, pattern])` → `TIMESTAMP(3)`; NULL when it does not parse.
fn to_timestamp(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("TO_TIMESTAMP", args, 0)?;
    let t = if args.len() > 1 {
        parse_local(s, need_str("TO_TIMESTAMP", args, 1)?, "TO_TIMESTAMP")?
    } else {
        parse_timestamp_str(s).or_else(|| clamp_day(s.trim()))
    };
    Ok(ScalarValue::TimestampMillisecond(
        t.map(|t| t.and_utc().timestamp_millis()),
        None,
    ))
}

/// `TO_DATE(str [, pattern])` → `DATE`; NULL when it does not parse (strictly).
fn to_date(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("TO_DATE", args, 0)?;
    let date = if args.len() > 1 {
        parse_local(s, need_str("TO_DATE", args, 1)?, "TO_DATE")?.map(|t| t.date())
    } else {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    Ok(ScalarValue::Date32(date.and_then(|d| {
        i32::try_from(d.signed_duration_since(epoch).num_days()).ok()
    })))
}

fn zone(ctx: &Ctx) -> DfResult<Tz> {
    let name = ctx.zone.unwrap_or("UTC");
    parse_zone(name)
}

fn parse_zone(name: &str) -> DfResult<Tz> {
    name.parse::<Tz>().map_err(|e| {
        datafusion::error::DataFusionError::Execution(format!("unknown time zone '{name}': {e}"))
    })
}

/// A Java date-time pattern as a chrono parsing format; `None` for letters chrono cannot parse.
fn chrono_format(tokens: &[Token]) -> Option<String> {
    let mut f = String::new();
    for t in tokens {
        match t {
            Token::Literal(s) => f.push_str(&s.replace('%', "%%")),
            Token::Field(c, n) => f.push_str(match (c, n) {
                ('y', 2) => "%y",
                ('y', _) => "%Y",
                ('M', 1 | 2) => "%m",
                ('M', 3) => "%b",
                ('M', _) => "%B",
                ('d', _) => "%d",
                ('D', _) => "%j",
                ('H', _) => "%H",
                ('h', _) => "%I",
                ('m', _) => "%M",
                ('s', _) => "%S",
                ('S', 3) => "%3f",
                ('S', 6) => "%6f",
                ('S', 9) => "%9f",
                ('a', _) => "%p",
                ('E', _) => "%a",
                _ => return None,
            }),
        }
    }
    Some(f)
}

/// Reads a local date-time with a Java pattern; dates without a time are midnight.
fn parse_local(s: &str, pattern: &str, func: &str) -> DfResult<Option<NaiveDateTime>> {
    let tokens = compile_pattern(pattern)?;
    let Some(format) = chrono_format(&tokens) else {
        return exec_err!("{func}: pattern '{pattern}' cannot be used for parsing");
    };
    if let Ok(t) = NaiveDateTime::parse_from_str(s, &format) {
        return Ok(Some(t));
    }
    Ok(NaiveDate::parse_from_str(s, &format)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0)))
}

/// The instant of a local date-time in `tz` (the earlier one when a DST overlap makes it
/// ambiguous, the one after the gap when it falls in a gap).
fn instant(t: &NaiveDateTime, tz: &Tz) -> Option<DateTime<Tz>> {
    match tz.from_local_datetime(t) {
        chrono::LocalResult::Single(x) => Some(x),
        chrono::LocalResult::Ambiguous(a, _) => Some(a),
        chrono::LocalResult::None => {
            let later = *t + chrono::Duration::hours(1);
            tz.from_local_datetime(&later).earliest()
        }
    }
}

fn unix_timestamp(args: &[ScalarValue], ctx: &Ctx) -> DfResult<ScalarValue> {
    if args.is_empty() {
        return Ok(ScalarValue::Int64(Some(chrono::Utc::now().timestamp())));
    }
    let s = need_str("UNIX_TIMESTAMP", args, 0)?;
    let pattern = if args.len() > 1 {
        need_str("UNIX_TIMESTAMP", args, 1)?
    } else {
        DEFAULT_PATTERN
    };
    let tz = zone(ctx)?;
    let seconds = parse_local(s, pattern, "UNIX_TIMESTAMP")?
        .and_then(|t| instant(&t, &tz))
        .map_or(i64::MIN, |t| t.timestamp());
    Ok(ScalarValue::Int64(Some(seconds)))
}

fn from_unixtime_coerce(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    if i == 0 {
        int_arg(func, t)
    } else {
        string_arg(func, t)
    }
}

fn format_local(t: &NaiveDateTime, pattern: &str) -> DfResult<String> {
    let tokens = compile_pattern(pattern)?;
    let mut out = String::new();
    format_datetime(t, &tokens, &mut out);
    Ok(out)
}

fn from_unixtime(args: &[ScalarValue], ctx: &Ctx) -> DfResult<ScalarValue> {
    let seconds = need_int("FROM_UNIXTIME", args, 0)?;
    let pattern = if args.len() > 1 {
        need_str("FROM_UNIXTIME", args, 1)?
    } else {
        DEFAULT_PATTERN
    };
    let Some(utc) = DateTime::from_timestamp(seconds, 0) else {
        return exec_err!("FROM_UNIXTIME: {seconds} is out of range");
    };
    let local = utc.with_timezone(&zone(ctx)?).naive_local();
    Ok(string(format_local(&local, pattern)?))
}

fn ltz_coerce(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    match (i, t) {
        (0, t) if t.is_integer() => Ok(DataType::Int64),
        (0, DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _)) => {
            Ok(DataType::Float64)
        }
        (_, t) if is_string(t) => Ok(DataType::Utf8),
        (1, t) if t.is_integer() => Ok(DataType::Int64),
        (_, DataType::Null) => Ok(if i == 0 {
            DataType::Int64
        } else {
            DataType::Utf8
        }),
        (_, t) => plan_err!(
            "{func} expects a number and a precision, or a string and a pattern; got {}",
            sql_name(t)
        ),
    }
}

fn to_timestamp_ltz(args: &[ScalarValue], ctx: &Ctx) -> DfResult<ScalarValue> {
    let ltz = |ms: Option<i64>| ScalarValue::TimestampMillisecond(ms, Some("UTC".into()));
    if let Some(s) = super::rowwise::str_of(&args[0]) {
        let pattern = match args.get(1) {
            Some(p) => match super::rowwise::str_of(p) {
                Some(p) => Some(p),
                None => return exec_err!("TO_TIMESTAMP_LTZ(string, ...) takes a STRING pattern"),
            },
            None => None,
        };
        let local = match pattern {
            Some(p) => parse_local(s, p, "TO_TIMESTAMP_LTZ")?,
            None => parse_timestamp_str(s),
        };
        let tz = zone(ctx)?;
        return Ok(ltz(local
            .and_then(|t| instant(&t, &tz))
            .map(|t| t.timestamp_millis())));
    }
    let precision = match args.get(1) {
        Some(p) => match int_of(p) {
            Some(p) => p,
            None => return exec_err!("TO_TIMESTAMP_LTZ(number, precision) takes an INT precision"),
        },
        None => 3,
    };
    let scale: i64 = match precision {
        0 => 1_000,
        3 => 1,
        other => {
            return exec_err!("TO_TIMESTAMP_LTZ: precision must be 0 or 3, got {other}");
        }
    };
    let ms = match &args[0] {
        ScalarValue::Float64(Some(f)) => {
            let v = f * scale as f64;
            if !v.is_finite() || v.abs() > 9.2e18 {
                return Ok(ltz(None));
            }
            v as i64
        }
        other => match int_of(other).and_then(|v| v.checked_mul(scale)) {
            Some(v) => v,
            None => return Ok(ltz(None)),
        },
    };
    Ok(ltz(Some(ms)))
}

fn convert_tz(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("CONVERT_TZ", args, 0)?;
    let from = parse_zone(need_str("CONVERT_TZ", args, 1)?)?;
    let to = parse_zone(need_str("CONVERT_TZ", args, 2)?)?;
    let Some(local) = parse_timestamp_str(s) else {
        return exec_err!("CONVERT_TZ: '{s}' is not a date-time 'yyyy-MM-dd HH:mm:ss'");
    };
    let Some(t) = instant(&local, &from) else {
        return Ok(ScalarValue::Utf8(None));
    };
    let moved = t.with_timezone(&to).naive_local();
    Ok(string(format_local(&moved, DEFAULT_PATTERN)?))
}

// ---- LOCALTIME / LOCALTIMESTAMP

/// `LOCALTIME` (`time_only`) or `LOCALTIMESTAMP`; see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LocalNow {
    time_only: bool,
    signature: datafusion::logical_expr::Signature,
}

impl LocalNow {
    pub fn udfs() -> Vec<ScalarUDF> {
        [true, false]
            .into_iter()
            .map(|time_only| {
                ScalarUDF::new_from_impl(LocalNow {
                    time_only,
                    signature: datafusion::logical_expr::Signature::nullary(
                        datafusion::logical_expr::Volatility::Stable,
                    ),
                })
            })
            .collect()
    }

    /// The value at `now` in the zone named `zone` (UTC when unset).
    fn value(&self, now: DateTime<chrono::Utc>, zone: Option<&str>) -> DfResult<ScalarValue> {
        let tz = parse_zone(zone.unwrap_or("UTC"))?;
        let local = tz.from_utc_datetime(&now.naive_utc()).naive_local();
        Ok(if self.time_only {
            let seconds = chrono::Timelike::num_seconds_from_midnight(&local);
            ScalarValue::Time32Millisecond(i32::try_from(seconds).ok().map(|s| s * 1000))
        } else {
            ScalarValue::TimestampMillisecond(Some(local.and_utc().timestamp_millis()), None)
        })
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for LocalNow {
    fn name(&self) -> &str {
        if self.time_only {
            "localtime"
        } else {
            "localtimestamp"
        }
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(if self.time_only {
            DataType::Time32(TimeUnit::Millisecond)
        } else {
            DataType::Timestamp(TimeUnit::Millisecond, None)
        })
    }

    fn return_field_from_args(
        &self,
        _args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DfResult<datafusion::arrow::datatypes::FieldRef> {
        Ok(std::sync::Arc::new(
            datafusion::arrow::datatypes::Field::new(self.name(), self.return_type(&[])?, false),
        ))
    }

    fn simplify(
        &self,
        args: Vec<datafusion::logical_expr::Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> DfResult<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        use datafusion::logical_expr::simplify::ExprSimplifyResult;
        let Some(now) = info.query_execution_start_time() else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        let zone = info.config_options().execution.time_zone.clone();
        Ok(ExprSimplifyResult::Simplified(
            datafusion::logical_expr::Expr::Literal(self.value(now, zone.as_deref())?, None),
        ))
    }

    fn invoke_with_args(
        &self,
        _args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> DfResult<datafusion::logical_expr::ColumnarValue> {
        // As DataFusion's `now()`: an error here makes the planner's constant folding leave the
        // call to `simplify`, which folds it to the statement's start time.
        datafusion::common::internal_err!(
            "{} is folded to the statement's start time when planned, not evaluated per row",
            self.name().to_uppercase()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_now_in_the_session_zone() {
        let now = chrono::Utc
            .with_ymd_and_hms(2024, 1, 2, 23, 30, 15)
            .single()
            .unwrap()
            + chrono::Duration::milliseconds(250);
        let [time, timestamp] = [true, false].map(|time_only| LocalNow {
            time_only,
            signature: datafusion::logical_expr::Signature::nullary(
                datafusion::logical_expr::Volatility::Stable,
            ),
        });
        let shanghai = Some("Asia/Shanghai");
        // 2024-01-03 07:30:15.250 in Shanghai.
        assert_eq!(
            timestamp.value(now, shanghai).unwrap(),
            ScalarValue::TimestampMillisecond(Some(1_704_267_015_250), None)
        );
        assert_eq!(
            time.value(now, shanghai).unwrap(),
            ScalarValue::Time32Millisecond(Some((7 * 3600 + 30 * 60 + 15) * 1000))
        );
        assert_eq!(
            time.value(now, None).unwrap(),
            ScalarValue::Time32Millisecond(Some((23 * 3600 + 30 * 60 + 15) * 1000))
        );
        assert!(time.value(now, Some("Mars/Base")).is_err());
    }

    fn ctx_call(
        f: fn(&[ScalarValue], &Ctx) -> DfResult<ScalarValue>,
        args: &[ScalarValue],
        zone: Option<&str>,
    ) -> ScalarValue {
        let ret = DataType::Null;
        f(args, &Ctx { ret: &ret, zone }).unwrap()
    }

    #[test]
    fn epoch_seconds_in_the_session_zone() {
        let s = |x: &str| string(x);
        assert_eq!(
            ctx_call(unix_timestamp, &[s("2024-01-01 00:00:00")], None),
            ScalarValue::Int64(Some(1_704_067_200))
        );
        assert_eq!(
            ctx_call(
                unix_timestamp,
                &[s("2024-01-01 08:00:00")],
                Some("Asia/Shanghai")
            ),
            ScalarValue::Int64(Some(1_704_067_200))
        );
        assert_eq!(
            ctx_call(unix_timestamp, &[s("bad")], None),
            ScalarValue::Int64(Some(i64::MIN))
        );
        assert_eq!(
            ctx_call(unix_timestamp, &[s("2024-02-29"), s("yyyy-MM-dd")], None),
            ScalarValue::Int64(Some(1_709_164_800))
        );
        assert_eq!(
            ctx_call(
                from_unixtime,
                &[ScalarValue::Int64(Some(0))],
                Some("Asia/Shanghai")
            ),
            s("1970-01-01 08:00:00")
        );
    }

    #[test]
    fn convert_tz_crosses_dst() {
        let s = |x: &str| string(x);
        assert_eq!(
            ctx_call(
                convert_tz,
                &[s("2024-03-10 07:30:00"), s("UTC"), s("America/New_York")],
                None
            ),
            s("2024-03-10 03:30:00")
        );
    }
}
