//! Changelogs kept in files (`'format' = 'debezium-json'` filesystem tables), end to end through
//! `weir::Session`: an updating streaming `INSERT` (a GROUP BY) writes every change, with and
//! without checkpoints (two-phase commit); reading the table in batch mode gives the
//! materialized result, equal to the same GROUP BY computed in batch mode; reading it in
//! streaming mode gives the changelog (which an aggregate downstream consumes); batch `INSERT`
//! writes `c` events; bad lines fail the read with their file and line, or are skipped.

use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use weir::{Session, SessionOptions, StatementResult};

mod common;
use common::sorted_rows;

async fn exec(s: &mut Session, sql: &str) -> StatementResult {
    let mut results = s
        .execute_sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    results.pop().expect("a result")
}

/// Every batch of a rows result, or the error that ended it.
async fn try_batches(result: StatementResult) -> Result<Vec<RecordBatch>, String> {
    let StatementResult::Rows(r) = result else {
        panic!("rows expected");
    };
    r.stream.try_collect().await.map_err(|e| e.to_string())
}

/// The sorted rows of a batch-mode query.
async fn batch_query(s: &mut Session, sql: &str) -> Vec<String> {
    exec(s, "SET 'execution.runtime-mode' = 'batch'").await;
    let batches = try_batches(exec(s, sql).await)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    sorted_rows(&batches)
}

/// Three CSV files of `(k INT, v BIGINT)` rows: 20 keys, 3,000 rows.
fn write_source(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in 0..3 {
        let mut text = String::new();
        for i in 0..1000 {
            let n = f * 1000 + i;
            text.push_str(&format!("{},{}\n", (n * 7) % 20, n % 97));
        }
        std::fs::write(dir.join(format!("src-{f}.csv")), text).unwrap();
    }
}

/// The lines of every visible file of a table directory, and how many files there are.
fn visible_lines(dir: &Path) -> (usize, Vec<String>) {
    let mut files = 0;
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        files += 1;
        lines.extend(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(str::to_string),
        );
    }
    (files, lines)
}

async fn csv_session(src: &Path, out: &Path, settings: &[(&str, &str)]) -> Session {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    exec(
        &mut s,
        &format!(
            "CREATE TABLE src (k INT, v BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', \
             'format' = 'csv')",
            src.display()
        ),
    )
    .await;
    exec(
        &mut s,
        &format!(
            "CREATE TABLE t_dbz (k INT, cnt BIGINT, total BIGINT) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'debezium-json')",
            out.display()
        ),
    )
    .await;
    for (k, v) in settings {
        exec(&mut s, &format!("SET '{k}' = '{v}'")).await;
    }
    s
}

