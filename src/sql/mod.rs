//! The SQL layer: Flink SQL text in, typed [`statement::Statement`]s out. It tokenizes and parses
//! with sqlparser under our [`dialect::FlinkDialect`]; Flink-only statements are parsed by our own
//! code driving sqlparser's `Parser` ([`parser`] dispatches; `ddl` and `show` hold the DDL and
//! `SHOW` grammars; [`flink_types`] parses Flink data types). Errors name line and column.
//!
//! Uses only `error` and `types`.

mod ddl;
pub mod dialect;
pub mod flink_types;
pub mod hints;
mod json_syntax;
pub mod parser;
mod show;
pub mod statement;
mod support;

pub use flink_types::{parse_flink_type, sql_type_from_ast, sql_type_to_ast};
pub use parser::{parse_expr, parse_query, parse_script};
pub use statement::*;
