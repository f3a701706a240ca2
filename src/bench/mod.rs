//! The benchmark runner behind `weir bench`: a front door like the shell, it reaches the engine
//! only through the [`Session`]. For a [`Suite`] (TPC-H; TPC-DS plugs in) it generates the data
//! set once as Parquet, registers the tables with Flink `CREATE TABLE` statements, runs the
//! selected queries in batch mode for a number of timed iterations, checks answers against
//! stored reference answers or DuckDB ([`answers`], [`peers`]), runs the same queries in peer
//! engines for comparison, and reports timings, rows, status and peak memory ([`report`],
//! [`formats`]). The runner's own time is kept apart from query time.

pub mod answers;
pub mod checkpoints;
pub mod data;
pub mod formats;
pub mod memory;
pub mod nexmark;
pub mod peers;
pub mod queries;
pub mod report;
pub mod suite;
pub mod tpcds;
pub mod verify;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::session::{Session, SessionOptions, StatementResult};

use answers::Answer;
use peers::{Peer, PeerJob, PeerQuery, PeerRun};
pub use report::{BenchReport, PeerReport, PeerTiming, QueryReport, RunnerTime, Stats};
pub use suite::Suite;

/// Options of `weir bench tpch|tpcds`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Scale factor (1 = about 1 GB of raw data).
    pub scale: f64,
    /// Where the Parquet data lives; default `~/.weir/bench/<suite>-sf<SF>`.
    pub data_dir: Option<PathBuf>,
    /// Query numbers to run, in order; empty: all of the suite's.
    pub queries: Vec<usize>,
    /// Timed iterations per query (at least 1).
    pub iterations: usize,
    /// Check answers: against stored reference answers, else DuckDB run live.
    pub verify: bool,
    /// Threads for Weir (`parallelism.default`), the peers and data generation; default: the
    /// machine's CPUs.
    pub threads: Option<usize>,
    /// Memory limit (`2GB`): Weir's `weir.memory-limit` (a spilling pool), and the peers' own.
    pub memory_limit: Option<String>,
    /// Peer engines to compare with.
    pub compare: Vec<Peer>,
    /// Extra session options (`SET 'key' = 'value'`) for Weir, e.g. DataFusion's Parquet
    /// settings when measuring their effect.
    pub settings: Vec<(String, String)>,
}

/// The TPC-H options of earlier versions.
pub type TpchOptions = BenchOptions;

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            scale: 1.0,
            data_dir: None,
            queries: Vec::new(),
            iterations: 3,
            verify: false,
            threads: None,
            memory_limit: None,
            compare: Vec::new(),
            settings: Vec::new(),
        }
    }
}

/// What the runner tells the front end as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A line to show.
    Message(&'a str),
    /// `done` of `total` steps of a phase (`generating`, `weir`, `duckdb`, ...), the last
    /// one described by `label`.
    Step {
        /// The phase.
        phase: &'a str,
        /// Steps done.
        done: usize,
        /// Steps in all.
        total: usize,
        /// What the last step was.
        label: &'a str,
    },
}

