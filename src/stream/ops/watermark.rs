//! `WatermarkAssigner`: the fallback watermark operator, used only when a `WATERMARK FOR` node
//! cannot be fused into its table's source (normally the source generates watermarks per split,
//! see `stream::source`). Each instance tracks the largest watermark expression value it has
//! seen and sends it after each batch; the runtime merges instances downstream by taking the
//! minimum. Rows pass through unchanged.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::Array;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;
use crate::functions::window::millis;
use crate::stream::changes::Changes;
use crate::stream::operator::{Operator, Output};

pub struct WatermarkAssigner {
    /// The watermark expression (e.g. `ts - INTERVAL '5' SECOND`), a timestamp.
    pub expr: Arc<dyn PhysicalExpr>,
    pub current: i64,
}

impl WatermarkAssigner {
    pub fn new(expr: Arc<dyn PhysicalExpr>) -> Self {
        Self {
            expr,
            current: i64::MIN,
        }
    }
}

#[async_trait]
impl Operator for WatermarkAssigner {
    async fn process(&mut self, _input: usize, changes: Changes, out: &mut Output) -> Result<()> {
        let values = self
            .expr
            .evaluate(&changes.data)?
            .into_array(changes.num_rows())?;
        let ms = millis(&values)?;
        let max = (0..ms.len())
            .filter(|i| !ms.is_null(*i))
            .map(|i| ms.value(i))
            .max();
        out.emit(changes);
        if let Some(m) = max
            && m > self.current
        {
            self.current = m;
            out.watermark = Some(m);
        }
        Ok(())
    }

    fn assigns_watermarks(&self) -> bool {
        true
    }
}
