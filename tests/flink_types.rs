//! Result types and values of aggregates and arithmetic against Apache Flink itself:
//! `tests/data/flink-types.jsonl` holds what Flink 2.3 answered (`scripts/flink-types.py`, batch
//! mode). Every expression runs in Weir, in batch mode and (aggregates Weir streams) in
//! streaming mode, and must give Flink's type and value, except the differences listed in
//! `KNOWN_*_DIFFERENCES` (checked to still differ, so the list shrinks as they are fixed).

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use weir::types::SqlType;
use weir::{Session, SessionOptions, StatementResult};

/// The views of `scripts/flink-types.py`, same text.
const VIEWS: &str = "CREATE TEMPORARY VIEW t AS SELECT
         CAST(x AS TINYINT) AS ti, CAST(x AS SMALLINT) AS si, CAST(x AS INT) AS i,
         CAST(x AS BIGINT) AS b, CAST(f AS FLOAT) AS f, CAST(f AS DOUBLE) AS d,
         CAST(dm AS DECIMAL(10, 2)) AS dm
       FROM (VALUES (1, 1.5, 1.00), (2, 2.25, 2.00), (-7, -7.0, -7.01)) AS v(x, f, dm);
    CREATE TEMPORARY VIEW u AS SELECT
         CAST(7 AS TINYINT) AS a_ti, CAST(7 AS SMALLINT) AS a_si, CAST(7 AS INT) AS a_i,
         CAST(7 AS BIGINT) AS a_b, CAST(1.5 AS FLOAT) AS a_f, CAST(2.25 AS DOUBLE) AS a_d,
         CAST(2.50 AS DECIMAL(10, 2)) AS a_dm,
         CAST(-2 AS TINYINT) AS b_ti, CAST(-2 AS SMALLINT) AS b_si, CAST(-2 AS INT) AS b_i,
         CAST(-2 AS BIGINT) AS b_b, CAST(0.5 AS FLOAT) AS b_f, CAST(-0.75 AS DOUBLE) AS b_d,
         CAST(0.3 AS DECIMAL(5, 3)) AS b_dm;";

/// Where Weir still differs from Flink (type or value): aggregates matched by name prefix.
/// `STDDEV_*` / `VAR_*`: Flink keeps the argument's type (integer arithmetic for integers,
/// `DECIMAL` for decimals, `FLOAT` for `FLOAT`); Weir returns `DOUBLE` (DataFusion's). Over
/// `DOUBLE` they agree.
const KNOWN_AGGREGATE_DIFFERENCES: &[&str] = &["STDDEV_", "VAR_"];

/// Arithmetic where Weir (DataFusion's coercion) still differs from Flink:
/// - `BIGINT` with `DECIMAL`: Flink counts `BIGINT` as `DECIMAL(19, 0)`, DataFusion as
///   `DECIMAL(20, 0)` (one more digit of precision).
/// - `FLOAT` with `DOUBLE` is `FLOAT` in Flink, `DOUBLE` in Weir; `FLOAT` with `DECIMAL` is
///   `DOUBLE` in Flink, `FLOAT` in Weir.
/// - Decimal division: Flink's result scale is `max(6, s1 + p2 + 1)`, DataFusion's differs.
/// - Integer `%`: Flink's result has the divisor's type, DataFusion's the wider type.
const KNOWN_ARITHMETIC_DIFFERENCES: &[&str] = &[
    "a_b + b_dm",
    "a_f + b_d",
    "a_f + b_dm",
    "a_dm + b_b",
    "a_dm + b_f",
    "a_b - b_dm",
    "a_f - b_d",
    "a_f - b_dm",
    "a_dm - b_b",
    "a_dm - b_f",
    "a_b * b_dm",
    "a_f * b_d",
    "a_f * b_dm",
    "a_dm * b_b",
    "a_dm * b_f",
    "a_ti / b_dm",
    "a_si / b_dm",
    "a_i / b_dm",
    "a_b / b_dm",
    "a_f / b_d",
    "a_f / b_dm",
    "a_dm / b_si",
    "a_dm / b_i",
    "a_dm / b_b",
    "a_dm / b_f",
    "a_dm / b_dm",
    "a_si % b_ti",
    "a_i % b_ti",
    "a_i % b_si",
    "a_b % b_ti",
    "a_b % b_si",
    "a_b % b_i",
];

