//! Flink type names in queries (`CAST(x AS STRING)`, `CAST(ts AS TIMESTAMP_LTZ(3))`): a DataFusion
//! `TypePlanner` that maps sqlparser's type AST through our Flink types to Arrow.

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::sql::sqlparser::ast;

use crate::sql::sql_type_from_ast;

/// Plans Flink SQL type names; falls back to DataFusion for what it does not know.
#[derive(Debug, Default)]
pub struct FlinkTypePlanner;

impl TypePlanner for FlinkTypePlanner {
    #[allow(deprecated)]
    fn plan_type(&self, sql_type: &ast::DataType) -> DfResult<Option<DataType>> {
        Ok(sql_type_from_ast(sql_type).ok().map(|t| t.to_arrow()))
    }
}
