//! Starting a job from a checkpoint or savepoint: matches the state in the checkpoint's
//! manifest to the operators of the job's graph by their stable uids (see
//! [`super::node_uids`]), and reports what is restored, what starts empty and what would be
//! dropped. Runs before `launch`; the operators then restore their own tables (and refuse
//! incompatible ones).

use std::collections::HashMap;

use super::Restored;
use super::store::LoadedCheckpoint;
use crate::error::{Error, Result};
use crate::stream::runtime::StreamGraph;

/// What a restore does with each operator's state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// Operators (uids) whose state comes from the checkpoint.
    pub restored: Vec<String>,
    /// Operators of the job that the checkpoint does not know: they start empty.
    pub empty: Vec<String>,
    /// State in the checkpoint that no operator of the job claims (uid, tables).
    pub dropped: Vec<(String, Vec<String>)>,
}

impl RestorePlan {
    /// One line per operator, for `EXPLAIN` and warnings.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.restored.iter().map(|u| format!("restored: {u}")));
        out.extend(self.empty.iter().map(|u| format!("starts empty: {u}")));
        out.extend(
            self.dropped
                .iter()
                .map(|(u, t)| format!("dropped: {u} (state {})", t.join(", "))),
        );
        out
    }
}

/// The tables of a task's snapshot that hold operator state (the runtime's own `_runtime`
/// watermark table does not count).
fn state_tables(checkpoint: &LoadedCheckpoint, node: usize) -> Vec<String> {
    let mut tables: Vec<String> = checkpoint
        .states
        .iter()
        .filter(|((n, _), _)| *n == node)
        .flat_map(|(_, s)| {
            s.tables()
                .filter(|(name, batch)| !name.starts_with('_') && batch.num_rows() > 0)
                .map(|(name, _)| name.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    tables.sort();
    tables.dedup();
    tables
}

/// Matches `checkpoint` to `graph`: the state per graph node and instance, and the plan.
///
/// # Errors
/// `Invalid` when state would be dropped and `ignore_unclaimed` is false
/// (`'execution.savepoint.ignore-unclaimed-state'`); `NotSupported` when an operator's
/// parallelism changed (rescaling is not supported yet).
pub fn match_state(
    graph: &StreamGraph,
    checkpoint: &LoadedCheckpoint,
    ignore_unclaimed: bool,
) -> Result<(Restored, RestorePlan)> {
    let uids = super::node_uids(graph);
    let by_uid: HashMap<&str, usize> = uids
        .iter()
        .enumerate()
        .map(|(i, u)| (u.as_str(), i))
        .collect();
    let mut plan = RestorePlan::default();
    let mut restored = Restored {
        checkpoint: checkpoint.manifest.checkpoint,
        tasks: HashMap::new(),
    };
    let mut claimed = vec![false; uids.len()];
    for (m, node) in checkpoint.manifest.nodes.iter().enumerate() {
        let Some(&g) = by_uid.get(node.uid.as_str()) else {
            let tables = state_tables(checkpoint, m);
            if !tables.is_empty() {
                plan.dropped.push((node.uid.clone(), tables));
            }
            continue;
        };
        claimed[g] = true;
        let parallelism = graph.nodes[g].parallelism;
        if parallelism != node.parallelism {
            return Err(Error::not_supported(format!(
                "restoring {} with parallelism {parallelism} from {} where it ran with \
                 parallelism {} is not supported yet (rescaling); set 'parallelism.default' \
                 back to {}",
                node.uid, checkpoint.location, node.parallelism, node.parallelism
            )));
        }
        for (i, task) in node.tasks.iter().enumerate() {
            let state = checkpoint.states.get(&(m, i)).ok_or_else(|| {
                Error::external(format!(
                    "checkpoint {} has no state for task {}#{i}",
                    checkpoint.location, node.uid
                ))
            })?;
            restored
                .tasks
                .insert((g, i), (std::sync::Arc::clone(state), task.finished));
        }
        plan.restored.push(node.uid.clone());
    }
    for (g, c) in claimed.iter().enumerate() {
        if !c {
            plan.empty.push(uids[g].clone());
        }
    }
    if !plan.dropped.is_empty() && !ignore_unclaimed {
        let list: Vec<String> = plan
            .dropped
            .iter()
            .map(|(u, t)| format!("{u} ({})", t.join(", ")))
            .collect();
        return Err(Error::invalid(format!(
            "the state of {} in {} belongs to no operator of this query; it would be dropped. \
             SET 'execution.savepoint.ignore-unclaimed-state' = 'true' to start without it",
            list.join(", "),
            checkpoint.location
        )));
    }
    Ok((restored, plan))
}
