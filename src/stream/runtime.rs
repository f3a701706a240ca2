//! The streaming runtime: runs a [`StreamGraph`] as one tokio task per operator instance,
//! connected by bounded channels (a slow consumer backs up its producers instead of growing
//! memory). The runtime owns the protocol; operators only react (see [`super::operator`]):
//!
//! - **Watermarks** are merged per instance as the minimum over its input channels. A channel
//!   that ended counts as `+∞`; a channel that reported [`Message::Idle`] is left out until it
//!   sends again. When every input ended, the instance sees a final `WATERMARK_MAX`, then
//!   `on_end`, and sends `End` downstream.
//! - **Exchanges**: an edge is `Forward` (instance i to instance i), `Hash` (rows go to the
//!   instance owning the hash of their key columns; watermarks and control messages go to all)
//!   or `Single` (everything to instance 0).
//! - **Failure and cancellation**: the first error stops the job; dropping the [`RunningJob`]
//!   aborts every task.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::changes::{ChangelogMode, Changes, Message, WATERMARK_MAX};
use super::checkpoint::coordinator::{self, CheckpointStats, JobLayout};
use super::checkpoint::snapshot::StateSnapshot;
use super::checkpoint::{Ack, CheckpointMode, FINAL, JobCheckpointing, TaskHooks};
use super::operator::{
    LateRowsRoute, NodeCounters, Operator, OperatorContext, Output, StreamSettings,
};
use super::source::{SourceNode, mix};
use super::state::{KeyEncoder, instance_for_key};
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Builds one instance of an operator.
pub type OperatorFactory = Box<dyn Fn(&OperatorContext) -> Result<Box<dyn Operator>> + Send + Sync>;

pub enum NodeKind {
    /// A source with the stateless operators fused into it (see [`super::source`]).
    Source(Arc<SourceNode>),
    Operator(OperatorFactory),
}

/// How rows travel along an edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// Instance i to instance i (same parallelism on both ends).
    Forward,
    /// By hash of these columns of the producer's output.
    Hash(Vec<usize>),
    /// Everything to instance 0 of the consumer.
    Single,
}

pub struct Edge {
    pub from: usize,
    pub partitioning: Partitioning,
}

/// One node of the physical streaming plan.
pub struct GraphNode {
    /// Operator name as shown by EXPLAIN, e.g. `GroupAggregate`.
    pub name: String,
    /// Its arguments as shown by EXPLAIN, e.g. `groupBy=[a], select=[a, COUNT(*)]`.
    pub detail: String,
    pub schema: SchemaRef,
    pub mode: ChangelogMode,
    pub kind: NodeKind,
    pub inputs: Vec<Edge>,
    pub parallelism: usize,
    /// Operators fused into this node (run in its task), from the top down, as EXPLAIN shows
    /// them below it: name and arguments.
    pub fused: Vec<(String, String)>,
}

/// A streaming plan: nodes in topological order (inputs before consumers); the last node is the
/// sink.
pub struct StreamGraph {
    pub nodes: Vec<GraphNode>,
    pub settings: Arc<StreamSettings>,
    /// Where operators send late rows (`'weir.stream.late-rows-table'`), and the nodes that
    /// carry them to the table (which get no route themselves, so the route closes when every
    /// other node has ended).
    pub late_rows: Option<(LateRowsRoute, Vec<usize>)>,
    /// Checkpointing of the job (set by the session before [`launch`]), with the state to
    /// start from.
    pub checkpointing: Option<JobCheckpointing>,
    /// How the job restarts after a failure (set by the session; checkpointed jobs only).
    pub restart: Option<super::restart::RestartPlan>,
    /// Counters and checkpoint statistics of the attempt before (a restart keeps them).
    pub(super) reuse: Option<Reused>,
}

/// What a restarted job keeps from its previous attempt.
pub(super) struct Reused {
    pub counters: Vec<Arc<NodeCounters>>,
    pub stats: Option<Arc<std::sync::Mutex<CheckpointStats>>>,
}

impl StreamGraph {
    pub fn new(settings: StreamSettings) -> StreamGraph {
        StreamGraph {
            nodes: Vec::new(),
            settings: Arc::new(settings),
            late_rows: None,
            checkpointing: None,
            restart: None,
            reuse: None,
        }
    }

    /// Adds a node; returns its id.
    pub fn add(&mut self, node: GraphNode) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    pub fn node(&self, id: usize) -> &GraphNode {
        &self.nodes[id]
    }

