//! The `BITMAP_*` built-ins through SQL (`functions::bitmap`): bitmaps as `BYTES` values in the
//! portable RoaringBitmap format, the scalar functions, the aggregates with `GROUP BY`, and
//! the errors.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::util::display::ArrayFormatter;
use futures::TryStreamExt;
use weir::{Session, SessionOptions, StatementResult};

/// The rows of the query's last column as text (`NULL` for NULL).
async fn column(s: &mut Session, sql: &str) -> Result<Vec<String>, String> {
    let mut results = s.execute_sql(sql).await.map_err(|e| e.to_string())?;
    let Some(StatementResult::Rows(r)) = results.pop() else {
        return Err(format!("no rows for {sql}"));
    };
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.map_err(|e| e.to_string())?;
    let b = concat_batches(&r.schema, &batches).map_err(|e| e.to_string())?;
    let Some(col) = b.columns().last() else {
        return Err("no columns".into());
    };
    let f =
        ArrayFormatter::try_new(col.as_ref(), &Default::default()).map_err(|e| e.to_string())?;
    Ok((0..col.len())
        .map(|i| {
            if col.is_null(i) {
                "NULL".to_string()
            } else {
                f.value(i).to_string()
            }
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalar_functions() {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let cases = [
        (
            "BITMAP_TO_STRING(BITMAP_BUILD(ARRAY[3, 1, -1, 1]))",
            "{1,3,4294967295}",
        ),
        ("BITMAP_CARDINALITY(BITMAP_BUILD(ARRAY[1, 2, 2]))", "2"),
        (
            "BITMAP_TO_ARRAY(BITMAP_OR(BITMAP_BUILD(ARRAY[-1, 1]), BITMAP_BUILD(ARRAY[2])))",
            "[1, 2, -1]",
        ),
        (
            "BITMAP_TO_STRING(BITMAP_ANDNOT(BITMAP_BUILD(ARRAY[1, 2]), BITMAP_BUILD(ARRAY[2])))",
            "{1}",
        ),
        (
            "BITMAP_TO_STRING(BITMAP_XOR(BITMAP_BUILD(ARRAY[1, 2]), BITMAP_BUILD(ARRAY[2, 3])))",
            "{1,3}",
        ),
        (
            "BITMAP_TO_STRING(BITMAP_FROM_BYTES(BITMAP_TO_BYTES(BITMAP_BUILD(ARRAY[7]))))",
            "{7}",
        ),
        (
            "BITMAP_TO_BYTES(BITMAP_BUILD(ARRAY[1]))",
            "3a3000000100000000000000100000000100",
        ),
        (
            "BITMAP_AND(BITMAP_BUILD(ARRAY[1]), CAST(NULL AS BYTES))",
            "NULL",
        ),
        (
            "BITMAP_TO_STRING(BITMAP_BUILD(CAST(ARRAY[1, NULL] AS ARRAY<INT>)))",
            "{1}",
        ),
    ];
    for (expr, want) in cases {
        let rows = column(&mut s, &format!("SELECT {expr}"))
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(rows, [want], "{expr}");
    }
    for (expr, want) in [
        ("BITMAP_FROM_BYTES(X'0102')", "not a 32-bit RoaringBitmap"),
        ("BITMAP_BUILD(ARRAY[4294967296])", "out of the INT range"),
        ("BITMAP_CARDINALITY('abc')", "expects a BITMAP"),
    ] {
        match column(&mut s, &format!("SELECT {expr}")).await {
            Ok(rows) => panic!("{expr} gave {rows:?}"),
            Err(e) => assert!(e.contains(want), "{expr}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates() {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let data = "(VALUES (1, 1), (1, 2), (1, CAST(NULL AS INT)), (2, 2), (2, 3)) AS t(g, x)";
    let cases = [
        (
            format!(
                "SELECT g, BITMAP_TO_STRING(BITMAP_BUILD_AGG(x)) FROM {data} GROUP BY g ORDER BY g"
            ),
            vec!["{1,2}", "{2,3}"],
        ),
        (
            format!("SELECT g, BITMAP_BUILD_CARDINALITY_AGG(x) FROM {data} GROUP BY g ORDER BY g"),
            vec!["2", "2"],
        ),
        (
            format!(
                "SELECT BITMAP_TO_STRING(BITMAP_AND_AGG(b)) FROM \
                 (SELECT g, BITMAP_BUILD_AGG(x) AS b FROM {data} GROUP BY g)"
            ),
            vec!["{2}"],
        ),
        (
            format!(
                "SELECT BITMAP_TO_STRING(BITMAP_OR_AGG(b)) FROM \
                 (SELECT g, BITMAP_BUILD_AGG(x) AS b FROM {data} GROUP BY g)"
            ),
            vec!["{1,2,3}"],
        ),
        (
            format!(
                "SELECT BITMAP_XOR_CARDINALITY_AGG(b) FROM \
                 (SELECT g, BITMAP_BUILD_AGG(x) AS b FROM {data} GROUP BY g)"
            ),
            vec!["2"],
        ),
        (
            format!("SELECT BITMAP_BUILD_AGG(x) FROM {data} WHERE g > 5"),
            vec!["NULL"],
        ),
        (
            format!("SELECT BITMAP_AND_CARDINALITY_AGG(CAST(NULL AS BYTES)) FROM {data}"),
            vec!["NULL"],
        ),
    ];
    for (sql, want) in cases {
        let rows = column(&mut s, &sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(rows, want, "{sql}");
    }
}
