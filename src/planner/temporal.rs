//! `FOR SYSTEM_TIME AS OF` (temporal joins). DataFusion's SQL planner ignores table versions, so
//! the clause is taken out of the AST before planning and checked after:
//!
//! - `AS OF` a processing-time attribute (`PROCTIME()`): a lookup join. Each row joins the lookup
//!   table as it is when the row is processed; for a table that does not change while the query
//!   runs (files), that is the plain join the planner builds, in batch and in streaming mode.
//! - `AS OF` an event-time attribute (a versioned table): not supported yet, and said so, rather
//!   than silently joining every version.

use std::ops::ControlFlow;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::ast::{self, TableFactor, TableVersion, VisitMut, VisitorMut};

use crate::error::{Error, Result};

/// Removes every `FOR SYSTEM_TIME AS OF <expr>` from `query`; returns the expressions.
pub fn take(query: &mut ast::Query) -> Vec<ast::Expr> {
    struct Taker(Vec<ast::Expr>);
    impl VisitorMut for Taker {
        type Break = ();
        fn pre_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { version, .. } = tf
                && let Some(TableVersion::ForSystemTimeAsOf(e)) = version.take()
            {
                self.0.push(e);
            }
            ControlFlow::Continue(())
        }
    }
    let mut taker = Taker(Vec::new());
    let _ = query.visit(&mut taker);
    taker.0
}

/// Checks that every `AS OF` expression names a processing-time attribute of the plan.
///
/// # Errors
/// `NotSupported` for an event-time temporal join (or an `AS OF` that is not a column).
pub fn check(plan: &LogicalPlan, taken: &[ast::Expr]) -> Result<()> {
    if taken.is_empty() {
        return Ok(());
    }
    // Columns defined as PROCTIME() anywhere in the plan.
    let mut proctime: Vec<String> = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::Projection(p) = node {
            for e in &p.expr {
                if let Expr::Alias(a) = e
                    && let Expr::ScalarFunction(f) = a.expr.as_ref()
                    && f.name().eq_ignore_ascii_case("proctime")
                {
                    proctime.push(a.name.clone());
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    for e in taken {
        let column = match e {
            ast::Expr::Identifier(i) => Some(i.value.clone()),
            ast::Expr::CompoundIdentifier(ids) => ids.last().map(|i| i.value.clone()),
            _ => None,
        };
        match column {
            Some(c) if proctime.contains(&c) => {}
            _ => {
                return Err(Error::not_supported(format!(
                    "FOR SYSTEM_TIME AS OF {e}: event-time temporal joins (versioned tables) are \
                     not supported yet; only lookup joins AS OF a PROCTIME() attribute are"
                )));
            }
        }
    }
    Ok(())
}
