//! The checkpoint coordinator of one job: a task beside the operators that triggers
//! checkpoints on the configured interval, collects every task's state as its barrier passes,
//! writes the checkpoint (state files, then the manifest) while the job keeps running, and then
//! announces it complete, which is when sinks commit. A checkpoint not complete within the
//! timeout is abandoned (the next one starts after the pause). When every task of a bounded job
//! has ended, it writes the final checkpoint; sinks commit their last output on that.
//!
//! Incremental checkpoints: a checkpoint that directly follows a complete one of the same run
//! is taken in delta mode (tasks write what changed since their previous snapshot; see
//! [`super::snapshot::merge`]), and its manifest lists each task's base files. The coordinator
//! keeps every task's chain (base files and latest file) and, when a chain grows long or its
//! deltas outweigh its base, merges it in the background into one file that later checkpoints
//! refer to instead ([`CheckpointStore::compact`]). Savepoints, the final checkpoint and the
//! first checkpoint of a run (and the first after one is abandoned) are written in full.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::store::{CheckpointStore, Manifest, ManifestNode, ManifestTask, StateFile};
use super::{Ack, CheckpointConfig, FINAL, TaskHooks};
use crate::error::{Error, Result};

/// Statistics of a job's checkpoints (for `SHOW JOBS`).
#[derive(Debug, Clone, Default)]
pub struct CheckpointStats {
    /// The last complete checkpoint: id, when it completed, how long it took, bytes of state.
    pub last: Option<LastCheckpoint>,
    pub completed: u64,
    pub abandoned: u64,
    /// Where the job's checkpoints are.
    pub location: String,
    /// The checkpoint the job was restored from, if any.
    pub restored_from: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct LastCheckpoint {
    pub id: u64,
    pub completed_at: chrono::DateTime<chrono::Utc>,
    pub duration: Duration,
    /// Bytes the checkpoint wrote (with incremental checkpoints: what changed).
    pub size: u64,
    /// Bytes of all the state files it refers to (the whole state).
    pub state_size: u64,
    /// Whether it was written as deltas over the previous one.
    pub incremental: bool,
}

/// The tasks of a job as the coordinator sees them: per node, its uid, name and parallelism.
pub struct JobLayout {
    pub nodes: Vec<(String, String, usize)>,
    /// Nodes that are sources (they get triggers).
    pub sources: Vec<usize>,
    /// The job's number of key groups (recorded in every manifest).
    pub max_parallelism: usize,
}

struct Pending {
    id: u64,
    started: Instant,
    acks: HashMap<(usize, usize), Vec<u8>>,
    savepoint: bool,
    /// Tasks take their snapshots in delta mode.
    delta: bool,
}

/// A task's chain shortened by a background compaction: the files merged, and the one file
/// that replaces them.
type Compacted = Vec<((usize, usize), Vec<StateFile>, StateFile)>;

/// A chain is compacted when it has more files than this ...
const MAX_CHAIN: usize = 8;
/// ... or when its deltas add up to more than this fraction of its first file.
const MAX_DELTA_SHARE: f64 = 0.5;

/// A savepoint's id and directory.
pub type SavepointReply = tokio::sync::oneshot::Sender<Result<(u64, String)>>;

/// What a running job asks its coordinator.
pub enum Request {
    /// Take a savepoint now (after the checkpoint in flight, if any); answer when complete.
    Savepoint(SavepointReply),
}

/// Starts the coordinator; returns the hooks to hand to every task, the sender of requests
/// (savepoints) and the coordinator's future (run it beside the tasks: its error fails the job).
pub fn start(
    config: CheckpointConfig,
    store: CheckpointStore,
    layout: JobLayout,
    first_id: u64,
    finished: HashMap<(usize, usize), Vec<u8>>,
    stats: Arc<Mutex<CheckpointStats>>,
) -> (
    Arc<TaskHooks>,
    mpsc::UnboundedSender<Request>,
    impl std::future::Future<Output = Result<()>> + Send + 'static,
) {
    let (request_tx, request_rx) = mpsc::unbounded_channel();
    let (trigger_tx, trigger_rx) = watch::channel(0u64);
    let (complete_tx, complete_rx) = watch::channel(0u64);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let hooks = Arc::new(TaskHooks {
        mode: config.mode,
        triggers: trigger_rx,
        completed: complete_rx,
        final_id: Default::default(),
        delta_of: Default::default(),
        acks: ack_tx,
        stop: watch::channel(false).0,
        commits: Default::default(),
    });
    let run = Coordinator {
        config,
        store,
        layout,
        next_id: first_id.max(1),
        finished,
        stats,
        hooks: Arc::clone(&hooks),
        trigger_tx,
        complete_tx,
        last_completed: None,
        chains: HashMap::new(),
        compacting: Vec::new(),
        compactions: tokio::task::JoinSet::new(),
    }
    .run(ack_rx, request_rx);
    (hooks, request_tx, run)
}

struct Coordinator {
    config: CheckpointConfig,
    store: CheckpointStore,
    layout: JobLayout,
    next_id: u64,
    /// Final states of tasks that ended.
    finished: HashMap<(usize, usize), Vec<u8>>,
    stats: Arc<Mutex<CheckpointStats>>,
    hooks: Arc<TaskHooks>,
    trigger_tx: watch::Sender<u64>,
    complete_tx: watch::Sender<u64>,
    /// The last checkpoint this run completed.
    last_completed: Option<u64>,
    /// Per task, the files its state at the last complete checkpoint is made of (relative to
    /// the job's directory, oldest first).
    chains: HashMap<(usize, usize), Vec<StateFile>>,
    /// The chains being compacted and the files they are written to (kept from pruning).
    compacting: Vec<((usize, usize), Vec<StateFile>, String)>,
    compactions: tokio::task::JoinSet<Result<Compacted>>,
}

impl Coordinator {
    /// Starts checkpoint (or savepoint) `next_id`: decides whether tasks take deltas, then
    /// triggers the sources.
    fn trigger(&mut self, savepoint: bool) -> Pending {
        let id = self.next_id;
        self.next_id += 1;
        // Deltas only over a complete checkpoint every task snapshotted for (the previous id).
        let delta = self.config.incremental
            && !savepoint
            && self.last_completed.is_some_and(|c| c + 1 == id);
        self.hooks
            .delta_of
            .store(if delta { id } else { 0 }, Ordering::Release);
        let _ = self.trigger_tx.send(id);
        Pending {
            id,
            started: Instant::now(),
            acks: HashMap::new(),
            savepoint,
            delta,
        }
    }

