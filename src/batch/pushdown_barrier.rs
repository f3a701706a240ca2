//! A guard in the batch engine's physical optimizer against a DataFusion 55 bug family that
//! gives wrong answers silently or fails planning: its physical filter pushdown remaps a
//! filter's columns into a node's input by column *name* (`FilterRemapper::try_remap`,
//! `ProjectionExec::collect_reverse_alias`), so over a node whose output has two columns of the
//! same name — `a.c4` and `b.c4` of a join — `3 + b.c4 IS DISTINCT FROM a.c4` above an outer
//! join became `3 + c4 IS DISTINCT FROM c4` on one side and was pushed below the join; its
//! projection pushdown, over the same nodes, builds columns whose names do not match their
//! input's and fails with "Input field name c1 does not match with the projection expression
//! c2" (found by the NoREC, TLP and batch-vs-streaming fuzzers, `docs/fuzzing.md` bug 15).
//!
//! [`GuardDuplicateNames`] runs just before each of DataFusion's `FilterPushdown` and
//! `ProjectionPushdown` rules and puts a [`PushdownBarrier`] (a pass-through node that accepts
//! no filters and no projections) above every node whose output has duplicate column names, so
//! nothing crosses into such a node by name; [`RemoveBarriers`] takes them out again right after
//! it, so no other rule sees them and the executed plan is DataFusion's own. Filters on one
//! table's columns are pushed by the logical optimizer (to just above the scans, whose columns
//! have distinct names) and still reach the Parquet reader for pruning; what is lost is pushing
//! a projection into such a join (it runs as a separate projection above it).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};

/// A pass-through node that stops filter pushdown (DataFusion's default for a node that does not
/// say otherwise is to accept none of its parent's filters).
#[derive(Debug)]
pub struct PushdownBarrier {
    input: Arc<dyn ExecutionPlan>,
}

impl PushdownBarrier {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self { input }
    }
}

impl DisplayAs for PushdownBarrier {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PushdownBarrier")
    }
}

impl ExecutionPlan for PushdownBarrier {
    fn name(&self) -> &str {
        "PushdownBarrier"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
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

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => Ok(Arc::new(PushdownBarrier::new(input))),
            _ => datafusion::common::internal_err!("PushdownBarrier takes one child"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

/// Whether `plan`'s output has two columns of the same name.
fn duplicate_names(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let schema = plan.schema();
    let mut seen = HashSet::new();
    schema.fields().iter().any(|f| !seen.insert(f.name()))
}

/// Puts a [`PushdownBarrier`] above every node whose output has duplicate column names.
#[derive(Debug, Default)]
pub struct GuardDuplicateNames;

impl PhysicalOptimizerRule for GuardDuplicateNames {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let node_is_barrier = node.is::<PushdownBarrier>();
            if node_is_barrier || !duplicate_names(&node) {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(
                Arc::new(PushdownBarrier::new(node)) as Arc<dyn ExecutionPlan>
            ))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "GuardDuplicateNames"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Takes the [`PushdownBarrier`]s out of the plan.
#[derive(Debug, Default)]
pub struct RemoveBarriers;

impl PhysicalOptimizerRule for RemoveBarriers {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| match node.downcast_ref::<PushdownBarrier>() {
            Some(barrier) => Ok(Transformed::yes(Arc::clone(&barrier.input))),
            None => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "RemoveBarriers"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The rules that remap columns by name and so run guarded.
const GUARDED: [&str; 2] = ["FilterPushdown", "ProjectionPushdown"];

/// DataFusion's physical optimizer rules with every guarded rule between a guard before it and
/// the barriers' removal after it, so no other rule ever sees a barrier (limit pushdown, sort
/// pushdown and distribution, which a barrier would disturb, run as DataFusion wrote them).
pub fn physical_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let default_rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
    let mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> =
        Vec::with_capacity(default_rules.len() + 4);
    for rule in default_rules {
        if GUARDED.iter().any(|g| rule.name().starts_with(g)) {
            rules.push(Arc::new(GuardDuplicateNames));
            rules.push(rule);
            rules.push(Arc::new(RemoveBarriers));
        } else {
            rules.push(rule);
        }
    }
    rules
}
