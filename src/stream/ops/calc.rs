//! Stateless row operators: `Calc` evaluates a filter and/or a projection on every batch of
//! changes (row kinds pass through unchanged), and `Union` forwards every input as is
//! (`UNION ALL`). Expressions are DataFusion physical expressions.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Error, Result};
use crate::stream::changes::Changes;
use crate::stream::operator::{Operator, Output};

/// Filter then project.
pub struct Calc {
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// `None`: keep the columns as they are.
    pub projection: Option<Vec<Arc<dyn PhysicalExpr>>>,
    pub schema: SchemaRef,
}

impl Calc {
    pub fn apply(&self, changes: Changes) -> Result<Changes> {
        let changes = match &self.filter {
            None => changes,
            Some(f) => {
                let mask = f.evaluate(&changes.data)?.into_array(changes.num_rows())?;
                let mask = mask
                    .as_boolean_opt()
                    .ok_or_else(|| Error::internal("filter predicate is not boolean"))?;
                changes.filter(mask)?
            }
        };
        let Some(exprs) = &self.projection else {
            if changes.data.schema().fields() == self.schema.fields() {
                return Ok(changes);
            }
            let data = RecordBatch::try_new_with_options(
                Arc::clone(&self.schema),
                changes.data.columns().to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(changes.num_rows())),
            )?;
            return Ok(changes.with_data(data));
        };
        let columns = exprs
            .iter()
            .map(|e| e.evaluate(&changes.data)?.into_array(changes.num_rows()))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(changes.num_rows())),
        )?;
        Ok(changes.with_data(data))
    }
}

#[async_trait]
impl Operator for Calc {
    async fn process(&mut self, _input: usize, changes: Changes, out: &mut Output) -> Result<()> {
        out.emit(self.apply(changes)?);
        Ok(())
    }
}

/// `UNION ALL`: every input's changes, re-labelled with the output schema.
pub struct Union {
    pub schema: SchemaRef,
}

#[async_trait]
impl Operator for Union {
    async fn process(&mut self, _input: usize, changes: Changes, out: &mut Output) -> Result<()> {
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            changes.data.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(changes.num_rows())),
        )?;
        out.emit(changes.with_data(data));
        Ok(())
    }
}
