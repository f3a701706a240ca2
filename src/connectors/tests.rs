//! Tests of the connectors through a DataFusion `SessionContext`: real files in temporary
//! directories, written with `INSERT` and read back with `SELECT`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::{Int32Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::prelude::SessionContext;

use super::*;
use crate::catalog::{ColumnDef, ColumnKind};
use crate::error::ErrorKind;
use crate::types::SqlType;

fn table(cols: &[(&str, SqlType)], partition: &[&str], opts: &[(&str, &str)]) -> TableDef {
    TableDef {
        columns: cols
            .iter()
            .map(|(n, t)| ColumnDef {
                name: n.to_string(),
                kind: ColumnKind::Physical {
                    data_type: t.clone(),
                    nullable: true,
                },
                comment: None,
            })
            .collect(),
        watermark: None,
        primary_key: None,
        partition_keys: partition.iter().map(|s| s.to_string()).collect(),
        options: opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        comment: None,
    }
}

fn fs_table(
    dir: &Path,
    format: &str,
    cols: &[(&str, SqlType)],
    partition: &[&str],
    extra: &[(&str, &str)],
) -> TableDef {
    let path = dir.to_string_lossy().to_string();
    let mut opts = vec![
        ("connector", "filesystem"),
        ("path", path.as_str()),
        ("format", format),
    ];
    opts.extend_from_slice(extra);
    table(cols, partition, &opts)
}

fn register(ctx: &SessionContext, name: &str, def: &TableDef) {
    let provider = create_table_provider(name, def).unwrap();
    ctx.register_table(name, provider).unwrap();
}

async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let df = ctx.sql(sql).await?;
    Ok(df.collect().await?)
}

async fn show(ctx: &SessionContext, sql: &str) -> String {
    let batches = run(ctx, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&batches).unwrap().to_string()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// Files (relative paths) under `dir`, sorted, recursively.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .to_string(),
                );
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

fn all_types() -> Vec<(&'static str, SqlType)> {
    vec![
        ("id", SqlType::Int),
        ("name", SqlType::String),
        ("price", SqlType::Double),
        ("big", SqlType::BigInt),
        ("ok", SqlType::Boolean),
        ("d", SqlType::Date),
        ("ts", SqlType::Timestamp { precision: 3 }),
        (
            "amount",
            SqlType::Decimal {
                precision: 10,
                scale: 2,
            },
        ),
    ]
}

#[tokio::test]
async fn round_trip_every_format() {
    for format in ["csv", "json", "parquet"] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        let ctx = SessionContext::new();
        let def = fs_table(&root, format, &all_types(), &[], &[]);
        register(&ctx, "t", &def);
        let count = show(
            &ctx,
            "INSERT INTO t VALUES \
             (1, 'foo', 1.5, 10000000000, true, DATE '2024-01-02', TIMESTAMP '2024-01-02 03:04:05.678', 12.34), \
             (2, 'bar, \"baz\"', NULL, -1, false, NULL, NULL, -0.5)",
        )
        .await;
        assert!(count.contains("| 2     |"), "{format}: {count}");
        let files = files_under(&root);
        assert_eq!(files.len(), 1, "{format}: {files:?}");
        assert!(
            files[0].starts_with("part-") && files[0].ends_with(&format!(".{format}")),
            "{files:?}"
        );

        let batches = run(&ctx, "SELECT * FROM t ORDER BY id").await.unwrap();
        assert_eq!(batches[0].schema(), physical_schema(&def), "{format}");
        let text = pretty_format_batches(&batches).unwrap().to_string();
        assert_eq!(
            lines(&text),
            vec![
                "+----+------------+-------+-------------+-------+------------+-------------------------+--------+",
                "| id | name       | price | big         | ok    | d          | ts                      | amount |",
                "+----+------------+-------+-------------+-------+------------+-------------------------+--------+",
                "| 1  | foo        | 1.5   | 10000000000 | true  | 2024-01-02 | 2024-01-02T03:04:05.678 | 12.34  |",
                "| 2  | bar, \"baz\" |       | -1          | false |            |                         | -0.50  |",
                "+----+------------+-------+-------------+-------+------------+-------------------------+--------+",
            ],
            "{format}"
        );
        // A second insert is seen by the next read (no stale directory listing).
        show(
            &ctx,
            "INSERT INTO t VALUES (3, 'x', 0.0, 0, true, NULL, NULL, 0)",
        )
        .await;
        assert!(
            show(&ctx, "SELECT count(*) AS n FROM t")
                .await
                .contains("| 3 |"),
            "{format}"
        );
        assert_eq!(files_under(&root).len(), 2);
    }
}

