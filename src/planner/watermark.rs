//! `WatermarkNode`: a table's `WATERMARK FOR ts AS expr` in the logical plan. The planner puts it
//! on top of a table's read plan (after computed columns, so a computed column can be the rowtime)
//! when a statement is planned for streaming; the streaming lowering turns it into a watermark
//! assigner per source instance and marks `ts` as an event-time attribute. Batch plans never
//! contain it (in batch, watermarks mean nothing).

use std::fmt;

use datafusion::common::DFSchemaRef;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct WatermarkNode {
    pub input: LogicalPlan,
    /// The rowtime column (a column of `input`).
    pub column: String,
    /// The watermark expression, over `input`'s columns.
    pub expr: Expr,
}

impl WatermarkNode {
    /// The index of the rowtime column in the schema.
    pub fn column_index(&self) -> crate::Result<usize> {
        self.input
            .schema()
            .fields()
            .iter()
            .position(|f| f.name() == &self.column)
            .ok_or_else(|| {
                crate::Error::internal(format!("watermark column `{}` is gone", self.column))
            })
    }
}

impl UserDefinedLogicalNodeCore for WatermarkNode {
    fn name(&self) -> &str {
        "Watermark"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![self.expr.clone()]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "Watermark: rowtime={}, watermark={}",
            self.column, self.expr
        )
    }

    fn with_exprs_and_inputs(
        &self,
        mut exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DfResult<Self> {
        let (Some(expr), Some(input)) = (exprs.pop(), inputs.pop()) else {
            return Err(DataFusionError::Internal(
                "Watermark needs one input and one expression".into(),
            ));
        };
        Ok(Self {
            input,
            column: self.column.clone(),
            expr,
        })
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }
}
