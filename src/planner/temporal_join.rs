//! Event-time temporal joins (`JOIN versioned FOR SYSTEM_TIME AS OF left.rowtime ON ...`) in the
//! logical plan. [`super::temporal`] finds the join and checks it; this file builds what it
//! becomes:
//!
//! - in streaming plans, a [`TemporalJoinNode`], which the streaming lowering turns into the
//!   `TemporalJoin` operator (`stream::ops::temporal_join`);
//! - in batch plans, the same rows from DataFusion's own operators ([`batch_plan`]): every left
//!   row numbered, left-joined to the right rows with the same key and a rowtime `<=` the left
//!   row's time, only the candidates with the largest right rowtime kept per left row (the
//!   version valid at that time), then the residual condition applied to that version.
//!
//! Semantics (Flink's): each left row joins the version of the right row with the same primary
//! key that was valid at the left row's event time, i.e. the right row with the largest rowtime
//! `<=` the left row's time. Inner join: left rows without such a version (or whose version fails
//! the residual condition) are dropped; `LEFT JOIN`: they are kept with NULLs.

use std::fmt;

use datafusion::common::{Column, DFSchemaRef, JoinType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::logical_plan::builder::build_join_schema;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, UserDefinedLogicalNodeCore,
    WindowFunctionDefinition, col, when,
};

use crate::error::Result;

/// An event-time temporal join in a streaming plan. Output: the left columns then the right
/// columns (the right ones nullable for a `LEFT JOIN`), as DataFusion's join would have them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemporalJoinNode {
    pub left: LogicalPlan,
    /// The versioned table's read plan.
    pub right: LogicalPlan,
    /// Left expressions equal to the right table's primary key columns (`right_keys`), pairwise.
    pub left_keys: Vec<Expr>,
    pub right_keys: Vec<Expr>,
    /// The left time attribute (`AS OF` this column).
    pub left_time: Expr,
    /// The versioned table's rowtime column.
    pub right_time: Expr,
    /// The rest of the join condition, over left ++ right columns.
    pub filter: Option<Expr>,
    /// `LEFT JOIN` (else inner).
    pub outer: bool,
    schema: DFSchemaRef,
}

impl PartialOrd for TemporalJoinNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (
            &self.left,
            &self.right,
            &self.left_keys,
            &self.right_keys,
            &self.left_time,
            &self.right_time,
            &self.filter,
            self.outer,
        )
            .partial_cmp(&(
                &other.left,
                &other.right,
                &other.left_keys,
                &other.right_keys,
                &other.left_time,
                &other.right_time,
                &other.filter,
                other.outer,
            ))
    }
}

impl TemporalJoinNode {
    /// Builds the node and its output schema.
    ///
    /// # Errors
    /// When the two inputs' columns cannot form one schema.
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        left: LogicalPlan,
        right: LogicalPlan,
        left_keys: Vec<Expr>,
        right_keys: Vec<Expr>,
        left_time: Expr,
        right_time: Expr,
        filter: Option<Expr>,
        outer: bool,
    ) -> Result<Self> {
        let join_type = if outer {
            JoinType::Left
        } else {
            JoinType::Inner
        };
        let schema = build_join_schema(left.schema(), right.schema(), &join_type)?;
        Ok(Self {
            left,
            right,
            left_keys,
            right_keys,
            left_time,
            right_time,
            filter,
            outer,
            schema: std::sync::Arc::new(schema),
        })
    }

    fn description(&self) -> String {
        let keys: Vec<String> = self
            .left_keys
            .iter()
            .zip(&self.right_keys)
            .map(|(l, r)| format!("{l} = {r}"))
            .collect();
        let mut s = format!(
            "joinType=[{}], leftTime=[{}], rightTime=[{}], keys=[{}]",
            if self.outer {
                "LeftOuterJoin"
            } else {
                "InnerJoin"
            },
            self.left_time,
            self.right_time,
            keys.join(" AND ")
        );
        if let Some(f) = &self.filter {
            s.push_str(&format!(", where=[{f}]"));
        }
        s
    }
}

