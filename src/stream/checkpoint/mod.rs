//! Checkpoints of streaming jobs: consistent snapshots of every source's position and every
//! operator's state, taken while the job runs, from which a job restarts after a failure, a kill
//! or a deliberate stop (a savepoint), with sinks that commit their output only once a
//! checkpoint that covers it is complete (exactly once).
//!
//! ```text
//! coordinator ── trigger n ──> sources: record split positions + watermarks, emit Barrier(n)
//!      ^                         │ (barriers travel with the data through the channels)
//!      │                         v
//!      └──── ack(n, state) ─── operators: align Barrier(n) over their inputs (EXACTLY_ONCE),
//!                              snapshot their state tables, forward Barrier(n)
//! all acks in ─> state files + `_metadata` manifest (written last) ─> complete(n) ─> sinks commit
//! ```
//!
//! Files: `snapshot` (the serialized form of state), `store` (the checkpoint directory on an
//! object store: files, checksums, manifests, retention, finding the latest complete
//! checkpoint), `coordinator` (triggers, collects acks, completes checkpoints).
//!
//! State ids are stable across edits of a query that keep an operator: every node has a uid
//! built from what it computes (its name, arguments and output columns), not from its position
//! in the plan (see [`node_uids`]); each state table is `<uid>.<table>`.

pub mod coordinator;
pub mod rescale;
pub mod restore;
pub mod snapshot;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::runtime::StreamGraph;
use crate::error::{Error, Result};
pub use snapshot::StateSnapshot;

/// The id passed to [`super::operator::Operator::snapshot`] and
/// [`super::operator::Operator::on_checkpoint_complete`] for the final checkpoint of a bounded
/// job (taken after every input ended; completing it commits everything).
pub const FINAL: u64 = u64::MAX;

/// `'execution.checkpointing.mode'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointMode {
    /// Barriers are aligned at operators with several input channels: an input that delivered
    /// barrier n is paused until every input did, so no change after the barrier leaks into
    /// checkpoint n.
    ExactlyOnce,
    /// No alignment: the snapshot is taken when the last barrier arrives; after a restore some
    /// changes may be processed twice, none is lost.
    AtLeastOnce,
}

/// The checkpoint settings of a job (Flink's option keys; see [`CheckpointConfig::from_options`]).
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// `'execution.checkpointing.interval'`.
    pub interval: Duration,
    /// `'execution.checkpointing.mode'`.
    pub mode: CheckpointMode,
    /// `'execution.checkpointing.timeout'` (default 10 min): a checkpoint not complete by then
    /// is abandoned.
    pub timeout: Duration,
    /// `'execution.checkpointing.min-pause'` (default 0): time between the end of one
    /// checkpoint and the start of the next.
    pub min_pause: Duration,
    /// `'state.checkpoints.num-retained'` (default 1).
    pub retained: usize,
    /// `'execution.checkpointing.dir'` (default `<data dir>/checkpoints`).
    pub dir: String,
    /// `'execution.checkpointing.incremental'` (or Flink 1.x's `'state.backend.incremental'`;
    /// default `true`, unlike Flink): a checkpoint writes only the state changed since the
    /// previous one and refers to earlier files for the rest.
    pub incremental: bool,
}

impl CheckpointConfig {
    /// The checkpoint settings from session options; `None` when
    /// `'execution.checkpointing.interval'` is unset or zero (checkpointing off, as in Flink).
    /// `default_dir` is used when `'execution.checkpointing.dir'` is unset.
    ///
    /// # Errors
    /// `Invalid` for malformed values, naming the option.
    pub fn from_options(
        options: &BTreeMap<String, String>,
        default_dir: Option<&str>,
    ) -> Result<Option<CheckpointConfig>> {
        let duration = |key: &str, default: Duration| -> Result<Duration> {
            match options.get(key) {
                None => Ok(default),
                Some(v) => super::parse_duration(v).map_err(|e| e.context(format!("in '{key}'"))),
            }
        };
        let interval = duration("execution.checkpointing.interval", Duration::ZERO)?;
        let mode = match options
            .get("execution.checkpointing.mode")
            .map(|v| v.to_ascii_uppercase())
        {
            None => CheckpointMode::ExactlyOnce,
            Some(v) if v == "EXACTLY_ONCE" => CheckpointMode::ExactlyOnce,
            Some(v) if v == "AT_LEAST_ONCE" => CheckpointMode::AtLeastOnce,
            Some(v) => {
                return Err(Error::invalid(format!(
                    "bad 'execution.checkpointing.mode' '{v}'; expected EXACTLY_ONCE or AT_LEAST_ONCE"
                )));
            }
        };
        let timeout = duration("execution.checkpointing.timeout", Duration::from_secs(600))?;
        let mut incremental = true;
        for key in [
            "state.backend.incremental",
            "execution.checkpointing.incremental",
        ] {
            if let Some(v) = options.get(key) {
                incremental = match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::invalid(format!(
                            "bad '{key}' '{v}'; expected true or false"
                        )));
                    }
                };
            }
        }
        let min_pause = duration("execution.checkpointing.min-pause", Duration::ZERO)?;
        let retained = match options.get("state.checkpoints.num-retained") {
            None => 1,
            Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::invalid(format!(
                    "bad 'state.checkpoints.num-retained' '{v}'; expected a positive integer"
                ))
            })?,
        };
        if timeout.is_zero() {
            return Err(Error::invalid(
                "'execution.checkpointing.timeout' must be greater than zero",
            ));
        }
        if interval.is_zero() {
            return Ok(None);
        }
        let dir = match (options.get("execution.checkpointing.dir"), default_dir) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                return Err(Error::invalid(
                    "checkpointing is on ('execution.checkpointing.interval') but there is no \
                     checkpoint directory: SET 'execution.checkpointing.dir' (a path or URL), or \
                     start weir with a data directory",
                ));
            }
        };
        store::CheckpointStore::open(&dir)?;
        Ok(Some(CheckpointConfig {
            interval,
            mode,
            timeout,
            min_pause,
            retained,
            dir,
            incremental,
        }))
    }
}