#[tokio::test]
async fn csv_options_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let cols = [("id", SqlType::Int), ("name", SqlType::String)];
    let def = fs_table(
        dir.path(),
        "csv",
        &cols,
        &[],
        &[
            ("csv.field-delimiter", ";"),
            ("csv.header", "true"),
            ("csv.null-literal", "N/A"),
            ("csv.quote-character", "'"),
        ],
    );
    register(&ctx, "t", &def);
    show(
        &ctx,
        "INSERT INTO t VALUES (1, 'a;b'), (2, NULL), (NULL, 'c')",
    )
    .await;
    let files = files_under(dir.path());
    let text = std::fs::read_to_string(dir.path().join(&files[0])).unwrap();
    assert_eq!(text, "id;name\n1;'a;b'\n2;N/A\nN/A;c\n");
    assert_eq!(
        lines(&show(&ctx, "SELECT * FROM t ORDER BY id").await),
        vec![
            "+----+------+",
            "| id | name |",
            "+----+------+",
            "| 1  | a;b  |",
            "| 2  |      |",
            "|    | c    |",
            "+----+------+"
        ]
    );
    assert!(
        show(&ctx, "SELECT sum(id) AS s FROM t WHERE id > 1")
            .await
            .contains("| 2 |")
    );
    let nulls = show(&ctx, "SELECT count(*) AS n FROM t WHERE name IS NULL").await;
    assert!(nulls.contains("| 1 |"), "{nulls}");
}

#[tokio::test]
async fn overwrite_replaces_rows() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let def = fs_table(dir.path(), "parquet", &[("id", SqlType::Int)], &[], &[]);
    register(&ctx, "t", &def);
    show(&ctx, "INSERT INTO t VALUES (1), (2)").await;
    show(&ctx, "INSERT INTO t VALUES (3)").await;
    std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
    show(&ctx, "INSERT OVERWRITE TABLE t VALUES (10), (20)").await;
    assert_eq!(
        lines(&show(&ctx, "SELECT id FROM t ORDER BY id").await),
        vec!["+----+", "| id |", "+----+", "| 10 |", "| 20 |", "+----+"]
    );
    let files = files_under(dir.path());
    assert_eq!(
        files.len(),
        2,
        "one new data file and the untouched _SUCCESS: {files:?}"
    );
    assert!(files.contains(&"_SUCCESS".to_string()));
}