const GROUP_BY: &str = "SELECT k, COUNT(*), SUM(v) FROM src GROUP BY k";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_query_kept_in_files_reads_back_as_its_batch_result() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("src"), tmp.path().join("out"));
    write_source(&src);
    let mut s = csv_session(
        &src,
        &out,
        &[
            ("execution.runtime-mode", "streaming"),
            ("parallelism.default", "2"),
            ("table.dml-sync", "true"),
            // Small, shuffled batches: the aggregate updates its rows many times.
            ("weir.testing.perturbation-seed", "7"),
        ],
    )
    .await;
    exec(&mut s, &format!("INSERT INTO t_dbz {GROUP_BY}")).await;

    let (files, lines) = visible_lines(&out);
    assert!(files >= 1);
    let deletes = lines
        .iter()
        .filter(|l| l.ends_with("\"op\":\"d\"}"))
        .count();
    let creates = lines
        .iter()
        .filter(|l| l.ends_with("\"op\":\"c\"}"))
        .count();
    assert_eq!(deletes + creates, lines.len(), "only c and d events");
    assert!(deletes > 0, "the query updated its rows: {lines:?}");
    assert_eq!(creates - deletes, 20, "one row per key in the end");

    let expected = batch_query(&mut s, GROUP_BY).await;
    assert_eq!(expected.len(), 20);
    assert_eq!(batch_query(&mut s, "SELECT * FROM t_dbz").await, expected);
    // Projections and filters over the materialized table.
    let some = batch_query(&mut s, "SELECT cnt FROM t_dbz WHERE k < 3").await;
    assert_eq!(some.len(), 3);
    assert_eq!(
        batch_query(&mut s, "SELECT COUNT(*) FROM t_dbz").await,
        vec!["20"]
    );

    // Streaming reads give the changelog: materialized, it is the same table...
    exec(&mut s, "SET 'execution.runtime-mode' = 'streaming'").await;
    let StatementResult::Rows(r) = exec(&mut s, "SELECT * FROM t_dbz").await else {
        panic!("rows expected");
    };
    assert!(r.changelog);
    let schema = r.schema.clone();
    let changelog: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
    let table = weir::stream::changes::materialize(&schema, &changelog).unwrap();
    assert_eq!(sorted_rows(&[table]), expected);

    // ... which an aggregate downstream consumes, retractions included, into another
    // changelog table.
    exec(
        &mut s,
        &format!(
            "CREATE TABLE totals (n BIGINT, rows_seen BIGINT, total BIGINT) WITH ( \
             'connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json')",
            tmp.path().join("totals").display()
        ),
    )
    .await;
    exec(
        &mut s,
        "INSERT INTO totals SELECT COUNT(*), SUM(cnt), SUM(total) FROM t_dbz",
    )
    .await;
    let want = batch_query(&mut s, "SELECT COUNT(*), SUM(cnt), SUM(total) FROM t_dbz").await;
    assert!(
        want.len() == 1 && want[0].starts_with("20 | 3000 | "),
        "{want:?}"
    );
    assert_eq!(batch_query(&mut s, "SELECT * FROM totals").await, want);
}

/// A streaming session over the paced Nexmark source of `sql-tests/nexmark/ddl_gen.sql`
/// (6,000 events at 3,000 a second: a job runs for about 2 s) and the debezium-json table
/// `t_dbz` at `out`, checkpointing every 100 ms into `checkpoints`.
async fn nexmark_session(out: &Path, checkpoints: &Path, settings: &[(&str, &str)]) -> Session {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let ddl = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests/nexmark/ddl_gen.sql"),
    )
    .unwrap()
    .replace("${TPS}", "3000")
    .replace("${EVENTS_NUM}", "6000")
    .replace("${PERSON_PROPORTION}", "1")
    .replace("${AUCTION_PROPORTION}", "3")
    .replace("${BID_PROPORTION}", "46")
    .replace(
        "'connector' = 'nexmark',",
        "'connector' = 'nexmark', 'rate.limited' = 'true',",
    );
    exec(&mut s, &ddl).await;
    exec(
        &mut s,
        &format!(
            "CREATE TABLE t_dbz (k BIGINT, cnt BIGINT, total BIGINT) WITH ( \
             'connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json')",
            out.display()
        ),
    )
    .await;
    let dir = checkpoints.display().to_string();
    let common = [
        ("execution.runtime-mode", "streaming"),
        ("parallelism.default", "2"),
        ("execution.checkpointing.interval", "100 ms"),
        ("execution.checkpointing.dir", dir.as_str()),
    ];
    for (k, v) in common.iter().chain(settings) {
        exec(&mut s, &format!("SET '{k}' = '{v}'")).await;
    }
    s
}

const NEXMARK_GROUP_BY: &str = "SELECT bid.auction % 10, COUNT(*), SUM(bid.price) FROM datagen \
    WHERE event_type = 2 GROUP BY bid.auction % 10";

