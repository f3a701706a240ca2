//! End-to-end behaviour of the streaming engine through the `Session` API: watermarks firing
//! windows (and not early), late rows dropped and counted, an idle input not stalling a window,
//! retractions correcting aggregates, min/max under retraction, state TTL, backpressure bounding
//! memory, a sink rejecting updates, and EXPLAIN showing changelog modes.

use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::{StreamExt, TryStreamExt};
use weir::{Session, SessionOptions, StatementResult};

async fn session() -> Session {
    Session::open(SessionOptions::default()).await.unwrap()
}

/// Each row as `a | b | c` (the changelog's `op` first when there is one).
fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                fmts.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join(" | "),
            );
        }
    }
    out
}

/// Runs a statement that returns rows and collects them all (bounded queries only).
async fn rows(s: &mut Session, sql: &str) -> (Vec<String>, bool) {
    let mut results = s
        .execute_sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let Some(StatementResult::Rows(r)) = results.pop() else {
        panic!("{sql}: no rows")
    };
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
    (lines(&batches), r.changelog)
}

/// The materialized final rows of a streaming query, sorted.
async fn materialized(s: &mut Session, sql: &str) -> Vec<String> {
    let mut results = s.execute_sql(sql).await.unwrap();
    let Some(StatementResult::Rows(r)) = results.pop() else {
        panic!("{sql}: no rows")
    };
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
    let mut v = if r.changelog {
        lines(&[weir::session::materialize(&r.schema, &batches).unwrap()])
    } else {
        lines(&batches)
    };
    v.sort();
    v
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

const EVENTS: &str = "ts,k,v\n\
2024-01-01 00:00:01,a,1\n\
2024-01-01 00:00:02,b,5\n\
2024-01-01 00:00:04,a,3\n\
2024-01-01 00:00:12,b,2\n\
2024-01-01 00:00:03,a,100\n\
2024-01-01 00:00:15,a,4\n\
2024-01-01 00:00:31,b,6\n";

async fn events_session(dir: &Path) -> Session {
    write(&dir.join("events.csv"), EVENTS);
    let mut s = session().await;
    s.execute_sql(&format!(
        "CREATE TABLE events (ts TIMESTAMP(3), k STRING, v INT, \
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'csv.header' = 'true'); \
         SET 'execution.runtime-mode' = 'streaming'; \
         SET 'datafusion.execution.batch_size' = '1'; \
         SET 'parallelism.default' = '1';",
        dir.join("events.csv").display()
    ))
    .await
    .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retraction_corrects_an_earlier_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = events_session(dir.path()).await;
    let (changes, changelog) =
        rows(&mut s, "SELECT k, SUM(v) AS total FROM events GROUP BY k").await;
    assert!(changelog);
    // One row per input row (batch size 1): the first `a` sum is retracted and replaced.
    assert_eq!(changes[0], "+I | a | 1", "{changes:?}");
    assert!(changes.contains(&"-U | a | 1".to_string()), "{changes:?}");
    assert!(changes.contains(&"+U | a | 4".to_string()), "{changes:?}");
    let fin = materialized(&mut s, "SELECT k, SUM(v) AS total FROM events GROUP BY k").await;
    assert_eq!(fin, vec!["a | 108", "b | 13"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_max_stay_correct_under_retraction() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = events_session(dir.path()).await;
    // The inner counts are updated (retracted) as rows arrive; the outer MIN/MAX must follow the
    // retractions, e.g. MIN goes 1 -> 1 -> ... while counts grow.
    let sql =
        "SELECT MIN(n), MAX(n), COUNT(*) FROM (SELECT k, COUNT(*) AS n FROM events GROUP BY k)";
    let streaming = materialized(&mut s, sql).await;
    s.execute_sql("SET 'execution.runtime-mode' = 'batch'")
        .await
        .unwrap();
    let batch = materialized(&mut s, sql).await;
    assert_eq!(streaming, batch);
    assert_eq!(batch, vec!["3 | 4 | 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_changelog_modes_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = events_session(dir.path()).await;
    let (plan, _) = rows(
        &mut s,
        "EXPLAIN SELECT k, COUNT(*) AS n FROM events WHERE v > 1 GROUP BY k",
    )
    .await;
    let text = plan.join("\n");
    assert!(text.contains("GroupAggregate("), "{text}");
    assert!(
        text.contains("changelogMode=[I,UB,UA,D], upsertKey=[k]"),
        "{text}"
    );
    assert!(text.contains("TableSourceScan(table=[[events]]"), "{text}");
    assert!(text.contains("changelogMode=[I])"), "{text}");
    let (plan, _) = rows(
        &mut s,
        "EXPLAIN CHANGELOG_MODE SELECT window_start, COUNT(*) FROM \
         TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)) \
         GROUP BY window_start, window_end",
    )
    .await;
    let text = plan.join("\n");
    assert!(text.contains("WindowAggregate("), "{text}");
    assert!(text.contains("WatermarkAssigner("), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = events_session(dir.path()).await;
    // With one row per batch, the watermark after `00:00:12` is 00:00:11: window [0, 10) has
    // fired, so `00:00:03` (v = 100) is late for it and dropped.
    let sql = "SELECT window_start, SUM(v) FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), \
               INTERVAL '10' SECOND)) GROUP BY window_start, window_end";
    let streaming = materialized(&mut s, sql).await;
    assert_eq!(
        streaming,
        vec![
            "2024-01-01T00:00:00 | 9",
            "2024-01-01T00:00:10 | 6",
            "2024-01-01T00:00:30 | 6"
        ]
    );
    // The same as a job: the late row shows in its counters.
    s.execute_sql(
        "CREATE TABLE sums (ws TIMESTAMP(3), total BIGINT) WITH ('connector' = 'blackhole'); \
         SET 'table.dml-sync' = 'true';",
    )
    .await
    .unwrap();
    s.execute_sql(&format!("INSERT INTO sums {sql}"))
        .await
        .unwrap();
    let late: u64 = s.jobs().entries()[0].job.late_rows_dropped();
    assert_eq!(late, 1);
    let (jobs, _) = rows(&mut s, "SHOW JOBS").await;
    assert!(jobs[0].contains("FINISHED"), "{jobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_go_to_the_late_rows_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = events_session(dir.path()).await;
    let late_dir = dir.path().join("late");
    s.execute_sql(&format!(
        "CREATE TABLE late_rows (operator STRING, `watermark` TIMESTAMP(3), `row` STRING) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json'); \
         CREATE TABLE sums (ws TIMESTAMP(3), total BIGINT) WITH ('connector' = 'blackhole'); \
         SET 'table.dml-sync' = 'true'; \
         SET 'weir.stream.late-rows-table' = 'late_rows';",
        late_dir.display()
    ))
    .await
    .unwrap();
    s.execute_sql(
        "INSERT INTO sums SELECT window_start, SUM(v) FROM TABLE(TUMBLE(TABLE events, \
         DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end",
    )
    .await
    .unwrap();
    assert_eq!(s.jobs().entries()[0].job.late_rows_dropped(), 1);
    s.execute_sql("SET 'execution.runtime-mode' = 'batch'")
        .await
        .unwrap();
    let (late, _) = rows(&mut s, "SELECT operator, `watermark`, `row` FROM late_rows").await;
    // The row `00:00:03, a, 100` reached the window aggregate after the watermark 00:00:11
    // (from `00:00:12` minus the 1 s delay) had closed its window.
    assert_eq!(late.len(), 1, "{late:?}");
    let parts: Vec<&str> = late[0].split(" | ").collect();
    assert!(parts[0].starts_with("WindowAggregate#"), "{late:?}");
    assert_eq!(parts[1], "2024-01-01T00:00:11", "{late:?}");
    // The row as the operator saw it (the aggregate's input: its window and the summed value).
    assert!(
        parts[2].contains("\"v\":100")
            && parts[2].contains("\"window_start\":\"2024-01-01T00:00:00\""),
        "{late:?}"
    );

    // A table of the wrong shape is refused before the job starts, naming what it needs.
    s.execute_sql(
        "CREATE TABLE wrong (x INT) WITH ('connector' = 'blackhole'); \
         SET 'execution.runtime-mode' = 'streaming'; \
         SET 'weir.stream.late-rows-table' = 'wrong';",
    )
    .await
    .unwrap();
    let Err(err) = s
        .execute_sql("INSERT INTO sums SELECT ts, CAST(v AS BIGINT) FROM events")
        .await
    else {
        panic!("a late-rows table of the wrong shape was accepted");
    };
    let err = err.to_string();
    assert!(
        err.contains("(operator STRING, watermark TIMESTAMP(3), row STRING)"),
        "{err}"
    );
    s.execute_sql("SET 'weir.stream.late-rows-table' = 'missing'")
        .await
        .unwrap();
    let Err(err) = s
        .execute_sql("INSERT INTO sums SELECT ts, CAST(v AS BIGINT) FROM events")
        .await
    else {
        panic!("a late-rows table of the wrong shape was accepted");
    };
    let err = err.to_string();
    assert!(
        err.contains("'missing'") && err.contains("does not exist"),
        "{err}"
    );
}

/// Reads the next batch of a running streaming query (with a timeout) as lines.
async fn next_lines(
    stream: &mut datafusion::execution::SendableRecordBatchStream,
    within: Duration,
) -> Option<Vec<String>> {
    match tokio::time::timeout(within, stream.next()).await {
        Ok(Some(batch)) => Some(lines(&[batch.unwrap()])),
        Ok(None) => panic!("the unbounded query ended"),
        Err(_) => None,
    }
}

/// Reads until a line contains `needle`, or panics after `within`.
async fn wait_for(
    stream: &mut datafusion::execution::SendableRecordBatchStream,
    needle: &str,
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(l) = next_lines(stream, deadline - Instant::now()).await {
            seen.extend(l);
            if seen.iter().any(|l| l.contains(needle)) {
                return seen;
            }
        }
    }
    panic!("no `{needle}` within {within:?}; saw {seen:?}");
}

async fn watched(s: &mut Session, name: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    s.execute_sql(&format!(
        "CREATE TABLE {name} (ts TIMESTAMP(3), k STRING, v INT, \
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', \
               'csv.header' = 'true', 'source.monitor-interval' = '100 ms')",
        dir.display()
    ))
    .await
    .unwrap();
}

async fn start(s: &mut Session, sql: &str) -> datafusion::execution::SendableRecordBatchStream {
    let mut results = s.execute_sql(sql).await.unwrap();
    let Some(StatementResult::Rows(r)) = results.pop() else {
        panic!("{sql}: no rows")
    };
    assert!(r.changelog, "{sql} should run in streaming mode");
    r.stream
}

const WINDOWS: &str = "SELECT window_start, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE src, \
                       DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_fires_windows_and_not_early() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session().await;
    watched(&mut s, "src", &dir.path().join("in")).await;
    write(
        &dir.path().join("in/1.csv"),
        "ts,k,v\n2024-01-01 00:00:01,a,1\n2024-01-01 00:00:05,a,1\n2024-01-01 00:00:12,a,1\n",
    );
    let mut stream = start(&mut s, WINDOWS).await;
    // Watermark 00:00:11 closes [0, 10) ...
    let seen = wait_for(
        &mut stream,
        "2024-01-01T00:00:00 | 2",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(seen, vec!["+I | 2024-01-01T00:00:00 | 2"]);
    // ... but not [10, 20): nothing more while no newer row arrives.
    assert_eq!(
        next_lines(&mut stream, Duration::from_millis(1500)).await,
        None
    );
    // A row at 00:00:25 moves the watermark to 00:00:24 and fires [10, 20).
    write(
        &dir.path().join("in/2.csv"),
        "ts,k,v\n2024-01-01 00:00:25,a,1\n",
    );
    wait_for(
        &mut stream,
        "2024-01-01T00:00:10 | 1",
        Duration::from_secs(20),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_input_does_not_stall_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session().await;
    watched(&mut s, "busy", &dir.path().join("busy")).await;
    watched(&mut s, "quiet", &dir.path().join("quiet")).await;
    s.execute_sql("CREATE VIEW src AS SELECT * FROM busy UNION ALL SELECT * FROM quiet")
        .await
        .unwrap();
    write(
        &dir.path().join("busy/1.csv"),
        "ts,k,v\n2024-01-01 00:00:01,a,1\n2024-01-01 00:00:12,a,1\n",
    );
    // Without an idle timeout the quiet input holds the watermark back: nothing fires.
    let mut stream = start(&mut s, WINDOWS).await;
    assert_eq!(next_lines(&mut stream, Duration::from_secs(2)).await, None);
    drop(stream);
    // With one, the quiet input stops counting and [0, 10) fires.
    s.execute_sql("SET 'table.exec.source.idle-timeout' = '300 ms'")
        .await
        .unwrap();
    let mut stream = start(&mut s, WINDOWS).await;
    wait_for(
        &mut stream,
        "2024-01-01T00:00:00 | 1",
        Duration::from_secs(20),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_ttl_expires_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session().await;
    watched(&mut s, "src", &dir.path().join("in")).await;
    s.execute_sql("SET 'table.exec.state.ttl' = '300 ms'")
        .await
        .unwrap();
    write(
        &dir.path().join("in/1.csv"),
        "ts,k,v\n2024-01-01 00:00:01,a,1\n2024-01-01 00:00:02,a,1\n",
    );
    let mut stream = start(&mut s, "SELECT k, COUNT(*) AS n FROM src GROUP BY k").await;
    wait_for(&mut stream, "| a | 2", Duration::from_secs(20)).await;
    // Idle for longer than the TTL: the count for `a` is forgotten and starts again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    write(
        &dir.path().join("in/2.csv"),
        "ts,k,v\n2024-01-01 00:00:03,a,1\n",
    );
    let seen = wait_for(&mut stream, "| a | 1", Duration::from_secs(20)).await;
    assert!(seen.contains(&"+I | a | 1".to_string()), "{seen:?}");
    assert!(!seen.iter().any(|l| l.contains("| a | 3")), "{seen:?}");
}

/// Resident memory of this process, in MiB (Linux).
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// A fast unbounded source (1 KiB rows, no rate limit to speak of) and a reader that takes a
/// batch every 50 ms: bounded channels stall the source, so memory stays under 256 MiB more
/// than at the start (one instance: each channel holds up to 16 batches of 8 MiB), while an unthrottled source would produce gigabytes in those seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_bounds_memory() {
    let mut s = session().await;
    s.execute_sql(
        "CREATE TABLE firehose (id BIGINT, payload STRING) WITH ('connector' = 'datagen', \
         'rows-per-second' = '100000000', 'fields.payload.length' = '1024'); \
         SET 'parallelism.default' = '1'",
    )
    .await
    .unwrap();
    let before = rss_mib();
    let mut stream = start(
        &mut s,
        "SELECT id, payload FROM firehose WHERE id IS NOT NULL",
    )
    .await;
    let started = Instant::now();
    let mut rows = 0usize;
    let mut peak = before;
    while started.elapsed() < Duration::from_secs(5) {
        let batch = stream.next().await.unwrap().unwrap();
        rows += batch.num_rows();
        peak = peak.max(rss_mib());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rows > 0);
    assert!(
        peak < before + 256,
        "resident memory grew from {before} MiB to {peak} MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_only_sink_rejects_updates() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = events_session(dir.path()).await;
    s.execute_sql(&format!(
        "CREATE TABLE out_files (k STRING, n BIGINT) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'csv')",
        dir.path().join("out").display()
    ))
    .await
    .unwrap();
    let Err(err) = s
        .execute_sql("INSERT INTO out_files SELECT k, COUNT(*) FROM events GROUP BY k")
        .await
    else {
        panic!("an updating query went into an append-only sink");
    };
    let err = err.to_string();
    assert!(
        err.contains("doesn't support consuming update changes") && err.contains("GroupAggregate"),
        "{err}"
    );
    // Nothing was written.
    assert!(
        !dir.path().join("out").exists()
            || std::fs::read_dir(dir.path().join("out"))
                .unwrap()
                .next()
                .is_none()
    );
}

/// Names starting with `_` or `.` (manifests, `_SUCCESS`, in-progress files, hidden staging
/// directories) are not data: batch scans, bounded streaming scans and watched directories all
/// skip them, as Flink does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_files_are_skipped_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("_staging")).unwrap();
    std::fs::create_dir_all(data.join(".tmp")).unwrap();
    write(&data.join("p1.json"), "{\"a\":1}\n");
    write(&data.join("p2.json"), "{\"a\":2}\n");
    write(&data.join("_manifest.json"), "{\"a\":100}\n");
    write(&data.join(".hidden.json"), "{\"a\":1000}\n");
    write(&data.join("_staging/part.json"), "{\"a\":10000}\n");
    write(&data.join(".tmp/part.json"), "{\"a\":100000}\n");
    let mut s = session().await;
    s.execute_sql(&format!(
        "CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = '{}', \
           'format' = 'json'); \
         CREATE TABLE w (a INT) WITH ('connector' = 'filesystem', 'path' = '{}', \
           'format' = 'json', 'source.monitor-interval' = '50 ms');",
        data.display(),
        data.display()
    ))
    .await
    .unwrap();
    let query = "SELECT SUM(a) AS s, COUNT(*) AS c FROM t";
    let (batch, changelog) = rows(&mut s, query).await;
    assert!(!changelog);
    assert_eq!(batch, ["3 | 2"]);
    s.execute_sql("SET 'execution.runtime-mode' = 'streaming'")
        .await
        .unwrap();
    assert_eq!(materialized(&mut s, query).await, ["3 | 2"]);

    // Watched: the visible files' rows arrive, and nothing else in several more listings.
    let mut stream = start(&mut s, "SELECT a FROM w").await;
    let mut seen = wait_for(&mut stream, "| 2", Duration::from_secs(20)).await;
    if !seen.iter().any(|l| l.ends_with("| 1")) {
        seen.extend(wait_for(&mut stream, "| 1", Duration::from_secs(20)).await);
    }
    if let Some(more) = next_lines(&mut stream, Duration::from_millis(500)).await {
        seen.extend(more);
    }
    seen.sort();
    assert_eq!(seen, ["+I | 1", "+I | 2"]);
}
