//! The sink-only connectors: `print` writes each row to stdout (or stderr) the way Flink does
//! (`+I[1, foo, null]`, prefixed `identifier> ` when `print-identifier` is set); `blackhole`
//! discards rows and only counts them. Both are the end of an `INSERT` plan; reading from them is
//! an error.
//!
//! Also the streaming side of every writable connector: [`StreamSinkFactory`] /
//! [`StreamWriter`], found by [`stream_sink`] from a table's provider, and driven by the
//! streaming sink operator (`stream::ops::sink`); `print` prints each change with its kind
//! (`-U[...]`, `+U[...]`), the filesystem writer is `file_sink::StreamingFileWriter`.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::StreamExt;

use super::file_sink::StreamingFileWriter;
use super::options::ConnectorOptions;
use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::stream::changes::Changes;

const PRINT_OPTIONS: &[&str] = &["print-identifier", "standard-error", "sink.parallelism"];
const BLACKHOLE_OPTIONS: &[&str] = &[];

/// Checks a `print` table's options.
pub(crate) fn validate_print(o: &ConnectorOptions) -> Result<()> {
    o.check_known(PRINT_OPTIONS, |_| Ok(false))?;
    o.bool("standard-error", false)?;
    o.u64("sink.parallelism")?;
    Ok(())
}

/// Checks a `blackhole` table's options.
pub(crate) fn validate_blackhole(o: &ConnectorOptions) -> Result<()> {
    o.check_known(BLACKHOLE_OPTIONS, |_| Ok(false))
}

/// Where `print` writes.
#[derive(Clone)]
pub enum PrintTarget {
    Stdout,
    Stderr,
    /// An in-memory buffer (for tests and embedding).
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl fmt::Debug for PrintTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrintTarget::Stdout => "stdout",
            PrintTarget::Stderr => "stderr",
            PrintTarget::Buffer(_) => "buffer",
        })
    }
}

impl PrintTarget {
    fn write_all(&self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            PrintTarget::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            PrintTarget::Stderr => std::io::stderr().lock().write_all(bytes),
            PrintTarget::Buffer(buffer) => {
                let mut guard = buffer
                    .lock()
                    .map_err(|_| std::io::Error::other("print buffer poisoned"))?;
                guard.extend_from_slice(bytes);
                Ok(())
            }
        }
    }
}

/// What a sink-only table does with rows.
#[derive(Debug, Clone)]
enum SinkKind {
    Print {
        identifier: Option<String>,
        target: PrintTarget,
    },
    Blackhole,
}

impl SinkKind {
    fn connector(&self) -> &'static str {
        match self {
            SinkKind::Print { .. } => "print",
            SinkKind::Blackhole => "blackhole",
        }
    }
}

/// A `print` or `blackhole` table.
#[derive(Debug)]
pub(crate) struct SinkTable {
    name: String,
    schema: SchemaRef,
    kind: SinkKind,
}

impl SinkTable {
    /// A `print` table; `target` overrides `standard-error` (tests pass a buffer).
    pub(crate) fn print(
        name: &str,
        def: &TableDef,
        schema: SchemaRef,
        target: Option<PrintTarget>,
    ) -> Result<Self> {
        let o = ConnectorOptions::new(Some(name), "print", &def.options);
        validate_print(&o)?;
        let target = match target {
            Some(t) => t,
            None if o.bool("standard-error", false)? => PrintTarget::Stderr,
            None => PrintTarget::Stdout,
        };
        let identifier = o.get("print-identifier").map(str::to_string);
        Ok(Self {
            name: name.to_string(),
            schema,
            kind: SinkKind::Print { identifier, target },
        })
    }

    /// A `blackhole` table.
    pub(crate) fn blackhole(name: &str, def: &TableDef, schema: SchemaRef) -> Result<Self> {
        validate_blackhole(&ConnectorOptions::new(
            Some(name),
            "blackhole",
            &def.options,
        ))?;
        Ok(Self {
            name: name.to_string(),
            schema,
            kind: SinkKind::Blackhole,
        })
    }
}

#[async_trait::async_trait]
impl TableProvider for SinkTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(Error::invalid(format!(
            "connector '{}' is a sink only; table `{}` cannot be read",
            self.kind.connector(),
            self.name
        ))
        .into())
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op == InsertOp::Replace {
            return Err(Error::not_supported(format!(
                "REPLACE INTO table `{}` (connector '{}') is not supported yet",
                self.name,
                self.kind.connector()
            ))
            .into());
        }
        // OVERWRITE means nothing for a stream of printed or discarded rows; Flink accepts it.
        let sink = RowSink {
            table: self.name.clone(),
            schema: Arc::clone(&self.schema),
            kind: self.kind.clone(),
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// The data sink of `print` and `blackhole`.
#[derive(Debug)]
struct RowSink {
    table: String,
    schema: SchemaRef,
    kind: SinkKind,
}

impl DisplayAs for RowSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.kind {
            SinkKind::Print { identifier, target } => {
                write!(f, "PrintSink: table={}, target={target:?}", self.table)?;
                if let Some(id) = identifier {
                    write!(f, ", identifier={id}")?;
                }
                Ok(())
            }
            SinkKind::Blackhole => write!(f, "BlackholeSink: table={}", self.table),
        }
    }
}

