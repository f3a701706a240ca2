//! `INSERT INTO` a connector table in streaming mode: the last node of an `INSERT` job. Its
//! lowering finds the table's streaming sink (`connectors::stream_sink`), rejects what the sink
//! cannot take (updates into an append-only sink, as Flink does at planning time) and adds a
//! `Sink` operator whose instances hand every batch of changes to the connector's writer; at the
//! end of a bounded input the writer completes its output (e.g. the last rolling file).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DmlStatement, WriteOp};

use crate::connectors::{self, StreamSinkFactory, StreamWriter};
use crate::error::{Error, Result};
use crate::planner::tables::ComputedColumnsTable;
use crate::stream::changes::{ChangelogMode, Changes};
use crate::stream::checkpoint::StateSnapshot;
use crate::stream::lower::{Lowered, Lowering};
use crate::stream::operator::{Operator, Output};
use crate::stream::runtime::{Edge, Partitioning};

/// Hands every batch of changes to the connector's writer; emits nothing. With checkpoints, its
/// writer commits in two phases: output closed at barrier n becomes visible when checkpoint n
/// completes (table `<uid>.writer` holds the writer's pending output).
pub struct Sink {
    pub writer: Box<dyn StreamWriter>,
    /// The state id of the writer's table.
    pub state_id: String,
}

fn writer_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![Field::new(
        "state",
        DataType::Binary,
        false,
    )]))
}

#[async_trait]
impl Operator for Sink {
    async fn process(&mut self, _input: usize, changes: Changes, _out: &mut Output) -> Result<()> {
        self.writer.write(&changes)
    }

    async fn on_tick(&mut self, _now_ms: i64, _out: &mut Output) -> Result<()> {
        self.writer.on_tick()
    }

    async fn on_end(&mut self, _out: &mut Output) -> Result<()> {
        self.writer.finish()
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.writer.tick_interval()
    }

    fn snapshot(&mut self, checkpoint: u64, snapshot: &mut StateSnapshot) -> Result<()> {
        let state = self.writer.snapshot(checkpoint)?;
        let batch = RecordBatch::try_new(
            writer_schema(),
            vec![Arc::new(BinaryArray::from_vec(vec![state.as_slice()]))],
        )?;
        snapshot.put(&self.state_id, batch);
        Ok(())
    }

    fn restore(&mut self, snapshot: &StateSnapshot) -> Result<()> {
        let Some(t) = snapshot.get(&self.state_id) else {
            return Ok(());
        };
        // One row per old writer (several after a change of parallelism).
        let states = t
            .columns()
            .first()
            .and_then(|c| c.as_any().downcast_ref::<BinaryArray>())
            .filter(|c| c.null_count() == 0)
            .ok_or_else(|| {
                Error::external(format!(
                    "corrupt checkpoint state: bad table `{}`",
                    self.state_id
                ))
            })?;
        let states: Vec<&[u8]> = states.iter().flatten().collect();
        self.writer.restore(&states)
    }

    async fn on_checkpoint_complete(&mut self, id: u64) -> Result<()> {
        self.writer.commit(id)
    }
}

/// The full name Flink uses for a table in messages: `catalog.database.table`.
fn table_name(dml: &DmlStatement) -> String {
    dml.table_name.to_string()
}

/// Checks that a sink can take its input's changes (Flink's planning-time check).
///
/// # Errors
/// `Invalid` when the input produces updates and the sink takes inserts only.
pub fn check_changes(
    table: &str,
    sink: &dyn StreamSinkFactory,
    input_mode: &ChangelogMode,
    input_node: &str,
) -> Result<()> {
    if input_mode.is_insert_only() || sink.accepts_updates() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Table sink '{table}' doesn't support consuming update changes which is produced by node \
         {input_node}"
    )))
}

/// Adds the sink of `INSERT INTO dml.target` after `input`; returns the sink's node id.
///
/// # Errors
/// `Invalid` for updates into an append-only sink, or a table that cannot be written;
/// `NotSupported` for operations other than `INSERT` and tables without a streaming sink.
pub fn lower(l: &mut Lowering, dml: &DmlStatement, input: Lowered) -> Result<usize> {
    let overwrite = match &dml.op {
        WriteOp::Insert(InsertOp::Append) => false,
        WriteOp::Insert(InsertOp::Overwrite) => true,
        other => {
            return Err(Error::not_supported(format!(
                "{other} in streaming mode is not supported yet"
            )));
        }
    };
    let table = table_name(dml);
    let provider = source_as_provider(&dml.target)?;
    lower_into(l, &table, provider, overwrite, input)
}

