//! The checkpoint coordinator of one job: a task beside the operators that triggers
//! checkpoints on the configured interval, collects every task's state as its barrier passes,
//! writes the checkpoint (state files, then the manifest) while the job keeps running, and then
//! announces it complete, which is when sinks commit. A checkpoint not complete within the
//! timeout is abandoned (the next one starts after the pause). When every task of a bounded job
//! has ended, it writes the final checkpoint; sinks commit their last output on that.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::store::{CheckpointStore, Manifest, ManifestNode, ManifestTask};
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
    pub size: u64,
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
}

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
}

impl Coordinator {
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
                    let id = self.next_id;
                    self.next_id += 1;
                    last_trigger = Instant::now();
                    pending = Some(Pending {
                        id,
                        started: last_trigger,
                        acks: HashMap::new(),
                        savepoint: true,
                    });
                    answering.append(&mut waiting);
                    let _ = self.trigger_tx.send(id);
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
                    let id = self.next_id;
                    self.next_id += 1;
                    last_trigger = Instant::now();
                    pending = Some(Pending { id, started: last_trigger, acks: HashMap::new(), savepoint: false });
                    let _ = self.trigger_tx.send(id);
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
                tasks.push(ManifestTask {
                    file: String::new(),
                    size: 0,
                    crc32: 0,
                    finished,
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
            format: 1,
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
            });
        }
        let _ = self.complete_tx.send(p.id);
        if !p.savepoint
            && let Err(e) = self.store.prune(self.config.retained).await
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
