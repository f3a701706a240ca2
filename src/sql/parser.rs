//! Parses Flink SQL scripts into [`ParsedStatement`]s: the entry point of the SQL layer.
//!
//! Data path: script text → one tokenization of the whole script (sqlparser's tokenizer under
//! [`FlinkDialect`], with line:column locations) → split into statements on top-level `;` tokens
//! (a statement set `EXECUTE STATEMENT SET BEGIN ...; ...; END` / `BEGIN STATEMENT SET; ...; END`
//! is kept whole) → each statement parsed by our dispatch (`parse_statement`), which drives
//! sqlparser's `Parser` for queries and expressions and parses Flink-only statements itself
//! (DDL in `ddl.rs`, `SHOW` in `show.rs`) → typed [`Statement`]s for the session.
//!
//! Flink's `/*+ OPTIONS(...) */` table hints are comments to sqlparser; [`hints`] reads them from
//! the tokens and attaches them to the parsed table references.
//!
//! Positions are script-relative: every statement is parsed from the script's own tokens, so
//! errors and spans name the line and column in the whole script.

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{
    Location as SqlLocation, Span as SqlSpan, Token, TokenWithSpan, Tokenizer,
};

use crate::error::{Error, Location, Result, Span};
use crate::sql::dialect::FlinkDialect;
use crate::sql::hints::{self, Hinted};
use crate::sql::statement::{Insert, ParsedStatement, Statement};
use crate::sql::support::{
    Fail, PResult, error_at, expect_end, expect_words, is_word, parse_name, parse_name_list,
    parse_word, parse_words, peek_word,
};
use crate::sql::{ddl, show};

/// The statement keywords we know, for the "unsupported statement" error.
const STATEMENTS: &str = "SELECT, VALUES, WITH, INSERT, CREATE, DROP, ALTER, USE, SHOW, DESCRIBE, EXPLAIN, SET, RESET, \
                          EXECUTE, BEGIN STATEMENT SET, STOP JOB";

/// The `EXPLAIN` details Flink knows.
const EXPLAIN_DETAILS: &[&str] = &[
    "ESTIMATED_COST",
    "CHANGELOG_MODE",
    "JSON_EXECUTION_PLAN",
    "PLAN_ADVICE",
];

/// Parses a script of one or more `;`-separated statements. The last `;` is optional; empty
/// statements and comments produce nothing.
///
/// # Errors
/// A `Syntax` error whose span is the offending token's position in the script, or
/// `NotSupported` for statements Weir does not support yet (e.g. `CREATE FUNCTION`).
pub fn parse_script(sql: &str) -> Result<Vec<ParsedStatement>> {
    let tokens = tokenize(sql)?;
    let lines = LineIndex::new(sql);
    let mut out = Vec::new();
    for piece in split_statements(&tokens) {
        let body = &tokens[piece.start..piece.end];
        let Some(first) = body
            .iter()
            .find(|t| !matches!(t.token, Token::Whitespace(_)))
        else {
            continue;
        };
        let Some(last) = body
            .iter()
            .rev()
            .find(|t| !matches!(t.token, Token::Whitespace(_)))
        else {
            continue;
        };
        let (first_span, last_span) = (first.span, last.span);
        let eof_at = piece
            .terminator
            .map(|i| tokens[i].span.start)
            .unwrap_or(last_span.end);
        let statement = parse_tokens(body, eof_at, parse_statement)?;
        let span = Span::new(location(first_span.start), location(last_span.end));
        let text = lines
            .slice(sql, first_span.start, last_span.end)
            .to_string();
        out.push(ParsedStatement {
            statement,
            span,
            text,
        });
    }
    Ok(out)
}

/// Parses one SQL expression (stored text of computed columns and watermark expressions).
///
/// # Errors
/// `Syntax` with the position in `sql`.
pub fn parse_expr(sql: &str) -> Result<ast::Expr> {
    let tokens = tokenize(sql)?;
    parse_tokens(&tokens, end_of(&tokens), |p| Ok(p.parse_expr()?))
}

/// Parses one query (stored text of view definitions).
///
/// # Errors
/// `Syntax` with the position in `sql`.
pub fn parse_query(sql: &str) -> Result<ast::Query> {
    let tokens = tokenize(sql)?;
    parse_tokens(&tokens, end_of(&tokens), |p| Ok(*p.parse_query()?))
}

fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>> {
    Tokenizer::new(&FlinkDialect, sql)
        .tokenize_with_location()
        .map_err(|e| {
            let at = location(e.location);
            Error::syntax(e.message, (e.location.line > 0).then(|| Span::new(at, at)))
        })
}

/// Where an input without a terminator ends: the end of its last token.
fn end_of(tokens: &[TokenWithSpan]) -> SqlLocation {
    tokens
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| t.span.end)
        .unwrap_or(SqlLocation::new(1, 1))
}

/// Runs `f` on a parser over `tokens` (plus an EOF token placed at `eof_at`, so "found: EOF"
/// errors have a position), requires that all tokens are consumed, and converts errors.
///
/// `OPTIONS` hints in the tokens' comments are attached to the table references they follow
/// (see [`hints`]).
fn parse_tokens<T: Hinted>(
    tokens: &[TokenWithSpan],
    eof_at: SqlLocation,
    f: impl FnOnce(&mut Parser) -> PResult<T>,
) -> Result<T> {
    let hints = hints::find(tokens)?;
    let mut value = parse_plain(tokens, eof_at, f)?;
    if !hints.is_empty() {
        hints.attach(&mut value)?;
    }
    Ok(value)
}

fn parse_plain<T>(
    tokens: &[TokenWithSpan],
    eof_at: SqlLocation,
    f: impl FnOnce(&mut Parser) -> PResult<T>,
) -> Result<T> {
    let mut with_eof = tokens.to_vec();
    with_eof.push(TokenWithSpan::new(Token::EOF, SqlSpan::new(eof_at, eof_at)));
    let dialect = FlinkDialect;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(with_eof);
    let result = f(&mut parser).and_then(|v| {
        expect_end(&parser)?;
        Ok(v)
    });
    // Where the parser stopped: the position of errors whose message names none.
    let stopped = parser.peek_token_ref().span;
    result.map_err(|fail| to_error(fail, tokens, eof_at, stopped))
}

/// Turns a parse failure into our error, with the span of the offending token (`stopped`, the
/// token the parser stopped at, when the message names no position).
fn to_error(fail: Fail, tokens: &[TokenWithSpan], eof_at: SqlLocation, stopped: SqlSpan) -> Error {
    let err = match fail {
        Fail::Engine(e) => return e,
        Fail::Parser(e) => e,
    };
    let text = match err {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
        ParserError::RecursionLimitExceeded => {
            let at = location(eof_at);
            return Error::syntax("statement is nested too deeply", Some(Span::new(at, at)));
        }
    };
    let (message, at) = split_position(&text);
    let span = at.map(|loc| {
        tokens
            .iter()
            .find(|t| t.span.start == loc && !matches!(t.token, Token::Whitespace(_)))
            .map(|t| Span::new(location(t.span.start), location(t.span.end)))
            .unwrap_or_else(|| Span::new(location(loc), location(loc)))
    });
    let span = span.or_else(|| {
        (stopped.start.line > 0).then(|| Span::new(location(stopped.start), location(stopped.end)))
    });
    Error::syntax(message, span)
}

/// Splits `"... at Line: L, Column: C"` into the message and the position.
fn split_position(text: &str) -> (String, Option<SqlLocation>) {
    if let Some(i) = text.rfind(" at Line: ") {
        let rest = &text[i + " at Line: ".len()..];
        if let Some((l, c)) = rest.split_once(", Column: ")
            && let (Ok(line), Ok(column)) = (l.trim().parse::<u64>(), c.trim().parse::<u64>())
        {
            return (text[..i].to_string(), Some(SqlLocation::new(line, column)));
        }
    }
    (text.to_string(), None)
}

fn location(l: SqlLocation) -> Location {
    Location {
        line: l.line,
        column: l.column,
    }
}

/// One statement's tokens `[start, end)` and the index of its `;`, if any.
struct Piece {
    start: usize,
    end: usize,
    terminator: Option<usize>,
}