    /// EXPLAIN text: the plan as a tree from the sink, each operator with its changelog mode.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for id in self.roots() {
            self.explain_node(id, 0, &mut out);
        }
        out
    }

    /// The nodes no other node consumes (the sinks), in graph order.
    pub fn roots(&self) -> Vec<usize> {
        let consumed: std::collections::HashSet<usize> = self
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter().map(|e| e.from))
            .collect();
        (0..self.nodes.len())
            .filter(|i| !consumed.contains(i))
            .collect()
    }

    fn explain_node(&self, id: usize, depth: usize, out: &mut String) {
        let n = &self.nodes[id];
        let key = match &n.mode {
            ChangelogMode::Retract { key: Some(k) } => {
                let names: Vec<&str> = k
                    .iter()
                    .map(|i| n.schema.field(*i).name().as_str())
                    .collect();
                format!(", upsertKey=[{}]", names.join(", "))
            }
            _ => String::new(),
        };
        let detail = if n.detail.is_empty() {
            String::new()
        } else {
            format!("{}, ", n.detail)
        };
        out.push_str(&format!(
            "{}{}({detail}changelogMode=[{}]{key})\n",
            "  ".repeat(depth),
            n.name,
            n.mode.flink_notation()
        ));
        for (k, (name, detail)) in n.fused.iter().enumerate() {
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!("{detail}, ")
            };
            out.push_str(&format!(
                "{}{name}({detail}changelogMode=[{}])\n",
                "  ".repeat(depth + 1 + k),
                n.mode.flink_notation()
            ));
        }
        let depth = depth + n.fused.len();
        for e in &n.inputs {
            let exchange = match &e.partitioning {
                Partitioning::Hash(cols) if n.parallelism > 1 => {
                    let names: Vec<&str> = cols
                        .iter()
                        .map(|i| self.nodes[e.from].schema.field(*i).name().as_str())
                        .collect();
                    Some(format!(
                        "Exchange(distribution=[hash[{}]])",
                        names.join(", ")
                    ))
                }
                Partitioning::Single if self.nodes[e.from].parallelism > 1 => {
                    Some("Exchange(distribution=[single])".to_string())
                }
                _ => None,
            };
            match exchange {
                Some(x) => {
                    out.push_str(&format!("{}{x}\n", "  ".repeat(depth + 1)));
                    self.explain_node(e.from, depth + 2, out);
                }
                None => self.explain_node(e.from, depth + 1, out),
            }
        }
    }
}

/// How a job ended, or that it still runs.
#[derive(Debug, Clone)]
pub enum JobStatus {
    Running,
    /// Failed, waiting to restart from its last complete checkpoint (restart strategy).
    Restarting,
    Finished,
    Failed(Error),
    Canceled,
}

impl JobStatus {
    /// `RUNNING`, `FINISHED`, `FAILED` or `CANCELED` (Flink's names).
    pub fn name(&self) -> &'static str {
        match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Restarting => "RESTARTING",
            JobStatus::Finished => "FINISHED",
            JobStatus::Failed(_) => "FAILED",
            JobStatus::Canceled => "CANCELED",
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, JobStatus::Running | JobStatus::Restarting)
    }
}

/// A launched graph. Dropping it aborts every task of the job.
pub struct RunningJob {
    pub(super) status: watch::Receiver<JobStatus>,
    pub(super) counters: Vec<Arc<NodeCounters>>,
    pub(super) names: Vec<String>,
    /// The nodes nothing consumes: the job's sinks.
    pub(super) sinks: Vec<usize>,
    pub(super) tasks: Option<tokio::task::JoinHandle<()>>,
    pub(super) cancel: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    pub(super) checkpoints: Option<Arc<std::sync::Mutex<CheckpointStats>>>,
    /// The current attempt's checkpoint control (replaced when the job restarts).
    pub(super) control: Arc<std::sync::Mutex<Option<JobControl>>>,
    /// How often the job was restarted by its restart strategy.
    pub(super) restarts: Arc<std::sync::atomic::AtomicU64>,
}

/// What a checkpointed job's owner can ask of it (savepoints, drain).
#[derive(Clone)]
pub(super) struct JobControl {
    hooks: Arc<TaskHooks>,
    requests: Option<tokio::sync::mpsc::UnboundedSender<coordinator::Request>>,
    /// Tasks without outgoing edges (the sinks), which commit on completed checkpoints.
    sink_tasks: usize,
}

