//! The Flink SQL dialect for sqlparser: backtick-quoted, case-sensitive identifiers, `''` escapes
//! in strings, and the parse hooks Flink's queries need. Everything the SQL layer tokenizes or
//! parses goes through [`FlinkDialect`]; its output (sqlparser AST) goes to the planner.
//!
//! # Hooks
//!
//! - **`TABLE <name>` as an expression**, for window table functions:
//!   `FROM TABLE(TUMBLE(TABLE Bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))`. sqlparser parses
//!   `FROM TABLE(<expr>)` as `TableFactor::TableFunction`; the argument `TABLE Bid` becomes
//!   `Expr::Function` named `TABLE` with one unnamed argument, the table's name as
//!   `Expr::Identifier` (one part) or `Expr::CompoundIdentifier` (`cat.db.t`).
//!   Session windows partition the table: `SESSION(TABLE Bid PARTITION BY bidder, ...)` or
//!   `SESSION(TABLE Bid PARTITION BY (bidder, item), ...)` becomes
//!   `TABLE(Bid, PARTITION_BY(bidder, item))`: a second, unnamed argument that is an
//!   `Expr::Function` named `PARTITION_BY` whose arguments are the partition columns
//!   (identifiers or other expressions, as written).
//!   The hook only fires when `TABLE` is followed by a name, so everything else parses as before.
//! - **`MAP[k1, v1, k2, v2]`** (Flink's map constructor) becomes `make_map(k1, v1, k2, v2)`
//!   (DataFusion's function for it); an odd number of items is a syntax error.
//!   `ARRAY[1, 2]` is sqlparser's own array literal.
//! - **Named arguments** with `=>`: `TUMBLE(DATA => TABLE Bid, TIMECOL => DESCRIPTOR(ts),
//!   SIZE => INTERVAL '10' MINUTES)` gives `FunctionArg::Named` arguments.
//! - **`CAST(x AS <Flink type>)`** and `TRY_CAST`: the target type is parsed with Flink's type
//!   grammar (`STRING`, `TIMESTAMP_LTZ(3)`, `TIMESTAMP(3) WITH LOCAL TIME ZONE`, `ARRAY<INT>`,
//!   `MAP<K, V>`, `ROW<a INT>`, ...) and stored in its canonical AST form
//!   ([`crate::sql::sql_type_to_ast`]); a type that is not Flink's falls back to sqlparser's own
//!   type grammar (so DataFusion spellings keep working).
//! - **`TIMESTAMPDIFF(unit, t1, t2)`** and **`TIMESTAMPADD(unit, n, t)`**: the unit is a
//!   keyword (`SECOND`, `MINUTE`, `HOUR`, `DAY`, `WEEK`, `MONTH`, `QUARTER`, `YEAR`), which
//!   would otherwise parse as a column name; it becomes an upper-case string literal, the
//!   first argument of the function of that name (`crate::functions::timestamp_arith`). Any
//!   other word there is a syntax error that lists the units.
//! - **Flink's SQL/JSON syntax**: `JSON_OBJECT(k VALUE v ..)`, `JSON_ARRAY(..)`, `JSON(..)`,
//!   `JSON_ARRAYAGG(..)`, `JSON_OBJECTAGG(KEY k VALUE v)` with `NULL` / `ABSENT ON NULL`, and
//!   `x IS [NOT] JSON [kind]` become plain function calls ([`super::json_syntax`]).
//! - **`(start1, end1) OVERLAPS (start2, end2)`** becomes `overlaps(start1, end1, start2, end2)`
//!   (`crate::functions::overlaps`).
//! - `FOR SYSTEM_TIME AS OF t.proctime` (temporal joins) and `COUNT(..) FILTER (WHERE ..)` are
//!   sqlparser features switched on here.

use datafusion::sql::sqlparser::ast::{
    CastKind, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName,
};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::sql::flink_types::{parse_flink_type, sql_type_to_ast};
use crate::sql::json_syntax;

/// Flink SQL's lexical and syntactic conventions.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlinkDialect;