/// Splits the script's tokens on top-level `;`. Inside a statement set (after `STATEMENT SET
/// BEGIN` or `BEGIN STATEMENT SET`) `;` does not split until the set's `END` (an `END` that
/// does not close a `CASE`).
fn split_statements(tokens: &[TokenWithSpan]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut recent: Vec<&Token> = Vec::new(); // the last significant tokens of this statement
    let mut in_set = false;
    let mut case_depth = 0usize;
    for (i, tok) in tokens.iter().enumerate() {
        match &tok.token {
            Token::Whitespace(_) => continue,
            Token::SemiColon if !in_set => {
                pieces.push(Piece {
                    start,
                    end: i,
                    terminator: Some(i),
                });
                start = i + 1;
                recent.clear();
                case_depth = 0;
                continue;
            }
            _ => {}
        }
        if in_set {
            if is_word(&tok.token, "CASE") {
                case_depth += 1;
            } else if is_word(&tok.token, "END") {
                if case_depth > 0 {
                    case_depth -= 1;
                } else {
                    in_set = false;
                }
            }
            continue;
        }
        recent.push(&tok.token);
        if recent.len() > 3 {
            recent.remove(0);
        }
        if let [a, b, c] = recent.as_slice()
            && ((is_word(a, "STATEMENT") && is_word(b, "SET") && is_word(c, "BEGIN"))
                || (is_word(a, "BEGIN") && is_word(b, "STATEMENT") && is_word(c, "SET")))
        {
            in_set = true;
        }
    }
    if start < tokens.len() {
        pieces.push(Piece {
            start,
            end: tokens.len(),
            terminator: None,
        });
    }
    pieces
}

/// Maps sqlparser's line:column locations to byte offsets in the script.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(sql: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn offset(&self, sql: &str, loc: SqlLocation) -> usize {
        let Some(&line_start) = usize::try_from(loc.line)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|l| self.starts.get(l))
        else {
            return sql.len();
        };
        let column = usize::try_from(loc.column)
            .unwrap_or(usize::MAX)
            .saturating_sub(1);
        sql[line_start..]
            .char_indices()
            .nth(column)
            .map(|(i, _)| line_start + i)
            .unwrap_or(sql.len())
    }

    fn slice<'s>(&self, sql: &'s str, start: SqlLocation, end: SqlLocation) -> &'s str {
        let (a, b) = (self.offset(sql, start), self.offset(sql, end));
        sql.get(a..b.max(a)).unwrap_or("")
    }
}

/// A statement's span from its first token's start to the last consumed token's end.
pub(crate) fn span_between(start: SqlLocation, p: &Parser) -> Span {
    Span::new(location(start), location(p.get_current_token().span.end))
}

/// Parses one statement, dispatching on its leading keyword(s).
pub(crate) fn parse_statement(p: &mut Parser) -> PResult<Statement> {
    let tok = p.peek_token();
    let word = match &tok.token {
        Token::LParen => return Ok(Statement::Query(p.parse_query()?)),
        Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        Token::EOF => return Err(error_at("Expected: a statement, found: EOF", &tok).into()),
        _ => {
            return Err(error_at(
                format!("Expected: a statement ({STATEMENTS}), found: {tok}"),
                &tok,
            )
            .into());
        }
    };
    match word.as_str() {
        "SELECT" | "VALUES" | "WITH" => Ok(Statement::Query(p.parse_query()?)),
        "INSERT" => Ok(Statement::Insert(parse_insert(p)?)),
        "CREATE" => ddl::parse_create(p),
        "DROP" => ddl::parse_drop(p),
        "ALTER" => ddl::parse_alter(p),
        "SHOW" => show::parse_show(p),
        "USE" => parse_use(p),
        "DESCRIBE" | "DESC" => {
            p.advance_token();
            let _ = parse_word(p, "EXTENDED");
            Ok(Statement::Describe {
                name: p.parse_object_name(false)?,
            })
        }
        "EXPLAIN" => parse_explain(p),
        "SET" => parse_set(p),
        "RESET" => parse_reset(p),
        "EXECUTE" => parse_execute(p),
        "STOP" => parse_stop_job(p),
        "BEGIN" => {
            p.advance_token();
            expect_words(p, &["STATEMENT", "SET"])?;
            p.expect_token(&Token::SemiColon)?;
            Ok(Statement::StatementSet(parse_statement_set_body(p)?))
        }
        _ => Err(error_at(
            format!("Unsupported statement {word}; expected one of: {STATEMENTS}"),
            &tok,
        )
        .into()),
    }
}

