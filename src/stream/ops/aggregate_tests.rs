//! Tests of the streaming `GROUP BY`: the operators driven directly (changelog output, window
//! firing, late rows), and whole queries run in batch and streaming mode through a session,
//! whose results must be equal.

use super::*;
use datafusion::arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::physical_expr::expressions::Column;
use futures::TryStreamExt;

use crate::session::{Session, StatementResult};
use crate::stream::changes::materialize;
use crate::stream::ops::codec::testing::{Event, assert_restores, checkpoint};

fn col(name: &str, i: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(name, i))
}

/// `(k STRING, v BIGINT)` rows.
fn kv(rows: &[(&str, i64)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// `SELECT k, COUNT(*), MIN(v) ... GROUP BY k` (or without `GROUP BY` when `global`).
fn count_min_spec(global: bool) -> Arc<CoreSpec> {
    let mut fields = Vec::new();
    if !global {
        fields.push(Field::new("k", DataType::Utf8, true));
    }
    fields.push(Field::new("c", DataType::Int64, false));
    fields.push(Field::new("m", DataType::Int64, true));
    Arc::new(CoreSpec {
        group_exprs: if global { vec![] } else { vec![col("k", 0)] },
        group_types: if global { vec![] } else { vec![DataType::Utf8] },
        specs: vec![
            AggSpec::new(AggKind::Count, false, None, None, DataType::Int64).unwrap(),
            AggSpec::new(
                AggKind::Min,
                false,
                Some((col("v", 1), DataType::Int64)),
                None,
                DataType::Int64,
            )
            .unwrap(),
        ],
        schema: Arc::new(Schema::new(fields)),
    })
}

/// Each output row as `op col1 col2 ...`.
fn lines(out: &Output) -> Vec<String> {
    let mut v = Vec::new();
    for c in &out.changes {
        for r in 0..c.num_rows() {
            let mut s = c.kind(r).short().to_string();
            for a in c.data.columns() {
                s.push(' ');
                s.push_str(&array_value_to_string(a, r).unwrap());
            }
            v.push(s);
        }
    }
    v
}

#[tokio::test]
async fn group_aggregate_emits_a_changelog() {
    let ctx = OperatorContext::for_tests();
    let mut op = GroupAggregate::new(count_min_spec(false), &ctx).unwrap();
    let mut out = Output::default();
    op.process(
        0,
        Changes::inserts(kv(&[("a", 5), ("b", 1), ("a", 3)])),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(lines(&out), vec!["+I a 2 3", "+I b 1 1"]);

    // Retract a's minimum: a's MIN falls back to 5; b gets a row that changes nothing visible
    // except the count.
    let mut out = Output::default();
    let changes = Changes::new(
        kv(&[("a", 3), ("b", 7)]),
        vec![RowKind::Delete, RowKind::Insert],
    )
    .unwrap();
    op.process(0, changes, &mut out).await.unwrap();
    assert_eq!(
        lines(&out),
        vec!["-U a 2 3", "+U a 1 5", "-U b 1 1", "+U b 2 1"]
    );

    // An update that leaves the result unchanged emits nothing; emptying a group deletes it.
    let mut out = Output::default();
    let changes = Changes::new(
        kv(&[("b", 7), ("b", 7), ("a", 5)]),
        vec![RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete],
    )
    .unwrap();
    op.process(0, changes, &mut out).await.unwrap();
    assert_eq!(lines(&out), vec!["-D a 1 5"]);
    assert_eq!(op.state_rows(), 1);
}

#[tokio::test]
async fn global_aggregate_gives_one_row_like_batch() {
    let ctx = OperatorContext::for_tests();
    // Nothing at all: one row at the end.
    let mut op = GroupAggregate::new(count_min_spec(true), &ctx).unwrap();
    let mut out = Output::default();
    op.on_end(&mut out).await.unwrap();
    assert_eq!(lines(&out), vec!["+I 0 "]);

    // Rows then their retraction: the row stays, with COUNT 0 and MIN NULL.
    let mut op = GroupAggregate::new(count_min_spec(true), &ctx).unwrap();
    let mut out = Output::default();
    op.process(0, Changes::inserts(kv(&[("a", 4)])), &mut out)
        .await
        .unwrap();
    let retract = Changes::new(kv(&[("a", 4)]), vec![RowKind::Delete]).unwrap();
    op.process(0, retract, &mut out).await.unwrap();
    op.on_end(&mut out).await.unwrap();
    assert_eq!(lines(&out), vec!["+I 1 4", "-U 1 4", "+U 0 "]);
}

/// `(k, window_start, window_end, v)` rows; windows given by their end (10 s long).
fn windowed(rows: &[(&str, i64, i64)]) -> RecordBatch {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("window_start", ts.clone(), false),
        Field::new("window_end", ts, false),
        Field::new("v", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| r.1 - 10_000).collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn window_spec() -> Arc<CoreSpec> {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    Arc::new(CoreSpec {
        group_exprs: vec![col("window_start", 1), col("window_end", 2), col("k", 0)],
        group_types: vec![ts.clone(), ts.clone(), DataType::Utf8],
        specs: vec![
            AggSpec::new(
                AggKind::Sum,
                false,
                Some((col("v", 3), DataType::Int64)),
                None,
                DataType::Int64,
            )
            .unwrap(),
        ],
        schema: Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("k", DataType::Utf8, true),
            Field::new("s", DataType::Int64, true),
        ])),
    })
}

#[tokio::test]
async fn window_aggregate_fires_on_watermark_and_drops_late_rows() {
    let ctx = OperatorContext::for_tests();
    let mut op = WindowAggregate::new(window_spec(), 1, false, ctx.clone()).unwrap();
    let mut out = Output::default();
    op.process(
        0,
        Changes::inserts(windowed(&[
            ("a", 10_000, 1),
            ("a", 10_000, 2),
            ("a", 20_000, 5),
        ])),
        &mut out,
    )
    .await
    .unwrap();
    assert!(out.changes.is_empty());
    // Not yet: the window [0, 10 s) closes at watermark 9999.
    op.on_watermark(9_998, &mut out).await.unwrap();
    assert!(out.changes.is_empty());
    op.on_watermark(9_999, &mut out).await.unwrap();
    assert_eq!(
        lines(&out),
        vec!["+I 1970-01-01T00:00:00 1970-01-01T00:00:10 a 3"]
    );
    assert_eq!(op.state_rows(), 1);
    // A row for the fired window is late: dropped and counted.
    let mut out = Output::default();
    op.process(
        0,
        Changes::inserts(windowed(&[("a", 10_000, 100), ("b", 20_000, 1)])),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(NodeCountersExt::late(&ctx), 1);
    op.on_watermark(WATERMARK_MAX, &mut out).await.unwrap();
    op.on_end(&mut out).await.unwrap();
    assert_eq!(
        lines(&out),
        vec![
            "+I 1970-01-01T00:00:10 1970-01-01T00:00:20 a 5",
            "+I 1970-01-01T00:00:10 1970-01-01T00:00:20 b 1",
        ]
    );
}

struct NodeCountersExt;

impl NodeCountersExt {
    fn late(ctx: &OperatorContext) -> u64 {
        crate::stream::operator::NodeCounters::get(&ctx.counters.late_rows_dropped)
    }
}

/// Runs `sql` (the last statement must return rows) and gives the column types and the rows as
/// sorted strings; a streaming changelog is materialized first.
async fn run(session: &mut Session, sql: &str) -> (Vec<DataType>, Vec<String>) {
    let mut results = session
        .execute_sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let Some(StatementResult::Rows(result)) = results.pop() else {
        panic!("{sql}: no rows");
    };
    let schema = Arc::clone(&result.schema);
    let batches: Vec<RecordBatch> = result
        .stream
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batch = if result.changelog {
        materialize(&schema, &batches).unwrap()
    } else {
        datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap()
    };
    let types = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let mut rows: Vec<String> = (0..batch.num_rows())
        .map(|r| {
            batch
                .columns()
                .iter()
                .map(|c| array_value_to_string(c, r).unwrap())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    rows.sort();
    (types, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_equals_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,k,v,d,ts\n");
    let keys = ["a", "b", "c", "a", "b", "a", "d", "c", "a", "b"];
    for i in 0..40i64 {
        let k = keys[(i % 10) as usize];
        let v = if i % 7 == 3 {
            String::new()
        } else {
            ((i * 13) % 9).to_string()
        };
        let d = format!("{}.{:02}", (i * 7) % 23, (i * 37) % 100);
        // Mostly ordered, a little out of order (within the 1 s watermark delay).
        let ts_ms = i * 1_500 + if i % 4 == 1 { -700 } else { 0 };
        let ts = format!(
            "2024-01-01 00:{:02}:{:02}.{:03}",
            ts_ms / 60_000,
            (ts_ms / 1000) % 60,
            ts_ms % 1000
        );
        csv.push_str(&format!("{i},{k},{v},{d},{ts}\n"));
    }
    std::fs::write(dir.path().join("orders.csv"), csv).unwrap();
    let create = format!(
        "CREATE TABLE orders (id INT, k STRING, v INT, d DECIMAL(10, 2), ts TIMESTAMP(3), \
         WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'csv', 'csv.header' = 'true')",
        dir.path().display()
    );
    let queries = [
        "SELECT k, COUNT(*), COUNT(v), SUM(v), AVG(v), MIN(v), MAX(v) FROM orders GROUP BY k",
        "SELECT k, COUNT(DISTINCT v), SUM(DISTINCT v) FROM orders GROUP BY k",
        "SELECT k, COUNT(*) FILTER (WHERE v > 2), SUM(v) FILTER (WHERE v > 2), MIN(d) \
         FILTER (WHERE v < 5) FROM orders GROUP BY k",
        "SELECT k, SUM(v) AS s FROM orders GROUP BY k HAVING SUM(v) > 30",
        "SELECT SUM(d), AVG(d), MIN(d), MAX(d), COUNT(*) FROM orders",
        "SELECT COUNT(*), SUM(v), AVG(d) FROM orders WHERE v > 1000",
        "SELECT k, v % 3 AS m, COUNT(*) FROM orders GROUP BY k, v % 3",
        // Aggregates over aggregates: the inner one's retractions feed the outer one.
        "SELECT c, COUNT(*), SUM(s) FROM (SELECT k, COUNT(*) AS c, SUM(v) AS s FROM orders \
         GROUP BY k) GROUP BY c",
        "SELECT MIN(s), MAX(s), AVG(s), COUNT(DISTINCT s) FROM (SELECT k, MAX(v) AS s \
         FROM orders GROUP BY k)",
        "SELECT window_start, window_end, k, COUNT(*), SUM(v), MAX(d) FROM TABLE(TUMBLE(TABLE \
         orders, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end, k",
        "SELECT window_start, window_end, COUNT(*), AVG(v) FROM TABLE(HOP(TABLE orders, \
         DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '15' SECOND)) GROUP BY window_start, \
         window_end",
        "SELECT window_start, window_end, k, SUM(v), COUNT(DISTINCT v) FROM TABLE(CUMULATE(TABLE \
         orders, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '20' SECOND)) GROUP BY \
         window_start, window_end, k",
        "SELECT k, COUNT(*) AS windows, SUM(c) FROM (SELECT window_start, window_end, k, \
         COUNT(*) AS c FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND)) \
         GROUP BY window_start, window_end, k) GROUP BY k",
        // A window aggregate over a window aggregate's output (its window columns carry over).
        "SELECT window_start, window_end, SUM(c), MAX(c) FROM (SELECT window_start, window_end, \
         k, COUNT(*) AS c FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' \
         SECOND)) GROUP BY window_start, window_end, k) GROUP BY window_start, window_end",
    ];
    for parallelism in ["1", "2"] {
        let mut session = Session::open(Default::default()).await.unwrap();
        session.execute_sql(&create).await.unwrap();
        // Small batches, so that updating aggregates emit (and their consumers see) retractions.
        session
            .execute_sql("SET 'datafusion.execution.batch_size' = '3'")
            .await
            .unwrap();
        session
            .execute_sql(&format!("SET 'parallelism.default' = '{parallelism}'"))
            .await
            .unwrap();
        for q in queries {
            session
                .execute_sql("SET 'execution.runtime-mode' = 'batch'")
                .await
                .unwrap();
            let batch = run(&mut session, q).await;
            session
                .execute_sql("SET 'execution.runtime-mode' = 'streaming'")
                .await
                .unwrap();
            let streaming = run(&mut session, q).await;
            assert!(!batch.1.is_empty(), "{q}: empty batch result");
            assert_eq!(batch, streaming, "{q} (parallelism {parallelism})");
        }
    }
}

#[tokio::test]
async fn unsupported_aggregates_are_named() {
    let mut session = Session::open(Default::default()).await.unwrap();
    session
        .execute_sql("SET 'execution.runtime-mode' = 'streaming'")
        .await
        .unwrap();
    let sql = "SELECT k, STDDEV(v) FROM (VALUES ('a', 1), ('b', 2)) AS t(k, v) GROUP BY k";
    let err = match session.execute_sql(sql).await {
        Ok(mut results) => match results.pop() {
            Some(StatementResult::Rows(r)) => r
                .stream
                .try_collect::<Vec<_>>()
                .await
                .map(|_| ())
                .unwrap_err()
                .to_string(),
            _ => panic!("no rows"),
        },
        Err(e) => e.to_string(),
    };
    assert!(err.to_uppercase().contains("STDDEV"), "{err}");
    assert!(err.contains("not supported"), "{err}");
}

#[tokio::test]
async fn state_ttl_forgets_idle_groups() {
    let mut ctx = OperatorContext::for_tests();
    ctx.settings = Arc::new(crate::stream::operator::StreamSettings {
        state_ttl: Some(Duration::from_secs(60)),
        ..(*ctx.settings).clone()
    });
    let mut op = GroupAggregate::new(count_min_spec(false), &ctx).unwrap();
    assert_eq!(op.tick_interval(), Some(Duration::from_secs(15)));
    let mut out = Output::default();
    op.process(0, Changes::inserts(kv(&[("a", 1)])), &mut out)
        .await
        .unwrap();
    let now = crate::stream::state::now_ms();
    op.on_tick(now, &mut out).await.unwrap();
    assert_eq!(op.state_rows(), 1);
    op.on_tick(now + 61_000, &mut out).await.unwrap();
    assert_eq!(op.state_rows(), 0);
    // An expired group starts over (as in Flink): a new +I, nothing retracted.
    let mut out = Output::default();
    op.process(0, Changes::inserts(kv(&[("a", 2)])), &mut out)
        .await
        .unwrap();
    assert_eq!(lines(&out), vec!["+I a 1 2"]);
}

#[tokio::test]
async fn processing_time_windows_fire_on_the_clock() {
    let ctx = OperatorContext::for_tests();
    let mut op = WindowAggregate::new(window_spec(), 1, true, ctx.clone()).unwrap();
    assert!(op.tick_interval().is_some());
    let mut out = Output::default();
    op.process(
        0,
        Changes::inserts(windowed(&[("a", 10_000, 1), ("a", 20_000, 2)])),
        &mut out,
    )
    .await
    .unwrap();
    // Watermarks do not close processing-time windows, and nothing is late.
    op.on_watermark(50_000, &mut out).await.unwrap();
    op.on_tick(9_998, &mut out).await.unwrap();
    assert!(out.changes.is_empty());
    op.on_tick(9_999, &mut out).await.unwrap();
    assert_eq!(
        lines(&out),
        vec!["+I 1970-01-01T00:00:00 1970-01-01T00:00:10 a 1"]
    );
    // The end of input flushes the rest.
    let mut out = Output::default();
    op.on_watermark(WATERMARK_MAX, &mut out).await.unwrap();
    op.on_end(&mut out).await.unwrap();
    assert_eq!(
        lines(&out),
        vec!["+I 1970-01-01T00:00:10 1970-01-01T00:00:20 a 2"]
    );
    assert_eq!(NodeCountersExt::late(&ctx), 0);
}

/// `(k, v, f)` rows with their kinds.
fn kvf(rows: &[(&str, i64, f64)], kinds: &[RowKind]) -> Changes {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("f", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(datafusion::arrow::array::Float64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    if kinds.is_empty() {
        Changes::inserts(batch)
    } else {
        Changes::new(batch, kinds.to_vec()).unwrap()
    }
}

/// `SELECT k, COUNT(*), MIN(v), MAX(k), SUM(DISTINCT v), AVG(f), SUM(f) ... GROUP BY k` over
/// `kvf` rows (every accumulator kind); `key`: group by `v` (BIGINT) instead; `global`: no key.
fn rich_spec(key: &str) -> Arc<CoreSpec> {
    let (group_exprs, group_types, mut fields) = match key {
        "k" => (
            vec![col("k", 0)],
            vec![DataType::Utf8],
            vec![Field::new("k", DataType::Utf8, true)],
        ),
        "v" => (
            vec![col("v", 1)],
            vec![DataType::Int64],
            vec![Field::new("v", DataType::Int64, true)],
        ),
        _ => (vec![], vec![], vec![]),
    };
    let agg = |kind, distinct, arg: Option<(&str, usize, DataType)>, out: DataType| {
        AggSpec::new(
            kind,
            distinct,
            arg.map(|(n, i, t)| (col(n, i), t)),
            None,
            out,
        )
        .unwrap()
    };
    let specs = vec![
        agg(AggKind::Count, false, None, DataType::Int64),
        agg(
            AggKind::Min,
            false,
            Some(("v", 1, DataType::Int64)),
            DataType::Int64,
        ),
        agg(
            AggKind::Max,
            false,
            Some(("k", 0, DataType::Utf8)),
            DataType::Utf8,
        ),
        agg(
            AggKind::Sum,
            true,
            Some(("v", 1, DataType::Int64)),
            DataType::Int64,
        ),
        agg(
            AggKind::Avg,
            false,
            Some(("f", 2, DataType::Float64)),
            DataType::Float64,
        ),
        agg(
            AggKind::Sum,
            false,
            Some(("f", 2, DataType::Float64)),
            DataType::Float64,
        ),
    ];
    for (name, t) in [
        ("c", DataType::Int64),
        ("mn", DataType::Int64),
        ("mx", DataType::Utf8),
        ("sd", DataType::Int64),
        ("af", DataType::Float64),
        ("sf", DataType::Float64),
    ] {
        fields.push(Field::new(name, t, true));
    }
    Arc::new(CoreSpec {
        group_exprs,
        group_types,
        specs,
        schema: Arc::new(Schema::new(fields)),
    })
}

fn group_events() -> Vec<Event> {
    use RowKind::{Delete as D, Insert as I, UpdateAfter as UA, UpdateBefore as UB};
    vec![
        Event::Input(
            0,
            kvf(
                &[("a", 5, 0.1), ("b", 1, 1e16), ("a", 3, 0.2), ("a", 3, -7.5)],
                &[],
            ),
        ),
        Event::Input(0, kvf(&[("b", 2, 0.3), ("c", 9, 1e-300)], &[])),
        // Retract a's minimum (one of the two 3s), then the other: MIN falls back to 5.
        Event::Input(0, kvf(&[("a", 3, 0.2)], &[D])),
        Event::Input(0, kvf(&[("a", 3, -7.5), ("b", 7, 0.1)], &[D, I])),
        // Retract 1e16: the small values come back exactly.
        Event::Input(0, kvf(&[("b", 1, 1e16), ("b", 2, 0.7)], &[UB, UA])),
        // Empty a group (deleted), then bring it back.
        Event::Input(0, kvf(&[("c", 9, 1e-300)], &[D])),
        Event::Input(0, kvf(&[("c", 4, f64::NAN), ("a", 6, 0.1)], &[])),
        Event::End,
    ]
}

#[tokio::test]
async fn group_aggregate_restores_from_a_checkpoint() {
    let out = assert_restores(
        |ctx| Box::new(GroupAggregate::new(rich_spec("k"), ctx).unwrap()),
        &group_events(),
    )
    .await;
    let all: Vec<&String> = out.iter().flatten().collect();
    assert!(all.iter().any(|l| l.starts_with("-U a")), "{all:?}");
    assert!(all.iter().any(|l| l.starts_with("-D c")), "{all:?}");
    // The float sum after retracting 1e16 is the correctly rounded 0.3 + 0.1 + 0.7.
    assert!(
        all.contains(&&"+U b 3 2 b 9 0.36666666666666664 1.0999999999999999".to_string()),
        "{all:?}"
    );

    // A global aggregate: its one row, and on_end's row over no input only when nothing was
    // emitted before the checkpoint.
    assert_restores(
        |ctx| Box::new(GroupAggregate::new(rich_spec(""), ctx).unwrap()),
        &group_events(),
    )
    .await;
    let out = assert_restores(
        |ctx| Box::new(GroupAggregate::new(rich_spec(""), ctx).unwrap()),
        &[Event::Watermark(5), Event::End],
    )
    .await;
    assert_eq!(out[1].len(), 1, "{out:?}");
    // `SELECT k ... GROUP BY k`: no aggregates, nothing but the group's existence.
    let keys_only = Arc::new(CoreSpec {
        group_exprs: vec![col("k", 0)],
        group_types: vec![DataType::Utf8],
        specs: vec![],
        schema: Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)])),
    });
    let out = assert_restores(
        |ctx| Box::new(GroupAggregate::new(Arc::clone(&keys_only), ctx).unwrap()),
        &group_events(),
    )
    .await;
    assert!(out.iter().flatten().any(|l| l == "-D c"), "{out:?}");
}

#[tokio::test]
async fn window_aggregate_restores_from_a_checkpoint() {
    let events = vec![
        Event::Input(
            0,
            Changes::inserts(windowed(&[
                ("a", 10_000, 1),
                ("a", 10_000, 2),
                ("b", 20_000, 5),
            ])),
        ),
        Event::Watermark(5_000),
        Event::Input(
            0,
            Changes::inserts(windowed(&[("a", 20_000, 4), ("b", 10_000, 3)])),
        ),
        Event::Watermark(9_999),
        // Late: the window ending at 10 s fired.
        Event::Input(
            0,
            Changes::inserts(windowed(&[("a", 10_000, 100), ("b", 30_000, 6)])),
        ),
        Event::Watermark(19_999),
        Event::End,
    ];
    let out = assert_restores(
        |ctx| Box::new(WindowAggregate::new(window_spec(), 1, false, ctx.clone()).unwrap()),
        &events,
    )
    .await;
    assert_eq!(out[3].len(), 2, "{out:?}");
    assert_eq!(out[5].len(), 2, "{out:?}");
}

#[tokio::test]
async fn aggregate_state_of_other_types_is_incompatible_and_corrupt_state_an_error() {
    let ctx = OperatorContext::for_tests();
    let mut op = GroupAggregate::new(rich_spec("k"), &ctx).unwrap();
    run_events(&mut op, &group_events()[..3]).await;
    let snapshot = checkpoint(&mut op);
    // Other key types; other aggregate types (COUNT, MIN over the same key).
    for spec in [rich_spec("v"), count_min_spec(false)] {
        let mut other = GroupAggregate::new(spec, &ctx).unwrap();
        let err = other.restore(&snapshot).unwrap_err();
        assert!(err.to_string().contains("incompatible state"), "{err}");
    }
    // A window aggregate's accumulators are not a group aggregate's.
    let mut windows = WindowAggregate::new(window_spec(), 1, false, ctx.clone()).unwrap();
    let mut s = StateSnapshot::new();
    let table = snapshot.get("Test-0.groups").unwrap().clone();
    s.put("Test-0.windows", table.clone());
    let err = windows.restore(&s).unwrap_err();
    assert!(err.to_string().contains("incompatible state"), "{err}");

    // Every truncation of every value is an error (never a panic), and leaves no state.
    let values = table
        .column(2)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::BinaryArray>()
        .unwrap()
        .clone();
    for row in 0..values.len() {
        for cut in 0..values.value(row).len() {
            let mut v: Vec<Vec<u8>> = values.iter().map(|b| b.unwrap().to_vec()).collect();
            v[row].truncate(cut);
            let garbled = RecordBatch::try_new(
                table.schema(),
                vec![
                    Arc::clone(table.column(0)),
                    Arc::clone(table.column(1)),
                    Arc::new(datafusion::arrow::array::BinaryArray::from_iter_values(v)),
                ],
            )
            .unwrap();
            let mut s = snapshot.clone();
            s.put("Test-0.groups", garbled);
            let mut fresh = GroupAggregate::new(rich_spec("k"), &ctx).unwrap();
            let err = fresh.restore(&s).unwrap_err();
            assert!(
                err.to_string().contains("corrupt checkpoint state"),
                "row {row} cut {cut}: {err}"
            );
            assert_eq!(fresh.state_rows(), 0);
        }
    }
}

async fn run_events(op: &mut dyn Operator, events: &[Event]) {
    crate::stream::ops::codec::testing::run(op, events).await;
}
