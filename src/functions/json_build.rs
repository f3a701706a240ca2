//! Flink's JSON constructors and the `IS JSON` predicate, evaluated row by row through
//! `rowwise::RowFn` in expression evaluation (both engines); also the one rendering of SQL
//! values as JSON text that `JSON_STRING`, the constructors and the JSON aggregates
//! (`json_aggregates`) share.
//!
//! The SQL layer's parse hooks (`sql::json_syntax`) turn Flink's syntax into calls of these
//! functions, every value already JSON text: a plain value `v` becomes `json_string(v)`, a
//! `JSON('...')` argument becomes `json('...')`, and a nested `JSON_OBJECT` / `JSON_ARRAY` is
//! its own call, so nested constructors are embedded as JSON, not as strings (as Flink does).
//!
//! - `json_object_null_on_null(k1, j1, ...)` / `json_object_absent_on_null(...)` → `STRING`:
//!   `JSON_OBJECT(k1 VALUE v1, ... [NULL | ABSENT ON NULL])` (Flink's default: `NULL ON NULL`).
//!   Keys are strings and must not be NULL; a repeated key keeps its first position and its
//!   last value (Jackson's `ObjectNode.set`).
//! - `json_array_null_on_null(j1, ...)` / `json_array_absent_on_null(...)` → `STRING`:
//!   `JSON_ARRAY(v1, ... [NULL | ABSENT ON NULL])` (Flink's default: `ABSENT ON NULL`).
//!   `JSON_OBJECT()` / `JSON_ARRAY()` become `json('{}')` / `json('[]')`.
//! - `json(text)` → `STRING`: Flink's `JSON(text)`, a pre-formatted JSON value inserted as JSON;
//!   the text must be valid JSON (else an error) and comes back without insignificant
//!   whitespace; NULL stays NULL.
//! - `is_json(text, kind)` → `BOOLEAN`: `text IS JSON [VALUE | SCALAR | ARRAY | OBJECT]`; FALSE
//!   for NULL and for text that is not one JSON value of that kind.
//!
//! Values render as Flink's `JsonGenerateUtils` renders them (Jackson): strings quoted with
//! Jackson's escapes (non-ASCII kept, control characters `\uXXXX` with upper-case hex), numbers
//! as Java prints them (`1.0E10`, decimals with their scale), booleans, `TIMESTAMP` as
//! ISO-8601 local date-time (`2024-01-02T03:04:05.5`), `TIMESTAMP_LTZ` the same in UTC with a
//! `Z`, `BYTES` as base64, arrays as arrays, maps (string keys) and rows as objects. `DATE`,
//! `TIME` and intervals raise, as in Flink ("not scalar or cannot be converted into JSON").

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Timelike};

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::ScalarUDF;

use super::rowwise::{Ctx, RowFn, all_strings, is_string, need_str, sql_name, str_of, string};
use super::strings::{java_double, ret_string};

/// The functions of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        RowFn::new(
            "json_object_null_on_null",
            &[2],
            object_args,
            ret_string,
            object_null,
        )
        .variadic()
        .nulls_handled()
        .udf(),
        RowFn::new(
            "json_object_absent_on_null",
            &[2],
            object_args,
            ret_string,
            object_absent,
        )
        .variadic()
        .nulls_handled()
        .udf(),
        RowFn::new(
            "json_array_null_on_null",
            &[1],
            all_strings,
            ret_string,
            array_null,
        )
        .variadic()
        .nulls_handled()
        .udf(),
        RowFn::new(
            "json_array_absent_on_null",
            &[1],
            all_strings,
            ret_string,
            array_absent,
        )
        .variadic()
        .nulls_handled()
        .udf(),
        RowFn::new("json", &[1], all_strings, ret_string, json).udf(),
        RowFn::new("is_json", &[2], all_strings, ret_bool, is_json)
            .nulls_handled()
            .udf(),
    ]
}

fn ret_bool(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Boolean)
}

/// `JSON_OBJECT`'s arguments: key/value pairs, all strings (values are JSON text).
fn object_args(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    if is_string(t) || t == &DataType::Null {
        return Ok(DataType::Utf8);
    }
    if i.is_multiple_of(2) {
        plan_err!("JSON_OBJECT keys must be strings, got {}", sql_name(t))
    } else {
        plan_err!("{func}: value {} is not JSON text", i / 2 + 1)
    }
}

/// A value an internal constructor receives: JSON text, checked (the hooks pass JSON text,
/// but the functions can be called by their names too).
fn json_arg<'a>(func: &str, v: &'a ScalarValue) -> DfResult<Option<&'a str>> {
    let Some(text) = str_of(v) else {
        return if v.is_null() {
            Ok(None)
        } else {
            exec_err!("{func}: a value is not JSON text")
        };
    };
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return exec_err!("{func}: the value {text:?} is not JSON text");
    }
    Ok(Some(text))
}

