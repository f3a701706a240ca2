//! `Collect`: the sink of a streaming `SELECT`. It hands every batch of changes, as a record
//! batch with a leading `op` column, to the statement's result stream (a bounded channel: a
//! reader that stops reading backs the whole job up).

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::stream::changes::Changes;
use crate::stream::operator::{Operator, Output};

pub struct Collect {
    pub sender: mpsc::Sender<RecordBatch>,
}

#[async_trait]
impl Operator for Collect {
    async fn process(&mut self, _input: usize, changes: Changes, _out: &mut Output) -> Result<()> {
        let batch = changes.to_op_batch()?;
        self.sender
            .send(batch)
            .await
            .map_err(|_| Error::cancelled().context("the query's reader went away"))
    }
}
