//! Flink built-in scalar functions that DataFusion 55 lacks or spells differently, as DataFusion
//! scalar UDFs. They sit in expression evaluation: `session::config::build_state` registers them
//! in the session's DataFusion state, so batch plans and the streaming operators (which evaluate
//! DataFusion physical expressions) call the same vectorized kernels.
//!
//! Functions and the Flink semantics they follow (every function: NULL in → NULL out):
//! - `MOD(a, b)`: remainder of `a / b`, negative only when `a` is negative (sign of the
//!   dividend). Integer arguments give the wider integer type (`INT`, `BIGINT` → `BIGINT`);
//!   `DECIMAL(p1, s1)`, `DECIMAL(p2, s2)` give `DECIMAL(min(p1 - s1, p2 - s2) + s, s)` with
//!   `s = max(s1, s2)` (an integer counts as `DECIMAL(digits, 0)`); any floating-point argument
//!   gives `DOUBLE`. An integer or decimal `MOD(x, 0)` is an error (Flink raises
//!   `ArithmeticException`); a floating-point one is NaN, as in Java.
//! - `DATE_FORMAT(ts, pattern)`: formats a `TIMESTAMP` / `TIMESTAMP_LTZ` / `DATE` (or a string,
//!   first parsed as a timestamp `yyyy-MM-dd HH:mm:ss[.fff]`; unparseable → NULL) with a Java
//!   date-time pattern. Supported letters: `y` (`yy` = two-digit year), `M` (`MMM` = `Jan`,
//!   `MMMM` = `January`), `d`, `D` (day of year), `H`, `h` (1-12), `k` (1-24), `K` (0-11), `m`,
//!   `s`, `S` (fraction of second: `SSS` = milliseconds, as Flink's `DateTimeFormatter`), `a`
//!   (`AM`/`PM`), `E` (`E`..`EEE` = `Mon`, `EEEE` = `Monday`), quoted literals `'...'` and `''`
//!   for a quote. Numbers are zero-padded to the letter count. Other letters are an error.
//!   Replaces DataFusion's `date_format` (an alias of `to_char` with chrono patterns).
//! - `SPLIT_INDEX(str, sep, index)`: splits `str` by the whole separator `sep` (keeping empty
//!   tokens; an empty `sep` splits at whitespace) and returns the 0-based `index`-th token; NULL
//!   when `index` is negative or out of range, or `str` is empty (commons-lang
//!   `splitByWholeSeparatorPreserveAllTokens`, as Flink).
//! - `REGEXP_EXTRACT(str, regex [, index])`: group `index` (default 0 = the whole match) of the
//!   first match; NULL when nothing matches, the group did not take part in the match, the index
//!   is out of range, or the regex is invalid. Java-only regex features the `regex` crate lacks
//!   (look-around, atomic groups, back-references) are a not-supported error rather than a
//!   silent NULL.
//! - `YEAR`, `QUARTER`, `MONTH`, `WEEK` (ISO week), `DAYOFYEAR`, `DAYOFMONTH`, `DAYOFWEEK`
//!   (1 = Sunday … 7 = Saturday), `HOUR`, `MINUTE`, `SECOND` of a `TIMESTAMP` or `DATE`, as
//!   `BIGINT`.
//!
//! Time zones: a `TIMESTAMP` (no zone) is formatted / split as the wall-clock value it holds; a
//! `TIMESTAMP_LTZ` (an Arrow timestamp with a zone) is shown in the session time zone
//! (`table.local-time-zone`), falling back to the value's own zone.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, Int64Builder, PrimitiveArray, StringBuilder,
};
use datafusion::arrow::compute::kernels::numeric::rem;
use datafusion::arrow::datatypes::{
    ArrowTimestampType, DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

/// All functions of this module, ready to register in a session.
pub fn udfs() -> Vec<ScalarUDF> {
    let mut out = vec![
        ScalarUDF::new_from_impl(Mod::new()),
        ScalarUDF::new_from_impl(DateFormat::new()),
        ScalarUDF::new_from_impl(SplitIndex::new()),
        ScalarUDF::new_from_impl(RegexpExtract::new()),
        ScalarUDF::new_from_impl(super::timestamp_arith::TimestampDiff::new()),
        ScalarUDF::new_from_impl(super::timestamp_arith::TimestampAdd::new()),
    ];
    for part in Part::ALL {
        out.push(ScalarUDF::new_from_impl(DatePart::new(part)));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Runs a kernel over the arguments as arrays; when every argument is a scalar, the result is a
/// scalar too.
pub(super) fn run(
    args: &[ColumnarValue],
    kernel: impl FnOnce(&[ArrayRef]) -> DfResult<ArrayRef>,
) -> DfResult<ColumnarValue> {
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let result = kernel(&arrays)?;
    if all_scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &result, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(result))
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Coerces a string-ish argument to `Utf8`.
fn coerce_string(func: &str, t: &DataType) -> DfResult<DataType> {
    if is_string(t) || t == &DataType::Null {
        Ok(DataType::Utf8)
    } else {
        plan_err!("{func} expects a STRING argument, got {t}")
    }
}

/// Coerces an integer argument to `Int64`.
pub(super) fn coerce_integer(func: &str, t: &DataType) -> DfResult<DataType> {
    if t.is_integer() || t == &DataType::Null {
        Ok(DataType::Int64)
    } else {
        plan_err!("{func} expects an INT argument, got {t}")
    }
}

/// Coerces a temporal argument: timestamps stay as they are, dates become `TIMESTAMP(3)`.
fn coerce_temporal(func: &str, t: &DataType) -> DfResult<DataType> {
    match t {
        DataType::Timestamp(_, _) => Ok(t.clone()),
        DataType::Date32 | DataType::Date64 | DataType::Null => {
            Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
        }
        other => plan_err!("{func} expects a TIMESTAMP or DATE argument, got {other}"),
    }
}

pub(super) fn check_arity(func: &str, arg_types: &[DataType], allowed: &[usize]) -> DfResult<()> {
    if allowed.contains(&arg_types.len()) {
        Ok(())
    } else {
        let counts: Vec<String> = allowed.iter().map(|n| n.to_string()).collect();
        plan_err!(
            "{func} takes {} arguments, got {}",
            counts.join(" or "),
            arg_types.len()
        )
    }
}

/// The zone a `TIMESTAMP_LTZ` value is shown in: the session's, else the value's own.
fn display_zone(value_zone: &str, session_zone: Option<&str>) -> DfResult<Tz> {
    let name = session_zone.unwrap_or(value_zone);
    name.parse::<Tz>()
        .map_err(|e| DataFusionError::Execution(format!("bad time zone '{name}': {e}")))
}

/// Splits a timestamp value in `unit` into seconds and nanoseconds since the epoch.
pub(super) fn split_epoch(value: i64, unit: TimeUnit) -> (i64, u32) {
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let secs = value.div_euclid(per_second);
    let sub = value.rem_euclid(per_second);
    let nanos = sub * (1_000_000_000 / per_second);
    // `nanos` is in 0..1e9, so it fits.
    (secs, u32::try_from(nanos).unwrap_or(0))
}

fn typed_timestamps<T: ArrowTimestampType>(
    array: &ArrayRef,
    unit: TimeUnit,
    zone: Option<&Tz>,
) -> DfResult<Vec<Option<NaiveDateTime>>> {
    let values: &PrimitiveArray<T> = array.as_primitive::<T>();
    values
        .iter()
        .map(|v| {
            let Some(v) = v else { return Ok(None) };
            let (secs, nanos) = split_epoch(v, unit);
            let Some(utc) = DateTime::from_timestamp(secs, nanos) else {
                return exec_err!("timestamp {v} is out of range");
            };
            let utc = utc.naive_utc();
            let local = match zone {
                None => utc,
                Some(tz) => {
                    let offset = tz.offset_from_utc_datetime(&utc).fix();
                    utc.checked_add_signed(chrono::Duration::seconds(i64::from(
                        offset.local_minus_utc(),
                    )))
                    .ok_or_else(|| {
                        DataFusionError::Execution(format!("timestamp {v} is out of range"))
                    })?
                }
            };
            Ok(Some(local))
        })
        .collect()
}

/// The wall-clock date-times of a timestamp array (of any unit), row by row.
pub(super) fn local_datetimes(
    array: &ArrayRef,
    session_zone: Option<&str>,
) -> DfResult<Vec<Option<NaiveDateTime>>> {
    let (unit, zone) = match array.data_type() {
        DataType::Timestamp(unit, zone) => (*unit, zone.clone()),
        DataType::Null => return Ok(vec![None; array.len()]),
        other => return exec_err!("expected a TIMESTAMP, got {other}"),
    };
    let zone = match zone {
        Some(z) => Some(display_zone(&z, session_zone)?),
        None => None,
    };
    let zone = zone.as_ref();
    match unit {
        TimeUnit::Second => typed_timestamps::<TimestampSecondType>(array, unit, zone),
        TimeUnit::Millisecond => typed_timestamps::<TimestampMillisecondType>(array, unit, zone),
        TimeUnit::Microsecond => typed_timestamps::<TimestampMicrosecondType>(array, unit, zone),
        TimeUnit::Nanosecond => typed_timestamps::<TimestampNanosecondType>(array, unit, zone),
    }
}

pub(super) fn session_zone(args: &ScalarFunctionArgs) -> Option<String> {
    args.config_options.execution.time_zone.clone()
}

// ---------------------------------------------------------------------------------------------
// MOD
// ---------------------------------------------------------------------------------------------

/// `MOD(a, b)`: see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Mod {
    signature: Signature,
}

impl Mod {
    pub fn new() -> Self {
        Mod {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for Mod {
    fn default() -> Self {
        Self::new()
    }
}

/// Decimal digits needed for an integer type, as Flink counts them (`INT` = `DECIMAL(10, 0)`).
fn integer_digits(t: &DataType) -> u8 {
    match t {
        DataType::Int8 | DataType::UInt8 => 3,
        DataType::Int16 | DataType::UInt16 => 5,
        DataType::Int32 | DataType::UInt32 => 10,
        DataType::UInt64 => 20,
        _ => 19,
    }
}

/// Bits of the signed type that holds every value of an integer type (unsigned 64-bit values
/// are squeezed into `BIGINT`: Flink has no unsigned types).
fn signed_bits(t: &DataType) -> u8 {
    match t {
        DataType::Int8 => 8,
        DataType::Int16 | DataType::UInt8 => 16,
        DataType::Int32 | DataType::UInt16 => 32,
        _ => 64,
    }
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

/// A decimal type as `(is_256, precision, scale)`; integers count as `DECIMAL(digits, 0)`.
fn as_decimal(t: &DataType) -> Option<(bool, u8, i8)> {
    match t {
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            Some((false, *p, *s))
        }
        DataType::Decimal256(p, s) => Some((true, *p, *s)),
        t if t.is_integer() => Some((false, integer_digits(t), 0)),
        _ => None,
    }
}

fn decimal_type(wide: bool, p: u8, s: i8) -> DataType {
    if wide {
        DataType::Decimal256(p.min(76), s)
    } else {
        DataType::Decimal128(p.min(38), s)
    }
}

/// The argument types `MOD` computes in.
fn mod_arg_types(a: &DataType, b: &DataType) -> DfResult<(DataType, DataType)> {
    let (a, b) = match (a, b) {
        (DataType::Null, DataType::Null) => (&DataType::Int32, &DataType::Int32),
        (DataType::Null, b) => (b, b),
        (a, DataType::Null) => (a, a),
        (a, b) => (a, b),
    };
    if a.is_integer() && b.is_integer() {
        let t = match signed_bits(a).max(signed_bits(b)) {
            8 => DataType::Int8,
            16 => DataType::Int16,
            32 => DataType::Int32,
            _ => DataType::Int64,
        };
        return Ok((t.clone(), t));
    }
    if (is_float(a) || a.is_numeric()) && (is_float(b) || b.is_numeric()) {
        if is_float(a) || is_float(b) {
            let both_narrow = !matches!(a, DataType::Float64) && !matches!(b, DataType::Float64);
            let t = if both_narrow && is_float(a) && is_float(b) {
                DataType::Float32
            } else {
                DataType::Float64
            };
            return Ok((t.clone(), t));
        }
        if let (Some((wa, pa, sa)), Some((wb, pb, sb))) = (as_decimal(a), as_decimal(b)) {
            let wide = wa || wb;
            return Ok((decimal_type(wide, pa, sa), decimal_type(wide, pb, sb)));
        }
    }
    plan_err!("MOD expects numeric arguments, got {a} and {b}")
}

/// The type of `MOD`'s result for the (coerced) argument types.
fn mod_return_type(a: &DataType, b: &DataType) -> DfResult<DataType> {
    let (a, b) = mod_arg_types(a, b)?;
    match (&a, &b) {
        (DataType::Decimal128(p1, s1), DataType::Decimal128(p2, s2)) => {
            let (p, s) = decimal_mod_precision(*p1, *s1, *p2, *s2, 38);
            Ok(DataType::Decimal128(p, s))
        }
        (DataType::Decimal256(p1, s1), DataType::Decimal256(p2, s2)) => {
            let (p, s) = decimal_mod_precision(*p1, *s1, *p2, *s2, 76);
            Ok(DataType::Decimal256(p, s))
        }
        _ => Ok(a),
    }
}

/// Flink's (and Arrow's) precision and scale of a decimal remainder.
fn decimal_mod_precision(p1: u8, s1: i8, p2: u8, s2: i8, max: u8) -> (u8, i8) {
    let scale = s1.max(s2);
    let int_digits = (i16::from(p1) - i16::from(s1)).min(i16::from(p2) - i16::from(s2));
    let precision = (i16::from(scale) + int_digits).clamp(1, i16::from(max));
    (u8::try_from(precision).unwrap_or(max), scale)
}

impl ScalarUDFImpl for Mod {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        check_arity("MOD", arg_types, &[2])?;
        let (a, b) = mod_arg_types(&arg_types[0], &arg_types[1])?;
        Ok(vec![a, b])
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        check_arity("MOD", arg_types, &[2])?;
        mod_return_type(&arg_types[0], &arg_types[1])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let expected = args.return_type().clone();
        run(&args.args, |arrays| {
            let [a, b] = arrays else {
                return exec_err!("MOD takes 2 arguments");
            };
            let result = rem(a, b).map_err(|e| match e {
                ArrowError::DivideByZero => DataFusionError::Execution(
                    "MOD: division by zero (the divisor of an integer or decimal MOD is 0)"
                        .to_string(),
                ),
                other => DataFusionError::ArrowError(Box::new(other), None),
            })?;
            if result.data_type() != &expected {
                return exec_err!("MOD computed {} but planned {expected}", result.data_type());
            }
            Ok(result)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// DATE_FORMAT
// ---------------------------------------------------------------------------------------------

/// `DATE_FORMAT(ts, pattern)`: see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateFormat {
    signature: Signature,
}

impl DateFormat {
    pub fn new() -> Self {
        DateFormat {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for DateFormat {
    fn default() -> Self {
        Self::new()
    }
}

/// One piece of a compiled date-time pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    Literal(String),
    /// A pattern letter and how many times it repeats.
    Field(char, usize),
}

const PATTERN_LETTERS: &str = "yMdDHhkKmsSaE";

/// Compiles a Java date-time pattern.
pub(super) fn compile_pattern(pattern: &str) -> DfResult<Vec<Token>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                literal.push('\'');
                i += 2;
                continue;
            }
            // A quoted literal; `''` inside it is a quote.
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return exec_err!("DATE_FORMAT: unterminated quote in pattern '{pattern}'");
                    }
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        literal.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        literal.push(*ch);
                        i += 1;
                    }
                }
            }
        } else if c.is_ascii_alphabetic() {
            if !PATTERN_LETTERS.contains(c) {
                return Err(DataFusionError::NotImplemented(format!(
                    "DATE_FORMAT: pattern letter '{c}' (in '{pattern}') is not supported yet; \
                     supported: {PATTERN_LETTERS} and quoted literals"
                )));
            }
            let mut n = 1;
            while chars.get(i + n) == Some(&c) {
                n += 1;
            }
            if !literal.is_empty() {
                tokens.push(Token::Literal(std::mem::take(&mut literal)));
            }
            tokens.push(Token::Field(c, n));
            i += n;
        } else {
            literal.push(c);
            i += 1;
        }
    }
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal));
    }
    Ok(tokens)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn push_number(out: &mut String, value: i64, width: usize) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{value:0width$}");
}

