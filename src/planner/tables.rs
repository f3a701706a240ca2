//! Table sources for catalog objects: a connector table (with computed columns layered on top of
//! its physical columns) or a view (its stored query, planned in the view's own catalog and
//! database).
//!
//! A connector table's *physical* schema is what INSERT writes; its *read* schema adds computed
//! columns (`c AS expr`). [`ComputedColumnsTable`] keeps both: `schema()` is physical (DataFusion
//! plans INSERT against it), and `get_logical_plan()` is the read plan, which DataFusion inlines
//! wherever the table is scanned.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::{TableType, ViewTable, provider_as_source};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::planner::{PlannerContext, SqlToRel};
use datafusion::sql::sqlparser::ast;

use super::context::PlanningContext;
use super::resolve::{display_path, qualify_query};
use crate::catalog::registry::ObjectPath;
use crate::catalog::{CatalogTable, ColumnKind, TableDef, ViewDef};
use crate::connectors;
use crate::error::{Error, Result};
use crate::sql;

/// The provider behind a catalog object.
pub fn table_provider(
    ctx: &PlanningContext,
    path: &ObjectPath,
    table: &CatalogTable,
) -> Result<Arc<dyn TableProvider>> {
    match table {
        CatalogTable::Table(def) => connector_table(ctx, path, def),
        CatalogTable::View(view) => {
            view_table(ctx, path, view).map_err(|e| e.context(format!("in view {path}")))
        }
    }
}

fn connector_table(
    ctx: &PlanningContext,
    path: &ObjectPath,
    def: &TableDef,
) -> Result<Arc<dyn TableProvider>> {
    // A hinted reference's path carries its options; messages name the table itself.
    let shown = display_path(path);
    let inner = match ctx.snapshot.provider(path)? {
        Some(provider) => provider,
        None => connectors::create_table_provider(&shown.dotted(), def)?,
    };
    let computed = def
        .columns
        .iter()
        .any(|c| matches!(c.kind, ColumnKind::Computed { .. }));
    let watermark = def.watermark.as_ref().filter(|_| ctx.streaming);
    if !computed && watermark.is_none() {
        return Ok(inner);
    }
    let mut plan = read_plan(ctx, path, def, Arc::clone(&inner))?;
    if let Some(wm) = watermark {
        let ast = sql::parse_expr(&wm.expr)?;
        let expr = SqlToRel::new(ctx)
            .sql_to_expr(ast, plan.schema(), &mut PlannerContext::new())
            .map_err(|e| {
                Error::from(e).context(format!("in WATERMARK FOR `{}` AS {}", wm.column, wm.expr))
            })?;
        plan = LogicalPlan::Extension(datafusion::logical_expr::Extension {
            node: Arc::new(super::watermark::WatermarkNode {
                input: plan,
                column: wm.column.clone(),
                expr,
                options: super::watermark::WatermarkOptions::parse(&def.options)
                    .map_err(|e| e.context(format!("in table {shown}")))?,
            }),
        });
    }
    Ok(Arc::new(ComputedColumnsTable { inner, plan }))
}

/// Scans the physical columns and computes the computed ones, in declared column order.
fn read_plan(
    ctx: &PlanningContext,
    path: &ObjectPath,
    def: &TableDef,
    inner: Arc<dyn TableProvider>,
) -> Result<LogicalPlan> {
    let path = &display_path(path);
    let table_ref = TableReference::bare(path.name.clone());
    let scan =
        LogicalPlanBuilder::scan(table_ref.clone(), provider_as_source(inner), None)?.build()?;
    let planner = SqlToRel::new(ctx);
    let mut exprs = Vec::with_capacity(def.columns.len());
    for column in &def.columns {
        exprs.push(match &column.kind {
            ColumnKind::Physical { .. } => {
                Expr::Column(Column::new(Some(table_ref.clone()), &column.name))
            }
            ColumnKind::Computed { expr } => {
                let ast = sql::parse_expr(expr)?;
                planner
                    .sql_to_expr(ast, scan.schema(), &mut PlannerContext::new())
                    .map_err(|e| {
                        Error::from(e).context(format!(
                            "in computed column `{}` AS {expr} of {path}",
                            column.name
                        ))
                    })?
                    .alias(&column.name)
            }
        });
    }
    Ok(LogicalPlanBuilder::from(scan).project(exprs)?.build()?)
}

