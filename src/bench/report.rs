//! Bench results: per-query timings and row counts, printed as a terminal table or written as
//! JSON (`--output report.json`).

use std::time::Duration;

use serde::Serialize;

/// The outcome of one benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// `tpch`.
    pub benchmark: String,
    /// The scale factor.
    pub scale: f64,
    /// Where the data lives.
    pub data_dir: String,
    /// Whether the data was generated in this run (else reused).
    pub data_generated: bool,
    /// Seconds spent generating data (0 when reused).
    pub generation_secs: f64,
    /// Timed iterations per query.
    pub iterations: usize,
    /// `parallelism.default` used, when set.
    pub threads: Option<usize>,
    /// Why answers were not verified, when `--verify` was asked for but skipped.
    pub verify_skipped: Option<String>,
    /// One entry per query, in order.
    pub queries: Vec<QueryReport>,
}

/// The outcome of one query over all iterations.
#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    /// `q01` .. `q22`.
    pub query: String,
    /// Rows returned (by the last successful iteration).
    pub rows: Option<u64>,
    /// Milliseconds of each successful iteration (planning + execution + reading all rows).
    pub times_ms: Vec<f64>,
    pub min_ms: Option<f64>,
    pub median_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// The error text when the query failed (the query is then not timed further).
    pub error: Option<String>,
    /// `Some(true/false)` when answers were verified, with `verify_message` on a mismatch.
    pub verified: Option<bool>,
    pub verify_message: Option<String>,
}

impl QueryReport {
    /// A report for `query` with no iterations yet.
    pub fn new(query: String) -> Self {
        QueryReport {
            query,
            rows: None,
            times_ms: Vec::new(),
            min_ms: None,
            median_ms: None,
            max_ms: None,
            error: None,
            verified: None,
            verify_message: None,
        }
    }

    /// Records one successful iteration and refreshes min/median/max.
    pub fn record(&mut self, elapsed: Duration, rows: u64) {
        self.times_ms.push(elapsed.as_secs_f64() * 1000.0);
        self.rows = Some(rows);
        let mut sorted = self.times_ms.clone();
        sorted.sort_by(f64::total_cmp);
        self.min_ms = sorted.first().copied();
        self.max_ms = sorted.last().copied();
        self.median_ms = median(&sorted);
    }

    /// Whether every iteration succeeded (and verification, if done, passed).
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.verified != Some(false)
    }
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => Some((sorted.get(n / 2 - 1)? + sorted.get(n / 2)?) / 2.0),
    }
}

impl BenchReport {
    /// Whether every query succeeded (and verified, where verification ran).
    pub fn all_ok(&self) -> bool {
        self.queries.iter().all(QueryReport::ok)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of numbers and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as a terminal table, followed by totals.
    pub fn to_table(&self) -> String {
        let header = ["query", "status", "rows", "min ms", "median ms", "max ms"];
        let mut rows: Vec<[String; 6]> = Vec::new();
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        for q in &self.queries {
            let status = match (&q.error, q.verified) {
                (Some(_), _) => "FAILED",
                (None, Some(false)) => "WRONG",
                (None, Some(true)) => "ok (verified)",
                (None, None) => "ok",
            };
            rows.push([
                q.query.clone(),
                status.to_string(),
                q.rows.map_or_else(|| "-".to_string(), |r| r.to_string()),
                ms(q.min_ms),
                ms(q.median_ms),
                ms(q.max_ms),
            ]);
        }
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                // Text columns left-aligned, numbers right-aligned.
                if i < 2 {
                    s.push_str(&format!(" {cell:<w$} |"));
                } else {
                    s.push_str(&format!(" {cell:>w$} |"));
                }
            }
            s.push('\n');
            s
        };
        let sep = {
            let mut s = String::from("+");
            for w in widths {
                s.push_str(&"-".repeat(w + 2));
                s.push('+');
            }
            s.push('\n');
            s
        };
        let mut out = format!(
            "TPC-H SF {} ({}), {} iteration(s){}\n",
            self.scale,
            self.data_dir,
            self.iterations,
            self.threads
                .map_or_else(String::new, |t| format!(", {t} thread(s)"))
        );
        out.push_str(&sep);
        out.push_str(&line(&header.map(String::from)));
        out.push_str(&sep);
        for row in &rows {
            out.push_str(&line(row));
        }
        out.push_str(&sep);
        let total: f64 = self.queries.iter().filter_map(|q| q.median_ms).sum();
        let failed = self.queries.iter().filter(|q| !q.ok()).count();
        out.push_str(&format!(
            "{} queries, {failed} failed, sum of medians {total:.1} ms\n",
            self.queries.len()
        ));
        for q in &self.queries {
            if let Some(e) = &q.error {
                out.push_str(&format!("{}: {}\n", q.query, e));
            }
            if let Some(m) = &q.verify_message {
                out.push_str(&format!("{}: {}\n", q.query, m));
            }
        }
        if let Some(why) = &self.verify_skipped {
            out.push_str(&format!("answers not verified: {why}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_computes_min_median_max() {
        let mut q = QueryReport::new("q01".into());
        q.record(Duration::from_millis(30), 4);
        q.record(Duration::from_millis(10), 4);
        assert_eq!(q.median_ms, Some(20.0));
        q.record(Duration::from_millis(20), 4);
        assert_eq!(q.min_ms, Some(10.0));
        assert_eq!(q.median_ms, Some(20.0));
        assert_eq!(q.max_ms, Some(30.0));
        assert_eq!(q.rows, Some(4));
        assert!(q.ok());
    }

    #[test]
    fn table_and_json_show_queries_and_errors() {
        let mut ok = QueryReport::new("q01".into());
        ok.record(Duration::from_millis(12), 4);
        let mut bad = QueryReport::new("q02".into());
        bad.error = Some("boom".into());
        let report = BenchReport {
            benchmark: "tpch".into(),
            scale: 0.01,
            data_dir: "/d".into(),
            data_generated: false,
            generation_secs: 0.0,
            iterations: 1,
            threads: Some(2),
            verify_skipped: Some("no duckdb".into()),
            queries: vec![ok, bad],
        };
        assert!(!report.all_ok());
        let table = report.to_table();
        assert!(
            table.contains("| q01   | ok     |    4 |   12.0 |"),
            "{table}"
        );
        assert!(table.contains("FAILED"), "{table}");
        assert!(table.contains("q02: boom"), "{table}");
        assert!(table.contains("2 queries, 1 failed"), "{table}");
        assert!(table.contains("answers not verified: no duckdb"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap_or_default();
        assert_eq!(json["queries"][0]["rows"], 4);
        assert_eq!(json["queries"][1]["error"], "boom");
        assert_eq!(json["scale"], 0.01);
    }
}
