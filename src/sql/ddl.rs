//! Flink DDL: `CREATE TABLE|VIEW|DATABASE|CATALOG`, `DROP ...`, `ALTER TABLE|VIEW ...`, parsed by
//! driving sqlparser's `Parser` (names, expressions, queries) with Flink's grammar around it
//! (column lists with computed and metadata columns, `WATERMARK FOR`, `PRIMARY KEY ... NOT
//! ENFORCED`, `PARTITIONED BY`, `WITH ('k' = 'v')`).
//!
//! Data path: tokens of one statement → these parsers → typed [`Statement`] → session (catalogs).

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::{Error, Location, Span};
use crate::sql::flink_types::parse_flink_type;
use crate::sql::parser::span_between;
use crate::sql::statement::{
    AlterTableAction, AlterViewAction, ColumnSpec, ColumnSpecKind, CreateFunction, CreateTable,
    CreateView, ObjectKind, Statement, WatermarkSpec,
};
use crate::sql::support::{
    PResult, error_at, expect_word, expect_words, parse_name, parse_name_list,
    parse_optional_comment, parse_options, parse_string, parse_string_list, parse_word,
    parse_words, peek_nth_word, peek_word,
};

/// A `NotSupported` error located at `at`.
fn not_supported(message: impl Into<String>, at: &TokenWithSpan) -> Error {
    let err = Error::not_supported(message);
    match token_span(at) {
        Some(span) => err.with_span(span),
        None => err,
    }
}

fn token_span(t: &TokenWithSpan) -> Option<Span> {
    (t.span.start.line > 0).then(|| {
        Span::new(
            Location {
                line: t.span.start.line,
                column: t.span.start.column,
            },
            Location {
                line: t.span.end.line,
                column: t.span.end.column,
            },
        )
    })
}

fn parse_if_not_exists(p: &mut Parser) -> bool {
    parse_words(p, &["IF", "NOT", "EXISTS"])
}

fn parse_if_exists(p: &mut Parser) -> bool {
    parse_words(p, &["IF", "EXISTS"])
}

/// `CREATE ...`: dispatches on the object kind.
pub(crate) fn parse_create(p: &mut Parser) -> PResult<Statement> {
    p.next_token(); // CREATE
    if peek_word(p, "OR") && peek_nth_word(p, 1, "REPLACE") {
        return Err(
            not_supported("CREATE OR REPLACE is not supported yet", &p.peek_token()).into(),
        );
    }
    let temporary = parse_word(p, "TEMPORARY");
    let at = p.peek_token();
    if parse_word(p, "TABLE") {
        parse_create_table(p, temporary)
    } else if parse_word(p, "VIEW") {
        parse_create_view(p, temporary)
    } else if peek_word(p, "FUNCTION") || (temporary && peek_word(p, "SYSTEM")) {
        parse_create_function(p, temporary)
    } else if !temporary && parse_word(p, "DATABASE") {
        let if_not_exists = parse_if_not_exists(p);
        let name = p.parse_object_name(false)?;
        let comment = parse_optional_comment(p)?;
        let properties = if parse_word(p, "WITH") {
            parse_options(p)?
        } else {
            Vec::new()
        };
        Ok(Statement::CreateDatabase {
            name,
            if_not_exists,
            comment,
            properties,
        })
    } else if !temporary && parse_word(p, "CATALOG") {
        let if_not_exists = parse_if_not_exists(p);
        let name = parse_name(p)?.value;
        expect_word(p, "WITH")?;
        let options = parse_options(p)?;
        Ok(Statement::CreateCatalog {
            name,
            if_not_exists,
            options,
        })
    } else {
        let expected = if temporary {
            "TABLE or VIEW after CREATE TEMPORARY"
        } else {
            "TABLE, VIEW, DATABASE or CATALOG after CREATE"
        };
        Err(error_at(format!("Expected: {expected}, found: {at}"), &at).into())
    }
}

