//! `WindowAssignExec`: the batch lowering of a window TVF ([`WindowTvfNode`]). For `TUMBLE`,
//! `HOP` and `CUMULATE` it maps each input batch (any partitioning, order kept); for `SESSION`
//! it gathers its whole (single-partition) input, then assigns sessions per key.
//!
//! [`WindowTvfNode`]: crate::planner::window_tvf::WindowTvfNode

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties,
};
use futures::{StreamExt, TryStreamExt};

use crate::functions::window::{WindowKind, assign_sessions, assign_windows};
use crate::planner::window_tvf::describe;

/// Assigns window TVF columns to its input's rows.
#[derive(Debug)]
pub struct WindowAssignExec {
    input: Arc<dyn ExecutionPlan>,
    kind: WindowKind,
    time_index: usize,
    key_indices: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl WindowAssignExec {
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        kind: WindowKind,
        time_index: usize,
        key_indices: Vec<usize>,
        schema: SchemaRef,
    ) -> Self {
        let session = matches!(kind, WindowKind::Session { .. });
        let partitioning = if session {
            datafusion::physical_plan::Partitioning::UnknownPartitioning(1)
        } else {
            input.output_partitioning().clone()
        };
        let emission = if session {
            EmissionType::Final
        } else {
            input.pipeline_behavior()
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            partitioning,
            emission,
            Boundedness::Bounded,
        ));
        Self {
            input,
            kind,
            time_index,
            key_indices,
            schema,
            properties,
        }
    }
}

impl DisplayAs for WindowAssignExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let time = self.input.schema().field(self.time_index).name().clone();
        write!(
            f,
            "WindowAssignExec: {}, time_col={time}",
            describe(&self.kind)
        )?;
        if !self.key_indices.is_empty() {
            let keys: Vec<_> = self
                .key_indices
                .iter()
                .map(|&i| self.input.schema().field(i).name().clone())
                .collect();
            write!(f, ", partition_by=[{}]", keys.join(", "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for WindowAssignExec {
    fn name(&self) -> &str {
        "WindowAssignExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        match self.kind {
            WindowKind::Session { .. } => vec![Distribution::SinglePartition],
            _ => vec![Distribution::UnspecifiedDistribution],
        }
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![!matches!(self.kind, WindowKind::Session { .. })]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("WindowAssignExec needs one child".into()))?;
        Ok(Arc::new(Self::new(
            input,
            self.kind.clone(),
            self.time_index,
            self.key_indices.clone(),
            Arc::clone(&self.schema),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = Arc::clone(&self.schema);
        let kind = self.kind.clone();
        let time_index = self.time_index;
        match kind {
            WindowKind::Session { gap } => {
                let keys = self.key_indices.clone();
                let input_schema = self.input.schema();
                let out_schema = Arc::clone(&schema);
                let fut = async move {
                    let batches: Vec<_> = input.try_collect().await?;
                    assign_sessions(&batches, &input_schema, time_index, &keys, gap, &out_schema)
                        .map_err(DataFusionError::from)
                };
                let stream = futures::stream::once(fut);
                Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
            }
            _ => {
                let out_schema = Arc::clone(&schema);
                let stream = input.map(move |batch| {
                    let batch = batch?;
                    assign_windows(&batch, time_index, &kind, &out_schema)
                        .map_err(DataFusionError::from)
                });
                Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
            }
        }
    }
}