impl UserDefinedLogicalNodeCore for TemporalJoinNode {
    fn name(&self) -> &str {
        "TemporalJoin"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.left, &self.right]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        let mut e: Vec<Expr> = self.left_keys.clone();
        e.extend(self.right_keys.iter().cloned());
        e.push(self.left_time.clone());
        e.push(self.right_time.clone());
        e.extend(self.filter.iter().cloned());
        e
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TemporalJoin: {}", self.description())
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let n = self.left_keys.len();
        let expected = 2 * n + 2 + usize::from(self.filter.is_some());
        let [left, right]: [LogicalPlan; 2] = inputs
            .try_into()
            .map_err(|_| DataFusionError::Internal("TemporalJoin needs two inputs".into()))?;
        if exprs.len() != expected {
            return Err(DataFusionError::Internal(format!(
                "TemporalJoin expects {expected} expressions, got {}",
                exprs.len()
            )));
        }
        let mut it = exprs.into_iter();
        let left_keys: Vec<Expr> = it.by_ref().take(n).collect();
        let right_keys: Vec<Expr> = it.by_ref().take(n).collect();
        let (Some(left_time), Some(right_time)) = (it.next(), it.next()) else {
            return Err(DataFusionError::Internal(
                "TemporalJoin lost its time columns".into(),
            ));
        };
        let filter = it.next();
        Self::try_new(
            left, right, left_keys, right_keys, left_time, right_time, filter, self.outer,
        )
        .map_err(Into::into)
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }
}

/// The batch form of a temporal join (see the module doc): plain DataFusion operators that give
/// exactly the temporal join's rows, with the join's output columns (same names and qualifiers).
///
/// # Errors
/// When DataFusion rejects a step (it should not for a checked join).
pub fn batch_plan(node: &TemporalJoinNode) -> Result<LogicalPlan> {
    const ROW: &str = "__weir_temporal_row";
    const LATEST: &str = "__weir_temporal_latest";
    let left_columns: Vec<Expr> = node
        .left
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let right_columns: Vec<Column> = node.right.schema().columns();

    // 1. Number the left rows, so that equal left rows stay apart.
    let row_number = Expr::from(WindowFunction::new(
        WindowFunctionDefinition::WindowUDF(
            datafusion::functions_window::row_number::row_number_udwf(),
        ),
        vec![],
    ));
    let row_name = row_number.schema_name().to_string();
    let numbered = LogicalPlanBuilder::from(node.left.clone())
        .window(vec![row_number])?
        .project(
            left_columns
                .iter()
                .cloned()
                .chain(std::iter::once(col(Column::from_name(row_name)).alias(ROW))),
        )?
        .build()?;

    // 2. Candidate versions: same key, rowtime <= the left row's time.
    let mut on: Vec<Expr> = node
        .left_keys
        .iter()
        .zip(&node.right_keys)
        .map(|(l, r)| l.clone().eq(r.clone()))
        .collect();
    on.push(node.right_time.clone().lt_eq(node.left_time.clone()));
    let candidates = LogicalPlanBuilder::from(numbered)
        .join_on(node.right.clone(), JoinType::Left, on)?
        .build()?;

    // 3. Keep the latest candidate per left row (or the row's single null-padded one).
    let latest = Expr::from(WindowFunction::new(
        datafusion::functions_aggregate::min_max::max_udaf(),
        vec![node.right_time.clone()],
    ))
    .partition_by(vec![col(ROW)])
    .build()?;
    let latest_name = latest.schema_name().to_string();
    let latest_col = col(Column::from_name(latest_name)).alias(LATEST);
    let mut with_latest: Vec<Expr> = left_columns.clone();
    with_latest.extend(right_columns.iter().cloned().map(Expr::Column));
    with_latest.push(latest_col);
    let chosen = LogicalPlanBuilder::from(candidates)
        .window(vec![latest])?
        .project(with_latest)?
        .filter(
            node.right_time
                .clone()
                .eq(col(LATEST))
                .or(col(LATEST).is_null()),
        )?;

    // 4. The residual condition on the chosen version; the join's output columns.
    let matched = match &node.filter {
        Some(f) => col(LATEST).is_not_null().and(f.clone()),
        None => col(LATEST).is_not_null(),
    };
    let plan = if node.outer {
        let mut out = left_columns;
        for c in right_columns {
            let e = if node.filter.is_some() {
                when(matched.clone(), Expr::Column(c.clone())).end()?
            } else {
                Expr::Column(c.clone())
            };
            out.push(e.alias_qualified(c.relation.clone(), c.name.clone()));
        }
        chosen.project(out)?.build()?
    } else {
        let mut out = left_columns;
        out.extend(right_columns.into_iter().map(Expr::Column));
        chosen.filter(matched)?.project(out)?.build()?
    };
    Ok(plan)
}
