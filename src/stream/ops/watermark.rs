//! `WatermarkAssigner`: the fallback watermark operator, used only when a `WATERMARK FOR` node
//! cannot be fused into its table's source (normally the source generates watermarks per split,
//! see `stream::source`). Each instance tracks the largest watermark expression value it has
//! seen and sends it after each batch; the runtime merges instances downstream by taking the
//! minimum. Rows pass through unchanged.
//!
//! Checkpoints (see [`super::codec`]): the largest value seen, in `<uid>.operator`, so a restored
//! instance never sends a watermark below one it sent before.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::Array;
use datafusion::physical_expr::PhysicalExpr;

use super::codec;
use crate::error::Result;
use crate::functions::window::millis;
use crate::stream::changes::Changes;
use crate::stream::checkpoint::StateSnapshot;
use crate::stream::operator::{Operator, OperatorContext, Output};

/// Value format of the assigner's checkpoint table.
const FORMAT: &str = "weir.watermark-assigner.operator/1 current";

pub struct WatermarkAssigner {
    /// The watermark expression (e.g. `ts - INTERVAL '5' SECOND`), a timestamp.
    pub expr: Arc<dyn PhysicalExpr>,
    pub current: i64,
    /// The id of the checkpoint table.
    state_id: String,
}

impl WatermarkAssigner {
    pub fn new(expr: Arc<dyn PhysicalExpr>, ctx: &OperatorContext) -> Self {
        Self {
            expr,
            current: i64::MIN,
            state_id: ctx.state_id(codec::OPERATOR),
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

    fn snapshot(&mut self, _checkpoint: u64, snapshot: &mut StateSnapshot) -> Result<()> {
        let current = self.current;
        codec::put_operator(snapshot, &self.state_id, FORMAT, |e| e.i64(current))
    }

    fn restore(&mut self, snapshot: &StateSnapshot) -> Result<()> {
        self.current =
            codec::get_operator(snapshot, &self.state_id, FORMAT, |d| d.i64(), i64::min)?
                .unwrap_or(i64::MIN);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::ops::codec::testing::{Event, assert_restores};
    use datafusion::arrow::array::{RecordBatch, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::Column;

    fn rows(ts: &[i64]) -> Changes {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        )]));
        let ts = TimestampMillisecondArray::from(ts.to_vec());
        Changes::inserts(RecordBatch::try_new(schema, vec![Arc::new(ts)]).unwrap())
    }

    #[tokio::test]
    async fn the_watermark_survives_a_restore() {
        let events: Vec<Event> = [vec![5, 3], vec![2], vec![4, 9], vec![7], vec![12]]
            .into_iter()
            .map(|ts| Event::Input(0, rows(&ts)))
            .collect();
        let out = assert_restores(
            |ctx| Box::new(WatermarkAssigner::new(Arc::new(Column::new("ts", 0)), ctx)),
            &events,
        )
        .await;
        let sent: Vec<&String> = out
            .iter()
            .flatten()
            .filter(|l| l.starts_with("watermark"))
            .collect();
        assert_eq!(sent, ["watermark 5", "watermark 9", "watermark 12"]);
    }
}
