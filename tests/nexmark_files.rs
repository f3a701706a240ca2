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
//! q13, whose processing-time temporal join Flink refuses over a filesystem side input; q23 is
//! compared by a fingerprint of its three million rows, `q23-digest.sql`),
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
/// The uneven layout of the same events: file 1 ten times the others, file 8 empty.
const UNEVEN_WEIGHTS: [usize; 9] = [1, 10, 1, 1, 1, 1, 1, 1, 0];
/// In the uneven layout, every run of this many rows of a file is written backwards (about 0.2 s
/// of event time in the long file, 2 s in the others: within the 4 s watermark delay).
const REVERSED_RUN: usize = 24;

fn nexmark_dir() -> PathBuf {
    manifest_dir().join("sql-tests/nexmark")
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
async fn write_files(dir: &Path, events: u64, weights: &[usize], reverse: usize) {
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
    let mut lines: Vec<Vec<String>> = vec![Vec::new(); weights.len()];
    let mut n = 0usize;
    for b in &batches {
        let names = b.schema();
        for row in 0..b.num_rows() {
            let mut object = Map::new();
            for (field, column) in names.fields().iter().zip(b.columns()) {
                object.insert(field.name().clone(), json_value(column.as_ref(), row));
            }
            lines[slots[n % total]].push(serde_json::to_string(&Value::Object(object)).unwrap());
            n += 1;
        }
    }
    assert_eq!(n as u64, events, "the source gave {n} events");
    for (k, mut rows) in lines.into_iter().enumerate() {
        // Out of order within the watermark delay: each run of `reverse` rows of a file (well
        // under 4 s of event time) backwards.
        if reverse > 1 {
            for chunk in rows.chunks_mut(reverse) {
                chunk.reverse();
            }
        }
        let f = std::fs::File::create(dir.join(format!("part-{k}.json"))).unwrap();
        let mut f = std::io::BufWriter::new(f);
        for line in rows {
            f.write_all(line.as_bytes()).unwrap();
            f.write_all(b"\n").unwrap();
        }
        f.flush().unwrap();
    }
}

/// The files every test reads, written once per test process.
fn files() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        let uneven = dir.path().join("uneven");
        // Its own runtime: the caller's test runtime cannot be blocked on.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Runtime::new()
                        .unwrap()
                        .block_on(write_files(&path, EVENTS, &[1; FILES], 1));
                    // The same events as nine files: one empty, one ten times longer than the
                    // others, each out of order within the watermark delay.
                    tokio::runtime::Runtime::new()
                        .unwrap()
                        .block_on(write_files(&uneven, EVENTS, &UNEVEN_WEIGHTS, REVERSED_RUN));
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
    write_files(Path::new(&dir), events, &weights, 1).await;
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
            let select = rest[after_table..].trim().to_string();
            query = Some(if q == "q23" {
                // Millions of rows: compared by a fingerprint (q23-digest.sql).
                let digest: String = std::fs::read_to_string(nexmark_dir().join("q23-digest.sql"))
                    .unwrap()
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                digest.replace("%QUERY%", &select)
            } else {
                select
            });
        } else if text.contains("CREATE FUNCTION") {
            setup.push(text.to_string());
        } else if text.contains("CREATE TABLE side_input") {
            // q13's side input, with Flink's legacy connector options swapped for today's.
            let path = files().join("side_input.txt");
            if !path.exists() {
                let side: String = (0..10_000).map(|k| format!("{k},value-{k}\n")).collect();
                std::fs::write(&path, side).unwrap();
            }
            setup.push(format!(
                "CREATE TABLE side_input (key BIGINT, `value` VARCHAR) WITH ('connector' = \
                 'filesystem', 'path' = '{}', 'format' = 'csv')",
                path.display()
            ));
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

/// How one run reads the events.
#[derive(Debug, Clone, Copy)]
struct Run {
    mode: &'static str,
    /// `None`: the default (the machine's cores).
    parallelism: Option<usize>,
    /// The uneven layout (nine files, one empty, one ten times longer, out of order within
    /// the watermark delay) instead of Flink's eight even files.
    uneven: bool,
    /// `'weir.stream.split-size'`: byte-range splits.
    split_size: Option<&'static str>,
    seed: Option<u64>,
}

impl Run {
    fn new(mode: &'static str, parallelism: usize) -> Run {
        Run {
            mode,
            parallelism: Some(parallelism),
            uneven: false,
            split_size: None,
            seed: None,
        }
    }
}

/// The final rows of query `q`'s SELECT in `run`, in canonical form (doubles rounded when
/// `round`).
async fn answer(q: &str, run: Run) -> Vec<String> {
    let root = files();
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let mut set = format!("SET 'execution.runtime-mode' = '{}';", run.mode);
    if let Some(p) = run.parallelism {
        set.push_str(&format!(" SET 'parallelism.default' = '{p}';"));
    }
    if let Some(size) = run.split_size {
        set.push_str(&format!(" SET 'weir.stream.split-size' = '{size}';"));
    }
    if let Some(seed) = run.seed {
        set.push_str(&format!(
            " SET 'weir.testing.perturbation-seed' = '{seed}';"
        ));
    }
    s.execute_sql(&set).await.unwrap();
    let dir = root.join(if run.uneven { "uneven" } else { "events" });
    s.execute_sql(&files_ddl(&dir)).await.unwrap();
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
    canonical_rows(&all_batches(&mut s, &query).await)
}

/// The reference answer of `q`: Flink's where it ran the query, else Weir's batch answer (q6,
/// which Flink cannot run; q13, whose side input Flink refuses).
async fn reference(q: &str) -> Vec<String> {
    if nexmark_dir()
        .join(format!("expected-flink/{q}.txt"))
        .exists()
    {
        expected(q)
    } else {
        answer(q, Run::new("batch", 4)).await
    }
}

/// Runs query `q` as `run` says and compares its final rows with the reference answer.
async fn check_run(q: &str, run: Run, reference: &[String]) {
    let actual = answer(q, run).await;
    if actual != reference {
        let (extra, extra_rows) = missing_from(&actual, reference);
        let (missing, missing_rows) = missing_from(reference, &actual);
        panic!(
            "{q} ({run:?}): {} rows, reference {}; {extra} rows not in the reference, e.g.\n  \
             {}\n{missing} of the reference's rows missing, e.g.\n  {}",
            actual.len(),
            reference.len(),
            extra_rows.join("\n  "),
            missing_rows.join("\n  ")
        );
    }
}

/// Runs query `q`'s SELECT over Flink's files in `mode` at `parallelism` and compares its final
/// rows with Flink's.
async fn check(q: &str, mode: &'static str, parallelism: usize) {
    check_run(q, Run::new(mode, parallelism), &expected(q)).await;
}

/// The scheduling-independence runs of a query over the uneven layout: parallelism 1, 2 and 4,
/// each with perturbation seeds 1, 2 and 3; odd seeds read one split per file, even seeds byte
/// ranges of 16 KiB. `cargo test` runs three of them (each parallelism once, seeds and layouts
/// varying); `WEIR_LONG_TESTS=1` all nine (q23: the sample).
fn scheduling_runs(q: &str) -> Vec<Run> {
    // q23's answer is three million rows (35 s a run in a debug build): the sample always.
    let long = std::env::var("WEIR_LONG_TESTS").is_ok_and(|v| v == "1") && q != "q23";
    let mut runs = Vec::new();
    for (i, parallelism) in [1usize, 2, 4].into_iter().enumerate() {
        for seed in 1..=3u64 {
            if long || seed as usize == i + 1 {
                runs.push(Run {
                    mode: "streaming",
                    parallelism: Some(parallelism),
                    uneven: true,
                    split_size: (seed % 2 == 0).then_some("16kb"),
                    seed: Some(seed),
                });
            }
        }
    }
    runs
}

async fn check_scheduling(q: &str) {
    let reference = reference(q).await;
    assert!(!reference.is_empty(), "{q}: empty reference");
    for run in scheduling_runs(q) {
        check_run(q, run, &reference).await;
    }
}

/// Running the same streaming query again at the default parallelism (no perturbation) gives the
/// same answer, exactly: ten times with `WEIR_LONG_TESTS=1`, three times otherwise.
async fn check_repeatable(q: &str) {
    let long = std::env::var("WEIR_LONG_TESTS").is_ok_and(|v| v == "1");
    let run = Run {
        mode: "streaming",
        parallelism: None,
        uneven: true,
        split_size: None,
        seed: None,
    };
    let first = answer(q, run).await;
    assert!(!first.is_empty(), "{q}: no rows");
    for k in 1..if long { 10 } else { 3 } {
        let again = answer(q, run).await;
        assert!(
            again == first,
            "{q}: run {} gave another answer than run 1",
            k + 1
        );
    }
}

/// One test per query in `mode` at `parallelism`: `$module::qN`.
macro_rules! nexmark {
    ($module:ident, $mode:literal, $parallelism:expr) => {
        mod $module {
            nexmark!(@each $mode, $parallelism;
                q0, q1, q2, q3, q4, q5, q7, q8, q9, q10, q11, q14, q15, q16, q17, q18, q19, q20,
                q21, q22, q23);
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
nexmark!(streaming_files, "streaming", super::FILES);

/// Every streaming query (q12 aside: processing time) over the uneven layout under
/// [`scheduling_runs`]: `scheduling::qN`.
mod scheduling {
    macro_rules! each {
        ($($q:ident),*) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $q() {
                super::check_scheduling(stringify!($q)).await;
            }
        )*};
    }
    each!(
        q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11, q13, q14, q15, q16, q17, q18, q19, q20,
        q21, q22, q23
    );
}

/// The same answer every time: `repeatable::qN`.
mod repeatable {
    macro_rules! each {
        ($($q:ident),*) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $q() {
                super::check_repeatable(stringify!($q)).await;
            }
        )*};
    }
    each!(q4, q5, q8, q9, q18, q19, q23);
}

/// The checkout under test: cargo's run-time `CARGO_MANIFEST_DIR` (the compile-time value can name
/// another checkout when several share one target directory and a build was reused).
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
