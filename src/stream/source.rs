//! Sources of the streaming engine. A table scan (or `VALUES`) is planned by DataFusion into a
//! physical plan whose partitions are the source's splits; instance `i` of `p` reads partitions
//! `i, i + p, ...` one after another (in order, so runs are deterministic). Unbounded connectors
//! (datagen with a rate, nexmark, a watched directory) are DataFusion plans whose streams never
//! end.

use std::sync::Arc;

use datafusion::execution::TaskContext;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::StreamExt;

use super::runtime::{SourceFactory, SourceStream};
use crate::error::{Error, Result};

pub struct PhysicalPlanSource {
    pub plan: Arc<dyn ExecutionPlan>,
    pub task: Arc<TaskContext>,
}

impl SourceFactory for PhysicalPlanSource {
    fn open(&self, instance: usize, parallelism: usize) -> Result<SourceStream> {
        let partitions = self.plan.output_partitioning().partition_count();
        let mine: Vec<usize> = (instance..partitions).step_by(parallelism.max(1)).collect();
        let plan = Arc::clone(&self.plan);
        let task = Arc::clone(&self.task);
        let streams = futures::stream::iter(mine).flat_map(move |p| {
            match plan.execute(p, Arc::clone(&task)) {
                Ok(s) => s.map(|b| b.map_err(Error::from)).boxed(),
                Err(e) => futures::stream::once(async move { Err(Error::from(e)) }).boxed(),
            }
        });
        Ok(streams.boxed())
    }
}
