//! Flink's string built-ins DataFusion lacks, evaluated row by row through `rowwise::RowFn` in
//! expression evaluation (both engines). Semantics follow Flink 2.3 (checked against Flink by
//! `tests/flink_functions.rs`); every function returns NULL for a NULL argument unless noted.
//!
//! - `LOCATE(sub, str [, pos])` → `INT`: 1-based position of the first `sub` in `str` at or
//!   after character `pos` (default 1; below 1 counts as 1); 0 when absent.
//! - `ELT(n, e1, e2, ...)` → `STRING`: the `n`-th expression; NULL when `n` is out of range.
//! - `SPLIT(str, delim)` → `ARRAY<STRING>`: split at every `delim` (empty tokens kept); an
//!   empty `delim` splits into characters.
//! - `STARTSWITH` / `ENDSWITH`: DataFusion's `starts_with` / `ends_with` under Flink's names.
//! - `LEFT(str, n)` / `RIGHT(str, n)`: the first / last `n` characters; empty for `n` < 1
//!   (DataFusion's count a negative `n` from the other end).
//! - `REGEXP_REPLACE(str, regex, replacement)`: replaces every match (DataFusion's only the
//!   first unless given the `g` flag).
//! - `REGEXP_EXTRACT_ALL(str, regex [, group])` → `ARRAY<STRING>`: group `group` (default 1)
//!   of every match; NULL when the group does not exist or the regex is invalid.
//!   `REGEXP_SUBSTR(str, regex)`: the first match (an invalid regex raises).
//!   `REGEXP(str, regex)`: whether any part matches; FALSE for an empty regex.
//! - `URL_ENCODE` / `URL_DECODE`: `application/x-www-form-urlencoded` as Java's `URLEncoder` /
//!   `URLDecoder` (UTF-8; space ↔ `+`); a malformed escape decodes to NULL.
//! - `PARSE_URL(url, part [, key])`: `HOST`, `PATH`, `QUERY` (with `key`: that parameter),
//!   `REF`, `PROTOCOL`, `FILE`, `AUTHORITY`, `USERINFO` of `java.net.URL`; NULL when the URL
//!   does not parse or has no such part.
//! - `STR_TO_MAP(text [, listDelim, keyValueDelim])` → `MAP<STRING, STRING>`: delimiters are
//!   regexes (defaults `,` and `=`); a later duplicate key wins; a pair without the key-value
//!   delimiter maps to NULL.
//! - `PRINTF(format, args...)` → `STRING`: Java's `String.format` for the conversions `%s`,
//!   `%d`, `%f`, `%e`, `%x`, `%X`, `%o`, `%b`, `%c`, `%n`, `%%` with flags `-`, `0`, `+`, ` `,
//!   `,` width and precision; NULL format → NULL; a NULL argument prints `null`. A conversion
//!   that does not fit its argument (`%f` of a `DECIMAL` or an integer, `%d` of a string) or a
//!   missing argument gives NULL, as Java's formatter throws there.

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::ScalarUDF;
use regex::Regex;
use std::sync::Arc;

use super::rowwise::{
    Ctx, RowFn, all_strings, int_arg, is_string, list_type, need_int, need_str, sql_name, str_of,
    string, string_arg, string_list,
};

