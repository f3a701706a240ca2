//! Peer engines for `--compare` and live `--verify`: DuckDB and DataFusion's Python package run
//! the same query texts over the same Parquet files with the same thread count (and memory
//! limit), in one Python process per engine. The Python is `$WEIR_PYTHON` when set, else
//! `python3`. A peer that cannot be imported is skipped with a message, never a failure.
//!
//! The script reads a JSON job on stdin and writes one line per query as it goes, `WEIRPEER `
//! then JSON (other stdout lines are the engines' own and ignored), so the runner can show
//! progress: `{"query": "q01", "times_ms": [...], "rows": 4, "error": null,
//! "answer": [[...]]}` (the answer, every value as text, only when asked for).

use std::path::Path;
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::error::{Error, Result};

use super::answers::Answer;

/// A peer engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Peer {
    /// DuckDB's Python package (`duckdb`).
    DuckDb,
    /// Apache DataFusion's Python package (`datafusion`).
    DataFusion,
}

impl Peer {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Peer::DuckDb => "duckdb",
            Peer::DataFusion => "datafusion",
        }
    }

    /// Parses `duckdb,datafusion` (any order, distinct; empty → none).
    ///
    /// # Errors
    /// `Invalid` for an unknown engine name.
    pub fn parse_list(spec: &str) -> Result<Vec<Peer>> {
        let mut out = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let peer = match item.to_ascii_lowercase().as_str() {
                "duckdb" => Peer::DuckDb,
                "datafusion" => Peer::DataFusion,
                other => {
                    return Err(Error::invalid(format!(
                        "unknown engine '{other}' in --compare; known: duckdb, datafusion"
                    )));
                }
            };
            if !out.contains(&peer) {
                out.push(peer);
            }
        }
        Ok(out)
    }
}

/// The Python interpreter the runner uses: `$WEIR_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("WEIR_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// One query of a peer job.
#[derive(Debug, Clone, Serialize)]
pub struct PeerQuery {
    /// Report name (`q01`).
    pub name: String,
    /// The SQL text (Weir's; the runner turns backquotes into double quotes).
    pub sql: String,
}

/// What a peer did with one query.
#[derive(Debug, Clone, Deserialize)]
pub struct PeerResult {
    /// Report name.
    pub query: String,
    /// Milliseconds of each timed iteration (running the query and fetching every row).
    #[serde(default)]
    pub times_ms: Vec<f64>,
    /// Rows returned.
    pub rows: Option<u64>,
    /// The peer's error text, when the query failed there.
    pub error: Option<String>,
    /// The answer as text, when asked for.
    pub answer: Option<Answer>,
}

/// A peer run: per-query results, or why the peer was skipped.
#[derive(Debug, Clone)]
pub enum PeerRun {
    /// The peer ran; its version and results, in query order.
    Ran {
        /// The package version.
        version: String,
        /// One result per query.
        results: Vec<PeerResult>,
    },
    /// The peer is not available (message says why).
    Skipped(String),
}

/// Settings of a peer run.
#[derive(Debug, Clone)]
pub struct PeerJob<'a> {
    /// The Python interpreter ([`python`] unless a caller knows better).
    pub python: String,
    /// Where the data lives (`<dir>/<table>/*.parquet`).
    pub data_dir: &'a Path,
    /// The tables to register.
    pub tables: &'a [&'a str],
    /// Threads (DuckDB `threads`, DataFusion target partitions).
    pub threads: usize,
    /// Timed iterations per query (0: run once, untimed, e.g. only for the answer).
    pub iterations: usize,
    /// Memory limit in bytes, when set.
    pub memory_limit: Option<usize>,
    /// Whether to return each query's answer as text.
    pub answers: bool,
}

const SCRIPT: &str = r#"
import json, sys, time, warnings
warnings.filterwarnings("ignore")
job = json.loads(sys.stdin.readline())
engine = job["engine"]
try:
    if engine == "duckdb":
        import duckdb as mod
    else:
        import datafusion as mod
except Exception as e:
    print("WEIRPEER " + json.dumps({"skip": f"the Python package '{engine}' cannot be imported ({e})"}), flush=True)
    sys.exit(0)
