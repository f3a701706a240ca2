//! Parse hooks of [`super::dialect::FlinkDialect`] for Flink's SQL/JSON syntax that is not a
//! plain function call; each becomes an ordinary call of a function in
//! `crate::functions::json_build` / `json_aggregates`, so the planner sees nothing special.
//!
//! - `JSON_OBJECT([KEY] k VALUE v, ... [NULL | ABSENT ON NULL])` →
//!   `json_object_null_on_null(k, j, ...)` (Flink's default) or `json_object_absent_on_null(..)`.
//! - `JSON_ARRAY(v, ... [NULL | ABSENT ON NULL])` → `json_array_absent_on_null(j, ...)` (Flink's
//!   default) or `json_array_null_on_null(..)`. With no values, `JSON_OBJECT()` /
//!   `JSON_ARRAY()` → `json('{}')` / `json('[]')`.
//! - `JSON_ARRAYAGG(v [NULL | ABSENT ON NULL])` → `json_arrayagg_absent_on_null(j)` (default)
//!   / `json_arrayagg_null_on_null(j)`; `JSON_OBJECTAGG([KEY] k VALUE v [NULL | ABSENT ON
//!   NULL])` → `json_objectagg_null_on_null(k, j)` (default) / `..._absent_on_null`; both take
//!   a trailing `FILTER (WHERE ..)`; `OVER` is refused (as in Flink).
//! - `x IS [NOT] JSON [VALUE | SCALAR | ARRAY | OBJECT]` → `is_json(x, 'VALUE')` (under `NOT`).
//!
//! Every value `j` is JSON text: `v` as written becomes `json_string(v)`, except `JSON(text)`
//! (→ `json(text)`) and a nested constructor, which are JSON already, so they are embedded as
//! JSON, as Flink does. `JSON(...)` anywhere else is a syntax error.

use datafusion::sql::sqlparser::ast::{Expr, UnaryOperator, Value};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::sql::dialect::function;

/// The functions whose result is JSON text already (a value inserted as JSON).
const JSON_CALLS: [&str; 5] = [
    "json",
    "json_object_null_on_null",
    "json_object_absent_on_null",
    "json_array_null_on_null",
    "json_array_absent_on_null",
];

fn is_word(t: &Token, word: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// The prefix hook: `name (` where `name` is one of the JSON forms; `None` for other names.
pub(crate) fn parse_prefix(p: &mut Parser, name: &str) -> Option<Result<Expr, ParserError>> {
    let upper = name.to_ascii_uppercase();
    Some(match upper.as_str() {
        "JSON_OBJECT" => parse_constructor(p, true),
        "JSON_ARRAY" => parse_constructor(p, false),
        "JSON_ARRAYAGG" => parse_aggregate(p, false),
        "JSON_OBJECTAGG" => parse_aggregate(p, true),
        "JSON" => {
            let at = p.peek_token_ref().span.start;
            Err(ParserError::ParserError(format!(
                "JSON(...) can only be used as a value of JSON_OBJECT, JSON_ARRAY, JSON_OBJECTAGG or JSON_ARRAYAGG{at}"
            )))
        }
        _ => return None,
    })
}

/// `NULL ON NULL` (→ `Some(false)`) or `ABSENT ON NULL` (→ `Some(true)`), consumed.
fn parse_on_null(p: &mut Parser) -> Option<bool> {
    let [a, b, c] = p.peek_tokens_ref::<3>();
    if !is_word(&b.token, "ON") || !is_word(&c.token, "NULL") {
        return None;
    }
    let absent = if is_word(&a.token, "ABSENT") {
        true
    } else if is_word(&a.token, "NULL") {
        false
    } else {
        return None;
    };
    for _ in 0..3 {
        p.next_token();
    }
    Some(absent)
}

/// A value of a constructor or JSON aggregate, as JSON text.
fn parse_value(p: &mut Parser) -> Result<Expr, ParserError> {
    let [a, b] = p.peek_tokens_ref::<2>();
    if is_word(&a.token, "JSON") && b.token == Token::LParen {
        p.next_token();
        p.next_token();
        let text = p.parse_expr()?;
        p.expect_token(&Token::RParen)?;
        return Ok(function("json", vec![text]));
    }
    let v = p.parse_expr()?;
    let mut inner = &v;
    while let Expr::Nested(e) = inner {
        inner = e;
    }
    let is_json = match inner {
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            JSON_CALLS.contains(&name.as_str())
        }
        _ => false,
    };
    Ok(if is_json {
        v
    } else {
        function("json_string", vec![v])
    })
}

/// `[KEY] key VALUE value`: the key and the value (JSON text).
fn parse_entry(p: &mut Parser, func: &str) -> Result<(Expr, Expr), ParserError> {
    let [a, b] = p.peek_tokens_ref::<2>();
    if is_word(&a.token, "KEY") && !is_word(&b.token, "VALUE") {
        p.next_token();
    }
    let key = p.parse_expr()?;
    if !p.parse_keyword(Keyword::VALUE) {
        let found = p.peek_token();
        return Err(ParserError::ParserError(format!(
            "{func} expects `VALUE` after a key (`[KEY] k VALUE v`), found: {}{}",
            found.token, found.span.start
        )));
    }
    Ok((key, parse_value(p)?))
}

