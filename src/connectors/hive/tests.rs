//! Tests of the Hive connector over real files written by Hive's SerDes (the fixtures in
//! `catalogs/hive/fixtures/`, made by the Hive peer; see its README), through `hive_table` and a
//! DataFusion session, with an in-memory stand-in for the metastore's partition list (the
//! catalog's integration tests use the real metastore).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::Value;

use super::*;

/// The Hive fixtures of the checkout under test (cargo's run-time `CARGO_MANIFEST_DIR`: the
/// compile-time one can name another checkout when builds share a target directory).
fn fixtures() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("catalogs/hive/fixtures")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The metastore stand-in: a list of partitions; records the filters it was asked for.
#[derive(Debug, Default)]
struct TestAccess {
    partitions: Mutex<Vec<HivePartition>>,
    filters: Mutex<Vec<Option<String>>>,
    fail_add: bool,
}

#[async_trait]
impl HiveMetastoreAccess for TestAccess {
    async fn list_partitions(&self, filter: Option<&str>) -> Result<Vec<HivePartition>> {
        self.filters
            .lock()
            .unwrap()
            .push(filter.map(str::to_string));
        // A superset of the matching partitions, as the contract allows.
        Ok(self.partitions.lock().unwrap().clone())
    }

    async fn add_partitions(&self, partitions: Vec<HivePartition>) -> Result<()> {
        if self.fail_add {
            return Err(Error::external("metastore refused add_partitions"));
        }
        let mut all = self.partitions.lock().unwrap();
        for p in partitions {
            if !all.iter().any(|q| q.values == p.values) {
                all.push(p);
            }
        }
        Ok(())
    }
}

fn url_of(dir: &Path) -> String {
    format!("file:{}", dir.display())
}

/// The descriptor of a fixture table (from the metastore part of expected.json), at `dir`.
fn fixture_desc(name: &str, dir: &Path) -> (HiveTableDesc, Arc<TestAccess>) {
    let md = &expected()["tables"][name]["metastore"];
    let mut fields = Vec::new();
    let cols = md["columns"].as_array().unwrap();
    let keys = md["partition_keys"].as_array().unwrap();
    for c in cols.iter().chain(keys) {
        let t = hive_to_arrow(c[1].as_str().unwrap()).unwrap();
        fields.push(Field::new(c[0].as_str().unwrap(), t, true));
    }
    let params = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let format = HiveFormat::from_storage(
        md["serde"].as_str().unwrap(),
        md["input_format"].as_str().unwrap(),
    )
    .unwrap();
    let partitions = md["partitions"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| HivePartition {
                    values: p["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_string())
                        .collect(),
                    location: url_of(&dir.join(p["location"].as_str().unwrap())),
                })
                .collect()
        })
        .unwrap_or_default();
    let desc = HiveTableDesc {
        name: format!("hive.hive_peer.{name}"),
        location: url_of(dir),
        format,
        serde_params: params(&md["serde_params"]),
        table_params: params(&md["parameters"]),
        schema: Arc::new(Schema::new(fields)),
        partition_key_count: keys.len(),
    };
    let access = Arc::new(TestAccess {
        partitions: Mutex::new(partitions),
        ..TestAccess::default()
    });
    (desc, access)
}

fn session() -> SessionContext {
    // Small batches, so files are read in several batches.
    SessionContext::new_with_config(SessionConfig::new().with_batch_size(97))
}

async fn register(ctx: &SessionContext, table: &str, desc: HiveTableDesc, access: Arc<TestAccess>) {
    let provider = hive_table(desc, access).unwrap();
    ctx.register_table(table, provider).unwrap();
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

/// Each value of the query's single result row, as Arrow displays it ("NULL" for NULL).
async fn one_row(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = rows(ctx, sql).await;
    let batch = batches.iter().find(|b| b.num_rows() > 0).unwrap();
    assert_eq!(batch.num_rows(), 1, "{sql}");
    let options = FormatOptions::default().with_null("NULL");
    batch
        .columns()
        .iter()
        .map(|c| {
            ArrayFormatter::try_new(c.as_ref(), &options)
                .unwrap()
                .value(0)
                .to_string()
        })
        .collect()
}

/// The physical plan of `EXPLAIN <sql>`.
async fn explain(ctx: &SessionContext, sql: &str) -> String {
    let batches = rows(ctx, &format!("EXPLAIN {sql}")).await;
    let mut out = String::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            if b.column(0).as_string::<i32>().value(r) == "physical_plan" {
                out.push_str(b.column(1).as_string::<i32>().value(r));
            }
        }
    }
    out
}