/// The functions of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    let mut out = vec![
        RowFn::new("locate", &[2, 3], locate_coerce, ret_int, locate).udf(),
        RowFn::new("elt", &[2], elt_coerce, ret_string, elt)
            .variadic()
            .nulls_handled()
            .udf(),
        RowFn::new("split", &[2], all_strings, ret_string_list, split).udf(),
        RowFn::new(
            "regexp_extract_all",
            &[2, 3],
            extract_all_coerce,
            ret_string_list,
            regexp_extract_all,
        )
        .udf(),
        RowFn::new(
            "regexp_substr",
            &[2],
            all_strings,
            ret_string,
            regexp_substr,
        )
        .udf(),
        RowFn::new("regexp", &[2], all_strings, ret_bool, regexp_matches).udf(),
        RowFn::new("url_encode", &[1], all_strings, ret_string, url_encode).udf(),
        RowFn::new("url_decode", &[1], all_strings, ret_string, url_decode).udf(),
        RowFn::new("parse_url", &[2, 3], all_strings, ret_string, parse_url).udf(),
        RowFn::new(
            "str_to_map",
            &[1, 3],
            all_strings,
            ret_string_map,
            str_to_map,
        )
        .udf(),
        RowFn::new(
            "regexp_replace",
            &[3],
            all_strings,
            ret_string,
            regexp_replace,
        )
        .udf(),
        RowFn::new(
            "left",
            &[2],
            locate_coerce_left_right,
            ret_string,
            |a, _| left_right(a, true),
        )
        .udf(),
        RowFn::new(
            "right",
            &[2],
            locate_coerce_left_right,
            ret_string,
            |a, _| left_right(a, false),
        )
        .udf(),
        RowFn::new("printf", &[1], printf_coerce, ret_string, printf)
            .variadic()
            .nulls_handled()
            .udf(),
    ];
    let starts = datafusion::functions::string::starts_with();
    out.push(starts.as_ref().clone().with_aliases(["startswith"]));
    let ends = datafusion::functions::string::ends_with();
    out.push(ends.as_ref().clone().with_aliases(["endswith"]));
    out
}

fn ret_int(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Int32)
}

fn ret_bool(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Boolean)
}

pub(super) fn ret_string(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Utf8)
}

fn ret_string_list(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(list_type(DataType::Utf8))
}

/// `MAP<STRING, STRING>` as Arrow spells it (the entries struct with `key` / `value`).
pub(super) fn string_map_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(
            vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ]
            .into(),
        ),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn ret_string_map(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(string_map_type())
}

// ---- LOCATE

fn locate_coerce(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    if i < 2 {
        string_arg(func, t)
    } else {
        int_arg(func, t)
    }
}

fn locate(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let sub = need_str("LOCATE", args, 0)?;
    let s = need_str("LOCATE", args, 1)?;
    let pos = if args.len() > 2 {
        need_int("LOCATE", args, 2)?
    } else {
        1
    };
    Ok(ScalarValue::Int32(Some(locate_in(sub, s, pos))))
}

/// 1-based character position of `sub` in `s` at or after character `pos` (below 1: from the
/// start); 0 when absent.
fn locate_in(sub: &str, s: &str, pos: i64) -> i32 {
    let Ok(start_char) = usize::try_from(pos.max(1) - 1) else {
        return 0;
    };
    let Some((start_byte, _)) = s
        .char_indices()
        .chain(std::iter::once((s.len(), ' ')))
        .nth(start_char)
    else {
        return 0;
    };
    match s[start_byte..].find(sub) {
        Some(b) => {
            let chars = s[..start_byte + b].chars().count() + 1;
            i32::try_from(chars).unwrap_or(0)
        }
        None => 0,
    }
}

// ---- LEFT / RIGHT

fn locate_coerce_left_right(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    if i == 0 {
        string_arg(func, t)
    } else {
        int_arg(func, t)
    }
}

/// `LEFT(s, n)` / `RIGHT(s, n)`: the first / last `n` characters; empty for `n` < 1.
fn left_right(args: &[ScalarValue], left: bool) -> DfResult<ScalarValue> {
    let s = need_str("LEFT", args, 0)?;
    let n = usize::try_from(need_int("LEFT", args, 1)?).unwrap_or(0);
    let chars = s.chars().count();
    let text: String = if left {
        s.chars().take(n).collect()
    } else {
        s.chars().skip(chars.saturating_sub(n)).collect()
    };
    Ok(string(text))
}

// ---- ELT

fn elt_coerce(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    if i == 0 {
        int_arg(func, t)
    } else {
        string_arg(func, t)
    }
}

