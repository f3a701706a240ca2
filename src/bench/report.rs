//! Bench results: per-query timings, rows, status, peak memory and peer comparisons, with the
//! runner's own time (data generation, answer checking, peers) kept apart from query time.
//! Rendered by [`super::formats`] as a terminal table, JSON, CSV or a Markdown summary.

use std::time::Duration;

use serde::Serialize;

/// The outcome of one benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// `tpch` or `tpcds`.
    pub benchmark: String,
    /// `TPC-H` or `TPC-DS`.
    pub title: String,
    /// The scale factor.
    pub scale: f64,
    /// Where the data lives.
    pub data_dir: String,
    /// Whether the data was generated in this run (else reused).
    pub data_generated: bool,
    /// Timed iterations per query.
    pub iterations: usize,
    /// Threads: Weir's `parallelism.default`, DuckDB's `threads`, DataFusion's target partitions.
    pub threads: usize,
    /// The memory limit, as given, when set.
    pub memory_limit: Option<String>,
    /// Extra session options given with `--set`.
    pub settings: Vec<String>,
    /// How peak memory is measured.
    pub peak_memory_method: String,
    /// CPUs and load average at the end of the run (numbers are noisy on a busy machine).
    pub machine: String,
    /// Where the time went.
    pub time: RunnerTime,
    /// Why answers were not verified, when `--verify` was asked for but could not run.
    pub verify_skipped: Option<String>,
    /// The peers compared against.
    pub peers: Vec<PeerReport>,
    /// One entry per query, in order.
    pub queries: Vec<QueryReport>,
}

/// Seconds spent by the runner, query time apart from everything else.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunnerTime {
    /// Generating data (0 when reused).
    pub generation_secs: f64,
    /// Registering tables.
    pub setup_secs: f64,
    /// All Weir query iterations.
    pub query_secs: f64,
    /// Checking answers (including a live DuckDB run for the reference answers).
    pub verify_secs: f64,
    /// Running the peer engines.
    pub peers_secs: f64,
}

/// A peer engine in a run.
#[derive(Debug, Clone, Serialize)]
pub struct PeerReport {
    /// `duckdb` or `datafusion`.
    pub engine: String,
    /// Its version, when it ran.
    pub version: Option<String>,
    /// Why it was skipped, when it was.
    pub skipped: Option<String>,
}

/// One peer's timings of one query.
#[derive(Debug, Clone, Serialize)]
pub struct PeerTiming {
    /// `duckdb` or `datafusion`.
    pub engine: String,
    /// Timing summary.
    #[serde(flatten)]
    pub stats: Stats,
    /// Rows returned.
    pub rows: Option<u64>,
    /// Its error, when the query failed there.
    pub error: Option<String>,
    /// Peer median / Weir median (above 1: Weir is faster).
    pub ratio: Option<f64>,
}

/// Min / median / max of timed iterations, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Every timed iteration.
    pub times_ms: Vec<f64>,
    pub min_ms: Option<f64>,
    pub median_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Stats {
    /// Summarizes iteration times.
    pub fn of(times_ms: Vec<f64>) -> Stats {
        let mut sorted = times_ms.clone();
        sorted.sort_by(f64::total_cmp);
        Stats {
            min_ms: sorted.first().copied(),
            max_ms: sorted.last().copied(),
            median_ms: median(&sorted),
            times_ms,
        }
    }
}

/// The outcome of one query over all iterations.
#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    /// `q01` ..
    pub query: String,
    /// `ok`, `verified`, `wrong answer` or `failed`.
    pub status: String,
    /// Rows returned (by the last successful iteration).
    pub rows: Option<u64>,
    /// Timing summary (planning + execution + reading all rows).
    #[serde(flatten)]
    pub stats: Stats,
    /// The RSS high-water mark over the query's iterations, in bytes.
    pub peak_memory_bytes: Option<u64>,
    /// The error text when the query failed (the query is then not timed further).
    pub error: Option<String>,
    /// `Some(true/false)` when the answer was checked.
    pub verified: Option<bool>,
    /// What the answer was checked against.
    pub verified_against: Option<String>,
    /// The first differing rows on a mismatch, or why the answer was not checked.
    pub verify_message: Option<String>,
    /// Peer timings.
    pub peers: Vec<PeerTiming>,
}

impl QueryReport {
    /// A report for `query` with no iterations yet.
    pub fn new(query: String) -> Self {
        QueryReport {
            query,
            status: "ok".to_string(),
            rows: None,
            stats: Stats::default(),
            peak_memory_bytes: None,
            error: None,
            verified: None,
            verified_against: None,
            verify_message: None,
            peers: Vec::new(),
        }
    }