/// `JSON_OBJECT(...)` or `JSON_ARRAY(...)`.
fn parse_constructor(p: &mut Parser, object: bool) -> Result<Expr, ParserError> {
    let func = if object { "JSON_OBJECT" } else { "JSON_ARRAY" };
    p.next_token();
    p.expect_token(&Token::LParen)?;
    let mut args = Vec::new();
    // Flink's defaults: JSON_OBJECT keeps NULLs, JSON_ARRAY leaves them out.
    let mut absent = !object;
    if !p.consume_token(&Token::RParen) {
        loop {
            if let Some(a) = parse_on_null(p) {
                absent = a;
                p.expect_token(&Token::RParen)?;
                break;
            }
            if object {
                let (k, v) = parse_entry(p, func)?;
                args.push(k);
                args.push(v);
            } else {
                args.push(parse_value(p)?);
            }
            if p.consume_token(&Token::Comma) {
                continue;
            }
            if let Some(a) = parse_on_null(p) {
                absent = a;
            }
            p.expect_token(&Token::RParen)?;
            break;
        }
    }
    if args.is_empty() {
        let empty = if object { "{}" } else { "[]" };
        return Ok(function(
            "json",
            vec![Expr::value(Value::SingleQuotedString(empty.into()))],
        ));
    }
    let name = match (object, absent) {
        (true, false) => "json_object_null_on_null",
        (true, true) => "json_object_absent_on_null",
        (false, false) => "json_array_null_on_null",
        (false, true) => "json_array_absent_on_null",
    };
    Ok(function(name, args))
}

/// `JSON_ARRAYAGG(...)` or `JSON_OBJECTAGG(...)`, with an optional `FILTER (WHERE ..)`.
fn parse_aggregate(p: &mut Parser, object: bool) -> Result<Expr, ParserError> {
    let func = if object {
        "JSON_OBJECTAGG"
    } else {
        "JSON_ARRAYAGG"
    };
    p.next_token();
    p.expect_token(&Token::LParen)?;
    let args = if object {
        let (k, v) = parse_entry(p, func)?;
        vec![k, v]
    } else {
        vec![parse_value(p)?]
    };
    // Flink's defaults: JSON_OBJECTAGG keeps NULLs, JSON_ARRAYAGG leaves them out.
    let absent = parse_on_null(p).unwrap_or(!object);
    p.expect_token(&Token::RParen)?;
    let name = match (object, absent) {
        (true, false) => "json_objectagg_null_on_null",
        (true, true) => "json_objectagg_absent_on_null",
        (false, false) => "json_arrayagg_null_on_null",
        (false, true) => "json_arrayagg_absent_on_null",
    };
    let mut call = function(name, args);
    let [a, b] = p.peek_tokens_ref::<2>();
    if is_word(&a.token, "FILTER") && b.token == Token::LParen {
        p.next_token();
        p.next_token();
        p.expect_keyword_is(Keyword::WHERE)?;
        let condition = p.parse_expr()?;
        p.expect_token(&Token::RParen)?;
        if let Expr::Function(f) = &mut call {
            f.filter = Some(Box::new(condition));
        }
    }
    let next = p.peek_token_ref();
    if is_word(&next.token, "OVER") {
        return Err(ParserError::ParserError(format!(
            "{func} is not supported in OVER windows (as in Flink){}",
            next.span.start
        )));
    }
    Ok(call)
}

/// The infix hook: `IS [NOT] JSON [kind]` after `expr`; `None` for anything else.
pub(crate) fn parse_infix(p: &mut Parser, expr: &Expr) -> Option<Result<Expr, ParserError>> {
    let [a, b, c] = p.peek_tokens_ref::<3>();
    if !is_word(&a.token, "IS") {
        return None;
    }
    let negated = is_word(&b.token, "NOT");
    if !is_word(if negated { &c.token } else { &b.token }, "JSON") {
        return None;
    }
    for _ in 0..if negated { 3 } else { 2 } {
        p.next_token();
    }
    let kinds = ["VALUE", "SCALAR", "ARRAY", "OBJECT"];
    let kind = match &p.peek_token_ref().token {
        Token::Word(w) if w.quote_style.is_none() => kinds
            .iter()
            .find(|k| w.value.eq_ignore_ascii_case(k))
            .copied(),
        _ => None,
    };
    if kind.is_some() {
        p.next_token();
    }
    let call = function(
        "is_json",
        vec![
            expr.clone(),
            Expr::value(Value::SingleQuotedString(kind.unwrap_or("VALUE").into())),
        ],
    );
    Some(Ok(if negated {
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: Box::new(call),
        }
    } else {
        call
    }))
}
