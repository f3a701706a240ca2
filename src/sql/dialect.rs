//! The Flink SQL dialect for sqlparser: backtick identifiers, Flink's keywords and parse hooks.

use datafusion::sql::sqlparser::dialect::Dialect;

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
}
