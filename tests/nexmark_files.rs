//! Flink's Nexmark queries (`sql-tests/nexmark/`) over generated NDJSON files, checked against
//! the answers of Apache Flink itself (`sql-tests/nexmark/expected-flink/`, made by
//! `scripts/flink-nexmark-reference.py` over the same files).
//!
//! The files come from Weir's bounded `nexmark` source (`ddl_gen.sql`, [`EVENTS`] events at
//! [`TPS`] events per second of event time) in batch mode: event `i` goes to file `i mod`
//! [`FILES`], so each file is in event-time order and every file spans the whole time range.
//! The filesystem table over them is `ddl_gen.sql` with its `WITH (...)` swapped for
//! `'connector' = 'filesystem', 'format' = 'json'` (the computed `dateTime` and the watermark
//! stay), as Flink reads it.
//!
//! For every query Flink runs (not q6, which Flink cannot plan; not q12, on processing time; not
//! q13, whose processing-time temporal join Flink refuses over a filesystem side input; q23
//! waits for its reference output, which Flink takes long to make),
//! the `SELECT` of its `INSERT` must give Flink's final rows in batch mode and, as a materialized
//! changelog, in streaming mode at parallelism 1, 2, 4 and [`FILES`]. Rows are compared as
//! sorted canonical text ([`canonical_rows`]; the same rules as the script's).
//!
//! `cargo test --test nexmark_files -- --ignored write_files` writes the files to
//! `$NEXMARK_FILES_DIR` for the reference script (`NEXMARK_EVENTS`, `NEXMARK_FILES` and
//! `NEXMARK_FILE_WEIGHTS`, e.g. `0,10,1,1,1,1,1,1` for an empty and a long file, change them).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use datafusion::arrow::array::{
    Array, AsArray, RecordBatch, StructArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use serde_json::{Map, Value};
use weir::{Session, SessionOptions, StatementResult};

/// Events generated; the reference outputs were made with the same number.
const EVENTS: u64 = 20_000;
/// Events per second of event time: 20,000 events span 100 s (ten 10-second windows).
const TPS: u64 = 200;
/// Files the events are spread over; Flink ran at this parallelism.
const FILES: usize = 8;

fn nexmark_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests/nexmark")
}

/// `ddl_gen.sql` with the generator's placeholders filled in.
fn datagen_ddl(events: u64) -> String {
    std::fs::read_to_string(nexmark_dir().join("ddl_gen.sql"))
        .unwrap()
        .replace("${TPS}", &TPS.to_string())
        .replace("${EVENTS_NUM}", &events.to_string())
        .replace("${PERSON_PROPORTION}", "1")
        .replace("${AUCTION_PROPORTION}", "3")
        .replace("${BID_PROPORTION}", "46")
}

/// `ddl_gen.sql` reading the NDJSON files in `dir` instead of generating events.
fn files_ddl(dir: &Path) -> String {
    let text = std::fs::read_to_string(nexmark_dir().join("ddl_gen.sql")).unwrap();
    let at = text
        .rfind(") WITH (")
        .expect("ddl_gen.sql has a WITH clause");
    format!(
        "{}) WITH (\n    'connector' = 'filesystem',\n    'path' = '{}',\n    'format' = 'json'\n);\n",
        &text[..at],
        dir.display()
    )
}

/// One JSON value per array cell: integers as numbers, strings as strings, `TIMESTAMP(3)` as
/// `yyyy-MM-dd HH:mm:ss.SSS` (Flink's `json.timestamp-format.standard` = `SQL`), rows as objects.
fn json_value(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(row)),
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(row)),
        DataType::Utf8View => Value::from(array.as_string_view().value(row)),
        DataType::Timestamp(TimeUnit::Millisecond, None) => {
            let ms = array
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap()
                .value(row);
            let t = chrono::DateTime::from_timestamp_millis(ms).unwrap();
            Value::from(t.naive_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        }
        DataType::Struct(fields) => {
            let s: &StructArray = array.as_struct();
            let mut object = Map::new();
            for (field, column) in fields.iter().zip(s.columns()) {
                object.insert(field.name().clone(), json_value(column.as_ref(), row));
            }
            Value::Object(object)
        }
        other => panic!("no JSON form for {other}"),
    }
}

