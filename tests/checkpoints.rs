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
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in &batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            rows.push(
                f.iter()
                    .map(|f| f.value(i).to_string())
                    .collect::<Vec<_>>()
                    .join(" | "),
            );
        }
    }
    rows.sort();
    rows
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

/// The `last checkpoint` column of the job's `SHOW JOBS` row (0 = none yet).
async fn last_checkpoint(s: &mut Session, id: &str) -> u64 {
    let StatementResult::Rows(r) = exec(s, "SHOW JOBS").await else {
        panic!("rows expected");
    };
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
    for b in &batches {
        let schema = b.schema();
        let col = |name: &str| {
            let i = schema.index_of(name).unwrap();
            ArrayFormatter::try_new(b.column(i).as_ref(), &FormatOptions::default()).unwrap()
        };
        let (ids, last) = (col("job id"), col("last checkpoint"));
        for i in 0..b.num_rows() {
            if ids.value(i).to_string() == id {
                return last.value(i).to_string().parse().unwrap_or(0);
            }
        }
    }
    panic!("job {id} is not in SHOW JOBS");
}

/// Starts `query` with checkpoints, waits until `checkpoints` checkpoints completed, and
/// stops the job (a cancel, as when the process is stopped). Returns the job id.
async fn run_and_stop(s: &mut Session, query: &str, checkpoints: u64) -> String {
    let id = job_id(&exec(s, query).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    while last_checkpoint(s, &id).await < checkpoints {
        if std::env::var_os("WEIR_DEBUG_CHECKPOINTS").is_some() {
            eprintln!("checkpoint {}", last_checkpoint(s, &id).await);
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint {checkpoints} within 60 s"
        );
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

/// `weir serve` on a free loopback port over `data`; returns the process and its address.
fn start_server(data: &Path) -> (std::process::Child, String) {
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
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("resume") || line.contains("WARN") || line.contains("ERROR") {
                eprintln!("[weir serve] {line}");
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                let uri = rest.split_whitespace().next().unwrap_or("");
                let _ = tx.send(uri.split("://").last().unwrap_or(uri).to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("weir serve did not say where it listens");
    (child, addr)
}

/// The status and resume count of every job recorded in `data` (`jobs/<id>.json`).
fn recorded_statuses(data: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(data.join("jobs")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|v| {
            (
                v["status"].as_str().unwrap_or("").to_string(),
                v["resumed"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// The kill test: a checkpointed job in `weir serve` over paced input, the server killed with
/// SIGKILL at random moments (while processing, while a checkpoint is written, while files are
/// committed) and started again on the same data directory each time; at the end of the input
/// the committed output equals a run without kills. `WEIR_LONG_TESTS=1`: more kills, more input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_its_job_exactly_once() {
    use arrow_flight::sql::client::FlightSqlServiceClient;
    use tonic::transport::Channel;
    let long = std::env::var("WEIR_LONG_TESTS").is_ok_and(|v| v == "1");
    let (kills, events) = if long { (40, 200_000) } else { (20, 100_000) };
    let tmp = tempfile::tempdir().unwrap();
    let expected = straight_run(WINDOWED, events, 2, &tmp.path().join("expected")).await;
    let expected_agg = {
        let path = tmp.path().join("expected_agg");
        std::fs::create_dir_all(&path).unwrap();
        let mut s = session(
            events,
            2,
            &tmp.path().join("unused"),
            &[("table.dml-sync", "true")],
        )
        .await;
        exec(&mut s, &agg_ddl(&path)).await;
        exec(&mut s, UPDATING).await;
        committed_table(&path, AGG_COLUMNS, "debezium-json").await
    };
    assert!(expected_agg.len() > 100, "{}", expected_agg.len());

    let data = tmp.path().join("data");
    let out = tmp.path().join("out");
    let agg = tmp.path().join("agg");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&agg).unwrap();
    let (mut server, addr) = start_server(&data);
    {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = FlightSqlServiceClient::new(channel);
        let setup = [
            "SET 'execution.runtime-mode' = 'streaming'".to_string(),
            "SET 'parallelism.default' = '2'".to_string(),
            "SET 'execution.checkpointing.interval' = '100 ms'".to_string(),
            nexmark_ddl(events),
            format!(
                "CREATE TABLE out ({OUT_COLUMNS}) WITH ('connector' = 'filesystem', \
                 'path' = '{}', 'format' = 'json')",
                out.display()
            ),
            agg_ddl(&agg),
            format!("EXECUTE STATEMENT SET BEGIN {WINDOWED}; {UPDATING}; END"),
        ];
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
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(150 + next(500))).await;
        server.kill().unwrap();
        server.wait().unwrap();
        (server, _) = start_server(&data);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let statuses = recorded_statuses(&data);
        assert_eq!(statuses.len(), 1, "{statuses:?}");
        match statuses[0].0.as_str() {
            "FINISHED" => {
                // Most kills hit the running job (the input lasts longer than the kills).
                let resumed = statuses[0].1;
                eprintln!("the job was resumed {resumed} times");
                assert!(resumed >= kills / 2, "resumed only {resumed} times");
                break;
            }
            "RUNNING" => {}
            other => panic!("the job ended {other}"),
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let got = committed(&out).await;
    assert_eq!(got.len(), expected.len(), "row count after {kills} kills");
    assert_eq!(got, expected);
    // The updating pipeline's changelog, applied, is the uninterrupted run's result.
    let got = committed_table(&agg, AGG_COLUMNS, "debezium-json").await;
    assert_eq!(got.len(), expected_agg.len(), "groups after {kills} kills");
    assert_eq!(got, expected_agg);
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
        let ddl = ddl.clone();
        let dir = dir.clone();
        async move {
            let mut s = Session::open(SessionOptions::default()).await.unwrap();
            exec(&mut s, "SET 'execution.runtime-mode' = 'streaming'").await;
            exec(&mut s, "SET 'parallelism.default' = '2'").await;
            exec(&mut s, "SET 'execution.checkpointing.interval' = '100 ms'").await;
            exec(
                &mut s,
                &format!("SET 'execution.checkpointing.dir' = '{dir}'"),
            )
            .await;
            if let Some(p) = savepoint {
                exec(&mut s, &format!("SET 'execution.savepoint.path' = '{p}'")).await;
            }
            s.execute_sql(&ddl).await.unwrap();
            s
        }
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