fn push_text(out: &mut String, full: &str, count: usize) {
    if count >= 4 {
        out.push_str(full);
    } else {
        out.extend(full.chars().take(3));
    }
}

/// Formats one date-time with a compiled pattern.
pub(super) fn format_datetime(t: &NaiveDateTime, tokens: &[Token], out: &mut String) {
    for token in tokens {
        match token {
            Token::Literal(s) => out.push_str(s),
            Token::Field(c, n) => {
                let n = *n;
                match c {
                    'y' if n == 2 => push_number(out, i64::from(t.year().rem_euclid(100)), 2),
                    'y' => push_number(out, i64::from(t.year()), n),
                    'M' if n >= 3 => push_text(out, MONTHS[t.month0() as usize], n),
                    'M' => push_number(out, i64::from(t.month()), n),
                    'd' => push_number(out, i64::from(t.day()), n),
                    'D' => push_number(out, i64::from(t.ordinal()), n),
                    'H' => push_number(out, i64::from(t.hour()), n),
                    'h' => push_number(out, i64::from(t.hour12().1), n),
                    'k' => {
                        let h = if t.hour() == 0 { 24 } else { t.hour() };
                        push_number(out, i64::from(h), n)
                    }
                    'K' => push_number(out, i64::from(t.hour() % 12), n),
                    'm' => push_number(out, i64::from(t.minute()), n),
                    's' => push_number(out, i64::from(t.second()), n),
                    'S' => {
                        // Fraction of second: the first n digits of the nanoseconds.
                        let digits = format!("{:09}", t.nanosecond() % 1_000_000_000);
                        out.extend(digits.chars().take(n));
                        for _ in 9..n {
                            out.push('0');
                        }
                    }
                    'a' => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
                    'E' => push_text(
                        out,
                        WEEKDAYS[t.weekday().num_days_from_monday() as usize],
                        n,
                    ),
                    // compile_pattern only lets the letters above through.
                    _ => {}
                }
            }
        }
    }
}

