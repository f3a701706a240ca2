//! Flink's JSON built-ins (the function forms without `RETURNING` / `ON EMPTY` / `ON ERROR`
//! clauses), evaluated row by row through `rowwise::RowFn` in expression evaluation (both
//! engines). Paths are SQL/JSON paths in lax mode (a leading `lax` or `strict` is accepted):
//! `$`, `.name`, `['name']`, `[index]`; other path syntax is a not-supported error.
//!
//! - `JSON_VALUE(json, path)` → `STRING`: the scalar at `path` as text; NULL when the JSON is
//!   invalid, the path is missing, or the value is `null`, an object or an array (Flink's
//!   default `NULL ON EMPTY` / `NULL ON ERROR`).
//! - `JSON_QUERY(json, path)` → `STRING`: the object or array at `path` as compact JSON (key
//!   order kept); NULL for a scalar, a missing path or invalid JSON (`WITHOUT WRAPPER`).
//! - `JSON_EXISTS(json, path)` → `BOOLEAN`: whether `path` holds a non-null value; FALSE for
//!   invalid JSON.
//! - `JSON_QUOTE(str)`: `str` as a JSON string literal, escaping `"`, `\`, `/`, control and
//!   non-ASCII characters (`\u00e9`) as Flink does. `JSON_UNQUOTE(str)`: the reverse for a
//!   valid quoted JSON string; anything else comes back unchanged.
//! - `JSON_STRING(value)` → `STRING`: any SQL value as JSON text (`json_build::to_json`, as
//!   Flink renders values in JSON); NULL for NULL.

use serde_json::value::RawValue;
use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::ScalarUDF;

use super::json_build::{compact, to_json};
use super::rowwise::{Ctx, RowFn, all_strings, need_str, string};
use super::strings::{java_double, ret_string};

/// The functions of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        RowFn::new("json_value", &[2], all_strings, ret_string, json_value).udf(),
        RowFn::new("json_query", &[2], all_strings, ret_string, json_query).udf(),
        RowFn::new("json_exists", &[2], all_strings, ret_bool, json_exists).udf(),
        RowFn::new("json_quote", &[1], all_strings, ret_string, json_quote).udf(),
        RowFn::new("json_unquote", &[1], all_strings, ret_string, json_unquote).udf(),
        RowFn::new(
            "json_string",
            &[1],
            |_, _, t| Ok(t.clone()),
            ret_string,
            json_string,
        )
        .udf(),
    ]
}

fn ret_bool(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Boolean)
}

/// One step of a path.
#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn not_supported(path: &str) -> DataFusionError {
    DataFusionError::NotImplemented(format!(
        "JSON path '{path}' is not supported yet: Weir reads `$`, `.name`, `['name']` and `[index]`"
    ))
}

/// Compiles a SQL/JSON path.
fn compile_path(path: &str) -> DfResult<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix("lax ")
        .or_else(|| p.strip_prefix("strict "))
        .unwrap_or(p)
        .trim();
    let Some(mut rest) = p.strip_prefix('$') else {
        return Err(not_supported(path));
    };
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty()
                || name == "*"
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
            {
                return Err(not_supported(path));
            }
            steps.push(Step::Key(name.to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| not_supported(path))?;
            let inner = r[..end].trim();
            if let Ok(i) = inner.parse::<usize>() {
                steps.push(Step::Index(i));
            } else if inner.len() >= 2
                && ((inner.starts_with('\'') && inner.ends_with('\''))
                    || (inner.starts_with('"') && inner.ends_with('"')))
            {
                steps.push(Step::Key(inner[1..inner.len() - 1].to_string()));
            } else {
                return Err(not_supported(path));
            }
            rest = &r[end + 1..];
        } else {
            return Err(not_supported(path));
        }
    }
    Ok(steps)
}

/// What a path finds in a document.
enum Found<'a> {
    /// The document is not JSON.
    Invalid,
    Missing,
    Value(&'a RawValue),
}

fn find<'a>(doc: &'a str, steps: &[Step]) -> Found<'a> {
    let Ok(mut at) = serde_json::from_str::<&RawValue>(doc) else {
        return Found::Invalid;
    };
    for step in steps {
        let next = match step {
            Step::Key(k) => serde_json::from_str::<BTreeMap<String, &RawValue>>(at.get())
                .ok()
                .and_then(|m| m.get(k).copied()),
            Step::Index(i) => serde_json::from_str::<Vec<&RawValue>>(at.get())
                .ok()
                .and_then(|v| v.get(*i).copied()),
        };
        match next {
            Some(v) => at = v,
            None => return Found::Missing,
        }
    }
    Found::Value(at)
}

fn json_value(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let doc = need_str("JSON_VALUE", args, 0)?;
    let steps = compile_path(need_str("JSON_VALUE", args, 1)?)?;
    let Found::Value(raw) = find(doc, &steps) else {
        return Ok(ScalarValue::Utf8(None));
    };
    let value: serde_json::Value = serde_json::from_str(raw.get())
        .map_err(|e| DataFusionError::Execution(format!("JSON_VALUE: {e}")))?;
    Ok(ScalarValue::Utf8(match value {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if n.is_f64() => java_double(f),
            _ => n.to_string(),
        }),
        _ => None,
    }))
}

fn json_query(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let doc = need_str("JSON_QUERY", args, 0)?;
    let steps = compile_path(need_str("JSON_QUERY", args, 1)?)?;
    let Found::Value(raw) = find(doc, &steps) else {
        return Ok(ScalarValue::Utf8(None));
    };
    let text = raw.get().trim_start();
    Ok(ScalarValue::Utf8(
        (text.starts_with('{') || text.starts_with('[')).then(|| compact(text)),
    ))
}

fn json_exists(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let doc = need_str("JSON_EXISTS", args, 0)?;
    let steps = compile_path(need_str("JSON_EXISTS", args, 1)?)?;
    let exists = match find(doc, &steps) {
        Found::Value(raw) => raw.get().trim() != "null",
        Found::Missing | Found::Invalid => false,
    };
    Ok(ScalarValue::Boolean(Some(exists)))
}

/// Flink's `JSON_QUOTE` escaping.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_quote(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    Ok(string(quote(need_str("JSON_QUOTE", args, 0)?)))
}

fn json_unquote(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let s = need_str("JSON_UNQUOTE", args, 0)?;
    if s.len() >= 2
        && s.starts_with('"')
        && s.ends_with('"')
        && let Ok(unquoted) = serde_json::from_str::<String>(s)
    {
        return Ok(string(unquoted));
    }
    Ok(string(s))
}

fn json_string(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    Ok(string(to_json(&args[0])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            compile_path("$.a.b[1]").unwrap(),
            vec![Step::Key("a".into()), Step::Key("b".into()), Step::Index(1)]
        );
        assert_eq!(
            compile_path("strict $['a b']").unwrap(),
            vec![Step::Key("a b".into())]
        );
        assert!(compile_path("$..a").is_err());
        assert!(compile_path("a").is_err());
    }

    #[test]
    fn queries_keep_key_order_and_compact() {
        let Found::Value(v) = find(
            r#"{"z": {"y": 1, "b": [1, "x y"]}}"#,
            &[Step::Key("z".into())],
        ) else {
            panic!("found nothing");
        };
        assert_eq!(compact(v.get()), r#"{"y":1,"b":[1,"x y"]}"#);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b"), r#""a\"b""#);
        assert_eq!(quote("tab\té/"), r#""tab\t\u00e9\/""#);
    }
}