/// Formats a batch's rows as Flink's print sink does: `+I[v1, v2, ...]`, NULL as `null`.
pub(crate) fn format_rows(
    batch: &datafusion::arrow::array::RecordBatch,
    prefix: &str,
) -> Result<String> {
    format_changes(batch, prefix, |_| "+I")
}

/// As [`format_rows`], each row with its change kind (`+I`, `-U`, `+U`, `-D`).
pub(crate) fn format_changes(
    batch: &datafusion::arrow::array::RecordBatch,
    prefix: &str,
    kind: impl Fn(usize) -> &'static str,
) -> Result<String> {
    let options = FormatOptions::default().with_null("null");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = String::new();
    for row in 0..batch.num_rows() {
        out.push_str(prefix);
        out.push_str(kind(row));
        out.push('[');
        for (i, formatter) in formatters.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&formatter.value(row).to_string());
        }
        out.push_str("]\n");
    }
    Ok(out)
}

#[async_trait::async_trait]
impl DataSink for RowSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let mut rows = 0u64;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            if let SinkKind::Print { identifier, target } = &self.kind {
                let prefix = identifier
                    .as_deref()
                    .map(|id| format!("{id}> "))
                    .unwrap_or_default();
                let text = format_rows(&batch, &prefix)?;
                target.write_all(text.as_bytes()).map_err(|e| {
                    DataFusionError::from(Error::io(
                        format!("print sink of table `{}`", self.table),
                        e,
                    ))
                })?;
            }
        }
        Ok(rows)
    }
}

/// One instance of a streaming `INSERT`'s sink: receives the changelog batches of the query
/// (already in the table's physical columns) and writes them out.
pub trait StreamWriter: Send {
    /// Writes a batch of changes.
    ///
    /// # Errors
    /// I/O errors; `Invalid` for changes the connector cannot take.
    fn write(&mut self, changes: &Changes) -> Result<()>;

    /// How often [`StreamWriter::on_tick`] should run, if at all.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Processing-time housekeeping (e.g. rolling files open for too long).
    ///
    /// # Errors
    /// I/O errors.
    fn on_tick(&mut self) -> Result<()> {
        Ok(())
    }

    /// The input ended: flush and complete everything.
    ///
    /// # Errors
    /// I/O errors.
    fn finish(&mut self) -> Result<()>;

    /// The job takes checkpoints: from now on, output becomes visible only through
    /// [`StreamWriter::commit`] (two-phase commit). Writers that cannot hold output back (`print`,
    /// `blackhole`) ignore it: they are at-least-once.
    fn begin_transactions(&mut self) {}

    /// Checkpoint `checkpoint`'s barrier arrived: close what was written since the previous
    /// one as pending for this checkpoint, and return what a restore needs (pending output,
    /// names in use), or an empty vector for stateless writers.
    ///
    /// # Errors
    /// I/O errors while closing files.
    fn snapshot(&mut self, _checkpoint: u64) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    /// Checkpoint `checkpoint` (and every earlier one) is complete: make its pending output
    /// visible.
    ///
    /// # Errors
    /// I/O errors (the job fails; its restore commits again, idempotently).
    fn commit(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }

    /// Starts from a snapshot of a complete checkpoint: commits the output pending in it
    /// (idempotently: what an earlier run committed already stays as it is) and discards
    /// output written after it. `states` holds one state per old writer: one, or, when the job
    /// restarts with another parallelism, the states of several old instances (or none): the
    /// writer settles each of them and continues from the first.
    ///
    /// # Errors
    /// `External` for a corrupt state or a pending file that is gone; I/O errors.
    fn restore(&mut self, _states: &[&[u8]]) -> Result<()> {
        Ok(())
    }
}

/// A table's streaming sink: checked at planning time, opened once per sink instance.
pub trait StreamSinkFactory: Send + Sync {
    fn connector(&self) -> &'static str;

    /// Whether the sink takes updates and deletes (`-U`, `+U`, `-D`), not only inserts.
    fn accepts_updates(&self) -> bool;