impl Dialect for FlinkDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '$'
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_named_fn_args_with_rarrow_operator(&self) -> bool {
        true
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn supports_group_by_expr(&self) -> bool {
        true
    }

    fn supports_window_clause_named_window_reference(&self) -> bool {
        true
    }

    fn supports_parens_around_table_factor(&self) -> bool {
        true
    }

    fn supports_left_associative_joins_without_parens(&self) -> bool {
        true
    }

    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        if let Some(parsed) = parse_is_distinct_from(parser, expr, precedence) {
            return Some(parsed);
        }
        if let Expr::Tuple(period) = expr
            && period.len() == 2
            && let Token::Word(w) = &parser.peek_token_ref().token
            && w.keyword == Keyword::OVERLAPS
            && w.quote_style.is_none()
        {
            return Some(parse_overlaps(parser, period));
        }
        json_syntax::parse_infix(parser, expr)
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let [first, second] = parser.peek_tokens_ref::<2>();
        let Token::Word(w) = &first.token else {
            return None;
        };
        if w.quote_style.is_some() {
            return None;
        }
        if second.token == Token::LParen {
            let name = w.value.clone();
            if let Some(expr) = json_syntax::parse_prefix(parser, &name) {
                return Some(expr);
            }
        }
        let [first, second] = parser.peek_tokens_ref::<2>();
        let Token::Word(w) = &first.token else {
            return None;
        };
        if second.token == Token::LParen
            && ["TIMESTAMPDIFF", "TIMESTAMPADD"]
                .iter()
                .any(|f| w.value.eq_ignore_ascii_case(f))
        {
            return Some(parse_time_unit_function(parser));
        }
        match w.keyword {
            Keyword::TABLE if table_name_follows(&second.token) => {
                Some(parse_table_argument(parser))
            }
            Keyword::MAP if second.token == Token::LBracket => Some(parse_map_constructor(parser)),
            Keyword::CAST | Keyword::TRY_CAST if second.token == Token::LParen => {
                let kind = if w.keyword == Keyword::CAST {
                    CastKind::Cast
                } else {
                    CastKind::TryCast
                };
                match parser.maybe_parse(|p| parse_flink_cast(p, kind.clone())) {
                    Ok(Some(expr)) => Some(Ok(expr)),
                    Ok(None) => None, // not a Flink type: let sqlparser try its own type grammar
                    Err(e) => Some(Err(e)),
                }
            }
            _ => None,
        }
    }
}

/// `a IS [NOT] DISTINCT FROM b` with `b` bound as tightly as a comparison operand, as in
/// Flink (Calcite) and the SQL standard: `x IS DISTINCT FROM y AND z` is
/// `(x IS DISTINCT FROM y) AND z`. sqlparser parses the right side as a whole expression, which
/// swallows the `AND z` and silently changes the query's meaning. `None` when the next tokens
/// are not `IS [NOT] DISTINCT FROM`.
fn parse_is_distinct_from(
    parser: &mut Parser,
    left: &Expr,
    precedence: u8,
) -> Option<Result<Expr, ParserError>> {
    let keyword = |n: usize| match &parser.peek_nth_token_ref(n).token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    };
    if keyword(0) != Some(Keyword::IS) {
        return None;
    }
    let not = keyword(1) == Some(Keyword::NOT);
    let at = if not { 2 } else { 1 };
    if keyword(at) != Some(Keyword::DISTINCT) || keyword(at + 1) != Some(Keyword::FROM) {
        return None;
    }
    for _ in 0..at + 2 {
        parser.next_token();
    }
    let right = match parser.parse_subexpr(precedence) {
        Ok(e) => Box::new(e),
        Err(e) => return Some(Err(e)),
    };
    let left = Box::new(left.clone());
    Some(Ok(if not {
        Expr::IsNotDistinctFrom(left, right)
    } else {
        Expr::IsDistinctFrom(left, right)
    }))
}

/// Does the token after `TABLE` start a table name (and not a clause keyword)?
fn table_name_follows(token: &Token) -> bool {
    match token {
        Token::Word(w) if w.quote_style.is_some() => true,
        Token::Word(w) => !matches!(
            w.keyword,
            Keyword::FROM
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::ORDER
                | Keyword::LIMIT
                | Keyword::UNION
                | Keyword::EXCEPT
                | Keyword::INTERSECT
                | Keyword::AS
                | Keyword::ON
                | Keyword::AND
                | Keyword::OR
                | Keyword::IS
                | Keyword::IN
                | Keyword::NOT
                | Keyword::LIKE
                | Keyword::BETWEEN
                | Keyword::JOIN
                | Keyword::INNER
                | Keyword::LEFT
                | Keyword::RIGHT
                | Keyword::FULL
                | Keyword::CROSS
                | Keyword::WINDOW
                | Keyword::WHEN
                | Keyword::THEN
                | Keyword::ELSE
                | Keyword::END
                | Keyword::OVER
                | Keyword::PARTITION
                | Keyword::SELECT
                | Keyword::VALUES
                | Keyword::WITH
                | Keyword::SET
        ),
        _ => false,
    }
}