fn build_object(func: &str, args: &[ScalarValue], absent_on_null: bool) -> DfResult<ScalarValue> {
    if !args.len().is_multiple_of(2) {
        return exec_err!("{func} takes key/value pairs, got {} arguments", args.len());
    }
    let mut entries: Vec<(String, &str)> = Vec::with_capacity(args.len() / 2);
    for pair in args.chunks(2) {
        let Some(key) = str_of(&pair[0]) else {
            return exec_err!("JSON_OBJECT: a key is NULL (keys must not be NULL)");
        };
        let value = match json_arg(func, &pair[1])? {
            Some(v) => v,
            None if absent_on_null => continue,
            None => "null",
        };
        let key = quote(key);
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => entries.push((key, value)),
        }
    }
    let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    Ok(string(format!("{{{}}}", body.join(","))))
}

fn object_null(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    build_object("json_object_null_on_null", args, false)
}

fn object_absent(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    build_object("json_object_absent_on_null", args, true)
}

fn build_array(func: &str, args: &[ScalarValue], absent_on_null: bool) -> DfResult<ScalarValue> {
    let mut items = Vec::with_capacity(args.len());
    for a in args {
        match json_arg(func, a)? {
            Some(v) => items.push(v),
            None if absent_on_null => {}
            None => items.push("null"),
        }
    }
    Ok(string(format!("[{}]", items.join(","))))
}

fn array_null(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    build_array("json_array_null_on_null", args, false)
}

fn array_absent(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    build_array("json_array_absent_on_null", args, true)
}

fn json(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let text = need_str("JSON", args, 0)?;
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return exec_err!("JSON({text:?}): not valid JSON: {e}");
    }
    Ok(string(compact(text)))
}

/// JSON text without insignificant whitespace (the text must be valid JSON).
pub(super) fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

fn is_json(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let kind = need_str("IS JSON", args, 1)?;
    let Some(text) = str_of(&args[0]) else {
        return Ok(ScalarValue::Boolean(Some(false)));
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Ok(ScalarValue::Boolean(Some(false)));
    };
    let ok = match kind {
        "VALUE" => true,
        "SCALAR" => !value.is_object() && !value.is_array(),
        "ARRAY" => value.is_array(),
        "OBJECT" => value.is_object(),
        other => {
            return exec_err!("IS JSON {other}: expected VALUE, SCALAR, ARRAY or OBJECT");
        }
    };
    Ok(ScalarValue::Boolean(Some(ok)))
}

