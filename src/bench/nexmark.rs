//! `weir bench nexmark`: Flink's Nexmark queries q0-q23 (`sql-tests/nexmark/`, verbatim, built
//! into the binary) over the in-process `nexmark` generator, through the [`Session`] like every
//! front door. Each query's `INSERT INTO nexmark_qN` (a `blackhole` sink, as in Flink's suite)
//! runs in streaming mode to the end of a bounded input of `--events` events, timed, for
//! `--iterations`; with `--checkpoint-interval` each run is repeated with checkpoints on (to
//! measure their cost); with `--verify` the query's `SELECT` is run in batch and in streaming
//! mode and the two results (the streaming changelog materialized) must be equal. Reported per
//! query: median seconds, events per second, events per CPU-second, peak RSS, and the
//! checkpointed run's slowdown.

use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::session::{Session, SessionOptions, StatementResult};

/// The query files, by name.
const QUERIES: [(&str, &str); 24] = [
    ("q0", include_str!("../../sql-tests/nexmark/q0.sql")),
    ("q1", include_str!("../../sql-tests/nexmark/q1.sql")),
    ("q2", include_str!("../../sql-tests/nexmark/q2.sql")),
    ("q3", include_str!("../../sql-tests/nexmark/q3.sql")),
    ("q4", include_str!("../../sql-tests/nexmark/q4.sql")),
    ("q5", include_str!("../../sql-tests/nexmark/q5.sql")),
    ("q6", include_str!("../../sql-tests/nexmark/q6.sql")),
    ("q7", include_str!("../../sql-tests/nexmark/q7.sql")),
    ("q8", include_str!("../../sql-tests/nexmark/q8.sql")),
    ("q9", include_str!("../../sql-tests/nexmark/q9.sql")),
    ("q10", include_str!("../../sql-tests/nexmark/q10.sql")),
    ("q11", include_str!("../../sql-tests/nexmark/q11.sql")),
    ("q12", include_str!("../../sql-tests/nexmark/q12.sql")),
    ("q13", include_str!("../../sql-tests/nexmark/q13.sql")),
    ("q14", include_str!("../../sql-tests/nexmark/q14.sql")),
    ("q15", include_str!("../../sql-tests/nexmark/q15.sql")),
    ("q16", include_str!("../../sql-tests/nexmark/q16.sql")),
    ("q17", include_str!("../../sql-tests/nexmark/q17.sql")),
    ("q18", include_str!("../../sql-tests/nexmark/q18.sql")),
    ("q19", include_str!("../../sql-tests/nexmark/q19.sql")),
    ("q20", include_str!("../../sql-tests/nexmark/q20.sql")),
    ("q21", include_str!("../../sql-tests/nexmark/q21.sql")),
    ("q22", include_str!("../../sql-tests/nexmark/q22.sql")),
    ("q23", include_str!("../../sql-tests/nexmark/q23.sql")),
];
const DDL_GEN: &str = include_str!("../../sql-tests/nexmark/ddl_gen.sql");
const DDL_VIEWS: &str = include_str!("../../sql-tests/nexmark/ddl_views.sql");

/// Options of `weir bench nexmark`.
#[derive(Debug, Clone)]
pub struct NexmarkOptions {
    /// Events of the bounded input.
    pub events: u64,
    /// `parallelism.default`.
    pub parallelism: usize,
    /// Query names (`q0` ... `q23`), in order; empty: all but q6 (which Flink cannot run and
    /// whose sink declares a wrong type) and q12 (processing-time windows).
    pub queries: Vec<String>,
    /// Timed iterations per query (at least 1).
    pub iterations: usize,
    /// Also run each query with checkpoints every this long (`1 s`) and report the slowdown.
    pub checkpoint_interval: Option<String>,
    /// Check that streaming mode gives the batch result.
    pub verify: bool,
    /// Also run each query on the disk state backend with this memory budget (`256 mb`) and
    /// report its time and peak RSS beside the heap backend's (and, with `verify`, check its
    /// result too).
    pub disk_budget: Option<String>,
    /// Extra session options.
    pub settings: Vec<(String, String)>,
}