/// Writes `events` Nexmark events as NDJSON files `part-<k>.json` in `dir`, one per weight:
/// events are dealt out in turn, file `k` taking `weights[k]` of every `sum(weights)` events, so
/// each file is in event-time order and spans the whole time range (a weight of 0: an empty
/// file). The events are those of Weir's `nexmark` source, which depend only on its options.
async fn write_files(dir: &Path, events: u64, weights: &[usize]) {
    let total: usize = weights.iter().sum();
    assert!(total > 0, "all weights are 0");
    let mut slots = Vec::with_capacity(total);
    for (k, &w) in weights.iter().enumerate() {
        slots.extend(std::iter::repeat_n(k, w));
    }
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    s.execute_sql("SET 'execution.runtime-mode' = 'batch'; SET 'parallelism.default' = '1';")
        .await
        .unwrap();
    s.execute_sql(&datagen_ddl(events)).await.unwrap();
    // One partition, so the rows come in event order.
    let batches = all_batches(
        &mut s,
        "SELECT event_type, person, auction, bid FROM datagen",
    )
    .await;
    std::fs::create_dir_all(dir).unwrap();
    let mut out: Vec<_> = (0..weights.len())
        .map(|k| {
            let f = std::fs::File::create(dir.join(format!("part-{k}.json"))).unwrap();
            std::io::BufWriter::new(f)
        })
        .collect();
    let mut n = 0usize;
    for b in &batches {
        let names = b.schema();
        for row in 0..b.num_rows() {
            let mut object = Map::new();
            for (field, column) in names.fields().iter().zip(b.columns()) {
                object.insert(field.name().clone(), json_value(column.as_ref(), row));
            }
            let file = &mut out[slots[n % total]];
            serde_json::to_writer(&mut *file, &Value::Object(object)).unwrap();
            file.write_all(b"\n").unwrap();
            n += 1;
        }
    }
    assert_eq!(n as u64, events, "the source gave {n} events");
    for mut f in out {
        f.flush().unwrap();
    }
}

/// The files every test reads, written once per test process.
fn files() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        // Its own runtime: the caller's test runtime cannot be blocked on.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Runtime::new()
                        .unwrap()
                        .block_on(write_files(&path, EVENTS, &[1; FILES]));
                })
                .join()
                .unwrap();
        });
        dir
    })
    .path()
}

/// Writes the files for the reference script (see the module doc).
#[tokio::test]
#[ignore = "writes files for scripts/flink-nexmark-reference.py"]
async fn write_files_for_flink() {
    let dir = std::env::var("NEXMARK_FILES_DIR").expect("set NEXMARK_FILES_DIR");
    let events = std::env::var("NEXMARK_EVENTS").map_or(EVENTS, |v| v.parse().unwrap());
    let files = std::env::var("NEXMARK_FILES").map_or(FILES, |v| v.parse().unwrap());
    let weights: Vec<usize> = match std::env::var("NEXMARK_FILE_WEIGHTS") {
        Ok(w) => w.split(',').map(|x| x.trim().parse().unwrap()).collect(),
        Err(_) => vec![1; files],
    };
    write_files(Path::new(&dir), events, &weights).await;
    // q13's side input (Flink refuses q13 over it, but the script tries).
    let side = (0..10_000)
        .map(|k| format!("{k},value-{k}\n"))
        .collect::<String>();
    std::fs::write(Path::new(&dir).with_file_name("side_input.txt"), side).unwrap();
}

async fn all_batches(s: &mut Session, sql: &str) -> Vec<RecordBatch> {
    let mut results = s
        .execute_sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}\n{e}"));
    let Some(StatementResult::Rows(result)) = results.pop() else {
        panic!("no rows from {sql}");
    };
    let batches: Vec<RecordBatch> = result.stream.try_collect().await.unwrap();
    if result.changelog {
        vec![weir::session::materialize(&result.schema, &batches).unwrap()]
    } else {
        batches
    }
}

/// A double with 9 significant digits, as `d.dddddddde<exp>` (the script's rule too: batch,
/// streaming and Flink may add in different orders).
fn canonical_double(v: f64) -> String {
    format!("{v:.8e}")
}

/// A string cell with `\`, newlines and `|` escaped, so a row's ` | ` separators are unambiguous.
fn canonical_string(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('|', "\\|")
}

/// Rows as sorted lines of canonical cells joined by ` | `: NULL as `NULL`, integers and decimals
/// (at their scale) as written, timestamps as `yyyy-MM-dd HH:mm:ss.SSS`, doubles by
/// [`canonical_double`], strings by [`canonical_string`], booleans as `true` / `false`.
fn canonical_rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default()
        .with_null("NULL")
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3f"));
    let mut out = Vec::new();
    for b in batches {
        let cells: Vec<_> = b
            .columns()
            .iter()
            .map(|c| (c, ArrayFormatter::try_new(c.as_ref(), &options).unwrap()))
            .collect();
        for r in 0..b.num_rows() {
            let row: Vec<String> = cells
                .iter()
                .map(|(c, f)| {
                    if c.is_null(r) {
                        return "NULL".to_string();
                    }
                    match c.data_type() {
                        DataType::Float32 | DataType::Float64 => {
                            canonical_double(f.value(r).to_string().parse().unwrap())
                        }
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                            canonical_string(&f.value(r).to_string())
                        }
                        _ => f.value(r).to_string(),
                    }
                })
                .collect();
            out.push(row.join(" | "));
        }
    }
    out.sort();
    out
}

