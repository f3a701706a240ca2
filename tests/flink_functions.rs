//! The differential corpus of built-in functions against Apache Flink itself:
//! `tests/data/flink-functions.jsonl` holds Flink 2.3's type and value (or error) for every
//! expression of `tests/data/flink-function-exprs.txt` (made by `scripts/flink-functions.sh`,
//! batch mode, 'table.local-time-zone' = 'UTC'). Each runs in Weir the same way and must give
//! Flink's type and value, or fail where Flink fails, except the expressions listed with a
//! reason in `docs/compatibility.md` ("Differences in the function corpus"), which are checked
//! to still differ so that the list shrinks as they are fixed.
//!
//! Types are compared as Flink SQL types with string and binary lengths dropped (`CHAR(3)`,
//! `VARCHAR(5)` → `STRING`; `BINARY(n)` → `BYTES`), since Weir's strings carry no length.
//! Values are compared as the text Flink's SQL client prints (`TRUE`, `x'0a'`, `[a, NULL]`,
//! `{k=v}` with map entries sorted), floating-point numbers to a relative 1e-12.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use weir::types::SqlType;
use weir::{Session, SessionOptions, StatementResult};

struct Case {
    expr: String,
    flink: Result<(String, Option<String>), String>,
}

fn cases() -> Vec<Case> {
    include_str!("data/flink-functions.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            Case {
                expr: s("expr").expect("expr"),
                flink: match s("error") {
                    Some(e) => Err(e),
                    None => Ok((normalize_type(&s("type").expect("type")), s("value"))),
                },
            }
        })
        .collect()
}

/// The known differences: `| `expr` | reason |` rows of the doc's corpus section.
fn known_differences() -> BTreeMap<String, String> {
    let doc = include_str!("../docs/compatibility.md");
    let section = doc
        .split("## Differences in the function corpus")
        .nth(1)
        .expect("docs/compatibility.md has a 'Differences in the function corpus' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut out = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        if cells.len() < 2 || !line.starts_with("| `") {
            continue;
        }
        let expr = cells[0]
            .trim_start_matches("| `")
            .trim_end_matches('`')
            .replace("\\|", "|");
        let reason = cells[1].trim_end_matches('|').trim().to_string();
        assert!(!reason.is_empty(), "no reason given for {expr}");
        out.insert(expr, reason);
    }
    out
}

/// Flink's type text without lengths of strings and binaries, nor NOT NULL.
fn normalize_type(t: &str) -> String {
    let t = t.replace(" NOT NULL", "");
    let mut out = String::new();
    let mut rest = t.as_str();
    while !rest.is_empty() {
        let next = ["VARCHAR(", "CHAR(", "VARBINARY(", "BINARY("]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, *p)))
            .min();
        let Some((i, prefix)) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..i]);
        out.push_str(if prefix.contains("BINARY") {
            "BYTES"
        } else {
            "STRING"
        });
        let after = &rest[i + prefix.len()..];
        rest = after.find(')').map_or("", |j| &after[j + 1..]);
    }
    out
}

fn query_of(expr: &str) -> String {
    if expr.starts_with("SELECT ") {
        expr.to_string()
    } else {
        format!("SELECT {expr} AS r")
    }
}

