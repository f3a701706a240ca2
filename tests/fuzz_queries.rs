//! Generated queries checked by oracles (issue 19; see `tests/fuzz/mod.rs` and
//! `docs/fuzzing.md`): batch vs streaming at parallelism 1 and 2, ternary-logic partitioning and
//! NoREC, on a fixed seed. Every failing case is reduced and printed as a reproducer, and the
//! test fails.
//!
//! `WEIR_FUZZ_QUERY_COUNT` sets the statements per oracle (default 1,000 for batch vs streaming,
//! 2,000 for TLP and NoREC) and `WEIR_FUZZ_SEED` the seed, for long runs:
//! `WEIR_FUZZ_QUERY_COUNT=100000 WEIR_FUZZ_SEED=7 cargo test --release --test fuzz_queries --
//! --nocapture`.

mod fuzz;

use fuzz::{Oracle, fuzz};

fn count(default: usize) -> usize {
    std::env::var("WEIR_FUZZ_QUERY_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("WEIR_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(19)
}

async fn run(oracle: Oracle, default_count: usize) {
    let scratch = tempfile::tempdir().unwrap();
    let n = count(default_count);
    let tally = fuzz(oracle, seed(), n, scratch.path()).await;
    println!(
        "{oracle:?}: {} statements, seed {}: {:?}",
        tally.statements,
        seed(),
        tally.outcomes
    );
    let failed = tally.failures.len();
    println!("{} passed, {failed} failed", tally.statements - failed);
    assert!(
        tally.failures.is_empty(),
        "{failed} failing cases:\n{}",
        tally.failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_and_streaming_agree_on_generated_queries() {
    run(Oracle::BatchVsStreaming, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ternary_logic_partitioning_holds() {
    run(Oracle::Tlp, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn norec_counts_agree() {
    run(Oracle::NoRec, 2000).await;
}

/// The bugs the oracles found, each as the reduced case (see `docs/fuzzing.md`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bugs_found_by_the_oracles_stay_fixed() {
    use fuzz::Outcome;
    use weir::{Session, SessionOptions};
    let dir = tempfile::tempdir().unwrap();
    let t1 = dir.path().join("t1");
    std::fs::create_dir_all(&t1).unwrap();
    std::fs::write(
        t1.join("part-0.json"),
        "{\"c0\": -1, \"c2\": null, \"c3\": -3, \"d\": \"2024-01-02\", \"b\": -9223372036854775808}\n\
         {\"c0\": 2147483647, \"c2\": \"zz\", \"c3\": null, \"d\": \"2024-01-02\", \"b\": -3}\n\
         {\"c0\": 2, \"c2\": \"zz\", \"c3\": 1, \"d\": \"2024-01-02\", \"b\": null}\n",
    )
    .unwrap();
    let ddl = format!(
        "CREATE TABLE t1 (c0 INT, c2 STRING, c3 INT, d DATE, b BIGINT) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'json')",
        t1.display()
    );
    let mut sessions = Vec::new();
    for (mode, parallelism) in [("batch", 2), ("streaming", 1), ("streaming", 2)] {
        let mut s = Session::open(SessionOptions::default()).await.unwrap();
        s.execute_sql(&format!(
            "SET 'execution.runtime-mode' = '{mode}'; SET 'parallelism.default' = '{parallelism}';"
        ))
        .await
        .unwrap();
        s.execute_sql(&ddl).await.unwrap();
        sessions.push(s);
    }
    let rows = |r: &[&str]| Outcome::Rows(r.iter().map(|s| s.to_string()).collect());
    // 1. `IS DISTINCT FROM` took the `AND` after it into its right operand (TLP).
    let q = "SELECT COUNT(*) FROM t1 AS a WHERE (a.c0 IS NOT NULL OR a.c0 IS NULL) IS DISTINCT \
             FROM TRUE AND SUBSTRING(a.c2 FROM 1 FOR 2) = 'a b'";
    // 2. An integer SUM past INT's range was NULL in batch and an error in streaming; Flink
    //    wraps (Java arithmetic): 2147483647 + 2 - 1 = -2147483648 (batch vs streaming).
    let sum = "SELECT d, SUM(c0) FROM t1 GROUP BY d";
    // 3. A DISTINCT over a CASE whose logical and physical nullability differ failed planning
    //    with an internal error (TLP).
    let case = "SELECT DISTINCT CASE WHEN NOT (c0 = c0) THEN c3 ELSE 5 END AS o0 FROM t1";
    // 5. `GROUP BY 2` grouped by the second SELECT item (or failed); Flink groups by the
    //    constant (TLP, batch vs streaming: "duplicate field", "no column at position -2").
    let constant = "SELECT 2 AS k, COUNT(*) AS n FROM t1 GROUP BY 2";
    // 6. `1e300` was read as a DECIMAL with a scale of -300 and refused; Flink reads a DOUBLE.
    let double = "SELECT COUNT(*) FROM t1 WHERE c0 < 1e300 AND c0 > -2.5E0";
    // 7. A join side without columns (`EXISTS (SELECT 1 ..)`) panicked the streaming join
    //    ("row index out of bounds": arrow's row format has no rows for no columns).
    let exists = "SELECT c0 FROM t1 WHERE EXISTS (SELECT 1 FROM t1 AS s WHERE s.c3 = 1)";
    // 8. Integer AVG summed exactly in streaming and in a wrapping `long` in batch (Flink's
    //    way): (MIN + -3) wraps to MAX - 2, halved.
    let avg = "SELECT d, AVG(b) FROM t1 GROUP BY d";
    for s in &mut sessions {
        assert_eq!(
            fuzz::run(s, exists).await,
            rows(&["-1", "2", "2147483647"]),
            "{exists}"
        );
        assert_eq!(
            fuzz::run(s, avg).await,
            rows(&["2024-01-02 | 4611686018427387902"]),
            "{avg}"
        );
        assert_eq!(fuzz::run(s, constant).await, rows(&["2 | 3"]), "{constant}");
        assert_eq!(fuzz::run(s, double).await, rows(&["3"]), "{double}");
        assert_eq!(fuzz::run(s, q).await, rows(&["0"]), "{q}");
        assert_eq!(
            fuzz::run(s, sum).await,
            rows(&["2024-01-02 | -2147483648"]),
            "{sum}"
        );
        assert_eq!(fuzz::run(s, case).await, rows(&["5"]), "{case}");
    }
    // 4. A type error in BETWEEN was reported as an internal error (a bug in Weir).
    let between = "SELECT c0 FROM t1 WHERE c2 BETWEEN TRUE AND FALSE";
    match fuzz::run(&mut sessions[0], between).await {
        Outcome::Error(kind, _, message) => {
            assert_eq!(kind, weir::ErrorKind::User, "{message}");
            assert!(message.contains("coerce"), "{message}");
        }
        other => panic!("{between}: {other}"),
    }
}

/// Bug 15 of `docs/fuzzing.md` (found by NoREC, TLP and batch vs streaming): a filter over an
/// outer join comparing the two sides' same-named columns (a self-join here; any two tables
/// with a column name in common did it) was pushed into one side by DataFusion's physical filter
/// pushdown, both columns read from that side: a wrong count, silently. Weir's barrier
/// (`batch::pushdown_barrier`) keeps such filters above the join, and leaves no trace in the
/// plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_over_same_named_join_columns_stay_above_the_join() {
    use weir::{Session, SessionOptions, StatementResult};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("part-0.json"),
        "{\"c1\": 1, \"c2\": 0, \"c3\": 9, \"c4\": 4}\n\
         {\"c1\": 2, \"c2\": 5, \"c3\": 1, \"c4\": 1}\n",
    )
    .unwrap();
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    s.execute_sql(&format!(
        "SET 'execution.runtime-mode' = 'batch'; CREATE TABLE t (c1 INT, c2 INT, c3 INT, c4 INT) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json')",
        dir.path().display()
    ))
    .await
    .unwrap();
    // The right join gives (a.c4, b.c4) = (4, 1), where 3 + 1 is not distinct from 4, and
    // (NULL, 4), where 7 is distinct from NULL: one row. Reading b.c4 for a.c4 gives two.
    let q = "SELECT COUNT(*) FROM t AS a RIGHT JOIN t AS b ON a.c1 = b.c3 WHERE b.c2 <> 7 \
             AND (3 + b.c4) IS DISTINCT FROM a.c4";
    assert_eq!(
        fuzz::run(&mut s, q).await,
        fuzz::Outcome::Rows(vec!["1".into()])
    );
    let full = "SELECT COUNT(*) FROM t AS a FULL JOIN t AS b ON a.c1 = b.c3 \
                WHERE a.c4 IS NULL OR (3 + b.c4) IS DISTINCT FROM a.c4";
    // (4, 1) no; (NULL, 4) yes; (a = row 2, no match: c4 = 1, b NULL) yes.
    assert_eq!(
        fuzz::run(&mut s, full).await,
        fuzz::Outcome::Rows(vec!["2".into()])
    );
    // Projection pushdown over the same join failed planning ("Input field name c2 does not
    // match with the projection expression c3"). a.c3 (9, 1) never meets b.c2 (0, 5): the rows
    // without an `a` side are b's two rows, where the CASE takes a.c3 (NULL).
    let projected = "SELECT b.c1, CASE WHEN b.c3 IS NOT NULL OR b.c4 IS NOT NULL THEN a.c3 \
                     ELSE a.c2 END FROM t AS a FULL JOIN t AS b ON a.c3 = b.c2 WHERE a.c1 IS NULL";
    assert_eq!(
        fuzz::run(&mut s, projected).await,
        fuzz::Outcome::Rows(vec!["1 | NULL".into(), "2 | NULL".into()])
    );
    let mut explained = s.execute_sql(&format!("EXPLAIN {q}")).await.unwrap();
    let Some(StatementResult::Rows(r)) = explained.pop() else {
        panic!("EXPLAIN gave no rows")
    };
    let text = format!(
        "{:?}",
        futures::TryStreamExt::try_collect::<Vec<_>>(r.stream).await
    );
    assert!(!text.contains("PushdownBarrier"), "{text}");
}