/// `CREATE [TEMPORARY [SYSTEM]] FUNCTION [IF NOT EXISTS] name AS 'class' [LANGUAGE
/// JAVA|SCALA|PYTHON]`; `CREATE [TEMPORARY]` is consumed.
fn parse_create_function(p: &mut Parser, temporary: bool) -> PResult<Statement> {
    let at = p.peek_token();
    let system = parse_word(p, "SYSTEM");
    expect_word(p, "FUNCTION")?;
    let if_not_exists = parse_if_not_exists(p);
    let name = p.parse_object_name(false)?;
    if system && name.0.len() != 1 {
        return Err(error_at(
            format!("a TEMPORARY SYSTEM function has a simple name, not `{name}`"),
            &at,
        )
        .into());
    }
    if name.0.len() > 3 {
        return Err(error_at(
            format!("a function name has at most 3 parts (catalog.database.name), not `{name}`"),
            &at,
        )
        .into());
    }
    expect_word(p, "AS")?;
    let class_token = p.peek_token();
    let class = parse_string(p)?;
    let language = if parse_word(p, "LANGUAGE") {
        let lang = p.next_token();
        let word = lang.token.to_string().to_ascii_uppercase();
        if !matches!(word.as_str(), "JAVA" | "SCALA" | "PYTHON") {
            return Err(error_at(
                format!("Expected: JAVA, SCALA or PYTHON after LANGUAGE, found: {lang}"),
                &lang,
            )
            .into());
        }
        Some(word)
    } else {
        None
    };
    Ok(Statement::CreateFunction(CreateFunction {
        name,
        class,
        class_span: token_span(&class_token),
        language,
        temporary,
        system,
        if_not_exists,
    }))
}

/// What a `CREATE TABLE` column list collects.
#[derive(Default)]
struct TableElements {
    columns: Vec<ColumnSpec>,
    watermark: Option<WatermarkSpec>,
    primary_key: Option<Vec<String>>,
}

/// `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name [( elements )] [COMMENT 'c'] [PARTITIONED BY (..)]
/// [WITH (..)] [AS query]`; `TABLE` is consumed.
fn parse_create_table(p: &mut Parser, temporary: bool) -> PResult<Statement> {
    let if_not_exists = parse_if_not_exists(p);
    let name = p.parse_object_name(false)?;
    reject_like(p)?;
    let mut elements = TableElements::default();
    if p.consume_token(&Token::LParen) {
        loop {
            parse_table_element(p, &mut elements)?;
            if p.consume_token(&Token::Comma) {
                continue;
            }
            p.expect_token(&Token::RParen)?;
            break;
        }
    }
    let comment = parse_optional_comment(p)?;
    let partition_by = if parse_words(p, &["PARTITIONED", "BY"]) {
        parse_name_list(p)?
    } else {
        Vec::new()
    };
    reject_like(p)?;
    let options = if parse_word(p, "WITH") {
        parse_options(p)?
    } else {
        Vec::new()
    };
    reject_like(p)?;
    let as_query = if parse_word(p, "AS") {
        Some(p.parse_query()?)
    } else {
        None
    };
    Ok(Statement::CreateTable(CreateTable {
        name,
        if_not_exists,
        temporary,
        columns: elements.columns,
        watermark: elements.watermark,
        primary_key: elements.primary_key,
        comment,
        partition_by,
        options,
        as_query,
    }))
}

fn reject_like(p: &Parser) -> PResult<()> {
    if peek_word(p, "LIKE") {
        return Err(not_supported(
            "CREATE TABLE ... LIKE is not supported yet",
            &p.peek_token(),
        )
        .into());
    }
    Ok(())
}