/// A stable id per node: the node's name and a hash of its arguments and output columns, with
/// `-2`, `-3`, ... for later nodes that would get the same id. Editing one part of a query
/// leaves the ids of the operators it did not change as they were, so their state is restored.
pub fn node_uids(graph: &StreamGraph) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    graph
        .nodes
        .iter()
        .map(|n| {
            let mut text = format!("{}\u{0}{}\u{0}", n.name, n.detail);
            for (name, detail) in &n.fused {
                text.push_str(&format!("{name}\u{0}{detail}\u{0}"));
            }
            // Column names, not types: an operator whose types changed keeps its id, so a
            // restore can report its state as incompatible instead of silently starting empty.
            for f in n.schema.fields() {
                text.push_str(&format!("{}\u{0}", f.name()));
            }
            let text = planner_counters(&text);
            let base = format!("{}-{:016x}", n.name, fnv1a(text.as_bytes()));
            let k = seen.entry(base.clone()).or_insert(0);
            *k += 1;
            if *k == 1 { base } else { format!("{base}-{k}") }
        })
        .collect()
}

/// `text` with the numbers of the planner's generated names (`__datafusion_extracted_7`) taken
/// out: they come from a counter that depends on what was planned before in the process, not
/// on the query.
fn planner_counters(text: &str) -> std::borrow::Cow<'_, str> {
    static GENERATED: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"(__datafusion_[a-z_]+?_)\d+").ok());
    match GENERATED.as_ref() {
        Some(re) => re.replace_all(text, "${1}#"),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// FNV-1a, 64 bit: a hash that is the same in every build and run.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One task's answer to a barrier (or its final state when it ends).
pub struct Ack {
    /// The checkpoint, or [`FINAL`] for the state a task had when it finished.
    pub checkpoint: u64,
    pub node: usize,
    pub instance: usize,
    /// The encoded [`StateSnapshot`].
    pub state: Vec<u8>,
}

/// What every task of a checkpointed job shares with the coordinator.
pub struct TaskHooks {
    pub mode: CheckpointMode,
    /// Sources: the latest checkpoint triggered (0 = none yet).
    pub triggers: watch::Receiver<u64>,
    /// Every task: the latest checkpoint completed (0 = none yet).
    pub completed: watch::Receiver<u64>,
    /// Set (before `completed` announces it) to the id of the final checkpoint.
    pub final_id: AtomicU64,
    /// The checkpoint whose snapshots are taken in delta mode (0 = none): set by the
    /// coordinator before it triggers a checkpoint that may be incremental.
    pub delta_of: AtomicU64,
    pub acks: mpsc::UnboundedSender<Ack>,
    /// Set to `true` to make the sources end now (`STOP JOB .. WITH DRAIN`).
    pub stop: watch::Sender<bool>,
    /// Per sink task (node, instance), the last checkpoint it committed.
    pub commits: std::sync::Mutex<HashMap<(usize, usize), u64>>,
}

impl TaskHooks {
    /// Sink task `task` committed checkpoint `id` (and every earlier one).
    pub fn committed(&self, task: (usize, usize), id: u64) {
        if let Ok(mut c) = self.commits.lock() {
            let last = c.entry(task).or_insert(0);
            *last = (*last).max(id);
        }
    }

    /// How many sink tasks have committed checkpoint `id` or a later one.
    pub fn commits_of(&self, id: u64) -> usize {
        self.commits
            .lock()
            .map(|c| c.values().filter(|&&last| last >= id).count())
            .unwrap_or(0)
    }

    /// Whether snapshots for checkpoint `id` are taken in delta mode (see
    /// [`StateSnapshot::taking`]).
    pub fn takes_delta(&self, id: u64) -> bool {
        id != FINAL && id != 0 && self.delta_of.load(Ordering::Acquire) == id
    }

    /// Whether `id` is the final checkpoint (everything committed after it).
    pub fn is_final(&self, id: u64) -> bool {
        let f = self.final_id.load(Ordering::Acquire);
        f != 0 && id >= f
    }
}

/// State restored into a job at launch: per node (graph order) and instance, the snapshot and
/// whether that task had already finished.
#[derive(Default)]
pub struct Restored {
    /// The checkpoint restored from.
    pub checkpoint: u64,
    /// The checkpoint's key groups (the restored job keeps them).
    pub max_parallelism: usize,
    /// Per graph node and instance: the state, and whether the task had finished.
    pub tasks: HashMap<(usize, usize), (Arc<StateSnapshot>, bool)>,
}

/// What `launch` needs to checkpoint a job: its settings, where checkpoints go, and the state
/// to start from.
pub struct JobCheckpointing {
    /// The settings and the job's directory in the checkpoint store (`<dir>/<job id>`);
    /// `None` when the job only starts from a savepoint and takes no checkpoints.
    pub checkpoints: Option<(CheckpointConfig, store::CheckpointStore)>,
    pub restored: Option<Restored>,
    /// Checkpoint ids continue after the restored one.
    pub next_id: u64,
    /// Warnings to show the user (e.g. a corrupt checkpoint skipped).
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn uids_ignore_the_planners_counters() {
        assert_eq!(
            super::planner_counters(
                "select=[a, __datafusion_extracted_12, __datafusion_extracted_3]"
            ),
            "select=[a, __datafusion_extracted_#, __datafusion_extracted_#]"
        );
        assert_eq!(super::planner_counters("b_12"), "b_12");
    }
}