#[tokio::test]
async fn partitioned_write_read_prune_and_dynamic_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let cols = [
        ("p", SqlType::Int),
        ("id", SqlType::Int),
        ("region", SqlType::String),
        ("dt", SqlType::Date),
    ];
    let def = fs_table(dir.path(), "csv", &cols, &["p", "region"], &[]);
    register(&ctx, "t", &def);
    show(
        &ctx,
        "INSERT INTO t VALUES (1, 10, 'eu/west', DATE '2024-01-01'), (1, 11, 'eu/west', NULL), \
         (2, 20, 'us', DATE '2024-01-02'), (NULL, 30, NULL, DATE '2024-01-03')",
    )
    .await;
    let files = files_under(dir.path());
    let dirs: Vec<&str> = files
        .iter()
        .map(|f| f.rsplit_once('/').unwrap().0)
        .collect();
    assert_eq!(
        dirs,
        vec![
            "p=1/region=eu%2Fwest",
            "p=2/region=us",
            "p=__DEFAULT_PARTITION__/region=__DEFAULT_PARTITION__"
        ]
    );
    // Data files hold only the data columns.
    let text = std::fs::read_to_string(dir.path().join(&files[1])).unwrap();
    assert_eq!(text, "20,2024-01-02\n");

    let batches = run(&ctx, "SELECT * FROM t ORDER BY id").await.unwrap();
    assert_eq!(batches[0].schema(), physical_schema(&def));
    assert_eq!(
        lines(&pretty_format_batches(&batches).unwrap().to_string()),
        vec![
            "+---+----+---------+------------+",
            "| p | id | region  | dt         |",
            "+---+----+---------+------------+",
            "| 1 | 10 | eu/west | 2024-01-01 |",
            "| 1 | 11 | eu/west |            |",
            "| 2 | 20 | us      | 2024-01-02 |",
            "|   | 30 |         | 2024-01-03 |",
            "+---+----+---------+------------+",
        ]
    );
    assert!(
        show(&ctx, "SELECT id FROM t WHERE p IS NULL AND region IS NULL")
            .await
            .contains("| 30 |")
    );

    // Partition pruning: a corrupt file in partition p=2 is not read when the filter excludes it.
    std::fs::write(
        dir.path().join("p=2/region=us/bad.csv"),
        b"not,a,valid\x00row,at all\n",
    )
    .unwrap();
    assert_eq!(
        lines(&show(&ctx, "SELECT id FROM t WHERE p = 1 ORDER BY id").await),
        vec!["+----+", "| id |", "+----+", "| 10 |", "| 11 |", "+----+"]
    );
    assert!(run(&ctx, "SELECT id FROM t WHERE p = 2").await.is_err());
    std::fs::remove_file(dir.path().join("p=2/region=us/bad.csv")).unwrap();

    // Dynamic overwrite: only the partitions that receive rows are replaced.
    show(
        &ctx,
        "INSERT OVERWRITE TABLE t VALUES (1, 12, 'eu/west', NULL)",
    )
    .await;
    assert_eq!(
        lines(&show(&ctx, "SELECT p, id FROM t ORDER BY id").await),
        vec![
            "+---+----+",
            "| p | id |",
            "+---+----+",
            "| 1 | 12 |",
            "| 2 | 20 |",
            "|   | 30 |",
            "+---+----+"
        ]
    );
}

#[tokio::test]
async fn date_partition_and_custom_default_name() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let cols = [("id", SqlType::BigInt), ("dt", SqlType::Date)];
    let def = fs_table(
        dir.path(),
        "json",
        &cols,
        &["dt"],
        &[("partition.default-name", "none")],
    );
    register(&ctx, "t", &def);
    show(
        &ctx,
        "INSERT INTO t VALUES (1, DATE '2024-03-01'), (2, NULL)",
    )
    .await;
    let files = files_under(dir.path());
    assert!(
        files[0].starts_with("dt=2024-03-01/") && files[1].starts_with("dt=none/"),
        "{files:?}"
    );
    assert_eq!(
        lines(
            &show(
                &ctx,
                "SELECT * FROM t WHERE dt = DATE '2024-03-01' OR dt IS NULL ORDER BY id"
            )
            .await
        ),
        vec![
            "+----+------------+",
            "| id | dt         |",
            "+----+------------+",
            "| 1  | 2024-03-01 |",
            "| 2  |            |",
            "+----+------------+"
        ]
    );
}

/// An input that yields one batch, then an error (or never ends, when `hang`).
#[derive(Debug)]
struct FailingInput {
    schema: SchemaRef,
    hang: bool,
}

impl PartitionStream for FailingInput {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batch = RecordBatch::try_new(
            Arc::clone(&self.schema),
            vec![Arc::new(Int32Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let first = futures::stream::iter(vec![Ok(batch)]);
        let rest: SendableRecordBatchStream = if self.hang {
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                futures::stream::pending(),
            ))
        } else {
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                futures::stream::iter(vec![Err(DataFusionError::Execution(
                    "input broke halfway".into(),
                ))]),
            ))
        };
        use futures::StreamExt;
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            first.chain(rest),
        ))
    }
}

async fn insert_from(
    provider: &Arc<dyn TableProvider>,
    hang: bool,
) -> datafusion::error::Result<Vec<RecordBatch>> {
    let ctx = SessionContext::new();
    let schema = provider.schema();
    let input = Arc::new(StreamingTableExec::try_new(
        Arc::clone(&schema),
        vec![Arc::new(FailingInput { schema, hang }) as Arc<dyn PartitionStream>],
        None,
        vec![],
        false,
        None,
    )?);
    let state = ctx.state();
    let plan = provider
        .insert_into(&state, input, InsertOp::Append)
        .await?;
    datafusion::physical_plan::collect(plan, ctx.task_ctx()).await
}