    /// Starts compacting the chains that grew too long (one compaction at a time).
    fn maybe_compact(&mut self) {
        if !self.compacting.is_empty() {
            return;
        }
        let mut work = Vec::new();
        for (task, chain) in &self.chains {
            let [first, deltas @ ..] = chain.as_slice() else {
                continue;
            };
            let delta_bytes: u64 = deltas.iter().map(|f| f.size).sum();
            if !deltas.is_empty()
                && (chain.len() > MAX_CHAIN
                    || delta_bytes as f64 > first.size as f64 * MAX_DELTA_SHARE)
                && let Some(last) = chain.last()
            {
                let output = last.file.replace(".state", ".base.state");
                self.compacting.push((*task, chain.clone(), output));
                work.push((*task, chain.clone()));
            }
        }
        if work.is_empty() {
            return;
        }
        let store = self.store.clone();
        self.compactions.spawn(async move {
            let mut done = Vec::new();
            for (task, chain) in work {
                let file = store.compact(&chain).await?;
                done.push((task, chain, file));
            }
            Ok(done)
        });
    }

    /// A compaction ended: chains that still start with the merged files now start with the
    /// merged file instead.
    fn compacted(&mut self, result: Result<Compacted>) {
        self.compacting.clear();
        match result {
            Ok(done) => {
                for (task, merged, file) in done {
                    if let Some(chain) = self.chains.get_mut(&task)
                        && chain.starts_with(&merged)
                    {
                        chain.splice(..merged.len(), [file]);
                    }
                }
            }
            Err(e) => tracing::warn!("compacting checkpoint state: {e}"),
        }
    }

