//! Starting a job from a checkpoint or savepoint: matches the state in the checkpoint's
//! manifest to the operators of the job's graph by their stable uids (see
//! [`super::node_uids`]), and reports what is restored, what starts empty and what would be
//! dropped. Runs before `launch`; the operators then restore their own tables (and refuse
//! incompatible ones).

use std::collections::HashMap;

use super::Restored;
use super::store::LoadedCheckpoint;
use crate::error::{Error, Result};
use crate::stream::operator::{NodeCounters, OperatorContext};
use crate::stream::runtime::{NodeKind, StreamGraph};

/// What a restore does with each operator's state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// Operators (uids) whose state comes from the checkpoint.
    pub restored: Vec<String>,
    /// Operators of the job that the checkpoint does not know: they start empty.
    pub empty: Vec<String>,
    /// State in the checkpoint that no operator of the job claims (uid, tables).
    pub dropped: Vec<(String, Vec<String>)>,
    /// Restored operators whose parallelism changed (uid, from, to): their keyed state moves
    /// by key group (see [`super::rescale`]).
    pub rescaled: Vec<(String, usize, usize)>,
    /// Operators whose state in the checkpoint does not fit them any more (uid, why): a key or
    /// value type changed while the operator kept its id.
    pub incompatible: Vec<(String, String)>,
}

impl RestorePlan {
    /// One line per operator, for `EXPLAIN` and warnings.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.restored.iter().map(|u| format!("restored: {u}")));
        out.extend(self.empty.iter().map(|u| format!("starts empty: {u}")));
        out.extend(
            self.rescaled
                .iter()
                .map(|(u, from, to)| format!("rescaled: {u} (parallelism {from} -> {to})")),
        );
        out.extend(
            self.dropped
                .iter()
                .map(|(u, t)| format!("dropped: {u} (state {})", t.join(", "))),
        );
        out.extend(
            self.incompatible
                .iter()
                .map(|(u, why)| format!("incompatible: {u} ({why})")),
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
/// (`'execution.savepoint.ignore-unclaimed-state'`) or when the job's
/// `'pipeline.max-parallelism'` differs from the checkpoint's; the errors of
/// [`super::rescale::redistribute`] for an operator whose parallelism changed.
pub fn match_state(
    graph: &StreamGraph,
    checkpoint: &LoadedCheckpoint,
    ignore_unclaimed: bool,
) -> Result<(Restored, RestorePlan)> {
    let (restored, plan) = plan_restore(graph, checkpoint)?;
    if !plan.incompatible.is_empty() {
        let list: Vec<String> = plan
            .incompatible
            .iter()
            .map(|(u, why)| format!("{u}: {why}"))
            .collect();
        return Err(Error::invalid(format!(
            "the state in {} does not fit this query any more (a key or value type changed): \
             {}. Start the changed query without it, or change the query back",
            checkpoint.location,
            list.join("; ")
        )));
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

/// The operators of `graph` that cannot restore their state in `restored` because it was
/// written for other key or value types (uid, the operator's reason): each is built and
/// restores its first instance's state, as the job would, then is thrown away. Sinks are left
/// out (their restore commits files) and so are sources (their state is positions, not types).
fn incompatible(
    graph: &StreamGraph,
    uids: &[String],
    restored: &Restored,
) -> Vec<(String, String)> {
    let roots: std::collections::HashSet<usize> = graph.roots().into_iter().collect();
    let mut out = Vec::new();
    for (g, node) in graph.nodes.iter().enumerate() {
        let NodeKind::Operator(factory) = &node.kind else {
            continue;
        };
        if roots.contains(&g) {
            continue;
        }
        let Some((snapshot, _)) = restored.tasks.get(&(g, 0)) else {
            continue;
        };
        let ctx = OperatorContext {
            node: g,
            name: std::sync::Arc::from(node.name.as_str()),
            uid: std::sync::Arc::from(uids[g].as_str()),
            checkpoints: None,
            late: None,
            instance: 0,
            parallelism: node.parallelism,
            counters: std::sync::Arc::new(NodeCounters::default()),
            settings: std::sync::Arc::clone(&graph.settings),
        };
        if let Err(e) = factory(&ctx).and_then(|mut op| op.restore(snapshot)) {
            let text = e.to_string();
            if let Some(at) = text.find("incompatible state") {
                out.push((uids[g].clone(), text[at..].to_string()));
            }
        }
    }
    out
}

/// [`match_state`] without refusing anything: the state per graph node and instance, and the
/// plan (for `EXPLAIN`, which reports what a start would do).
///
/// # Errors
/// A `'pipeline.max-parallelism'` different from the checkpoint's; the errors of
/// [`super::rescale::redistribute`].
pub fn plan_restore(
    graph: &StreamGraph,
    checkpoint: &LoadedCheckpoint,
) -> Result<(Restored, RestorePlan)> {
    let uids = super::node_uids(graph);
    let by_uid: HashMap<&str, usize> = uids
        .iter()
        .enumerate()
        .map(|(i, u)| (u.as_str(), i))
        .collect();
    let max_parallelism = checkpoint.manifest.max_parallelism;
    if let Some(set) = graph.settings.max_parallelism
        && set != max_parallelism
    {
        return Err(Error::invalid(format!(
            "{} was taken with 'pipeline.max-parallelism' = {max_parallelism}; a job restored \
             from it must keep that (it is set to {set})",
            checkpoint.location
        )));
    }
    let mut plan = RestorePlan::default();
    let mut restored = Restored {
        checkpoint: checkpoint.manifest.checkpoint,
        max_parallelism,
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
        let mut old = Vec::with_capacity(node.tasks.len());
        for i in 0..node.tasks.len() {
            let state = checkpoint.states.get(&(m, i)).ok_or_else(|| {
                Error::external(format!(
                    "checkpoint {} has no state for task {}#{i}",
                    checkpoint.location, node.uid
                ))
            })?;
            old.push(std::sync::Arc::clone(state));
        }
        if parallelism == node.tasks.len() {
            for (i, (state, task)) in old.into_iter().zip(&node.tasks).enumerate() {
                restored.tasks.insert((g, i), (state, task.finished));
            }
        } else {
            let finished = node.tasks.iter().all(|t| t.finished);
            let new = super::rescale::redistribute(&node.uid, &old, parallelism, max_parallelism)
                .map_err(|e| e.context(format!("restoring from {}", checkpoint.location)))?;
            for (i, state) in new.into_iter().enumerate() {
                restored
                    .tasks
                    .insert((g, i), (std::sync::Arc::new(state), finished));
            }
            plan.rescaled
                .push((node.uid.clone(), node.tasks.len(), parallelism));
        }
        plan.restored.push(node.uid.clone());
    }
    for (g, c) in claimed.iter().enumerate() {
        if !c {
            plan.empty.push(uids[g].clone());
        }
    }
    plan.incompatible = incompatible(graph, &uids, &restored);
    Ok((restored, plan))
}
