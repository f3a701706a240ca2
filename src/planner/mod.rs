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
pub mod literals;
pub mod planning_functions;
pub mod resolve;
pub mod tables;
pub mod temporal;
pub mod temporal_join;
pub mod types;
pub mod watermark;
pub mod window_tvf;

use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::planner::SqlToRel;
use datafusion::sql::sqlparser::ast;

pub use context::PlanningContext;

use crate::error::Result;

/// Plans a query (`SELECT`, `VALUES`, `WITH`).
pub fn plan_query(ctx: &PlanningContext, query: &ast::Query) -> Result<LogicalPlan> {
    let mut query = query.clone();
    group_window::rewrite(&mut query)?;
    literals::rewrite(&mut query);
    field_names::name_nested_fields(&mut query);
    let as_of = temporal::take(&mut query);
    let plan = SqlToRel::new(ctx).sql_statement_to_plan(ast::Statement::Query(Box::new(query)))?;
    let plan = temporal::apply(ctx, plan, &as_of)?;
    plain_hinted_names(plan)
}

/// Gives the relations of `OPTIONS`-hinted table references their own names back: DataFusion
/// names a table's scan (or its inlined read plan) after the reference, which for a hinted one
/// carries the encoded options (see [`crate::sql::hints`]). A hinted reference always has an
/// alias (the parser adds one), so its relation sits right under that alias's `SubqueryAlias`,
/// and renaming it there changes no column reference above.
///
/// # Errors
/// DataFusion's, rebuilding the renamed nodes.
pub(crate) fn plain_hinted_names(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::{SubqueryAlias, TableScanBuilder};

    fn plain(name: &TableReference) -> Option<TableReference> {
        let table = resolve::display_name(name.table());
        (table.len() != name.table().len()).then(|| match name {
            TableReference::Bare { .. } => TableReference::bare(table),
            TableReference::Partial { schema, .. } => {
                TableReference::partial(Arc::clone(schema), table)
            }
            TableReference::Full {
                catalog, schema, ..
            } => TableReference::full(Arc::clone(catalog), Arc::clone(schema), table),
        })
    }
    let out = plan.transform_down(|node| {
        let LogicalPlan::SubqueryAlias(outer) = &node else {
            return Ok(Transformed::no(node));
        };
        let renamed = match outer.input.as_ref() {
            LogicalPlan::TableScan(scan) => match plain(&scan.table_name) {
                Some(name) => LogicalPlan::TableScan(
                    TableScanBuilder::new(name, Arc::clone(&scan.source))
                        .with_projection(scan.projection.clone())
                        .with_filters(scan.filters.clone())
                        .with_fetch(scan.fetch)
                        .with_statistics_requests(scan.statistics_requests.clone())
                        .build()?,
                ),
                None => return Ok(Transformed::no(node)),
            },
            LogicalPlan::SubqueryAlias(inner) => match plain(&inner.alias) {
                Some(name) => LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
                    Arc::clone(&inner.input),
                    name,
                )?),
                None => return Ok(Transformed::no(node)),
            },
            _ => return Ok(Transformed::no(node)),
        };
        Ok(Transformed::yes(LogicalPlan::SubqueryAlias(
            SubqueryAlias::try_new(Arc::new(renamed), outer.alias.clone())?,
        )))
    })?;
    Ok(out.data)
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