    /// Files the running job refers to or is writing (relative to the job's directory).
    fn in_use(&self) -> HashSet<String> {
        let mut files: HashSet<String> = self
            .chains
            .values()
            .flatten()
            .map(|f| f.file.clone())
            .collect();
        for (_, chain, output) in &self.compacting {
            files.extend(chain.iter().map(|f| f.file.clone()));
            files.insert(output.clone());
        }
        files
    }

    fn tasks(&self) -> usize {
        self.layout.nodes.iter().map(|(_, _, p)| p).sum()
    }

    fn sources_running(&self) -> bool {
        self.layout
            .sources
            .iter()
            .any(|&n| (0..self.layout.nodes[n].2).any(|i| !self.finished.contains_key(&(n, i))))
    }

    async fn run(
        mut self,
        mut acks: mpsc::UnboundedReceiver<Ack>,
        mut requests: mpsc::UnboundedReceiver<Request>,
    ) -> Result<()> {
        let mut pending: Option<Pending> = None;
        let mut last_trigger = Instant::now();
        let mut last_end = Instant::now();
        // Savepoint requests waiting for the next checkpoint to start / complete.
        let mut waiting: Vec<SavepointReply> = Vec::new();
        let mut answering: Vec<SavepointReply> = Vec::new();
        loop {
            if pending.is_none() && !waiting.is_empty() {
                if !self.sources_running() {
                    for w in waiting.drain(..) {
                        let _ = w.send(Err(Error::invalid(
                            "the job's sources have ended; it finishes with a final checkpoint instead of a savepoint",
                        )));
                    }
                } else {
                    let p = self.trigger(true);
                    last_trigger = p.started;
                    pending = Some(p);
                    answering.append(&mut waiting);
                }
            }
            if self.finished.len() == self.tasks() {
                // Every task ended: complete what is pending, then the final checkpoint.
                if let Some(p) = pending.take() {
                    self.complete(p, false).await?;
                }
                let id = self.next_id;
                self.next_id += 1;
                self.hooks.final_id.store(id, Ordering::Release);
                let p = Pending {
                    id,
                    started: Instant::now(),
                    acks: HashMap::new(),
                    savepoint: false,
                    delta: false,
                };
                self.complete(p, true).await?;
                for w in waiting.drain(..).chain(answering.drain(..)) {
                    let _ = w.send(Err(Error::invalid(
                        "the job finished before the savepoint was taken",
                    )));
                }
                return Ok(());
            }
            let next_at =
                (last_trigger + self.config.interval).max(last_end + self.config.min_pause);
            let deadline = pending.as_ref().map(|p| p.started + self.config.timeout);
            let can_trigger = pending.is_none() && self.sources_running();
            tokio::select! {
                () = tokio::time::sleep_until(next_at.into()), if can_trigger => {
                    let p = self.trigger(false);
                    last_trigger = p.started;
                    pending = Some(p);
                }
                Some(done) = self.compactions.join_next(), if !self.compactions.is_empty() => {
                    self.compacted(done.unwrap_or_else(|e| Err(Error::internal(format!("compaction task: {e}")))));
                }
                request = requests.recv() => {
                    match request {
                        Some(Request::Savepoint(reply)) => waiting.push(reply),
                        None => futures::future::pending::<()>().await,
                    }
                }
                () = sleep_until_opt(deadline) => {
                    if let Some(p) = pending.take() {
                        if p.savepoint {
                            for w in answering.drain(..) {
                                let _ = w.send(Err(Error::external(format!(
                                    "savepoint {} expired after {:?} before it completed",
                                    p.id, self.config.timeout
                                ))));
                            }
                        }
                        let w = format!(
                            "checkpoint {} expired after {:?} before it completed ({} of {} tasks acknowledged)",
                            p.id, self.config.timeout, p.acks.len() + self.finished.len(), self.tasks()
                        );
                        tracing::warn!("{w}");
                        if let Ok(mut s) = self.stats.lock() {
                            s.abandoned += 1;
                        }
                        last_end = Instant::now();
                    }
                }
                ack = acks.recv() => {
                    let Some(ack) = ack else {
                        // Every task is gone (the job ended or was stopped).
                        return Ok(());
                    };
                    let key = (ack.node, ack.instance);
                    if ack.checkpoint == FINAL {
                        self.finished.insert(key, ack.state);
                    } else if let Some(p) = pending.as_mut().filter(|p| p.id == ack.checkpoint) {
                        p.acks.insert(key, ack.state);
                    }
                    let done = pending.as_ref().is_some_and(|p| {
                        p.acks.len() + self.finished.keys().filter(|k| !p.acks.contains_key(k)).count()
                            == self.tasks()
                    });
                    if done && let Some(p) = pending.take() {
                        let (id, savepoint) = (p.id, p.savepoint);
                        let location = self.complete(p, false).await?;
                        if savepoint {
                            for w in answering.drain(..) {
                                let _ = w.send(Ok((id, location.clone())));
                            }
                        }
                        last_end = Instant::now();
                    }
                }
            }
        }
    }