/// Plans the watermark expression of a table against its read schema (used to validate DDL).
pub fn check_watermark(ctx: &PlanningContext, path: &ObjectPath, def: &TableDef) -> Result<()> {
    let Some(wm) = &def.watermark else {
        return Ok(());
    };
    let provider = connector_table(ctx, path, def)?;
    let scan = LogicalPlanBuilder::scan(
        TableReference::bare(path.name.clone()),
        provider_as_source(provider),
        None,
    )?
    .build()?;
    let column = scan
        .schema()
        .field_with_unqualified_name(&wm.column)
        .map_err(|_| {
            Error::not_found(format!(
                "WATERMARK FOR `{}`: no such column in {path}",
                wm.column
            ))
        })?;
    if !matches!(
        column.data_type(),
        datafusion::arrow::datatypes::DataType::Timestamp(_, _)
    ) {
        return Err(Error::invalid(format!(
            "WATERMARK FOR `{}`: the rowtime column must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), but is {}",
            wm.column,
            column.data_type()
        )));
    }
    let ast = sql::parse_expr(&wm.expr)?;
    let expr = SqlToRel::new(ctx)
        .sql_to_expr(ast, scan.schema(), &mut PlannerContext::new())
        .map_err(|e| {
            Error::from(e).context(format!("in WATERMARK FOR `{}` AS {}", wm.column, wm.expr))
        })?;
    let data_type = expr.to_field(scan.schema())?.1.data_type().clone();
    if !matches!(
        data_type,
        datafusion::arrow::datatypes::DataType::Timestamp(_, _)
    ) {
        return Err(Error::invalid(format!(
            "the watermark expression `{}` must return a TIMESTAMP, but returns {data_type}",
            wm.expr
        )));
    }
    super::watermark::WatermarkOptions::parse(&def.options)?;
    Ok(())
}

fn view_table(
    ctx: &PlanningContext,
    path: &ObjectPath,
    view: &ViewDef,
) -> Result<Arc<dyn TableProvider>> {
    let mut query = sql::parse_query(&view.query)?;
    super::group_window::rewrite(&mut query)?;
    super::literals::rewrite(&mut query);
    super::field_names::name_nested_fields(&mut query);
    let as_of = super::temporal::take(&mut query);
    qualify_query(&mut query, &path.catalog, &path.database);
    let mut plan =
        SqlToRel::new(ctx).sql_statement_to_plan(ast::Statement::Query(Box::new(query)))?;
    plan = super::temporal::apply(ctx, plan, &as_of)?;
    plan = super::plain_hinted_names(plan)?;
    if !view.columns.is_empty() {
        let fields = plan.schema().columns();
        if fields.len() != view.columns.len() {
            return Err(Error::invalid(format!(
                "view {path} names {} columns but its query returns {}",
                view.columns.len(),
                fields.len()
            )));
        }
        let exprs: Vec<Expr> = fields
            .into_iter()
            .zip(&view.columns)
            .map(|(c, name)| Expr::Column(c).alias(name))
            .collect();
        plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
    }
    Ok(Arc::new(ViewTable::new(plan, Some(view.query.clone()))))
}

/// A connector table with computed columns: see the module docs.
#[derive(Debug)]
pub struct ComputedColumnsTable {
    inner: Arc<dyn TableProvider>,
    plan: LogicalPlan,
}

impl ComputedColumnsTable {
    /// The connector's provider underneath (streaming sinks write through it).
    pub fn inner(&self) -> &Arc<dyn TableProvider> {
        &self.inner
    }
}

#[async_trait]
impl TableProvider for ComputedColumnsTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        Some(Cow::Borrowed(&self.plan))
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn insert_into(
        &self,
        state: &dyn DfSession,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.inner.insert_into(state, input, insert_op).await
    }
}
