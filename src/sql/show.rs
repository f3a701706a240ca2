//! Flink's `SHOW ...` statements (catalogs, databases, tables, views, functions, columns,
//! `SHOW CREATE TABLE|VIEW`, jobs), parsed on sqlparser's token stream into [`Show`].
//!
//! Data path: tokens of one statement → [`parse_show`] → `Statement::Show` → session.

use datafusion::sql::sqlparser::parser::Parser;

use crate::sql::statement::{LikePattern, Show, Statement};
use crate::sql::support::{
    PResult, error_at, expect_word, parse_name, parse_string, parse_word, parse_words, peek_word,
};

const SHOW_FORMS: &str = "CATALOGS, CURRENT CATALOG, DATABASES, CURRENT DATABASE, TABLES, VIEWS, FUNCTIONS, \
                          USER FUNCTIONS, COLUMNS, CREATE TABLE, CREATE VIEW, JOBS";

/// `SHOW ...`; `SHOW` is the next token.
pub(crate) fn parse_show(p: &mut Parser) -> PResult<Statement> {
    p.advance_token(); // SHOW
    let at = p.peek_token();
    let show = if parse_word(p, "CATALOGS") {
        Show::Catalogs
    } else if parse_words(p, &["CURRENT", "CATALOG"]) {
        Show::CurrentCatalog
    } else if parse_words(p, &["CURRENT", "DATABASE"]) {
        Show::CurrentDatabase
    } else if parse_word(p, "DATABASES") {
        let catalog = if parse_from_or_in(p) {
            Some(parse_name(p)?.value)
        } else {
            None
        };
        Show::Databases { catalog }
    } else if parse_word(p, "TABLES") {
        let from = if parse_from_or_in(p) {
            Some(p.parse_object_name(false)?)
        } else {
            None
        };
        let like = parse_optional_like(p)?;
        Show::Tables { from, like }
    } else if parse_word(p, "VIEWS") {
        let from = if parse_from_or_in(p) {
            Some(p.parse_object_name(false)?)
        } else {
            None
        };
        Show::Views { from }
    } else if parse_word(p, "FUNCTIONS") {
        Show::Functions { user_only: false }
    } else if parse_words(p, &["USER", "FUNCTIONS"]) {
        Show::Functions { user_only: true }
    } else if parse_word(p, "COLUMNS") {
        if !parse_from_or_in(p) {
            let found = p.peek_token();
            return Err(error_at(
                format!("Expected: FROM or IN after SHOW COLUMNS, found: {found}"),
                &found,
            )
            .into());
        }
        let table = p.parse_object_name(false)?;
        let like = parse_optional_like(p)?;
        Show::Columns { table, like }
    } else if parse_word(p, "CREATE") {
        if parse_word(p, "TABLE") {
            Show::CreateTable(p.parse_object_name(false)?)
        } else {
            expect_word(p, "VIEW")?;
            Show::CreateView(p.parse_object_name(false)?)
        }
    } else if parse_word(p, "JOBS") {
        Show::Jobs
    } else {
        return Err(error_at(
            format!("Expected: one of SHOW {SHOW_FORMS}, found: {at}"),
            &at,
        )
        .into());
    };
    Ok(Statement::Show(show))
}

fn parse_from_or_in(p: &mut Parser) -> bool {
    parse_word(p, "FROM") || parse_word(p, "IN")
}

/// `[NOT] LIKE|ILIKE 'pattern'`.
fn parse_optional_like(p: &mut Parser) -> PResult<Option<LikePattern>> {
    let negated = peek_word(p, "NOT") && {
        let second = p.peek_nth_token_ref(1);
        crate::sql::support::is_word(&second.token, "LIKE")
            || crate::sql::support::is_word(&second.token, "ILIKE")
    };
    if negated {
        p.advance_token();
    }
    let case_insensitive = if parse_word(p, "LIKE") {
        false
    } else if parse_word(p, "ILIKE") {
        true
    } else {
        return Ok(None);
    };
    let pattern = parse_string(p)?;
    Ok(Some(LikePattern {
        pattern,
        negated,
        case_insensitive,
    }))
}
