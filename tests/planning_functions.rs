//! Built-ins the planner answers (`planner::planning_functions`): `TYPEOF` names the planned
//! type in Flink's spelling, `CURRENT_DATABASE()` the session's current database; in batch and
//! streaming mode alike.

use weir::{Session, SessionOptions};

mod common;
use common::column;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typeof_names_the_planned_type() {
    for streaming in [false, true] {
        let mut s = Session::open(SessionOptions::default()).await.unwrap();
        if streaming {
            s.execute_sql("SET 'execution.runtime-mode' = 'streaming'")
                .await
                .unwrap();
        }
        let cases = [
            ("TYPEOF(CAST(NULL AS STRING))", "STRING"),
            ("TYPEOF(CAST(NULL AS STRING), TRUE)", "VARCHAR(2147483647)"),
            ("TYPEOF(CAST(1 AS SMALLINT))", "SMALLINT NOT NULL"),
            ("TYPEOF(NULL)", "NULL"),
            (
                "TYPEOF(TO_TIMESTAMP_LTZ(0, 3), TRUE)",
                "TIMESTAMP(3) WITH LOCAL TIME ZONE NOT NULL",
            ),
            (
                "TYPEOF(TO_TIMESTAMP_LTZ(0, 3))",
                "TIMESTAMP_LTZ(3) NOT NULL",
            ),
            (
                "TYPEOF(CAST(1.5 AS DECIMAL(10, 2)))",
                "DECIMAL(10, 2) NOT NULL",
            ),
            ("TYPEOF(x)", "INT"),
        ];
        for (expr, want) in cases {
            let sql = format!(
                "SELECT {expr} FROM (VALUES (CAST(1 AS INT)), (CAST(NULL AS INT))) AS t(x)"
            );
            let rows = column(&mut s, &sql).await.unwrap();
            assert_eq!(rows, [want, want], "{expr} (streaming: {streaming})");
        }
        let err = column(&mut s, "SELECT TYPEOF(1, 'yes')").await.unwrap_err();
        assert!(err.contains("force_serializable"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_database_follows_use() {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let first = column(&mut s, "SELECT CURRENT_DATABASE()").await.unwrap();
    assert_eq!(first, ["default_database"]);
    s.execute_sql("CREATE DATABASE other_db; USE other_db")
        .await
        .unwrap();
    let rows = column(&mut s, "SELECT current_database()").await.unwrap();
    assert_eq!(rows, ["other_db"]);
}
