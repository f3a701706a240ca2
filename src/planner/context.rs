//! [`PlanningContext`]: DataFusion's `ContextProvider` over a catalog snapshot. It answers the SQL
//! planner's questions (which table is `t`? which function is `f`?) from the snapshot and the
//! session's function registry, and builds each table's `TableSource` on first use (see
//! [`super::tables`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::TableReference;
use datafusion::common::config::ConfigOptions;
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::planner::{ExprPlanner, RelationPlanner, TypePlanner};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, TableSource, WindowUDF};
use datafusion::sql::planner::ContextProvider;

use crate::catalog::registry::ObjectPath;
use crate::catalog::snapshot::CatalogSnapshot;
use crate::error::{Error, Result};

use super::window_tvf::WindowTvfPlanner;

/// How deep views may nest (a view that names itself would otherwise recurse forever).
const MAX_VIEW_DEPTH: usize = 32;

/// The SQL planner's view of the session while one statement is planned.
pub struct PlanningContext<'a> {
    pub(crate) state: &'a SessionState,
    pub(crate) snapshot: &'a CatalogSnapshot,
    sources: RefCell<HashMap<ObjectPath, Arc<dyn TableSource>>>,
    relation_planners: Vec<Arc<dyn RelationPlanner>>,
    type_planner: Arc<dyn TypePlanner>,
    pub(crate) view_depth: Cell<usize>,
    /// Planning for the streaming engine: tables with a `WATERMARK` get a watermark node.
    pub(crate) streaming: bool,
}

impl<'a> PlanningContext<'a> {
    pub fn new(state: &'a SessionState, snapshot: &'a CatalogSnapshot) -> Self {
        let mut relation_planners: Vec<Arc<dyn RelationPlanner>> = vec![Arc::new(WindowTvfPlanner)];
        relation_planners.extend(state.relation_planners().iter().cloned());
        Self {
            state,
            snapshot,
            sources: RefCell::new(HashMap::new()),
            relation_planners,
            type_planner: Arc::new(super::types::FlinkTypePlanner),
            view_depth: Cell::new(0),
            streaming: false,
        }
    }

    /// A context that plans for the streaming engine (see [`super::watermark`]).
    pub fn streaming(state: &'a SessionState, snapshot: &'a CatalogSnapshot) -> Self {
        let mut ctx = Self::new(state, snapshot);
        ctx.streaming = true;
        ctx
    }

    /// The fully qualified name a table reference stands for.
    pub fn qualify(&self, name: &TableReference) -> Result<ObjectPath> {
        let parts: Vec<String> = match name {
            TableReference::Bare { table } => vec![table.to_string()],
            TableReference::Partial { schema, table } => {
                vec![schema.to_string(), table.to_string()]
            }
            TableReference::Full {
                catalog,
                schema,
                table,
            } => {
                vec![catalog.to_string(), schema.to_string(), table.to_string()]
            }
        };
        self.snapshot
            .qualify(&parts)
            .ok_or_else(|| Error::invalid(format!("`{name}` is not a valid table name")))
    }

    /// The table source for a qualified name, built once per statement.
    pub fn source(&self, path: &ObjectPath) -> Result<Arc<dyn TableSource>> {
        if let Some(s) = self.sources.borrow().get(path) {
            return Ok(Arc::clone(s));
        }
        let table = self.snapshot.get(path).ok_or_else(|| {
            Error::not_found(format!(
                "table or view {} does not exist",
                super::resolve::display_path(path)
            ))
        })?;
        let depth = self.view_depth.get();
        if depth >= MAX_VIEW_DEPTH {
            return Err(Error::invalid(format!(
                "views nest more than {MAX_VIEW_DEPTH} deep at {path}: does a view refer to itself?"
            )));
        }
        self.view_depth.set(depth + 1);
        let provider = super::tables::table_provider(self, path, table);
        self.view_depth.set(depth);
        let source = provider_as_source(provider?);
        self.sources
            .borrow_mut()
            .insert(path.clone(), Arc::clone(&source));
        Ok(source)
    }
}

impl ContextProvider for PlanningContext<'_> {
    fn get_table_source(&self, name: TableReference) -> DfResult<Arc<dyn TableSource>> {
        let path = self.qualify(&name)?;
        Ok(self.source(&path)?)
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        self.state.expr_planners()
    }

    fn get_relation_planners(&self) -> &[Arc<dyn RelationPlanner>] {
        &self.relation_planners
    }

    fn get_type_planner(&self) -> Option<Arc<dyn TypePlanner>> {
        Some(Arc::clone(&self.type_planner))
    }

    fn get_table_function_source(
        &self,
        name: &str,
        args: Vec<datafusion::logical_expr::Expr>,
    ) -> DfResult<Arc<dyn TableSource>> {
        let function = self
            .state
            .table_functions()
            .get(name)
            .cloned()
            .ok_or_else(|| DataFusionError::Plan(format!("table function '{name}' not found")))?;
        let provider = function.create_table_provider_with_args(
            datafusion::catalog::TableFunctionArgs::new(&args, self.state),
        )?;
        Ok(provider_as_source(provider))
    }

    fn create_cte_work_table(
        &self,
        name: &str,
        schema: datafusion::arrow::datatypes::SchemaRef,
    ) -> DfResult<Arc<dyn TableSource>> {
        let table = Arc::new(datafusion::datasource::cte_worktable::CteWorkTable::new(
            name, schema,
        ));
        Ok(provider_as_source(table))
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        if self.streaming && name.eq_ignore_ascii_case("proctime") {
            return Some(Arc::new(
                crate::functions::proctime::ProcTime::streaming_udf(),
            ));
        }
        if name.eq_ignore_ascii_case("current_database") {
            return Some(Arc::new(super::planning_functions::CurrentDatabase::udf(
                &self.snapshot.current_database,
            )));
        }
        self.state.scalar_functions().get(name).cloned()
    }

    fn get_higher_order_meta(
        &self,
        name: &str,
    ) -> Option<Arc<datafusion::logical_expr::HigherOrderUDF>> {
        self.state.higher_order_functions().get(name).cloned()
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.state.aggregate_functions().get(name).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.state.window_functions().get(name).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        self.state.config_options()
    }

    fn udf_names(&self) -> Vec<String> {
        self.state.scalar_functions().keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.state
            .higher_order_functions()
            .keys()
            .cloned()
            .collect()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.state.aggregate_functions().keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.state.window_functions().keys().cloned().collect()
    }
}