fn elt(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let Some(n) = super::rowwise::int_of(&args[0]) else {
        return Ok(ScalarValue::Utf8(None));
    };
    let picked = usize::try_from(n)
        .ok()
        .filter(|n| *n >= 1)
        .and_then(|n| args.get(n));
    Ok(ScalarValue::Utf8(
        picked.and_then(str_of).map(str::to_string),
    ))
}

// ---- SPLIT

fn split(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("SPLIT", args, 0)?;
    let delim = need_str("SPLIT", args, 1)?;
    let parts: Vec<Option<String>> = if delim.is_empty() {
        s.chars().map(|c| Some(c.to_string())).collect()
    } else if s.is_empty() {
        Vec::new()
    } else {
        s.split(delim).map(|p| Some(p.to_string())).collect()
    };
    Ok(string_list(parts))
}

// ---- regular expressions

fn regex(func: &str, pattern: &str) -> DfResult<Regex> {
    Regex::new(pattern).map_err(|e| {
        datafusion::error::DataFusionError::Execution(format!(
            "{func}: invalid regular expression '{pattern}': {e}"
        ))
    })
}

fn extract_all_coerce(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    if i < 2 {
        string_arg(func, t)
    } else {
        int_arg(func, t)
    }
}

fn regexp_extract_all(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("REGEXP_EXTRACT_ALL", args, 0)?;
    let Ok(re) = Regex::new(need_str("REGEXP_EXTRACT_ALL", args, 1)?) else {
        return ScalarValue::try_from(&list_type(DataType::Utf8));
    };
    let group = if args.len() > 2 {
        need_int("REGEXP_EXTRACT_ALL", args, 2)?
    } else {
        1
    };
    let groups = re.captures_len() - 1;
    let g = match usize::try_from(group) {
        Ok(g) if g <= groups => g,
        _ => return ScalarValue::try_from(&list_type(DataType::Utf8)),
    };
    let items = re
        .captures_iter(s)
        .map(|c| c.get(g).map(|m| m.as_str().to_string()))
        .collect();
    Ok(string_list(items))
}

/// `REGEXP_REPLACE(str, regex, replacement)`: every match replaced (Java's `replaceAll`;
/// `$1` names a group in both syntaxes).
fn regexp_replace(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("REGEXP_REPLACE", args, 0)?;
    let re = regex("REGEXP_REPLACE", need_str("REGEXP_REPLACE", args, 1)?)?;
    let replacement = need_str("REGEXP_REPLACE", args, 2)?;
    Ok(string(re.replace_all(s, replacement).into_owned()))
}

fn regexp_substr(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("REGEXP_SUBSTR", args, 0)?;
    let re = regex("REGEXP_SUBSTR", need_str("REGEXP_SUBSTR", args, 1)?)?;
    Ok(ScalarValue::Utf8(
        re.find(s).map(|m| m.as_str().to_string()),
    ))
}

fn regexp_matches(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("REGEXP", args, 0)?;
    let pattern = need_str("REGEXP", args, 1)?;
    if pattern.is_empty() {
        return Ok(ScalarValue::Boolean(Some(false)));
    }
    let re = regex("REGEXP", pattern)?;
    Ok(ScalarValue::Boolean(Some(re.is_match(s))))
}

// ---- URL_ENCODE / URL_DECODE

fn url_encode(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("URL_ENCODE", args, 0)?;
    Ok(string(form_encode(s)))
}

/// Java's `URLEncoder.encode(s, UTF_8)`.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn url_decode(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("URL_DECODE", args, 0)?;
    Ok(ScalarValue::Utf8(form_decode(s)))
}

/// Java's `URLDecoder.decode(s, UTF_8)`; `None` where Java throws (a malformed escape).
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

// ---- PARSE_URL

fn parse_url(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let text = need_str("PARSE_URL", args, 0)?;
    let part = need_str("PARSE_URL", args, 1)?;
    let Ok(url) = url::Url::parse(text) else {
        return Ok(ScalarValue::Utf8(None));
    };
    let key = if args.len() > 2 {
        Some(need_str("PARSE_URL", args, 2)?)
    } else {
        None
    };
    Ok(ScalarValue::Utf8(url_part(
        &url,
        has_no_path(text),
        part,
        key,
    )))
}