#[tokio::test]
async fn failed_or_cancelled_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["csv", "parquet"] {
        let root = dir.path().join(format);
        let def = fs_table(
            &root,
            format,
            &[("id", SqlType::Int)],
            &[],
            &[("sink.rolling-policy.file-size", "1b")],
        );
        let provider = create_table_provider("t", &def).unwrap();
        let err = Error::from(insert_from(&provider, false).await.unwrap_err());
        assert!(err.to_string().contains("input broke halfway"), "{err}");
        assert!(err.to_string().contains("while writing table `t`"), "{err}");
        assert_eq!(files_under(&root), Vec::<String>::new(), "{format}");
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            0,
            "{format}: staging dir left behind"
        );

        let timed_out =
            tokio::time::timeout(Duration::from_millis(300), insert_from(&provider, true)).await;
        assert!(timed_out.is_err());
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            0,
            "{format}: cancelled write left files"
        );
    }
}

#[tokio::test]
async fn rolls_files_past_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let gen_def = table(
        &[("id", SqlType::BigInt)],
        &[],
        &[
            ("connector", "datagen"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "20000"),
        ],
    );
    register(&ctx, "g", &gen_def);
    let def = fs_table(
        dir.path(),
        "parquet",
        &[("id", SqlType::BigInt)],
        &[],
        &[("sink.rolling-policy.file-size", "1kb")],
    );
    register(&ctx, "t", &def);
    show(&ctx, "INSERT INTO t SELECT id FROM g").await;
    assert!(
        files_under(dir.path()).len() >= 3,
        "{:?}",
        files_under(dir.path())
    );
    let out = show(
        &ctx,
        "SELECT count(*) AS n, sum(id) AS s, count(DISTINCT id) AS d FROM t",
    )
    .await;
    assert!(out.contains("| 20000 | 200010000 | 20000 |"), "{out}");
}

#[tokio::test]
async fn reads_single_files_and_skips_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "1,a\n2,b\n").unwrap();
    std::fs::write(dir.path().join("part-0.csv"), "3,c\n").unwrap();
    std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
    std::fs::write(dir.path().join(".part-0.csv.crc"), "garbage").unwrap();
    let ctx = SessionContext::new();
    let cols = [("id", SqlType::Int), ("v", SqlType::String)];
    register(
        &ctx,
        "single",
        &fs_table(&dir.path().join("data.txt"), "csv", &cols, &[], &[]),
    );
    let url = format!("file://{}", dir.path().display());
    register(
        &ctx,
        "whole",
        &table(
            &cols,
            &[],
            &[
                ("connector", "filesystem"),
                ("path", &url),
                ("format", "csv"),
            ],
        ),
    );
    assert!(
        show(&ctx, "SELECT sum(id) AS s FROM single")
            .await
            .contains("| 3 |")
    );
    assert!(
        show(&ctx, "SELECT sum(id) AS s FROM whole")
            .await
            .contains("| 3 |")
    );
    // Writing to a path that is a file is an error.
    let err = run(&ctx, "INSERT INTO single VALUES (9, 'z')")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is a file"), "{err}");
}

#[tokio::test]
async fn missing_path_and_corrupt_files_name_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let missing = dir.path().join("nope");
    register(
        &ctx,
        "m",
        &fs_table(&missing, "parquet", &[("id", SqlType::Int)], &[], &[]),
    );
    let err = run(&ctx, "SELECT * FROM m").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::External);
    assert!(
        err.to_string().contains(&format!(
            "path '{}' of table `m` does not exist",
            missing.display()
        )),
        "{err}"
    );

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("x.parquet"), b"this is not parquet at all").unwrap();
    register(
        &ctx,
        "b",
        &fs_table(&bad, "parquet", &[("id", SqlType::Int)], &[], &[]),
    );
    let err = run(&ctx, "SELECT * FROM b").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::External, "{err}");
    assert!(err.to_string().contains("table `b`"), "{err}");

    let bad_csv = dir.path().join("bad_csv");
    std::fs::create_dir(&bad_csv).unwrap();
    std::fs::write(bad_csv.join("x.csv"), b"1\nnot a number\n").unwrap();
    register(
        &ctx,
        "c",
        &fs_table(&bad_csv, "csv", &[("id", SqlType::Int)], &[], &[]),
    );
    let err = run(&ctx, "SELECT * FROM c").await.unwrap_err();
    assert!(err.to_string().contains("table `c`"), "{err}");
}

