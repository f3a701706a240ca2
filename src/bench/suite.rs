//! A benchmark suite as the bench runner sees it: its tables (generated once as Parquet and
//! registered with Flink `CREATE TABLE` statements), its numbered queries, and its stored
//! reference answers. The runner ([`super::run`]) is generic over a [`Suite`]; TPC-H is
//! [`tpch`], TPC-DS plugs in through [`tpcds`].
//!
//! # Writing a suite
//!
//! A suite is a table of plain functions, so a data generator module only has to expose
//! functions of these shapes:
//!
//! - `ensure_data(dir, scale, threads, on_file)`: makes sure `dir` holds the data of `scale`,
//!   generating it when absent (reusing a complete data set), calling `on_file(done, total)`
//!   after each generated file so the runner can draw a progress bar. Returns whether it
//!   generated anything.
//! - `create_table_sql(table, dir)`: the `CREATE TABLE` statement registering one table whose
//!   files live under `dir`.
//! - `query_sql(n, scale)` for `n` in `1..=query_count` (with any scale-dependent substitution
//!   parameters filled in), and `query_name(n)` (`q01`, ...).
//! - `reference_answer(scale, n)`: the stored answer of query `n` at this scale factor as CSV
//!   text (a header line, then one line per row; an empty unquoted field is NULL), or `None`
//!   when none is stored (the runner then verifies against DuckDB run live).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::{answers, data, queries};

/// Callback of [`Suite::ensure_data`]: `(files done, files in all)`.
pub type FileProgress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// One benchmark suite (see the module documentation for the contract of each function).
#[derive(Clone, Copy)]
pub struct Suite {
    /// Short name used in reports and directory names: `tpch`, `tpcds`.
    pub name: &'static str,
    /// Display name: `TPC-H`, `TPC-DS`.
    pub title: &'static str,
    /// Table names, in registration order.
    pub tables: &'static [&'static str],
    /// Number of queries; they are numbered from 1.
    pub query_count: usize,
    /// Generates the data set once (see the module documentation).
    pub ensure_data: fn(&Path, f64, usize, FileProgress<'_>) -> Result<bool>,
    /// The `CREATE TABLE` statement for one table under a data directory.
    pub create_table_sql: fn(&str, &Path) -> Result<String>,
    /// The default data directory for a scale factor.
    pub default_data_dir: fn(f64) -> Result<PathBuf>,
    /// The SQL text of query `n` at a scale factor.
    pub query_sql: fn(usize, f64) -> Result<Cow<'static, str>>,
    /// The report name of query `n`.
    pub query_name: fn(usize) -> String,
    /// The stored reference answer of query `n` at a scale factor, as CSV text.
    pub reference_answer: fn(f64, usize) -> Option<&'static str>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("name", &self.name)
            .field("query_count", &self.query_count)
            .finish_non_exhaustive()
    }
}

impl Suite {
    /// Checks a query number and returns its SQL at scale factor `scale`.
    ///
    /// # Errors
    /// `Invalid` when `n` is out of range.
    pub fn sql(&self, n: usize, scale: f64) -> Result<Cow<'static, str>> {
        if n == 0 || n > self.query_count {
            return Err(Error::invalid(format!(
                "{} has queries 1 to {}, not {n}",
                self.title, self.query_count
            )));
        }
        (self.query_sql)(n, scale)
    }

    /// Parses a selection such as `1,3,5-7` (also `q1`, `Q05`) into sorted, distinct query
    /// numbers of this suite; an empty selection means all of them.
    ///
    /// # Errors
    /// `Invalid` for anything that is not a number or range within `1..=query_count`.
    pub fn parse_selection(&self, spec: &str) -> Result<Vec<usize>> {
        queries::parse_selection_of(spec, self.query_count)
    }
}

/// The TPC-H suite: 8 tables from `tpchgen`, 22 queries, stored SF 1 answers.
pub fn tpch() -> Suite {
    Suite {
        name: "tpch",
        title: "TPC-H",
        tables: &data::TABLES,
        query_count: queries::QUERY_COUNT,
        ensure_data: |dir, scale, threads, on_file| {
            Ok(
                data::ensure_data_with_progress(dir, scale, threads, on_file)?
                    == data::DataStatus::Generated,
            )
        },
        create_table_sql: data::create_table_sql,
        default_data_dir: data::default_data_dir,
        query_sql: queries::query_sql_at_scale,
        query_name: queries::query_name,
        reference_answer: answers::tpch_answer,
    }
}

/// The TPC-DS suite: 24 tables from `tpcdsgen` (TPC-DS v4), 99 queries, stored SF 1 answers.
pub fn tpcds() -> Result<Suite> {
    use super::tpcds;
    Ok(Suite {
        name: "tpcds",
        title: "TPC-DS",
        tables: &tpcds::TABLES,
        query_count: tpcds::QUERY_COUNT,
        ensure_data: |dir, scale, threads, on_file| {
            Ok(tpcds::ensure_data(dir, scale, threads, on_file)? == data::DataStatus::Generated)
        },
        create_table_sql: tpcds::create_table_sql,
        default_data_dir: tpcds::default_data_dir,
        query_sql: |n, _| tpcds::query_sql(n).map(Cow::Borrowed),
        query_name: tpcds::query_name,
        reference_answer: |scale, n| if scale == 1.0 { tpcds::answer(n) } else { None },
    })
}

/// The suite called `name` (`tpch` or `tpcds`).
///
/// # Errors
/// `Invalid` for an unknown name; see [`tpcds`].
pub fn by_name(name: &str) -> Result<Suite> {
    match name {
        "tpch" => Ok(tpch()),
        "tpcds" => tpcds(),
        other => Err(Error::invalid(format!(
            "unknown benchmark '{other}'; known: tpch, tpcds"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpch_suite_has_its_queries() -> Result<()> {
        let s = tpch();
        assert_eq!(s.query_count, 22);
        assert_eq!(s.tables.len(), 8);
        assert!(s.sql(1, 1.0)?.contains("TPC-H Q1:"));
        assert!(s.sql(0, 1.0).is_err());
        assert!(s.sql(23, 1.0).is_err_and(|e| e.message.contains("1 to 22")));
        assert_eq!((s.query_name)(7), "q07");
        assert_eq!(s.parse_selection("1,3-4")?, vec![1, 3, 4]);
        Ok(())
    }

    #[test]
    fn suites_by_name_and_unknown_ones() -> Result<()> {
        assert!(by_name("tpch").is_ok());
        assert!(by_name("tpcx").is_err_and(|e| e.message.contains("unknown benchmark")));
        let ds = by_name("tpcds")?;
        assert_eq!((ds.query_count, ds.tables.len()), (99, 24));
        assert!(
            ds.sql(72, 1.0)?
                .to_ascii_lowercase()
                .contains("catalog_sales")
        );
        assert!((ds.reference_answer)(1.0, 1).is_some());
        assert!((ds.reference_answer)(0.01, 1).is_none());
        Ok(())
    }
}
