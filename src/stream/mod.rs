//! The streaming engine: runs a logical plan incrementally over (possibly unbounded) streams of
//! changes.
//!
//! ```text
//! LogicalPlan (planned for streaming: + Watermark nodes)
//!   └─ lower: one operator per node, changelog mode + time attributes derived per node
//!        └─ StreamGraph ─ runtime: a task per operator instance, bounded channels,
//!                         watermark merging, keyed hash exchanges ─ sink (collect / connector)
//! ```
//!
//! Files: `changes` (row kinds, changelog batches, messages, materialization), `operator` (the
//! operator contract), `state` (keyed state tables), `runtime` (graph execution), `lower`
//! (plan → graph), `source` (DataFusion-planned sources), `ops/` (the operators).
//!
//! Uses `error`, `functions`, `planner` (its logical nodes), `connectors`.

pub mod changes;
pub mod checkpoint;
pub mod lower;
pub mod operator;
pub mod ops;
pub mod restart;
pub mod runtime;
pub mod source;
pub mod spill;
pub mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use changes::op_schema;
use lower::Lowering;
use operator::StreamSettings;
use runtime::{Edge, Partitioning, StreamGraph};

/// The user's table for late rows (`'weir.stream.late-rows-table'`), resolved by the session.
pub struct LateRowsTable {
    /// The table's name as the user wrote it.
    pub name: String,
    pub provider: Arc<dyn datafusion::catalog::TableProvider>,
}

/// A planned streaming `SELECT`: its graph (ending in a collect sink), the receiver of its
/// changelog batches (leading `op` column) and their schema.
pub struct PlannedSelect {
    pub graph: StreamGraph,
    pub receiver: mpsc::Receiver<RecordBatch>,
    pub schema: SchemaRef,
    pub bounded: bool,
}

/// Lowers an (optimized) query plan into a streaming graph that ends in a collect sink.
///
/// # Errors
/// `NotSupported` for plan nodes the streaming engine cannot run yet; `Invalid` for streaming
/// misuse (e.g. a window over a column that is not a time attribute).
pub async fn plan_select(
    state: &SessionState,
    plan: &LogicalPlan,
    settings: StreamSettings,
    late: Option<&LateRowsTable>,
) -> Result<PlannedSelect> {
    let parallelism = settings.parallelism.max(1);
    let capacity = settings.channel_capacity.max(1);
    let mut l = Lowering::new(state, settings, parallelism);
    let root = l.lower(plan).await?;
    let schema = Arc::new(plan.schema().as_arrow().clone());
    let (tx, rx) = mpsc::channel(capacity);
    let edge = Edge {
        from: root.id,
        partitioning: if root.parallelism == 1 {
            Partitioning::Forward
        } else {
            Partitioning::Single
        },
    };
    l.add_operator(
        "Collect",
        String::new(),
        Arc::clone(&schema),
        root.mode.clone(),
        1,
        vec![edge],
        Box::new(move |_| Ok(Box::new(ops::collect::Collect { sender: tx.clone() }))),
    );
    if let Some(t) = late {
        l.add_late_rows(t)?;
    }
    Ok(PlannedSelect {
        graph: l.graph,
        receiver: rx,
        schema: op_schema(&schema),
        bounded: root.bounded,
    })
}

/// Lowers (optimized) `INSERT` plans into one streaming graph (one job) ending in the tables' sinks.
///
/// # Errors
/// As [`plan_select`]; `Invalid` when a sink cannot take the changes the query produces
/// (e.g. updates into an append-only sink).
pub async fn plan_inserts(
    state: &SessionState,
    plans: &[LogicalPlan],
    settings: StreamSettings,
    late: Option<&LateRowsTable>,
) -> Result<(StreamGraph, bool)> {
    let parallelism = settings.parallelism.max(1);
    let mut l = Lowering::new(state, settings, parallelism);
    let mut bounded = true;
    for plan in plans {
        let LogicalPlan::Dml(dml) = plan else {
            return Err(Error::internal("plan_inserts expects INSERT plans"));
        };
        let input = l.lower(&dml.input).await?;
        bounded &= input.bounded;
        ops::sink::lower(&mut l, dml, input)?;
    }
    if let Some(t) = late {
        l.add_late_rows(t)?;
    }
    Ok((l.graph, bounded))
}

/// Streaming settings from the session options.
///
/// # Errors
/// `Invalid` for a malformed duration or number.
pub fn settings(options: &BTreeMap<String, String>) -> Result<StreamSettings> {
    let duration = |key: &str| -> Result<Option<Duration>> {
        match options.get(key) {
            None => Ok(None),
            Some(v) => {
                let d = parse_duration(v).map_err(|e| e.context(format!("in '{key}'")))?;
                Ok(if d.is_zero() { None } else { Some(d) })
            }
        }
    };
    let parallelism = match options.get("parallelism.default") {
        // As DataFusion and DuckDB do: the machine's cores (the answer must not depend on it).
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::invalid(format!("bad 'parallelism.default' '{v}'")))?,
    };
    let channel_capacity =
        match options.get("weir.stream.channel-capacity") {
            None => 16,
            Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::invalid(format!("bad 'weir.stream.channel-capacity' '{v}'"))
            })?,
        };
    let split_layout = match options.get("weir.stream.split-size") {
        None => source::SplitLayout::File,
        Some(v) => source::SplitLayout::ByteRange(
            crate::units::parse_memory_size(v)
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "invalid 'weir.stream.split-size' '{v}'; expected a size such as 64MB"
                    ))
                })?,
        ),
    };
    let perturbation_seed =
        match options.get("weir.testing.perturbation-seed") {
            None => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                Error::invalid(format!("bad 'weir.testing.perturbation-seed' '{v}'"))
            })?),
        };
    let max_parallelism = match options.get("pipeline.max-parallelism") {
        None => None,
        Some(v) => Some(
            v.parse::<usize>()
                .ok()
                .filter(|n| (1..=32768).contains(n))
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "bad 'pipeline.max-parallelism' '{v}': expected an integer from 1 to 32768"
                    ))
                })?,
        ),
    };
    let state_backend = match options.get("state.backend.type") {
        None => spill::BackendKind::Heap,
        Some(v) => spill::BackendKind::parse(v)?,
    };
    let budget = match options.get("state.backend.memory-budget") {
        None => spill::DEFAULT_BUDGET,
        Some(v) => crate::units::parse_memory_size(v)
            .filter(|n| *n > 0)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "invalid 'state.backend.memory-budget' '{v}'; expected a size such as 256 mb"
                ))
            })?,
    };
    let local_dir = options
        .get("state.backend.local-dir")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let disk = (state_backend == spill::BackendKind::Disk)
        .then(|| std::sync::Arc::new(spill::DiskBackend::new(budget, local_dir)));
    Ok(StreamSettings {
        disk,
        max_parallelism,
        state_ttl: duration("table.exec.state.ttl")?,
        idle_timeout: duration("table.exec.source.idle-timeout")?,
        channel_capacity,
        parallelism,
        split_layout,
        perturbation_seed,
    })
}

/// Parses a Flink duration: `500 ms`, `10s`, `1 min`, `2 h`, `1 d`; a bare number is ms (the
/// grammar is [`crate::units::parse_duration`]).
///
/// # Errors
/// `Invalid` when the text is not a duration.
pub fn parse_duration(text: &str) -> Result<Duration> {
    crate::units::parse_duration(text).ok_or_else(|| {
        Error::invalid(format!(
            "'{text}' is not a duration (e.g. '500 ms', '10 s', '1 min', '2 h', '1 d')"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10 s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1min").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }
}
