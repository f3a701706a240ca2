//! Flink's dynamic table options hint: `table_path /*+ OPTIONS('k' = 'v', ...) */ [[AS] alias]`
//! in a `FROM` clause or as an `INSERT` target.
//!
//! sqlparser sees hints as comments (whitespace), so the parser handles them around it:
//! [`find`] reads every `/*+ ... */` comment of a statement's tokens and keeps its `OPTIONS`
//! hints (other hints, e.g. `BROADCAST`, are ignored as comments), each tied to the word token
//! before the comment; after sqlparser has built the AST, [`Hints::attach`] finds the table
//! references whose last name part is that very token (by position) and rewrites the part to
//! [`encode`]d `name` + options. The planner's snapshot builder decodes the name and gives that
//! one reference a copy of the table's definition with the options merged in; a reference
//! without an alias gets its own name as alias so `t.col` keeps working.
//!
//! A hint that is not right after a table name, or a malformed `OPTIONS` list, is a syntax
//! error at the hint's line:column.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Ident, ObjectName, ObjectNamePart, TableAlias, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::tokenizer::{
    Location as SqlLocation, Token, TokenWithSpan, Tokenizer, Whitespace,
};

use crate::error::{Error, Location, Result, Span};
use crate::sql::dialect::FlinkDialect;
use crate::sql::statement::{AlterViewAction, Insert, Statement};

/// Separates a table's name from its hinted options in an encoded name part. A control
/// character: it cannot appear in a name the user typed without quoting, and is not printable.
pub const MARK: char = '\u{1}';

/// Encodes a table name with hinted options into one name part (see the module doc).
pub fn encode(name: &str, options: &BTreeMap<String, String>) -> String {
    // A map of strings always serializes.
    let json = serde_json::to_string(options).unwrap_or_default();
    format!("{name}{MARK}{json}")
}

/// Splits an encoded name part into the table's name and its hinted options; `None` for a plain
/// name.
pub fn decode(part: &str) -> Option<(&str, BTreeMap<String, String>)> {
    let (name, json) = part.split_once(MARK)?;
    let options = serde_json::from_str(json).ok()?;
    Some((name, options))
}

/// The table's own name of a possibly [`encode`]d name part (for messages).
pub fn display_name(part: &str) -> &str {
    part.split_once(MARK).map_or(part, |(name, _)| name)
}

/// `/*+ OPTIONS('k'='v', ...) */` as SQL text (to print a hinted table reference back).
pub fn hint_text(options: &BTreeMap<String, String>) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let list: Vec<String> = options
        .iter()
        .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
        .collect();
    format!("/*+ OPTIONS({}) */", list.join(", "))
}

/// One table's `OPTIONS` hints.
#[derive(Debug)]
struct Hint {
    /// Where the table name's last part starts (the word before the hint).
    table_at: SqlLocation,
    /// Where the (first) hint comment is, for errors.
    span: Span,
    options: BTreeMap<String, String>,
    used: bool,
}

/// The `OPTIONS` hints of one statement, waiting to be attached to its AST.
#[derive(Debug, Default)]
pub(crate) struct Hints(Vec<Hint>);

/// Reads the `OPTIONS` hints in `tokens` (a statement's tokens).
///
/// # Errors
/// `Syntax` at the hint for a malformed `OPTIONS` list or a hint not after a name.
pub(crate) fn find(tokens: &[TokenWithSpan]) -> Result<Hints> {
    let mut hints: Vec<Hint> = Vec::new();
    for (i, tok) in tokens.iter().enumerate() {
        let Token::Whitespace(Whitespace::MultiLineComment(text)) = &tok.token else {
            continue;
        };
        let Some(body) = text.strip_prefix('+') else {
            continue;
        };
        // The body starts after `/*+`: three characters after the comment's start.
        let start = tok.span.start;
        let body_at = SqlLocation::new(start.line, start.column + 3);
        let found = parse_hint_list(body, body_at)?;
        if found.is_empty() {
            continue;
        }
        let span = Span::new(location(tok.span.start), location(tok.span.end));
        let before = tokens[..i]
            .iter()
            .rev()
            .find(|t| !matches!(t.token, Token::Whitespace(_)));
        let Some(word) = before.filter(|t| matches!(t.token, Token::Word(_))) else {
            return Err(misplaced(span));
        };
        let table_at = word.span.start;
        let hint = match hints.iter_mut().find(|h| h.table_at == table_at) {
            Some(h) => h,
            None => {
                hints.push(Hint {
                    table_at,
                    span,
                    options: BTreeMap::new(),
                    used: false,
                });
                let last = hints.len() - 1;
                &mut hints[last]
            }
        };
        for options in found {
            hint.options.extend(options);
        }
    }
    Ok(Hints(hints))
}

