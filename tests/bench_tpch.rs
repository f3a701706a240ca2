//! End-to-end test of the TPC-H bench runner: generates SF 0.01 into a temp directory and runs
//! all 22 queries once through the library API (`weir::bench::run_tpch`, which goes through the
//! `Session` like any user), checking that each succeeds with a plausible number of rows.

use weir::bench::{TpchOptions, run_tpch};

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
async fn tpch_sf001_all_queries_run() -> weir::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| weir::Error::io("cannot create a temp dir", e))?;
    let options = TpchOptions {
        scale: 0.01,
        data_dir: Some(dir.path().to_path_buf()),
        queries: (1..=22).collect(),
        iterations: 1,
        // Verifies against DuckDB when python3 can import it; skipped with a message otherwise.
        verify: true,
        threads: Some(2),
    };
    let mut sink = |line: &str| eprintln!("{line}");
    let report = run_tpch(&options, &mut sink).await?;
    eprintln!("{}", report.to_table());
    assert!(report.data_generated);
    assert_eq!(report.queries.len(), 22);
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
        if q.verified == Some(false) {
            problems.push(format!(
                "{}: wrong answer: {}",
                q.query,
                q.verify_message.as_deref().unwrap_or("")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