/// Whether the URL text has no path (Java's `URL` keeps it empty; the `url` crate says `/`).
fn has_no_path(text: &str) -> bool {
    let Some((_, rest)) = text.split_once("://") else {
        return false;
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    !rest[..end].contains('/')
}

fn url_part(url: &url::Url, raw_path_empty: bool, part: &str, key: Option<&str>) -> Option<String> {
    let userinfo = || {
        let user = url.username();
        match url.password() {
            Some(p) => Some(format!("{user}:{p}")),
            None if user.is_empty() => None,
            None => Some(user.to_string()),
        }
    };
    let path = || {
        if raw_path_empty {
            String::new()
        } else {
            url.path().to_string()
        }
    };
    match (part, key) {
        ("QUERY", Some(key)) => url.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == key).then(|| v.to_string())
        }),
        (_, Some(_)) => None,
        ("HOST", None) => url.host_str().map(str::to_string),
        ("PATH", None) => Some(path()),
        ("QUERY", None) => url.query().map(str::to_string),
        ("REF", None) => url.fragment().map(str::to_string),
        ("PROTOCOL", None) => Some(url.scheme().to_string()),
        ("FILE", None) => Some(match url.query() {
            Some(q) => format!("{}?{q}", path()),
            None => path(),
        }),
        ("AUTHORITY", None) => {
            let host = url.host_str()?;
            let mut a = String::new();
            if let Some(u) = userinfo() {
                a.push_str(&u);
                a.push('@');
            }
            a.push_str(host);
            if let Some(p) = url.port() {
                a.push_str(&format!(":{p}"));
            }
            Some(a)
        }
        ("USERINFO", None) => userinfo(),
        _ => None,
    }
}

// ---- STR_TO_MAP

fn str_to_map(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let text = need_str("STR_TO_MAP", args, 0)?;
    let (list, kv) = if args.len() == 3 {
        (
            need_str("STR_TO_MAP", args, 1)?,
            need_str("STR_TO_MAP", args, 2)?,
        )
    } else {
        (",", "=")
    };
    let list = regex("STR_TO_MAP", list)?;
    let kv = regex("STR_TO_MAP", kv)?;
    let mut entries: Vec<(String, Option<String>)> = Vec::new();
    if !text.is_empty() {
        for pair in list.split(text) {
            let mut parts = kv.splitn(pair, 2);
            let key = parts.next().unwrap_or_default().to_string();
            let value = parts.next().map(str::to_string);
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(e) => e.1 = value,
                None => entries.push((key, value)),
            }
        }
    }
    string_map(entries)
}

/// A `MAP<STRING, STRING>` scalar from its entries.
pub(super) fn string_map(entries: Vec<(String, Option<String>)>) -> DfResult<ScalarValue> {
    use datafusion::arrow::array::{MapBuilder, StringBuilder};
    let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for (k, v) in entries {
        b.keys().append_value(k);
        b.values().append_option(v);
    }
    b.append(true)?;
    let array = b.finish();
    let array = datafusion::arrow::compute::cast(&array, &string_map_type())?;
    ScalarValue::try_from_array(&array, 0)
}

// ---- PRINTF

fn printf_coerce(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    if i == 0 {
        return string_arg(func, t);
    }
    match t {
        t if is_string(t) => Ok(DataType::Utf8),
        DataType::Null
        | DataType::Boolean
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(_, _) => Ok(t.clone()),
        t if t.is_integer() => Ok(DataType::Int64),
        DataType::Decimal256(_, _) => Ok(DataType::Float64),
        t => plan_err!("{func} cannot format a {} argument", sql_name(t)),
    }
}

fn printf(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let Some(format) = str_of(&args[0]) else {
        return Ok(ScalarValue::Utf8(None));
    };
    // Java's `String.format` throws on a mismatched conversion; Flink's PRINTF gives NULL.
    Ok(ScalarValue::Utf8(java_format(format, &args[1..]).ok()))
}

