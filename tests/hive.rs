//! The Hive catalog against a real Hive Metastore (Hive 2.3.10, `catalogs/hive/peer`) with the
//! sample tables PySpark wrote (`make-sample-tables.py`), set up by `scripts/hive-peer.sh`:
//! catalog commands, every sample table's values from `expected.json` (read by Weir from the
//! files), partition pruning, DDL kept in the metastore, the round trip with Spark, and a
//! metastore that stops or hangs.
//!
//! Environment (from scripts/hive-peer.sh): `WEIR_HMS_URI`, `WEIR_HIVE_EXPECTED`,
//! `WEIR_HIVE_WAREHOUSE`, `WEIR_HIVE_SPARK_PYTHON`, `WEIR_HIVE_PEER_HOME`. Without
//! `WEIR_HMS_URI` the tests print "skipped: ..." unless `WEIR_REQUIRE_PEERS=1`, when they fail.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use futures::TryStreamExt;
use serde_json::{Value, json};
use weir::catalog::hive::HiveCatalog;
use weir::{Session, SessionOptions, StatementResult};

struct Peer {
    uri: String,
    expected: Value,
    warehouse: String,
}

fn peer(test: &str) -> Option<Peer> {
    let Ok(uri) = std::env::var("WEIR_HMS_URI") else {
        if std::env::var("WEIR_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "{test}: WEIR_HMS_URI is not set but WEIR_REQUIRE_PEERS=1 (run scripts/test.sh)"
            );
        }
        eprintln!(
            "skipped: {test} needs a Hive Metastore (WEIR_HMS_URI; see scripts/hive-peer.sh)"
        );
        return None;
    };
    let path = std::env::var("WEIR_HIVE_EXPECTED").expect("WEIR_HIVE_EXPECTED with WEIR_HMS_URI");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read expected.json"))
            .expect("expected.json is JSON");
    let warehouse = std::env::var("WEIR_HIVE_WAREHOUSE").unwrap_or_default();
    Some(Peer {
        uri,
        expected,
        warehouse,
    })
}

async fn session(catalog: &str, uri: &str) -> Session {
    let mut s = Session::open(SessionOptions { data_dir: None })
        .await
        .unwrap();
    s.execute_sql(&format!(
        "CREATE CATALOG {catalog} WITH ('type' = 'hive', 'uri' = '{uri}')"
    ))
    .await
    .unwrap();
    s
}

async fn batches(s: &mut Session, sql: &str) -> weir::Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for r in s.execute_sql(sql).await? {
        if let StatementResult::Rows(rows) = r {
            out = rows.stream.try_collect().await.map_err(weir::Error::from)?;
        }
    }
    Ok(out)
}

/// The rows of the last statement, every value as text (NULL as "NULL").
async fn query(s: &mut Session, sql: &str) -> Vec<Vec<String>> {
    let bs = batches(s, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = Vec::new();
    for b in &bs {
        for i in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| match to_json(c, i) {
                        Value::String(s) => s,
                        Value::Null => "NULL".to_string(),
                        v => v.to_string(),
                    })
                    .collect(),
            );
        }
    }
    rows
}

async fn error(s: &mut Session, sql: &str) -> weir::Error {
    match batches(s, sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => e,
    }
}

/// A value as expected.json spells it: decimals and timestamps as strings (timestamps with six
/// fraction digits), maps and structs as objects.
fn to_json(a: &ArrayRef, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Boolean => json!(a.as_boolean().value(i)),
        DataType::Int8 => json!(
            a.as_primitive::<datafusion::arrow::datatypes::Int8Type>()
                .value(i)
        ),
        DataType::Int16 => {
            json!(
                a.as_primitive::<datafusion::arrow::datatypes::Int16Type>()
                    .value(i)
            )
        }
        DataType::Int32 => {
            json!(
                a.as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                    .value(i)
            )
        }
        DataType::Int64 => {
            json!(
                a.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(i)
            )
        }
        DataType::Float32 => {
            json!(
                a.as_primitive::<datafusion::arrow::datatypes::Float32Type>()
                    .value(i) as f64
            )
        }
        DataType::Float64 => {
            json!(
                a.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                    .value(i)
            )
        }
        DataType::Decimal128(_, scale) => {
            let v = a
                .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                .value(i);
            json!(format_decimal(v, *scale as u32))
        }
        DataType::Utf8 => json!(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => json!(a.as_string::<i64>().value(i)),
        DataType::Utf8View => json!(a.as_string_view().value(i)),
        DataType::Date32 => {
            let days = a
                .as_primitive::<datafusion::arrow::datatypes::Date32Type>()
                .value(i);
            let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                + chrono::Duration::days(days as i64);
            json!(d.format("%Y-%m-%d").to_string())
        }
        DataType::Timestamp(unit, _) => {
            use datafusion::arrow::datatypes::*;
            let nanos: i128 = match unit {
                TimeUnit::Second => {
                    a.as_primitive::<TimestampSecondType>().value(i) as i128 * 1_000_000_000
                }
                TimeUnit::Millisecond => {
                    a.as_primitive::<TimestampMillisecondType>().value(i) as i128 * 1_000_000
                }
                TimeUnit::Microsecond => {
                    a.as_primitive::<TimestampMicrosecondType>().value(i) as i128 * 1_000
                }
                TimeUnit::Nanosecond => {
                    a.as_primitive::<TimestampNanosecondType>().value(i) as i128
                }
            };
            let secs = nanos.div_euclid(1_000_000_000) as i64;
            let sub = nanos.rem_euclid(1_000_000_000) as u32;
            let t = chrono::DateTime::from_timestamp(secs, sub)
                .unwrap()
                .naive_utc();
            json!(t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let v = l.value(i);
            json!((0..v.len()).map(|j| to_json(&v, j)).collect::<Vec<_>>())
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            let v = l.value(i);
            json!((0..v.len()).map(|j| to_json(&v, j)).collect::<Vec<_>>())
        }
        DataType::Map(_, _) => {
            let m = a.as_map();
            let entries = m.value(i);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut obj = serde_json::Map::new();
            for j in 0..entries.len() {
                let k = match to_json(keys, j) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                obj.insert(k, to_json(values, j));
            }
            Value::Object(obj)
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let mut obj = serde_json::Map::new();
            for (f, c) in fields.iter().zip(s.columns()) {
                obj.insert(f.name().clone(), to_json(c, i));
            }
            Value::Object(obj)
        }
        other => panic!("no JSON form for {other} in this test"),
    }
}

fn format_decimal(v: i128, scale: u32) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let p = 10i128.pow(scale);
    let sign = if v < 0 { "-" } else { "" };
    let v = v.abs();
    format!("{sign}{}.{:0width$}", v / p, v % p, width = scale as usize)
}

