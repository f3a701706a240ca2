//! The benchmark runner behind `weir bench`: a front door like the shell, it reaches the engine
//! only through the [`Session`]. For TPC-H it generates the data set once as Parquet
//! ([`data`]), registers the eight tables with Flink `CREATE TABLE` statements, runs the
//! selected queries ([`queries`]) for a number of timed iterations, optionally checks answers
//! against DuckDB ([`verify`]), and reports timings and row counts ([`report`]).

pub mod data;
pub mod queries;
pub mod report;
pub mod tpcds;
pub mod verify;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::session::{Session, SessionOptions, StatementResult};

pub use report::{BenchReport, QueryReport};

/// Options of `weir bench tpch`.
#[derive(Debug, Clone)]
pub struct TpchOptions {
    /// Scale factor (1 = about 1 GB of raw data).
    pub scale: f64,
    /// Where the Parquet data lives; default `~/.weir/bench/tpch-sf<SF>`.
    pub data_dir: Option<PathBuf>,
    /// Query numbers (1..=22) to run, in order.
    pub queries: Vec<usize>,
    /// Timed iterations per query (at least 1).
    pub iterations: usize,
    /// Check answers against DuckDB when it is available.
    pub verify: bool,
    /// Sets `parallelism.default` (and bounds data generation threads).
    pub threads: Option<usize>,
}

impl Default for TpchOptions {
    fn default() -> Self {
        TpchOptions {
            scale: 1.0,
            data_dir: None,
            queries: (1..=queries::QUERY_COUNT).collect(),
            iterations: 3,
            verify: false,
            threads: None,
        }
    }
}