/// One `%` conversion's flags, width and precision.
#[derive(Default)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    group: bool,
    width: usize,
    precision: Option<usize>,
}

fn java_format(format: &str, args: &[ScalarValue]) -> DfResult<String> {
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::new();
    let mut next = 0;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        let mut spec = Spec::default();
        while let Some(c) = chars.get(i) {
            match c {
                '-' => spec.left = true,
                '0' => spec.zero = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                ',' => spec.group = true,
                _ => break,
            }
            i += 1;
        }
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            spec.width = spec.width * 10 + d as usize;
            i += 1;
        }
        if chars.get(i) == Some(&'.') {
            i += 1;
            let mut p = 0;
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                i += 1;
            }
            spec.precision = Some(p);
        }
        let Some(&conv) = chars.get(i) else {
            return exec_err!("PRINTF: format '{format}' ends inside a conversion");
        };
        i += 1;
        if conv == '%' {
            pad(&mut out, "%".to_string(), &spec);
            continue;
        }
        if conv == 'n' {
            out.push('\n');
            continue;
        }
        let Some(arg) = args.get(next) else {
            return exec_err!("PRINTF: format '{format}' needs more arguments than given");
        };
        next += 1;
        let text = convert(conv, arg, &spec, format)?;
        pad(&mut out, text, &spec);
    }
    Ok(out)
}

fn pad(out: &mut String, text: String, spec: &Spec) {
    let n = text.chars().count();
    if n >= spec.width {
        out.push_str(&text);
    } else if spec.left {
        out.push_str(&text);
        out.extend(std::iter::repeat_n(' ', spec.width - n));
    } else if spec.zero {
        let (sign, digits) = match text.strip_prefix(['-', '+']) {
            Some(rest) => (&text[..1], rest.to_string()),
            None => ("", text.clone()),
        };
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', spec.width - n));
        out.push_str(&digits);
    } else {
        out.extend(std::iter::repeat_n(' ', spec.width - n));
        out.push_str(&text);
    }
}

fn float_of(v: &ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::Float32(x) => x.map(f64::from),
        ScalarValue::Float64(x) => *x,
        other => super::rowwise::int_of(other).map(|i| i as f64),
    }
}