/// A decimal string as (unscaled, scale).
fn parse_decimal(s: &str) -> (i128, u32) {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let v: i128 = format!("{int}{frac}").parse().unwrap();
    (if neg { -v } else { v }, frac.len() as u32)
}

/// All rows of a table as JSON objects.
async fn table_rows(s: &mut Session, table: &str) -> Vec<serde_json::Map<String, Value>> {
    let bs = batches(s, &format!("SELECT * FROM {table}"))
        .await
        .unwrap_or_else(|e| panic!("SELECT * FROM {table}: {e}"));
    let mut rows = Vec::new();
    for b in &bs {
        for i in 0..b.num_rows() {
            let mut row = serde_json::Map::new();
            for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                row.insert(f.name().clone(), to_json(c, i));
            }
            rows.push(row);
        }
    }
    rows
}

/// Checks one `expected` entry (`sum_c_int`, `null_counts`, `max_c_timestamp`, ...) against the
/// rows Weir read.
fn check_expected(table: &str, key: &str, want: &Value, rows: &[serde_json::Map<String, Value>]) {
    let col = |c: &str| -> Vec<&Value> {
        rows.iter()
            .map(|r| r.get(c).unwrap_or_else(|| panic!("{table}: no column {c}")))
            .filter(|v| !v.is_null())
            .collect()
    };
    let got: Value = match key {
        "row_count" => json!(rows.len()),
        "null_counts" => {
            let mut m = serde_json::Map::new();
            for c in want.as_object().unwrap().keys() {
                m.insert(c.clone(), json!(rows.len() - col(c).len()));
            }
            Value::Object(m)
        }
        "partitions" => return, // checked by partition_counts_match_expected
        "sum_array_sizes" => json!(
            col("c_array")
                .iter()
                .map(|v| v.as_array().unwrap().len())
                .sum::<usize>()
        ),
        "sum_array_elements" => json!(
            col("c_array")
                .iter()
                .flat_map(|v| v.as_array().unwrap().iter().filter_map(Value::as_i64))
                .sum::<i64>()
        ),
        "sum_map_sizes" => json!(
            col("c_map")
                .iter()
                .map(|v| v.as_object().unwrap().len())
                .sum::<usize>()
        ),
        "sum_map_values" => json!(
            col("c_map")
                .iter()
                .flat_map(|v| v.as_object().unwrap().values().filter_map(Value::as_i64))
                .sum::<i64>()
        ),
        "sum_struct_a" => json!(
            col("c_struct")
                .iter()
                .filter_map(|v| v["a"].as_i64())
                .sum::<i64>()
        ),
        _ => {
            let (op, c) = if let Some(c) = key.strip_prefix("sum_") {
                ("sum", c)
            } else if let Some(c) = key.strip_prefix("min_") {
                ("min", c)
            } else if let Some(c) = key.strip_prefix("max_") {
                ("max", c)
            } else if let Some(c) = key.strip_prefix("count_distinct_") {
                ("distinct", c)
            } else if let Some(c) = key.strip_prefix("null_count_") {
                ("nulls", c)
            } else if let Some(c) = key
                .strip_prefix("count_")
                .and_then(|c| c.strip_suffix("_true"))
            {
                ("true", c)
            } else {
                panic!("{table}: unknown expected key {key}")
            };
            let values = col(c);
            match (op, want) {
                ("nulls", _) => json!(rows.len() - values.len()),
                ("true", _) => json!(values.iter().filter(|v| v.as_bool() == Some(true)).count()),
                ("distinct", _) => {
                    let set: std::collections::BTreeSet<String> =
                        values.iter().map(|v| v.to_string()).collect();
                    json!(set.len())
                }
                ("sum", Value::String(w)) => {
                    let scale = parse_decimal(w).1;
                    let total: i128 = values
                        .iter()
                        .map(|v| parse_decimal(v.as_str().unwrap()).0)
                        .sum();
                    json!(format_decimal(total, scale))
                }
                ("sum", Value::Number(n)) if n.is_f64() => {
                    json!(values.iter().map(|v| v.as_f64().unwrap()).sum::<f64>())
                }
                ("sum", _) => json!(values.iter().map(|v| v.as_i64().unwrap()).sum::<i64>()),
                (op, Value::String(_)) if c.contains("decimal") || c == "amount" => {
                    let best = values
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .max_by_key(|v| {
                            let d = parse_decimal(v).0;
                            if op == "min" { -d } else { d }
                        })
                        .unwrap();
                    json!(best)
                }
                (op, Value::String(_)) => {
                    let it = values.iter().map(|v| v.as_str().unwrap().to_string());
                    json!(if op == "min" { it.min() } else { it.max() })
                }
                (op, _) => {
                    let it = values.iter().map(|v| v.as_i64().unwrap());
                    json!(if op == "min" { it.min() } else { it.max() })
                }
            }
        }
    };
    assert_eq!(&got, want, "{table}: {key}");
}