#[test]
fn validation_messages() {
    let cols = [("id", SqlType::Int)];
    let err = validate(&table(&cols, &[], &[("connector", "kafkaa")])).unwrap_err();
    assert_eq!(
        err.message,
        "unknown connector 'kafkaa'; valid connectors: blackhole, datagen, filesystem, nexmark, print"
    );
    let err = validate_table("db.t", &table(&cols, &[], &[("connector", "kafkaa")])).unwrap_err();
    assert_eq!(
        err.message,
        "unknown connector 'kafkaa' for table `db.t`; valid connectors: blackhole, datagen, filesystem, nexmark, print"
    );
    assert!(
        validate(&table(&cols, &[], &[]))
            .unwrap_err()
            .message
            .contains("missing option 'connector'")
    );

    let fs = |extra: &[(&str, &str)]| {
        let mut opts = vec![("connector", "filesystem")];
        opts.extend_from_slice(extra);
        validate(&table(&cols, &[], &opts))
    };
    assert!(fs(&[("path", "/tmp/x"), ("format", "csv")]).is_ok());
    assert_eq!(
        fs(&[("format", "csv")]).unwrap_err().message,
        "missing required option 'path' for connector 'filesystem'"
    );
    assert!(
        fs(&[("path", "/tmp/x")])
            .unwrap_err()
            .message
            .contains("missing required option 'format'")
    );
    let err = fs(&[("path", "/x"), ("format", "xml")]).unwrap_err();
    assert!(
        err.message.contains("'xml' for option 'format'")
            && err
                .message
                .contains("valid formats: csv, debezium-json, json, parquet"),
        "{}",
        err.message
    );
    let err = fs(&[("path", "/x"), ("format", "csv"), ("csv.delimiter", ";")]).unwrap_err();
    assert!(err.message.starts_with("unsupported option 'csv.delimiter' for connector 'filesystem'; supported options: connector, csv.allow-comments, csv.field-delimiter"), "{}", err.message);
    assert!(fs(&[("path", "/x"), ("format", "json"), ("csv.header", "true")]).is_err());
    assert!(
        fs(&[
            ("path", "/x"),
            ("format", "parquet"),
            ("parquet.compression", "lz5")
        ])
        .unwrap_err()
        .message
        .contains("snappy, zstd, gzip")
    );
    assert!(
        fs(&[
            ("path", "/x"),
            ("format", "parquet"),
            ("parquet.compression", "ZSTD")
        ])
        .is_ok()
    );
    assert!(
        fs(&[
            ("path", "/x"),
            ("format", "csv"),
            ("sink.rolling-policy.file-size", "big")
        ])
        .is_err()
    );
    assert!(
        fs(&[("path", "s3://bucket/x"), ("format", "csv")])
            .unwrap_err()
            .message
            .contains("not supported yet")
    );
    assert!(
        validate(&table(
            &cols,
            &["nope"],
            &[
                ("connector", "filesystem"),
                ("path", "/x"),
                ("format", "csv")
            ]
        ))
        .is_err()
    );

    let gen_err = |opts: &[(&str, &str)]| {
        let mut all = vec![("connector", "datagen")];
        all.extend_from_slice(opts);
        validate(&table(&cols, &[], &all)).unwrap_err().message
    };
    assert!(
        gen_err(&[("number-of-rows", "abc")])
            .contains("invalid value 'abc' for option 'number-of-rows'")
    );
    assert!(
        gen_err(&[("fields.other.kind", "random")])
            .contains("names `other`, which is not a physical column")
    );
    assert!(
        gen_err(&[("fields.id.kind", "sequence"), ("fields.id.start", "1")])
            .contains("needs options")
    );
    assert!(gen_err(&[("fields.id.kind", "dice")]).contains("valid values: random, sequence"));
    assert!(gen_err(&[("fields.id.min", "5"), ("fields.id.max", "1")]).contains("greater than"));
    assert!(gen_err(&[("fields.id.null-rate", "2")]).contains("between 0 and 1"));
    let interval = validate(&table(
        &[("i", SqlType::Interval)],
        &[],
        &[("connector", "datagen")],
    ))
    .unwrap_err();
    assert!(
        interval.message.contains("column `i` of type INTERVAL")
            && interval.message.contains("not supported yet"),
        "{}",
        interval.message
    );

    assert!(
        validate(&table(
            &cols,
            &[],
            &[
                ("connector", "print"),
                ("print-identifier", "x"),
                ("standard-error", "true")
            ]
        ))
        .is_ok()
    );
    assert!(
        validate(&table(
            &cols,
            &[],
            &[("connector", "print"), ("standard-error", "maybe")]
        ))
        .is_err()
    );
    assert!(
        validate(&table(
            &cols,
            &[],
            &[("connector", "blackhole"), ("path", "/x")]
        ))
        .unwrap_err()
        .message
        .contains("unsupported option 'path'")
    );
}

