//! Durable streaming end to end, through `weir::Session`: a checkpointed `INSERT` job over the
//! paced, bounded `nexmark` source into a `filesystem` table is stopped part-way, started again
//! from its checkpoint (`'execution.savepoint.path'`), and its committed output must equal that
//! of a run that was never stopped: the same rows, none missing, none twice. Varied: the
//! parallelism, the checkpoint store (a local directory, the in-memory object store), the
//! checkpointing mode, and a corrupt newest checkpoint (the restore falls back to the previous
//! one, and the sink discards the output of the newer one).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use weir::{Session, SessionOptions, StatementResult};

mod common;
use common::sorted_rows;

fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The Nexmark table of `sql-tests/nexmark/ddl_gen.sql`: `events` events at 10,000 a second,
/// emitted at that rate in wall-clock time, with a watermark 200 ms behind (each split is in
/// event-time order), so windows fire while the job runs.
fn nexmark_ddl(events: u64) -> String {
    let text = std::fs::read_to_string(manifest_dir().join("sql-tests/nexmark/ddl_gen.sql"))
        .expect("ddl_gen.sql");
    text.replace("${TPS}", "10000")
        .replace("${EVENTS_NUM}", &events.to_string())
        .replace("${PERSON_PROPORTION}", "1")
        .replace("${AUCTION_PROPORTION}", "3")
        .replace("${BID_PROPORTION}", "46")
        .replace(
            "'connector' = 'nexmark',",
            "'connector' = 'nexmark', 'rate.limited' = 'true',",
        )
        .replace("INTERVAL '4' SECOND", "INTERVAL '200' MILLISECOND")
}

/// A per-window, per-auction aggregate (window state, emitted at the watermark).
const WINDOWED: &str = "INSERT INTO out \
    SELECT window_start, bid.auction, COUNT(*), MAX(bid.price) \
    FROM TABLE(TUMBLE(TABLE datagen, DESCRIPTOR(`dateTime`), INTERVAL '200' MILLISECOND)) \
    WHERE event_type = 2 \
    GROUP BY window_start, window_end, bid.auction";

const OUT_COLUMNS: &str = "window_start TIMESTAMP(3), auction BIGINT, bids BIGINT, top BIGINT";

/// Stateless: every bid, projected (the sources' positions and the sink only).
const BIDS: &str = "INSERT INTO out \
    SELECT `dateTime`, bid.auction, bid.bidder, bid.price FROM datagen WHERE event_type = 2";

async fn exec(s: &mut Session, sql: &str) -> StatementResult {
    let mut results = s
        .execute_sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    results.pop().expect("a result")
}

/// A session with the nexmark table and the output table at `out`.
async fn session(
    events: u64,
    parallelism: usize,
    out: &Path,
    settings: &[(&str, &str)],
) -> Session {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    exec(&mut s, "SET 'execution.runtime-mode' = 'streaming'").await;
    exec(
        &mut s,
        &format!("SET 'parallelism.default' = '{parallelism}'"),
    )
    .await;
    for (k, v) in settings {
        exec(&mut s, &format!("SET '{k}' = '{v}'")).await;
    }
    exec(&mut s, &nexmark_ddl(events)).await;
    let views = std::fs::read_to_string(manifest_dir().join("sql-tests/nexmark/ddl_views.sql"))
        .expect("ddl_views.sql");
    s.execute_sql(&views.replace("${NEXMARK_TABLE}", "datagen"))
        .await
        .expect("the Nexmark views");
    exec(
        &mut s,
        &format!(
            "CREATE TABLE out ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', \
             'format' = 'json')",
            out.display()
        ),
    )
    .await;
    s
}

/// Every committed row of the output directory, sorted (read in batch mode; in-progress files
/// are hidden).
async fn committed(out: &Path) -> Vec<String> {
    committed_table(out, OUT_COLUMNS, "json").await
}

/// Every row of the table with `columns` in `format` at `out`, sorted, read in batch mode (a
/// changelog format reads as its materialized result).
async fn committed_table(out: &Path, columns: &str, format: &str) -> Vec<String> {
    std::fs::create_dir_all(out).unwrap();
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    exec(&mut s, "SET 'execution.runtime-mode' = 'batch'").await;
    exec(
        &mut s,
        &format!(
            "CREATE TABLE out ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', \
             'format' = '{format}')",
            out.display()
        ),
    )
    .await;
    let StatementResult::Rows(r) = exec(&mut s, "SELECT * FROM out").await else {
        panic!("rows expected");
    };
    sorted_rows(&r.stream.try_collect::<Vec<_>>().await.unwrap())
}

/// Runs `query` to the end without checkpoints: the expected output.
async fn straight_run(query: &str, events: u64, parallelism: usize, out: &Path) -> Vec<String> {
    let mut s = session(events, parallelism, out, &[("table.dml-sync", "true")]).await;
    exec(&mut s, query).await;
    committed(out).await
}

/// The job id in an INSERT's status message.
fn job_id(result: &StatementResult) -> String {
    let StatementResult::Status(s) = result else {
        panic!("status expected");
    };
    s.message
        .rsplit("Job ID: ")
        .next()
        .map(|id| id.trim().to_string())
        .expect("a job id")
}

/// The job's `SHOW JOBS` row, by column name.
async fn show_job(s: &mut Session, id: &str) -> std::collections::HashMap<String, String> {
    let StatementResult::Rows(r) = exec(s, "SHOW JOBS").await else {
        panic!("rows expected");
    };
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
    for b in &batches {
        let schema = b.schema();
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
            .collect();
        let ids = &cols[schema.index_of("job id").unwrap()];
        for i in 0..b.num_rows() {
            if ids.value(i).to_string() == id {
                return schema
                    .fields()
                    .iter()
                    .zip(&cols)
                    .map(|(f, c)| (f.name().clone(), c.value(i).to_string()))
                    .collect();
            }
        }
    }
    panic!("job {id} is not in SHOW JOBS");
}

/// The `last checkpoint` column of the job's `SHOW JOBS` row (0 = none yet).
async fn last_checkpoint(s: &mut Session, id: &str) -> u64 {
    show_job(s, id).await["last checkpoint"]
        .parse()
        .unwrap_or(0)
}