/// Parses a string as a timestamp the way Flink's `DATE_FORMAT(string, ...)` does:
/// `yyyy-MM-dd HH:mm:ss[.fff]` (a `T` separator, minutes-only times and plain dates accepted).
pub(super) fn parse_timestamp_str(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// Keeps the last compiled pattern, so a constant pattern compiles once per batch.
#[derive(Default)]
struct PatternCache {
    last: Option<(String, Vec<Token>)>,
}

impl PatternCache {
    fn get(&mut self, pattern: &str) -> DfResult<&[Token]> {
        let stale = self.last.as_ref().is_none_or(|(p, _)| p != pattern);
        if stale {
            self.last = Some((pattern.to_string(), compile_pattern(pattern)?));
        }
        match &self.last {
            Some((_, tokens)) => Ok(tokens),
            None => exec_err!("DATE_FORMAT: pattern cache is empty"),
        }
    }
}

fn date_format_kernel(
    values: &ArrayRef,
    patterns: &ArrayRef,
    session_zone: Option<&str>,
) -> DfResult<ArrayRef> {
    let datetimes = if is_string(values.data_type()) {
        let strings = datafusion::arrow::compute::cast(values, &DataType::Utf8)?;
        strings
            .as_string::<i32>()
            .iter()
            .map(|s| s.and_then(parse_timestamp_str))
            .collect()
    } else {
        local_datetimes(values, session_zone)?
    };
    let patterns = datafusion::arrow::compute::cast(patterns, &DataType::Utf8)?;
    let patterns = patterns.as_string::<i32>();
    let mut cache = PatternCache::default();
    let mut builder = StringBuilder::with_capacity(datetimes.len(), datetimes.len() * 16);
    let mut buf = String::new();
    for (t, pattern) in datetimes.iter().zip(patterns.iter()) {
        match (t, pattern) {
            (Some(t), Some(pattern)) => {
                buf.clear();
                format_datetime(t, cache.get(pattern)?, &mut buf);
                builder.append_value(&buf);
            }
            _ => builder.append_null(),
        }
    }
    Ok(Arc::new(builder.finish()))
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        check_arity("DATE_FORMAT", arg_types, &[2])?;
        let value = if is_string(&arg_types[0]) {
            DataType::Utf8
        } else {
            coerce_temporal("DATE_FORMAT", &arg_types[0])?
        };
        Ok(vec![value, coerce_string("DATE_FORMAT", &arg_types[1])?])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let zone = session_zone(&args);
        run(&args.args, |arrays| {
            let [values, patterns] = arrays else {
                return exec_err!("DATE_FORMAT takes 2 arguments");
            };
            date_format_kernel(values, patterns, zone.as_deref())
        })
    }
}