#[tokio::test]
async fn datagen_sequences_and_random_bounds() {
    let ctx = SessionContext::new();
    let cols = [
        ("id", SqlType::Int),
        ("v", SqlType::SmallInt),
        ("s", SqlType::String),
        ("n", SqlType::Double),
        ("b", SqlType::Bytes),
        ("ts", SqlType::TimestampLtz { precision: 3 }),
        (
            "z",
            SqlType::Decimal {
                precision: 5,
                scale: 2,
            },
        ),
        ("nul", SqlType::BigInt),
    ];
    let def = table(
        &cols,
        &[],
        &[
            ("connector", "datagen"),
            ("number-of-rows", "20000"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "10000"),
            ("fields.v.min", "5"),
            ("fields.v.max", "10"),
            ("fields.s.length", "7"),
            ("fields.n.min", "-1.5"),
            ("fields.n.max", "2.5"),
            ("fields.b.length", "3"),
            ("fields.ts.max-past", "1 h"),
            ("fields.z.min", "0"),
            ("fields.z.max", "9.99"),
            ("fields.nul.null-rate", "1.0"),
        ],
    );
    register(&ctx, "g", &def);
    let out = show(
        &ctx,
        "SELECT count(*) AS c, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi, sum(id) AS s, \
         min(v) >= 5 AND max(v) <= 10 AS v_ok, min(length(s)) = 7 AND max(length(s)) = 7 AS s_ok, \
         min(n) >= -1.5 AND max(n) <= 2.5 AS n_ok, count(b) = 10000 AS b_ok, \
         min(z) >= 0 AND max(z) <= 9.99 AS z_ok, count(nul) AS nn, \
         min(ts) >= now() - INTERVAL '61' MINUTE AND max(ts) <= now() + INTERVAL '1' MINUTE AS ts_ok FROM g",
    )
    .await;
    let last = out
        .lines()
        .nth(3)
        .unwrap()
        .split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>();
    assert_eq!(
        last,
        vec![
            "10000", "10000", "1", "10000", "50005000", "true", "true", "true", "true", "true",
            "0", "true"
        ],
        "{out}"
    );

    let bytes = run(&ctx, "SELECT b FROM g LIMIT 5").await.unwrap();
    let bytes = bytes[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::BinaryArray>()
        .unwrap();
    assert!(bytes.iter().all(|b| b.is_some_and(|b| b.len() == 3)));

    let plan = show(&ctx, "EXPLAIN SELECT id FROM g").await;
    assert!(
        plan.contains("DatagenExec: rows=10000") && plan.contains("id: sequence(1..10000)"),
        "{plan}"
    );

    let limited = show(&ctx, "SELECT count(*) AS c FROM (SELECT * FROM g LIMIT 7)").await;
    assert!(limited.contains("| 7 |"), "{limited}");

    let unbounded = table(&cols[..1], &[], &[("connector", "datagen")]);
    register(&ctx, "u", &unbounded);
    // Without 'number-of-rows' the scan never ends (streaming mode reads it).
    let provider = create_table_provider("u", &unbounded).unwrap();
    let plan = provider.scan(&ctx.state(), None, &[], None).await.unwrap();
    assert!(matches!(
        plan.properties().boundedness,
        datafusion::physical_plan::execution_plan::Boundedness::Unbounded { .. }
    ));
    let err = run(&ctx, "INSERT INTO g SELECT * FROM g")
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "connector 'datagen' is a source only; cannot write into table `g`"
    );
}