    /// A fixed parallelism for the sink (1 for `print`, so lines do not interleave), or `None`
    /// for the input's.
    fn parallelism(&self) -> Option<usize>;

    /// Opens instance `instance`.
    ///
    /// # Errors
    /// I/O errors (e.g. the table's directory cannot be created).
    fn open(&self, instance: usize) -> Result<Box<dyn StreamWriter>>;
}

/// The streaming sink of a connector table's provider (as made by this module's
/// `create_table_provider*`). `overwrite` is `INSERT OVERWRITE`.
///
/// # Errors
/// `Invalid` for a table that cannot be written in streaming mode (a source-only connector,
/// `INSERT OVERWRITE` into a filesystem table); `NotSupported` for partitioned filesystem tables.
pub fn stream_sink(
    table: &str,
    provider: &dyn TableProvider,
    overwrite: bool,
) -> Result<Arc<dyn StreamSinkFactory>> {
    let any = provider;
    if let Some(t) = any.downcast_ref::<SinkTable>() {
        return Ok(Arc::new(RowStreamSink {
            kind: t.kind.clone(),
        }));
    }
    if let Some(t) = any.downcast_ref::<super::filesystem::FilesystemTable>() {
        if overwrite {
            return Err(Error::invalid(format!(
                "INSERT OVERWRITE into table `{table}` (connector 'filesystem') is not supported in streaming mode; use INSERT INTO, or batch mode"
            )));
        }
        return Ok(Arc::new(FileStreamSink {
            table: table.to_string(),
            writer: t.streaming_parts(),
        }));
    }
    let connector = if any.is::<super::datagen::DatagenTable>() {
        "datagen"
    } else if any.is::<super::nexmark::NexmarkTable>() {
        "nexmark"
    } else {
        return Err(Error::not_supported(format!(
            "INSERT INTO table `{table}` in streaming mode is not supported yet (its connector has no streaming sink)"
        )));
    };
    Err(Error::invalid(format!(
        "connector '{connector}' is a source only; cannot write into table `{table}`"
    )))
}

/// The streaming sink of `print` / `blackhole`.
struct RowStreamSink {
    kind: SinkKind,
}

impl StreamSinkFactory for RowStreamSink {
    fn connector(&self) -> &'static str {
        self.kind.connector()
    }

    fn accepts_updates(&self) -> bool {
        true
    }

    fn parallelism(&self) -> Option<usize> {
        match self.kind {
            SinkKind::Print { .. } => Some(1),
            SinkKind::Blackhole => None,
        }
    }

    fn open(&self, _instance: usize) -> Result<Box<dyn StreamWriter>> {
        Ok(Box::new(RowStreamWriter {
            kind: self.kind.clone(),
        }))
    }
}

struct RowStreamWriter {
    kind: SinkKind,
}

impl StreamWriter for RowStreamWriter {
    fn write(&mut self, changes: &Changes) -> Result<()> {
        let SinkKind::Print { identifier, target } = &self.kind else {
            return Ok(());
        };
        let prefix = identifier
            .as_deref()
            .map(|id| format!("{id}> "))
            .unwrap_or_default();
        let text = format_changes(&changes.data, &prefix, |row| changes.kind(row).short())?;
        target
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("print sink", e))
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The streaming sink of a filesystem table.
struct FileStreamSink {
    table: String,
    writer: super::filesystem::StreamingParts,
}

impl StreamSinkFactory for FileStreamSink {
    fn connector(&self) -> &'static str {
        "filesystem"
    }

    fn accepts_updates(&self) -> bool {
        StreamingFileWriter::accepts_updates(&self.writer.0)
    }

    fn parallelism(&self) -> Option<usize> {
        None
    }

    fn open(&self, _instance: usize) -> Result<Box<dyn StreamWriter>> {
        let (config, layout) = self.writer.clone();
        Ok(Box::new(FileStreamWriter(StreamingFileWriter::new(
            self.table.clone(),
            config,
            layout,
        )?)))
    }
}

struct FileStreamWriter(StreamingFileWriter);

impl StreamWriter for FileStreamWriter {
    fn write(&mut self, changes: &Changes) -> Result<()> {
        self.0.write(changes)
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.0.check_interval())
    }

    fn on_tick(&mut self) -> Result<()> {
        self.0.roll_due()
    }

    fn finish(&mut self) -> Result<()> {
        self.0.finish()
    }

    fn begin_transactions(&mut self) {
        self.0.begin_transactions();
    }

    fn snapshot(&mut self, checkpoint: u64) -> Result<Vec<u8>> {
        self.0.snapshot(checkpoint)
    }

    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        self.0.commit(checkpoint)
    }

    fn restore(&mut self, states: &[&[u8]]) -> Result<()> {
        self.0.restore(states)
    }
}
