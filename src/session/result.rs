//! What a statement gives back: rows as a stream of Arrow record batches, or a status line.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::ExecutionPlan;

pub use crate::stream::changes::{Materialized, materialize};

/// The result of one statement.
pub enum StatementResult {
    /// A result set (queries, SHOW, DESCRIBE, EXPLAIN).
    Rows(RowsResult),
    /// A statement without a result set (DDL, INSERT, SET).
    Status(StatusResult),
}

/// Rows, produced lazily: reading `stream` runs the query, dropping it cancels the query.
pub struct RowsResult {
    pub schema: SchemaRef,
    pub stream: SendableRecordBatchStream,
    /// For long queries: how much the query has read so far.
    pub progress: Option<Progress>,
    /// A streaming query's changelog: the first column is `op` (`+I`, `-U`, `+U`, `-D`) and the
    /// rows are changes to apply in order (see `stream::changes::materialize`), not final rows.
    pub changelog: bool,
}

/// A statement's outcome without rows, e.g. "Table created." or "3 rows inserted.".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusResult {
    pub message: String,
    /// Rows written by INSERT / CREATE TABLE AS.
    pub rows_affected: Option<u64>,
}

impl StatusResult {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            rows_affected: None,
        }
    }
}

/// Reads a running query's scan metrics: rows and bytes read so far.
#[derive(Clone)]
pub struct Progress {
    plan: Arc<dyn ExecutionPlan>,
}

impl Progress {
    pub fn new(plan: Arc<dyn ExecutionPlan>) -> Self {
        Self { plan }
    }

    /// `(rows read, bytes read)` by the plan's leaf (scan) operators so far.
    pub fn read_so_far(&self) -> (u64, u64) {
        let mut rows = 0u64;
        let mut bytes = 0u64;
        let mut stack = vec![Arc::clone(&self.plan)];
        while let Some(node) = stack.pop() {
            let children = node.children();
            if children.is_empty()
                && let Some(metrics) = node.metrics()
            {
                rows += metrics.output_rows().unwrap_or(0) as u64;
                bytes += metrics
                    .sum_by_name("bytes_scanned")
                    .map(|v| v.as_usize() as u64)
                    .unwrap_or(0);
            }
            stack.extend(children.into_iter().cloned());
        }
        (rows, bytes)
    }
}