/// A value as Flink's SQL client prints it.
fn render(array: &ArrayRef, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".into();
    }
    match array.data_type() {
        DataType::Boolean => {
            if array.as_boolean().value(row) {
                "TRUE".into()
            } else {
                "FALSE".into()
            }
        }
        DataType::Binary => {
            let b = array.as_binary::<i32>().value(row);
            format!(
                "x'{}'",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            )
        }
        DataType::Timestamp(unit, _) => {
            let f = ArrayFormatter::try_new(
                array.as_ref(),
                &FormatOptions::default()
                    .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
                    .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f")),
            )
            .expect("a formatter");
            let text = f.value(row).to_string();
            let digits = match unit {
                datafusion::arrow::datatypes::TimeUnit::Second => 0,
                datafusion::arrow::datatypes::TimeUnit::Millisecond => 3,
                datafusion::arrow::datatypes::TimeUnit::Microsecond => 6,
                datafusion::arrow::datatypes::TimeUnit::Nanosecond => 9,
            };
            let (base, frac) = text.split_once('.').unwrap_or((&text, ""));
            if digits == 0 {
                base.to_string()
            } else {
                format!("{base}.{:0<digits$}", frac)
            }
        }
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            let parts: Vec<String> = (0..items.len()).map(|i| render(&items, i)).collect();
            format!("[{}]", parts.join(", "))
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            let mut parts: Vec<String> = (0..entries.len())
                .map(|i| {
                    format!(
                        "{}={}",
                        render(entries.column(0), i),
                        render(entries.column(1), i)
                    )
                })
                .collect();
            parts.sort();
            format!("{{{}}}", parts.join(", "))
        }
        DataType::Struct(_) => {
            let s = array.as_struct();
            let parts: Vec<String> = s.columns().iter().map(|c| render(c, row)).collect();
            format!("({})", parts.join(", "))
        }
        DataType::Float32 | DataType::Float64 => {
            let v =
                datafusion::arrow::compute::cast(array, &DataType::Float64).expect("a float cast");
            let x = v
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .value(row);
            if x.is_nan() {
                "NaN".into()
            } else if x.is_infinite() {
                if x > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                }
            } else {
                let f = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
                    .expect("a formatter");
                f.value(row).to_string()
            }
        }
        _ => {
            let f = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
                .expect("a formatter");
            f.value(row).to_string()
        }
    }
}

/// Weir's type and value of the expression.
async fn weir_answer(s: &mut Session, expr: &str) -> Result<(String, Option<String>), String> {
    let mut results = s
        .execute_sql(&query_of(expr))
        .await
        .map_err(|e| e.to_string())?;
    let Some(StatementResult::Rows(r)) = results.pop() else {
        return Err("no rows".into());
    };
    let field = r.schema.fields().last().ok_or("no column")?.clone();
    let batches: Vec<RecordBatch> = r.stream.try_collect().await.map_err(|e| e.to_string())?;
    let batch = datafusion::arrow::compute::concat_batches(&r.schema, &batches)
        .map_err(|e| e.to_string())?;
    if batch.num_rows() != 1 {
        return Err(format!("{} rows", batch.num_rows()));
    }
    let ty = SqlType::from_arrow(field.data_type()).map_err(|e| e.to_string())?;
    let col = batch.columns().last().ok_or("no column")?;
    let value = (!col.is_null(0)).then(|| render(col, 0));
    Ok((normalize_type(&ty.to_string()), value))
}

