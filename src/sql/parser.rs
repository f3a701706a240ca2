//! Parses Flink SQL scripts into [`ParsedStatement`]s.
//! BOOTSTRAP VERSION: splits on `;` and treats every statement as a query. Replaced by the real
//! Flink dialect parser.

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Location, Result, Span};
use crate::sql::dialect::FlinkDialect;
use crate::sql::statement::{ParsedStatement, Statement};

/// Parses a script of one or more `;`-separated statements.
pub fn parse_script(sql: &str) -> Result<Vec<ParsedStatement>> {
    let mut out = Vec::new();
    for part in sql.split(';') {
        if part.trim().is_empty() {
            continue;
        }
        let query = parse_query(part)?;
        out.push(ParsedStatement {
            statement: Statement::Query(Box::new(query)),
            span: Span::new(
                Location { line: 1, column: 1 },
                Location { line: 1, column: 1 },
            ),
            text: part.trim().to_string(),
        });
    }
    Ok(out)
}

/// Parses one SQL expression (computed columns, watermark expressions).
pub fn parse_expr(sql: &str) -> Result<ast::Expr> {
    Parser::new(&FlinkDialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| Error::syntax(e.to_string(), None))
}

/// Parses one query (view definitions).
pub fn parse_query(sql: &str) -> Result<ast::Query> {
    Parser::new(&FlinkDialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_query())
        .map(|q| *q)
        .map_err(|e| Error::syntax(e.to_string(), None))
}