// ---------------------------------------------------------------------------------------------
// SPLIT_INDEX
// ---------------------------------------------------------------------------------------------

/// `SPLIT_INDEX(str, sep, index)`: see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SplitIndex {
    signature: Signature,
}

impl SplitIndex {
    pub fn new() -> Self {
        SplitIndex {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for SplitIndex {
    fn default() -> Self {
        Self::new()
    }
}

/// The `index`-th token of `s` split by `sep` (Flink's `SPLIT_INDEX` on non-null arguments).
fn split_index<'a>(s: &'a str, sep: &str, index: i64) -> Option<&'a str> {
    let index = usize::try_from(index).ok()?;
    if s.is_empty() {
        return None;
    }
    if sep.is_empty() {
        s.split(char::is_whitespace).nth(index)
    } else {
        s.split(sep).nth(index)
    }
}

impl ScalarUDFImpl for SplitIndex {
    fn name(&self) -> &str {
        "split_index"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        check_arity("SPLIT_INDEX", arg_types, &[3])?;
        Ok(vec![
            coerce_string("SPLIT_INDEX", &arg_types[0])?,
            coerce_string("SPLIT_INDEX", &arg_types[1])?,
            coerce_integer("SPLIT_INDEX", &arg_types[2])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        run(&args.args, |arrays| {
            let [strings, seps, indexes] = arrays else {
                return exec_err!("SPLIT_INDEX takes 3 arguments");
            };
            let strings = datafusion::arrow::compute::cast(strings, &DataType::Utf8)?;
            let seps = datafusion::arrow::compute::cast(seps, &DataType::Utf8)?;
            let indexes = datafusion::arrow::compute::cast(indexes, &DataType::Int64)?;
            let strings = strings.as_string::<i32>();
            let seps = seps.as_string::<i32>();
            let indexes: &Int64Array = indexes.as_primitive();
            let mut builder = StringBuilder::with_capacity(strings.len(), 0);
            for ((s, sep), index) in strings.iter().zip(seps.iter()).zip(indexes.iter()) {
                match (s, sep, index) {
                    (Some(s), Some(sep), Some(index)) => {
                        builder.append_option(split_index(s, sep, index))
                    }
                    _ => builder.append_null(),
                }
            }
            Ok(Arc::new(builder.finish()) as ArrayRef)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// REGEXP_EXTRACT
// ---------------------------------------------------------------------------------------------

/// `REGEXP_EXTRACT(str, regex [, index])`: see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RegexpExtract {
    signature: Signature,
}

impl RegexpExtract {
    pub fn new() -> Self {
        RegexpExtract {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for RegexpExtract {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a regex that failed to compile uses Java features the `regex` crate lacks (so it is
/// probably valid in Flink, and NULL would be a wrong answer).
fn uses_java_only_features(pattern: &str) -> bool {
    let lookaround = ["(?=", "(?!", "(?<=", "(?<!", "(?>"]
        .iter()
        .any(|p| pattern.contains(p));
    let chars: Vec<char> = pattern.chars().collect();
    let backreference = chars
        .windows(2)
        .any(|w| w[0] == '\\' && w[1].is_ascii_digit() && w[1] != '0');
    lookaround || backreference
}

/// Compiles a regex; `None` for an invalid one (Flink returns NULL for those).
fn compile_regex(pattern: &str) -> DfResult<Option<Regex>> {
    match Regex::new(pattern) {
        Ok(re) => Ok(Some(re)),
        Err(_) if uses_java_only_features(pattern) => {
            Err(DataFusionError::NotImplemented(format!(
                "REGEXP_EXTRACT: the regex '{pattern}' uses look-around, atomic groups or \
                 back-references, which are not supported yet"
            )))
        }
        Err(_) => Ok(None),
    }
}

/// Keeps the last compiled regex, so a constant regex compiles once per batch.
#[derive(Default)]
struct RegexCache {
    last: Option<(String, Option<Regex>)>,
}

impl RegexCache {
    fn get(&mut self, pattern: &str) -> DfResult<Option<&Regex>> {
        let stale = self.last.as_ref().is_none_or(|(p, _)| p != pattern);
        if stale {
            self.last = Some((pattern.to_string(), compile_regex(pattern)?));
        }
        Ok(self.last.as_ref().and_then(|(_, re)| re.as_ref()))
    }
}

/// Group `index` of the first match of `re` in `s`.
fn regexp_extract<'a>(re: &Regex, s: &'a str, index: i64) -> Option<&'a str> {
    let index = usize::try_from(index).ok()?;
    if index >= re.captures_len() {
        return None;
    }
    re.captures(s)?.get(index).map(|m| m.as_str())
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        check_arity("REGEXP_EXTRACT", arg_types, &[2, 3])?;
        let mut out = vec![
            coerce_string("REGEXP_EXTRACT", &arg_types[0])?,
            coerce_string("REGEXP_EXTRACT", &arg_types[1])?,
        ];
        if let Some(t) = arg_types.get(2) {
            out.push(coerce_integer("REGEXP_EXTRACT", t)?);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        run(&args.args, |arrays| {
            let (strings, regexes) = match arrays {
                [s, r] | [s, r, _] => (s, r),
                _ => return exec_err!("REGEXP_EXTRACT takes 2 or 3 arguments"),
            };
            let strings = datafusion::arrow::compute::cast(strings, &DataType::Utf8)?;
            let regexes = datafusion::arrow::compute::cast(regexes, &DataType::Utf8)?;
            let indexes = match arrays.get(2) {
                Some(i) => datafusion::arrow::compute::cast(i, &DataType::Int64)?,
                None => Arc::new(Int64Array::from(vec![0; strings.len()])) as ArrayRef,
            };
            let strings = strings.as_string::<i32>();
            let regexes = regexes.as_string::<i32>();
            let indexes: &Int64Array = indexes.as_primitive();
            let mut cache = RegexCache::default();
            let mut builder = StringBuilder::with_capacity(strings.len(), 0);
            for ((s, regex), index) in strings.iter().zip(regexes.iter()).zip(indexes.iter()) {
                match (s, regex, index) {
                    (Some(s), Some(regex), Some(index)) => match cache.get(regex)? {
                        Some(re) => builder.append_option(regexp_extract(re, s, index)),
                        None => builder.append_null(),
                    },
                    _ => builder.append_null(),
                }
            }
            Ok(Arc::new(builder.finish()) as ArrayRef)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// YEAR, QUARTER, MONTH, WEEK, DAYOFYEAR, DAYOFMONTH, DAYOFWEEK, HOUR, MINUTE, SECOND
// ---------------------------------------------------------------------------------------------

/// A field of a date-time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Year,
    Quarter,
    Month,
    Week,
    DayOfYear,
    DayOfMonth,
    DayOfWeek,
    Hour,
    Minute,
    Second,
}

impl Part {
    pub const ALL: [Part; 10] = [
        Part::Year,
        Part::Quarter,
        Part::Month,
        Part::Week,
        Part::DayOfYear,
        Part::DayOfMonth,
        Part::DayOfWeek,
        Part::Hour,
        Part::Minute,
        Part::Second,
    ];

    fn name(self) -> &'static str {
        match self {
            Part::Year => "year",
            Part::Quarter => "quarter",
            Part::Month => "month",
            Part::Week => "week",
            Part::DayOfYear => "dayofyear",
            Part::DayOfMonth => "dayofmonth",
            Part::DayOfWeek => "dayofweek",
            Part::Hour => "hour",
            Part::Minute => "minute",
            Part::Second => "second",
        }
    }

    fn of(self, t: &NaiveDateTime) -> i64 {
        let v = match self {
            Part::Year => return i64::from(t.year()),
            Part::Quarter => t.month0() / 3 + 1,
            Part::Month => t.month(),
            Part::Week => t.iso_week().week(),
            Part::DayOfYear => t.ordinal(),
            Part::DayOfMonth => t.day(),
            Part::DayOfWeek => t.weekday().num_days_from_sunday() + 1,
            Part::Hour => t.hour(),
            Part::Minute => t.minute(),
            Part::Second => t.second(),
        };
        i64::from(v)
    }
}

/// `YEAR(ts)`, `HOUR(ts)`, ...: one field of a timestamp or date, as `BIGINT`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DatePart {
    part: Part,
    signature: Signature,
}

impl DatePart {
    pub fn new(part: Part) -> Self {
        DatePart {
            part,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DatePart {
    fn name(&self) -> &str {
        self.part.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let name = self.part.name().to_uppercase();
        check_arity(&name, arg_types, &[1])?;
        Ok(vec![coerce_temporal(&name, &arg_types[0])?])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let zone = session_zone(&args);
        let part = self.part;
        run(&args.args, |arrays| {
            let [values] = arrays else {
                return exec_err!("{} takes 1 argument", part.name().to_uppercase());
            };
            let datetimes = local_datetimes(values, zone.as_deref())?;
            let mut builder = Int64Builder::with_capacity(datetimes.len());
            for t in &datetimes {
                builder.append_option(t.as_ref().map(|t| part.of(t)));
            }
            Ok(Arc::new(builder.finish()) as ArrayRef)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Decimal128Array, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray,
        TimestampMillisecondArray,
    };
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::config::ConfigOptions;

    /// Invokes a UDF on arrays the way DataFusion does after coercion.
    fn call(udf: &dyn ScalarUDFImpl, args: Vec<ArrayRef>) -> DfResult<ArrayRef> {
        call_in_zone(udf, args, None)
    }

    fn call_in_zone(
        udf: &dyn ScalarUDFImpl,
        args: Vec<ArrayRef>,
        zone: Option<&str>,
    ) -> DfResult<ArrayRef> {
        let types: Vec<DataType> = args.iter().map(|a| a.data_type().clone()).collect();
        let coerced = udf.coerce_types(&types)?;
        let args: Vec<ArrayRef> = args
            .iter()
            .zip(&coerced)
            .map(|(a, t)| datafusion::arrow::compute::cast(a, t).unwrap())
            .collect();
        let return_type = udf.return_type(&coerced)?;
        let n = args.first().map_or(1, |a| a.len());
        let mut config = ConfigOptions::new();
        config.execution.time_zone = zone.map(str::to_string);
        let result = udf.invoke_with_args(ScalarFunctionArgs {
            arg_fields: coerced
                .iter()
                .map(|t| Arc::new(Field::new("a", t.clone(), true)))
                .collect(),
            args: args.into_iter().map(ColumnarValue::Array).collect(),
            number_rows: n,
            return_field: Arc::new(Field::new("r", return_type.clone(), true)),
            config_options: Arc::new(config),
        })?;
        let array = result.into_array(n)?;
        assert_eq!(array.data_type(), &return_type);
        Ok(array)
    }

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn ints(values: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    fn string_values(array: &ArrayRef) -> Vec<Option<String>> {
        array
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_string))
            .collect()
    }

    fn int_values(array: &ArrayRef) -> Vec<Option<i64>> {
        array
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .iter()
            .collect()
    }

    fn ms(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn mod_integers_follow_the_dividend_sign() {
        let a: ArrayRef = Arc::new(Int32Array::from(vec![
            Some(7),
            Some(-7),
            Some(7),
            None,
            Some(5),
        ]));
        let b = ints(&[Some(3), Some(3), Some(-3), Some(2), None]);
        let r = call(&Mod::new(), vec![a, b]).unwrap();
        assert_eq!(r.data_type(), &DataType::Int64);
        assert_eq!(int_values(&r), vec![Some(1), Some(-1), Some(1), None, None]);
    }

    #[test]
    fn mod_types() {
        assert_eq!(
            mod_return_type(&DataType::Int32, &DataType::Int32).unwrap(),
            DataType::Int32
        );
        assert_eq!(
            mod_return_type(&DataType::Int16, &DataType::Int64).unwrap(),
            DataType::Int64
        );
        assert_eq!(
            mod_return_type(&DataType::Int32, &DataType::Float32).unwrap(),
            DataType::Float64
        );
        assert_eq!(
            mod_return_type(&DataType::Float32, &DataType::Float32).unwrap(),
            DataType::Float32
        );
        // DECIMAL(10, 2) % INT (= DECIMAL(10, 0)) → DECIMAL(min(8, 10) + 2, 2).
        assert_eq!(
            mod_return_type(&DataType::Decimal128(10, 2), &DataType::Int32).unwrap(),
            DataType::Decimal128(10, 2)
        );
        assert_eq!(
            mod_return_type(&DataType::Decimal128(5, 1), &DataType::Decimal128(6, 3)).unwrap(),
            DataType::Decimal128(6, 3)
        );
        assert_eq!(
            mod_return_type(&DataType::Null, &DataType::Int64).unwrap(),
            DataType::Int64
        );
        assert!(mod_return_type(&DataType::Utf8, &DataType::Int64).is_err());
    }

    #[test]
    fn mod_by_zero_is_an_error_for_integers_and_nan_for_floats() {
        let e = call(&Mod::new(), vec![ints(&[Some(5)]), ints(&[Some(0)])]).unwrap_err();
        assert!(e.to_string().contains("division by zero"), "{e}");
        // A NULL dividend never divides.
        let r = call(&Mod::new(), vec![ints(&[None]), ints(&[Some(0)])]).unwrap();
        assert!(r.is_null(0));
        let a: ArrayRef = Arc::new(Float64Array::from(vec![5.5, -5.5]));
        let b: ArrayRef = Arc::new(Float64Array::from(vec![0.0, 2.0]));
        let r = call(&Mod::new(), vec![a, b]).unwrap();
        let r = r.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert!(r.value(0).is_nan());
        assert_eq!(r.value(1), -1.5);
        // i64::MIN % -1 is 0 in Java, not an overflow.
        let r = call(
            &Mod::new(),
            vec![ints(&[Some(i64::MIN)]), ints(&[Some(-1)])],
        )
        .unwrap();
        assert_eq!(int_values(&r), vec![Some(0)]);
    }

    #[test]
    fn mod_decimals() {
        let a: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(1050), Some(-1050), None])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        let b: ArrayRef = Arc::new(Int32Array::from(vec![Some(4), Some(4), Some(4)]));
        let r = call(&Mod::new(), vec![a.clone(), b]).unwrap();
        assert_eq!(r.data_type(), &DataType::Decimal128(10, 2));
        let r = r.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
        // 10.50 % 4 = 2.50; -10.50 % 4 = -2.50.
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            vec![Some(250), Some(-250), None]
        );
        let zero: ArrayRef = Arc::new(Int32Array::from(vec![0, 0, 0]));
        assert!(call(&Mod::new(), vec![a, zero]).is_err());
    }

    #[test]
    fn date_format_patterns() {
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(ms("2024-03-05 14:07:09.045")),
            Some(ms("2024-12-31 00:30:00")),
            None,
        ]));
        let cases = [
            (
                "yyyy-MM-dd HH:mm:ss",
                ["2024-03-05 14:07:09", "2024-12-31 00:30:00"],
            ),
            ("yyyy-MM-dd", ["2024-03-05", "2024-12-31"]),
            ("HH:mm", ["14:07", "00:30"]),
            ("yy/M/d h:m:s a", ["24/3/5 2:7:9 PM", "24/12/31 12:30:0 AM"]),
            ("SSS|S|SSSSSS", ["045|0|045000", "000|0|000000"]),
            ("EEE, MMM d yyyy", ["Tue, Mar 5 2024", "Tue, Dec 31 2024"]),
            ("EEEE MMMM", ["Tuesday March", "Tuesday December"]),
            (
                "'at' HH 'o''clock' ''",
                ["at 14 o'clock '", "at 00 o'clock '"],
            ),
            ("D k K", ["65 14 2", "366 24 0"]),
            ("yyyyMMddHH", ["2024030514", "2024123100"]),
        ];
        for (pattern, expected) in cases {
            let patterns = strings(&[Some(pattern); 3]);
            let r = call(&DateFormat::new(), vec![ts.clone(), patterns]).unwrap();
            assert_eq!(
                string_values(&r),
                vec![
                    Some(expected[0].to_string()),
                    Some(expected[1].to_string()),
                    None
                ],
                "{pattern}"
            );
        }
    }

    #[test]
    fn date_format_strings_units_and_zones() {
        // Strings are parsed as timestamps first; unparseable ones give NULL.
        let values = strings(&[
            Some("2024-03-05 14:07:09"),
            Some("2024-03-05T14:07:09.5"),
            Some("2024-03-05"),
            Some("not a time"),
            None,
        ]);
        let patterns = strings(&[Some("yyyy/MM/dd HH:mm:ss.SSS"); 5]);
        let r = call(&DateFormat::new(), vec![values, patterns]).unwrap();
        assert_eq!(
            string_values(&r),
            vec![
                Some("2024/03/05 14:07:09.000".to_string()),
                Some("2024/03/05 14:07:09.500".to_string()),
                Some("2024/03/05 00:00:00.000".to_string()),
                None,
                None,
            ]
        );
        // Microsecond timestamps, before the epoch too.
        let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![-1_000_001]));
        let r = call(
            &DateFormat::new(),
            vec![ts, strings(&[Some("yyyy-MM-dd HH:mm:ss.SSSSSS")])],
        )
        .unwrap();
        assert_eq!(
            string_values(&r),
            vec![Some("1969-12-31 23:59:58.999999".to_string())]
        );
        // TIMESTAMP_LTZ values are shown in the session time zone.
        let ltz: ArrayRef = Arc::new(
            TimestampMillisecondArray::from(vec![ms("2024-03-05 23:30:00")]).with_timezone("UTC"),
        );
        let r = call_in_zone(
            &DateFormat::new(),
            vec![ltz.clone(), strings(&[Some("yyyy-MM-dd HH:mm")])],
            Some("+08:00"),
        )
        .unwrap();
        assert_eq!(
            string_values(&r),
            vec![Some("2024-03-06 07:30".to_string())]
        );
        let r = call_in_zone(&DatePart::new(Part::Hour), vec![ltz], Some("Asia/Shanghai")).unwrap();
        assert_eq!(int_values(&r), vec![Some(7)]);
        // A NULL pattern gives NULL.
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![0]));
        let r = call(&DateFormat::new(), vec![ts, strings(&[None])]).unwrap();
        assert!(r.is_null(0));
    }

    #[test]
    fn date_format_bad_patterns_are_errors() {
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![0]));
        let e = call(
            &DateFormat::new(),
            vec![ts.clone(), strings(&[Some("yyyy-ww")])],
        )
        .unwrap_err();
        assert!(e.to_string().contains("'w'"), "{e}");
        let e = call(&DateFormat::new(), vec![ts, strings(&[Some("yyyy 'open")])]).unwrap_err();
        assert!(e.to_string().contains("unterminated quote"), "{e}");
        assert!(
            DateFormat::new()
                .coerce_types(&[DataType::Int64, DataType::Utf8])
                .is_err()
        );
    }

    #[test]
    fn split_index_semantics() {
        let s = strings(&[
            Some("a/b/c"),
            Some("a/b/c"),
            Some("a/b/c"),
            Some("a/b/c"),
            Some("a//b/"),
            Some("a//b/"),
            Some(""),
            Some("x::y::z"),
            Some("a b\tc"),
            None,
            Some("a/b"),
            Some("a/b"),
        ]);
        let sep = strings(&[
            Some("/"),
            Some("/"),
            Some("/"),
            Some("/"),
            Some("/"),
            Some("/"),
            Some("/"),
            Some("::"),
            Some(""),
            Some("/"),
            None,
            Some("/"),
        ]);
        let idx = ints(&[
            Some(0),
            Some(2),
            Some(3),
            Some(-1),
            Some(1),
            Some(3),
            Some(0),
            Some(1),
            Some(2),
            Some(0),
            Some(0),
            None,
        ]);
        let r = call(&SplitIndex::new(), vec![s, sep, idx]).unwrap();
        let expected: Vec<Option<String>> = [
            Some("a"),
            Some("c"),
            None,
            None,
            Some(""),
            Some(""),
            None,
            Some("y"),
            Some("c"),
            None,
            None,
            None,
        ]
        .iter()
        .map(|s| s.map(str::to_string))
        .collect();
        assert_eq!(string_values(&r), expected);
        // INT indexes are accepted too.
        let idx: ArrayRef = Arc::new(Int32Array::from(vec![1]));
        let r = call(
            &SplitIndex::new(),
            vec![strings(&[Some("p.q")]), strings(&[Some(".")]), idx],
        )
        .unwrap();
        assert_eq!(string_values(&r), vec![Some("q".to_string())]);
    }

    #[test]
    fn regexp_extract_semantics() {
        let s = strings(&[
            Some("foothebar"),
            Some("foothebar"),
            Some("foothebar"),
            Some("foothebar"),
            Some("nothing here"),
            Some("ab"),
            None,
            Some("foothebar"),
        ]);
        let re = strings(&[
            Some("foo(.*?)(bar)"),
            Some("foo(.*?)(bar)"),
            Some("foo(.*?)(bar)"),
            Some("foo(.*?)(bar)"),
            Some("foo(.*?)(bar)"),
            Some("a(x)?b"),
            Some("a"),
            Some("(unclosed"),
        ]);
        let idx = ints(&[
            Some(2),
            Some(0),
            Some(3),
            Some(-1),
            Some(1),
            Some(1),
            Some(0),
            Some(0),
        ]);
        let r = call(&RegexpExtract::new(), vec![s, re, idx]).unwrap();
        let expected: Vec<Option<String>> = [
            Some("bar"),
            Some("foothebar"),
            None,
            None,
            None,
            None,
            None,
            None,
        ]
        .iter()
        .map(|s| s.map(str::to_string))
        .collect();
        assert_eq!(string_values(&r), expected);
        // Without an index: the whole match.
        let r = call(
            &RegexpExtract::new(),
            vec![strings(&[Some("x=12&y=3")]), strings(&[Some("[0-9]+")])],
        )
        .unwrap();
        assert_eq!(string_values(&r), vec![Some("12".to_string())]);
        // Java-only regex features are a clear error, not a silent NULL.
        let e = call(
            &RegexpExtract::new(),
            vec![strings(&[Some("ab")]), strings(&[Some("a(?=b)")])],
        )
        .unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn date_parts() {
        // 2024-03-05 is a Tuesday in ISO week 10, day 65 of the year.
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(ms("2024-03-05 14:07:09.045")),
            None,
        ]));
        let expected = [
            (Part::Year, 2024),
            (Part::Quarter, 1),
            (Part::Month, 3),
            (Part::Week, 10),
            (Part::DayOfYear, 65),
            (Part::DayOfMonth, 5),
            (Part::DayOfWeek, 3),
            (Part::Hour, 14),
            (Part::Minute, 7),
            (Part::Second, 9),
        ];
        for (part, value) in expected {
            let r = call(&DatePart::new(part), vec![ts.clone()]).unwrap();
            assert_eq!(int_values(&r), vec![Some(value), None], "{part:?}");
        }
        // Dates count as midnight.
        let d: ArrayRef = Arc::new(datafusion::arrow::array::Date32Array::from(vec![19787]));
        let r = call(&DatePart::new(Part::DayOfMonth), vec![d.clone()]).unwrap();
        assert_eq!(int_values(&r), vec![Some(5)]);
        let r = call(&DatePart::new(Part::Hour), vec![d]).unwrap();
        assert_eq!(int_values(&r), vec![Some(0)]);
        assert!(
            DatePart::new(Part::Hour)
                .coerce_types(&[DataType::Utf8])
                .is_err()
        );
    }