    /// Writes checkpoint `p` (its acks, and the final states of tasks that ended) and announces
    /// it complete; returns its directory.
    async fn complete(&mut self, mut p: Pending, final_checkpoint: bool) -> Result<String> {
        let mut nodes = Vec::new();
        let mut states = Vec::new();
        for (n, (uid, name, parallelism)) in self.layout.nodes.iter().enumerate() {
            let mut tasks = Vec::new();
            let mut per_instance = Vec::new();
            for i in 0..*parallelism {
                let (state, finished) = match p.acks.remove(&(n, i)) {
                    Some(s) => (s, false),
                    None => match self.finished.get(&(n, i)) {
                        Some(s) => (s.clone(), true),
                        None => {
                            return Err(Error::internal(format!(
                                "checkpoint {}: no state from task {name}#{i}",
                                p.id
                            )));
                        }
                    },
                };
                let base = if p.delta && !finished {
                    self.chains.get(&(n, i)).cloned().ok_or_else(|| {
                        Error::internal(format!(
                            "checkpoint {}: task {name}#{i} took a delta without a base",
                            p.id
                        ))
                    })?
                } else {
                    Vec::new()
                };
                tasks.push(ManifestTask {
                    file: String::new(),
                    size: 0,
                    crc32: 0,
                    finished,
                    base,
                });
                per_instance.push(state);
            }
            nodes.push(ManifestNode {
                uid: uid.clone(),
                name: name.clone(),
                parallelism: *parallelism,
                tasks,
            });
            states.push(per_instance);
        }
        let manifest = Manifest {
            format: super::store::FORMAT,
            checkpoint: p.id,
            created_ms: super::super::state::now_ms(),
            final_checkpoint,
            savepoint: p.savepoint,
            max_parallelism: self.layout.max_parallelism,
            nodes,
        };
        let written = self
            .store
            .write(manifest, states)
            .await
            .map_err(|e| e.context(format!("writing checkpoint {}", p.id)))?;
        if let Ok(mut s) = self.stats.lock() {
            s.completed += 1;
            s.last = Some(super::coordinator::LastCheckpoint {
                id: p.id,
                completed_at: chrono::Utc::now(),
                duration: p.started.elapsed(),
                size: written.size(),
                state_size: written.full_size(),
                incremental: p.delta,
            });
        }
        self.chains = written.chains();
        self.last_completed = Some(p.id);
        let _ = self.complete_tx.send(p.id);
        if !final_checkpoint && self.config.incremental {
            self.maybe_compact();
        }
        if !p.savepoint
            && let Err(e) = self.store.prune(self.config.retained, &self.in_use()).await
        {
            tracing::warn!("cleaning up old checkpoints: {e}");
        }
        Ok(format!("{}/chk-{}", self.store.location(), p.id))
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => futures::future::pending().await,
    }
}
