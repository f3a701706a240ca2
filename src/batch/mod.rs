//! The batch engine: DataFusion runs the plan in bulk. This module adds only what DataFusion
//! lacks: the physical operators for our logical nodes (window TVFs) and the query planner that
//! knows them.
//!
//! Uses `error`, `functions` and `planner` (its logical nodes only).

pub mod pushdown_barrier;
pub mod window_exec;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::Result as DfResult;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use crate::planner::window_tvf::WindowTvfNode;
use window_exec::WindowAssignExec;

/// DataFusion's physical planner plus our extension nodes.
#[derive(Debug, Default)]
pub struct BatchQueryPlanner;

#[async_trait]
impl QueryPlanner for BatchQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn datafusion::catalog::Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let planner =
            DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(WeirExtensionPlanner)]);
        planner
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}

/// Lowers our logical extension nodes to batch operators.
#[derive(Debug)]
struct WeirExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for WeirExtensionPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(window) = node.as_any().downcast_ref::<WindowTvfNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(datafusion::error::DataFusionError::Internal(
                "WindowTvf needs one input".into(),
            ));
        };
        let schema = Arc::new(window.schema().as_arrow().clone());
        Ok(Some(Arc::new(WindowAssignExec::new(
            Arc::clone(input),
            window.kind.clone(),
            window.time_index()?,
            window.key_indices()?,
            schema,
        ))))
    }
}