/// Runs TPC-H (see [`run`]).
///
/// # Errors
/// As [`run`].
pub async fn run_tpch(
    options: &BenchOptions,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<BenchReport> {
    run(&suite::tpch(), options, progress).await
}

/// Runs a benchmark: prepares data, runs the queries, checks answers, runs peers, returns the
/// report. A failing query (including one over the memory limit) does not stop the run: its
/// error is its status.
///
/// # Errors
/// Invalid options, data that cannot be generated, or tables that cannot be registered.
pub async fn run(
    suite: &Suite,
    options: &BenchOptions,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<BenchReport> {
    data::check_scale(options.scale)?;
    if options.iterations == 0 {
        return Err(Error::invalid("--iterations must be at least 1"));
    }
    if options.threads == Some(0) {
        return Err(Error::invalid("--threads must be at least 1"));
    }
    let memory_limit = options
        .memory_limit
        .as_deref()
        .map(crate::session::config::parse_memory_size)
        .transpose()?;
    let selected: Vec<usize> = if options.queries.is_empty() {
        (1..=suite.query_count).collect()
    } else {
        options.queries.clone()
    };
    let mut texts = Vec::with_capacity(selected.len());
    for &n in &selected {
        texts.push(((suite.query_name)(n), suite.sql(n, options.scale)?));
    }
    let dir = match &options.data_dir {
        Some(d) => std::path::absolute(d)
            .map_err(|e| Error::io(format!("cannot resolve {}", d.display()), e))?,
        None => (suite.default_data_dir)(options.scale)?,
    };
    let threads = options.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let mut time = RunnerTime::default();

    progress(Progress::Message(&format!(
        "{} SF {}: data in {}",
        suite.title,
        data::format_scale(options.scale),
        dir.display()
    )));
    let started = Instant::now();
    let generated = generate(suite, &dir, options.scale, threads, progress).await?;
    if generated {
        time.generation_secs = started.elapsed().as_secs_f64();
        progress(Progress::Message(&format!(
            "generated {} data in {:.1} s",
            suite.title, time.generation_secs
        )));
    }

    let started = Instant::now();
    let mut session = Session::open(SessionOptions { data_dir: None }).await?;
    session
        .execute_sql(&format!(
            "SET 'execution.runtime-mode' = 'batch'; SET 'parallelism.default' = '{threads}'"
        ))
        .await?;
    if let Some(limit) = &options.memory_limit {
        session
            .execute_sql(&format!(
                "SET 'weir.memory-limit' = '{}'",
                limit.replace('\'', "''")
            ))
            .await?;
    }
    for (key, value) in &options.settings {
        let quote = |s: &str| s.replace('\'', "''");
        session
            .execute_sql(&format!("SET '{}' = '{}'", quote(key), quote(value)))
            .await
            .map_err(|e| e.context(format!("in --set {key}={value}")))?;
    }
    for table in suite.tables {
        let sql = (suite.create_table_sql)(table, &dir)?;
        session
            .execute_sql(&sql)
            .await
            .map_err(|e| e.context(format!("while registering {} table {table}", suite.title)))?;
    }
    time.setup_secs = started.elapsed().as_secs_f64();

    // Weir's runs.
    let memory_tracked = memory::reset_peak();
    let mut reports = Vec::with_capacity(texts.len());
    let mut weir_answers: Vec<Option<Answer>> = Vec::with_capacity(texts.len());
    for (i, (name, sql)) in texts.iter().enumerate() {
        let mut report = QueryReport::new(name.clone());
        let mut last_batches = Vec::new();
        if memory_tracked {
            memory::reset_peak();
        }
        for _ in 0..options.iterations {
            match run_query(&mut session, sql).await {
                Ok((elapsed, batches)) => {
                    time.query_secs += elapsed.as_secs_f64();
                    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                    report.record(elapsed, rows);
                    last_batches = batches;
                }
                Err(e) => {
                    report.error = Some(e.to_string());
                    report.refresh_status();
                    break;
                }
            }
        }
        if memory_tracked {
            report.peak_memory_bytes = memory::peak_rss_bytes();
        }
        weir_answers.push(if options.verify && report.error.is_none() {
            Some(verify::batches_as_text(&last_batches)?)
        } else {
            None
        });
        progress(Progress::Step {
            phase: "weir",
            done: i + 1,
            total: texts.len(),
            label: &progress_line(&report),
        });
        reports.push(report);
    }

    // Reference answers: stored ones, else DuckDB's (from the comparison run when there is one).
    let started = Instant::now();
    let mut references: Vec<Option<(Answer, String)>> = Vec::with_capacity(texts.len());
    for &n in &selected {
        references.push(match (suite.reference_answer)(options.scale, n) {
            Some(text) if options.verify => Some((
                answers::parse_csv(text).map_err(|e| {
                    e.context(format!("in the stored answer of {}", (suite.query_name)(n)))
                })?,
                format!(
                    "stored {} SF {} answer",
                    suite.title,
                    data::format_scale(options.scale)
                ),
            )),
            _ => None,
        });
    }
    time.verify_secs += started.elapsed().as_secs_f64();
    let need_live = options.verify && references.iter().any(Option::is_none);
    let peer_job = PeerJob {
        python: peers::python(),
        data_dir: &dir,
        tables: suite.tables,
        threads,
        iterations: options.iterations,
        memory_limit,
        answers: false,
    };
    let peer_queries: Vec<PeerQuery> = texts
        .iter()
        .map(|(name, sql)| PeerQuery {
            name: name.clone(),
            sql: sql.to_string(),
        })
        .collect();
    let mut peer_reports = Vec::new();
    let mut live: Option<(String, Vec<peers::PeerResult>)> = None;
    let mut verify_skipped = None;
    for &peer in &options.compare {
        let started = Instant::now();
        let job = PeerJob {
            answers: need_live && peer == Peer::DuckDb,
            ..peer_job.clone()
        };
        // A peer that breaks down is reported, not fatal: the comparison is optional.
        let run = run_peer_with_progress(peer, &job, &peer_queries, progress)
            .await
            .unwrap_or_else(|e| PeerRun::Skipped(e.to_string()));
        time.peers_secs += started.elapsed().as_secs_f64();
        match run {
            PeerRun::Skipped(why) => {
                progress(Progress::Message(&format!(
                    "{} skipped: {why}",
                    peer.name()
                )));
                peer_reports.push(PeerReport {
                    engine: peer.name().to_string(),
                    version: None,
                    skipped: Some(why),
                });
            }
            PeerRun::Ran { version, results } => {
                for (report, result) in reports.iter_mut().zip(&results) {
                    let stats = Stats::of(result.times_ms.clone());
                    let ratio = match (stats.median_ms, report.stats.median_ms, &result.error) {
                        (Some(p), Some(w), None) if w > 0.0 && report.error.is_none() => {
                            Some(p / w)
                        }
                        _ => None,
                    };
                    report.peers.push(PeerTiming {
                        engine: peer.name().to_string(),
                        stats,
                        rows: result.rows,
                        error: result.error.clone(),
                        ratio,
                    });
                }
                if job.answers {
                    live = Some((version.clone(), results));
                }
                peer_reports.push(PeerReport {
                    engine: peer.name().to_string(),
                    version: Some(version),
                    skipped: None,
                });
            }
        }
    }
    if need_live && live.is_none() {
        let started = Instant::now();
        progress(Progress::Message(
            "computing reference answers with DuckDB (no stored answers at this scale)",
        ));
        let job = PeerJob {
            iterations: 0,
            answers: true,
            ..peer_job.clone()
        };
        match run_peer_with_progress(Peer::DuckDb, &job, &peer_queries, progress).await {
            Ok(PeerRun::Ran { version, results }) => live = Some((version, results)),
            Ok(PeerRun::Skipped(why)) => verify_skipped = Some(why),
            Err(e) => verify_skipped = Some(e.to_string()),
        }
        time.verify_secs += started.elapsed().as_secs_f64();
    }
    if let Some(why) = &verify_skipped {
        progress(Progress::Message(&format!(
            "--verify: answers without stored references not verified: {why}"
        )));
    }

    // Checking.
    let started = Instant::now();
    for (i, report) in reports.iter_mut().enumerate() {
        let Some(Some(answer)) = weir_answers.get(i) else {
            continue;
        };
        let reference = match references.get_mut(i).and_then(Option::take) {
            Some(r) => Some(r),
            None => live
                .as_ref()
                .and_then(|(version, results)| {
                    results.get(i).map(|r| match (&r.error, &r.answer) {
                        (None, Some(a)) => Ok((a.clone(), format!("DuckDB {version} run live"))),
                        (Some(e), _) => Err(format!("not verified: DuckDB failed: {e}")),
                        (None, None) => Err("not verified: DuckDB returned no answer".to_string()),
                    })
                })
                .and_then(|r| match r {
                    Ok(r) => Some(r),
                    Err(msg) => {
                        report.verify_message = Some(msg);
                        None
                    }
                }),
        };
        let Some((expected, source)) = reference else {
            continue;
        };
        let ordered = texts
            .get(i)
            .is_some_and(|(_, sql)| answers::is_ordered(sql));
        match answers::compare(answer, &expected, ordered) {
            Ok(()) => report.verified = Some(true),
            Err(diff) => {
                report.verified = Some(false);
                report.verify_message =
                    Some(format!("wrong answer (against the {source}): {diff}"));
            }
        }
        report.verified_against = Some(source);
        report.refresh_status();
    }
    time.verify_secs += started.elapsed().as_secs_f64();

    Ok(BenchReport {
        benchmark: suite.name.to_string(),
        title: suite.title.to_string(),
        scale: options.scale,
        data_dir: dir.display().to_string(),
        data_generated: generated,
        iterations: options.iterations,
        threads,
        memory_limit: options.memory_limit.clone(),
        settings: options
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        peak_memory_method: if memory_tracked {
            "RSS high-water mark of the whole weir process (VmHWM, reset per query via /proc/self/clear_refs); peers are not measured".to_string()
        } else {
            "not measured (needs Linux /proc/self/clear_refs)".to_string()
        },
        machine: machine(),
        time,
        verify_skipped,
        peers: peer_reports,
        queries: reports,
    })
}

/// Generates the data set on a blocking thread, forwarding its per-file progress.
async fn generate(
    suite: &Suite,
    dir: &std::path::Path,
    scale: f64,
    threads: usize,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<bool> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, usize)>();
    let ensure = suite.ensure_data;
    let gen_dir = dir.to_path_buf();
    let mut task = tokio::task::spawn_blocking(move || {
        ensure(&gen_dir, scale, threads, &move |done, total| {
            let _ = tx.send((done, total));
        })
    });
    loop {
        tokio::select! {
            joined = &mut task => {
                while let Ok((done, total)) = rx.try_recv() {
                    progress(Progress::Step { phase: "generating", done, total, label: "" });
                }
                return joined.map_err(|e| {
                    Error::internal(format!("{} data generation did not finish: {e}", suite.title))
                })?;
            }
            Some((done, total)) = rx.recv() => {
                progress(Progress::Step { phase: "generating", done, total, label: "" });
            }
        }
    }
}

async fn run_peer_with_progress(
    peer: Peer,
    job: &PeerJob<'_>,
    queries: &[PeerQuery],
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<PeerRun> {
    let total = queries.len();
    let mut done = 0;
    let mut on_result = |r: &peers::PeerResult| {
        done += 1;
        let label = match (&r.error, median(&r.times_ms)) {
            (Some(e), _) => format!("{}: FAILED: {e}", r.query),
            (None, Some(m)) => format!("{}: median {m:.1} ms", r.query),
            (None, None) => format!("{}: answered", r.query),
        };
        progress(Progress::Step {
            phase: peer.name(),
            done,
            total,
            label: &label,
        });
    };
    peers::run_peer(peer, job, queries, &mut on_result).await
}

fn median(times: &[f64]) -> Option<f64> {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    report::median(&sorted)
}

/// CPUs and load average, for the report.
fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    match load {
        Some(l) => format!("{cpus} CPUs, load average {l} (at the end of the run)"),
        None => format!("{cpus} CPUs"),
    }
}

/// Runs one query as a user would (parse, execute, read every row) and times all of it.
///
/// # Errors
/// The query's own error; `Invalid` when the text is not exactly one statement returning rows.
pub async fn run_query(session: &mut Session, sql: &str) -> Result<(Duration, Vec<RecordBatch>)> {
    let started = Instant::now();
    let statements = session.parse(sql)?;
    let [statement] = statements.as_slice() else {
        return Err(Error::invalid(format!(
            "a benchmark query must be one statement, found {}",
            statements.len()
        )));
    };
    let mut batches = Vec::new();
    match session.execute(statement).await? {
        StatementResult::Rows(mut rows) => {
            while let Some(batch) = rows.stream.next().await {
                batches.push(batch?);
            }
        }
        StatementResult::Status(s) => {
            return Err(Error::invalid(format!(
                "a benchmark query must return rows, got '{}'",
                s.message
            )));
        }
    }
    Ok((started.elapsed(), batches))
}

fn progress_line(report: &QueryReport) -> String {
    match (&report.error, report.stats.median_ms) {
        (Some(e), _) => format!("{}: FAILED: {e}", report.query),
        (None, Some(median)) => format!(
            "{}: {} rows, median {median:.1} ms",
            report.query,
            report.rows.unwrap_or(0),
        ),
        (None, None) => format!("{}: no result", report.query),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_bad_options() {
        let mut sink = |_: Progress<'_>| {};
        let bad_scale = BenchOptions {
            scale: -1.0,
            ..BenchOptions::default()
        };
        assert!(run_tpch(&bad_scale, &mut sink).await.is_err());
        let nowhere = Some(PathBuf::from("/nonexistent"));
        let bad_iterations = BenchOptions {
            iterations: 0,
            data_dir: nowhere.clone(),
            ..BenchOptions::default()
        };
        let err = run_tpch(&bad_iterations, &mut sink).await.err();
        assert!(err.is_some_and(|e| e.message.contains("iterations")));
        let bad_query = BenchOptions {
            queries: vec![23],
            data_dir: nowhere.clone(),
            ..BenchOptions::default()
        };
        assert!(run_tpch(&bad_query, &mut sink).await.is_err());
        let bad_limit = BenchOptions {
            memory_limit: Some("lots".into()),
            data_dir: nowhere,
            ..BenchOptions::default()
        };
        let err = run_tpch(&bad_limit, &mut sink).await.err();
        assert!(err.is_some_and(|e| e.message.contains("invalid memory size 'lots'")));
    }

    #[tokio::test]
    async fn runs_queries_on_tiny_data_within_a_memory_limit() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let options = BenchOptions {
            scale: 0.001,
            data_dir: Some(dir.path().to_path_buf()),
            queries: vec![1, 6],
            iterations: 2,
            threads: Some(2),
            memory_limit: Some("256MB".into()),
            ..BenchOptions::default()
        };
        let mut lines = Vec::new();
        let mut generated_steps = 0;
        let mut sink = |p: Progress<'_>| match p {
            Progress::Message(m) => lines.push(m.to_string()),
            Progress::Step {
                phase: "generating",
                ..
            } => generated_steps += 1,
            Progress::Step { label, .. } => lines.push(label.to_string()),
        };
        let report = run_tpch(&options, &mut sink).await?;
        assert!(report.data_generated);
        assert_eq!(generated_steps, 8);
        assert_eq!(report.queries.len(), 2);
        let q1 = &report.queries[0];
        assert_eq!(q1.error, None);
        assert_eq!(q1.rows, Some(4));
        assert_eq!(q1.stats.times_ms.len(), 2);
        assert_eq!(report.queries[1].rows, Some(1));
        assert!(report.time.query_secs > 0.0);
        assert!(report.time.generation_secs > 0.0);
        if cfg!(target_os = "linux") {
            assert!(q1.peak_memory_bytes.is_some_and(|b| b > 0));
        }
        assert!(
            lines.iter().any(|l| l.starts_with("q01: 4 rows")),
            "{lines:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_query_over_the_memory_limit_reports_its_error() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let options = BenchOptions {
            scale: 0.01,
            data_dir: Some(dir.path().to_path_buf()),
            // q18 groups lineitem by order key and joins: far more than 100 KB.
            queries: vec![18],
            iterations: 1,
            threads: Some(1),
            memory_limit: Some("100KB".into()),
            ..BenchOptions::default()
        };
        let report = run_tpch(&options, &mut |_: Progress<'_>| {}).await?;
        let q = &report.queries[0];
        assert_eq!(q.status, "failed", "{q:?}");
        assert!(
            q.error.as_deref().is_some_and(|e| e.contains("esources")),
            "{q:?}"
        );
        Ok(())
    }
}