/// `TABLE name [PARTITION BY expr, ...]` → `TABLE(name [, PARTITION_BY(expr, ...)])`.
fn parse_table_argument(p: &mut Parser) -> Result<Expr, ParserError> {
    p.expect_keyword_is(Keyword::TABLE)?;
    let name = p.parse_object_name(false)?;
    let mut idents: Vec<Ident> = name
        .0
        .iter()
        .filter_map(|part| part.as_ident().cloned())
        .collect();
    if idents.len() != name.0.len() || idents.is_empty() {
        return p.expected("a table name after TABLE", p.peek_token());
    }
    let table = if idents.len() == 1 {
        Expr::Identifier(idents.remove(0))
    } else {
        Expr::CompoundIdentifier(idents)
    };
    let mut args = vec![table];
    if p.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        // One column, or several in parentheses (as in Flink's grammar).
        let cols = if p.consume_token(&Token::LParen) {
            let cols = p.parse_comma_separated(Parser::parse_expr)?;
            p.expect_token(&Token::RParen)?;
            cols
        } else {
            vec![p.parse_expr()?]
        };
        args.push(function("PARTITION_BY", cols));
    }
    Ok(function("TABLE", args))
}

/// Flink's map constructor `MAP[k1, v1, k2, v2, ...]` → DataFusion's `make_map(k1, v1, ...)`.
fn parse_map_constructor(p: &mut Parser) -> Result<Expr, ParserError> {
    p.expect_keyword_is(Keyword::MAP)?;
    p.expect_token(&Token::LBracket)?;
    let items = if p.peek_token_ref().token == Token::RBracket {
        Vec::new()
    } else {
        p.parse_comma_separated(Parser::parse_expr)?
    };
    let close = p.expect_token(&Token::RBracket)?;
    if items.len() % 2 != 0 {
        return Err(ParserError::ParserError(format!(
            "MAP[...] needs key/value pairs (an even number of items), found {} items{}",
            items.len(),
            close.span.start
        )));
    }
    Ok(function("make_map", items))
}

/// A plain function call expression `name(args...)`.
pub(crate) fn function(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// The units `TIMESTAMPDIFF` and `TIMESTAMPADD` take, as Flink spells them.
pub const TIME_UNITS: [&str; 8] = [
    "SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR",
];

/// `TIMESTAMPDIFF ( unit , expr , expr )` / `TIMESTAMPADD ( unit , expr , expr )`: the unit
/// keyword becomes a string literal; the arguments' count is checked by the function.
fn parse_time_unit_function(p: &mut Parser) -> Result<Expr, ParserError> {
    let name = p.next_token().to_string().to_lowercase();
    p.expect_token(&Token::LParen)?;
    let unit = p.next_token();
    let word = match &unit.token {
        Token::Word(w) if w.quote_style.is_none() => w.value.to_uppercase(),
        _ => String::new(),
    };
    // Calcite's `SQL_TSI_DAY` spellings are accepted too.
    let word = word.strip_prefix("SQL_TSI_").unwrap_or(&word).to_string();
    if !TIME_UNITS.contains(&word.as_str()) {
        return Err(ParserError::ParserError(format!(
            "{} expects a time unit ({}) as its first argument, found: {}{}",
            name.to_uppercase(),
            TIME_UNITS.join(", "),
            unit.token,
            unit.span.start
        )));
    }
    let mut args = vec![Expr::value(
        datafusion::sql::sqlparser::ast::Value::SingleQuotedString(word),
    )];
    if p.consume_token(&Token::Comma) {
        args.extend(p.parse_comma_separated(Parser::parse_expr)?);
    }
    p.expect_token(&Token::RParen)?;
    Ok(function(&name, args))
}

/// `(start1, end1) OVERLAPS (start2, end2)` → `overlaps(start1, end1, start2, end2)`, the
/// first period already parsed.
fn parse_overlaps(p: &mut Parser, period: &[Expr]) -> Result<Expr, ParserError> {
    p.expect_keyword_is(Keyword::OVERLAPS)?;
    let open = p.peek_token();
    if open.token != Token::LParen {
        return Err(ParserError::ParserError(format!(
            "OVERLAPS expects a period `(start, end)` on its right, found: {}{}",
            open.token, open.span.start
        )));
    }
    p.next_token();
    let start = p.parse_expr()?;
    p.expect_token(&Token::Comma)?;
    let end = p.parse_expr()?;
    p.expect_token(&Token::RParen)?;
    let mut args = period.to_vec();
    args.extend([start, end]);
    Ok(function("overlaps", args))
}

/// `CAST ( expr AS <flink type> )`.
fn parse_flink_cast(p: &mut Parser, kind: CastKind) -> Result<Expr, ParserError> {
    p.next_token(); // CAST / TRY_CAST
    p.expect_token(&Token::LParen)?;
    let expr = p.parse_expr()?;
    p.expect_keyword_is(Keyword::AS)?;
    let t = parse_flink_type(p)?;
    p.expect_token(&Token::RParen)?;
    Ok(Expr::Cast {
        kind,
        expr: Box::new(expr),
        data_type: sql_type_to_ast(&t),
        array: false,
        format: None,
    })
}
