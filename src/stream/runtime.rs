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
use std::time::Duration;

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::changes::{ChangelogMode, Changes, Message, WATERMARK_MAX};
use super::operator::{
    LateRowsRoute, NodeCounters, Operator, OperatorContext, Output, StreamSettings,
};
use super::source::{SourceNode, mix};
use super::state::{KeyEncoder, key_hash};
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
}

impl StreamGraph {
    pub fn new(settings: StreamSettings) -> StreamGraph {
        StreamGraph {
            nodes: Vec::new(),
            settings: Arc::new(settings),
            late_rows: None,
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
    Finished,
    Failed(Error),
    Canceled,
}

impl JobStatus {
    /// `RUNNING`, `FINISHED`, `FAILED` or `CANCELED` (Flink's names).
    pub fn name(&self) -> &'static str {
        match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Finished => "FINISHED",
            JobStatus::Failed(_) => "FAILED",
            JobStatus::Canceled => "CANCELED",
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, JobStatus::Running)
    }
}

/// A launched graph. Dropping it aborts every task of the job.
pub struct RunningJob {
    status: watch::Receiver<JobStatus>,
    counters: Vec<Arc<NodeCounters>>,
    names: Vec<String>,
    /// The nodes nothing consumes: the job's sinks.
    sinks: Vec<usize>,
    tasks: Option<tokio::task::JoinHandle<()>>,
    cancel: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningJob {
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
    pub fn cancel(&mut self) {
        if let Some(c) = self.cancel.take() {
            let _ = c.send(());
        }
    }

    /// Waits until the job is no longer running; returns how it ended.
    pub async fn wait(&self) -> JobStatus {
        let mut rx = self.status.clone();
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
}

impl Emitter {
    /// An emitter with one forward edge into `sender` (tests of sources and operators).
    #[cfg(test)]
    pub(crate) fn to_channel(sender: Sender) -> Emitter {
        Emitter {
            edges: vec![(Partitioning::Forward, None, vec![sender])],
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
                        let target = (key_hash(row.as_ref()) % senders.len() as u64) as usize;
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
#[allow(clippy::needless_range_loop)]
pub fn launch(graph: StreamGraph) -> Result<RunningJob> {
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
                    for i in 0..pp {
                        let (tx, rx) = mpsc::channel(capacity);
                        outgoing[edge.from][i].push((Partitioning::Single, None, vec![tx]));
                        incoming[consumer][0].push((input, rx));
                    }
                }
                Partitioning::Hash(cols) => {
                    let types: Vec<_> = cols
                        .iter()
                        .map(|c| producer.schema.field(*c).data_type().clone())
                        .collect();
                    for i in 0..pp {
                        let mut senders = Vec::with_capacity(cp);
                        for j in 0..cp {
                            let (tx, rx) = mpsc::channel(capacity);
                            senders.push(tx);
                            incoming[consumer][j].push((input, rx));
                        }
                        let encoder = if cp > 1 {
                            Some(KeyEncoder::new(&types)?)
                        } else {
                            None
                        };
                        outgoing[edge.from][i].push((edge.partitioning.clone(), encoder, senders));
                    }
                }
            }
        }
    }

    let counters: Vec<Arc<NodeCounters>> =
        (0..n).map(|_| Arc::new(NodeCounters::default())).collect();
    let uids = super::checkpoint::node_uids(&graph);
    let mut tasks = JoinSet::new();
    for (id, node) in graph.nodes.iter().enumerate().rev() {
        for instance in (0..node.parallelism).rev() {
            let emitter = Emitter {
                edges: std::mem::take(&mut outgoing[id][instance]),
            };
            let inputs = std::mem::take(&mut incoming[id][instance]);
            let ctx = OperatorContext {
                node: id,
                name: Arc::from(node.name.as_str()),
                uid: Arc::from(uids[id].as_str()),
                checkpoints: None,
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
                    ));
                }
                NodeKind::Operator(factory) => {
                    let op = factory(&ctx)?;
                    tasks.spawn(run_operator(op, inputs, emitter, ctx));
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
        cancel: Some(cancel_tx),
    })
}

struct InputState {
    input: usize,
    watermark: i64,
    idle: bool,
    ended: bool,
}

async fn run_operator(
    mut op: Box<dyn Operator>,
    inputs: Vec<(usize, mpsc::Receiver<Message>)>,
    emitter: Emitter,
    ctx: OperatorContext,
) -> Result<()> {
    let mut states: Vec<InputState> = inputs
        .iter()
        .map(|(input, _)| InputState {
            input: *input,
            watermark: i64::MIN,
            idle: false,
            ended: false,
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
    let mut current = i64::MIN;
    let mut sent_watermark = i64::MIN;
    let mut sent_idle = false;
    let mut ticker = op.tick_interval().map(|d| {
        let mut t = tokio::time::interval(d.max(Duration::from_millis(1)));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let all_ended = |states: &[InputState]| states.iter().all(|s| s.ended);
    if states.is_empty() {
        return Err(Error::internal("an operator without inputs"));
    }
    loop {
        // Which channel is polled first: round robin, or (perturbed) a seeded random order.
        let mut order: Vec<usize> = (0..receivers.len())
            .map(|k| (k + rotation) % receivers.len())
            .collect();
        rotation = rotation.wrapping_add(1);
        if let Some(rng) = rng.as_mut() {
            super::source::shuffle(&mut order, rng);
            if rng.random_bool(0.25) {
                tokio::task::yield_now().await;
            }
        }
        let merged = receive(&mut receivers, &order);
        let next = match ticker.as_mut() {
            Some(t) => tokio::select! {
                m = merged => m,
                _ = t.tick() => {
                    let mut out = Output::default();
                    op.on_tick(super::state::now_ms(), &mut out).await?;
                    flush(&mut out, &emitter, &ctx, assigns, &mut sent_watermark).await?;
                    continue;
                }
            },
            None => merged.await,
        };
        let Some((channel, message)) = next else {
            break;
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
            Message::Barrier(_) => continue,
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
        let mut out = Output::default();
        op.on_watermark(WATERMARK_MAX, &mut out).await?;
        flush(&mut out, &emitter, &ctx, assigns, &mut sent_watermark).await?;
    }
    let mut out = Output::default();
    op.on_end(&mut out).await?;
    flush(&mut out, &emitter, &ctx, assigns, &mut sent_watermark).await?;
    if sent_watermark < WATERMARK_MAX {
        emitter.control(Message::Watermark(WATERMARK_MAX)).await?;
    }
    ctx.counters
        .state_rows
        .store(op.state_rows() as u64, Ordering::Relaxed);
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
