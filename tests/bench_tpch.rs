//! End-to-end tests of the TPC-H bench runner: generates SF 0.01 into a temp directory and runs
//! all 22 queries through the library API (`weir::bench::run_tpch`, which goes through the
//! `Session` like any user). With `WEIR_PYTHON` (a Python with duckdb and datafusion) every
//! answer is checked against DuckDB run by the test on the same files, and the comparison mode
//! runs both peers; without it those parts print "skipped: ..." unless `WEIR_REQUIRE_PEERS=1`,
//! when they fail.

use weir::bench::peers::Peer;
use weir::bench::{BenchOptions, Progress, run_tpch};

/// Whether the Python peers are configured; panics when they are required but absent.
fn peers_available(test: &str) -> bool {
    if std::env::var_os("WEIR_PYTHON").is_some() {
        return true;
    }
    assert!(
        std::env::var("WEIR_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{test}: WEIR_REQUIRE_PEERS=1 but WEIR_PYTHON is not set"
    );
    eprintln!("skipped: {test} needs WEIR_PYTHON (a Python with duckdb and datafusion)");
    false
}

fn sink(p: Progress<'_>) {
    match p {
        Progress::Message(m) => eprintln!("{m}"),
        Progress::Step { label, .. } if !label.is_empty() => eprintln!("{label}"),
        Progress::Step { .. } => {}
    }
}

/// Row counts every TPC-H query must produce: exact where the answer's size does not depend on
/// the scale factor, else an inclusive range.
fn plausible_rows(query: &str) -> (u64, u64) {
    match query {
        "q01" => (4, 4),
        "q02" => (1, 100),
        "q03" => (1, 10),
        "q04" => (5, 5),
        "q05" => (1, 5),
        "q06" => (1, 1),
        "q07" => (1, 4),
        "q08" => (2, 2),
        "q09" => (1, 175),
        "q10" => (1, 20),
        "q11" => (1, u64::MAX),
        "q12" => (2, 2),
        "q13" => (2, 60),
        "q14" => (1, 1),
        "q15" => (1, 2),
        "q16" => (1, u64::MAX),
        "q17" => (1, 1),
        "q18" => (0, 100),
        "q19" => (1, 1),
        "q20" => (0, u64::MAX),
        "q21" => (0, 100),
        "q22" => (1, 7),
        _ => (0, 0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_sf001_all_queries_answer_like_duckdb() -> weir::Result<()> {
    let with_duckdb = peers_available("tpch_sf001_all_queries_answer_like_duckdb");
    let dir = tempfile::tempdir().map_err(|e| weir::Error::io("cannot create a temp dir", e))?;
    let options = BenchOptions {
        scale: 0.01,
        data_dir: Some(dir.path().to_path_buf()),
        queries: (1..=22).collect(),
        iterations: 1,
        verify: with_duckdb,
        threads: Some(2),
        ..BenchOptions::default()
    };
    let report = run_tpch(&options, &mut sink).await?;
    eprintln!("{}", report.to_table());
    assert!(report.data_generated);
    assert_eq!(report.queries.len(), 22);
    assert_eq!(report.verify_skipped, None);
    let mut problems = Vec::new();
    for q in &report.queries {
        if let Some(e) = &q.error {
            problems.push(format!("{} failed: {e}", q.query));
            continue;
        }
        let rows = q.rows.unwrap_or(0);
        let (lo, hi) = plausible_rows(&q.query);
        if rows < lo || rows > hi {
            problems.push(format!("{}: {rows} rows, expected {lo}..={hi}", q.query));
        }
        if with_duckdb {
            // SF 0.01 has no stored answers: every check is against DuckDB on the same files.
            match (q.verified, &q.verified_against) {
                (Some(true), Some(against)) if against.starts_with("DuckDB") => {}
                _ => problems.push(format!(
                    "{}: not verified against DuckDB: {:?} {:?} {}",
                    q.query,
                    q.verified,
                    q.verified_against,
                    q.verify_message.as_deref().unwrap_or("")
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_compare_mode_times_both_peers_and_reports_ratios() -> weir::Result<()> {
    if !peers_available("tpch_compare_mode_times_both_peers_and_reports_ratios") {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| weir::Error::io("cannot create a temp dir", e))?;
    let options = BenchOptions {
        scale: 0.01,
        data_dir: Some(dir.path().to_path_buf()),
        queries: vec![1, 3, 6],
        iterations: 2,
        verify: true,
        threads: Some(2),
        memory_limit: Some("1GB".into()),
        compare: vec![Peer::DuckDb, Peer::DataFusion],
        settings: Vec::new(),
    };
    let report = run_tpch(&options, &mut sink).await?;
    eprintln!("{}", report.to_table());
    assert_eq!(report.ran_peers(), vec!["duckdb", "datafusion"]);
    for p in &report.peers {
        assert!(p.version.as_deref().is_some_and(|v| !v.is_empty()), "{p:?}");
    }
    for q in &report.queries {
        assert_eq!(q.status, "verified", "{q:?}");
        for engine in ["duckdb", "datafusion"] {
            let t = q.peer(engine).unwrap_or_else(|| panic!("{engine} missing"));
            assert_eq!(t.error, None, "{}", q.query);
            assert_eq!(t.stats.times_ms.len(), 2);
            assert_eq!(t.rows, q.rows, "{} {engine}", q.query);
            let expected = t.stats.median_ms.unwrap_or(0.0) / q.stats.median_ms.unwrap_or(1.0);
            assert!(t.ratio.is_some_and(|r| (r - expected).abs() < 1e-9));
        }
    }
    let summary = report.summary();
    assert_eq!(summary.queries, 3);
    assert_eq!(summary.peers.len(), 2);
    assert!(
        summary
            .peers
            .iter()
            .all(|(_, g, r)| g.is_some() && r.is_some())
    );
    // The live DuckDB answers came from the comparison run, so its time is peer time.
    assert!(report.time.peers_secs > 0.0);
    let csv = report.to_csv();
    assert!(
        csv.lines()
            .next()
            .is_some_and(|h| h.contains("duckdb_ratio"))
    );
    Ok(())
}