fn js(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

/// `2024-12-28 07:30:58.495000` as Arrow displays a timestamp (`2024-12-28T07:30:58.495`).
fn ts(v: &Value) -> String {
    let t =
        chrono::NaiveDateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%d %H:%M:%S%.f").unwrap();
    t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
}

/// Checks the aggregates of expected.json that a `types_*` table must reproduce.
async fn check_typed_table(ctx: &SessionContext, name: &str, nested: bool) {
    let e = &expected()["tables"][name]["expected"];
    // No column read at all: rows still counted.
    let got = one_row(ctx, "SELECT count(*) FROM t").await;
    assert_eq!(got, vec![js(&e["row_count"])], "{name}");
    let got = one_row(
        ctx,
        "SELECT count(*), sum(id), sum(c_int), min(c_int), max(c_int), sum(c_bigint), \
         sum(c_double), sum(c_decimal), min(c_decimal), max(c_decimal), \
         count(DISTINCT c_varchar), max(c_string), CAST(min(c_date) AS VARCHAR), \
         CAST(max(c_date) AS VARCHAR), min(c_timestamp), max(c_timestamp), \
         sum(CASE WHEN c_boolean THEN 1 ELSE 0 END) FROM t",
    )
    .await;
    let want = vec![
        js(&e["row_count"]),
        js(&e["sum_id"]),
        js(&e["sum_c_int"]),
        js(&e["min_c_int"]),
        js(&e["max_c_int"]),
        js(&e["sum_c_bigint"]),
        js(&e["sum_c_double"]),
        js(&e["sum_c_decimal"]),
        js(&e["min_c_decimal"]),
        js(&e["max_c_decimal"]),
        js(&e["count_distinct_c_varchar"]),
        js(&e["max_c_string"]),
        js(&e["min_c_date"]),
        js(&e["max_c_date"]),
        ts(&e["min_c_timestamp"]),
        ts(&e["max_c_timestamp"]),
        js(&e["count_c_boolean_true"]),
    ];
    assert_eq!(got, want, "{name}");
    // NULL counts of every column.
    let nulls = e["null_counts"].as_object().unwrap();
    let sql = format!(
        "SELECT {} FROM t",
        nulls
            .keys()
            .map(|c| format!("count(*) - count({c})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let got = one_row(ctx, &sql).await;
    let want: Vec<String> = nulls.values().map(js).collect();
    assert_eq!(got, want, "{name} null counts of {:?}", nulls.keys());
    if !nested {
        return;
    }
    // Nested columns, walked in Arrow.
    let (mut array_sizes, mut array_sum, mut map_sizes, mut map_sum, mut struct_a) =
        (0i64, 0i64, 0i64, 0i64, 0i64);
    for b in rows(ctx, "SELECT c_array, c_map, c_struct FROM t").await {
        let arrays = b.column(0).as_list::<i32>();
        for i in 0..arrays.len() {
            if arrays.is_valid(i) {
                let v = arrays.value(i);
                array_sizes += v.len() as i64;
                array_sum += v
                    .as_primitive::<Int32Type>()
                    .iter()
                    .flatten()
                    .map(i64::from)
                    .sum::<i64>();
            }
        }
        let maps = b.column(1).as_map();
        for i in 0..maps.len() {
            if maps.is_valid(i) {
                let v = maps.value(i);
                map_sizes += v.len() as i64;
                map_sum += v
                    .column(1)
                    .as_primitive::<Int32Type>()
                    .iter()
                    .flatten()
                    .map(i64::from)
                    .sum::<i64>();
            }
        }
        let st = b.column(2).as_struct();
        let a = st.column(0).as_primitive::<Int32Type>();
        for i in 0..st.len() {
            if st.is_valid(i) && a.is_valid(i) {
                struct_a += i64::from(a.value(i));
            }
        }
    }
    assert_eq!(
        array_sizes,
        e["sum_array_sizes"].as_i64().unwrap(),
        "{name}"
    );
    assert_eq!(
        array_sum,
        e["sum_array_elements"].as_i64().unwrap(),
        "{name}"
    );
    assert_eq!(map_sizes, e["sum_map_sizes"].as_i64().unwrap(), "{name}");
    assert_eq!(map_sum, e["sum_map_values"].as_i64().unwrap(), "{name}");
    assert_eq!(struct_a, e["sum_struct_a"].as_i64().unwrap(), "{name}");
}

/// Checks the sample rows of expected.json (scalar columns and, when `nested`, the nested ones
/// as Arrow displays them).
async fn check_sample_rows(ctx: &SessionContext, name: &str, nested: bool) {
    let samples = expected()["tables"][name]["sample_rows"].clone();
    for row in samples.as_array().unwrap() {
        let id = row["id"].as_i64().unwrap();
        let got = one_row(
            ctx,
            &format!(
                "SELECT c_int, c_bigint, c_double, c_decimal, c_string, c_varchar, \
                 CAST(c_date AS VARCHAR), c_timestamp, c_boolean FROM t WHERE id = {id}"
            ),
        )
        .await;
        let timestamp = if row["c_timestamp"].is_null() {
            "NULL".to_string()
        } else {
            ts(&row["c_timestamp"])
        };
        let double = match row["c_double"].as_f64() {
            Some(d) => format!("{d:?}"),
            None => "NULL".into(),
        };
        let want = vec![
            js(&row["c_int"]),
            js(&row["c_bigint"]),
            double,
            js(&row["c_decimal"]),
            js(&row["c_string"]),
            js(&row["c_varchar"]),
            js(&row["c_date"]),
            timestamp,
            js(&row["c_boolean"]),
        ];
        assert_eq!(got, want, "{name} row {id}");
        if nested {
            let got = one_row(
                ctx,
                &format!("SELECT c_array, c_map, c_struct FROM t WHERE id = {id}"),
            )
            .await;
            let list = |v: &Value| match v.as_array() {
                Some(a) => format!("[{}]", a.iter().map(js).collect::<Vec<_>>().join(", ")),
                None => "NULL".into(),
            };
            let map = |v: &Value, sep: &str| match v.as_object() {
                Some(o) => format!(
                    "{{{}}}",
                    o.iter()
                        .map(|(k, v)| format!("{k}{sep}{}", js(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => "NULL".into(),
            };
            let want = vec![
                list(&row["c_array"]),
                map(&row["c_map"], ": "),
                map(&row["c_struct"], ": "),
            ];
            assert_eq!(got, want, "{name} row {id} nested");
        }
    }
}

async fn fixture_session(name: &str) -> (SessionContext, Arc<TestAccess>) {
    let (desc, access) = fixture_desc(name, &fixtures().join(name));
    let ctx = session();
    register(&ctx, "t", desc, Arc::clone(&access)).await;
    (ctx, access)
}

#[tokio::test]
async fn reads_hive_parquet_int96_fixed_decimals_legacy_lists_and_maps() {
    let (ctx, _) = fixture_session("types_parquet").await;
    check_typed_table(&ctx, "types_parquet", true).await;
    check_sample_rows(&ctx, "types_parquet", true).await;
}

#[tokio::test]
async fn file_sizes_let_join_selection_broadcast_a_small_table() {
    let (desc, access) = fixture_desc("types_parquet", &fixtures().join("types_parquet"));
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
    register(&ctx, "a", desc.clone(), Arc::clone(&access)).await;
    register(&ctx, "b", desc, access).await;
    let sql = "SELECT count(*) FROM a JOIN b ON a.id = b.id";
    // Without a size the scan is unknown and the join is repartitioned on both sides.
    let plan = explain(&ctx, sql).await;
    assert!(plan.contains("mode=CollectLeft"), "{plan}");
    assert!(!plan.contains("mode=Partitioned"), "{plan}");
    let fixture_rows = one_row(&ctx, "SELECT count(*) FROM a").await;
    assert_eq!(one_row(&ctx, sql).await, fixture_rows);
}

#[tokio::test]
async fn reads_hive_orc() {
    let (ctx, _) = fixture_session("types_orc").await;
    check_typed_table(&ctx, "types_orc", true).await;
    check_sample_rows(&ctx, "types_orc", true).await;
}

#[tokio::test]
async fn reads_hive_text_with_default_delimiters() {
    let (ctx, _) = fixture_session("types_text").await;
    check_typed_table(&ctx, "types_text", true).await;
    check_sample_rows(&ctx, "types_text", true).await;
}

#[tokio::test]
async fn reads_external_csv_text_table() {
    let (ctx, _) = fixture_session("csv_text_external").await;
    check_typed_table(&ctx, "csv_text_external", false).await;
    check_sample_rows(&ctx, "csv_text_external", false).await;
}

#[tokio::test]
async fn skips_hidden_and_underscore_files() {
    // The fixture holds `_SUCCESS` and `.crc` files beside the data file.
    let (ctx, _) = fixture_session("spark_datasource_parquet").await;
    let e = &expected()["tables"]["spark_datasource_parquet"]["expected"];
    let got = one_row(&ctx, "SELECT count(*), sum(c_int) FROM t").await;
    assert_eq!(got, vec![js(&e["row_count"]), js(&e["sum_c_int"])]);
    let plan = explain(&ctx, "SELECT count(*) FROM t").await;
    assert!(plan.contains("files=1"), "{plan}");
    let got = rows(&ctx, "SELECT c_int FROM t LIMIT 7").await;
    assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 7);
    let plan = explain(&ctx, "SELECT c_int FROM t LIMIT 7").await;
    assert!(plan.contains("limit=7"), "{plan}");
}

#[tokio::test]
async fn partitioned_table_reads_every_partition_with_key_columns() {
    let (ctx, access) = fixture_session("events_partitioned").await;
    let e = &expected()["tables"]["events_partitioned"]["expected"];
    let got = one_row(
        &ctx,
        "SELECT count(*), sum(id), sum(amount), sum(score), count(*) - count(tag), \
         count(DISTINCT user_id), min(event_time), max(event_time) FROM t",
    )
    .await;
    assert_eq!(
        got,
        vec![
            js(&e["row_count"]),
            js(&e["sum_id"]),
            js(&e["sum_amount"]),
            js(&e["sum_score"]),
            js(&e["null_count_tag"]),
            js(&e["count_distinct_user_id"]),
            ts(&e["min_event_time"]),
            ts(&e["max_event_time"]),
        ]
    );
    for p in e["partitions"].as_array().unwrap() {
        let (dt, hr) = (js(&p["values"][0]), js(&p["values"][1]));
        let got = one_row(
            &ctx,
            &format!(
                "SELECT count(*), sum(amount), min(dt), min(hr) FROM t \
                 WHERE dt = '{dt}' AND hr = {hr}"
            ),
        )
        .await;
        assert_eq!(
            got,
            vec![
                js(&p["row_count"]),
                js(&p["sum_amount"]),
                dt.clone(),
                hr.clone()
            ]
        );
    }
    assert_eq!(
        access.filters.lock().unwrap()[0],
        None,
        "an unfiltered scan lists every partition"
    );
}

#[tokio::test]
async fn partition_filters_go_to_the_metastore_and_prune_the_scan() {
    let (ctx, access) = fixture_session("events_partitioned").await;
    let got = one_row(
        &ctx,
        "SELECT count(*) FROM t WHERE dt = '2024-01-02' AND hr = 1 AND score > -1e9",
    )
    .await;
    assert_eq!(got, vec!["143"]);
    assert_eq!(
        access.filters.lock().unwrap().last().unwrap().as_deref(),
        Some("dt = \"2024-01-02\" and hr = 1")
    );
    let plan = explain(
        &ctx,
        "SELECT count(*) FROM t WHERE dt >= '2024-01-02' AND hr = 0",
    )
    .await;
    assert!(
        plan.contains(
            "HiveScan: hive.hive_peer.events_partitioned format=parquet partitions=2/6 files=2"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("metastore_filter=[dt >= \"2024-01-02\" and hr = 0]"),
        "{plan}"
    );
    let got = one_row(
        &ctx,
        "SELECT count(*), sum(amount) FROM t WHERE dt IN ('2024-01-01', '2024-01-03') AND hr = 1",
    )
    .await;
    // The partitions (2024-01-01, 1) and (2024-01-03, 1) of expected.json: 58 + 47 rows.
    assert_eq!(got, vec!["105", "491524.54"]);
    assert_eq!(
        access.filters.lock().unwrap().last().unwrap().as_deref(),
        Some("(dt = \"2024-01-01\" or dt = \"2024-01-03\") and hr = 1")
    );
    // A filter the metastore cannot take (a function of the key) is still applied.
    let got = one_row(&ctx, "SELECT count(*) FROM t WHERE hr + 1 = 2").await;
    assert_eq!(got, vec!["248"]);
    let plan = explain(&ctx, "SELECT count(*) FROM t WHERE hr + 1 = 2").await;
    assert!(plan.contains("partitions=3/6"), "{plan}");
}

/// A text table at `dir` with the given SerDe parameters and columns.
fn text_desc(dir: &Path, params: &[(&str, &str)], columns: &[(&str, &str)]) -> HiveTableDesc {
    HiveTableDesc {
        name: "hive.db.text".into(),
        location: url_of(dir),
        format: HiveFormat::Text,
        serde_params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        table_params: BTreeMap::new(),
        schema: Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, t)| Field::new(*n, hive_to_arrow(t).unwrap(), true))
                .collect::<Vec<_>>(),
        )),
        partition_key_count: 0,
    }
}

#[tokio::test]
async fn text_custom_delimiters_escapes_nulls_and_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("data.txt"),
        "1|a\\|b|x,y|k1:1,k2:2|NULL|true\r\n\
         2|NULL|NULL|NULL|2024-02-30|TRUE\n\
         not_a_number|plain|z||2024-01-05|yes\n\
         4|tail\n\
         5|back\\\\slash|,|k:|2024-01-06 10:00:00.5|false|extra",
    )
    .unwrap();
    let desc = text_desc(
        dir.path(),
        &[
            ("field.delim", "|"),
            ("colelction.delim", ","),
            ("mapkey.delim", ":"),
            ("escape.delim", "\\"),
            ("serialization.null.format", "NULL"),
        ],
        &[
            ("id", "int"),
            ("s", "string"),
            ("a", "array<string>"),
            ("m", "map<string,int>"),
            ("ts", "timestamp"),
            ("b", "boolean"),
        ],
    );
    let ctx = session();
    register(&ctx, "t", desc, Arc::new(TestAccess::default())).await;
    let batches = rows(&ctx, "SELECT * FROM t").await;
    let options = FormatOptions::default().with_null("NULL");
    let mut lines = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    ArrayFormatter::try_new(c.as_ref(), &options)
                        .unwrap()
                        .value(r)
                        .to_string()
                })
                .collect();
            lines.push(cells.join(" ; "));
        }
    }
    assert_eq!(
        lines,
        vec![
            // escaped delimiter in a string; \r\n line end; NULL timestamp
            "1 ; a|b ; [x, y] ; {k1: 1, k2: 2} ; NULL ; true",
            // NULL everywhere, an impossible date is NULL, booleans are case-insensitive
            "2 ; NULL ; NULL ; NULL ; NULL ; true",
            // a bad number and a bad boolean are NULL; an empty map is empty
            "NULL ; plain ; [z] ; {} ; 2024-01-05T00:00:00 ; NULL",
            // missing trailing fields are NULL
            "4 ; tail ; NULL ; NULL ; NULL ; NULL",
            // escaped escape; empty items; a key without value; extra fields ignored
            "5 ; back\\slash ; [, ] ; {k: NULL} ; 2024-01-06T10:00:00.500 ; false",
        ]
    );
}

