//! Tab completion in the interactive shell: SQL keywords plus the names the session knows
//! (catalogs, databases, tables, views, functions; see `Session::completion_names`), matched
//! case-insensitively against the word under the cursor. Plugged into rustyline as its `Helper`.

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

/// SQL keywords offered for completion (Flink SQL statements, clauses, types and options).
pub const KEYWORDS: &[&str] = &[
    "ADD",
    "ALL",
    "ALTER",
    "AND",
    "ANALYZE",
    "ARRAY",
    "AS",
    "ASC",
    "AVG",
    "BEGIN",
    "BETWEEN",
    "BIGINT",
    "BINARY",
    "BOOLEAN",
    "BY",
    "BYTES",
    "CASCADE",
    "CASE",
    "CAST",
    "CATALOG",
    "CATALOGS",
    "CHANGELOG_MODE",
    "CHAR",
    "COALESCE",
    "COLUMNS",
    "COMMENT",
    "COMPILE",
    "COUNT",
    "CREATE",
    "CROSS",
    "CUMULATE",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIMESTAMP",
    "DATABASE",
    "DATABASES",
    "DATE",
    "DECIMAL",
    "DESC",
    "DESCRIBE",
    "DESCRIPTOR",
    "DISTINCT",
    "DOUBLE",
    "DROP",
    "ELSE",
    "END",
    "ESTIMATED_COST",
    "EXCEPT",
    "EXECUTE",
    "EXISTS",
    "EXPLAIN",
    "EXTENDED",
    "FALSE",
    "FETCH",
    "FIRST",
    "FLOAT",
    "FOR",
    "FROM",
    "FULL",
    "FUNCTION",
    "FUNCTIONS",
    "GROUP",
    "HAVING",
    "HOP",
    "IF",
    "ILIKE",
    "IN",
    "INNER",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "JOBS",
    "JOIN",
    "JSON_EXECUTION_PLAN",
    "LATERAL",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MAP",
    "MAX",
    "METADATA",
    "MIN",
    "MODULES",
    "MULTISET",
    "NOT",
    "NULL",
    "NULLS",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "OVERWRITE",
    "PARTITION",
    "PARTITIONED",
    "PLAN",
    "PRIMARY",
    "KEY",
    "RANGE",
    "RENAME",
    "RESET",
    "RESTRICT",
    "RIGHT",
    "ROW",
    "ROWS",
    "SELECT",
    "SESSION",
    "SET",
    "SHOW",
    "SMALLINT",
    "STATEMENT",
    "STRING",
    "SUM",
    "SYSTEM_TIME",
    "TABLE",
    "TABLES",
    "TEMPORARY",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMP_LTZ",
    "TINYINT",
    "TO",
    "TRUE",
    "TUMBLE",
    "UNION",
    "UNNEST",
    "USE",
    "USING",
    "VALUES",
    "VARBINARY",
    "VARCHAR",
    "VIEW",
    "VIEWS",
    "VIRTUAL",
    "WATERMARK",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
    "QUIT",
    "EXIT",
];

/// The shell's rustyline helper: completion only (line validation is done by the shell loop,
/// which reads one line at a time to show a continuation prompt).
#[derive(Debug, Default)]
pub struct ShellHelper {
    /// Names from the session, refreshed before every prompt.
    names: Vec<String>,
}

impl ShellHelper {
    /// A helper with no session names yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the session names offered for completion.
    pub fn set_names(&mut self, names: Vec<String>) {
        self.names = names;
    }

    /// The candidates for `prefix`: keywords (in the case the user types) and session names,
    /// sorted and without duplicates.
    pub fn candidates(&self, prefix: &str) -> Vec<String> {
        if prefix.is_empty() {
            return Vec::new();
        }
        let lower_input = prefix.chars().all(|c| !c.is_ascii_uppercase());
        let mut out: Vec<String> = KEYWORDS
            .iter()
            .filter(|k| starts_with_ignore_case(k, prefix))
            .map(|k| {
                if lower_input {
                    k.to_ascii_lowercase()
                } else {
                    k.to_string()
                }
            })
            .collect();
        out.extend(
            self.names
                .iter()
                .filter(|n| starts_with_ignore_case(n, prefix))
                .cloned(),
        );
        out.sort();
        out.dedup();
        out
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The byte offset where the word ending at `pos` starts (letters, digits, `_`, `.`, `$`).
pub fn word_start(line: &str, pos: usize) -> usize {
    let pos = pos.min(line.len());
    let before = line.get(..pos).unwrap_or("");
    before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || matches!(c, '_' | '.' | '$'))
        .last()
        .map(|(i, _)| i)
        .unwrap_or(pos)
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = word_start(line, pos);
        let prefix = line.get(start..pos).unwrap_or("");
        let pairs = self
            .candidates(prefix)
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_under_cursor() {
        assert_eq!(word_start("SELECT * FR", 11), 9);
        assert_eq!(word_start("SELECT * FROM db.ta", 19), 14);
        assert_eq!(word_start("SELECT ", 7), 7);
        assert_eq!(word_start("", 0), 0);
        assert_eq!(word_start("sel", 2), 0);
    }

    #[test]
    fn keywords_match_in_the_users_case() {
        let h = ShellHelper::new();
        assert_eq!(h.candidates("SEL"), vec!["SELECT"]);
        assert_eq!(h.candidates("sel"), vec!["select"]);
        assert_eq!(h.candidates("Sel"), vec!["SELECT"]);
        assert!(h.candidates("").is_empty());
        let tables = h.candidates("tab");
        assert_eq!(tables, vec!["table", "tables"]);
    }

    #[test]
    fn session_names_are_offered_as_is() {
        let mut h = ShellHelper::new();
        h.set_names(vec!["Orders".into(), "order_items".into(), "users".into()]);
        assert_eq!(h.candidates("ord"), vec!["Orders", "order", "order_items"]);
        assert_eq!(h.candidates("US"), vec!["USE", "USING", "users"]);
    }

    #[test]
    fn non_ascii_prefix_does_not_panic() {
        let mut h = ShellHelper::new();
        h.set_names(vec!["é_table".into()]);
        assert_eq!(h.candidates("é"), vec!["é_table"]);
        assert!(h.candidates("ü").is_empty());
    }
}