impl RunningJob {
    /// Takes a savepoint (a checkpoint marked as such) and waits until it is complete and every
    /// sink has committed the output it covers; returns its id and directory.
    ///
    /// # Errors
    /// `Invalid` when the job takes no checkpoints or its sources have ended; the
    /// checkpoint's errors.
    pub async fn savepoint(&self) -> Result<(u64, String)> {
        let control = self.control.lock().ok().and_then(|c| c.clone());
        let Some(control) = control.as_ref() else {
            return Err(Error::invalid(
                "the job takes no checkpoints, so it cannot take a savepoint; start it with \
                 SET 'execution.checkpointing.interval'",
            ));
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        control
            .requests
            .as_ref()
            .and_then(|r| r.send(coordinator::Request::Savepoint(tx)).ok())
            .ok_or_else(|| Error::invalid("the job's checkpoint coordinator has stopped"))?;
        let (id, path) = rx
            .await
            .map_err(|_| Error::invalid("the job ended before its savepoint completed"))??;
        let deadline = Instant::now() + Duration::from_secs(60);
        while control.hooks.commits_of(id) < control.sink_tasks {
            if Instant::now() > deadline || !self.status().is_running() {
                return Err(Error::external(format!(
                    "savepoint {id} is complete at {path}, but the sinks did not commit its \
                     output; restore from it to commit"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok((id, path))
    }

    /// Makes the job's sources end now, as if their input ended: the job flushes every window
    /// and timer, writes its final checkpoint and finishes (`STOP JOB .. WITH DRAIN`).
    ///
    /// # Errors
    /// `Invalid` when the job takes no checkpoints.
    pub fn drain(&self) -> Result<()> {
        let control = self.control.lock().ok().and_then(|c| c.clone());
        let control = control.as_ref().ok_or_else(|| {
            Error::invalid(
                "the job takes no checkpoints, so it cannot be drained into a savepoint; start \
                 it with SET 'execution.checkpointing.interval'",
            )
        })?;
        let _ = control.hooks.stop.send(true);
        Ok(())
    }

    /// How often the job was restarted from a checkpoint after a failure.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The job's checkpoint statistics, when checkpointing is on.
    pub fn checkpoint_stats(&self) -> Option<CheckpointStats> {
        self.checkpoints
            .as_ref()
            .and_then(|s| s.lock().ok().map(|s| s.clone()))
    }

    pub fn status(&self) -> JobStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn status_watch(&self) -> watch::Receiver<JobStatus> {
        self.status.clone()
    }

    /// Per node (in graph order): its name and counters.
    pub fn counters(&self) -> Vec<(String, Arc<NodeCounters>)> {
        self.names
            .iter()
            .cloned()
            .zip(self.counters.iter().cloned())
            .collect()
    }

    /// Rows that reached the job's sinks.
    pub fn rows_written(&self) -> u64 {
        self.sinks
            .iter()
            .map(|s| self.counters[*s].rows_in.load(Ordering::Relaxed))
            .sum()
    }

    /// Rows dropped as late, over all nodes.
    pub fn late_rows_dropped(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.late_rows_dropped.load(Ordering::Relaxed))
            .sum()
    }

    /// Stops every task; the status becomes `Canceled` (unless the job already ended).
    pub fn cancel(&self) {
        let sender = self.cancel.lock().ok().and_then(|mut c| c.take());
        if let Some(c) = sender {
            let _ = c.send(());
        }
    }

    /// Waits until the job is no longer running; returns how it ended.
    pub async fn wait(&self) -> JobStatus {
        wait_status(self.status.clone()).await
    }

    /// A future that resolves when the job ends (independent of `self`'s lifetime).
    pub fn ended(&self) -> impl std::future::Future<Output = JobStatus> + Send + 'static {
        wait_status(self.status.clone())
    }
}

async fn wait_status(mut rx: watch::Receiver<JobStatus>) -> JobStatus {
    loop {
        let s = rx.borrow_and_update().clone();
        if !s.is_running() {
            return s;
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        if let Some(t) = self.tasks.take() {
            t.abort();
        }
    }
}

type Sender = mpsc::Sender<Message>;
/// Per outgoing edge: how it partitions, its key encoder, senders by consumer instance.
type OutEdge = (Partitioning, Option<KeyEncoder>, Vec<Sender>);
/// Per input channel: the logical input index and the receiver.
type InChannel = (usize, mpsc::Receiver<Message>);

/// Where one instance sends its output: per outgoing edge, the senders by consumer instance.
pub(crate) struct Emitter {
    edges: Vec<OutEdge>,
    /// Key groups of the job (`'pipeline.max-parallelism'`): hash exchanges route a key to the
    /// instance owning its key group (see [`crate::stream::state::instance_for_key`]).
    max_parallelism: usize,
}

impl Emitter {
    /// An emitter with one forward edge into `sender` (tests of sources and operators).
    #[cfg(test)]
    pub(crate) fn to_channel(sender: Sender) -> Emitter {
        Emitter {
            edges: vec![(Partitioning::Forward, None, vec![sender])],
            max_parallelism: 128,
        }
    }

    pub(crate) async fn data(&self, changes: Changes) -> Result<()> {
        for (partitioning, encoder, senders) in &self.edges {
            match (partitioning, encoder) {
                (Partitioning::Hash(cols), Some(encoder)) if senders.len() > 1 => {
                    let keys: Vec<_> = cols
                        .iter()
                        .map(|c| Arc::clone(changes.data.column(*c)))
                        .collect();
                    let rows = encoder.encode(&keys)?;
                    let mut parts: Vec<Vec<u32>> = vec![Vec::new(); senders.len()];
                    for (i, row) in rows.iter().enumerate() {
                        let target =
                            instance_for_key(row.as_ref(), self.max_parallelism, senders.len());
                        parts[target].push(i as u32);
                    }
                    for (target, idx) in parts.into_iter().enumerate() {
                        if idx.is_empty() {
                            continue;
                        }
                        let part = changes.take(&UInt32Array::from(idx))?;
                        send(&senders[target], Message::Data(part)).await?;
                    }
                }
                _ => {
                    for s in senders {
                        send(s, Message::Data(changes.clone())).await?;
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn control(&self, message: Message) -> Result<()> {
        for (_, _, senders) in &self.edges {
            for s in senders {
                send(s, message.clone()).await?;
            }
        }
        Ok(())
    }
}

async fn send(sender: &Sender, message: Message) -> Result<()> {
    sender
        .send(message)
        .await
        .map_err(|_| Error::cancelled().context("the downstream operator stopped"))
}

/// Starts every instance of every node on the current tokio runtime.
///
/// # Errors
/// `Internal` for a malformed graph (edges that do not fit their nodes' parallelism); operator
/// factories' errors.
pub fn launch(graph: StreamGraph) -> Result<RunningJob> {
    if graph.restart.is_some() {
        return super::restart::supervise(graph);
    }
    launch_attempt(graph)
}

/// Starts one attempt of a job (see [`launch`]).
///
/// # Errors
/// As [`launch`].
#[allow(clippy::needless_range_loop)]
/// The job's number of key groups: the restored checkpoint's (a restore keeps it), else
/// `'pipeline.max-parallelism'`, else [`super::state::default_max_parallelism`].
///
/// # Errors
/// `Invalid` when an operator's parallelism exceeds it.
fn max_parallelism(graph: &StreamGraph, restored: Option<usize>) -> Result<usize> {
    let widest = graph.nodes.iter().map(|n| n.parallelism).max().unwrap_or(1);
    let max = restored
        .or(graph.settings.max_parallelism)
        .unwrap_or_else(|| super::state::default_max_parallelism(widest));
    if widest > max {
        return Err(Error::invalid(format!(
            "parallelism {widest} exceeds the job's maximum parallelism {max} \
             ('pipeline.max-parallelism'{})",
            if restored.is_some() {
                ", kept from the checkpoint it restores"
            } else {
                ""
            }
        )));
    }
    Ok(max)
}

pub(super) fn launch_attempt(mut graph: StreamGraph) -> Result<RunningJob> {
    let capacity = graph.settings.channel_capacity.max(1);
    let n = graph.nodes.len();
    // outgoing[node][instance] = emitter edges; incoming[node][instance] = (input index, rx)
    let mut outgoing: Vec<Vec<Vec<OutEdge>>> = graph
        .nodes
        .iter()
        .map(|node| (0..node.parallelism).map(|_| Vec::new()).collect())
        .collect();
    let mut incoming: Vec<Vec<Vec<InChannel>>> = graph
        .nodes
        .iter()
        .map(|node| (0..node.parallelism).map(|_| Vec::new()).collect())
        .collect();
    for (consumer, node) in graph.nodes.iter().enumerate() {
        for (input, edge) in node.inputs.iter().enumerate() {
            let producer = &graph.nodes[edge.from];
            let (pp, cp) = (producer.parallelism, node.parallelism);
            match &edge.partitioning {
                Partitioning::Forward => {
                    if pp != cp {
                        return Err(Error::internal(format!(
                            "forward edge {} -> {} between parallelism {pp} and {cp}",
                            producer.name, node.name
                        )));
                    }
                    for i in 0..pp {
                        let (tx, rx) = mpsc::channel(capacity);
                        outgoing[edge.from][i].push((Partitioning::Forward, None, vec![tx]));
                        incoming[consumer][i].push((input, rx));
                    }
                }
                Partitioning::Single => {
                    for out in outgoing[edge.from].iter_mut().take(pp) {
                        let (tx, rx) = mpsc::channel(capacity);
                        out.push((Partitioning::Single, None, vec![tx]));
                        incoming[consumer][0].push((input, rx));
                    }
                }
                Partitioning::Hash(cols) => {
                    let types: Vec<_> = cols
                        .iter()
                        .map(|c| producer.schema.field(*c).data_type().clone())
                        .collect();
                    for out in outgoing[edge.from].iter_mut().take(pp) {
                        let mut senders = Vec::with_capacity(cp);
                        for inputs in incoming[consumer].iter_mut().take(cp) {
                            let (tx, rx) = mpsc::channel(capacity);
                            senders.push(tx);
                            inputs.push((input, rx));
                        }
                        let encoder = if cp > 1 {
                            Some(KeyEncoder::new(&types)?)
                        } else {
                            None
                        };
                        out.push((edge.partitioning.clone(), encoder, senders));
                    }
                }
            }
        }
    }

    let reuse = graph.reuse.take();
    let counters: Vec<Arc<NodeCounters>> = match &reuse {
        Some(r) if r.counters.len() == n => r.counters.clone(),
        _ => (0..n).map(|_| Arc::new(NodeCounters::default())).collect(),
    };
    let uids = super::checkpoint::node_uids(&graph);
    let mut tasks = JoinSet::new();
    let checkpointing = graph.checkpointing.take();
    let mut restored = checkpointing
        .as_ref()
        .and_then(|c| c.restored.as_ref())
        .map(|r| r.tasks.clone())
        .unwrap_or_default();
    let max_parallelism = max_parallelism(
        &graph,
        checkpointing
            .as_ref()
            .and_then(|c| c.restored.as_ref())
            .map(|r| r.max_parallelism),
    )?;
    let mut stats = None;
    let mut savepoints = None;
    let sink_tasks: usize = graph
        .roots()
        .iter()
        .map(|&r| graph.nodes[r].parallelism)
        .sum();
    let hooks: Option<Arc<TaskHooks>> = match checkpointing.and_then(|c| {
        let from = c.restored.as_ref().map(|r| r.checkpoint);
        c.checkpoints
            .map(|(config, store)| (config, store, from, c.next_id))
    }) {
        None => None,
        Some((config, store, restored_from, next_id)) => {
            for node in &graph.nodes {
                if let NodeKind::Source(s) = &node.kind
                    && !s.factory.checkpointable()
                {
                    return Err(Error::not_supported(format!(
                        "checkpoints of a job that reads {} are not supported yet; unset \
                         'execution.checkpointing.interval' for this job",
                        s.factory.describe()
                    )));
                }
            }
            let shared = match reuse.as_ref().and_then(|r| r.stats.clone()) {
                Some(stats) => {
                    if let Ok(mut s) = stats.lock() {
                        s.restored_from = restored_from;
                    }
                    stats
                }
                None => Arc::new(std::sync::Mutex::new(CheckpointStats {
                    location: store.location().to_string(),
                    restored_from,
                    ..Default::default()
                })),
            };
            let finished = restored
                .iter()
                .filter(|(_, (_, finished))| *finished)
                .map(|(k, (snap, _))| Ok((*k, snap.encode()?)))
                .collect::<Result<_>>()?;
            let layout = JobLayout {
                nodes: graph
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (uids[i].clone(), n.name.clone(), n.parallelism))
                    .collect(),
                max_parallelism,
                sources: graph
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| matches!(n.kind, NodeKind::Source(_)))
                    .map(|(i, _)| i)
                    .collect(),
            };
            let (hooks, requests, run) = coordinator::start(
                config,
                store,
                layout,
                next_id,
                finished,
                Arc::clone(&shared),
            );
            tasks.spawn(run);
            stats = Some(shared);
            savepoints = Some(requests);
            Some(hooks)
        }
    };
    for (id, node) in graph.nodes.iter().enumerate().rev() {
        for instance in (0..node.parallelism).rev() {
            let emitter = Emitter {
                edges: std::mem::take(&mut outgoing[id][instance]),
                max_parallelism,
            };
            let inputs = std::mem::take(&mut incoming[id][instance]);
            let ctx = OperatorContext {
                node: id,
                name: Arc::from(node.name.as_str()),
                uid: Arc::from(uids[id].as_str()),
                checkpoints: hooks.clone(),
                late: match &graph.late_rows {
                    Some((route, exempt)) if !exempt.contains(&id) => Some(route.clone()),
                    _ => None,
                },
                instance,
                parallelism: node.parallelism,
                counters: Arc::clone(&counters[id]),
                settings: Arc::clone(&graph.settings),
            };
            match &node.kind {
                NodeKind::Source(source) => {
                    let chain = source
                        .chain
                        .iter()
                        .map(|f| f(&ctx))
                        .collect::<Result<Vec<_>>>()?;
                    let schema = Arc::clone(&source.scan_schema);
                    tasks.spawn(super::source::run_source(
                        Arc::clone(source),
                        chain,
                        schema,
                        emitter,
                        ctx,
                        restored.remove(&(id, instance)),
                    ));
                }
                NodeKind::Operator(factory) => {
                    let op = factory(&ctx)?;
                    tasks.spawn(run_operator(
                        op,
                        inputs,
                        emitter,
                        ctx,
                        restored.remove(&(id, instance)),
                    ));
                }
            }
        }
    }

    let (status_tx, status_rx) = watch::channel(JobStatus::Running);
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let supervisor = tokio::spawn(async move {
        let mut cancel_rx = cancel_rx;
        let final_status = loop {
            tokio::select! {
                _ = &mut cancel_rx => {
                    tasks.abort_all();
                    break JobStatus::Canceled;
                }
                next = tasks.join_next() => match next {
                    None => break JobStatus::Finished,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => {
                        // A cancelled send means a consumer stopped; the error that stopped it
                        // (if any) is the one to report, so keep looking.
                        if e.code == crate::error::ErrorCode::Cancelled {
                            continue;
                        }
                        tasks.abort_all();
                        break JobStatus::Failed(e);
                    }
                    Some(Err(e)) if e.is_cancelled() => {}
                    Some(Err(e)) => {
                        tasks.abort_all();
                        break JobStatus::Failed(Error::internal(format!(
                            "operator task panicked: {e}"
                        )));
                    }
                }
            }
        };
        let _ = status_tx.send(final_status);
    });
    Ok(RunningJob {
        status: status_rx,
        counters,
        names: graph.nodes.iter().map(|n| n.name.clone()).collect(),
        sinks: graph.roots(),
        tasks: Some(supervisor),
        cancel: std::sync::Mutex::new(Some(cancel_tx)),
        checkpoints: stats,
        control: Arc::new(std::sync::Mutex::new(hooks.map(|h| JobControl {
            hooks: h,
            requests: savepoints,
            sink_tasks,
        }))),
        restarts: Default::default(),
    })
}

struct InputState {
    input: usize,
    watermark: i64,
    idle: bool,
    ended: bool,
    /// The barrier of the checkpoint being aligned arrived on this channel.
    barrier: bool,
}

/// What woke an operator task.
enum Wake {
    Message(Option<(usize, Message)>),
    Tick,
    Completed(u64),
}

/// The runtime's own part of a task's snapshot: the merged watermark it acted on and the one it
/// sent downstream (table `_runtime`).
pub(crate) const RUNTIME_TABLE: &str = "_runtime";

pub(crate) fn put_runtime(snapshot: &mut StateSnapshot, current: i64, sent: i64) -> Result<()> {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(vec![
        Field::new("watermark", DataType::Int64, false),
        Field::new("sent_watermark", DataType::Int64, false),
    ]));
    let batch = datafusion::arrow::array::RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![current])),
            Arc::new(Int64Array::from(vec![sent])),
        ],
    )?;
    snapshot.put(RUNTIME_TABLE, batch);
    Ok(())
}

pub(crate) fn get_runtime(snapshot: &StateSnapshot) -> Result<(i64, i64)> {
    use datafusion::arrow::array::Int64Array;
    let Some(t) = snapshot.get(RUNTIME_TABLE) else {
        return Ok((i64::MIN, i64::MIN));
    };
    let col = |i: usize| {
        t.columns()
            .get(i)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .filter(|c| c.len() == 1)
            .map(|c| c.value(0))
            .ok_or_else(|| Error::external("corrupt checkpoint state: bad `_runtime` table"))
    };
    Ok((col(0)?, col(1)?))
}

/// Sends a task's state for checkpoint `id` to the coordinator.
pub(crate) fn ack(
    hooks: &TaskHooks,
    ctx: &OperatorContext,
    id: u64,
    snapshot: &StateSnapshot,
) -> Result<()> {
    hooks
        .acks
        .send(Ack {
            checkpoint: id,
            node: ctx.node,
            instance: ctx.instance,
            state: snapshot.encode()?,
        })
        .map_err(|_| Error::cancelled().context("the checkpoint coordinator stopped"))
}

/// Waits for the next completed checkpoint; never returns without hooks.
async fn next_completed(rx: &mut Option<watch::Receiver<u64>>) -> u64 {
    match rx {
        Some(rx) => match rx.changed().await {
            Ok(()) => *rx.borrow_and_update(),
            Err(_) => futures::future::pending().await,
        },
        None => futures::future::pending().await,
    }
}

async fn next_tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => futures::future::pending().await,
    }
}

async fn run_operator(
    mut op: Box<dyn Operator>,
    inputs: Vec<(usize, mpsc::Receiver<Message>)>,
    emitter: Emitter,
    ctx: OperatorContext,
    restored: Option<(Arc<StateSnapshot>, bool)>,
) -> Result<()> {
    let hooks = ctx.checkpoints.clone();
    let mut current = i64::MIN;
    let mut sent_watermark = i64::MIN;
    if let Some((snapshot, finished)) = &restored {
        op.restore(snapshot)
            .map_err(|e| e.context(format!("restoring {}", ctx.uid)))?;
        (current, sent_watermark) = get_runtime(snapshot)?;
        if *finished {
            return run_finished(op, inputs, emitter, ctx, snapshot).await;
        }
    }
    let mut states: Vec<InputState> = inputs
        .iter()
        .map(|(input, _)| InputState {
            input: *input,
            watermark: i64::MIN,
            idle: false,
            ended: false,
            barrier: false,
        })
        .collect();
    let mut receivers: Vec<Option<mpsc::Receiver<Message>>> =
        inputs.into_iter().map(|(_, rx)| Some(rx)).collect();
    let mut rng = ctx
        .settings
        .perturbation_seed
        .map(|seed| StdRng::seed_from_u64(seed ^ mix(ctx.node as u64, ctx.instance as u64)));
    let mut rotation = 0usize;
    let assigns = op.assigns_watermarks();
    let mut sent_idle = false;
    let mut ticker = op.tick_interval().map(|d| {
        let mut t = tokio::time::interval(d.max(Duration::from_millis(1)));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut completed = hooks.as_ref().map(|h| h.completed.clone());
    // The checkpoint whose barriers are being aligned.
    let mut aligning: Option<u64> = None;
    let exactly_once = hooks
        .as_ref()
        .is_some_and(|h| h.mode == CheckpointMode::ExactlyOnce);
    let all_ended = |states: &[InputState]| states.iter().all(|s| s.ended);
    if states.is_empty() {
        return Err(Error::internal("an operator without inputs"));
    }
    loop {
        // Which channel is polled first: round robin, or (perturbed) a seeded random order.
        // While aligning (exactly once), channels that delivered the barrier wait.
        let mut order: Vec<usize> = (0..receivers.len())
            .map(|k| (k + rotation) % receivers.len())
            .filter(|&k| !(exactly_once && states[k].barrier))
            .collect();
        rotation = rotation.wrapping_add(1);
        if let Some(rng) = rng.as_mut() {
            super::source::shuffle(&mut order, rng);
            if rng.random_bool(0.25) {
                tokio::task::yield_now().await;
            }
        }
        let wake = tokio::select! {
            m = receive(&mut receivers, &order) => Wake::Message(m),
            () = next_tick(&mut ticker) => Wake::Tick,
            id = next_completed(&mut completed) => Wake::Completed(id),
        };
        let (channel, message) = match wake {
            Wake::Tick => {
                let mut out = Output::default();
                op.on_tick(super::state::now_ms(), &mut out).await?;
                flush(&mut out, &emitter, &ctx, assigns, &mut sent_watermark).await?;
                continue;
            }
            Wake::Completed(id) => {
                op.on_checkpoint_complete(id).await?;
                if let Some(h) = hooks.as_ref()
                    && emitter.edges.is_empty()
                {
                    h.committed((ctx.node, ctx.instance), id);
                }
                continue;
            }
            Wake::Message(None) => break,
            Wake::Message(Some(m)) => m,
        };
        let state = &mut states[channel];
        match message {
            Message::Data(changes) => {
                state.idle = false;
                sent_idle = false;
                ctx.counters
                    .rows_in
                    .fetch_add(changes.num_rows() as u64, Ordering::Relaxed);
                let mut out = Output::default();
                op.process(state.input, changes, &mut out).await?;
                flush(&mut out, &emitter, &ctx, assigns, &mut sent_watermark).await?;
                ctx.counters
                    .state_rows
                    .store(op.state_rows() as u64, Ordering::Relaxed);
                continue;
            }
            Message::Watermark(w) => {
                state.idle = false;
                state.watermark = state.watermark.max(w);
            }
            Message::Idle => state.idle = true,
            Message::End => {
                state.ended = true;
                state.watermark = WATERMARK_MAX;
            }
            Message::Barrier(id) => {
                match aligning {
                    Some(a) if id < a => continue,
                    Some(a) if id > a => {
                        // Checkpoint `a` was abandoned (a newer barrier overtook it).
                        for s in states.iter_mut() {
                            s.barrier = false;
                        }
                    }
                    _ => {}
                }
                aligning = Some(id);
                states[channel].barrier = true;
            }
        }
        if let (Some(id), Some(h)) = (aligning, hooks.as_ref())
            && states.iter().all(|s| s.barrier || s.ended)
        {
            // Aligned: every change before barrier `id` is in; snapshot and pass it on.
            let mut snapshot = StateSnapshot::taking(h.takes_delta(id));
            op.snapshot(id, &mut snapshot)?;
            put_runtime(&mut snapshot, current, sent_watermark)?;
            ack(h, &ctx, id, &snapshot)?;
            emitter.control(Message::Barrier(id)).await?;
            aligning = None;
            for s in states.iter_mut() {
                s.barrier = false;
            }
        }
        if all_ended(&states) {
            break;
        }
        let active: Vec<i64> = states
            .iter()
            .filter(|s| !s.ended && !s.idle)
            .map(|s| s.watermark)
            .collect();
        if active.is_empty() {
            if !sent_idle {
                sent_idle = true;
                emitter.control(Message::Idle).await?;
            }
            continue;
        }
        let w = active.into_iter().min().unwrap_or(i64::MIN);
        if w > current {
            current = w;
            let mut out = Output::default();
            op.on_watermark(w, &mut out).await?;
            flush(&mut out, &emitter, &ctx, assigns, &mut sent_watermark).await?;
            if !assigns && w > sent_watermark {
                sent_watermark = w;
                emitter.control(Message::Watermark(w)).await?;
            }
        }
    }
    // Every input ended (or every sender is gone).
    if current < WATERMARK_MAX {
        current = WATERMARK_MAX;
        let mut out = Output::default();
        op.on_watermark(WATERMARK_MAX, &mut out).await?;
        flush(&mut out, &emitter, &ctx, assigns, &mut sent_watermark).await?;
    }
    let mut out = Output::default();
    op.on_end(&mut out).await?;
    flush(&mut out, &emitter, &ctx, assigns, &mut sent_watermark).await?;
    if sent_watermark < WATERMARK_MAX {
        sent_watermark = WATERMARK_MAX;
        emitter.control(Message::Watermark(WATERMARK_MAX)).await?;
    }
    ctx.counters
        .state_rows
        .store(op.state_rows() as u64, Ordering::Relaxed);
    if let Some(h) = hooks.as_ref() {
        let mut snapshot = StateSnapshot::new();
        op.snapshot(FINAL, &mut snapshot)?;
        put_runtime(&mut snapshot, current, sent_watermark)?;
        ack(h, &ctx, FINAL, &snapshot)?;
        if emitter.edges.is_empty() {
            wait_final(op.as_mut(), h, completed.take()).await?;
        }
    }
    emitter.control(Message::End).await
}

/// A sink after its input ended, with checkpointing: commits on every completed checkpoint
/// until the final one (taken once every task of the job ended), then commits everything.
async fn wait_final(
    op: &mut dyn Operator,
    hooks: &TaskHooks,
    completed: Option<watch::Receiver<u64>>,
) -> Result<()> {
    let Some(mut rx) = completed else {
        return Ok(());
    };
    loop {
        let id = *rx.borrow_and_update();
        if id != 0 && hooks.is_final(id) {
            return op.on_checkpoint_complete(FINAL).await;
        }
        if id != 0 {
            op.on_checkpoint_complete(id).await?;
        }
        if rx.changed().await.is_err() {
            return Err(
                Error::cancelled().context("the job stopped before its final checkpoint completed")
            );
        }
    }
}

/// A task restored from a checkpoint taken after it had finished: it hands its state to the
/// next checkpoints, waits for its inputs to end, and ends (its output was sent before).
async fn run_finished(
    mut op: Box<dyn Operator>,
    inputs: Vec<(usize, mpsc::Receiver<Message>)>,
    emitter: Emitter,
    ctx: OperatorContext,
    snapshot: &StateSnapshot,
) -> Result<()> {
    let hooks = ctx.checkpoints.clone();
    if let Some(h) = hooks.as_ref() {
        ack(h, &ctx, FINAL, snapshot)?;
    }
    for (_, mut rx) in inputs {
        while let Some(m) = rx.recv().await {
            if matches!(m, Message::End) {
                break;
            }
        }
    }
    if let Some(h) = hooks.as_ref()
        && emitter.edges.is_empty()
    {
        wait_final(op.as_mut(), h, Some(h.completed.clone())).await?;
    }
    emitter.control(Message::Watermark(WATERMARK_MAX)).await?;
    emitter.control(Message::End).await
}

/// The next message of any open channel, polling them in `order`; `None` when all are closed.
async fn receive(
    receivers: &mut [Option<mpsc::Receiver<Message>>],
    order: &[usize],
) -> Option<(usize, Message)> {
    futures::future::poll_fn(|cx| {
        let mut open = false;
        for &k in order {
            let Some(rx) = receivers[k].as_mut() else {
                continue;
            };
            match rx.poll_recv(cx) {
                std::task::Poll::Ready(Some(m)) => return std::task::Poll::Ready(Some((k, m))),
                std::task::Poll::Ready(None) => receivers[k] = None,
                std::task::Poll::Pending => open = true,
            }
        }
        if open {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(None)
        }
    })
    .await
}

async fn flush(
    out: &mut Output,
    emitter: &Emitter,
    ctx: &OperatorContext,
    assigns: bool,
    sent_watermark: &mut i64,
) -> Result<()> {
    for changes in out.changes.drain(..) {
        ctx.counters
            .rows_out
            .fetch_add(changes.num_rows() as u64, Ordering::Relaxed);
        emitter.data(changes).await?;
    }
    if assigns
        && let Some(w) = out.watermark.take()
        && w > *sent_watermark
    {
        *sent_watermark = w;
        emitter.control(Message::Watermark(w)).await?;
    }
    Ok(())
}