#[tokio::test]
async fn text_rejects_bad_serde_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let desc = text_desc(dir.path(), &[("field.delim", "ab")], &[("id", "int")]);
    let err = hive_table(desc, Arc::new(TestAccess::default()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("field.delim") && err.contains("single-byte"),
        "{err}"
    );
    let desc = text_desc(
        dir.path(),
        &[("serialization.encoding", "GBK")],
        &[("id", "int")],
    );
    let err = hive_table(desc, Arc::new(TestAccess::default()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not supported"), "{err}");
}

/// A partitioned table `(id int, name string, amount decimal?, ts timestamp, tags array<int>)
/// PARTITIONED BY (dt string, hr int)` in `dir`, in `format`.
fn write_desc(dir: &Path, format: HiveFormat, nested: bool) -> HiveTableDesc {
    let mut cols = vec![
        ("id", "int"),
        ("name", "string"),
        ("ts", "timestamp"),
        ("score", "double"),
    ];
    if nested {
        cols.push(("amount", "decimal(10,2)"));
        cols.push(("tags", "array<int>"));
        cols.push(("attrs", "map<string,string>"));
        cols.push(("pt", "struct<x:int,y:string>"));
    }
    cols.push(("dt", "string"));
    cols.push(("hr", "int"));
    HiveTableDesc {
        name: "hive.db.w".into(),
        location: url_of(dir),
        format,
        serde_params: BTreeMap::new(),
        table_params: BTreeMap::new(),
        schema: Arc::new(Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, hive_to_arrow(t).unwrap(), true))
                .collect::<Vec<_>>(),
        )),
        partition_key_count: 2,
    }
}

