//! The planner: binds typed statements against a catalog snapshot and produces DataFusion
//! logical plans (with our own nodes, e.g. [`window_tvf::WindowTvfNode`]). DataFusion's
//! `SqlToRel` does the SQL-to-plan work; we supply the [`context::PlanningContext`] it asks
//! about tables and functions, relation planning for window TVFs, Flink type names, and the
//! INSERT binding Flink has (static partitions, implicit casts, type checks).
//!
//! Uses `error`, `types`, `sql`, `catalog`, `connectors`, `functions`.

pub mod context;
pub mod field_names;
pub mod group_window;
pub mod insert;
pub mod resolve;
pub mod tables;
pub mod temporal;
pub mod temporal_join;
pub mod types;
pub mod watermark;
pub mod window_tvf;

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::planner::SqlToRel;
use datafusion::sql::sqlparser::ast;

pub use context::PlanningContext;

use crate::error::Result;

/// Plans a query (`SELECT`, `VALUES`, `WITH`).
pub fn plan_query(ctx: &PlanningContext, query: &ast::Query) -> Result<LogicalPlan> {
    let mut query = query.clone();
    group_window::rewrite(&mut query)?;
    field_names::name_nested_fields(&mut query);
    let as_of = temporal::take(&mut query);
    let plan = SqlToRel::new(ctx).sql_statement_to_plan(ast::Statement::Query(Box::new(query)))?;
    temporal::apply(ctx, plan, &as_of)
}

/// `a, b, c`: a schema's column names, for error messages.
pub(crate) fn column_names<'a>(
    fields: impl IntoIterator<Item = &'a datafusion::arrow::datatypes::FieldRef>,
) -> String {
    fields
        .into_iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