/// One entry of the column list: a column, `WATERMARK FOR`, or a primary key constraint.
fn parse_table_element(p: &mut Parser, el: &mut TableElements) -> PResult<()> {
    let start = p.peek_token();
    if peek_word(p, "WATERMARK") && peek_nth_word(p, 1, "FOR") {
        p.advance_token();
        p.advance_token();
        let column = parse_name(p)?.value;
        expect_word(p, "AS")?;
        let expr = p.parse_expr()?;
        if el.watermark.is_some() {
            return Err(error_at("A table can have only one WATERMARK definition", &start).into());
        }
        el.watermark = Some(WatermarkSpec {
            column,
            expr,
            span: span_between(start.span.start, p),
        });
        return Ok(());
    }
    if peek_word(p, "CONSTRAINT") || (peek_word(p, "PRIMARY") && peek_nth_word(p, 1, "KEY")) {
        if parse_word(p, "CONSTRAINT") {
            parse_name(p)?;
        }
        expect_words(p, &["PRIMARY", "KEY"])?;
        let columns = parse_name_list(p)?;
        expect_not_enforced(p)?;
        return set_primary_key(el, columns, &start);
    }
    let name_ident: Ident = parse_name(p)?;
    let name = name_ident.value;
    if parse_word(p, "AS") {
        let expr = p.parse_expr()?;
        let comment = parse_optional_comment(p)?;
        el.columns.push(ColumnSpec {
            name,
            kind: ColumnSpecKind::Computed { expr },
            comment,
            span: span_between(start.span.start, p),
        });
        return Ok(());
    }
    let data_type = parse_flink_type(p)?;
    let mut nullable = true;
    let mut metadata: Option<(Option<String>, bool)> = None;
    let mut comment = None;
    loop {
        if parse_words(p, &["NOT", "NULL"]) {
            nullable = false;
        } else if parse_word(p, "NULL") {
            nullable = true;
        } else if peek_word(p, "PRIMARY") {
            let at = p.peek_token();
            expect_words(p, &["PRIMARY", "KEY"])?;
            expect_not_enforced(p)?;
            set_primary_key(el, vec![name.clone()], &at)?;
        } else if parse_word(p, "METADATA") {
            let key = if parse_word(p, "FROM") {
                Some(parse_string(p)?)
            } else {
                None
            };
            let is_virtual = parse_word(p, "VIRTUAL");
            metadata = Some((key, is_virtual));
        } else if peek_word(p, "COMMENT") {
            comment = parse_optional_comment(p)?;
        } else {
            break;
        }
    }
    let kind = match metadata {
        Some((key, is_virtual)) => ColumnSpecKind::Metadata {
            data_type,
            key,
            is_virtual,
        },
        None => ColumnSpecKind::Physical {
            data_type,
            nullable,
        },
    };
    el.columns.push(ColumnSpec {
        name,
        kind,
        comment,
        span: span_between(start.span.start, p),
    });
    Ok(())
}

fn expect_not_enforced(p: &mut Parser) -> PResult<()> {
    if parse_words(p, &["NOT", "ENFORCED"]) {
        return Ok(());
    }
    let at = p.peek_token();
    Err(error_at(
        format!(
            "Flink requires NOT ENFORCED on primary keys (it does not check them): write PRIMARY KEY (...) NOT ENFORCED; found: {at}"
        ),
        &at,
    )
    .into())
}

fn set_primary_key(
    el: &mut TableElements,
    columns: Vec<String>,
    at: &TokenWithSpan,
) -> PResult<()> {
    if el.primary_key.is_some() {
        return Err(error_at("A table can have only one PRIMARY KEY", at).into());
    }
    el.primary_key = Some(columns);
    Ok(())
}

/// `CREATE [TEMPORARY] VIEW [IF NOT EXISTS] name [(c1, c2)] [COMMENT 'c'] AS query`.
fn parse_create_view(p: &mut Parser, temporary: bool) -> PResult<Statement> {
    let if_not_exists = parse_if_not_exists(p);
    let name = p.parse_object_name(false)?;
    let columns = if p.peek_token_ref().token == Token::LParen {
        parse_name_list(p)?
    } else {
        Vec::new()
    };
    let comment = parse_optional_comment(p)?;
    expect_word(p, "AS")?;
    let query = p.parse_query()?;
    Ok(Statement::CreateView(CreateView {
        name,
        if_not_exists,
        temporary,
        columns,
        comment,
        query,
    }))
}

