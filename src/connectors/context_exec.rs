//! A pass-through execution node placed on top of a connector's scan: it adds "while reading
//! table `t`" to any error the scan raises while running (a corrupt Parquet footer, a CSV line
//! that does not parse), so users learn which table is at fault. Rows, partitioning, ordering
//! and statistics are the input's, unchanged, and the node is transparent to the optimizer:
//! statistics (join selection), filters (including hash-join and TopK dynamic filters), limits
//! and projections pass through it to the scan, as if it were not there.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::statistics::ChildStats;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, Statistics, StatisticsArgs,
};
use futures::{FutureExt, StreamExt};
use std::panic::AssertUnwindSafe;

use super::checked_format::failing_file;
use super::read_guard::{panic_message, reader_panicked};
use crate::error::{Error, ErrorCode};

/// Adds the table's name to errors of the wrapped scan (see the module documentation).
#[derive(Debug)]
pub(crate) struct ScanContextExec {
    input: Arc<dyn ExecutionPlan>,
    table: String,
    connector: &'static str,
}

impl ScanContextExec {
    pub(crate) fn new(
        input: Arc<dyn ExecutionPlan>,
        table: impl Into<String>,
        connector: &'static str,
    ) -> Self {
        Self {
            input,
            table: table.into(),
            connector,
        }
    }
}

/// Adds "while reading table `t` (connector 'c')" to a DataFusion error, keeping our own error
/// kinds (an `External` I/O error stays `External`).
pub(crate) fn add_read_context(
    err: DataFusionError,
    table: &str,
    connector: &str,
) -> DataFusionError {
    let ours = Error::from(err).context(format!(
        "while reading table `{table}` (connector '{connector}')"
    ));
    DataFusionError::from(ours)
}

/// One partition's read: the scan's batches until its first error (or panic), which ends it.
struct ReadState {
    stream: SendableRecordBatchStream,
    input: Arc<dyn ExecutionPlan>,
    partition: usize,
    context: Arc<TaskContext>,
    table: String,
    connector: &'static str,
    failed: bool,
}

impl ReadState {
    async fn next(mut self) -> Option<(DfResult<RecordBatch>, Self)> {
        if self.failed {
            return None;
        }
        let err = match AssertUnwindSafe(self.stream.next()).catch_unwind().await {
            Ok(None) => return None,
            Ok(Some(Ok(batch))) => return Some((Ok(batch), self)),
            Ok(Some(Err(e))) => {
                if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) {
                    // Memory ran out: no file is at fault.
                    self.failed = true;
                    return Some((Err(add_read_context(e, &self.table, self.connector)), self));
                }
                (Error::from(e), false)
            }
            Err(payload) => (
                Error::external(format!(
                    "the reader failed on a file's contents ({}); a file is probably corrupt",
                    panic_message(payload.as_ref())
                )),
                true,
            ),
        };
        let (err, panicked) = err;
        self.failed = true;
        // Errors of DataFusion's readers rarely say which file: find the one that fails alone
        // (not for a cancelled query).
        let diagnose = err.code != ErrorCode::Cancelled;
        let found = if diagnose {
            failing_file(&self.input, self.partition, &err.to_string(), &self.context).await
        } else {
            None
        };
        let err = match found {
            // A panic says nothing useful: the file's own error (e.g. a footer check) does.
            Some((_, alone)) if panicked => alone,
            Some((file, _)) => err.context(format!("in file '{file}'")),
            None => err,
        };
        let err = add_read_context(DataFusionError::from(err), &self.table, self.connector);
        Some((Err(err), self))
    }
}

impl DisplayAs for ScanContextExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ScanContextExec: table={}, connector={}",
            self.table, self.connector
        )
    }
}

impl ExecutionPlan for ScanContextExec {
    fn name(&self) -> &str {
        "ScanContextExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let [input]: [Arc<dyn ExecutionPlan>; 1] = children.try_into().map_err(|_| {
            DataFusionError::Internal("ScanContextExec takes exactly one child".into())
        })?;
        Ok(Arc::new(Self {
            input,
            table: self.table.clone(),
            connector: self.connector,
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let table = self.table.clone();
        let connector = self.connector;
        let stream = match std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.input.execute(partition, Arc::clone(&context))
        })) {
            Ok(s) => s.map_err(|e| add_read_context(e, &table, connector))?,
            Err(payload) => {
                return Err(add_read_context(
                    DataFusionError::from(reader_panicked(&table, payload.as_ref())),
                    &table,
                    connector,
                ));
            }
        };
        let schema = stream.schema();
        let state = ReadState {
            stream,
            input: Arc::clone(&self.input),
            partition,
            context,
            table,
            connector,
            failed: false,
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::unfold(state, ReadState::next),
        )))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        // Without this request DataFusion hands `statistics_from_inputs` an unknown placeholder,
        // and join selection plans every join as a repartitioned one.
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        match input_stats.first() {
            Some(stats) => Ok(Arc::clone(stats)),
            None => Ok(Arc::new(Statistics::new_unknown(&self.schema()))),
        }
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }

    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExec,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        Ok(self
            .input
            .try_swapping_with_projection(projection)?
            .map(|input| {
                Arc::new(Self {
                    input,
                    table: self.table.clone(),
                    connector: self.connector,
                }) as Arc<dyn ExecutionPlan>
            }))
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> DfResult<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> DfResult<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        Ok(FilterPushdownPropagation::if_all(child_pushdown_result))
    }
}
