//! Corrupt inputs through the `Session` API (issue 19): every format Weir reads (Parquet, CSV
//! and JSON files of `filesystem` tables, the embedded catalog's `catalog.json`) damaged in
//! seeded, deterministic ways (truncated, bit-flipped, bytes overwritten, wrong magic, a huge
//! declared metadata size, garbage). Each case must end in rows or in an error that names the
//! damaged file, never in a panic that escapes; the other tables of the catalog stay usable.
//! (Hive files: `connectors::hive::tests`; checkpoint files: `stream::checkpoint::store` checks
//! sizes and CRCs.)

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use futures::{FutureExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weir::{ErrorKind, Session, SessionOptions, StatementResult};

/// Runs `sql` to the end: `Ok(rows)`, `Err(message)`, or a panic (which the caller reports).
async fn run(s: &mut Session, sql: &str) -> Result<usize, (ErrorKind, String)> {
    let mut results = s
        .execute_sql(sql)
        .await
        .map_err(|e| (e.kind, e.to_string()))?;
    let Some(StatementResult::Rows(r)) = results.pop() else {
        return Ok(0);
    };
    let batches: Vec<_> = r.stream.try_collect::<Vec<_>>().await.map_err(|e| {
        let e = weir::Error::from(e);
        (e.kind, e.to_string())
    })?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

/// The data files of a table directory, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// One way of damaging a file's bytes.
fn corruptions(original: &[u8], parquet: bool, rng: &mut StdRng) -> Vec<(String, Vec<u8>)> {
    let n = original.len();
    let mut out = Vec::new();
    let mut cuts = vec![0, 1, 4, 7, 8, 11, 12, n / 2, n - 1, n.saturating_sub(5)];
    cuts.extend((0..6).map(|_| rng.random_range(0..n)));
    for cut in cuts {
        out.push((
            format!("truncated to {cut} bytes"),
            original[..cut].to_vec(),
        ));
    }
    for _ in 0..24 {
        let mut b = original.to_vec();
        let at = rng.random_range(0..n);
        let bit = rng.random_range(0..8);
        b[at] ^= 1 << bit;
        out.push((format!("bit {bit} of byte {at} flipped"), b));
    }
    for _ in 0..8 {
        let mut b = original.to_vec();
        let at = rng.random_range(0..n);
        let len = rng.random_range(1..=16).min(n - at);
        rng.fill(&mut b[at..at + len]);
        out.push((format!("{len} random bytes at {at}"), b));
    }
    let mut garbage = vec![0u8; rng.random_range(1..4096)];
    rng.fill(&mut garbage[..]);
    out.push((format!("{} bytes of garbage", garbage.len()), garbage));
    if parquet {
        // The reproducer: the footer's metadata length overwritten with random bytes.
        for _ in 0..6 {
            let mut b = original.to_vec();
            rng.fill(&mut b[n - 8..n - 4]);
            out.push(("random metadata length".into(), b));
        }
        for declared in [u32::MAX, n as u32, (n - 11) as u32, (n - 12) as u32, 0] {
            let mut b = original.to_vec();
            b[n - 8..n - 4].copy_from_slice(&declared.to_le_bytes());
            out.push((format!("metadata length {declared}"), b));
        }
        let mut b = original.to_vec();
        b[n - 4..].copy_from_slice(b"PAR2");
        out.push(("wrong magic at the end".into(), b));
        let mut b = original.to_vec();
        b[..4].copy_from_slice(b"XXXX");
        out.push(("wrong magic at the start".into(), b));
    }
    out
}

const ROWS: &str = "(1, 'a', 1.5), (2, NULL, -0.0), (3, 'ccc', 2.5), (NULL, 'd', NULL)";

/// For one format: a table of three files, one of which is damaged case by case. Returns the
/// failures (escaped panics, errors not naming the file, a broken neighbour table).
async fn corrupt_format(format: &str, seed: u64) -> (usize, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Session::open(SessionOptions {
        data_dir: Some(dir.path().join("data")),
    })
    .await
    .unwrap();
    let table_dir = dir.path().join("bad");
    let good_dir = dir.path().join("good");
    for (name, path) in [("bad", &table_dir), ("good", &good_dir)] {
        s.execute_sql(&format!(
            "CREATE TABLE {name} (a INT, b STRING, c DOUBLE) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = '{format}')",
            path.display()
        ))
        .await
        .unwrap();
        for _ in 0..3 {
            s.execute_sql(&format!("INSERT INTO {name} VALUES {ROWS}"))
                .await
                .unwrap();
        }
    }
    let victims = files(&table_dir);
    assert_eq!(victims.len(), 3, "{victims:?}");
    let victim = &victims[1];
    let original = std::fs::read(victim).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let cases = corruptions(&original, format == "parquet", &mut rng);
    let mut failures = Vec::new();
    let name = victim.display().to_string();
    for (what, bytes) in &cases {
        std::fs::write(victim, bytes).unwrap();
        for sql in [
            "SELECT COUNT(*) FROM bad",
            "SELECT * FROM bad WHERE a > 0 OR a IS NULL",
        ] {
            match AssertUnwindSafe(run(&mut s, sql)).catch_unwind().await {
                Err(_) => failures.push(format!("{format}, {what}: `{sql}` panicked")),
                Ok(Ok(_)) => {}
                Ok(Err((kind, msg))) => {
                    if !msg.contains(&name) {
                        failures.push(format!(
                            "{format}, {what}: `{sql}`: the error does not name {name}: {msg}"
                        ));
                    }
                    if kind == ErrorKind::Internal {
                        failures.push(format!("{format}, {what}: `{sql}`: internal error: {msg}"));
                    }
                }
            }
        }
        match AssertUnwindSafe(run(&mut s, "SELECT COUNT(*) FROM good"))
            .catch_unwind()
            .await
        {
            Ok(Ok(1)) => {}
            other => failures.push(format!("{format}, {what}: table `good` broke: {other:?}")),
        }
    }
    // Restored, the table reads again: nothing of the damage stuck (caches keyed by size and time).
    std::fs::write(victim, &original).unwrap();
    match run(&mut s, "SELECT * FROM bad").await {
        Ok(12) => {}
        other => failures.push(format!("{format}: restored table: {other:?}")),
    }
    (cases.len(), failures)
}

async fn check_format(format: &str, seed: u64) {
    let (cases, failures) = corrupt_format(format, seed).await;
    assert!(cases > 40, "{cases}");
    assert!(
        failures.is_empty(),
        "{} of {cases} {format} corruptions failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_parquet_files_give_errors_naming_the_file() {
    check_format("parquet", 19).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_csv_files_give_errors_naming_the_file() {
    check_format("csv", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_json_files_give_errors_naming_the_file() {
    check_format("json", 21).await;
}

/// The reproducer, exactly: a single-file table whose footer length is garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_parquet_footer_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let p = dir.path().join("t");
    s.execute_sql(&format!(
        "CREATE TABLE t (a INT, b STRING) WITH ('connector' = 'filesystem', 'path' = '{}', \
         'format' = 'parquet'); INSERT INTO t VALUES (1, 'x'), (2, 'y');",
        p.display()
    ))
    .await
    .unwrap();
    let f = files(&p).remove(0);
    let mut bytes = std::fs::read(&f).unwrap();
    let n = bytes.len();
    bytes[n - 8..n - 4].copy_from_slice(&[0xde, 0xad, 0xbe, 0x7f]);
    std::fs::write(&f, &bytes).unwrap();
    for stats in ["true", "false"] {
        // Without statistics the footer is first read by the scan, not by planning.
        s.execute_sql(&format!(
            "SET 'datafusion.execution.collect_statistics' = '{stats}'"
        ))
        .await
        .unwrap();
        let (kind, msg) = run(&mut s, "SELECT COUNT(*) FROM t").await.unwrap_err();
        // Once, even where the error went through a stream several consumers share.
        assert!(msg.starts_with("External error: Parquet file '"), "{msg}");
        assert_eq!(kind, ErrorKind::External, "{msg}");
        assert!(msg.contains(&f.display().to_string()), "{msg}");
        assert!(
            msg.contains("declares 2143202782 bytes of metadata"),
            "{msg}"
        );
        assert!(msg.contains("while reading table"), "{msg}");
    }
    // The streaming engine reads the same scan split by split.
    s.execute_sql("SET 'execution.runtime-mode' = 'streaming'")
        .await
        .unwrap();
    let (_, msg) = run(&mut s, "SELECT COUNT(*) FROM t").await.unwrap_err();
    assert!(msg.contains(&f.display().to_string()), "{msg}");
}

/// A damaged `catalog.json`: opening the catalog (or the next statement) is an error naming the
/// document, never a panic, and never silently an empty catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_catalog_document_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let mut s = Session::open(SessionOptions {
            data_dir: Some(data.clone()),
        })
        .await
        .unwrap();
        s.execute_sql(
            "CREATE TABLE g (a INT, b DECIMAL(10, 2), s STRING, \
               ts TIMESTAMP(3), c AS a + 1, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
             WITH ('connector' = 'datagen', 'number-of-rows' = '3'); \
             CREATE VIEW v AS SELECT a, c FROM g WHERE a > 0; \
             CREATE DATABASE other;",
        )
        .await
        .unwrap();
    }
    let doc = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .flat_map(|p| {
            if p.is_dir() {
                std::fs::read_dir(&p)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect()
            } else {
                vec![p]
            }
        })
        .find(|p| p.file_name().is_some_and(|n| n == "catalog.json"))
        .expect("catalog.json");
    let original = std::fs::read(&doc).unwrap();
    let mut rng = StdRng::seed_from_u64(22);
    let mut failures = Vec::new();
    let mut errors = 0;
    for (what, bytes) in corruptions(&original, false, &mut rng) {
        std::fs::write(&doc, &bytes).unwrap();
        let outcome = AssertUnwindSafe(async {
            let mut s = Session::open(SessionOptions {
                data_dir: Some(data.clone()),
            })
            .await
            .map_err(|e| (e.kind, e.to_string()))?;
            for sql in [
                "SHOW TABLES",
                "DESCRIBE g",
                "SELECT * FROM g",
                "SELECT * FROM v",
                "SHOW DATABASES",
            ] {
                // A damaged definition may fail to plan; it must fail as an error.
                let _ = run(&mut s, sql).await;
            }
            Ok(())
        })
        .catch_unwind()
        .await;
        match outcome {
            Err(_) => failures.push(format!("{what}: panicked")),
            Ok(Ok(())) => {}
            Ok(Err((_, msg))) => {
                errors += 1;
                if !msg.contains(&doc.display().to_string()) {
                    failures.push(format!(
                        "{what}: the error does not name the document: {msg}"
                    ));
                }
            }
        }
    }
    assert!(errors > 10, "most damage must be detected, {errors} errors");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