fn misplaced(span: Span) -> Error {
    Error::syntax(
        "an OPTIONS hint must follow a table name (`FROM t /*+ OPTIONS('k'='v') */` or \
         `INSERT INTO t /*+ OPTIONS('k'='v') */ ...`)",
        Some(span),
    )
}

fn location(l: SqlLocation) -> Location {
    Location {
        line: l.line,
        column: l.column,
    }
}

/// Parses the hints of one `/*+ ... */` comment: comma-separated `NAME[(...)]`; returns the
/// option lists of its `OPTIONS` hints. Other hints are skipped (they stay comments).
fn parse_hint_list(body: &str, body_at: SqlLocation) -> Result<Vec<Vec<(String, String)>>> {
    // Positions inside the comment, made script-relative.
    let shift = |l: SqlLocation| {
        if l.line <= 1 {
            SqlLocation::new(body_at.line, body_at.column + l.column.saturating_sub(1))
        } else {
            SqlLocation::new(body_at.line + l.line - 1, l.column)
        }
    };
    let at = |t: &TokenWithSpan| {
        Some(Span::new(
            location(shift(t.span.start)),
            location(shift(t.span.end)),
        ))
    };
    let tokens: Vec<TokenWithSpan> =
        match Tokenizer::new(&FlinkDialect, body).tokenize_with_location() {
            Ok(tokens) => tokens
                .into_iter()
                .filter(|t| !matches!(t.token, Token::Whitespace(_)))
                .collect(),
            Err(e) => {
                // Not SQL tokens (e.g. an unterminated quote): only an error if it is an OPTIONS hint.
                if body
                    .trim_start()
                    .to_ascii_uppercase()
                    .starts_with("OPTIONS")
                {
                    let l = location(shift(e.location));
                    return Err(Error::syntax(
                        format!("malformed OPTIONS hint: {}", e.message),
                        Some(Span::new(l, l)),
                    ));
                }
                return Ok(Vec::new());
            }
        };
    let end = location(shift(SqlLocation::new(1, body.chars().count() as u64 + 1)));
    let end_span = Some(Span::new(end, end));
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let is_options =
            matches!(&tokens[i].token, Token::Word(w) if w.value.eq_ignore_ascii_case("OPTIONS"));
        if !is_options {
            // Another hint: skip to the next top-level comma.
            let mut depth = 0usize;
            while i < tokens.len() {
                match tokens[i].token {
                    Token::LParen => depth += 1,
                    Token::RParen => depth = depth.saturating_sub(1),
                    Token::Comma if depth == 0 => break,
                    _ => {}
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        i += 1;
        let expect = |i: usize, want: &Token, what: &str| -> Result<()> {
            match tokens.get(i) {
                Some(t) if t.token == *want => Ok(()),
                Some(t) => Err(Error::syntax(
                    format!("malformed OPTIONS hint: expected {what}, found {}", t.token),
                    at(t),
                )),
                None => Err(Error::syntax(
                    format!("malformed OPTIONS hint: expected {what}, found the end of the hint"),
                    end_span,
                )),
            }
        };
        expect(i, &Token::LParen, "(")?;
        i += 1;
        let mut options = Vec::new();
        loop {
            let key = match tokens.get(i) {
                Some(TokenWithSpan {
                    token: Token::SingleQuotedString(s),
                    ..
                }) => s.clone(),
                Some(TokenWithSpan {
                    token: Token::Word(w),
                    ..
                }) if w.quote_style.is_none() => w.value.clone(),
                Some(t) => {
                    return Err(Error::syntax(
                        format!(
                            "malformed OPTIONS hint: expected a key like 'path', found {}",
                            t.token
                        ),
                        at(t),
                    ));
                }
                None => {
                    return Err(Error::syntax(
                        "malformed OPTIONS hint: expected a key like 'path', found the end of the hint",
                        end_span,
                    ));
                }
            };
            i += 1;
            expect(i, &Token::Eq, "= after the key")?;
            i += 1;
            let value = match tokens.get(i) {
                Some(TokenWithSpan {
                    token: Token::SingleQuotedString(s),
                    ..
                }) => s.clone(),
                Some(t) => {
                    return Err(Error::syntax(
                        format!(
                            "malformed OPTIONS hint: expected a quoted value for '{key}', found {}",
                            t.token
                        ),
                        at(t),
                    ));
                }
                None => {
                    return Err(Error::syntax(
                        format!(
                            "malformed OPTIONS hint: expected a quoted value for '{key}', found the end of the hint"
                        ),
                        end_span,
                    ));
                }
            };
            i += 1;
            options.push((key, value));
            match tokens.get(i).map(|t| &t.token) {
                Some(Token::Comma) => i += 1,
                _ => break,
            }
        }
        expect(i, &Token::RParen, ", or )")?;
        i += 1;
        out.push(options);
        match tokens.get(i) {
            None => {}
            Some(t) if t.token == Token::Comma => i += 1,
            Some(t) => {
                return Err(Error::syntax(
                    format!(
                        "malformed hint list: expected , or the end of the hint after OPTIONS(...), found {}",
                        t.token
                    ),
                    at(t),
                ));
            }
        }
    }
    Ok(out)
}

impl Hints {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Attaches each hint to the table reference it follows (see the module doc).
    ///
    /// # Errors
    /// `Syntax` at a hint that follows no table reference.
    pub(crate) fn attach<T: Hinted + ?Sized>(mut self, target: &mut T) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        target.attach_hints(&mut self);
        match self.0.iter().find(|h| !h.used) {
            Some(h) => Err(misplaced(h.span)),
            None => Ok(()),
        }
    }

    /// Encodes `name` if a hint follows its last part; returns the table's own name part then.
    fn apply(&mut self, name: &mut ObjectName) -> Option<Ident> {
        let Some(ObjectNamePart::Identifier(last)) = name.0.last_mut() else {
            return None;
        };
        let hint = self
            .0
            .iter_mut()
            .find(|h| !h.used && h.table_at == last.span.start)?;
        hint.used = true;
        let plain = last.clone();
        *last = Ident {
            value: encode(&plain.value, &hint.options),
            quote_style: Some('`'),
            span: plain.span,
        };
        Some(plain)
    }

    fn apply_query(&mut self, query: &mut ast::Query) {
        struct V<'a>(&'a mut Hints);
        impl VisitorMut for V<'_> {
            type Break = ();
            fn pre_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<()> {
                if let TableFactor::Table { name, alias, .. } = tf
                    && let Some(plain) = self.0.apply(name)
                    && alias.is_none()
                {
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: plain,
                        columns: Vec::new(),
                        at: None,
                    });
                }
                ControlFlow::Continue(())
            }
        }
        let _ = query.visit(&mut V(self));
    }

    fn apply_insert(&mut self, insert: &mut Insert) {
        let _ = self.apply(&mut insert.table);
        self.apply_query(&mut insert.source);
    }
}

/// AST nodes that may hold hinted table references.
pub(crate) trait Hinted {
    fn attach_hints(&mut self, hints: &mut Hints);
}

impl Hinted for ast::Query {
    fn attach_hints(&mut self, hints: &mut Hints) {
        hints.apply_query(self);
    }
}

impl Hinted for ast::Expr {
    /// Expressions hold no table references (a hint in one is misplaced).
    fn attach_hints(&mut self, _: &mut Hints) {}
}

impl Hinted for Statement {
    fn attach_hints(&mut self, hints: &mut Hints) {
        match self {
            Statement::Query(q) => hints.apply_query(q),
            Statement::Insert(insert) => hints.apply_insert(insert),
            Statement::StatementSet(inserts) => {
                for insert in inserts {
                    hints.apply_insert(insert);
                }
            }
            Statement::CreateTable(ct) => {
                if let Some(q) = &mut ct.as_query {
                    hints.apply_query(q);
                }
            }
            Statement::CreateView(cv) => hints.apply_query(&mut cv.query),
            Statement::AlterView {
                action: AlterViewAction::As(q),
                ..
            } => hints.apply_query(q),
            Statement::Explain { statement, .. } => statement.attach_hints(hints),
            _ => {}
        }
    }
}