const SAMPLE_TABLES: &[&str] = &[
    "types_parquet",
    "types_orc",
    "types_text",
    "csv_text_external",
    "events_partitioned",
    "spark_datasource_parquet",
    "types_parquet_view",
];

#[tokio::test]
async fn catalog_commands_show_the_sample_database() {
    let Some(p) = peer("catalog_commands_show_the_sample_database") else {
        return;
    };
    let mut s = session("h", &p.uri).await;
    s.execute_sql("USE CATALOG h").await.unwrap();
    let dbs: Vec<String> = query(&mut s, "SHOW DATABASES")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert!(
        dbs.contains(&"default".to_string()) && dbs.contains(&"hive_peer".to_string()),
        "{dbs:?}"
    );
    s.execute_sql("USE hive_peer").await.unwrap();
    let tables: Vec<String> = query(&mut s, "SHOW TABLES")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    for t in SAMPLE_TABLES {
        assert!(
            tables.contains(&t.to_string()),
            "{t} missing from {tables:?}"
        );
    }
    let views: Vec<String> = query(&mut s, "SHOW VIEWS")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(views, ["types_parquet_view"]);

    // Every column of every sample table, with its type mapped from Hive's.
    for (name, t) in p.expected["tables"].as_object().unwrap() {
        let m = &t["metastore"];
        if m["table_type"] == "VIRTUAL_VIEW" {
            continue;
        }
        let text = &query(&mut s, &format!("SHOW CREATE TABLE {name}")).await[0][0];
        assert!(text.contains("'connector' = 'hive'"), "{text}");
        let want_format = if t["format"] == "textfile" {
            "textfile"
        } else {
            t["format"].as_str().unwrap()
        };
        assert!(
            text.contains(&format!("'stored-as' = '{want_format}'")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "'location' = '{}'",
                m["location"].as_str().unwrap()
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "'table-type' = '{}'",
                m["table_type"].as_str().unwrap()
            )),
            "{text}"
        );
        for c in m["columns"]
            .as_array()
            .unwrap()
            .iter()
            .chain(m["partition_keys"].as_array().unwrap())
        {
            let (col, hive_type) = (c[0].as_str().unwrap(), c[1].as_str().unwrap());
            let weir_type = match hive_type {
                "int" => "INT",
                "bigint" => "BIGINT",
                "double" => "DOUBLE",
                "decimal(10,2)" => "DECIMAL(10, 2)",
                "string" => "STRING",
                "varchar(20)" => "VARCHAR(20)",
                "date" => "DATE",
                "timestamp" => "TIMESTAMP(6)",
                "boolean" => "BOOLEAN",
                "array<int>" => "ARRAY<INT>",
                "map<string,int>" => "MAP<STRING, INT>",
                "struct<a:int,b:string>" => "ROW<`a` INT, `b` STRING>",
                other => panic!("type {other} not in this test's list"),
            };
            assert!(
                text.contains(&format!("`{col}` {weir_type}")),
                "{col} {weir_type} in {text}"
            );
        }
    }
    let text = &query(&mut s, "SHOW CREATE TABLE events_partitioned").await[0][0];
    assert!(text.contains("PARTITIONED BY (`dt`, `hr`)"), "{text}");
    let text = &query(&mut s, "SHOW CREATE TABLE csv_text_external").await[0][0];
    assert!(text.contains("'serde.field.delim' = ','"), "{text}");
    // Three-part names from another catalog.
    s.execute_sql("USE CATALOG default_catalog").await.unwrap();
    let tables = query(&mut s, "SHOW TABLES FROM h.hive_peer").await;
    assert_eq!(tables.len(), SAMPLE_TABLES.len(), "{tables:?}");
    let err = error(&mut s, "SHOW TABLES FROM h.no_such_db").await;
    assert!(err.message.contains("does not exist"), "{err}");
}