/// The query of `INSERT INTO <table> <query>` in `qN.sql`, and the statements before it that it
/// needs (q14's function; not the sink's `CREATE TABLE`).
fn query_parts(s: &Session, q: &str) -> (Vec<String>, String) {
    let text = std::fs::read_to_string(nexmark_dir().join(format!("{q}.sql"))).unwrap();
    let mut setup = Vec::new();
    let mut query = None;
    for parsed in s.parse(&text).unwrap() {
        let text = parsed.text.trim();
        if let Some(at) = text.find("INSERT INTO") {
            let rest = text[at + "INSERT INTO".len()..].trim_start();
            let after_table = rest.find(char::is_whitespace).unwrap();
            query = Some(rest[after_table..].trim().to_string());
        } else if text.contains("CREATE FUNCTION") {
            setup.push(text.to_string());
        }
    }
    (setup, query.expect("an INSERT"))
}

/// Flink's final rows for query `q`, one canonical row a line, sorted.
fn expected(q: &str) -> Vec<String> {
    let path = nexmark_dir().join(format!("expected-flink/{q}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(str::to_string).collect()
}

/// Up to 5 rows of `a` that are not in `b` (both sorted), for a readable failure.
fn missing_from(a: &[String], b: &[String]) -> (usize, Vec<String>) {
    let mut b = b.iter().peekable();
    let mut out = Vec::new();
    let mut count = 0;
    for row in a {
        while b.next_if(|x| *x < row).is_some() {}
        if b.next_if(|x| *x == row).is_none() {
            count += 1;
            if out.len() < 5 {
                out.push(row.clone());
            }
        }
    }
    (count, out)
}

/// Runs query `q`'s SELECT over the files in `mode` at `parallelism` and compares its final rows
/// with Flink's.
async fn check(q: &str, mode: &str, parallelism: usize) {
    let root = files();
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    s.execute_sql(&format!(
        "SET 'execution.runtime-mode' = '{mode}'; SET 'parallelism.default' = '{parallelism}';"
    ))
    .await
    .unwrap();
    s.execute_sql(&files_ddl(&root.join("events")))
        .await
        .unwrap();
    let views = std::fs::read_to_string(nexmark_dir().join("ddl_views.sql"))
        .unwrap()
        .replace("${NEXMARK_TABLE}", "datagen");
    s.execute_sql(&views).await.unwrap();
    let (setup, query) = query_parts(&s, q);
    for statement in setup {
        s.execute_sql(&statement)
            .await
            .unwrap_or_else(|e| panic!("{q}: {statement}\n{e}"));
    }
    let actual = canonical_rows(&all_batches(&mut s, &query).await);
    let expected = expected(q);
    if actual != expected {
        let (extra, extra_rows) = missing_from(&actual, &expected);
        let (missing, missing_rows) = missing_from(&expected, &actual);
        panic!(
            "{q} ({mode}, parallelism {parallelism}): {} rows, Flink {}; {extra} rows not in \
             Flink's answer, e.g.\n  {}\n{missing} of Flink's rows missing, e.g.\n  {}",
            actual.len(),
            expected.len(),
            extra_rows.join("\n  "),
            missing_rows.join("\n  ")
        );
    }
}

/// One test per query in `mode` at `parallelism`: `$module::qN`.
macro_rules! nexmark {
    ($module:ident, $mode:literal, $parallelism:expr) => {
        mod $module {
            nexmark!(@each $mode, $parallelism;
                q0, q1, q2, q3, q4, q5, q7, q8, q9, q10, q11, q14, q15, q16, q17, q18, q19, q20,
                q21, q22);
        }
    };
    (@each $mode:literal, $parallelism:expr; $($q:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $q() {
            super::check(stringify!($q), $mode, $parallelism).await;
        }
    )*};
}

nexmark!(batch, "batch", 4);
nexmark!(streaming_p1, "streaming", 1);
nexmark!(streaming_p2, "streaming", 2);
nexmark!(streaming_p4, "streaming", 4);
nexmark!(streaming_files, "streaming", super::FILES);