/// Adds a sink writing `input` into `provider` (the table `table`); returns its node id.
///
/// # Errors
/// As [`lower`].
pub fn lower_into(
    l: &mut Lowering,
    table: &str,
    provider: Arc<dyn datafusion::catalog::TableProvider>,
    overwrite: bool,
    input: Lowered,
) -> Result<usize> {
    let table = table.to_string();
    let provider = match provider.as_ref().downcast_ref::<ComputedColumnsTable>() {
        Some(c) => Arc::clone(c.inner()),
        None => provider,
    };
    let sink = connectors::stream_sink(&table, provider.as_ref(), overwrite)?;
    // Name the operator that produces the updates (below any projections / filters on them).
    let mut producer = input.id;
    while let Some(edge) = l.graph.node(producer).inputs.first() {
        let below = l.graph.node(edge.from);
        if l.graph.node(producer).inputs.len() != 1 || below.mode.is_insert_only() {
            break;
        }
        producer = edge.from;
    }
    let node = l.graph.node(producer);
    let node_text = if node.detail.is_empty() {
        node.name.clone()
    } else {
        format!("{}({})", node.name, node.detail)
    };
    check_changes(&table, sink.as_ref(), &input.mode, &node_text)?;

    let parallelism = sink.parallelism().unwrap_or(input.parallelism).max(1);
    let partitioning = if parallelism == input.parallelism {
        Partitioning::Forward
    } else if parallelism == 1 {
        Partitioning::Single
    } else {
        Partitioning::Hash((0..node.schema.fields().len()).collect())
    };
    let schema = Arc::clone(&node.schema);
    let fields = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let detail = format!(
        "table=[{table}], connector=[{}], fields=[{fields}]",
        sink.connector()
    );
    let id = l.add_operator(
        "Sink",
        detail,
        schema,
        input.mode.clone(),
        parallelism,
        vec![Edge {
            from: input.id,
            partitioning,
        }],
        Box::new(move |ctx| {
            let mut writer = sink.open(ctx.instance)?;
            if ctx.checkpoints.is_some() {
                writer.begin_transactions();
            }
            Ok(Box::new(Sink {
                writer,
                state_id: ctx.state_id("writer"),
            }))
        }),
    );
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableDef;
    use crate::connectors::PrintTarget;
    use crate::stream::changes::RowKind;
    use crate::stream::operator::OperatorContext;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Mutex;

    /// A table `(a BIGINT, b STRING)` with these options.
    fn table(options: &[(&str, &str)]) -> TableDef {
        use crate::catalog::{ColumnDef, ColumnKind};
        use crate::types::SqlType;
        let column = |name: &str, data_type: SqlType| ColumnDef {
            name: name.to_string(),
            kind: ColumnKind::Physical {
                data_type,
                nullable: true,
            },
            comment: None,
        };
        TableDef {
            columns: vec![column("a", SqlType::BigInt), column("b", SqlType::String)],
            watermark: None,
            primary_key: None,
            partition_keys: Vec::new(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            comment: None,
        }
    }

    fn fs_table(dir: &std::path::Path) -> TableDef {
        let path = dir.to_string_lossy().to_string();
        table(&[
            ("connector", "filesystem"),
            ("path", path.as_str()),
            ("format", "csv"),
        ])
    }

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec!["x", "y"])),
            ],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn print_sink_prints_change_kinds() {
        let _ = OperatorContext::for_tests();
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let def = table(&[("connector", "print"), ("print-identifier", "out")]);
        let provider = connectors::create_table_provider_with_print_target(
            "default_catalog.default_database.p",
            &def,
            PrintTarget::Buffer(Arc::clone(&buffer)),
        )
        .unwrap();
        let sink = connectors::stream_sink("p", provider.as_ref(), false).unwrap();
        assert!(sink.accepts_updates());
        let mut op = Sink {
            state_id: "sink.writer".into(),
            writer: sink.open(0).unwrap(),
        };
        let mut out = Output::default();
        let changes =
            Changes::new(batch(), vec![RowKind::UpdateBefore, RowKind::UpdateAfter]).unwrap();
        op.process(0, changes, &mut out).await.unwrap();
        op.on_end(&mut out).await.unwrap();
        assert!(out.is_empty());
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "out> -U[1, x]\nout> +U[null, y]\n");
    }

    #[test]
    fn filesystem_sink_rejects_updates() {
        let dir = tempfile::tempdir().unwrap();
        let def = fs_table(dir.path());
        let name = "default_catalog.default_database.f";
        let provider = connectors::create_table_provider(name, &def).unwrap();
        let sink = connectors::stream_sink(name, provider.as_ref(), false).unwrap();
        assert!(!sink.accepts_updates());
        let retract = ChangelogMode::Retract { key: Some(vec![0]) };
        let err = check_changes(
            name,
            sink.as_ref(),
            &retract,
            "GroupAggregate(groupBy=[a], select=[a, COUNT(*)])",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "Table sink 'default_catalog.default_database.f' doesn't support consuming update \
                 changes which is produced by node GroupAggregate(groupBy=[a], select=[a, COUNT(*)])"
            ),
            "{err}"
        );
        check_changes(name, sink.as_ref(), &ChangelogMode::InsertOnly, "Calc").unwrap();
        // OVERWRITE is refused in streaming mode.
        assert!(connectors::stream_sink(name, provider.as_ref(), true).is_err());
    }

    #[tokio::test]
    async fn filesystem_sink_publishes_complete_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let def = fs_table(dir.path());
        let provider = connectors::create_table_provider("f", &def).unwrap();
        let sink = connectors::stream_sink("f", provider.as_ref(), false).unwrap();
        let mut op = Sink {
            state_id: "sink.writer".into(),
            writer: sink.open(0).unwrap(),
        };
        let mut out = Output::default();
        op.process(0, Changes::inserts(batch()), &mut out)
            .await
            .unwrap();
        let names = || {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        // While open, the file is hidden and in progress.
        let open = names();
        assert_eq!(open.len(), 1);
        assert!(
            open[0].starts_with(".part-") && open[0].ends_with(".csv.inprogress"),
            "{open:?}"
        );
        op.on_end(&mut out).await.unwrap();
        let done = names();
        assert_eq!(done.len(), 1);
        assert!(
            done[0].starts_with("part-") && done[0].ends_with(".csv"),
            "{done:?}"
        );
        let text = std::fs::read_to_string(dir.path().join(&done[0])).unwrap();
        assert_eq!(text, "1,x\n,y\n");
    }

    #[tokio::test]
    async fn filesystem_sink_rolls_files_open_too_long() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_string_lossy().to_string();
        let def = table(&[
            ("connector", "filesystem"),
            ("path", path.as_str()),
            ("format", "csv"),
            ("sink.rolling-policy.rollover-interval", "10 ms"),
            ("sink.rolling-policy.check-interval", "5 ms"),
        ]);
        let provider = connectors::create_table_provider("f", &def).unwrap();
        let sink = connectors::stream_sink("f", provider.as_ref(), false).unwrap();
        let mut op = Sink {
            state_id: "sink.writer".into(),
            writer: sink.open(0).unwrap(),
        };
        assert_eq!(op.tick_interval(), Some(Duration::from_millis(5)));
        let mut out = Output::default();
        let complete = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    !e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with('.')
                })
                .count()
        };
        op.process(0, Changes::inserts(batch()), &mut out)
            .await
            .unwrap();
        op.on_tick(0, &mut out).await.unwrap();
        assert_eq!(complete(), 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        op.on_tick(0, &mut out).await.unwrap();
        assert_eq!(complete(), 1);
        // The next rows go to a new file.
        op.process(0, Changes::inserts(batch()), &mut out)
            .await
            .unwrap();
        op.on_end(&mut out).await.unwrap();
        assert_eq!(complete(), 2);
    }

    #[tokio::test]
    async fn cancelled_filesystem_sink_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let def = fs_table(dir.path());
        let provider = connectors::create_table_provider("f", &def).unwrap();
        let sink = connectors::stream_sink("f", provider.as_ref(), false).unwrap();
        let mut op = Sink {
            state_id: "sink.writer".into(),
            writer: sink.open(0).unwrap(),
        };
        let mut out = Output::default();
        op.process(0, Changes::inserts(batch()), &mut out)
            .await
            .unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(op);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
