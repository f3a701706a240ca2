//! Small helpers shared by the Flink statement parsers ([`super::parser`], [`super::ddl`],
//! [`super::show`], [`super::flink_types`]): matching Flink's non-reserved words on sqlparser's
//! token stream, string literals, `WITH ('k' = 'v')` option lists, and the error type that carries
//! either a sqlparser error (with its position) or one of our own errors up to `parse_script`.
//!
//! Data path: script text → tokens (sqlparser) → these helpers, driven by our statement parsers.

use datafusion::sql::sqlparser::ast::Ident;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::Error;

/// A parse failure: either sqlparser's error (its message ends with the position) or one of ours
/// (e.g. `not_supported`), converted to [`Error`] by `parse_script`.
#[derive(Debug)]
pub(crate) enum Fail {
    Parser(ParserError),
    Engine(Error),
}

impl From<ParserError> for Fail {
    fn from(e: ParserError) -> Self {
        Fail::Parser(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Engine(e)
    }
}

/// The result type of our statement parsers.
pub(crate) type PResult<T> = std::result::Result<T, Fail>;

/// A sqlparser-style error at a token: `message at Line: L, Column: C`.
pub(crate) fn error_at(message: impl std::fmt::Display, at: &TokenWithSpan) -> ParserError {
    ParserError::ParserError(format!("{message}{}", at.span.start))
}

/// Is the next token the unquoted word `word` (case-insensitive)?
pub(crate) fn peek_word(p: &Parser, word: &str) -> bool {
    is_word(&p.peek_token_ref().token, word)
}

/// Is the `n`-th next token the unquoted word `word` (case-insensitive)?
pub(crate) fn peek_nth_word(p: &Parser, n: usize, word: &str) -> bool {
    is_word(&p.peek_nth_token_ref(n).token, word)
}

/// Is `token` the unquoted word `word` (case-insensitive)?
pub(crate) fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Consumes the unquoted word `word` if it is next.
pub(crate) fn parse_word(p: &mut Parser, word: &str) -> bool {
    if peek_word(p, word) {
        p.advance_token();
        true
    } else {
        false
    }
}

/// Consumes the words `words` if they all come next, in order; otherwise consumes nothing.
pub(crate) fn parse_words(p: &mut Parser, words: &[&str]) -> bool {
    if words
        .iter()
        .enumerate()
        .all(|(i, w)| peek_nth_word(p, i, w))
    {
        for _ in words {
            p.advance_token();
        }
        true
    } else {
        false
    }
}

/// Consumes the word `word` or fails with `Expected: WORD, found: ...`.
pub(crate) fn expect_word(p: &mut Parser, word: &str) -> Result<(), ParserError> {
    if parse_word(p, word) {
        Ok(())
    } else {
        p.expected(word, p.peek_token())
    }
}

/// Consumes the words `words` in order or fails at the first one that is missing.
pub(crate) fn expect_words(p: &mut Parser, words: &[&str]) -> Result<(), ParserError> {
    for w in words {
        expect_word(p, w)?;
    }
    Ok(())
}

/// A single-quoted string literal (`''` already unescaped by the tokenizer).
pub(crate) fn parse_string(p: &mut Parser) -> Result<String, ParserError> {
    let tok = p.next_token();
    match tok.token {
        Token::SingleQuotedString(s) => Ok(s),
        _ => p.expected("a string literal", tok),
    }
}

/// An optional `COMMENT 'text'`.
pub(crate) fn parse_optional_comment(p: &mut Parser) -> Result<Option<String>, ParserError> {
    if parse_word(p, "COMMENT") {
        Ok(Some(parse_string(p)?))
    } else {
        Ok(None)
    }
}

/// `('k' = 'v', ...)`: the option list of `WITH`, `SET` and `CREATE CATALOG`. Keys must be string
/// literals (Flink's rule); an empty list `()` is allowed.
pub(crate) fn parse_options(p: &mut Parser) -> Result<Vec<(String, String)>, ParserError> {
    p.expect_token(&Token::LParen)?;
    let mut out = Vec::new();
    if p.consume_token(&Token::RParen) {
        return Ok(out);
    }
    loop {
        let key_tok = p.peek_token();
        let key = parse_string(p).map_err(|_| {
            error_at(
                format!(
                    "Expected: an option key as a string literal like 'connector', found: {key_tok}"
                ),
                &key_tok,
            )
        })?;
        p.expect_token(&Token::Eq)?;
        let value = parse_string(p)?;
        out.push((key, value));
        if p.consume_token(&Token::Comma) {
            continue;
        }
        p.expect_token(&Token::RParen)?;
        return Ok(out);
    }
}

/// `('k', ...)`: the key list of `ALTER TABLE ... RESET`.
pub(crate) fn parse_string_list(p: &mut Parser) -> Result<Vec<String>, ParserError> {
    p.expect_token(&Token::LParen)?;
    let mut out = Vec::new();
    if p.consume_token(&Token::RParen) {
        return Ok(out);
    }
    loop {
        out.push(parse_string(p)?);
        if p.consume_token(&Token::Comma) {
            continue;
        }
        p.expect_token(&Token::RParen)?;
        return Ok(out);
    }
}

/// `(a, b, ...)`: a parenthesized list of column names, kept exactly as written.
pub(crate) fn parse_name_list(p: &mut Parser) -> Result<Vec<String>, ParserError> {
    p.expect_token(&Token::LParen)?;
    let idents = p.parse_comma_separated(|p| parse_name(p))?;
    p.expect_token(&Token::RParen)?;
    Ok(idents.into_iter().map(|i| i.value).collect())
}

/// One identifier (a word or a backticked name); string literals are not names.
pub(crate) fn parse_name(p: &mut Parser) -> Result<Ident, ParserError> {
    let tok = p.next_token();
    match tok.token {
        Token::Word(w) => Ok(w.into_ident(tok.span)),
        _ => p.expected("identifier", tok),
    }
}

/// Fails unless the whole statement was consumed.
pub(crate) fn expect_end(p: &Parser) -> Result<(), ParserError> {
    let tok = p.peek_token();
    if tok.token == Token::EOF {
        Ok(())
    } else {
        Err(error_at(
            format!("Expected: end of statement, found: {tok}"),
            &tok,
        ))
    }
}