/// Every visible file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

async fn round_trip(format: HiveFormat, nested: bool) {
    let dir = tempfile::tempdir().unwrap();
    let access = Arc::new(TestAccess::default());
    let ctx = session();
    register(
        &ctx,
        "w",
        write_desc(dir.path(), format, nested),
        Arc::clone(&access),
    )
    .await;
    let extra = if nested {
        ", CAST(id * 1.5 AS DECIMAL(10,2)) AS amount, make_array(id, id + 1) AS tags, \
         map(['k'], [name]) AS attrs, named_struct('x', id, 'y', name) AS pt"
    } else {
        ""
    };
    let source = ctx
        .sql(
            "SELECT * FROM (VALUES \
         (1, 'a', TIMESTAMP '2024-01-01 10:00:00.123456', 1.5, '2024-01-01', 0), \
         (2, 'b|c', TIMESTAMP '2024-01-01 11:00:00', NULL, '2024-01-01', 1), \
         (3, NULL, NULL, -2.25, 'x/y=z', 0), \
         (4, 'café', TIMESTAMP '1999-12-31 23:59:59', 0.0, NULL, 2)) \
         AS v(id, name, ts, score, dt, hr)",
        )
        .await
        .unwrap();
    ctx.register_table("src", source.into_view()).unwrap();
    let insert = format!("INSERT INTO w SELECT id, name, ts, score{extra}, dt, hr FROM src");
    let got = one_row(&ctx, &insert).await;
    assert_eq!(got, vec!["4"]);
    let files = files_under(dir.path());
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("dt=2024-01-01/hr=0/part-")),
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.starts_with("dt=x%2Fy%3Dz/hr=0/")),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("dt=__HIVE_DEFAULT_PARTITION__/hr=2/")),
        "{files:?}"
    );
    let mut parts: Vec<Vec<String>> = access
        .partitions
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.values.clone())
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        vec![
            vec!["2024-01-01".to_string(), "0".into()],
            vec!["2024-01-01".to_string(), "1".into()],
            vec!["__HIVE_DEFAULT_PARTITION__".to_string(), "2".into()],
            vec!["x/y=z".to_string(), "0".into()],
        ]
    );
    let sql = if nested {
        "SELECT id, name, ts, score, amount, tags, attrs, pt, dt, hr FROM w ORDER BY id"
    } else {
        "SELECT id, name, ts, score, dt, hr FROM w ORDER BY id"
    };
    let batches = rows(&ctx, sql).await;
    let options = FormatOptions::default().with_null("NULL");
    let mut lines = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    ArrayFormatter::try_new(c.as_ref(), &options)
                        .unwrap()
                        .value(r)
                        .to_string()
                })
                .collect();
            lines.push(cells.join(" ; "));
        }
    }
    let want: Vec<&str> = if nested {
        vec![
            "1 ; a ; 2024-01-01T10:00:00.123456 ; 1.5 ; 1.50 ; [1, 2] ; {k: a} ; {x: 1, y: a} ; 2024-01-01 ; 0",
            "2 ; b|c ; 2024-01-01T11:00:00 ; NULL ; 3.00 ; [2, 3] ; {k: b|c} ; {x: 2, y: b|c} ; 2024-01-01 ; 1",
            "3 ; NULL ; NULL ; -2.25 ; 4.50 ; [3, 4] ; {k: NULL} ; {x: 3, y: NULL} ; x/y=z ; 0",
            "4 ; café ; 1999-12-31T23:59:59 ; 0.0 ; 6.00 ; [4, 5] ; {k: café} ; {x: 4, y: café} ; NULL ; 2",
        ]
    } else {
        vec![
            "1 ; a ; 2024-01-01T10:00:00.123456 ; 1.5 ; 2024-01-01 ; 0",
            "2 ; b|c ; 2024-01-01T11:00:00 ; NULL ; 2024-01-01 ; 1",
            "3 ; NULL ; NULL ; -2.25 ; x/y=z ; 0",
            "4 ; café ; 1999-12-31T23:59:59 ; 0.0 ; NULL ; 2",
        ]
    };
    assert_eq!(lines, want, "{format:?}");

    // INSERT OVERWRITE replaces only the partitions that receive rows.
    let got = one_row(
        &ctx,
        &format!(
            "INSERT OVERWRITE w SELECT 10 AS id, 'new' AS name, CAST(NULL AS TIMESTAMP) AS ts, \
             1.0 AS score{}, '2024-01-01' AS dt, 0 AS hr",
            if nested {
                ", CAST(1 AS DECIMAL(10,2)) AS amount, make_array(1) AS tags, \
                 map(['k'], ['v']) AS attrs, named_struct('x', 1, 'y', 'v') AS pt"
            } else {
                ""
            }
        ),
    )
    .await;
    assert_eq!(got, vec!["1"]);
    let got = one_row(
        &ctx,
        "SELECT count(*), sum(id), sum(CASE WHEN dt = '2024-01-01' AND hr = 0 THEN id END) FROM w",
    )
    .await;
    assert_eq!(got, vec!["4", "19", "10"]);
    assert_eq!(files_under(dir.path()).len(), 4);
    // Nothing of the staging directories is left.
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')),
    );
}

