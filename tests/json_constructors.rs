//! Flink's JSON constructors through SQL (parse hooks in `sql::json_syntax`, functions in
//! `functions::json_build` / `functions::json_aggregates`): nesting, `NULL` / `ABSENT ON NULL`,
//! `JSON(...)`, the aggregates with `GROUP BY` and `FILTER`, `IS JSON`, and the errors Flink
//! raises too. The plain cases are in the differential corpus (`tests/flink_functions.rs`).

use weir::{Session, SessionOptions};

mod common;
use common::column;

async fn one(s: &mut Session, expr: &str) -> String {
    let rows = column(s, &format!("SELECT {expr}"))
        .await
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    assert_eq!(rows.len(), 1, "{expr}");
    rows[0].clone()
}

async fn session() -> Session {
    Session::open(SessionOptions::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constructors_nest_and_handle_nulls() {
    let mut s = session().await;
    let cases = [
        (
            "JSON_OBJECT('a' VALUE JSON_OBJECT('b' VALUE JSON_ARRAY(1, 'x')), 'c' VALUE TRUE)",
            r#"{"a":{"b":[1,"x"]},"c":true}"#,
        ),
        // Parentheses around a nested constructor keep it JSON.
        ("JSON_ARRAY((JSON_OBJECT()), JSON_ARRAY())", "[{},[]]"),
        // A constructor's result used as a string elsewhere is a string again.
        ("JSON_ARRAY(CONCAT(JSON_ARRAY(1), ''))", r#"["[1]"]"#),
        (
            "JSON_OBJECT(KEY 'k' VALUE JSON(' [1, {\"a\" : 2}] '))",
            r#"{"k":[1,{"a":2}]}"#,
        ),
        (
            "JSON_OBJECT('k' VALUE JSON(CAST(NULL AS STRING)))",
            r#"{"k":null}"#,
        ),
        (
            "JSON_ARRAY(JSON(CAST(NULL AS STRING)) NULL ON NULL)",
            "[null]",
        ),
        ("JSON_ARRAY(NULL ON NULL)", "[]"),
        ("JSON_OBJECT('a' VALUE 1, 'a' VALUE 2)", r#"{"a":2}"#),
        ("JSON_OBJECT('a' VALUE 'x\"y')", r#"{"a":"x\"y"}"#),
        (
            "JSON_ARRAY(CAST(1.50 AS DECIMAL(5, 2)), CAST(2.5 AS DOUBLE))",
            "[1.50,2.5]",
        ),
        (
            "JSON_ARRAY(TIMESTAMP '2024-01-02 03:04:05.500')",
            r#"["2024-01-02T03:04:05.5"]"#,
        ),
        (
            "JSON_ARRAY(ARRAY[1, 2], MAP['k', 'v'])",
            r#"[[1,2],{"k":"v"}]"#,
        ),
        ("lower(JSON_OBJECT('A' VALUE 1))", r#"{"a":1}"#),
    ];
    for (expr, want) in cases {
        assert_eq!(one(&mut s, expr).await, want, "{expr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constructors_over_columns() {
    let mut s = session().await;
    let rows = column(
        &mut s,
        "SELECT JSON_OBJECT('k' VALUE k, 'v' VALUE v ABSENT ON NULL) FROM \
         (VALUES ('a', 1), ('b', CAST(NULL AS INT))) AS t(k, v)",
    )
    .await
    .unwrap();
    assert_eq!(rows, [r#"{"k":"a","v":1}"#, r#"{"k":"b"}"#]);
    for (pred, want) in [
        ("j IS JSON", ["true", "false", "false"]),
        ("j IS NOT JSON", ["false", "true", "true"]),
        ("j IS JSON SCALAR", ["false", "false", "false"]),
        ("j IS JSON OBJECT", ["true", "false", "false"]),
    ] {
        let rows = column(
            &mut s,
            &format!(
                "SELECT {pred} FROM (VALUES (1, '{{}}'), (2, 'x'), (3, CAST(NULL AS STRING))) \
                 AS t(i, j) ORDER BY i"
            ),
        )
        .await
        .unwrap();
        assert_eq!(rows, want, "{pred}");
    }
    let rows = column(
        &mut s,
        "SELECT j FROM (VALUES ('{}'), ('x'), ('[1]')) AS t(j) WHERE j IS JSON AND NOT j IS JSON OBJECT",
    )
    .await
    .unwrap();
    assert_eq!(rows, ["[1]"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_group_and_filter() {
    let mut s = session().await;
    let data = "(VALUES (1, 'a', 10), (1, 'b', CAST(NULL AS INT)), (2, 'c', 30)) AS t(g, k, v)";
    let rows = column(
        &mut s,
        &format!("SELECT g, JSON_OBJECTAGG(KEY k VALUE v) FROM {data} GROUP BY g ORDER BY g"),
    )
    .await
    .unwrap();
    assert_eq!(rows, [r#"{"a":10,"b":null}"#, r#"{"c":30}"#]);
    let rows = column(
        &mut s,
        &format!(
            "SELECT g, JSON_ARRAYAGG(JSON_OBJECT('k' VALUE k) NULL ON NULL) FILTER (WHERE v IS NOT NULL) \
             FROM {data} GROUP BY g ORDER BY g"
        ),
    )
    .await
    .unwrap();
    assert_eq!(rows, [r#"[{"k":"a"}]"#, r#"[{"k":"c"}]"#]);
    let rows = column(
        &mut s,
        &format!("SELECT JSON_ARRAYAGG(v) FROM {data} WHERE g > 5"),
    )
    .await
    .unwrap();
    assert_eq!(rows, ["[]"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_clear() {
    let mut s = session().await;
    let cases = [
        ("SELECT JSON('{}')", "JSON(...) can only be used"),
        ("SELECT JSON_OBJECT('a' VALUE JSON('{x'))", "not valid JSON"),
        ("SELECT JSON_OBJECT('a' 1)", "expects `VALUE` after a key"),
        ("SELECT JSON_OBJECT(1 VALUE 1)", "keys must be strings"),
        (
            "SELECT JSON_OBJECT(CAST(NULL AS STRING) VALUE 1)",
            "a key is NULL",
        ),
        (
            "SELECT JSON_ARRAY(DATE '2024-01-01')",
            "cannot be converted into JSON",
        ),
        (
            "SELECT JSON_OBJECTAGG(KEY k VALUE v) FROM (VALUES ('a', 1), ('a', 2)) AS t(k, v)",
            "already present",
        ),
        (
            "SELECT JSON_ARRAYAGG(x) OVER (ORDER BY x) FROM (VALUES (1)) AS t(x)",
            "not supported in OVER windows",
        ),
    ];
    for (sql, want) in cases {
        match column(&mut s, sql).await {
            Ok(rows) => panic!("{sql} gave {rows:?}, want an error with {want:?}"),
            Err(e) => assert!(e.contains(want), "{sql}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_refuses_the_aggregates() {
    let mut s = session().await;
    s.execute_sql("SET 'execution.runtime-mode' = 'streaming'")
        .await
        .unwrap();
    let err = column(
        &mut s,
        "SELECT JSON_ARRAYAGG(x) FROM (VALUES (1), (2)) AS t(x)",
    )
    .await
    .expect_err("JSON_ARRAYAGG in streaming mode");
    assert!(err.contains("not supported yet"), "{err}");
}