    #[tokio::test]
    async fn functions_through_the_session() {
        use futures::TryStreamExt;

        let mut session = crate::Session::open(Default::default()).await.unwrap();
        let sql = "SELECT MOD(auction, 123) AS m, DATE_FORMAT(ts, 'yyyy-MM-dd') AS d, \
                   DATE_FORMAT(ts, 'HH:mm') AS hm, SPLIT_INDEX(url, '/', 3) AS part, \
                   REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) AS channel, HOUR(ts) AS h \
                   FROM (VALUES \
                     (CAST(1000 AS BIGINT), TIMESTAMP '2024-03-05 14:07:09', \
                      'https://www.nexmark.com/abc/item.htm?query=1&channel_id=1234'), \
                     (CAST(-250 AS BIGINT), TIMESTAMP '2015-07-15 00:00:01', \
                      'channel_id=99&x=1'), \
                     (CAST(NULL AS BIGINT), CAST(NULL AS TIMESTAMP(3)), CAST(NULL AS STRING)) \
                   ) AS t(auction, ts, url)";
        let mut results = session.execute_sql(sql).await.unwrap();
        let Some(crate::session::StatementResult::Rows(rows)) = results.pop() else {
            panic!("expected rows");
        };
        let schema = rows.schema.clone();
        let batches: Vec<_> = rows.stream.try_collect().await.unwrap();
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                DataType::Int64,
                DataType::Utf8,
                DataType::Utf8,
                DataType::Utf8,
                DataType::Utf8,
                DataType::Int64
            ]
        );
        let batch = datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap();
        let column = |i: usize| batch.column(i).clone();
        let owned = |v: &[Option<&str>]| -> Vec<Option<String>> {
            v.iter().map(|s| s.map(str::to_string)).collect()
        };
        assert_eq!(int_values(&column(0)), vec![Some(16), Some(-4), None]);
        assert_eq!(
            string_values(&column(1)),
            owned(&[Some("2024-03-05"), Some("2015-07-15"), None])
        );
        assert_eq!(
            string_values(&column(2)),
            owned(&[Some("14:07"), Some("00:00"), None])
        );
        assert_eq!(string_values(&column(3)), owned(&[Some("abc"), None, None]));
        assert_eq!(
            string_values(&column(4)),
            owned(&[Some("1234"), Some("99"), None])
        );
        assert_eq!(int_values(&column(5)), vec![Some(14), Some(0), None]);
    }
}