#[tokio::test]
async fn parquet_write_and_read_back_with_dynamic_partitions() {
    round_trip(HiveFormat::Parquet, true).await;
}

#[tokio::test]
async fn text_write_and_read_back_with_dynamic_partitions() {
    round_trip(HiveFormat::Text, true).await;
}

#[tokio::test]
async fn orc_write_and_read_back_with_dynamic_partitions() {
    round_trip(HiveFormat::Orc, false).await;
}

#[tokio::test]
async fn orc_write_of_nested_columns_is_not_supported() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = session();
    register(
        &ctx,
        "w",
        write_desc(dir.path(), HiveFormat::Orc, true),
        Arc::new(TestAccess::default()),
    )
    .await;
    let err = ctx
        .sql(
            "INSERT INTO w SELECT 1 AS id, 'a' AS name, CAST(NULL AS TIMESTAMP) AS ts, 1.0 AS score, \
             CAST(1 AS DECIMAL(10,2)) AS amount, make_array(1) AS tags, map(['k'], ['v']) AS attrs, \
             named_struct('x', 1, 'y', 'v') AS pt, 'd' AS dt, 1 AS hr",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Not supported") && err.contains("`amount`"),
        "{err}"
    );
    assert!(files_under(dir.path()).is_empty());
}

#[tokio::test]
async fn failing_write_leaves_the_table_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let access = Arc::new(TestAccess::default());
    let ctx = session();
    register(
        &ctx,
        "w",
        write_desc(dir.path(), HiveFormat::Parquet, false),
        Arc::clone(&access),
    )
    .await;
    one_row(
        &ctx,
        "INSERT INTO w VALUES (1, 'a', CAST(NULL AS TIMESTAMP), 1.0, 'd', 1)",
    )
    .await;
    let before = files_under(dir.path());
    // Rows reach the sink (and its partition writers) before a later batch fails to convert.
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, false)]));
    let batch = |vals: Vec<&str>| {
        RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(datafusion::arrow::array::StringArray::from(vals))],
        )
        .unwrap()
    };
    let source = datafusion::datasource::MemTable::try_new(
        Arc::clone(&schema),
        vec![vec![batch(vec!["2", "3"]), batch(vec!["not a number"])]],
    )
    .unwrap();
    ctx.register_table("src", Arc::new(source)).unwrap();
    let err = ctx
        .sql(
            "INSERT OVERWRITE w SELECT CAST(v AS INT), 'x', CAST(NULL AS TIMESTAMP), 1.0, 'd', 1 \
             FROM src",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a number") || err.contains("Cannot cast"),
        "{err}"
    );
    assert_eq!(files_under(dir.path()), before);
    let got = one_row(&ctx, "SELECT count(*), sum(id) FROM w").await;
    assert_eq!(got, vec!["1", "1"]);
    // A metastore failure after the files are in place is reported.
    let failing = Arc::new(TestAccess {
        fail_add: true,
        ..TestAccess::default()
    });
    let dir2 = tempfile::tempdir().unwrap();
    let ctx2 = session();
    register(
        &ctx2,
        "w",
        write_desc(dir2.path(), HiveFormat::Parquet, false),
        failing,
    )
    .await;
    let err = ctx2
        .sql("INSERT INTO w VALUES (1, 'a', CAST(NULL AS TIMESTAMP), 1.0, 'd', 1)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused add_partitions"), "{err}");
}