#[tokio::test]
async fn print_and_blackhole_sinks() {
    let ctx = SessionContext::new();
    let cols = [
        ("id", SqlType::Int),
        ("name", SqlType::String),
        ("x", SqlType::Double),
    ];
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let def = table(
        &cols,
        &[],
        &[("connector", "print"), ("print-identifier", "out")],
    );
    let provider = create_table_provider_with_print_target(
        "p",
        &def,
        PrintTarget::Buffer(Arc::clone(&buffer)),
    )
    .unwrap();
    ctx.register_table("p", provider).unwrap();
    let count = show(
        &ctx,
        "INSERT INTO p VALUES (1, 'foo', NULL), (2, NULL, 2.5)",
    )
    .await;
    assert!(count.contains("| 2     |"), "{count}");
    let printed = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    assert_eq!(printed, "out> +I[1, foo, null]\nout> +I[2, null, 2.5]\n");
    let err = run(&ctx, "SELECT * FROM p").await.unwrap_err();
    assert_eq!(
        err.message,
        "connector 'print' is a sink only; table `p` cannot be read"
    );

    register(&ctx, "b", &table(&cols, &[], &[("connector", "blackhole")]));
    let count = show(
        &ctx,
        "INSERT INTO b VALUES (1, 'a', 1.0), (2, 'b', 2.0), (3, 'c', 3.0)",
    )
    .await;
    assert!(count.contains("| 3     |"), "{count}");
    let err = run(&ctx, "SELECT * FROM b").await.unwrap_err();
    assert_eq!(
        err.message,
        "connector 'blackhole' is a sink only; table `b` cannot be read"
    );
}

/// The physical plan of `sql`, one operator per line.
async fn physical_plan(ctx: &SessionContext, sql: &str) -> String {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string()
}

#[tokio::test]
async fn scans_are_transparent_to_join_selection_and_dynamic_filters() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_target_partitions(2),
    );
    let cols = [("k", SqlType::Int), ("v", SqlType::Int)];
    register(
        &ctx,
        "small",
        &fs_table(&dir.path().join("small"), "parquet", &cols, &[], &[]),
    );
    register(
        &ctx,
        "big",
        &fs_table(&dir.path().join("big"), "parquet", &cols, &[], &[]),
    );
    show(&ctx, "INSERT INTO small VALUES (1, 10), (2, 20), (3, 30)").await;
    show(
        &ctx,
        "INSERT INTO big SELECT CAST(value % 1000 AS INT), CAST(value AS INT) \
         FROM generate_series(1, 20000)",
    )
    .await;
    let sql =
        "SELECT s.k, count(*) AS n FROM small s JOIN big b ON s.k = b.k GROUP BY s.k ORDER BY s.k";
    let plan = physical_plan(&ctx, sql).await;
    // The Parquet row counts reach join selection through the error-context node: the small
    // side is built once and broadcast, not repartitioned; its keys filter the big scan.
    assert!(plan.contains("mode=CollectLeft"), "{plan}");
    assert!(!plan.contains("mode=Partitioned"), "{plan}");
    assert!(plan.contains("DynamicFilter"), "{plan}");
    assert!(plan.contains("ScanContextExec"), "{plan}");
    assert_eq!(
        lines(&show(&ctx, sql).await)[3..6],
        ["| 1 | 20 |", "| 2 | 20 |", "| 3 | 20 |"]
    );
}

#[tokio::test]
async fn session_parquet_options_reach_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let cols = [("k", SqlType::Int), ("v", SqlType::Int)];
    let def = fs_table(&dir.path().join("t"), "parquet", &cols, &[], &[]);
    let sql = "SELECT v FROM t WHERE k > 1";
    for pushdown in [false, true] {
        let mut config = datafusion::prelude::SessionConfig::new();
        config.options_mut().execution.parquet.pushdown_filters = pushdown;
        let ctx = SessionContext::new_with_config(config);
        register(&ctx, "t", &def);
        if !pushdown {
            show(&ctx, "INSERT INTO t VALUES (1, 10), (2, 20), (3, 30)").await;
        }
        let plan = physical_plan(&ctx, sql).await;
        // With pushdown the reader evaluates the predicate itself and no FilterExec remains.
        assert_eq!(plan.contains("FilterExec"), !pushdown, "{plan}");
        assert!(plan.contains("predicate="), "{plan}");
        assert_eq!(
            lines(&show(&ctx, &format!("{sql} ORDER BY v")).await)[3..5],
            ["| 20 |", "| 30 |"]
        );
    }
}