/// One query's measurements.
#[derive(Debug, Clone, Default)]
pub struct NexmarkQueryReport {
    pub query: String,
    /// Median wall-clock seconds of the plain runs.
    pub seconds: Option<f64>,
    /// Median CPU seconds (user + system) of the plain runs.
    pub cpu_seconds: Option<f64>,
    /// Median seconds with checkpoints on.
    pub checkpointed_seconds: Option<f64>,
    pub peak_rss: Option<u64>,
    /// Median seconds on the disk state backend.
    pub disk_seconds: Option<f64>,
    /// Peak RSS on the disk state backend.
    pub disk_peak_rss: Option<u64>,
    /// `Some(true)` when streaming gave the batch result.
    pub verified: Option<bool>,
    pub error: Option<String>,
}

/// The report of a run.
#[derive(Debug, Clone)]
pub struct NexmarkReport {
    pub events: u64,
    pub parallelism: usize,
    pub checkpoint_interval: Option<String>,
    pub disk_budget: Option<String>,
    pub queries: Vec<NexmarkQueryReport>,
}

/// The query names a selection such as `q0,q5,q8` (or `0,5,8`) names.
///
/// # Errors
/// `Invalid` for a name that is not a Nexmark query.
pub fn parse_queries(spec: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let name = if part.starts_with('q') {
            part.to_string()
        } else {
            format!("q{part}")
        };
        if !QUERIES.iter().any(|(q, _)| *q == name) {
            return Err(Error::invalid(format!(
                "unknown Nexmark query '{part}'; the queries are q0 to q23"
            )));
        }
        out.push(name);
    }
    Ok(out)
}