#[test]
fn locations_are_split_the_way_hive_writes_them() {
    use super::table::parse_location;
    let l = parse_location("file:/tmp/w/dt=x%2Fy%3Dz/hr=0").unwrap();
    assert_eq!(l.store_url, "file://");
    assert_eq!(l.raw_path, "/tmp/w/dt=x%2Fy%3Dz/hr=0");
    // The `%` is part of the directory's name, not an escape.
    assert_eq!(
        l.path
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect::<Vec<_>>(),
        vec!["tmp", "w", "dt=x%2Fy%3Dz", "hr=0"]
    );
    let l = parse_location("s3a://bucket/warehouse/t").unwrap();
    assert_eq!(l.store_url, "s3a://bucket");
    assert_eq!(l.path.as_ref(), "warehouse/t");
    assert_eq!(
        parse_location("file:///tmp/t").unwrap().path.as_ref(),
        "tmp/t"
    );
    assert_eq!(parse_location("/tmp/t").unwrap().store_url, "file://");
    for bad in ["relative/dir", "file:relative", "://x/y"] {
        let e = parse_location(bad).unwrap_err().to_string();
        assert!(e.contains(bad), "{e}");
    }
}

#[tokio::test]
async fn unregistered_object_store_is_a_clear_error() {
    let desc = HiveTableDesc {
        location: "hdfs://namenode:8020/warehouse/t".into(),
        ..fixture_desc("types_parquet", Path::new("/nonexistent")).0
    };
    let ctx = session();
    register(&ctx, "t", desc, Arc::new(TestAccess::default())).await;
    let err = ctx
        .sql("SELECT * FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hdfs://namenode:8020") && err.contains("no object store"),
        "{err}"
    );
}

