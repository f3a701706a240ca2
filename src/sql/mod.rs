//! The SQL layer: Flink SQL text in, typed [`statement::Statement`]s out. It tokenizes and parses
//! with sqlparser under our [`dialect::FlinkDialect`]; Flink-only statements are parsed by hooks in
//! [`parser`] that drive sqlparser's `Parser` directly. Errors name line and column.
//!
//! Uses only `error` and `types`.

pub mod dialect;
pub mod parser;
pub mod statement;

pub use parser::{parse_expr, parse_query, parse_script};
pub use statement::*;

/// BOOTSTRAP: replaced by the dialect parser's type mapping.
pub fn sql_type_from_ast(
    _t: &datafusion::sql::sqlparser::ast::DataType,
) -> crate::error::Result<crate::types::SqlType> {
    Err(crate::error::Error::not_supported(
        "type mapping not implemented yet",
    ))
}
