//! A leaf execution node whose partitions are streams made by a closure: the scan of the
//! generating and watching sources (`nexmark`, a monitored `filesystem` directory). It declares
//! itself bounded or unbounded, so DataFusion (batch mode) and the streaming runtime
//! (`stream::source`) know whether reading it ends. A continuous source whose splits appear over
//! time (a watched directory's files) also carries a [`SplitDiscovery`], which the streaming
//! runtime uses instead of the partitions: each new file is a split with its own watermark.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use futures::stream::BoxStream;

use crate::error::Result;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

/// A split found while a streaming job runs: its name (e.g. the file's path) and its rows.
pub(crate) type NamedSplit = (String, BoxStream<'static, Result<RecordBatch>>);

/// Finds the splits of a continuous source while a streaming job runs.
///
/// # Implementing it
/// [`SplitDiscovery::discover`] is called once per source instance; the returned stream yields,
/// for that instance, one reader per new split (e.g. a new file), named, forever or until the
/// source is exhausted. Instances are not coordinated: each must pick its own share of the
/// splits by a rule every instance computes alike (e.g. a stable hash of the file name modulo
/// `parallelism`), so every split is read exactly once. Each reader yields the split's rows in
/// order, the same rows every time it is opened. Splits named in `known` (restored from a
/// checkpoint) are not yielded again; [`SplitDiscovery::open`] reopens one of them by name.
pub(crate) trait SplitDiscovery: Send + Sync {
    fn discover(
        &self,
        instance: usize,
        parallelism: usize,
        task: Arc<TaskContext>,
        known: std::collections::HashSet<String>,
    ) -> BoxStream<'static, Result<NamedSplit>>;

    /// Reopens the split `name` (found by an earlier run) from its first row.
    fn open(&self, name: &str, task: Arc<TaskContext>) -> BoxStream<'static, Result<RecordBatch>>;
}

/// Opens partition `i` of the scan.
pub(crate) type OpenPartition =
    Arc<dyn Fn(usize, Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> + Send + Sync>;

/// Opens partition `i` of the scan at row `offset` (a restored streaming job resumes there).
pub(crate) type OpenPartitionAt =
    Arc<dyn Fn(usize, u64, Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> + Send + Sync>;

/// A leaf scan made of closure-built streams (see the module documentation).
pub(crate) struct StreamExec {
    name: &'static str,
    detail: String,
    partitions: usize,
    open: OpenPartition,
    open_at: Option<OpenPartitionAt>,
    properties: Arc<PlanProperties>,
    discovery: Option<Arc<dyn SplitDiscovery>>,
}

impl fmt::Debug for StreamExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)
    }
}

impl StreamExec {
    pub(crate) fn new(
        name: &'static str,
        detail: String,
        schema: SchemaRef,
        partitions: usize,
        bounded: bool,
        open: OpenPartition,
    ) -> Self {
        let boundedness = if bounded {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded {
                requires_infinite_memory: false,
            }
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions.max(1)),
            EmissionType::Incremental,
            boundedness,
        );
        Self {
            name,
            detail,
            partitions: partitions.max(1),
            open,
            open_at: None,
            properties: Arc::new(properties),
            discovery: None,
        }
    }

    /// The same scan, whose partitions can start at a row offset without reading the rows
    /// before it (a generator computes row `n` directly).
    pub(crate) fn with_seek(mut self, open_at: OpenPartitionAt) -> Self {
        self.open_at = Some(open_at);
        self
    }

    /// Partition `partition` from row `offset`, when the scan can seek (else `None`).
    pub(crate) fn execute_at(
        &self,
        partition: usize,
        offset: u64,
        context: Arc<TaskContext>,
    ) -> Option<DfResult<SendableRecordBatchStream>> {
        let open_at = self.open_at.as_ref()?;
        if partition >= self.partitions {
            return Some(Err(DataFusionError::Internal(format!(
                "{} has {} partitions, asked for partition {partition}",
                self.name, self.partitions
            ))));
        }
        Some(open_at(partition, offset, context))
    }

    /// The same scan, whose splits a streaming job finds with `discovery`.
    pub(crate) fn with_discovery(mut self, discovery: Arc<dyn SplitDiscovery>) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// How a streaming job finds this scan's splits, if they appear over time.
    pub(crate) fn discovery(&self) -> Option<Arc<dyn SplitDiscovery>> {
        self.discovery.clone()
    }
}

impl DisplayAs for StreamExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)
    }
}

impl ExecutionPlan for StreamExec {
    fn name(&self) -> &str {
        self.name
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
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
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(format!(
                "{} has no children",
                self.name
            )))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition >= self.partitions {
            return Err(DataFusionError::Internal(format!(
                "{} has {} partitions, asked for partition {partition}",
                self.name, self.partitions
            )));
        }
        (self.open)(partition, context)
    }
}