fn sign_prefix(negative: bool, spec: &Spec) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn group_thousands(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn convert(conv: char, arg: &ScalarValue, spec: &Spec, format: &str) -> DfResult<String> {
    let mismatch = || {
        exec_err!(
            "PRINTF: %{conv} in '{format}' cannot format a {} value",
            sql_name(&arg.data_type())
        )
    };
    if arg.is_null() {
        let text = match conv {
            'b' | 'B' => "false",
            _ => "null",
        };
        return Ok(text.to_string());
    }
    match conv {
        's' | 'S' => {
            let mut s = match arg {
                ScalarValue::Boolean(Some(b)) => b.to_string(),
                ScalarValue::Float64(Some(f)) => java_double(*f),
                ScalarValue::Float32(Some(f)) => java_double(f64::from(*f)),
                other => str_of(other)
                    .map(str::to_string)
                    .unwrap_or_else(|| other.to_string()),
            };
            if let Some(p) = spec.precision {
                s = s.chars().take(p).collect();
            }
            Ok(if conv == 'S' { s.to_uppercase() } else { s })
        }
        'b' | 'B' => {
            let b = match arg {
                ScalarValue::Boolean(Some(b)) => *b,
                _ => true,
            };
            Ok(if conv == 'B' {
                b.to_string().to_uppercase()
            } else {
                b.to_string()
            })
        }
        'd' => {
            let Some(i) = super::rowwise::int_of(arg) else {
                return mismatch();
            };
            let digits = i.unsigned_abs().to_string();
            let digits = if spec.group {
                group_thousands(&digits)
            } else {
                digits
            };
            Ok(format!("{}{digits}", sign_prefix(i < 0, spec)))
        }
        'x' | 'X' | 'o' => {
            let Some(i) = super::rowwise::int_of(arg) else {
                return mismatch();
            };
            let s = match conv {
                'x' => format!("{i:x}"),
                'X' => format!("{i:X}"),
                _ => format!("{i:o}"),
            };
            Ok(s)
        }
        'c' => {
            let Some(i) = super::rowwise::int_of(arg) else {
                return mismatch();
            };
            match u32::try_from(i).ok().and_then(char::from_u32) {
                Some(c) => Ok(c.to_string()),
                None => exec_err!("PRINTF: {i} is not a character code point"),
            }
        }
        'f' | 'e' | 'E' => {
            if super::rowwise::int_of(arg).is_some() {
                return mismatch();
            }
            let Some(f) = float_of(arg) else {
                return mismatch();
            };
            let p = spec.precision.unwrap_or(6);
            if f.is_nan() {
                return Ok("NaN".into());
            }
            if f.is_infinite() {
                return Ok(format!("{}Infinity", sign_prefix(f < 0.0, spec)));
            }
            let body = match conv {
                'f' => {
                    let s = format!("{:.p$}", f.abs());
                    if spec.group {
                        let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
                        let g = group_thousands(int);
                        if frac.is_empty() {
                            g
                        } else {
                            format!("{g}.{frac}")
                        }
                    } else {
                        s
                    }
                }
                _ => {
                    let s = format!("{:.p$e}", f.abs());
                    // Rust: `1.5e2`; Java: `1.5e+02`.
                    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
                    let exp: i32 = exp.parse().unwrap_or(0);
                    let e = if conv == 'E' { 'E' } else { 'e' };
                    format!(
                        "{mantissa}{e}{}{:02}",
                        if exp < 0 { '-' } else { '+' },
                        exp.abs()
                    )
                }
            };
            Ok(format!("{}{body}", sign_prefix(f < 0.0, spec)))
        }
        other => exec_err!("PRINTF: conversion '%{other}' in '{format}' is not supported"),
    }
}

/// Java's `Double.toString` for ordinary magnitudes (`1.0`, `0.5`, `1.0E10`).
pub(super) fn java_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_positions() {
        assert_eq!(locate_in("b", "abcb", 1), 2);
        assert_eq!(locate_in("b", "abcb", 3), 4);
        assert_eq!(locate_in("z", "abc", 1), 0);
        assert_eq!(locate_in("b", "abc", 0), 2);
        assert_eq!(locate_in("b", "abc", -1), 2);
        assert_eq!(locate_in("", "abc", 1), 1);
        assert_eq!(locate_in("é", "aébé", 3), 4);
        assert_eq!(locate_in("b", "abc", 10), 0);
    }

    #[test]
    fn url_codec_is_javas() {
        assert_eq!(form_encode("a b&c=d/é~*"), "a+b%26c%3Dd%2F%C3%A9%7E*");
        assert_eq!(
            form_decode("a+b%26c%3Dd%2F%C3%A9").as_deref(),
            Some("a b&c=d/é")
        );
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("100%"), None);
    }

    #[test]
    fn printf_conversions() {
        let f = |fmt: &str, args: Vec<ScalarValue>| java_format(fmt, &args).unwrap();
        assert_eq!(
            f("%d-%s", vec![ScalarValue::Int64(Some(1)), string("a")]),
            "1-a"
        );
        assert_eq!(
            f(
                "%5.2f|%-4d|",
                vec![
                    ScalarValue::Float64(Some(2.34567)),
                    ScalarValue::Int64(Some(7))
                ]
            ),
            " 2.35|7   |"
        );
        assert_eq!(
            f("%08.3f", vec![ScalarValue::Float64(Some(-2.5))]),
            "-002.500"
        );
        assert_eq!(
            f(
                "%x %o %%",
                vec![ScalarValue::Int64(Some(255)), ScalarValue::Int64(Some(8))]
            ),
            "ff 10 %"
        );
        assert_eq!(f("%s", vec![ScalarValue::Utf8(None)]), "null");
        assert!(java_format("%d", &[]).is_err());
        assert!(java_format("%d", &[string("x")]).is_err());
    }
}