/// Starts `query` with checkpoints, waits until `checkpoints` checkpoints of this run completed
/// (ids go on from a restored checkpoint's), and stops the job (a cancel, as when the process
/// is stopped). Returns the job id.
async fn run_and_stop(s: &mut Session, query: &str, checkpoints: u64) -> String {
    let id = job_id(&exec(s, query).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first = None;
    loop {
        let last = last_checkpoint(s, &id).await;
        if std::env::var_os("WEIR_DEBUG_CHECKPOINTS").is_some() {
            eprintln!("checkpoint {last}");
        }
        if last > 0 {
            let first = *first.get_or_insert(last);
            if last + 1 >= first + checkpoints {
                break;
            }
        }
        if Instant::now() >= deadline {
            let job = show_job(s, &id).await;
            panic!("no {checkpoints} checkpoints within 60 s: {job:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    exec(s, &format!("STOP JOB '{id}'")).await;
    id
}

/// Restores `query` from `savepoint` and runs it to the end.
async fn restore_and_finish(
    query: &str,
    events: u64,
    parallelism: usize,
    out: &Path,
    savepoint: &str,
    checkpoint_dir: &str,
) {
    let mut s = session(
        events,
        parallelism,
        out,
        &[
            ("table.dml-sync", "true"),
            ("execution.savepoint.path", savepoint),
            ("execution.checkpointing.interval", "200 ms"),
            ("execution.checkpointing.dir", checkpoint_dir),
        ],
    )
    .await;
    exec(&mut s, query).await;
}

const EVENTS: u64 = 30_000;

async fn stop_and_restore(query: &str, parallelism: usize, mode: &str, memory: bool) {
    stop_after(query, parallelism, mode, memory, 6).await;
}

/// Runs `query` with checkpoints, stops it after `checkpoints` checkpoints, restores it and
/// runs it to the end: the output equals a run never stopped.
async fn stop_after(query: &str, parallelism: usize, mode: &str, memory: bool, checkpoints: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let expected = straight_run(query, EVENTS, parallelism, &tmp.path().join("expected")).await;
    assert!(expected.len() > 100, "{}", expected.len());

    let out = tmp.path().join("out");
    let dir = if memory {
        format!("memory://checkpoints-{parallelism}-{mode}/jobs")
    } else {
        tmp.path().join("checkpoints").display().to_string()
    };
    let mut s = session(
        EVENTS,
        parallelism,
        &out,
        &[
            ("execution.checkpointing.interval", "200 ms"),
            ("execution.checkpointing.mode", mode),
            ("execution.checkpointing.dir", &dir),
        ],
    )
    .await;
    let id = run_and_stop(&mut s, query, checkpoints).await;
    let partial = committed(&out).await;
    assert!(
        !partial.is_empty() && partial.len() < expected.len(),
        "the job was stopped before the end ({} of {} rows)",
        partial.len(),
        expected.len()
    );
    restore_and_finish(
        query,
        EVENTS,
        parallelism,
        &out,
        &format!("{dir}/{id}"),
        &dir,
    )
    .await;
    let got = committed(&out).await;
    assert_eq!(got.len(), expected.len(), "row count after restore");
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_job_resumes_exactly_once_at_parallelism_1() {
    stop_and_restore(WINDOWED, 1, "EXACTLY_ONCE", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_job_resumes_exactly_once_at_parallelism_2() {
    stop_and_restore(WINDOWED, 2, "EXACTLY_ONCE", false).await;
}

/// A regular join: its state grows with the input and is never cleaned.
const REGULAR_JOIN: &str = "INSERT INTO out \
    SELECT B.`dateTime`, B.auction, B.price, A.seller FROM bid B JOIN auction A ON B.auction = A.id";

/// The disk state backend: a regular join whose state mostly lives on disk (a budget of 32 kb),
/// stopped after an incremental checkpoint (entries on disk copied into it, changed ones only)
/// and restored onto the disk backend, gives the output of a run never stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_backend_state_resumes_exactly_once() {
    // Ten seconds of paced input: the job must still be running after its checkpoints even when
    // the other tests of this binary share the machine.
    const EVENTS: u64 = 100_000;
    let tmp = tempfile::tempdir().unwrap();
    let expected = straight_run(REGULAR_JOIN, EVENTS, 2, &tmp.path().join("expected")).await;
    assert!(expected.len() > 100, "{}", expected.len());
    let out = tmp.path().join("out");
    let dir = tmp.path().join("checkpoints").display().to_string();
    let local = tmp.path().join("state").display().to_string();
    let disk = [
        ("state.backend.type", "disk"),
        ("state.backend.memory-budget", "32 kb"),
        ("state.backend.local-dir", local.as_str()),
        ("execution.checkpointing.interval", "200 ms"),
        ("execution.checkpointing.dir", dir.as_str()),
    ];
    let mut s = session(EVENTS, 2, &out, &disk).await;
    let before = weir::stream::spill::spilled_entries();
    let id = run_and_stop(&mut s, REGULAR_JOIN, 2).await;
    assert!(
        weir::stream::spill::spilled_entries() > before,
        "nothing went to disk"
    );
    // Output may still be pending (the last checkpoint's files are committed by the restore),
    // but the job was stopped before the end. The join rows after the restore need the state
    // of before it: auctions read before the stop meet bids read after it.
    let partial = committed(&out).await;
    assert!(
        partial.len() < expected.len(),
        "the job was stopped before the end ({} of {} rows)",
        partial.len(),
        expected.len()
    );
    let savepoint = format!("{dir}/{id}");
    let mut settings = vec![
        ("table.dml-sync", "true"),
        ("execution.savepoint.path", savepoint.as_str()),
    ];
    settings.extend(disk);
    let mut s = session(EVENTS, 2, &out, &settings).await;
    exec(&mut s, REGULAR_JOIN).await;
    let got = committed(&out).await;
    assert_eq!(got.len(), expected.len(), "row count after restore");
    assert_eq!(got, expected);
}

/// An interval join (join state with time-bounded cleanup).
const INTERVAL_JOIN: &str = "INSERT INTO out \
    SELECT B.`dateTime`, B.auction, B.price, A.seller FROM bid B JOIN auction A \
    ON B.auction = A.id AND B.`dateTime` BETWEEN A.`dateTime` AND A.`dateTime` + INTERVAL '1' SECOND";

/// A window join of two window aggregates (Nexmark q8's shape).
const WINDOW_JOIN: &str = "INSERT INTO out \
    SELECT P.window_start, P.id, A.auctions, P.people FROM \
    (SELECT id, window_start, window_end, COUNT(*) AS people FROM \
       TABLE(TUMBLE(TABLE person, DESCRIPTOR(`dateTime`), INTERVAL '500' MILLISECOND)) \
       GROUP BY id, window_start, window_end) P \
    JOIN (SELECT seller, window_start, window_end, COUNT(*) AS auctions FROM \
       TABLE(TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`), INTERVAL '500' MILLISECOND)) \
       GROUP BY seller, window_start, window_end) A \
    ON P.id = A.seller AND P.window_start = A.window_start AND P.window_end = A.window_end";

/// An OVER aggregate (rows buffered per partition until the watermark).
const OVER: &str = "INSERT INTO out \
    SELECT `dateTime`, auction, price, COUNT(*) OVER (PARTITION BY auction ORDER BY `dateTime` \
    ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) FROM bid";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_join_resumes_exactly_once() {
    // Joined rows come out at once: stop early.
    stop_after(INTERVAL_JOIN, 2, "EXACTLY_ONCE", false, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_join_resumes_exactly_once() {
    stop_and_restore(WINDOW_JOIN, 2, "EXACTLY_ONCE", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_aggregate_resumes_exactly_once() {
    stop_and_restore(OVER, 2, "EXACTLY_ONCE", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_job_resumes_exactly_once() {
    stop_and_restore(BIDS, 2, "EXACTLY_ONCE", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_to_an_object_store_url() {
    stop_and_restore(WINDOWED, 2, "EXACTLY_ONCE", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = straight_run(WINDOWED, EVENTS, 2, &tmp.path().join("expected")).await;
    let out = tmp.path().join("out");
    let dir = tmp.path().join("checkpoints").display().to_string();
    let mut s = session(
        EVENTS,
        2,
        &out,
        &[
            ("execution.checkpointing.interval", "200 ms"),
            ("execution.checkpointing.mode", "AT_LEAST_ONCE"),
            ("execution.checkpointing.dir", &dir),
        ],
    )
    .await;
    let id = run_and_stop(&mut s, WINDOWED, 2).await;
    restore_and_finish(WINDOWED, EVENTS, 2, &out, &format!("{dir}/{id}"), &dir).await;
    // Changes after a barrier may be counted twice (no alignment), none is lost: every window
    // and auction is there, with at least its count and the same top price.
    let by_key = |rows: &[String]| -> std::collections::BTreeMap<String, (u64, String)> {
        rows.iter()
            .map(|r| {
                let f: Vec<&str> = r.split(" | ").collect();
                (
                    format!("{} {}", f[0], f[1]),
                    (f[2].parse().unwrap(), f[3].to_string()),
                )
            })
            .collect()
    };
    let got = by_key(&committed(&out).await);
    let expected = by_key(&expected);
    for (key, (count, top)) in &expected {
        let (c, t) = got
            .get(key)
            .unwrap_or_else(|| panic!("missing after restore: {key}"));
        assert!(c >= count, "{key}: count {c} < {count}");
        assert_eq!(t, top, "{key}");
    }
    assert_eq!(got.len(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_falls_back_to_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = straight_run(WINDOWED, EVENTS, 2, &tmp.path().join("expected")).await;
    let out = tmp.path().join("out");
    let dir = tmp.path().join("checkpoints");
    let mut s = session(
        EVENTS,
        2,
        &out,
        &[
            ("execution.checkpointing.interval", "200 ms"),
            ("execution.checkpointing.dir", &dir.display().to_string()),
            ("state.checkpoints.num-retained", "3"),
        ],
    )
    .await;
    let id = run_and_stop(&mut s, WINDOWED, 3).await;
    // Corrupt one state file of the newest complete checkpoint.
    let job = dir.join(&id);
    let mut complete: Vec<(u64, PathBuf)> = std::fs::read_dir(&job)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let n = p
                .file_name()?
                .to_str()?
                .strip_prefix("chk-")?
                .parse()
                .ok()?;
            p.join("_metadata").exists().then_some((n, p))
        })
        .collect();
    complete.sort();
    let (newest, path) = complete.last().cloned().expect("a complete checkpoint");
    assert!(complete.len() >= 2, "{complete:?}");
    let state = std::fs::read_dir(&path)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "state") && p.metadata().unwrap().len() > 8)
        .expect("a state file");
    let mut bytes = std::fs::read(&state).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&state, bytes).unwrap();

    restore_and_finish(
        WINDOWED,
        EVENTS,
        2,
        &out,
        &job.display().to_string(),
        &dir.display().to_string(),
    )
    .await;
    let got = committed(&out).await;
    assert_eq!(
        got.len(),
        expected.len(),
        "row count after restoring before {newest}"
    );
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_from_nothing_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = session(
        1000,
        1,
        &tmp.path().join("out"),
        &[(
            "execution.savepoint.path",
            &tmp.path().join("none").display().to_string(),
        )],
    )
    .await;
    let err = s.execute_sql(WINDOWED).await.err().expect("an error");
    assert!(err.to_string().contains("no complete checkpoint"), "{err}");
}

/// An updating pipeline (a regular join under an unwindowed GROUP BY), kept as `debezium-json`.
const UPDATING: &str = "INSERT INTO agg \
    SELECT B.auction, COUNT(*), MAX(B.price), MAX(A.seller) FROM \
    (SELECT bid.auction AS auction, bid.price AS price FROM datagen WHERE event_type = 2) B \
    JOIN (SELECT auction.id AS id, auction.seller AS seller FROM datagen WHERE event_type = 1) A \
    ON B.auction = A.id GROUP BY B.auction";

const AGG_COLUMNS: &str = "auction BIGINT, bids BIGINT, top BIGINT, seller BIGINT";

fn agg_ddl(path: &Path) -> String {
    format!(
        "CREATE TABLE agg ({AGG_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', \
         'format' = 'debezium-json')",
        path.display()
    )
}

/// A child process killed when dropped (a failing test leaves no server behind).
struct KillOnDrop(std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `weir serve` on a free loopback port over `data`; returns the process, its address, and a
/// channel that gets a message each time the server has resumed its recorded jobs.
fn start_server(data: &Path) -> (KillOnDrop, String, std::sync::mpsc::Receiver<()>) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start weir serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let (resumed_tx, resumed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("[weir serve] {line}");
            }
            if line.contains("resumed streaming jobs") {
                let _ = resumed_tx.send(());
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                let uri = rest.split_whitespace().next().unwrap_or("");
                let _ = tx.send(uri.split("://").last().unwrap_or(uri).to_string());
            }
        }
    });
    let child = KillOnDrop(child);
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("weir serve did not say where it listens");
    (child, addr, resumed_rx)
}

/// The status and resume count of every job recorded in `data` (`jobs/<id>.json`), by job name.
fn recorded_statuses(data: &Path) -> Vec<(String, String, u64)> {
    let Ok(entries) = std::fs::read_dir(data.join("jobs")) else {
        return Vec::new();
    };
    let mut jobs: Vec<(String, String, u64)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|v| {
            (
                v["name"].as_str().unwrap_or("").to_string(),
                v["status"].as_str().unwrap_or("").to_string(),
                v["resumed"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    jobs.sort();
    jobs
}

/// A window deduplication: the highest bid of each auction in each window (append-only).
const WINDOW_DEDUP: &str = "INSERT INTO out \
    SELECT window_start, auction, price, bidder FROM ( \
      SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, auction \
        ORDER BY price DESC, bidder ASC, `dateTime` ASC) AS rn \
      FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '200' MILLISECOND))) \
    WHERE rn = 1";

/// The append-only pipelines of the kill test: the sink table and the query (each written
/// `INSERT INTO out`; see [`into`]).
const APPEND_ONLY: [(&str, &str); 5] = [
    ("out", WINDOWED),
    ("ij", INTERVAL_JOIN),
    ("wj", WINDOW_JOIN),
    ("over", OVER),
    ("dedup", WINDOW_DEDUP),
];

/// `insert` (`INSERT INTO out ...`) writing into `table` instead.
fn into(insert: &str, table: &str) -> String {
    insert.replacen("INSERT INTO out ", &format!("INSERT INTO {table} "), 1)
}

/// `CREATE TABLE` of an append-only output table `name` (json files) under `root`.
fn out_ddl(name: &str, root: &Path) -> String {
    format!(
        "CREATE TABLE {name} ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', 'path' = '{}', \
         'format' = 'json')",
        root.join(name).display()
    )
}

/// The monitored directory of the kill test (CSV files `id,name`, read as they appear) and its
/// updating aggregate, kept as debezium-json.
fn watched_ddl(input: &Path, root: &Path) -> String {
    format!(
        "CREATE TABLE watched (id INT, name STRING) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'csv', 'csv.header' = 'true', \
         'source.monitor-interval' = '50 ms'); \
         CREATE TABLE per_key (k INT, n BIGINT, top INT) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'debezium-json')",
        input.display(),
        root.join("per_key").display()
    )
}

const PER_KEY: &str =
    "INSERT INTO per_key SELECT id % 37, COUNT(*), MAX(id) FROM watched GROUP BY id % 37";
const PER_KEY_COLUMNS: &str = "k INT, n BIGINT, top INT";

/// Every committed row of each table of the kill test under `root`.
async fn kill_test_tables(root: &Path) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (table, _) in APPEND_ONLY {
        out.push((
            table.to_string(),
            committed_table(&root.join(table), OUT_COLUMNS, "json").await,
        ));
    }
    out.push((
        "agg".to_string(),
        committed_table(&root.join("agg"), AGG_COLUMNS, "debezium-json").await,
    ));
    out
}

/// The kill test: checkpointed jobs in `weir serve` over paced input, the server killed with
/// SIGKILL at random moments (while processing, while a checkpoint is written, while files are
/// committed), each time once it has resumed its jobs, and started again on the same data
/// directory. The jobs: a statement set over the nexmark source with every append-only pipeline
/// (window aggregate, interval join, window join, OVER, window deduplication) and an updating
/// one (regular join under GROUP BY, as debezium-json); the window aggregate again in
/// `AT_LEAST_ONCE` mode; and an updating aggregate over a monitored directory that gets a new
/// file during the kills. At the end of the input the committed output equals that of runs
/// without kills (`AT_LEAST_ONCE`: nothing missing). `WEIR_LONG_TESTS=1`: 40 kills over more
/// input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_its_job_exactly_once() {
    use arrow_flight::sql::client::FlightSqlServiceClient;
    use tonic::transport::Channel;
    let long = std::env::var("WEIR_LONG_TESTS").is_ok_and(|v| v == "1");
    let (kills, events) = if long { (40, 300_000) } else { (20, 150_000) };
    let tmp = tempfile::tempdir().unwrap();

    // The expected output: the same statements run to the end without checkpoints.
    let expected = {
        let root = tmp.path().join("expected");
        // The session has table `out` already.
        let mut s = session(events, 2, &root.join("out"), &[("table.dml-sync", "true")]).await;
        let mut inserts = Vec::new();
        for (table, insert) in APPEND_ONLY {
            if table != "out" {
                exec(&mut s, &out_ddl(table, &root)).await;
            }
            inserts.push(into(insert, table));
        }
        exec(&mut s, &agg_ddl(&root.join("agg"))).await;
        inserts.push(UPDATING.to_string());
        exec(
            &mut s,
            &format!("EXECUTE STATEMENT SET BEGIN {}; END", inserts.join("; ")),
        )
        .await;
        kill_test_tables(&root).await
    };
    for (table, rows) in &expected {
        assert!(rows.len() > 50, "{table}: {} rows", rows.len());
    }

    let data = tmp.path().join("data");
    let root = tmp.path().join("run");
    let input = tmp.path().join("watched");
    std::fs::create_dir_all(&input).unwrap();
    add_file(&input, "f-000.csv", 0..2000);
    let (mut server, addr, mut resumed) = start_server(&data);
    {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = FlightSqlServiceClient::new(channel);
        let mut setup = vec![
            "SET 'execution.runtime-mode' = 'streaming'".to_string(),
            "SET 'parallelism.default' = '2'".to_string(),
            "SET 'execution.checkpointing.interval' = '100 ms'".to_string(),
            nexmark_ddl(events),
        ];
        let views = std::fs::read_to_string(manifest_dir().join("sql-tests/nexmark/ddl_views.sql"))
            .expect("ddl_views.sql")
            .replace("${NEXMARK_TABLE}", "datagen");
        setup.extend(
            views
                .split(';')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string),
        );
        let mut inserts = Vec::new();
        for (table, insert) in APPEND_ONLY {
            setup.push(out_ddl(table, &root));
            inserts.push(into(insert, table));
        }
        setup.push(agg_ddl(&root.join("agg")));
        inserts.push(UPDATING.to_string());
        setup.push(format!(
            "EXECUTE STATEMENT SET BEGIN {}; END",
            inserts.join("; ")
        ));
        // The window aggregate again, at least once, into its own table.
        setup.push(out_ddl("alo", &root));
        setup.push("SET 'execution.checkpointing.mode' = 'AT_LEAST_ONCE'".to_string());
        setup.push(into(WINDOWED, "alo"));
        setup.push("SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE'".to_string());
        for sql in watched_ddl(&input, &root).split("; ") {
            setup.push(sql.to_string());
        }
        setup.push(PER_KEY.to_string());
        for sql in setup {
            client
                .execute_update(sql.clone(), None)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill test: {kills} kills, seed {seed}");
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut files = 1;
    for kill in 0..kills {
        if kill > 0 {
            // Kill only a server that runs the jobs again.
            resumed
                .recv_timeout(Duration::from_secs(60))
                .expect("the restarted server did not resume its jobs within 60 s");
        }
        let statuses = recorded_statuses(&data);
        assert!(
            statuses.iter().all(|(_, status, _)| status == "RUNNING"),
            "the input ended after {kill} of {kills} kills: {statuses:?}"
        );
        if kill % 4 == 3 {
            add_file(
                &input,
                &format!("f-{files:03}.csv"),
                (files * 2000)..(files * 2000 + 2000),
            );
            files += 1;
        }
        tokio::time::sleep(Duration::from_millis(150 + next(500))).await;
        server.kill().unwrap();
        server.wait().unwrap();
        (server, _, resumed) = start_server(&data);
    }
    add_file(
        &input,
        &format!("f-{files:03}.csv"),
        (files * 2000)..(files * 2000 + 2000),
    );
    files += 1;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let statuses = recorded_statuses(&data);
        assert_eq!(statuses.len(), 3, "{statuses:?}");
        // The nexmark jobs end with their input; the monitored directory's job runs on.
        let ended: Vec<&(String, String, u64)> = statuses
            .iter()
            .filter(|(_, status, _)| status != "RUNNING")
            .collect();
        if ended.len() == 2 {
            for (name, status, resumed) in &ended {
                assert_eq!(status, "FINISHED", "{name}");
                assert!(
                    *resumed >= kills as u64,
                    "{name} was resumed only {resumed} times after {kills} kills"
                );
            }
            break;
        }
        assert!(
            ended.iter().all(|(_, status, _)| status == "FINISHED"),
            "{statuses:?}"
        );
        assert!(
            Instant::now() < deadline,
            "the jobs did not finish within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (table, rows) in kill_test_tables(&root).await {
        let want = &expected.iter().find(|(t, _)| *t == table).unwrap().1;
        assert_eq!(rows.len(), want.len(), "{table}: rows after {kills} kills");
        assert_eq!(&rows, want, "{table} after {kills} kills");
    }
    // At least once: every input row counts at least once, so every window and auction of the
    // exact result is there, with at least its count and its maximum (some may be emitted
    // twice, or count a replayed bid twice).
    let alo = committed_table(&root.join("alo"), OUT_COLUMNS, "json").await;
    let want = &expected.iter().find(|(t, _)| t == "out").unwrap().1;
    let split = |row: &String| -> (String, String, i64, i64) {
        let f: Vec<&str> = row.split(" | ").collect();
        (
            f[0].to_string(),
            f[1].to_string(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        )
    };
    let mut got: std::collections::HashMap<(String, String), (i64, i64)> = Default::default();
    for row in &alo {
        let (w, a, n, top) = split(row);
        let e = got.entry((w, a)).or_insert((0, i64::MIN));
        *e = (e.0.max(n), e.1.max(top));
    }
    let missing: Vec<&String> = want
        .iter()
        .filter(|row| {
            let (w, a, n, top) = split(row);
            got.get(&(w, a)).is_none_or(|(gn, gt)| *gn < n || *gt < top)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "at least once lost {} of {} windows, e.g. {:?}",
        missing.len(),
        want.len(),
        missing.first()
    );
    // The monitored directory: once every file is read, the aggregate's changelog applied is
    // the batch result over all files.
    let per_key_expected = {
        let mut s = Session::open(SessionOptions::default()).await.unwrap();
        exec(&mut s, "SET 'execution.runtime-mode' = 'batch'").await;
        // The same directory, bounded (no monitoring).
        let ddl = watched_ddl(&input, &tmp.path().join("batch"))
            .replace(", 'source.monitor-interval' = '50 ms'", "");
        s.execute_sql(&ddl).await.unwrap();
        let StatementResult::Rows(r) = exec(
            &mut s,
            "SELECT id % 37, COUNT(*), MAX(id) FROM watched GROUP BY id % 37",
        )
        .await
        else {
            panic!("rows expected");
        };
        sorted_rows(&r.stream.try_collect::<Vec<_>>().await.unwrap())
    };
    assert_eq!(per_key_expected.len(), 37);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = committed_table(&root.join("per_key"), PER_KEY_COLUMNS, "debezium-json").await;
        if got == per_key_expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the monitored directory's aggregate after {files} files and {kills} kills: \
             {got:?}, expected {per_key_expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

/// The path in `STOP JOB`'s answer (`Savepoint completed. Path: <path>`).
fn savepoint_path(result: &StatementResult) -> String {
    let StatementResult::Status(s) = result else {
        panic!("status expected");
    };
    s.message
        .split("Path: ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no path in {:?}", s.message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_with_savepoint_then_restore_gives_the_uninterrupted_output() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = straight_run(WINDOWED, EVENTS, 2, &tmp.path().join("expected")).await;
    let out = tmp.path().join("out");
    let dir = tmp.path().join("checkpoints").display().to_string();
    let mut s = session(
        EVENTS,
        2,
        &out,
        &[
            // Periodic checkpoints rarely: the savepoint is what the restore uses.
            ("execution.checkpointing.interval", "1 h"),
            ("execution.checkpointing.dir", &dir),
        ],
    )
    .await;
    let id = job_id(&exec(&mut s, WINDOWED).await);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let path = savepoint_path(&exec(&mut s, &format!("STOP JOB '{id}' WITH SAVEPOINT")).await);
    assert!(Path::new(&path).join("_metadata").exists(), "{path}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(&path).join("_metadata")).unwrap())
            .unwrap();
    assert_eq!(manifest["savepoint"], true);
    // The output up to the savepoint is committed when STOP JOB answers.
    let partial = committed(&out).await;
    assert!(
        !partial.is_empty() && partial.len() < expected.len(),
        "{}",
        partial.len()
    );
    restore_and_finish(WINDOWED, EVENTS, 2, &out, &path, &dir).await;
    assert_eq!(committed(&out).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_with_drain_fires_every_window_and_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let dir = tmp.path().join("checkpoints").display().to_string();
    let mut s = session(
        EVENTS,
        1,
        &out,
        &[
            ("execution.checkpointing.interval", "200 ms"),
            ("execution.checkpointing.dir", &dir),
        ],
    )
    .await;
    let id = job_id(&exec(&mut s, WINDOWED).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let path = savepoint_path(
        &exec(
            &mut s,
            &format!("STOP JOB '{id}' WITH SAVEPOINT WITH DRAIN"),
        )
        .await,
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(&path).join("_metadata")).unwrap())
            .unwrap();
    assert_eq!(manifest["final_checkpoint"], true, "{manifest}");
    // Every window the read events touched fired (the watermark went to the end), and the
    // output is committed: the last window's bids are in.
    let rows = committed(&out).await;
    assert!(!rows.is_empty());
    let StatementResult::Rows(r) = exec(&mut s, "SHOW JOBS").await else {
        panic!("rows expected");
    };
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
    let status = ArrayFormatter::try_new(
        batches[0]
            .column(batches[0].schema().index_of("status").unwrap())
            .as_ref(),
        &FormatOptions::default(),
    )
    .unwrap()
    .value(0)
    .to_string();
    assert_eq!(status, "FINISHED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_a_changed_query_refuses_to_drop_state_unless_told() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let dir = tmp.path().join("checkpoints").display().to_string();
    let mut s = session(
        EVENTS,
        1,
        &out,
        &[
            ("execution.checkpointing.interval", "1 h"),
            ("execution.checkpointing.dir", &dir),
        ],
    )
    .await;
    let id = job_id(&exec(&mut s, WINDOWED).await);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let path = savepoint_path(&exec(&mut s, &format!("STOP JOB '{id}' WITH SAVEPOINT")).await);

    // Another aggregate over the same input: the window aggregate's state has no taker.
    let changed = WINDOWED.replace("MAX(bid.price)", "MIN(bid.price)");
    let mut s = session(
        EVENTS,
        1,
        &tmp.path().join("out2"),
        &[
            ("table.dml-sync", "true"),
            ("execution.savepoint.path", &path),
        ],
    )
    .await;
    // EXPLAIN tells beforehand, without running.
    let StatementResult::Rows(r) = exec(&mut s, &format!("EXPLAIN {changed}")).await else {
        panic!("rows expected");
    };
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
    let mut text = String::new();
    for b in &batches {
        for c in b.columns() {
            let f = ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap();
            for i in 0..b.num_rows() {
                text.push_str(&f.value(i).to_string());
                text.push('\n');
            }
        }
    }
    assert!(text.contains("restored: WatermarkAssigner"), "{text}");
    assert!(text.contains("dropped: WindowAggregate"), "{text}");
    assert!(text.contains("starts empty: WindowAggregate"), "{text}");
    assert!(text.contains("refused: state would be dropped"), "{text}");

    let err = s.execute_sql(&changed).await.err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("would be dropped"), "{text}");
    assert!(text.contains("WindowAggregate"), "{text}");
    assert!(text.contains("ignore-unclaimed-state"), "{text}");

    // Told to, it starts: the sources resume where they were, the new aggregate starts empty.
    exec(
        &mut s,
        "SET 'execution.savepoint.ignore-unclaimed-state' = 'true'",
    )
    .await;
    exec(&mut s, &changed).await;
    let rows = committed(&tmp.path().join("out2")).await;
    let full = straight_run(&changed, EVENTS, 1, &tmp.path().join("full")).await;
    assert!(
        !rows.is_empty() && rows.len() < full.len(),
        "resumed mid-way: {} of {} rows",
        rows.len(),
        full.len()
    );
}

/// Every line of the visible files of `out`, sorted.
fn csv_rows(out: &Path) -> Vec<String> {
    let mut rows: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    rows.sort();
    rows
}

/// Writes `rows` (ids) as a CSV file `name` into `dir` (written beside, then moved in).
fn add_file(dir: &Path, name: &str, rows: std::ops::Range<u32>) {
    let mut text = String::from("id,name\n");
    for i in rows {
        text.push_str(&format!("{i},row-{i}\n"));
    }
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A streaming session at parallelism 2 with checkpoints every 100 ms into `dir`, `settings`
/// set, then `ddl` run.
async fn monitored_session(
    ddl: String,
    dir: String,
    settings: Vec<(&'static str, String)>,
) -> Session {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    exec(&mut s, "SET 'execution.runtime-mode' = 'streaming'").await;
    exec(&mut s, "SET 'parallelism.default' = '2'").await;
    exec(&mut s, "SET 'execution.checkpointing.interval' = '100 ms'").await;
    exec(
        &mut s,
        &format!("SET 'execution.checkpointing.dir' = '{dir}'"),
    )
    .await;
    for (k, v) in settings {
        exec(&mut s, &format!("SET '{k}' = '{v}'")).await;
    }
    s.execute_sql(&ddl).await.unwrap();
    s
}

/// A monitored directory's position (the files seen, the rows read of each) is in the
/// checkpoint: files added while the job was stopped are read after the restore, files read
/// before it are not read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitored_directory_resumes_where_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let dir = tmp.path().join("checkpoints").display().to_string();
    for (k, name) in ["a.csv", "b.csv", "c.csv"].iter().enumerate() {
        add_file(&input, name, (k as u32 * 1000)..(k as u32 * 1000 + 500));
    }
    let ddl = format!(
        "CREATE TABLE src (id INT, name STRING) WITH ('connector' = 'filesystem', 'path' = '{}', \
         'format' = 'csv', 'csv.header' = 'true', 'source.monitor-interval' = '50 ms'); \
         CREATE TABLE sink (id INT, name STRING) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'csv')",
        input.display(),
        out.display()
    );
    let insert = "INSERT INTO sink SELECT id, name FROM src";
    let open = |savepoint: Option<String>| {
        let settings: Vec<(&'static str, String)> = savepoint
            .map(|p| ("execution.savepoint.path", p))
            .into_iter()
            .collect();
        monitored_session(ddl.clone(), dir.clone(), settings)
    };
    let wait_rows = |n: usize| {
        let out = out.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let rows = csv_rows(&out);
                if rows.len() >= n {
                    // Anything more would be a duplicate: give it the time to show.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    return csv_rows(&out);
                }
                assert!(Instant::now() < deadline, "{} of {n} rows", rows.len());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    let mut s = open(None).await;
    let id = job_id(&exec(&mut s, insert).await);
    assert_eq!(wait_rows(1500).await.len(), 1500);
    add_file(&input, "d.csv", 3000..3500);
    assert_eq!(wait_rows(2000).await.len(), 2000);
    exec(&mut s, &format!("STOP JOB '{id}'")).await;
    drop(s);
    // Added while the job is stopped.
    add_file(&input, "e.csv", 4000..4500);
    add_file(&input, "f.csv", 5000..5500);

    let mut s = open(Some(format!("{dir}/{id}"))).await;
    let id = job_id(&exec(&mut s, insert).await);
    let rows = wait_rows(3000).await;
    exec(&mut s, &format!("STOP JOB '{id}'")).await;
    let mut expected: Vec<String> = [0, 1000, 2000, 3000, 4000, 5000]
        .iter()
        .flat_map(|&b| (b..b + 500).map(|i| format!("{i},row-{i}")))
        .collect();
    expected.sort();
    assert_eq!(rows.len(), expected.len());
    assert_eq!(rows, expected);
}

/// `'restart-strategy.type' = 'fixed-delay'`: a job whose source fails (a malformed file in its
/// directory) restarts from its last complete checkpoint until the file is fixed, and its
/// output is then complete, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_strategy_restarts_a_job_whose_source_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let dir = tmp.path().join("checkpoints").display().to_string();
    add_file(&input, "a.csv", 0..500);
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    for (k, v) in [
        ("execution.runtime-mode", "streaming"),
        ("parallelism.default", "2"),
        ("execution.checkpointing.interval", "100 ms"),
        ("execution.checkpointing.dir", dir.as_str()),
        ("restart-strategy.type", "fixed-delay"),
        ("restart-strategy.fixed-delay.attempts", "1000"),
        ("restart-strategy.fixed-delay.delay", "100 ms"),
    ] {
        exec(&mut s, &format!("SET '{k}' = '{v}'")).await;
    }
    s.execute_sql(&format!(
        "CREATE TABLE src (id INT, name STRING) WITH ('connector' = 'filesystem', 'path' = '{}', \
         'format' = 'csv', 'csv.header' = 'true', 'source.monitor-interval' = '50 ms'); \
         CREATE TABLE sink (id INT, name STRING) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'csv')",
        input.display(),
        out.display()
    ))
    .await
    .unwrap();
    let id = job_id(&exec(&mut s, "INSERT INTO sink SELECT id, name FROM src").await);
    let restarts = |batches: &[RecordBatch]| -> (String, u64) {
        let b = &batches[0];
        let col = |name: &str| {
            ArrayFormatter::try_new(
                b.column(b.schema().index_of(name).unwrap()).as_ref(),
                &FormatOptions::default(),
            )
            .unwrap()
            .value(0)
            .to_string()
        };
        (col("status"), col("restarts").parse().unwrap())
    };
    // A malformed file: the source fails, the job restarts, fails again, ...
    let tmp_bad = input.join(".b.csv.tmp");
    std::fs::write(&tmp_bad, "id,name\n500,row-500\nnot-a-number,row-x\n").unwrap();
    std::fs::rename(&tmp_bad, input.join("b.csv")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let StatementResult::Rows(r) = exec(&mut s, "SHOW JOBS").await else {
            panic!("rows expected");
        };
        let batches: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
        let (status, n) = restarts(&batches);
        assert_ne!(status, "FAILED");
        if n >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no restarts within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Fixed: the next attempt reads it.
    add_file(&input, "b.csv", 500..1000);
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        if csv_rows(&out).len() >= 1000 {
            // Anything more would be a duplicate: give it the time to show.
            tokio::time::sleep(Duration::from_millis(500)).await;
            break csv_rows(&out);
        }
        assert!(
            Instant::now() < deadline,
            "{} of 1000 rows",
            csv_rows(&out).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    exec(&mut s, &format!("STOP JOB '{id}'")).await;
    let mut expected: Vec<String> = (0..1000).map(|i| format!("{i},row-{i}")).collect();
    expected.sort();
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows, expected);
}

/// The text of an `EXPLAIN`'s rows.
async fn explain(s: &mut Session, query: &str) -> String {
    let StatementResult::Rows(r) = exec(s, &format!("EXPLAIN {query}")).await else {
        panic!("rows expected");
    };
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
    let mut text = String::new();
    for b in &batches {
        for c in b.columns() {
            let f = ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap();
            for i in 0..b.num_rows() {
                text.push_str(&f.value(i).to_string());
                text.push('\n');
            }
        }
    }
    text
}

/// Input of the rescaling tests: 6 s at 10,000 events a second, so each step but the last stops
/// mid-way.
const CHAIN_EVENTS: u64 = 60_000;

/// Runs `query` (after `setup`) with checkpoints at each parallelism of `chain` in turn: each
/// run but the last is stopped after a few checkpoints and the next restores from it; the last
/// runs to the end. The committed output equals a run never stopped (`expected`, with `read`
/// reading what is committed).
async fn rescale_chain(
    query: &str,
    setup: &dyn Fn(&Path) -> Vec<String>,
    chain: &[usize],
    read: &dyn Fn(PathBuf) -> futures::future::BoxFuture<'static, Vec<String>>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let expected = {
        let root = tmp.path().join("expected");
        let mut s = session(
            CHAIN_EVENTS,
            chain[0],
            &root.join("out"),
            &[("table.dml-sync", "true")],
        )
        .await;
        for sql in setup(&root) {
            exec(&mut s, &sql).await;
        }
        exec(&mut s, query).await;
        read(root).await
    };
    assert!(expected.len() > 100, "{}", expected.len());
    let root = tmp.path().join("run");
    let dir = tmp.path().join("checkpoints").display().to_string();
    let mut savepoint: Option<String> = None;
    let mut seen = 0;
    for (step, &parallelism) in chain.iter().enumerate() {
        let last = step + 1 == chain.len();
        let mut settings = vec![
            ("execution.checkpointing.interval", "200 ms".to_string()),
            ("execution.checkpointing.dir", dir.clone()),
        ];
        if last {
            settings.push(("table.dml-sync", "true".to_string()));
        }
        if let Some(path) = &savepoint {
            settings.push(("execution.savepoint.path", path.clone()));
        }
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut s = session(CHAIN_EVENTS, parallelism, &root.join("out"), &settings).await;
        for sql in setup(&root) {
            exec(&mut s, &sql).await;
        }
        if step > 0 && query.starts_with("INSERT") {
            // The plan says which operators change parallelism.
            let text = explain(&mut s, query).await;
            assert!(
                text.contains(&format!(
                    "(parallelism {} -> {parallelism})",
                    chain[step - 1]
                )),
                "{text}"
            );
        }
        if last {
            exec(&mut s, query).await;
        } else {
            let id = run_and_stop(&mut s, query, 3).await;
            savepoint = Some(format!("{dir}/{id}"));
            let partial = read(root.clone()).await;
            assert!(
                partial.len() >= seen && partial.len() < expected.len(),
                "step {step}: {} rows committed ({seen} before, {} in all)",
                partial.len(),
                expected.len()
            );
            seen = partial.len();
        }
    }
    let got = read(root).await;
    assert_eq!(got.len(), expected.len(), "rows after rescaling {chain:?}");
    assert_eq!(got, expected, "rescaling {chain:?}");
}

fn no_setup(_: &Path) -> Vec<String> {
    Vec::new()
}

fn read_out(root: PathBuf) -> futures::future::BoxFuture<'static, Vec<String>> {
    Box::pin(async move { committed(&root.join("out")).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescaling_1_2_1_window_aggregate_and_updating_join() {
    // A statement set: the window aggregate into json, a regular join under a GROUP BY into
    // debezium-json (keyed state of both kinds, two sinks).
    let set = format!("EXECUTE STATEMENT SET BEGIN {WINDOWED}; {UPDATING}; END");
    let setup = |root: &Path| vec![agg_ddl(&root.join("agg"))];
    let read = |root: PathBuf| -> futures::future::BoxFuture<'static, Vec<String>> {
        Box::pin(async move {
            let mut rows = committed(&root.join("out")).await;
            rows.extend(committed_table(&root.join("agg"), AGG_COLUMNS, "debezium-json").await);
            rows
        })
    };
    rescale_chain(&set, &setup, &[1, 2, 1], &read).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescaling_2_1_2_interval_join() {
    rescale_chain(INTERVAL_JOIN, &no_setup, &[2, 1, 2], &read_out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescaling_1_2_1_over_and_window_join() {
    rescale_chain(OVER, &no_setup, &[1, 2, 1], &read_out).await;
    rescale_chain(WINDOW_JOIN, &no_setup, &[2, 1, 2], &read_out).await;
}

/// The bids of each window, through a view whose `price` column has type `price_type`.
fn prices_view(price_type: &str) -> String {
    format!(
        "CREATE VIEW prices AS SELECT window_start, window_end, bid.auction AS auction, \
         CAST(bid.price AS {price_type}) AS price \
         FROM TABLE(TUMBLE(TABLE datagen, DESCRIPTOR(`dateTime`), INTERVAL '200' MILLISECOND)) \
         WHERE event_type = 2"
    )
}

const FROM_PRICES: &str = "INSERT INTO out \
    SELECT window_start, auction, COUNT(*), CAST(MAX(price) AS BIGINT) FROM prices \
    GROUP BY window_start, window_end, auction";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_a_query_whose_types_changed_reports_incompatible_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("checkpoints").display().to_string();
    let mut s = session(
        EVENTS,
        1,
        &tmp.path().join("out"),
        &[
            ("execution.checkpointing.interval", "1 h"),
            ("execution.checkpointing.dir", &dir),
        ],
    )
    .await;
    exec(&mut s, &prices_view("BIGINT")).await;
    let id = job_id(&exec(&mut s, FROM_PRICES).await);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let path = savepoint_path(&exec(&mut s, &format!("STOP JOB '{id}' WITH SAVEPOINT")).await);

    // The same query over prices of another type: the window aggregate keeps its id, but its
    // accumulators (MAX over DOUBLE, not BIGINT) do not fit the state.
    let mut s = session(
        EVENTS,
        1,
        &tmp.path().join("out2"),
        &[
            ("table.dml-sync", "true"),
            ("execution.savepoint.path", &path),
            ("execution.savepoint.ignore-unclaimed-state", "true"),
        ],
    )
    .await;
    exec(&mut s, &prices_view("DOUBLE")).await;
    let text = explain(&mut s, FROM_PRICES).await;
    assert!(text.contains("incompatible: WindowAggregate"), "{text}");
    assert!(text.contains("Float64"), "{text}");
    assert!(text.contains("refused: state does not fit"), "{text}");
    assert!(!text.contains("starts empty: WindowAggregate"), "{text}");
    // Starting it is refused before any task runs (ignoring unclaimed state does not help).
    let err = s.execute_sql(FROM_PRICES).await.err().expect("refused");
    let message = err.to_string();
    assert!(message.contains("does not fit this query"), "{message}");
    assert!(message.contains("WindowAggregate"), "{message}");
    assert!(
        committed(&tmp.path().join("out2")).await.is_empty(),
        "nothing was written"
    );

    // The unchanged query restores (everything compatible, nothing refused).
    let mut s = session(
        EVENTS,
        1,
        &tmp.path().join("out3"),
        &[("execution.savepoint.path", &path)],
    )
    .await;
    exec(&mut s, &prices_view("BIGINT")).await;
    let text = explain(&mut s, FROM_PRICES).await;
    assert!(text.contains("restored: WindowAggregate"), "{text}");
    assert!(!text.contains("incompatible"), "{text}");
    assert!(!text.contains("refused"), "{text}");
}

/// The job's last checkpoint id, bytes written and bytes of state (`SHOW JOBS`), once
/// checkpoint `after` or a later one completed.
async fn stats_after(s: &mut Session, id: &str, after: u64) -> (u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = show_job(s, id).await;
        let last: u64 = row["last checkpoint"].parse().unwrap_or(0);
        if last >= after && last > 0 {
            let bytes: u64 = row["checkpoint bytes"].parse().unwrap();
            let state: u64 = row["state bytes"].parse().unwrap();
            return (last, bytes, state);
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint {after} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Incremental checkpoints (the default): once a large state is built, a checkpoint writes what
/// changed since the previous one, not the whole state (`SHOW JOBS`: checkpoint bytes against
/// state bytes); a job restored from such a checkpoint (a chain of deltas over a full snapshot)
/// goes on with exactly its state; with `'execution.checkpointing.incremental' = 'false'` every
/// checkpoint writes the whole state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_checkpoints_write_the_change_and_restore_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    let dir = tmp.path().join("checkpoints").display().to_string();
    add_file(&input, "a.csv", 0..20_000);
    let ddl = format!(
        "CREATE TABLE src (id INT, name STRING) WITH ('connector' = 'filesystem', 'path' = '{}', \
         'format' = 'csv', 'csv.header' = 'true', 'source.monitor-interval' = '50 ms'); \
         CREATE TABLE per_id (id INT, n BIGINT) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'debezium-json')",
        input.display(),
        out.display()
    );
    let insert = "INSERT INTO per_id SELECT id, COUNT(*) FROM src GROUP BY id";
    let open = |settings: Vec<(&'static str, String)>| {
        monitored_session(ddl.clone(), dir.clone(), settings)
    };
    let materialized = || committed_table(&out, "id INT, n BIGINT", "debezium-json");

    let mut s = open(vec![]).await;
    let id = job_id(&exec(&mut s, insert).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    while materialized().await.len() < 20_000 {
        assert!(
            Instant::now() < deadline,
            "the first file is not in within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The state is built: the checkpoints that follow hold (almost) nothing.
    let (last, _, _) = stats_after(&mut s, &id, 0).await;
    let (last, bytes, state) = stats_after(&mut s, &id, last + 2).await;
    assert!(state > 200_000, "20,000 groups are more than {state} bytes");
    assert!(
        bytes * 20 < state,
        "checkpoint {last} wrote {bytes} of {state} bytes"
    );
    // A small change: 100 groups updated, 10 new.
    add_file(&input, "b.csv", 0..100);
    add_file(&input, "c.csv", 50_000..50_010);
    while materialized().await.len() < 20_010 {
        assert!(
            Instant::now() < deadline,
            "b.csv and c.csv are not in within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (last, bytes, state) = stats_after(&mut s, &id, last + 2).await;
    assert!(
        bytes * 20 < state,
        "checkpoint {last} wrote {bytes} of {state} bytes"
    );
    exec(&mut s, &format!("STOP JOB '{id}'")).await;
    drop(s);
    // Long chains were compacted in the background (a `.base.state` file is referred to).
    let job_dir = Path::new(&dir).join(&id);
    let manifests: Vec<String> = std::fs::read_dir(&job_dir)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("_metadata")).ok())
        .collect();
    assert!(
        manifests.iter().any(|m| m.contains(".base.state")),
        "no retained checkpoint refers to a compacted file: {manifests:?}"
    );

    // Restored from the chain; full checkpoints from now on.
    add_file(&input, "d.csv", 0..10);
    let mut s = open(vec![
        ("execution.savepoint.path", format!("{dir}/{id}")),
        ("execution.checkpointing.incremental", "false".to_string()),
    ])
    .await;
    let id = job_id(&exec(&mut s, insert).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    let expected: Vec<String> = {
        let mut e: Vec<String> = (0..20_000)
            .map(|i| format!("{i} | {}", 1 + u32::from(i < 100) + u32::from(i < 10)))
            .chain((50_000..50_010).map(|i| format!("{i} | 1")))
            .collect();
        e.sort();
        e
    };
    loop {
        let rows = materialized().await;
        if rows == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the restore: {} rows, {} differ from the expected",
            rows.len(),
            rows.iter().zip(&expected).filter(|(a, b)| a != b).count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (last, _, _) = stats_after(&mut s, &id, 0).await;
    let (last, bytes, state) = stats_after(&mut s, &id, last + 1).await;
    assert_eq!(
        bytes, state,
        "checkpoint {last} (not incremental) wrote the whole state"
    );
    assert!(state > 200_000, "{state}");
    exec(&mut s, &format!("STOP JOB '{id}'")).await;
}
