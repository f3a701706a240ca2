//! The sink-only connectors: `print` writes each row to stdout (or stderr) the way Flink does
//! (`+I[1, foo, null]`, prefixed `identifier> ` when `print-identifier` is set); `blackhole`
//! discards rows and only counts them. Both are the end of an `INSERT` plan; reading from them is
//! an error.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};

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

use super::options::ConnectorOptions;
use crate::catalog::TableDef;
use crate::error::{Error, Result};

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
    let options = FormatOptions::default().with_null("null");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = String::new();
    for row in 0..batch.num_rows() {
        out.push_str(prefix);
        out.push_str("+I[");
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