struct Case {
    view: String,
    expr: String,
    flink: Result<(String, Option<String>), String>,
}

fn cases() -> Vec<Case> {
    let text = include_str!("data/flink-types.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            Case {
                view: s("view").expect("view"),
                expr: s("expr").expect("expr"),
                flink: match s("error") {
                    Some(e) => Err(e),
                    None => Ok((s("type").expect("type"), s("value"))),
                },
            }
        })
        .collect()
}

fn cell(batch: &RecordBatch) -> Option<String> {
    let col = batch.columns().last()?;
    if col.is_null(0) {
        return None;
    }
    let f = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()).ok()?;
    Some(f.value(0).to_string())
}

/// Weir's type and value of `SELECT expr AS r FROM view` in the session's mode.
async fn weir_answer(s: &mut Session, case: &Case) -> Result<(String, Option<String>), String> {
    let sql = format!("SELECT {} AS r FROM {}", case.expr, case.view);
    let mut results = s.execute_sql(&sql).await.map_err(|e| e.to_string())?;
    let Some(StatementResult::Rows(r)) = results.pop() else {
        return Err("no rows".into());
    };
    let field = r.schema.fields().last().ok_or("no column")?.clone();
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.map_err(|e| e.to_string())?;
    let batch = if r.changelog {
        weir::session::materialize(&r.schema, &batches).map_err(|e| e.to_string())?
    } else {
        datafusion::arrow::compute::concat_batches(&r.schema, &batches)
            .map_err(|e| e.to_string())?
    };
    if batch.num_rows() != 1 {
        return Err(format!("{} rows", batch.num_rows()));
    }
    let ty = SqlType::from_arrow(field.data_type()).map_err(|e| e.to_string())?;
    Ok((ty.to_string(), cell(&batch)))
}

/// Whether Weir's answer is Flink's: same type, same value (floating-point: same number to
/// the precision of the type, as Java and Rust print them differently).
fn same(flink: &(String, Option<String>), weir: &(String, Option<String>)) -> bool {
    if flink.0 != weir.0 {
        return false;
    }
    match (&flink.1, &weir.1) {
        (Some(a), Some(b)) if flink.0 == "FLOAT" || flink.0 == "DOUBLE" => {
            match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => {
                    let tolerance = if flink.0 == "FLOAT" { 1e-6 } else { 1e-14 };
                    (x - y).abs() <= tolerance * x.abs().max(y.abs())
                }
                _ => false,
            }
        }
        (a, b) => a == b,
    }
}

async fn check(streaming: bool) {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    s.execute_sql(VIEWS).await.unwrap();
    if streaming {
        s.execute_sql("SET 'execution.runtime-mode' = 'streaming'")
            .await
            .unwrap();
    }
    let mut wrong = Vec::new();
    let mut known_but_right = Vec::new();
    let mut checked = 0;
    for case in cases() {
        // Streaming runs the aggregates it has retractable accumulators for.
        let streamed = ["COUNT(", "SUM(", "AVG(", "MIN(", "MAX("]
            .iter()
            .any(|p| case.expr.starts_with(p));
        if streaming && !streamed {
            continue;
        }
        let Ok(flink) = &case.flink else {
            continue;
        };
        checked += 1;
        let known = KNOWN_AGGREGATE_DIFFERENCES
            .iter()
            .any(|p| case.expr.starts_with(p) && !case.expr.ends_with("(d)"))
            || KNOWN_ARITHMETIC_DIFFERENCES.contains(&case.expr.as_str());
        let weir = weir_answer(&mut s, &case).await;
        let ok = weir.as_ref().is_ok_and(|w| same(flink, w));
        if !ok && !known {
            wrong.push(format!("{}: Flink {flink:?}, Weir {weir:?}", case.expr));
        }
        if ok && known {
            known_but_right.push(case.expr.clone());
        }
    }
    assert!(checked >= 49, "only {checked} cases checked");
    assert!(
        wrong.is_empty(),
        "differences from Flink (streaming: {streaming}):\n{}",
        wrong.join("\n")
    );
    assert!(
        known_but_right.is_empty(),
        "now as Flink, remove from the known differences: {known_but_right:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_types_and_values_are_flinks() {
    check(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_aggregate_types_and_values_are_flinks() {
    check(true).await;
}