fn same(flink: &(String, Option<String>), weir: &(String, Option<String>)) -> bool {
    if flink.0 != weir.0 {
        return false;
    }
    match (&flink.1, &weir.1) {
        (Some(a), Some(b)) if flink.0 == "FLOAT" || flink.0 == "DOUBLE" => {
            match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => {
                    (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
                }
                _ => a == b,
            }
        }
        (a, b) => a == b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_functions_answer_as_flink() {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    s.execute_sql("SET 'table.local-time-zone' = 'UTC'")
        .await
        .unwrap();
    let known = known_differences();
    let cases = cases();
    assert!(cases.len() >= 400, "only {} cases", cases.len());
    let mut wrong = Vec::new();
    let mut known_but_right = Vec::new();
    let mut differing = 0;
    for case in &cases {
        let weir = weir_answer(&mut s, &case.expr).await;
        let ok = match (&case.flink, &weir) {
            (Ok(f), Ok(w)) => same(f, w),
            (Err(_), Err(_)) => true,
            _ => false,
        };
        let listed = known.contains_key(&case.expr);
        if !ok {
            differing += 1;
            if !listed {
                wrong.push(format!(
                    "{}\n    Flink {:?}\n    Weir  {weir:?}",
                    case.expr, case.flink
                ));
            }
        } else if listed {
            known_but_right.push(case.expr.clone());
        }
    }
    let stale: Vec<&String> = known
        .keys()
        .filter(|k| !cases.iter().any(|c| &c.expr == *k))
        .collect();
    eprintln!(
        "{} of {} expressions answer as Flink ({} listed differences)",
        cases.len() - differing,
        cases.len(),
        known.len()
    );
    assert!(
        wrong.is_empty(),
        "{} differences from Flink not listed in docs/compatibility.md:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        known_but_right.is_empty(),
        "now as Flink, remove from docs/compatibility.md: {known_but_right:?}"
    );
    assert!(stale.is_empty(), "listed but not in the corpus: {stale:?}");
}

#[test]
fn type_normalization() {
    assert_eq!(normalize_type("CHAR(1) NOT NULL"), "STRING");
    assert_eq!(
        normalize_type("MAP<CHAR(1), VARCHAR(3)>"),
        "MAP<STRING, STRING>"
    );
    assert_eq!(normalize_type("ARRAY<VARBINARY(2)>"), "ARRAY<BYTES>");
    assert_eq!(normalize_type("DECIMAL(4, 2)"), "DECIMAL(4, 2)");
}

/// The scalar functions run inside the streaming operators too (same kernels), and an aggregate
/// without a retractable streaming accumulator is refused with a clear error, not answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_in_streaming_mode() {
    let mut batch = Session::open(SessionOptions::default()).await.unwrap();
    let mut stream = Session::open(SessionOptions::default()).await.unwrap();
    stream
        .execute_sql("SET 'execution.runtime-mode' = 'streaming'")
        .await
        .unwrap();
    let exprs = [
        "LOCATE('b', s)",
        "SPLIT(s, ',')",
        "URL_ENCODE(s)",
        "JSON_VALUE(j, '$.a')",
        "JSON_QUERY(j, '$.b')",
        "SHA1(s)",
        "HEX(s)",
        "IF(s IS NULL, 'none', s)",
        "STR_TO_MAP(s, ',', '=')",
        "TRUNCATE(d, 1)",
        "UNIX_TIMESTAMP(ts)",
        "JSON_OBJECT('s' VALUE s, 'd' VALUE JSON_ARRAY(d, JSON_OBJECT('j' VALUE j)))",
        "j IS JSON OBJECT",
    ];
    for expr in exprs {
        let sql = format!(
            "SELECT {expr} AS r FROM (VALUES ('a,b=1', '{{\"a\": 1, \"b\": [2]}}', 1.25, \
             '2024-01-01 00:00:00'), (CAST(NULL AS STRING), 'x', -7.75, 'bad')) AS t(s, j, d, ts)"
        );
        let mut answers = Vec::new();
        for s in [&mut batch, &mut stream] {
            let mut results = s.execute_sql(&sql).await.unwrap();
            let Some(StatementResult::Rows(r)) = results.pop() else {
                panic!("no rows for {expr}");
            };
            let batches: Vec<RecordBatch> = r.stream.try_collect().await.unwrap();
            let b = if r.changelog {
                weir::session::materialize(&r.schema, &batches).unwrap()
            } else {
                datafusion::arrow::compute::concat_batches(&r.schema, &batches).unwrap()
            };
            let col = b.columns().last().unwrap().clone();
            let mut rows: Vec<String> = (0..b.num_rows()).map(|i| render(&col, i)).collect();
            rows.sort();
            answers.push(rows);
        }
        assert_eq!(answers[0].len(), 2, "{expr}");
        assert_eq!(answers[0], answers[1], "{expr}: batch and streaming differ");
    }
    let err = stream
        .execute_sql("SELECT LISTAGG(s) FROM (VALUES ('a'), ('b')) AS t(s)")
        .await
        .err()
        .expect("LISTAGG in streaming is refused");
    assert!(
        err.to_string().contains("LISTAGG") && err.to_string().contains("not supported yet"),
        "{err}"
    );
}
