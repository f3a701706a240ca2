//! `WindowAssign`: the streaming lowering of `TUMBLE`, `HOP` and `CUMULATE` window TVFs. It is
//! row-local: each row gets the `window_start`, `window_end`, `window_time` of every window it
//! falls in (one for TUMBLE, several for HOP/CUMULATE). Window TVFs take append-only input, as in
//! Flink.

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};
use crate::functions::window::{WindowKind, assign_windows};
use crate::stream::changes::Changes;
use crate::stream::operator::{Operator, Output};

pub struct WindowAssign {
    pub kind: WindowKind,
    pub time_index: usize,
    pub schema: SchemaRef,
}

#[async_trait]
impl Operator for WindowAssign {
    async fn process(&mut self, _input: usize, changes: Changes, out: &mut Output) -> Result<()> {
        if !changes.is_insert_only() {
            return Err(Error::not_supported(format!(
                "{} window over a stream with updates (window TVFs take append-only input)",
                self.kind.name()
            )));
        }
        let data = assign_windows(&changes.data, self.time_index, &self.kind, &self.schema)?;
        out.emit(Changes::inserts(data));
        Ok(())
    }
}