#[tokio::test]
async fn every_primitive_type_round_trips_through_each_format() {
    let cols = [
        ("t", "tinyint"),
        ("s", "smallint"),
        ("i", "int"),
        ("b", "bigint"),
        ("f", "float"),
        ("d", "double"),
        ("c", "char(3)"),
        ("v", "varchar(10)"),
        ("bin", "binary"),
        ("day", "date"),
        ("ok", "boolean"),
        ("ts", "timestamp"),
    ];
    for format in [HiveFormat::Parquet, HiveFormat::Orc, HiveFormat::Text] {
        let dir = tempfile::tempdir().unwrap();
        let desc = HiveTableDesc {
            format,
            ..text_desc(dir.path(), &[], &cols)
        };
        let ctx = session();
        register(&ctx, "p", desc, Arc::new(TestAccess::default())).await;
        let source = ctx
            .sql(
                "SELECT CAST(-128 AS TINYINT) AS t, CAST(32767 AS SMALLINT) AS s, 7 AS i, \
                 CAST(-9007199254740993 AS BIGINT) AS b, CAST(0.5 AS FLOAT) AS f, \
                 CAST('NaN' AS DOUBLE) AS d, 'abc' AS c, 'x\u{1}y' AS v, \
                 CAST('\u{0}\u{ff}' AS BYTEA) AS bin, DATE '1969-12-31' AS day, false AS ok, \
                 TIMESTAMP '1900-01-01 00:00:00.000001' AS ts \
                 UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
                 NULL, NULL",
            )
            .await
            .unwrap();
        ctx.register_table("src", source.into_view()).unwrap();
        let result = ctx
            .sql("INSERT INTO p SELECT * FROM src")
            .await
            .unwrap()
            .collect()
            .await;
        if format == HiveFormat::Text {
            // `\u0001` is the field delimiter and the table has no escape character.
            let err = result.unwrap_err().to_string();
            assert!(err.contains("escape.delim"), "{err}");
            assert!(files_under(dir.path()).is_empty());
            continue;
        }
        result.unwrap();
        let got = one_row(
            &ctx,
            "SELECT t, s, i, b, f, d, c, v, encode(bin, 'hex'), day, ok, ts FROM p \
             WHERE i IS NOT NULL",
        )
        .await;
        assert_eq!(
            got,
            vec![
                "-128",
                "32767",
                "7",
                "-9007199254740993",
                "0.5",
                "NaN",
                "abc",
                "x\u{1}y",
                "00c3bf",
                "1969-12-31",
                "false",
                "1900-01-01T00:00:00.000001"
            ],
            "{format:?}"
        );
        let got = one_row(&ctx, "SELECT count(*), count(t), count(ts) FROM p").await;
        assert_eq!(got, vec!["2", "1", "1"], "{format:?}");
    }
    // Text with an escape character stores the delimiter.
    let dir = tempfile::tempdir().unwrap();
    let desc = text_desc(dir.path(), &[("escape.delim", "\\")], &cols);
    let ctx = session();
    register(&ctx, "p", desc, Arc::new(TestAccess::default())).await;
    one_row(
        &ctx,
        "INSERT INTO p SELECT CAST(-128 AS TINYINT), CAST(32767 AS SMALLINT), 7, \
         CAST(-9007199254740993 AS BIGINT), CAST(0.5 AS FLOAT), CAST('NaN' AS DOUBLE), 'abc', \
         'x\u{1}y', CAST('\u{0}\u{ff}' AS BYTEA), DATE '1969-12-31', false, \
         TIMESTAMP '1900-01-01 00:00:00.000001'",
    )
    .await;
    let got = one_row(
        &ctx,
        "SELECT t, s, i, b, f, d, c, v, encode(bin, 'hex'), day, ok, ts FROM p",
    )
    .await;
    assert_eq!(
        got,
        vec![
            "-128",
            "32767",
            "7",
            "-9007199254740993",
            "0.5",
            "NaN",
            "abc",
            "x\u{1}y",
            "00c3bf",
            "1969-12-31",
            "false",
            "1900-01-01T00:00:00.000001"
        ]
    );
}