/// `DROP [TEMPORARY] TABLE|VIEW [IF EXISTS] name`, `DROP DATABASE [IF EXISTS] name
/// [RESTRICT|CASCADE]`, `DROP CATALOG [IF EXISTS] name`.
pub(crate) fn parse_drop(p: &mut Parser) -> PResult<Statement> {
    p.next_token(); // DROP
    let temporary = parse_word(p, "TEMPORARY");
    let at = p.peek_token();
    let kind = if parse_word(p, "TABLE") {
        ObjectKind::Table
    } else if parse_word(p, "VIEW") {
        ObjectKind::View
    } else if peek_word(p, "FUNCTION") || (temporary && peek_word(p, "SYSTEM")) {
        let system = parse_word(p, "SYSTEM");
        expect_word(p, "FUNCTION")?;
        let if_exists = parse_if_exists(p);
        let name = p.parse_object_name(false)?;
        if system && name.0.len() != 1 {
            return Err(error_at(
                format!("a TEMPORARY SYSTEM function has a simple name, not `{name}`"),
                &at,
            )
            .into());
        }
        return Ok(Statement::DropFunction {
            name,
            temporary,
            system,
            if_exists,
        });
    } else if !temporary && parse_word(p, "DATABASE") {
        ObjectKind::Database
    } else if !temporary && parse_word(p, "CATALOG") {
        ObjectKind::Catalog
    } else {
        let expected = if temporary {
            "TABLE or VIEW after DROP TEMPORARY"
        } else {
            "TABLE, VIEW, DATABASE or CATALOG after DROP"
        };
        return Err(error_at(format!("Expected: {expected}, found: {at}"), &at).into());
    };
    let if_exists = parse_if_exists(p);
    let name = if kind == ObjectKind::Catalog {
        ObjectName::from(vec![parse_name(p)?])
    } else {
        p.parse_object_name(false)?
    };
    let cascade = if kind == ObjectKind::Database {
        if parse_word(p, "CASCADE") {
            true
        } else {
            let _ = parse_word(p, "RESTRICT");
            false
        }
    } else {
        false
    };
    Ok(Statement::Drop {
        kind,
        name,
        if_exists,
        temporary,
        cascade,
    })
}

/// `ALTER TABLE [IF EXISTS] name RENAME TO new | SET (..) | RESET (..)`;
/// `ALTER VIEW name RENAME TO new | AS query`.
pub(crate) fn parse_alter(p: &mut Parser) -> PResult<Statement> {
    let alter = p.next_token(); // ALTER
    if parse_word(p, "TABLE") {
        let if_exists = parse_if_exists(p);
        let name = p.parse_object_name(false)?;
        let at = p.peek_token();
        let action = if parse_words(p, &["RENAME", "TO"]) {
            AlterTableAction::RenameTo(p.parse_object_name(false)?)
        } else if parse_word(p, "SET") {
            AlterTableAction::Set(parse_options(p)?)
        } else if parse_word(p, "RESET") {
            AlterTableAction::Reset(parse_string_list(p)?)
        } else if at.token == Token::EOF {
            return Err(error_at("Expected: RENAME TO, SET or RESET, found: EOF", &at).into());
        } else {
            return Err(not_supported(
                format!(
                    "ALTER TABLE ... {at} is not supported yet (supported: RENAME TO, SET, RESET)"
                ),
                &at,
            )
            .into());
        };
        return Ok(Statement::AlterTable {
            name,
            if_exists,
            action,
        });
    }
    if parse_word(p, "VIEW") {
        let name = p.parse_object_name(false)?;
        let at = p.peek_token();
        let action = if parse_words(p, &["RENAME", "TO"]) {
            AlterViewAction::RenameTo(p.parse_object_name(false)?)
        } else if parse_word(p, "AS") {
            AlterViewAction::As(p.parse_query()?)
        } else {
            return Err(error_at(format!("Expected: RENAME TO or AS, found: {at}"), &at).into());
        };
        return Ok(Statement::AlterView { name, action });
    }
    let at = p.peek_token();
    Err(not_supported(
        format!("ALTER {at} is not supported yet (supported: ALTER TABLE, ALTER VIEW)"),
        &alter,
    )
    .into())
}