/// A string as a JSON string literal, escaped as Jackson escapes it: `"` and `\`, the short
/// escapes `\b \f \n \r \t`, other control characters as `\u00XX` (upper-case hex); everything
/// else (non-ASCII included) as is.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Java's `Float.toString`.
fn java_float(f: f32) -> String {
    if f.is_nan() || f.is_infinite() {
        return java_double(f64::from(f));
    }
    let a = f.abs();
    if a != 0.0 && !(1e-3..1e7).contains(&a) {
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = if m.contains('.') {
            m.to_string()
        } else {
            format!("{m}.0")
        };
        return format!("{m}E{e}");
    }
    let s = format!("{f}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// A Java double or float as Jackson writes it: a number, or a quoted string for NaN and the
/// infinities.
fn java_number(s: String) -> String {
    if s.starts_with(|c: char| c.is_ascii_digit() || c == '-') && !s.ends_with("Infinity") {
        s
    } else {
        format!("\"{s}\"")
    }
}

/// Java's `BigDecimal.toString` of `unscaled × 10^-scale`: plain unless the exponent is below
/// -6 (then `1.5E-7`).
fn java_decimal(unscaled: &str, scale: i64) -> String {
    let (neg, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    let sign = if neg { "-" } else { "" };
    let n = digits.len() as i64;
    let adjusted = n - 1 - scale;
    if scale >= 0 && adjusted >= -6 {
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        if n > scale {
            let split = (n - scale) as usize;
            return format!("{sign}{}.{}", &digits[..split], &digits[split..]);
        }
        let zeros = "0".repeat((scale - n) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let (head, tail) = digits.split_at(1);
    let mantissa = if tail.is_empty() {
        head.to_string()
    } else {
        format!("{head}.{tail}")
    };
    let exp = if adjusted >= 0 {
        format!("+{adjusted}")
    } else {
        adjusted.to_string()
    };
    format!("{sign}{mantissa}E{exp}")
}

/// `DateTimeFormatter.ISO_LOCAL_DATE_TIME`: seconds always, the fraction only as long as needed.
fn iso_local(t: NaiveDateTime) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

fn timestamp_json(v: Option<i64>, unit: &TimeUnit, zoned: bool) -> DfResult<String> {
    let Some(v) = v else {
        return Ok("null".into());
    };
    let nanos = match unit {
        TimeUnit::Second => v.checked_mul(1_000_000_000),
        TimeUnit::Millisecond => v.checked_mul(1_000_000),
        TimeUnit::Microsecond => v.checked_mul(1_000),
        TimeUnit::Nanosecond => Some(v),
    };
    let Some(nanos) = nanos else {
        return exec_err!("a TIMESTAMP value out of range in a JSON value");
    };
    let t = DateTime::from_timestamp_nanos(nanos).naive_utc();
    let text = iso_local(t);
    Ok(quote(&if zoned { format!("{text}Z") } else { text }))
}

/// A SQL value as JSON text (see the module docs); NULL is `null`.
pub(super) fn to_json(v: &ScalarValue) -> DfResult<String> {
    if v.is_null() {
        return Ok("null".into());
    }
    Ok(match v {
        ScalarValue::Boolean(Some(b)) => b.to_string(),
        ScalarValue::Float16(Some(f)) => java_number(java_float(f32::from(*f))),
        ScalarValue::Float32(Some(f)) => java_number(java_float(*f)),
        ScalarValue::Float64(Some(f)) => java_number(java_double(*f)),
        ScalarValue::Decimal128(Some(x), _, s) => java_decimal(&x.to_string(), i64::from(*s)),
        ScalarValue::Decimal256(Some(x), _, s) => java_decimal(&x.to_string(), i64::from(*s)),
        v if v.data_type().is_integer() => v.to_string(),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => quote(s),
        ScalarValue::Binary(Some(b))
        | ScalarValue::LargeBinary(Some(b))
        | ScalarValue::BinaryView(Some(b))
        | ScalarValue::FixedSizeBinary(_, Some(b)) => {
            quote(&base64::engine::general_purpose::STANDARD.encode(b))
        }
        ScalarValue::TimestampSecond(x, tz) => timestamp_json(*x, &TimeUnit::Second, tz.is_some())?,
        ScalarValue::TimestampMillisecond(x, tz) => {
            timestamp_json(*x, &TimeUnit::Millisecond, tz.is_some())?
        }
        ScalarValue::TimestampMicrosecond(x, tz) => {
            timestamp_json(*x, &TimeUnit::Microsecond, tz.is_some())?
        }
        ScalarValue::TimestampNanosecond(x, tz) => {
            timestamp_json(*x, &TimeUnit::Nanosecond, tz.is_some())?
        }
        ScalarValue::List(l) => items_json(&l.value(0))?,
        ScalarValue::LargeList(l) => items_json(&l.value(0))?,
        ScalarValue::FixedSizeList(l) => items_json(&l.value(0))?,
        ScalarValue::Map(m) => {
            let entries = m.value(0);
            let keys = entries.column(0);
            let values = entries.column(1);
            if !is_string(keys.data_type()) {
                return exec_err!(
                    "a MAP with {} keys cannot be converted into JSON: the key type must be a character string",
                    sql_name(keys.data_type())
                );
            }
            let mut parts = Vec::with_capacity(keys.len());
            for i in 0..keys.len() {
                let key = ScalarValue::try_from_array(keys, i)?;
                let Some(key) = str_of(&key) else {
                    return exec_err!(
                        "the MAP key at index {i} is NULL: not supported in a conversion to JSON"
                    );
                };
                let value = to_json(&ScalarValue::try_from_array(values, i)?)?;
                parts.push(format!("{}:{value}", quote(key)));
            }
            format!("{{{}}}", parts.join(","))
        }
        ScalarValue::Struct(s) => {
            let mut parts = Vec::with_capacity(s.num_columns());
            for (field, column) in s.fields().iter().zip(s.columns()) {
                let value = to_json(&ScalarValue::try_from_array(column, 0)?)?;
                parts.push(format!("{}:{value}", quote(field.name())));
            }
            format!("{{{}}}", parts.join(","))
        }
        other => {
            return exec_err!(
                "type '{}' is not scalar or cannot be converted into JSON",
                sql_name(&other.data_type())
            );
        }
    })
}

fn items_json(items: &dyn Array) -> DfResult<String> {
    let mut parts = Vec::with_capacity(items.len());
    for i in 0..items.len() {
        parts.push(to_json(&ScalarValue::try_from_array(items, i)?)?);
    }
    Ok(format!("[{}]", parts.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray, StructArray};
    use datafusion::arrow::datatypes::{Field, Fields};
    use std::sync::Arc;

    fn s(v: &str) -> ScalarValue {
        string(v)
    }

    fn ctx_eval(
        f: fn(&[ScalarValue], &Ctx) -> DfResult<ScalarValue>,
        args: &[ScalarValue],
    ) -> DfResult<ScalarValue> {
        let ret = DataType::Utf8;
        f(
            args,
            &Ctx {
                ret: &ret,
                zone: None,
            },
        )
    }

    #[test]
    fn objects_keep_order_and_handle_nulls() {
        let null = ScalarValue::Utf8(None);
        let args = [s("a"), s("1"), s("b"), s("\"x\""), s("c"), null.clone()];
        assert_eq!(
            ctx_eval(object_null, &args).unwrap(),
            s(r#"{"a":1,"b":"x","c":null}"#)
        );
        assert_eq!(
            ctx_eval(object_absent, &args).unwrap(),
            s(r#"{"a":1,"b":"x"}"#)
        );
        // A repeated key keeps its first place and its last value.
        let dup = [s("a"), s("1"), s("b"), s("2"), s("a"), s("3")];
        assert_eq!(ctx_eval(object_null, &dup).unwrap(), s(r#"{"a":3,"b":2}"#));
        assert!(ctx_eval(object_null, &[null.clone(), s("1")]).is_err());
        assert!(ctx_eval(object_null, &[s("a"), s("not json")]).is_err());
    }

    #[test]
    fn arrays_handle_nulls() {
        let args = [s("1"), ScalarValue::Utf8(None), s("[true]")];
        assert_eq!(ctx_eval(array_null, &args).unwrap(), s("[1,null,[true]]"));
        assert_eq!(ctx_eval(array_absent, &args).unwrap(), s("[1,[true]]"));
    }

    #[test]
    fn raw_json_is_validated_and_compacted() {
        assert_eq!(
            ctx_eval(json, &[s("{ \"x\" : [1, \"a b\"] }")]).unwrap(),
            s(r#"{"x":[1,"a b"]}"#)
        );
        assert!(ctx_eval(json, &[s("{x}")]).is_err());
    }

    #[test]
    fn is_json_kinds() {
        let check = |text: Option<&str>, kind: &str| {
            ctx_eval(
                is_json,
                &[ScalarValue::Utf8(text.map(str::to_string)), s(kind)],
            )
            .unwrap()
        };
        let t = ScalarValue::Boolean(Some(true));
        let f = ScalarValue::Boolean(Some(false));
        assert_eq!(check(Some("{\"a\": 1}"), "VALUE"), t);
        assert_eq!(check(Some("1"), "VALUE"), t);
        assert_eq!(check(Some("abc"), "VALUE"), f);
        assert_eq!(check(Some(""), "VALUE"), f);
        assert_eq!(check(None, "VALUE"), f);
        assert_eq!(check(Some("[1]"), "OBJECT"), f);
        assert_eq!(check(Some("[1]"), "ARRAY"), t);
        assert_eq!(check(Some("\"s\""), "SCALAR"), t);
        assert_eq!(check(Some("{}"), "SCALAR"), f);
    }

    #[test]
    fn values_render_as_jackson() {
        assert_eq!(to_json(&s("a\"b\u{1}é/")).unwrap(), r#""a\"b\u0001é/""#);
        assert_eq!(to_json(&ScalarValue::Int32(Some(-3))).unwrap(), "-3");
        assert_eq!(
            to_json(&ScalarValue::Float64(Some(1e10))).unwrap(),
            "1.0E10"
        );
        assert_eq!(to_json(&ScalarValue::Float32(Some(1.1))).unwrap(), "1.1");
        assert_eq!(
            to_json(&ScalarValue::Float64(Some(f64::NAN))).unwrap(),
            "\"NaN\""
        );
        assert_eq!(
            to_json(&ScalarValue::Decimal128(Some(150), 5, 2)).unwrap(),
            "1.50"
        );
        assert_eq!(java_decimal("1", 7), "1E-7");
        assert_eq!(java_decimal("-15", 8), "-1.5E-7");
        assert_eq!(java_decimal("5", 3), "0.005");
        assert_eq!(
            to_json(&ScalarValue::TimestampMicrosecond(Some(1_500_000), None)).unwrap(),
            "\"1970-01-01T00:00:01.5\""
        );
        assert_eq!(
            to_json(&ScalarValue::TimestampMillisecond(
                Some(0),
                Some("UTC".into())
            ))
            .unwrap(),
            "\"1970-01-01T00:00:00Z\""
        );
        assert_eq!(
            to_json(&ScalarValue::Binary(Some(b"abc".to_vec()))).unwrap(),
            "\"YWJj\""
        );
        assert!(to_json(&ScalarValue::Date32(Some(0))).is_err());
    }

    #[test]
    fn rows_render_as_objects() {
        let a: ArrayRef = Arc::new(Int32Array::from(vec![Some(1)]));
        let b: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>]));
        let fields = Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let row = StructArray::new(fields, vec![a, b], None);
        assert_eq!(
            to_json(&ScalarValue::Struct(Arc::new(row))).unwrap(),
            r#"{"a":1,"b":null}"#
        );
    }
}