#[tokio::test]
async fn metastore_descriptions_and_partition_listing_match_the_metastore() {
    let Some(p) = peer("metastore_descriptions_and_partition_listing_match_the_metastore") else {
        return;
    };
    let options = BTreeMap::from([
        ("type".to_string(), "hive".to_string()),
        ("uri".to_string(), p.uri.clone()),
    ]);
    let catalog = HiveCatalog::new("h", &options).unwrap();
    for (name, t) in p.expected["tables"].as_object().unwrap() {
        let m = &t["metastore"];
        let desc = catalog.table_desc("hive_peer", name).await.unwrap();
        if m["table_type"] == "VIRTUAL_VIEW" {
            assert!(desc.is_none(), "{name} is a view");
            continue;
        }
        let desc = desc.unwrap();
        assert_eq!(desc.name, format!("h.hive_peer.{name}"));
        assert_eq!(desc.location, m["location"].as_str().unwrap(), "{name}");
        assert_eq!(
            format!("{:?}", desc.format).to_lowercase(),
            match t["format"].as_str().unwrap() {
                "textfile" => "text",
                f => f,
            },
            "{name}"
        );
        let keys = m["partition_keys"].as_array().unwrap();
        assert_eq!(desc.partition_key_count, keys.len());
        let names: Vec<&str> = desc
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let want: Vec<&str> = m["columns"]
            .as_array()
            .unwrap()
            .iter()
            .chain(keys)
            .map(|c| c[0].as_str().unwrap())
            .collect();
        assert_eq!(names, want, "{name}");
        for (k, v) in m["serde_params"].as_object().unwrap() {
            assert_eq!(
                desc.serde_params.get(k).map(String::as_str),
                v.as_str(),
                "{name} {k}"
            );
        }
    }

    // Partition listing, all and pruned by the metastore with get_partitions_by_filter.
    let access = catalog
        .partition_access("hive_peer", "events_partitioned")
        .await
        .unwrap();
    let all = access.list_partitions(None).await.unwrap();
    let want: Vec<(Vec<String>, String)> = p.expected["tables"]["events_partitioned"]["metastore"]
        ["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect(),
                x["location"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let got: Vec<(Vec<String>, String)> = all
        .iter()
        .map(|p| (p.values.clone(), p.location.clone()))
        .collect();
    assert_eq!(got, want);
    let values = |ps: Vec<weir::connectors::hive::HivePartition>| -> Vec<String> {
        ps.into_iter().map(|p| p.values.join("/")).collect()
    };
    assert_eq!(
        values(
            access
                .list_partitions(Some("dt = \"2024-01-02\""))
                .await
                .unwrap()
        ),
        ["2024-01-02/0", "2024-01-02/1"]
    );
    assert_eq!(
        values(
            access
                .list_partitions(Some("dt >= \"2024-01-02\" and hr = 1"))
                .await
                .unwrap()
        ),
        ["2024-01-02/1", "2024-01-03/1"]
    );
    assert_eq!(
        values(access.list_partitions(Some("hr = 0")).await.unwrap()).len(),
        3
    );
    let err = access
        .list_partitions(Some("dt === nonsense"))
        .await
        .unwrap_err();
    assert!(err.message.contains("Hive Metastore"), "{err}");
    let err = catalog
        .partition_access("hive_peer", "nope")
        .await
        .unwrap_err();
    assert!(
        err.message
            .contains("`h`.`hive_peer`.`nope` does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn sample_tables_read_from_the_files_match_expected() {
    let Some(p) = peer("sample_tables_read_from_the_files_match_expected") else {
        return;
    };
    let mut s = session("h", &p.uri).await;
    for (name, t) in p.expected["tables"].as_object().unwrap() {
        let table = format!("h.hive_peer.{name}");
        let count = query(&mut s, &format!("SELECT COUNT(*) FROM {table}")).await;
        assert_eq!(
            count[0][0],
            t["expected"]["row_count"].to_string(),
            "{table}"
        );
        let rows = table_rows(&mut s, &table).await;
        for (key, want) in t["expected"].as_object().unwrap() {
            check_expected(name, key, want, &rows);
        }
        let by_id: HashMap<String, &serde_json::Map<String, Value>> =
            rows.iter().map(|r| (r["id"].to_string(), r)).collect();
        for sample in t["sample_rows"].as_array().unwrap() {
            let got = by_id
                .get(&sample["id"].to_string())
                .unwrap_or_else(|| panic!("{table}: no row with id {}", sample["id"]));
            // Sample rows of a table with fewer columns (csv_text_external) carry the wider
            // table's columns too: compare the table's own columns.
            let want: serde_json::Map<String, Value> = got
                .keys()
                .map(|k| {
                    let v = sample
                        .get(k)
                        .unwrap_or_else(|| panic!("{table}: sample has no {k}"));
                    (k.clone(), v.clone())
                })
                .collect();
            assert_eq!(*got, &want, "{table}");
        }
    }
}

#[tokio::test]
async fn partition_pruning_reads_only_matching_partitions() {
    let Some(p) = peer("partition_pruning_reads_only_matching_partitions") else {
        return;
    };
    let mut s = session("h", &p.uri).await;
    let t = "h.hive_peer.events_partitioned";
    for part in p.expected["tables"]["events_partitioned"]["expected"]["partitions"]
        .as_array()
        .unwrap()
    {
        let (dt, hr) = (
            part["values"][0].as_str().unwrap(),
            part["values"][1].as_str().unwrap(),
        );
        let rows = query(
            &mut s,
            &format!("SELECT COUNT(*), CAST(SUM(amount) AS STRING) FROM {t} WHERE dt = '{dt}' AND hr = {hr}"),
        )
        .await;
        assert_eq!(rows[0][0], part["row_count"].to_string(), "{dt}/{hr}");
        assert_eq!(
            rows[0][1],
            part["sum_amount"].as_str().unwrap(),
            "{dt}/{hr}"
        );
    }
    let plan = |rows: Vec<Vec<String>>| rows.into_iter().flatten().collect::<Vec<_>>().join("\n");
    let text = plan(
        query(
            &mut s,
            &format!("EXPLAIN SELECT COUNT(*) FROM {t} WHERE dt = '2024-01-02'"),
        )
        .await,
    );
    assert!(text.contains("partitions=2/"), "{text}");
    let text = plan(
        query(
            &mut s,
            &format!("EXPLAIN SELECT id FROM {t} WHERE dt = '2024-01-03' AND hr = 1"),
        )
        .await,
    );
    assert!(text.contains("partitions=1/"), "{text}");
    let text = plan(query(&mut s, &format!("EXPLAIN SELECT id FROM {t}")).await);
    assert!(text.contains("partitions=6/6"), "{text}");
}

#[tokio::test]
async fn hive_views_expand_and_unplannable_views_name_themselves() {
    let Some(p) = peer("hive_views_expand_and_unplannable_views_name_themselves") else {
        return;
    };
    let mut s = session("h", &p.uri).await;
    s.execute_sql("CREATE DATABASE IF NOT EXISTS h.weir_views")
        .await
        .unwrap();
    let options = BTreeMap::from([
        ("type".to_string(), "hive".to_string()),
        ("uri".to_string(), p.uri.clone()),
    ]);
    // A view with HiveQL that Weir cannot plan, stored as Hive would (through the catalog API).
    let catalog = HiveCatalog::new("h", &options).unwrap();
    use weir::catalog::{Catalog, CatalogTable, ViewDef};
    let _ = catalog
        .drop_table("weir_views", "hiveql_view", true, true)
        .await;
    catalog
        .create_table(
            "weir_views",
            "hiveql_view",
            CatalogTable::View(ViewDef {
                query: "SELECT x FROM hive_peer.types_parquet LATERAL VIEW explode(c_array) e AS x"
                    .into(),
                columns: vec![],
                comment: None,
            }),
            false,
        )
        .await
        .unwrap();
    let err = error(&mut s, "SELECT * FROM h.weir_views.hiveql_view").await;
    let text = format!("{err} {:?}", err.context);
    assert!(text.contains("hiveql_view"), "{text}");
    // The sample view (stored by Spark) reads through to its table.
    let rows = query(
        &mut s,
        "SELECT COUNT(*) FROM h.hive_peer.types_parquet_view",
    )
    .await;
    assert_eq!(
        rows[0][0],
        p.expected["tables"]["types_parquet_view"]["expected"]["row_count"].to_string()
    );
}

#[tokio::test]
async fn ddl_is_kept_in_the_metastore() {
    let Some(p) = peer("ddl_is_kept_in_the_metastore") else {
        return;
    };
    let mut s = session("h", &p.uri).await;
    s.execute_sql("DROP DATABASE IF EXISTS h.weir_ddl CASCADE")
        .await
        .unwrap();
    s.execute_sql("CREATE DATABASE h.weir_ddl COMMENT 'made by weir'")
        .await
        .unwrap();
    s.execute_sql("USE h.weir_ddl").await.unwrap();

    // A Hive table (Parquet by default), partitioned.
    s.execute_sql(
        "CREATE TABLE sales (id BIGINT, item STRING COMMENT 'what', price DECIMAL(12, 3), \
         tags ARRAY<STRING>, attrs MAP<STRING, DOUBLE>, who ROW<name STRING, age INT>, \
         at TIMESTAMP(6), day DATE, ok BOOLEAN, small TINYINT, mid SMALLINT, f FLOAT, \
         code CHAR(4), label VARCHAR(30), raw BYTES, dt STRING) PARTITIONED BY (dt)",
    )
    .await
    .unwrap();
    let text = &query(&mut s, "SHOW CREATE TABLE sales").await[0][0];
    for part in [
        "`item` STRING COMMENT 'what'",
        "`price` DECIMAL(12, 3)",
        "`tags` ARRAY<STRING>",
        "`attrs` MAP<STRING, DOUBLE>",
        "`who` ROW<`name` STRING, `age` INT>",
        "`at` TIMESTAMP(6)",
        "`code` CHAR(4)",
        "`label` VARCHAR(30)",
        "`raw` BYTES",
        "`small` TINYINT",
        "PARTITIONED BY (`dt`)",
        "'stored-as' = 'parquet'",
        "'table-type' = 'MANAGED_TABLE'",
        "/weir_ddl.db/sales'",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    let tables = query(&mut s, "SHOW TABLES").await;
    assert_eq!(tables, [["sales"]]);
    let err = error(&mut s, "CREATE TABLE sales (id INT)").await;
    assert!(err.message.contains("already exists"), "{err}");
    s.execute_sql("CREATE TABLE IF NOT EXISTS sales (id INT)")
        .await
        .unwrap();

    // What a Hive table cannot hold is refused with the reason.
    let err = error(&mut s, "CREATE TABLE bad1 (id INT, t TIMESTAMP_LTZ(3))").await;
    assert!(
        format!("{err} {:?}", err.context).contains("TIMESTAMP_LTZ(3)"),
        "{err}"
    );
    let err = error(
        &mut s,
        "CREATE TABLE bad2 (id INT, dt STRING, v INT) PARTITIONED BY (dt)",
    )
    .await;
    assert!(err.message.contains("must be the last columns"), "{err}");
    let err = error(
        &mut s,
        "CREATE TABLE bad3 (id INT) WITH ('stored-as' = 'avro')",
    )
    .await;
    assert!(err.message.contains("parquet, orc, textfile"), "{err}");
    let err = error(&mut s, "CREATE TABLE bad4 (id INT) WITH ('colour' = 'red')").await;
    assert!(err.message.contains("unknown option 'colour'"), "{err}");
    let err = error(&mut s, "CREATE TABLE bad5 (id INT, d AS id * 2)").await;
    assert!(err.message.contains("computed column"), "{err}");
    s.execute_sql("CREATE TABLE orc_t (id INT) WITH ('stored-as' = 'orc')")
        .await
        .unwrap();
    let text = &query(&mut s, "SHOW CREATE TABLE orc_t").await[0][0];
    assert!(text.contains("'stored-as' = 'orc'"), "{text}");

    // A generic (Weir connector) table and a view over it, kept in table parameters.
    s.execute_sql(
        "CREATE TABLE gen (id BIGINT NOT NULL, name STRING, ts TIMESTAMP(3), twice AS id * 2, \
         WATERMARK FOR ts AS ts - INTERVAL '1' SECOND, PRIMARY KEY (id) NOT ENFORCED) \
         COMMENT 'generic' WITH ('connector' = 'datagen', 'number-of-rows' = '5', \
         'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '5')",
    )
    .await
    .unwrap();
    s.execute_sql("CREATE VIEW gen_v AS SELECT id, twice FROM gen WHERE id > 2")
        .await
        .unwrap();
    let gen_text = query(&mut s, "SHOW CREATE TABLE gen").await[0][0].clone();
    assert!(gen_text.contains("'connector' = 'datagen'"), "{gen_text}");
    assert!(gen_text.contains("`id` BIGINT NOT NULL"), "{gen_text}");
    assert!(gen_text.contains("WATERMARK FOR `ts`"), "{gen_text}");
    let rows = query(&mut s, "SELECT id, twice FROM gen_v ORDER BY id").await;
    assert_eq!(rows, [["3", "6"], ["4", "8"], ["5", "10"]]);

    // Another session (another "team member") sees the same definitions.
    let mut other = session("shared", &p.uri).await;
    let other_text = query(&mut other, "SHOW CREATE TABLE shared.weir_ddl.gen").await[0][0].clone();
    assert_eq!(other_text.replace("`shared`", "`h`"), gen_text);
    let rows = query(&mut other, "SELECT COUNT(*) FROM shared.weir_ddl.gen_v").await;
    assert_eq!(rows, [["3"]]);
    let views = query(&mut other, "SHOW VIEWS FROM shared.weir_ddl").await;
    assert_eq!(views, [["gen_v"]]);

    // ALTER and RENAME of generic tables; DROP of everything.
    s.execute_sql("ALTER TABLE gen SET ('number-of-rows' = '3', 'fields.id.end' = '3')")
        .await
        .unwrap();
    let rows = query(&mut s, "SELECT COUNT(*) FROM gen").await;
    assert_eq!(rows, [["3"]]);
    s.execute_sql("ALTER TABLE gen RENAME TO gen2")
        .await
        .unwrap();
    let err = error(&mut s, "DROP VIEW gen2").await;
    assert!(err.message.contains("is a table"), "{err}");
    let err = error(&mut other, "DROP DATABASE shared.weir_ddl").await;
    assert!(err.message.contains("not empty"), "{err}");
    for stmt in [
        "DROP TABLE gen2",
        "DROP VIEW gen_v",
        "DROP TABLE orc_t",
        "DROP TABLE sales",
    ] {
        s.execute_sql(stmt)
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    assert!(query(&mut s, "SHOW TABLES").await.is_empty());
    let err = error(&mut s, "DROP TABLE sales").await;
    assert!(err.message.contains("does not exist"), "{err}");
    s.execute_sql("DROP TABLE IF EXISTS sales").await.unwrap();
    s.execute_sql("USE CATALOG default_catalog").await.unwrap();
    s.execute_sql("DROP DATABASE h.weir_ddl").await.unwrap();
    let dbs = query(&mut s, "SHOW DATABASES IN h").await;
    assert!(!dbs.contains(&vec!["weir_ddl".to_string()]), "{dbs:?}");
    assert!(!p.warehouse.is_empty());
    assert!(
        !Path::new(&p.warehouse)
            .join("weir_ddl.db")
            .join("sales")
            .exists()
    );
}

fn spark(p: &Peer, scratch: &Path, statements: &[&str]) -> Value {
    let python = std::env::var("WEIR_HIVE_SPARK_PYTHON").expect("WEIR_HIVE_SPARK_PYTHON");
    let script = manifest_dir().join("catalogs/hive/spark-sql.py");
    let out = Command::new(python)
        .arg(script)
        .arg("--uri")
        .arg(&p.uri)
        .arg("--warehouse")
        .arg(&p.warehouse)
        .arg("--scratch")
        .arg(scratch)
        .args(statements)
        .output()
        .expect("run spark-sql.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "spark-sql.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("spark-sql.py prints JSON")
}

#[tokio::test]
async fn spark_reads_what_weir_wrote_and_weir_reads_what_spark_wrote() {
    let Some(p) = peer("spark_reads_what_weir_wrote_and_weir_reads_what_spark_wrote") else {
        return;
    };
    let mut s = session("h", &p.uri).await;
    s.execute_sql("DROP DATABASE IF EXISTS h.weir_rt CASCADE")
        .await
        .unwrap();
    s.execute_sql("CREATE DATABASE h.weir_rt").await.unwrap();
    s.execute_sql(
        "CREATE TABLE h.weir_rt.orders (id INT, customer STRING, amount DECIMAL(10, 2), \
         ts TIMESTAMP(6), dt STRING) PARTITIONED BY (dt)",
    )
    .await
    .unwrap();
    // Dynamic partitions.
    s.execute_sql(
        "INSERT INTO h.weir_rt.orders VALUES \
         (1, 'alice', 10.50, TIMESTAMP '2024-01-01 10:00:00.250', '2024-01-01'), \
         (2, 'bob', 20.00, TIMESTAMP '2024-01-01 11:00:00', '2024-01-01'), \
         (3, 'café', -3.25, TIMESTAMP '2024-01-02 12:30:00', '2024-01-02')",
    )
    .await
    .unwrap();
    // A static partition.
    s.execute_sql(
        "INSERT INTO h.weir_rt.orders PARTITION (dt = '2024-01-03') \
         VALUES (4, 'dora', 7.00, TIMESTAMP '2024-01-03 00:00:01')",
    )
    .await
    .unwrap();
    s.execute_sql("CREATE TABLE h.weir_rt.from_spark (id INT, name STRING, score DOUBLE)")
        .await
        .unwrap();
    let weir_view = query(
        &mut s,
        "SELECT id, customer, CAST(amount AS STRING), dt FROM h.weir_rt.orders ORDER BY id",
    )
    .await;
    assert_eq!(weir_view.len(), 4);

    let scratch = tempfile::tempdir().unwrap();
    let back = spark(
        &p,
        scratch.path(),
        &[
            "INSERT INTO weir_rt.from_spark VALUES (1, 'x', 0.5), (2, NULL, 2.25), (3, 'données', -1.0)",
            "SELECT id, customer, CAST(amount AS STRING), CAST(ts AS STRING), dt FROM weir_rt.orders ORDER BY id",
        ],
    );
    assert_eq!(
        back["rows"],
        json!([
            [1, "alice", "10.50", "2024-01-01 10:00:00.25", "2024-01-01"],
            [2, "bob", "20.00", "2024-01-01 11:00:00", "2024-01-01"],
            [3, "café", "-3.25", "2024-01-02 12:30:00", "2024-01-02"],
            [4, "dora", "7.00", "2024-01-03 00:00:01", "2024-01-03"]
        ])
    );
    let parts = HiveCatalog::new(
        "h",
        &BTreeMap::from([
            ("type".to_string(), "hive".to_string()),
            ("uri".to_string(), p.uri.clone()),
        ]),
    )
    .unwrap()
    .partition_access("weir_rt", "orders")
    .await
    .unwrap()
    .list_partitions(None)
    .await
    .unwrap();
    assert_eq!(
        parts.iter().map(|p| p.values.join("/")).collect::<Vec<_>>(),
        ["2024-01-01", "2024-01-02", "2024-01-03"]
    );

    let rows = query(
        &mut s,
        "SELECT id, name, score FROM h.weir_rt.from_spark ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        [
            ["1", "x", "0.5"],
            ["2", "NULL", "2.25"],
            ["3", "données", "-1.0"]
        ]
    );
    s.execute_sql("DROP DATABASE h.weir_rt CASCADE")
        .await
        .unwrap();
}

/// Starts a private metastore (its own Derby database) and returns its data dir and URI.
fn start_private_metastore(dir: &Path) -> String {
    let peer_dir = manifest_dir().join("catalogs/hive/peer");
    let mut cmd = Command::new(peer_dir.join("start-metastore.sh"));
    cmd.arg(dir).env("HMS_PORT", "0");
    if let Ok(home) = std::env::var("WEIR_HIVE_PEER_HOME") {
        cmd.env("HIVE_PEER_HOME", home);
    }
    let out = cmd.output().expect("run start-metastore.sh");
    assert!(
        out.status.success(),
        "start-metastore.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = std::fs::read_to_string(dir.join("metastore.env")).unwrap();
    env.lines()
        .find_map(|l| l.strip_prefix("HMS_URI="))
        .unwrap()
        .trim()
        .to_string()
}

fn stop_private_metastore(dir: &Path) {
    let peer_dir = manifest_dir().join("catalogs/hive/peer");
    let mut cmd = Command::new(peer_dir.join("stop-metastore.sh"));
    cmd.arg(dir);
    if let Ok(home) = std::env::var("WEIR_HIVE_PEER_HOME") {
        cmd.env("HIVE_PEER_HOME", home);
    }
    let _ = cmd.output();
}

struct StopOnDrop(PathBuf);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        stop_private_metastore(&self.0);
    }
}

#[tokio::test]
async fn a_stopped_metastore_gives_a_clear_error_and_other_catalogs_keep_working() {
    let Some(_p) = peer("a_stopped_metastore_gives_a_clear_error_and_other_catalogs_keep_working")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let uri = start_private_metastore(dir.path());
    let guard = StopOnDrop(dir.path().to_path_buf());
    let mut s = session("h", &uri).await;
    s.execute_sql("CREATE CATALOG mem WITH ('type' = 'generic_in_memory')")
        .await
        .unwrap();
    s.execute_sql("CREATE DATABASE h.d1").await.unwrap();
    s.execute_sql("CREATE TABLE mem.default_database.t (x INT) WITH ('connector' = 'datagen', 'number-of-rows' = '4')")
        .await
        .unwrap();
    let dbs = query(&mut s, "SHOW DATABASES IN h").await;
    assert!(dbs.contains(&vec!["d1".to_string()]), "{dbs:?}");
    stop_private_metastore(dir.path());
    drop(guard);

    let started = Instant::now();
    s.execute_sql("USE CATALOG h").await.unwrap();
    let err = error(&mut s, "SHOW TABLES FROM d1").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(err.message.contains("Hive Metastore"), "{err}");
    assert!(
        err.message.contains(uri.trim_start_matches("thrift://")),
        "{err}"
    );
    let err = error(&mut s, "SELECT * FROM h.d1.t").await;
    assert!(err.message.contains("Hive Metastore"), "{err}");
    // The session still works with the other catalogs.
    let rows = query(&mut s, "SELECT COUNT(*) FROM mem.default_database.t").await;
    assert_eq!(rows, [["4"]]);
    s.execute_sql("USE CATALOG mem").await.unwrap();
    assert_eq!(query(&mut s, "SHOW TABLES").await, [["t"]]);
}

/// A "metastore" that accepts connections and never answers: calls end at the catalog's
/// timeout. Needs no peer.
#[tokio::test]
async fn an_unresponsive_metastore_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            keep.lock().await.push(sock);
        }
    });
    let mut s = Session::open(SessionOptions { data_dir: None })
        .await
        .unwrap();
    s.execute_sql(&format!(
        "CREATE CATALOG h WITH ('type' = 'hive', 'uri' = 'thrift://127.0.0.1:{port}', 'timeout' = '1 s')"
    ))
    .await
    .unwrap();
    let started = Instant::now();
    let err = error(&mut s, "SHOW DATABASES IN h").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(err.message.contains("did not answer within 1s"), "{err}");
    // Nothing listens here at all: refused at once, with the address.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = free.local_addr().unwrap().port();
    drop(free);
    s.execute_sql(&format!(
        "CREATE CATALOG down WITH ('type' = 'hive', 'uri' = 'thrift://127.0.0.1:{closed}')"
    ))
    .await
    .unwrap();
    let err = error(&mut s, "SHOW TABLES FROM down.default").await;
    assert!(
        err.message.contains(&format!("127.0.0.1:{closed}")),
        "{err}"
    );
    let rows = query(&mut s, "SELECT 1 + 1").await;
    assert_eq!(rows, [["2"]]);
}

#[tokio::test]
async fn hive_conf_dir_gives_the_metastore_uri() {
    let Some(p) = peer("hive_conf_dir_gives_the_metastore_uri") else {
        return;
    };
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("hive-site.xml"),
        format!(
            "<?xml version=\"1.0\"?>\n<configuration>\n  <property>\n    \
             <name>hive.metastore.uris</name>\n    <value>{}</value>\n  </property>\n  \
             <property><name>hive.metastore.warehouse.dir</name><value>{}</value></property>\n\
             </configuration>\n",
            p.uri, p.warehouse
        ),
    )
    .unwrap();
    let mut s = Session::open(SessionOptions { data_dir: None })
        .await
        .unwrap();
    s.execute_sql(&format!(
        "CREATE CATALOG hc WITH ('type' = 'hive', 'hive-conf-dir' = '{}', 'default-database' = 'hive_peer')",
        conf.path().display()
    ))
    .await
    .unwrap();
    s.execute_sql("USE CATALOG hc").await.unwrap();
    let tables = query(&mut s, "SHOW TABLES").await;
    assert_eq!(tables.len(), SAMPLE_TABLES.len(), "{tables:?}");
    let err = error(
        &mut s,
        "CREATE CATALOG bad WITH ('type' = 'hive', 'hive-conf-dir' = '/nonexistent/conf')",
    )
    .await;
    assert!(
        err.message.contains("/nonexistent/conf/hive-site.xml"),
        "{err}"
    );
}

/// The checkout under test: cargo's run-time `CARGO_MANIFEST_DIR` (the compile-time value can name
/// another checkout when several share one target directory and a build was reused).
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