#[tokio::test]
async fn overwrite_of_an_unpartitioned_table_replaces_all_its_files() {
    let dir = tempfile::tempdir().unwrap();
    // A file written by someone else, and hidden files that are not the table's data.
    std::fs::write(dir.path().join("000000_0"), "1\u{1}old\n").unwrap();
    std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
    std::fs::write(dir.path().join(".000000_0.crc"), "x").unwrap();
    let desc = text_desc(dir.path(), &[], &[("id", "int"), ("name", "string")]);
    let ctx = session();
    register(&ctx, "u", desc, Arc::new(TestAccess::default())).await;
    one_row(&ctx, "INSERT INTO u VALUES (2, 'b')").await;
    assert_eq!(
        one_row(&ctx, "SELECT count(*), sum(id) FROM u").await,
        vec!["2", "3"]
    );
    one_row(&ctx, "INSERT OVERWRITE u VALUES (5, 'e'), (6, 'f')").await;
    assert_eq!(
        one_row(&ctx, "SELECT count(*), sum(id) FROM u").await,
        vec!["2", "11"]
    );
    let files = files_under(dir.path());
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files.contains(&"_SUCCESS".to_string()) && files.contains(&".000000_0.crc".to_string())
    );
}

#[tokio::test]
async fn int96_timestamps_outside_the_nanosecond_range() {
    let dir = fixtures().join("int96_far_dates");
    let desc = HiveTableDesc {
        format: HiveFormat::Parquet,
        ..text_desc(&dir, &[], &[("id", "int"), ("ts", "timestamp")])
    };
    let ctx = session();
    register(&ctx, "f", desc, Arc::new(TestAccess::default())).await;
    let got = one_row(&ctx, "SELECT min(ts), max(ts), count(ts), count(*) FROM f").await;
    assert_eq!(
        got,
        vec![
            "1500-06-01T12:00:00.000001",
            "2500-01-01T00:00:00",
            "2",
            "3"
        ]
    );
}

/// Corrupt Hive files (Parquet, ORC, text; seeded damage: truncation, bit flips, random bytes,
/// a garbage footer length, garbage): reading gives rows or an error naming the file, never a
/// panic that escapes the scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_hive_files_give_errors_naming_the_file() {
    use futures::FutureExt;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::panic::AssertUnwindSafe;

    let mut failures = Vec::new();
    let mut errors = 0;
    for (i, name) in ["types_parquet", "types_orc", "types_text"]
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<_> = std::fs::read_dir(fixtures().join(name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in &files {
            std::fs::copy(f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
        let victim = dir.path().join(files[0].file_name().unwrap());
        let original = std::fs::read(&victim).unwrap();
        let n = original.len();
        let mut rng = StdRng::seed_from_u64(190 + i as u64);
        let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
        for cut in [0, 3, 8, n / 3, n / 2, n - 1, n - 9] {
            cases.push((format!("truncated to {cut}"), original[..cut].to_vec()));
        }
        // Damage inside an ORC file's data can make orc-rust allocate petabytes and abort the
        // process (open, see docs/fuzzing.md): ORC gets structural damage only.
        let inner_damage = if name == "types_orc" { 0 } else { 20 };
        for _ in 0..inner_damage {
            let mut b = original.clone();
            let at = rng.random_range(0..n);
            let bit = rng.random_range(0..8);
            b[at] ^= 1 << bit;
            cases.push((format!("bit {bit} flipped in byte {at}"), b));
        }
        for _ in 0..inner_damage / 2 {
            let mut b = original.clone();
            let at = rng.random_range(0..n - 8);
            rng.fill(&mut b[at..at + 8]);
            cases.push((format!("8 random bytes at {at}"), b));
        }
        let mut b = original.clone();
        rng.fill(&mut b[n - 8..n - 4]);
        cases.push(("garbage footer length".into(), b));
        let mut garbage = vec![0u8; 3000];
        rng.fill(&mut garbage[..]);
        cases.push(("garbage".into(), garbage));

        let (desc, access) = fixture_desc(name, dir.path());
        let ctx = session();
        register(&ctx, "t", desc, access).await;
        let file = victim.file_name().unwrap().to_string_lossy().into_owned();
        for (what, bytes) in cases {
            std::fs::write(&victim, &bytes).unwrap();
            let run = async {
                let df = ctx.sql("SELECT * FROM t").await?;
                df.collect().await
            };
            match AssertUnwindSafe(run).catch_unwind().await {
                Err(_) => failures.push(format!("{name}, {what}: panicked")),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    errors += 1;
                    let msg = Error::from(e).to_string();
                    if !msg.contains(&file) {
                        failures.push(format!("{name}, {what}: no file name in: {msg}"));
                    }
                }
            }
        }
    }
    assert!(errors > 25, "{errors}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