/// `INSERT INTO|OVERWRITE [TABLE] name [PARTITION (k = v, ...)] [(c1, c2)] query`.
pub(crate) fn parse_insert(p: &mut Parser) -> PResult<Insert> {
    let start = p.peek_token().span.start;
    expect_words(p, &["INSERT"])?;
    let overwrite = if parse_word(p, "OVERWRITE") {
        true
    } else {
        expect_words(p, &["INTO"])?;
        false
    };
    let _ = parse_word(p, "TABLE");
    let table = p.parse_object_name(false)?;
    let mut partition = Vec::new();
    if parse_word(p, "PARTITION") {
        p.expect_token(&Token::LParen)?;
        loop {
            let key = parse_name(p)?.value;
            p.expect_token(&Token::Eq)?;
            let value = p.parse_expr()?;
            partition.push((key, value));
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen)?;
    }
    // `(a, b)` is a column list unless the parenthesis opens the query itself.
    let columns = if p.peek_token_ref().token == Token::LParen
        && !starts_query(&p.peek_nth_token_ref(1).token)
    {
        parse_name_list(p)?
    } else {
        Vec::new()
    };
    let source = p.parse_query()?;
    Ok(Insert {
        table,
        overwrite,
        partition,
        columns,
        source,
        span: span_between(start, p),
    })
}

fn starts_query(t: &Token) -> bool {
    *t == Token::LParen || is_word(t, "SELECT") || is_word(t, "VALUES") || is_word(t, "WITH")
}

/// `USE CATALOG name` / `USE [catalog.]database`.
fn parse_use(p: &mut Parser) -> PResult<Statement> {
    p.advance_token(); // USE
    let catalog_follows =
        peek_word(p, "CATALOG") && matches!(p.peek_nth_token_ref(1).token, Token::Word(_));
    if catalog_follows {
        p.advance_token();
        return Ok(Statement::UseCatalog(parse_name(p)?.value));
    }
    Ok(Statement::UseDatabase(p.parse_object_name(false)?))
}