/// Runs the TPC-H benchmark: prepares data, runs the queries, returns the report. `progress`
/// receives one line per step (data generation, each query) as the run goes.
///
/// A failing query does not stop the run: its error is in its [`QueryReport`].
///
/// # Errors
/// Invalid options, data that cannot be generated, or tables that cannot be registered.
pub async fn run_tpch(
    options: &TpchOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<BenchReport> {
    data::check_scale(options.scale)?;
    if options.iterations == 0 {
        return Err(Error::invalid("--iterations must be at least 1"));
    }
    if options.threads == Some(0) {
        return Err(Error::invalid("--threads must be at least 1"));
    }
    for &n in &options.queries {
        queries::query_sql(n)?;
    }
    let dir = match &options.data_dir {
        Some(d) => std::path::absolute(d)
            .map_err(|e| Error::io(format!("cannot resolve {}", d.display()), e))?,
        None => data::default_data_dir(options.scale)?,
    };

    let gen_threads = options.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    progress(&format!(
        "TPC-H SF {}: data in {}",
        data::format_scale(options.scale),
        dir.display()
    ));
    let started = Instant::now();
    let gen_dir = dir.clone();
    let scale = options.scale;
    let status =
        tokio::task::spawn_blocking(move || data::ensure_data(&gen_dir, scale, gen_threads))
            .await
            .map_err(|e| Error::internal(format!("TPC-H data generation did not finish: {e}")))??;
    let generation = started.elapsed();
    if status == data::DataStatus::Generated {
        progress(&format!(
            "generated TPC-H data in {:.1} s",
            generation.as_secs_f64()
        ));
    }

    let verify_skipped = if options.verify {
        verify::duckdb_unavailable().map(|why| {
            progress(&format!("--verify: answers not verified: {why}"));
            why
        })
    } else {
        None
    };
    let verifying = options.verify && verify_skipped.is_none();

    let mut session = Session::open(SessionOptions { data_dir: None }).await?;
    if let Some(t) = options.threads {
        session
            .execute_sql(&format!("SET 'parallelism.default' = '{t}'"))
            .await?;
    }
    for table in data::TABLES {
        let sql = data::create_table_sql(table, &dir)?;
        session
            .execute_sql(&sql)
            .await
            .map_err(|e| e.context(format!("while registering TPC-H table {table}")))?;
    }

    let mut reports = Vec::with_capacity(options.queries.len());
    for &n in &options.queries {
        let sql = queries::query_sql(n)?;
        let mut report = QueryReport::new(queries::query_name(n));
        let mut last_batches = Vec::new();
        for _ in 0..options.iterations {
            match run_query(&mut session, sql).await {
                Ok((elapsed, batches)) => {
                    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                    report.record(elapsed, rows);
                    last_batches = batches;
                }
                Err(e) => {
                    report.error = Some(e.to_string());
                    break;
                }
            }
        }
        if verifying && report.error.is_none() {
            let checked = verify::batches_as_text(&last_batches).and_then(|weir| {
                let expected = verify::duckdb_answer(&dir, sql)?;
                Ok(verify::compare(&weir, &expected))
            });
            match checked {
                Ok(Ok(())) => report.verified = Some(true),
                Ok(Err(diff)) => {
                    report.verified = Some(false);
                    report.verify_message = Some(diff);
                }
                Err(e) => report.verify_message = Some(format!("not verified: {e}")),
            }
        }
        progress(&progress_line(&report));
        reports.push(report);
    }

    Ok(BenchReport {
        benchmark: "tpch".to_string(),
        scale: options.scale,
        data_dir: dir.display().to_string(),
        data_generated: status == data::DataStatus::Generated,
        generation_secs: if status == data::DataStatus::Generated {
            generation.as_secs_f64()
        } else {
            0.0
        },
        iterations: options.iterations,
        threads: options.threads,
        verify_skipped,
        queries: reports,
    })
}

/// Runs one query as a user would (parse, execute, read every row) and times all of it.
async fn run_query(session: &mut Session, sql: &str) -> Result<(Duration, Vec<RecordBatch>)> {
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
    match (&report.error, report.median_ms) {
        (Some(e), _) => format!("{}: FAILED: {e}", report.query),
        (None, Some(median)) => format!(
            "{}: {} rows, median {median:.1} ms{}",
            report.query,
            report.rows.unwrap_or(0),
            match report.verified {
                Some(true) => ", verified",
                Some(false) => ", WRONG ANSWER",
                None => "",
            }
        ),
        (None, None) => format!("{}: no result", report.query),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_bad_options() {
        let mut sink = |_: &str| {};
        let bad_scale = TpchOptions {
            scale: -1.0,
            ..TpchOptions::default()
        };
        assert!(run_tpch(&bad_scale, &mut sink).await.is_err());
        let bad_iterations = TpchOptions {
            iterations: 0,
            data_dir: Some(PathBuf::from("/nonexistent")),
            ..TpchOptions::default()
        };
        let err = run_tpch(&bad_iterations, &mut sink).await.err();
        assert!(err.is_some_and(|e| e.message.contains("iterations")));
        let bad_query = TpchOptions {
            queries: vec![23],
            data_dir: Some(PathBuf::from("/nonexistent")),
            ..TpchOptions::default()
        };
        assert!(run_tpch(&bad_query, &mut sink).await.is_err());
    }

    #[tokio::test]
    async fn runs_a_query_on_tiny_data() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let options = TpchOptions {
            scale: 0.001,
            data_dir: Some(dir.path().to_path_buf()),
            queries: vec![1, 6],
            iterations: 2,
            verify: false,
            threads: Some(2),
        };
        let mut lines = Vec::new();
        let mut sink = |l: &str| lines.push(l.to_string());
        let report = run_tpch(&options, &mut sink).await?;
        assert!(report.data_generated);
        assert_eq!(report.queries.len(), 2);
        let q1 = &report.queries[0];
        assert_eq!(q1.error, None);
        assert_eq!(q1.rows, Some(4));
        assert_eq!(q1.times_ms.len(), 2);
        assert_eq!(report.queries[1].rows, Some(1));
        assert!(
            lines.iter().any(|l| l.starts_with("q01: 4 rows")),
            "{lines:?}"
        );
        Ok(())
    }
}
