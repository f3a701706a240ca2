//! The 99 TPC-DS queries (TPC-DS v4 texts, kept in the repository under
//! `tpcds/queries/qNN.sql` with their provenance in `tpcds/README.md`, compiled in).

use crate::error::{Error, Result};

/// Number of TPC-DS queries.
pub const QUERY_COUNT: usize = 99;

const QUERIES: [&str; QUERY_COUNT] = [
    include_str!("../../../tpcds/queries/q01.sql"),
    include_str!("../../../tpcds/queries/q02.sql"),
    include_str!("../../../tpcds/queries/q03.sql"),
    include_str!("../../../tpcds/queries/q04.sql"),
    include_str!("../../../tpcds/queries/q05.sql"),
    include_str!("../../../tpcds/queries/q06.sql"),
    include_str!("../../../tpcds/queries/q07.sql"),
    include_str!("../../../tpcds/queries/q08.sql"),
    include_str!("../../../tpcds/queries/q09.sql"),
    include_str!("../../../tpcds/queries/q10.sql"),
    include_str!("../../../tpcds/queries/q11.sql"),
    include_str!("../../../tpcds/queries/q12.sql"),
    include_str!("../../../tpcds/queries/q13.sql"),
    include_str!("../../../tpcds/queries/q14.sql"),
    include_str!("../../../tpcds/queries/q15.sql"),
    include_str!("../../../tpcds/queries/q16.sql"),
    include_str!("../../../tpcds/queries/q17.sql"),
    include_str!("../../../tpcds/queries/q18.sql"),
    include_str!("../../../tpcds/queries/q19.sql"),
    include_str!("../../../tpcds/queries/q20.sql"),
    include_str!("../../../tpcds/queries/q21.sql"),
    include_str!("../../../tpcds/queries/q22.sql"),
    include_str!("../../../tpcds/queries/q23.sql"),
    include_str!("../../../tpcds/queries/q24.sql"),
    include_str!("../../../tpcds/queries/q25.sql"),
    include_str!("../../../tpcds/queries/q26.sql"),
    include_str!("../../../tpcds/queries/q27.sql"),
    include_str!("../../../tpcds/queries/q28.sql"),
    include_str!("../../../tpcds/queries/q29.sql"),
    include_str!("../../../tpcds/queries/q30.sql"),
    include_str!("../../../tpcds/queries/q31.sql"),
    include_str!("../../../tpcds/queries/q32.sql"),
    include_str!("../../../tpcds/queries/q33.sql"),
    include_str!("../../../tpcds/queries/q34.sql"),
    include_str!("../../../tpcds/queries/q35.sql"),
    include_str!("../../../tpcds/queries/q36.sql"),
    include_str!("../../../tpcds/queries/q37.sql"),
    include_str!("../../../tpcds/queries/q38.sql"),
    include_str!("../../../tpcds/queries/q39.sql"),
    include_str!("../../../tpcds/queries/q40.sql"),
    include_str!("../../../tpcds/queries/q41.sql"),
    include_str!("../../../tpcds/queries/q42.sql"),
    include_str!("../../../tpcds/queries/q43.sql"),
    include_str!("../../../tpcds/queries/q44.sql"),
    include_str!("../../../tpcds/queries/q45.sql"),
    include_str!("../../../tpcds/queries/q46.sql"),
    include_str!("../../../tpcds/queries/q47.sql"),
    include_str!("../../../tpcds/queries/q48.sql"),
    include_str!("../../../tpcds/queries/q49.sql"),
    include_str!("../../../tpcds/queries/q50.sql"),
    include_str!("../../../tpcds/queries/q51.sql"),
    include_str!("../../../tpcds/queries/q52.sql"),
    include_str!("../../../tpcds/queries/q53.sql"),
    include_str!("../../../tpcds/queries/q54.sql"),
    include_str!("../../../tpcds/queries/q55.sql"),
    include_str!("../../../tpcds/queries/q56.sql"),
    include_str!("../../../tpcds/queries/q57.sql"),
    include_str!("../../../tpcds/queries/q58.sql"),
    include_str!("../../../tpcds/queries/q59.sql"),
    include_str!("../../../tpcds/queries/q60.sql"),
    include_str!("../../../tpcds/queries/q61.sql"),
    include_str!("../../../tpcds/queries/q62.sql"),
    include_str!("../../../tpcds/queries/q63.sql"),
    include_str!("../../../tpcds/queries/q64.sql"),
    include_str!("../../../tpcds/queries/q65.sql"),
    include_str!("../../../tpcds/queries/q66.sql"),
    include_str!("../../../tpcds/queries/q67.sql"),
    include_str!("../../../tpcds/queries/q68.sql"),
    include_str!("../../../tpcds/queries/q69.sql"),
    include_str!("../../../tpcds/queries/q70.sql"),
    include_str!("../../../tpcds/queries/q71.sql"),
    include_str!("../../../tpcds/queries/q72.sql"),
    include_str!("../../../tpcds/queries/q73.sql"),
    include_str!("../../../tpcds/queries/q74.sql"),
    include_str!("../../../tpcds/queries/q75.sql"),
    include_str!("../../../tpcds/queries/q76.sql"),
    include_str!("../../../tpcds/queries/q77.sql"),
    include_str!("../../../tpcds/queries/q78.sql"),
    include_str!("../../../tpcds/queries/q79.sql"),
    include_str!("../../../tpcds/queries/q80.sql"),
    include_str!("../../../tpcds/queries/q81.sql"),
    include_str!("../../../tpcds/queries/q82.sql"),
    include_str!("../../../tpcds/queries/q83.sql"),
    include_str!("../../../tpcds/queries/q84.sql"),
    include_str!("../../../tpcds/queries/q85.sql"),
    include_str!("../../../tpcds/queries/q86.sql"),
    include_str!("../../../tpcds/queries/q87.sql"),
    include_str!("../../../tpcds/queries/q88.sql"),
    include_str!("../../../tpcds/queries/q89.sql"),
    include_str!("../../../tpcds/queries/q90.sql"),
    include_str!("../../../tpcds/queries/q91.sql"),
    include_str!("../../../tpcds/queries/q92.sql"),
    include_str!("../../../tpcds/queries/q93.sql"),
    include_str!("../../../tpcds/queries/q94.sql"),
    include_str!("../../../tpcds/queries/q95.sql"),
    include_str!("../../../tpcds/queries/q96.sql"),
    include_str!("../../../tpcds/queries/q97.sql"),
    include_str!("../../../tpcds/queries/q98.sql"),
    include_str!("../../../tpcds/queries/q99.sql"),
];

/// The SQL text of TPC-DS query `n` (1-based), without a trailing semicolon.
///
/// # Errors
/// `Invalid` when `n` is not between 1 and 99.
pub fn query_sql(n: usize) -> Result<&'static str> {
    n.checked_sub(1)
        .and_then(|i| QUERIES.get(i))
        .map(|sql| sql.trim_end().trim_end_matches(';'))
        .ok_or_else(|| Error::invalid(format!("TPC-DS has queries 1 to 99, not {n}")))
}

/// The name of query `n` in reports: `q01` .. `q99`.
pub fn query_name(n: usize) -> String {
    format!("q{n:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_queries_are_present() -> Result<()> {
        for n in 1..=QUERY_COUNT {
            let sql = query_sql(n)?;
            assert!(sql.to_uppercase().contains("SELECT"), "q{n}");
            assert!(!sql.ends_with(';'), "q{n}");
        }
        assert!(query_sql(0).is_err());
        assert!(query_sql(100).is_err());
        assert_eq!(query_name(5), "q05");
        assert_eq!(query_name(99), "q99");
        Ok(())
    }
}