/// Runs the benchmark; `progress` gets one line per query.
///
/// # Errors
/// Setting up the scratch directory; a query's failure is reported in its row instead.
pub async fn run(
    options: &NexmarkOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<NexmarkReport> {
    let scratch =
        tempfile::tempdir().map_err(|e| Error::io("cannot create a scratch directory", e))?;
    let side_input = scratch.path().join("side_input.txt");
    let side: String = (0..10_000).map(|k| format!("{k},value-{k}\n")).collect();
    std::fs::write(&side_input, side).map_err(|e| Error::io("cannot write q13's side input", e))?;
    let queries: Vec<String> = if options.queries.is_empty() {
        QUERIES
            .iter()
            .map(|(q, _)| q.to_string())
            .filter(|q| q != "q6" && q != "q12")
            .collect()
    } else {
        options.queries.clone()
    };
    let mut report = NexmarkReport {
        events: options.events,
        parallelism: options.parallelism,
        checkpoint_interval: options.checkpoint_interval.clone(),
        disk_budget: options.disk_budget.clone(),
        queries: Vec::new(),
    };
    for q in queries {
        let r = match run_one(&q, options, &side_input, scratch.path()).await {
            Ok(r) => r,
            Err(e) => NexmarkQueryReport {
                query: q.clone(),
                error: Some(e.to_string()),
                ..Default::default()
            },
        };
        progress(&line(&r, options.events));
        report.queries.push(r);
    }
    Ok(report)
}

/// The statements of query `q`'s file with the placeholders filled: the sink table and the
/// `INSERT` (q10's partitioned filesystem sink and q13's legacy side-input table adapted).
async fn statements(q: &str, side_input: &Path) -> Result<Vec<String>> {
    let text = QUERIES
        .iter()
        .find(|(name, _)| *name == q)
        .map(|(_, t)| *t)
        .ok_or_else(|| Error::invalid(format!("unknown Nexmark query '{q}'")))?;
    let parsed = Session::open(SessionOptions::default())
        .await?
        .parse(text)?;
    Ok(parsed
        .into_iter()
        .map(|p| p.text)
        .map(|sql| {
            if sql.contains("CREATE TABLE side_input") {
                format!(
                    "CREATE TABLE side_input (key BIGINT, `value` VARCHAR) WITH ('connector' = \
                     'filesystem', 'path' = '{}', 'format' = 'csv')",
                    side_input.display()
                )
            } else if sql.contains("'connector' = 'filesystem'") && sql.contains("nexmark_q") {
                // The benchmark measures the query, not the file sink (as Flink's suite does).
                let at = sql.find("WITH (").unwrap_or(sql.len());
                let head = sql[..at].replace("PARTITIONED BY (dt, hm)", "");
                format!("{head} WITH ('connector' = 'blackhole')")
            } else {
                sql
            }
        })
        .collect())
}

/// A session in `mode` with the Nexmark table (bounded, unpaced) and views.
async fn session(
    mode: &str,
    options: &NexmarkOptions,
    extra: &[(String, String)],
) -> Result<Session> {
    let mut s = Session::open(SessionOptions::default()).await?;
    let mut settings = vec![
        ("execution.runtime-mode".to_string(), mode.to_string()),
        ("table.dml-sync".to_string(), "true".to_string()),
        (
            "parallelism.default".to_string(),
            options.parallelism.to_string(),
        ),
    ];
    settings.extend(options.settings.iter().cloned());
    settings.extend(extra.iter().cloned());
    for (k, v) in settings {
        s.execute_sql(&format!(
            "SET '{}' = '{}'",
            k.replace('\'', "''"),
            v.replace('\'', "''")
        ))
        .await?;
    }
    let fill = |text: &str| {
        text.replace("${TPS}", "10000000")
            .replace("${EVENTS_NUM}", &options.events.to_string())
            .replace("${PERSON_PROPORTION}", "1")
            .replace("${AUCTION_PROPORTION}", "3")
            .replace("${BID_PROPORTION}", "46")
            .replace("${NEXMARK_TABLE}", "datagen")
    };
    s.execute_sql(&fill(DDL_GEN)).await?;
    s.execute_sql(&fill(DDL_VIEWS)).await?;
    Ok(s)
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit(')').next()?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted after the command's closing paren.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

async fn run_one(
    q: &str,
    options: &NexmarkOptions,
    side_input: &Path,
    scratch: &Path,
) -> Result<NexmarkQueryReport> {
    let statements = statements(q, side_input).await?;
    let mut report = NexmarkQueryReport {
        query: q.to_string(),
        ..Default::default()
    };
    let mut plain = Vec::new();
    let mut cpu = Vec::new();
    let mut checkpointed = Vec::new();
    let mut on_disk = Vec::new();
    let mut peak = None::<u64>;
    let mut disk_peak = None::<u64>;
    let disk = disk_settings(options);
    for i in 0..options.iterations.max(1) {
        // The RSS high-water mark is reset before each INSERT (where Linux allows it).
        let (wall, used) = timed_insert(options, &statements, &[]).await?;
        peak = peak.max(super::memory::peak_rss_bytes());
        plain.push(wall.as_secs_f64());
        if let Some(c) = used {
            cpu.push(c);
        }
        if let Some(interval) = &options.checkpoint_interval {
            let dir = scratch.join(format!("checkpoints-{q}-{i}"));
            let extra = [
                (
                    "execution.checkpointing.interval".to_string(),
                    interval.clone(),
                ),
                (
                    "execution.checkpointing.dir".to_string(),
                    dir.display().to_string(),
                ),
            ];
            let (wall, _) = timed_insert(options, &statements, &extra).await?;
            checkpointed.push(wall.as_secs_f64());
            let _ = std::fs::remove_dir_all(&dir);
        }
        if let Some(extra) = &disk {
            let (wall, _) = timed_insert(options, &statements, extra).await?;
            disk_peak = disk_peak.max(super::memory::peak_rss_bytes());
            on_disk.push(wall.as_secs_f64());
        }
    }
    report.seconds = super::median(&plain);
    report.cpu_seconds = super::median(&cpu);
    report.checkpointed_seconds = super::median(&checkpointed);
    report.peak_rss = peak;
    report.disk_seconds = super::median(&on_disk);
    report.disk_peak_rss = disk_peak;
    if options.verify {
        report.verified = Some(verify(options, &statements, disk.as_deref()).await?);
    }
    Ok(report)
}

/// Runs the query's statements in a new streaming session; times the `INSERT` (wall clock and
/// CPU).
async fn timed_insert(
    options: &NexmarkOptions,
    statements: &[String],
    extra: &[(String, String)],
) -> Result<(Duration, Option<f64>)> {
    let mut s = session("streaming", options, extra).await?;
    let mut timed = None;
    super::memory::reset_peak();
    for sql in statements {
        if select_of(sql).is_none() {
            s.execute_sql(sql).await?;
            continue;
        }
        let cpu = cpu_seconds();
        let started = Instant::now();
        s.execute_sql(sql).await?;
        let wall = started.elapsed();
        timed = Some((wall, cpu.zip(cpu_seconds()).map(|(a, b)| b - a)));
    }
    timed.ok_or_else(|| Error::internal("a Nexmark query file without an INSERT"))
}

/// Whether the query's `SELECT` gives the same rows in streaming mode (materialized) as in batch
/// mode.
async fn verify(
    options: &NexmarkOptions,
    statements: &[String],
    disk: Option<&[(String, String)]>,
) -> Result<bool> {
    let mut batch = session("batch", options, &[]).await?;
    let mut streaming = vec![session("streaming", options, &[]).await?];
    if let Some(extra) = disk {
        streaming.push(session("streaming", options, extra).await?);
    }
    let mut same = true;
    for sql in statements {
        let Some(select) = select_of(sql) else {
            batch.execute_sql(sql).await?;
            for s in &mut streaming {
                s.execute_sql(sql).await?;
            }
            continue;
        };
        let expected = rows_of(&mut batch, &select).await?;
        for s in &mut streaming {
            same &= rows_of(s, &select).await? == expected;
        }
    }
    Ok(same)
}

/// The session options of the disk-backend runs, if asked for.
fn disk_settings(options: &NexmarkOptions) -> Option<Vec<(String, String)>> {
    options.disk_budget.as_ref().map(|budget| {
        vec![
            ("state.backend.type".to_string(), "disk".to_string()),
            ("state.backend.memory-budget".to_string(), budget.clone()),
        ]
    })
}

/// The query of `INSERT INTO <table> <query>`, or `None` for other statements.
fn select_of(sql: &str) -> Option<String> {
    let code = sql
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--"))?;
    if !code.to_ascii_uppercase().starts_with("INSERT INTO") {
        return None;
    }
    let at = sql.find("INSERT INTO")?;
    let rest = sql[at + "INSERT INTO".len()..].trim_start();
    let after_table = rest.find(char::is_whitespace)?;
    Some(rest[after_table..].trim().to_string())
}

/// The rows of a query as sorted strings (floating-point values to 9 significant digits: batch
/// plans add in DataFusion's order, the streaming accumulators exactly).
async fn rows_of(session: &mut Session, sql: &str) -> Result<Vec<String>> {
    let mut results = session.execute_sql(sql).await?;
    let Some(StatementResult::Rows(mut result)) = results.pop() else {
        return Err(Error::internal(format!("no rows from {sql}")));
    };
    let mut batches: Vec<RecordBatch> = Vec::new();
    while let Some(b) = result.stream.next().await {
        batches.push(b?);
    }
    let batches = if result.changelog {
        vec![crate::session::materialize(&result.schema, &batches)?]
    } else {
        batches
    };
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in &batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for r in 0..b.num_rows() {
            let cells: Vec<String> = fmts
                .iter()
                .zip(b.columns())
                .map(|(f, c)| {
                    let s = f.value(r).to_string();
                    match s.parse::<f64>() {
                        Ok(v) if c.data_type().is_floating() => format!("{v:.9e}"),
                        _ => s,
                    }
                })
                .collect();
            out.push(cells.join(" | "));
        }
    }
    out.sort();
    Ok(out)
}

fn line(r: &NexmarkQueryReport, events: u64) -> String {
    match (&r.error, r.seconds) {
        (Some(e), _) => format!("{}: FAILED: {e}", r.query),
        (None, Some(s)) => format!(
            "{}: {:.2} s, {:.0} events/s{}",
            r.query,
            s,
            events as f64 / s.max(1e-9),
            match r.checkpointed_seconds {
                Some(c) => format!(
                    ", with checkpoints {c:.2} s ({:+.1}%)",
                    (c / s - 1.0) * 100.0
                ),
                None => String::new(),
            } + &match r.disk_seconds {
                Some(d) => format!(
                    ", disk backend {d:.2} s ({:+.1}%, peak RSS {})",
                    (d / s - 1.0) * 100.0,
                    r.disk_peak_rss
                        .map_or("-".to_string(), super::memory::human)
                ),
                None => String::new(),
            }
        ),
        (None, None) => format!("{}: no run", r.query),
    }
}

impl NexmarkReport {
    /// Whether every query ran (and, when verified, matched).
    pub fn all_ok(&self) -> bool {
        self.queries
            .iter()
            .all(|q| q.error.is_none() && q.verified != Some(false))
    }

    /// The report as a Markdown table.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "Nexmark, {} events (bounded `nexmark` generator), parallelism {}, streaming mode, \
             `INSERT INTO` blackhole{}\n\n",
            self.events,
            self.parallelism,
            match &self.checkpoint_interval {
                Some(i) => format!("; checkpoints every {i} in the second run"),
                None => String::new(),
            } + &match &self.disk_budget {
                Some(b) => format!(
                    "; the last columns: the disk state backend with a memory budget of {b} \
                     (the others: the heap backend)"
                ),
                None => String::new(),
            }
        );
        let disk = self.disk_budget.is_some();
        out.push_str(if disk {
            "| query | seconds | events/s | events per CPU-second | peak RSS | with checkpoints (s) | checkpoint cost | streaming = batch | disk backend (s) | disk / heap throughput | disk peak RSS |\n\
             |---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n"
        } else {
            "| query | seconds | events/s | events per CPU-second | peak RSS | with checkpoints (s) | checkpoint cost | streaming = batch |\n\
             |---|---:|---:|---:|---:|---:|---:|---|\n"
        });
        for q in &self.queries {
            let events = self.events as f64;
            let cell = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                q.query,
                cell(q.seconds.map(|s| format!("{s:.2}"))),
                cell(q.seconds.map(|s| format!("{:.0}", events / s.max(1e-9)))),
                cell(
                    q.cpu_seconds
                        .map(|c| format!("{:.0}", events / c.max(1e-9)))
                ),
                cell(q.peak_rss.map(super::memory::human)),
                cell(q.checkpointed_seconds.map(|c| format!("{c:.2}"))),
                cell(
                    q.checkpointed_seconds
                        .zip(q.seconds)
                        .map(|(c, s)| format!("{:+.1}%", (c / s - 1.0) * 100.0))
                ),
                match (&q.error, q.verified) {
                    (Some(e), _) => format!("FAILED: {}", e.replace('|', "/")),
                    (None, Some(true)) => "yes".to_string(),
                    (None, Some(false)) => "NO".to_string(),
                    (None, None) => "-".to_string(),
                }
            ));
            if disk {
                out.pop();
                out.push_str(&format!(
                    " {} | {} | {} |\n",
                    cell(q.disk_seconds.map(|d| format!("{d:.2}"))),
                    cell(
                        q.disk_seconds
                            .zip(q.seconds)
                            .map(|(d, s)| format!("{:.2}", s / d.max(1e-9)))
                    ),
                    cell(q.disk_peak_rss.map(super::memory::human)),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_selection() {
        assert_eq!(parse_queries("q0, 5,q8").unwrap(), ["q0", "q5", "q8"]);
        assert!(parse_queries("q24").is_err());
        assert!(parse_queries("").unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_verifies_and_measures_checkpoints() {
        let options = NexmarkOptions {
            events: 20_000,
            parallelism: 2,
            queries: parse_queries("q1,q5").unwrap(),
            iterations: 1,
            checkpoint_interval: Some("100 ms".to_string()),
            verify: true,
            disk_budget: Some("64 kb".to_string()),
            settings: Vec::new(),
        };
        let mut lines = Vec::new();
        let report = run(&options, &mut |l| lines.push(l.to_string()))
            .await
            .unwrap();
        assert!(report.all_ok(), "{}", report.to_markdown());
        assert_eq!(lines.len(), 2);
        for q in &report.queries {
            assert!(q.seconds.is_some_and(|s| s > 0.0), "{q:?}");
            assert!(q.checkpointed_seconds.is_some(), "{q:?}");
            assert!(q.disk_seconds.is_some(), "{q:?}");
            assert_eq!(q.verified, Some(true), "{q:?}");
        }
        let md = report.to_markdown();
        assert!(md.contains("| q5 |"), "{md}");
        assert!(md.contains("disk / heap throughput"), "{md}");
        // A bad query name is refused before anything runs.
        assert!(parse_queries("q1,qx").is_err());
    }
}