/// The names of the hidden (in-progress) files of a directory.
fn hidden_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpointed_updating_query_commits_its_changelog_in_two_phases() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut s = nexmark_session(
        &out,
        &tmp.path().join("checkpoints"),
        &[("table.dml-sync", "true")],
    )
    .await;
    exec(&mut s, &format!("INSERT INTO t_dbz {NEXMARK_GROUP_BY}")).await;

    let (files, lines) = visible_lines(&out);
    // Files roll at every checkpoint barrier: more files than sink instances.
    assert!(files > 2, "{files} files");
    assert!(lines.iter().any(|l| l.ends_with("\"op\":\"d\"}")));
    assert_eq!(
        hidden_files(&out),
        Vec::<String>::new(),
        "in-progress files left"
    );

    let expected = batch_query(&mut s, NEXMARK_GROUP_BY).await;
    assert_eq!(expected.len(), 10);
    assert_eq!(batch_query(&mut s, "SELECT * FROM t_dbz").await, expected);
}

/// The `last checkpoint` column of the job's `SHOW JOBS` row (0 = none yet).
async fn last_checkpoint(s: &mut Session, id: &str) -> u64 {
    let batches = try_batches(exec(s, "SHOW JOBS").await).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_updating_job_resumes_and_its_files_materialize_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, checkpoints) = (tmp.path().join("out"), tmp.path().join("checkpoints"));
    let insert = format!("INSERT INTO t_dbz {NEXMARK_GROUP_BY}");

    // Run until two checkpoints completed, then stop the job.
    let mut s = nexmark_session(&out, &checkpoints, &[]).await;
    let StatementResult::Status(status) = exec(&mut s, &insert).await else {
        panic!("status expected");
    };
    let id = status
        .message
        .rsplit("Job ID: ")
        .next()
        .map(|id| id.trim().to_string())
        .expect("a job id");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while last_checkpoint(&mut s, &id).await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint 2 in 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    exec(&mut s, &format!("STOP JOB '{id}'")).await;
    let expected = batch_query(&mut s, NEXMARK_GROUP_BY).await;
    let partial = batch_query(&mut s, "SELECT * FROM t_dbz").await;
    assert_ne!(partial, expected, "the job was stopped before the end");

    // Restore from its checkpoints and run to the end: the files hold every change once.
    let savepoint = checkpoints.join(&id).display().to_string();
    let mut s = nexmark_session(
        &out,
        &checkpoints,
        &[
            ("table.dml-sync", "true"),
            ("execution.savepoint.path", savepoint.as_str()),
        ],
    )
    .await;
    exec(&mut s, &insert).await;
    assert_eq!(
        hidden_files(&out),
        Vec::<String>::new(),
        "in-progress files left"
    );
    assert_eq!(batch_query(&mut s, "SELECT * FROM t_dbz").await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_inserts_and_bad_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("t");
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let ddl = |name: &str, extra: &str| {
        format!(
            "CREATE TABLE {name} (id INT NOT NULL, name STRING, at TIMESTAMP(3), \
             tags ROW<a INT, b STRING>) WITH ('connector' = 'filesystem', 'path' = '{}', \
             'format' = 'debezium-json'{extra})",
            out.display()
        )
    };
    exec(&mut s, &ddl("t", "")).await;
    exec(&mut s, "SET 'execution.runtime-mode' = 'batch'").await;
    exec(
        &mut s,
        "INSERT INTO t VALUES (1, 'a', TIMESTAMP '2024-01-31 12:30:00.250', NULL), \
         (2, NULL, NULL, NULL)",
    )
    .await;
    exec(
        &mut s,
        "INSERT INTO t VALUES (3, 'c', TIMESTAMP '2024-02-01 00:00:00', NULL)",
    )
    .await;
    let (files, lines) = visible_lines(&out);
    assert_eq!(files, 2);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("{\"before\":null,\"after\":{\"id\":")
                && l.ends_with("\"op\":\"c\"}"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"at\":\"2024-01-31 12:30:00.25\"")),
        "{lines:?}"
    );
    let all = batch_query(&mut s, "SELECT id, name, at, tags.a, tags.b FROM t").await;
    assert_eq!(
        all,
        vec![
            "1 | a | 2024-01-31T12:30:00.250 | NULL | NULL",
            "2 | NULL | NULL | NULL | NULL",
            "3 | c | 2024-02-01T00:00:00 | NULL | NULL",
        ]
    );

    // Changes written by another tool: an update of row 1 (ISO-8601 timestamp, a nested ROW),
    // a delete of row 2.
    std::fs::write(
        out.join("zz-manual.json"),
        "{\"before\":{\"id\":1,\"name\":\"a\",\"at\":\"2024-01-31 12:30:00.25\",\"tags\":null},\
         \"after\":{\"id\":1,\"name\":\"A\",\"at\":\"2024-01-31T12:30:00.25\",\"tags\":{\"a\":1,\"b\":\"x\"}},\"op\":\"u\"}\n\
         {\"before\":{\"id\":2},\"after\":null,\"op\":\"d\"}\n",
    )
    .unwrap();
    let file = out.join("zz-manual.json");
    // Make it the newest file, so it is read last.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(
        batch_query(&mut s, "SELECT id, name, tags.b FROM t").await,
        vec!["1 | A | x", "3 | c | NULL"]
    );

    // A bad line fails the read, naming the file and the line.
    std::fs::write(
        out.join("zz-manual.json"),
        "{\"before\":null,\"after\":{\"id\":4},\"op\":\"c\"}\n{\"op\":\"x\"}\n",
    )
    .unwrap();
    let err = try_batches(exec(&mut s, "SELECT * FROM t").await)
        .await
        .expect_err("a bad line fails the read");
    assert!(
        err.contains("line 2 of") && err.contains("zz-manual.json") && err.contains("\"x\""),
        "{err}"
    );
    // ... unless parse errors are ignored: the line is skipped.
    exec(
        &mut s,
        &ddl(
            "t_lenient",
            ", 'debezium-json.ignore-parse-errors' = 'true'",
        ),
    )
    .await;
    assert_eq!(
        batch_query(&mut s, "SELECT id FROM t_lenient").await,
        vec!["1", "2", "3", "4"]
    );

    // A delete of a row that was never there cannot be materialized.
    std::fs::write(
        out.join("zz-manual.json"),
        "{\"before\":{\"id\":9},\"after\":null,\"op\":\"d\"}\n",
    )
    .unwrap();
    let err = try_batches(exec(&mut s, "SELECT * FROM t").await)
        .await
        .expect_err("an inconsistent changelog fails the read");
    assert!(err.contains("more often than it adds"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_definitions_are_refused_when_created() {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let cases = [
        (
            "CREATE TABLE p (k INT, v INT) PARTITIONED BY (k) WITH ('connector' = 'filesystem', \
             'path' = '/tmp/x', 'format' = 'debezium-json')",
            "partitioned",
        ),
        (
            "CREATE TABLE p (k INT) WITH ('connector' = 'filesystem', 'path' = '/tmp/x', \
             'format' = 'debezium-json', 'debezium-json.schema-include' = 'true')",
            "schema-include",
        ),
        (
            "CREATE TABLE p (k INT) WITH ('connector' = 'filesystem', 'path' = '/tmp/x', \
             'format' = 'debezium-json', 'json.ignore-parse-errors' = 'true')",
            "unsupported option 'json.ignore-parse-errors'",
        ),
        (
            "CREATE TABLE p (k INT) WITH ('connector' = 'filesystem', 'path' = '/tmp/x', \
             'format' = 'debezium-json', 'source.monitor-interval' = '1 s')",
            "source.monitor-interval",
        ),
    ];
    for (sql, want) in cases {
        let err = s
            .execute_sql(sql)
            .await
            .err()
            .unwrap_or_else(|| panic!("{sql} should fail"))
            .to_string();
        assert!(err.contains(want), "{sql}: {err}");
    }
}