    /// Records one successful iteration and refreshes min/median/max.
    pub fn record(&mut self, elapsed: Duration, rows: u64) {
        let mut times = std::mem::take(&mut self.stats.times_ms);
        times.push(elapsed.as_secs_f64() * 1000.0);
        self.stats = Stats::of(times);
        self.rows = Some(rows);
        self.refresh_status();
    }

    /// Sets `status` from the error and verification outcome.
    pub fn refresh_status(&mut self) {
        self.status = match (&self.error, self.verified) {
            (Some(_), _) => "failed",
            (None, Some(false)) => "wrong answer",
            (None, Some(true)) => "verified",
            (None, None) => "ok",
        }
        .to_string();
    }

    /// Whether every iteration succeeded (and verification, if done, passed).
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.verified != Some(false)
    }

    /// The timing of peer `engine`, when it ran this query.
    pub fn peer(&self, engine: &str) -> Option<&PeerTiming> {
        self.peers.iter().find(|p| p.engine == engine)
    }
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => Some((sorted.get(n / 2 - 1)? + sorted.get(n / 2)?) / 2.0),
    }
}

/// The geometric mean of positive values (`None` when there are none, or any is not positive).
pub fn geomean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let mean_log = values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64;
    Some(mean_log.exp())
}

/// Geometric means over the queries every engine answered, so the engines are compared on the
/// same set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Queries in the common set.
    pub queries: usize,
    /// Weir's geometric mean of medians (ms).
    pub weir_ms: Option<f64>,
    /// Each peer's geometric mean of medians (ms) and its geometric mean ratio to Weir.
    pub peers: Vec<(String, Option<f64>, Option<f64>)>,
}

impl BenchReport {
    /// Whether every query succeeded (and verified, where verification ran).
    pub fn all_ok(&self) -> bool {
        self.queries.iter().all(QueryReport::ok)
    }

    /// The engines that ran, in report order.
    pub fn ran_peers(&self) -> Vec<&str> {
        self.peers
            .iter()
            .filter(|p| p.skipped.is_none())
            .map(|p| p.engine.as_str())
            .collect()
    }

    /// Geometric means over the queries that succeeded in Weir and in every peer that ran.
    pub fn summary(&self) -> Summary {
        let peers = self.ran_peers();
        let common: Vec<&QueryReport> = self
            .queries
            .iter()
            .filter(|q| q.error.is_none() && q.stats.median_ms.is_some())
            .filter(|q| {
                peers.iter().all(|p| {
                    q.peer(p)
                        .is_some_and(|t| t.error.is_none() && t.stats.median_ms.is_some())
                })
            })
            .collect();
        let weir: Vec<f64> = common.iter().filter_map(|q| q.stats.median_ms).collect();
        Summary {
            queries: common.len(),
            weir_ms: geomean(&weir),
            peers: peers
                .iter()
                .map(|p| {
                    let times: Vec<f64> = common
                        .iter()
                        .filter_map(|q| q.peer(p).and_then(|t| t.stats.median_ms))
                        .collect();
                    let ratios: Vec<f64> = common
                        .iter()
                        .filter_map(|q| q.peer(p).and_then(|t| t.ratio))
                        .collect();
                    (p.to_string(), geomean(&times), geomean(&ratios))
                })
                .collect(),
        }
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
        assert_eq!(q.stats.median_ms, Some(20.0));
        q.record(Duration::from_millis(20), 4);
        assert_eq!(q.stats.min_ms, Some(10.0));
        assert_eq!(q.stats.median_ms, Some(20.0));
        assert_eq!(q.stats.max_ms, Some(30.0));
        assert_eq!(q.rows, Some(4));
        assert!(q.ok());
        q.verified = Some(false);
        q.refresh_status();
        assert_eq!(q.status, "wrong answer");
        assert!(!q.ok());
    }

    #[test]
    fn geometric_means() {
        assert_eq!(geomean(&[]), None);
        assert!(geomean(&[2.0, 8.0]).is_some_and(|g| (g - 4.0).abs() < 1e-12));
        assert!(geomean(&[5.0]).is_some_and(|g| (g - 5.0).abs() < 1e-12));
        assert_eq!(geomean(&[1.0, 0.0]), None);
        assert_eq!(geomean(&[1.0, f64::NAN]), None);
    }
}