/// `EXPLAIN [PLAN FOR] [detail, ...] statement` / `EXPLAIN ANALYZE query`.
fn parse_explain(p: &mut Parser) -> PResult<Statement> {
    p.advance_token(); // EXPLAIN
    let analyze = parse_word(p, "ANALYZE");
    let _ = parse_words(p, &["PLAN", "FOR"]);
    let mut details = Vec::new();
    while let Some(d) = EXPLAIN_DETAILS.iter().find(|d| peek_word(p, d)) {
        p.advance_token();
        details.push(d.to_string());
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    let at = p.peek_token();
    let statement = parse_statement(p)?;
    let allowed = match statement {
        Statement::Query(_) => true,
        Statement::Insert(_) | Statement::StatementSet(_) => !analyze,
        _ => false,
    };
    if !allowed {
        let what = if analyze {
            "a query"
        } else {
            "a query, INSERT or statement set"
        };
        return Err(error_at(format!("Expected: {what} after EXPLAIN, found: {at}"), &at).into());
    }
    Ok(Statement::Explain {
        details,
        analyze,
        statement: Box::new(statement),
    })
}

/// `STOP JOB '<id>' [WITH SAVEPOINT] [WITH DRAIN]`.
fn parse_stop_job(p: &mut Parser) -> PResult<Statement> {
    p.advance_token(); // STOP
    expect_words(p, &["JOB"])?;
    let tok = p.next_token();
    let id = match &tok.token {
        Token::SingleQuotedString(s) => s.clone(),
        _ => {
            return Err(error_at(format!("Expected: a job id string, found: {tok}"), &tok).into());
        }
    };
    let (mut savepoint, mut drain) = (false, false);
    while parse_word(p, "WITH") {
        if parse_word(p, "SAVEPOINT") {
            savepoint = true;
        } else if parse_word(p, "DRAIN") {
            drain = true;
        } else {
            let tok = p.peek_token();
            return Err(
                error_at(format!("Expected: SAVEPOINT or DRAIN, found: {tok}"), &tok).into(),
            );
        }
    }
    Ok(Statement::StopJob {
        id,
        savepoint,
        drain,
    })
}

/// `SET` / `SET 'key' = 'value'` (also `SET a.b-c = value`).
fn parse_set(p: &mut Parser) -> PResult<Statement> {
    p.advance_token(); // SET
    if p.peek_token_ref().token == Token::EOF {
        return Ok(Statement::Set(None));
    }
    let key = parse_loose_text(p, true)?;
    p.expect_token(&Token::Eq)?;
    let value = parse_loose_text(p, false)?;
    Ok(Statement::Set(Some((key, value))))
}

/// `RESET` / `RESET 'key'`.
fn parse_reset(p: &mut Parser) -> PResult<Statement> {
    p.advance_token(); // RESET
    if p.peek_token_ref().token == Token::EOF {
        return Ok(Statement::Reset(None));
    }
    Ok(Statement::Reset(Some(parse_loose_text(p, false)?)))
}

/// A `SET` key or value: a string literal, or unquoted text up to `=` (for keys) or the end,
/// e.g. `table.exec.mini-batch.enabled` or `5 s`.
fn parse_loose_text(p: &mut Parser, key: bool) -> PResult<String> {
    let stop = |t: &Token| *t == Token::EOF || (key && *t == Token::Eq);
    if let Token::SingleQuotedString(s) = &p.peek_token_ref().token
        && stop(&p.peek_nth_token_ref(1).token)
    {
        let s = s.clone();
        p.advance_token();
        return Ok(s);
    }
    let at = p.peek_token();
    let mut text = String::new();
    loop {
        let t = p.peek_token_no_skip();
        if stop(&t.token) {
            break;
        }
        p.next_token_no_skip();
        match t.token {
            Token::Whitespace(_) if !text.is_empty() => text.push(' '),
            Token::Whitespace(_) => {}
            Token::Word(w) => text.push_str(&w.value),
            Token::SingleQuotedString(s) => text.push_str(&s),
            other => text.push_str(&other.to_string()),
        }
    }
    let text = text.trim_end().to_string();
    if text.is_empty() {
        let what = if key {
            "a configuration key like 'table.dml-sync'"
        } else {
            "a value"
        };
        return Err(error_at(format!("Expected: {what}, found: {at}"), &at).into());
    }
    Ok(text)
}

/// `EXECUTE STATEMENT SET BEGIN ... END` / `EXECUTE INSERT ...` / `EXECUTE SELECT ...`.
fn parse_execute(p: &mut Parser) -> PResult<Statement> {
    p.advance_token(); // EXECUTE
    if parse_words(p, &["STATEMENT", "SET"]) {
        expect_words(p, &["BEGIN"])?;
        return Ok(Statement::StatementSet(parse_statement_set_body(p)?));
    }
    let at = p.peek_token();
    match parse_statement(p)? {
        s @ (Statement::Insert(_) | Statement::Query(_)) => Ok(s),
        _ => Err(error_at(
            format!("Expected: STATEMENT SET, INSERT or a query after EXECUTE, found: {at}"),
            &at,
        )
        .into()),
    }
}

/// The INSERTs of a statement set up to and including its `END`.
fn parse_statement_set_body(p: &mut Parser) -> PResult<Vec<Insert>> {
    let mut inserts = Vec::new();
    loop {
        while p.consume_token(&Token::SemiColon) {}
        if parse_word(p, "END") {
            return Ok(inserts);
        }
        let at = p.peek_token();
        if !peek_word(p, "INSERT") {
            let msg = if at.token == Token::EOF {
                "Expected: END of the statement set, found: EOF".to_string()
            } else {
                format!(
                    "Only INSERT statements are allowed in a statement set; expected: INSERT or END, found: {at}"
                )
            };
            return Err(error_at(msg, &at).into());
        }
        inserts.push(parse_insert(p)?);
        let next = p.peek_token();
        if next.token != Token::SemiColon && !is_word(&next.token, "END") {
            return Err(error_at(format!("Expected: ; or END, found: {next}"), &next).into());
        }
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