data, threads, limit = job["data"], job["threads"], job["memory_limit"]
if engine == "duckdb":
    config = {"threads": threads}
    if limit:
        config["memory_limit"] = f"{limit // (1024 * 1024)}MiB"
    con = mod.connect(config=config)
    con.execute("SET enable_progress_bar = false")
    for t in job["tables"]:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data}/{t}/*.parquet')")
    def run(sql):
        return con.sql(sql).to_arrow_table()
else:
    from datafusion import SessionContext, SessionConfig, RuntimeEnvBuilder
    runtime = RuntimeEnvBuilder().with_disk_manager_os()
    if limit:
        runtime = runtime.with_fair_spill_pool(limit)
    ctx = SessionContext(SessionConfig().with_target_partitions(threads), runtime)
    for t in job["tables"]:
        ctx.register_parquet(t, f"{data}/{t}/")
    import pyarrow as pa
    def run(sql):
        df = ctx.sql(sql)
        batches = df.collect()
        # An empty answer has no batch to take the schema from.
        return pa.Table.from_batches(batches) if batches else df.schema().empty_table()
print("WEIRPEER " + json.dumps({"version": mod.__version__}), flush=True)
for q in job["queries"]:
    out = {"query": q["name"], "times_ms": [], "rows": None, "error": None}
    try:
        table = None
        for _ in range(max(job["iterations"], 1)):
            started = time.perf_counter()
            table = run(q["sql"])
            if job["iterations"] > 0:
                out["times_ms"].append((time.perf_counter() - started) * 1000.0)
        out["rows"] = table.num_rows
        if job["answers"]:
            out["answer"] = [[None if v is None else str(v) for v in r.values()] for r in table.to_pylist()]
    except Exception as e:
        out["error"] = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print("WEIRPEER " + json.dumps(out), flush=True)
"#;

/// Runs `queries` in `peer`; `on_result` sees each result as it arrives.
///
/// # Errors
/// `External` when the Python process fails in a way that is not a missing package (crash,
/// unreadable output). A missing Python or package is `Ok(PeerRun::Skipped)`.
pub async fn run_peer(
    peer: Peer,
    job: &PeerJob<'_>,
    queries: &[PeerQuery],
    on_result: &mut (dyn FnMut(&PeerResult) + Send),
) -> Result<PeerRun> {
    let python = job.python.clone();
    let mut child = match tokio::process::Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Ok(PeerRun::Skipped(format!(
                "'{python}' cannot be run ({e}); set WEIR_PYTHON to a Python with {} installed",
                peer.name()
            )));
        }
    };
    let request = serde_json::json!({
        "engine": peer.name(),
        "data": job.data_dir.to_string_lossy(),
        "tables": job.tables,
        "threads": job.threads,
        "iterations": job.iterations,
        "memory_limit": job.memory_limit,
        "answers": job.answers,
        "queries": queries.iter().map(|q| serde_json::json!({
            "name": q.name,
            "sql": q.sql.replace('`', "\""),
        })).collect::<Vec<_>>(),
    });
    let mut line = request.to_string();
    line.push('\n');
    let describe = |what: &str, e: &dyn std::fmt::Display| {
        Error::external(format!("{} peer ({python}): {what}: {e}", peer.name()))
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| describe("cannot send the job", &e))?;
    }
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::internal("the peer's stdout is not captured"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut version = None;
    let mut results = Vec::new();
    while let Some(text) = lines
        .next_line()
        .await
        .map_err(|e| describe("cannot read its output", &e))?
    {
        // Engines may print on stdout too (progress bars, warnings): only marked lines count.
        let Some(json) = text.strip_prefix("WEIRPEER ") else {
            continue;
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| describe("unreadable output", &e))?;
        if let Some(skip) = value.get("skip").and_then(|s| s.as_str()) {
            let _ = child.wait().await;
            return Ok(PeerRun::Skipped(skip.to_string()));
        }
        if let Some(v) = value.get("version").and_then(|s| s.as_str()) {
            version = Some(v.to_string());
            continue;
        }
        let result: PeerResult =
            serde_json::from_value(value).map_err(|e| describe("unreadable result", &e))?;
        on_result(&result);
        results.push(result);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| describe("cannot wait for it", &e))?;
    if !out.status.success() || results.len() != queries.len() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.trim().lines().last().unwrap_or("no message");
        return Err(Error::external(format!(
            "{} peer ({python}) stopped after {} of {} queries ({}): {last}",
            peer.name(),
            results.len(),
            queries.len(),
            out.status
        )));
    }
    Ok(PeerRun::Ran {
        version: version.unwrap_or_default(),
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lists_parse() -> Result<()> {
        assert_eq!(
            Peer::parse_list("duckdb, DataFusion,duckdb")?,
            vec![Peer::DuckDb, Peer::DataFusion]
        );
        assert!(Peer::parse_list("")?.is_empty());
        assert!(Peer::parse_list("polars").is_err_and(|e| e.message.contains("polars")));
        Ok(())
    }

    #[tokio::test]
    async fn empty_answers_are_zero_rows_in_both_peers() -> Result<()> {
        let Some(python) = std::env::var_os("WEIR_PYTHON") else {
            assert!(
                std::env::var("WEIR_REQUIRE_PEERS").as_deref() != Ok("1"),
                "WEIR_REQUIRE_PEERS=1 but WEIR_PYTHON is not set"
            );
            eprintln!("skipped: needs WEIR_PYTHON (a Python with duckdb and datafusion)");
            return Ok(());
        };
        let dir = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
        let job = PeerJob {
            python: python.to_string_lossy().into_owned(),
            data_dir: dir.path(),
            tables: &[],
            threads: 1,
            iterations: 1,
            memory_limit: None,
            answers: true,
        };
        let queries = [PeerQuery {
            name: "q01".into(),
            sql: "SELECT 1 AS x WHERE 1 = 0".into(),
        }];
        for peer in [Peer::DuckDb, Peer::DataFusion] {
            match run_peer(peer, &job, &queries, &mut |_| {}).await? {
                PeerRun::Ran { results, .. } => {
                    let r = &results[0];
                    assert_eq!((r.rows, r.error.as_deref()), (Some(0), None), "{peer:?}");
                }
                PeerRun::Skipped(why) => panic!("{peer:?} skipped: {why}"),
            }
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_missing_python_skips_the_peer_with_a_message() -> Result<()> {
        let job = PeerJob {
            python: "/nonexistent/python3".to_string(),
            data_dir: Path::new("/nonexistent"),
            tables: &["nation"],
            threads: 1,
            iterations: 1,
            memory_limit: None,
            answers: false,
        };
        let queries = [PeerQuery {
            name: "q01".into(),
            sql: "SELECT 1".into(),
        }];
        let run = run_peer(Peer::DuckDb, &job, &queries, &mut |_| {}).await?;
        match run {
            PeerRun::Skipped(why) => {
                assert!(
                    why.contains("/nonexistent/python3") && why.contains("WEIR_PYTHON"),
                    "{why}"
                );
            }
            PeerRun::Ran { .. } => panic!("ran without a Python"),
        }
        Ok(())
    }
}
