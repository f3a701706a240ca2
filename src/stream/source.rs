//! Sources of the streaming engine: where rows enter a streaming graph, split by split.
//!
//! ```text
//! splits (files, byte ranges, generator shards; later new files of a watched directory)
//!   └─ source instance i of p reads splits i, i + p, ... side by side (a merge)
//!        └─ fused stateless chain (the table's computed columns: `Calc`)
//!             └─ per-split watermark (the table's WATERMARK FOR) ─ instance watermark = min
//!                  └─ channels to the first operator
//! ```
//!
//! A source is a [`SourceFactory`]: a fixed list of splits known when the job starts (a bounded
//! table knows all of them), plus, for continuous sources, splits found later ([`Discovery`]).
//! Split `k` is read by instance `k % p`: assignment is by index, never by "whoever asks first"
//! (DataFusion's file-scan work stealing is turned off in streaming scans).
//!
//! **Per-split event time.** Each split has its own watermark: the largest value of the table's
//! watermark expression seen in it. An instance's watermark is the minimum over its unfinished,
//! non-idle splits; a split not read yet holds it at `-∞`. So a row is late only if its own split
//! had already shown a row more than the watermark delay ahead of it: over bounded input whose
//! splits are each ordered within the delay, no row is ever late, whatever the number of splits,
//! the parallelism, or the order in which splits are read. Which split to read next is then only
//! a question of memory: a bounded source reads the split that is furthest behind in event time,
//! so no split runs ahead and piles up state downstream; a continuous source reads whichever
//! split has data, furthest behind first.
//!
//! **Idleness and alignment.** With `'table.exec.source.idle-timeout'`, a split without data for
//! that long stops holding the watermark back until it has data again; an instance whose splits
//! are all idle sends `Idle`. With `'scan.watermark.alignment.group'` and `'.max-drift'`, a split
//! whose watermark is more than the drift ahead of the group's minimum (over every instance of
//! every source in the group) pauses until the group catches up.
//!
//! **Perturbation (testing).** With `'weir.testing.perturbation-seed'`, the source reads its
//! splits in a seeded random order, cuts batches into seeded random pieces and yields between
//! them; results must not change.
//!
//! Splits of DataFusion scans: [`split_plan`] rewrites a file scan to one split per file, or per
//! byte range of at most `'weir.stream.split-size'` bytes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    Array, BooleanArray, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;

use super::changes::{Changes, Message};
use super::checkpoint::{FINAL, StateSnapshot};
use super::operator::{Operator, OperatorContext, Output};
use super::runtime::Emitter;
use crate::connectors::stream_exec::{SplitDiscovery, StreamExec};
use crate::error::{Error, Result};
use crate::functions::window::millis;

/// Batches of one split.
pub type SourceStream = BoxStream<'static, Result<RecordBatch>>;

/// Splits found after the job started (continuous sources), each with its reader.
pub type Discovery = BoxStream<'static, Result<(String, SourceStream)>>;

/// Where a source node's rows come from: a list of splits.
///
/// # Implementing a source
/// - [`SourceFactory::splits`] is the number of splits known at the start; it must not change
///   while the job runs, and split `k` must always read the same rows (instance `k % p` reads
///   it, so the assignment is deterministic).
/// - [`SourceFactory::open_split`] opens one split; within a split, rows come in the order a
///   watermark expects (e.g. a file's order).
/// - A continuous source (a watched directory) also returns a [`Discovery`] stream per instance
///   from [`SourceFactory::discover`]: each item is a new split that instance reads. Instances
///   must divide new splits among themselves without coordination (e.g. by a hash of the name).
pub trait SourceFactory: Send + Sync {
    /// Splits known when the job starts.
    fn splits(&self) -> usize;

    /// Opens split `split` (`< splits()`).
    fn open_split(&self, split: usize) -> Result<SourceStream>;

    /// New splits for instance `instance` of `parallelism`, found while the job runs, each
    /// named; splits named in `known` (restored from a checkpoint) are not found again.
    fn discover(
        &self,
        _instance: usize,
        _parallelism: usize,
        _known: HashSet<String>,
    ) -> Option<Discovery> {
        None
    }

    /// Reopens a split found while an earlier run of the job ran, by name.
    ///
    /// # Errors
    /// `Internal` for a source without discovery.
    fn reopen(&self, name: &str) -> Result<SourceStream> {
        Err(Error::internal(format!(
            "{} finds no splits while running, so it cannot reopen '{name}'",
            self.describe()
        )))
    }

    /// Opens split `split` at row `offset` (a restored job resumes there). The default reads
    /// and drops the rows before it; sources that can seek (generators) override it.
    ///
    /// # Errors
    /// As [`SourceFactory::open_split`].
    fn open_split_at(&self, split: usize, offset: u64) -> Result<SourceStream> {
        Ok(skip_rows(self.open_split(split)?, offset))
    }

    /// Whether a checkpoint can record where this source is: split `k` reads the same rows
    /// in the same order every time it is opened, so a position is a row count per split.
    /// Sources that cannot (a channel, splits found while running) say `false`, and a
    /// checkpointed job over them is refused.
    fn checkpointable(&self) -> bool {
        false
    }

    /// What the source reads, for messages.
    fn describe(&self) -> String {
        "this source".to_string()
    }
}

/// A DataFusion physical plan as a source: its partitions are the splits. A watched directory's
/// scan (a [`StreamExec`] with a [`SplitDiscovery`]) finds new files as new splits.
pub struct PhysicalPlanSource {
    pub plan: Arc<dyn ExecutionPlan>,
    pub task: Arc<TaskContext>,
}

impl SourceFactory for PhysicalPlanSource {
    fn splits(&self) -> usize {
        if self.discovery().is_some() {
            return 0;
        }
        self.plan.output_partitioning().partition_count()
    }

    fn open_split(&self, split: usize) -> Result<SourceStream> {
        let stream = self.plan.execute(split, Arc::clone(&self.task))?;
        Ok(stream.map(|b| b.map_err(Error::from)).boxed())
    }

    fn discover(
        &self,
        instance: usize,
        parallelism: usize,
        known: HashSet<String>,
    ) -> Option<Discovery> {
        let discovery = self.discovery()?;
        Some(discovery.discover(instance, parallelism, Arc::clone(&self.task), known))
    }

    fn reopen(&self, name: &str) -> Result<SourceStream> {
        let discovery = self
            .discovery()
            .ok_or_else(|| Error::internal("reopening a split of a scan without discovery"))?;
        Ok(discovery.open(name, Arc::clone(&self.task)))
    }

    fn open_split_at(&self, split: usize, offset: u64) -> Result<SourceStream> {
        if offset > 0
            && let Some(seek) = self
                .plan
                .downcast_ref::<StreamExec>()
                .and_then(|s| s.execute_at(split, offset, Arc::clone(&self.task)))
        {
            return Ok(seek?.map(|b| b.map_err(Error::from)).boxed());
        }
        Ok(skip_rows(self.open_split(split)?, offset))
    }

    fn checkpointable(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        if self.discovery().is_some() {
            "a monitored directory ('source.monitor-interval')".to_string()
        } else {
            format!("`{}`", self.plan.name())
        }
    }
}

impl PhysicalPlanSource {
    fn discovery(&self) -> Option<Arc<dyn SplitDiscovery>> {
        self.plan
            .downcast_ref::<StreamExec>()
            .and_then(StreamExec::discovery)
    }
}

/// A source of one split fed by a channel: the late rows the job's operators drop, on their way
/// to the late-rows table. It ends when every sender (every other operator instance) is gone.
pub struct ChannelSource {
    pub receiver: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<RecordBatch>>>,
}

impl SourceFactory for ChannelSource {
    fn splits(&self) -> usize {
        1
    }

    fn open_split(&self, _split: usize) -> Result<SourceStream> {
        let rx = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| Error::internal("the late-rows channel was opened twice"))?;
        Ok(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
            .map(Ok)
            .boxed())
    }

    fn describe(&self) -> String {
        "late rows into a table ('table.exec.late-rows.table')".to_string()
    }
}

/// How a streaming file scan is cut into splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SplitLayout {
    /// One split per file (the default).
    #[default]
    File,
    /// Byte ranges of at most this many bytes (formats that can start mid-file: CSV, JSON lines,
    /// Parquet by row group); other files stay whole.
    ByteRange(u64),
}

/// Rewrites the file scans in `plan` so that each partition is one split of `layout`, and turns
/// off DataFusion's work stealing between partitions (each split is read by the instance it is
/// assigned to). Plans without a file scan are returned as they are.
///
/// # Errors
/// `Internal` when the rewritten plan cannot be rebuilt.
pub fn split_plan(
    plan: Arc<dyn ExecutionPlan>,
    layout: SplitLayout,
) -> Result<Arc<dyn ExecutionPlan>> {
    let rewritten = plan.transform_up(|node| {
        let Some(exec) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(Transformed::no(node));
        };
        let mut config = config.clone();
        config.file_groups = split_files(&config, layout);
        // One file per group and no stealing: partition k reads exactly split k.
        config.preserve_order = true;
        config.output_partitioning = None;
        Ok(Transformed::yes(
            DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
        ))
    })?;
    Ok(rewritten.data)
}

/// The splits of a file scan: its files (whole, even where DataFusion had cut them into ranges)
/// in path order, each whole or cut into byte ranges.
fn split_files(config: &FileScanConfig, layout: SplitLayout) -> Vec<FileGroup> {
    let mut files: Vec<PartitionedFile> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for group in &config.file_groups {
        for file in group.iter() {
            if seen.insert(file.object_meta.location.clone()) {
                let mut whole = file.clone();
                whole.range = None;
                files.push(whole);
            }
        }
    }
    files.sort_by(|a, b| a.object_meta.location.cmp(&b.object_meta.location));
    let rangeable = !config.file_compression_type.is_compressed()
        && config.file_source.supports_repartitioning();
    let mut groups = Vec::new();
    for file in files {
        let size = file.object_meta.size;
        match layout {
            SplitLayout::ByteRange(max) if rangeable && max > 0 && size > max => {
                let mut start = 0u64;
                while start < size {
                    let end = (start + max).min(size);
                    let mut part = file.clone();
                    part.range = Some(datafusion::datasource::listing::FileRange {
                        start: start as i64,
                        end: end as i64,
                    });
                    groups.push(FileGroup::new(vec![part]));
                    start = end;
                }
            }
            _ => groups.push(FileGroup::new(vec![file])),
        }
    }
    if groups.is_empty() {
        // A scan of no files still has one (empty) partition.
        groups.push(FileGroup::new(Vec::new()));
    }
    groups
}

/// A watermark alignment group (`'scan.watermark.alignment.group'`): the current watermark of
/// every source instance in the group, shared by the instances of one job.
#[derive(Debug)]
pub struct AlignmentGroup {
    /// Per member: its watermark; `i64::MAX` when finished or idle (it holds nobody back).
    members: Mutex<Vec<i64>>,
    changed: Notify,
}

impl AlignmentGroup {
    pub fn new() -> Arc<AlignmentGroup> {
        Arc::new(AlignmentGroup {
            members: Mutex::new(Vec::new()),
            changed: Notify::new(),
        })
    }

    /// Adds a member (one source instance); returns its index.
    fn join(&self) -> usize {
        let mut m = self.members.lock().unwrap_or_else(|e| e.into_inner());
        m.push(i64::MIN);
        m.len() - 1
    }

    fn set(&self, member: usize, watermark: i64) {
        let mut m = self.members.lock().unwrap_or_else(|e| e.into_inner());
        if m[member] != watermark {
            m[member] = watermark;
            drop(m);
            self.changed.notify_waiters();
        }
    }

    fn min(&self) -> i64 {
        let m = self.members.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().copied().min().unwrap_or(i64::MAX)
    }
}

/// Watermark alignment of one source: its group and the allowed drift.
#[derive(Debug, Clone)]
pub struct Alignment {
    pub group: Arc<AlignmentGroup>,
    pub max_drift: Duration,
}

/// Everything a source node runs: its splits, the stateless operators fused after it (computed
/// columns), and the table's watermark expression over their output.
pub struct SourceNode {
    pub factory: Arc<dyn SourceFactory>,
    /// The schema of the splits' batches (before the fused operators).
    pub scan_schema: SchemaRef,
    /// Stateless operators run on each batch inside the source task, in order.
    pub chain: Vec<super::runtime::OperatorFactory>,
    /// The table's watermark expression over the chain's output.
    pub watermark: Option<Arc<dyn PhysicalExpr>>,
    pub alignment: Option<Alignment>,
    /// The table's `'scan.watermark.idle-timeout'` (else the session's).
    pub idle_timeout: Option<Duration>,
}

impl SourceNode {
    pub fn plain(factory: Arc<dyn SourceFactory>, scan_schema: SchemaRef) -> SourceNode {
        SourceNode {
            factory,
            scan_schema,
            chain: Vec::new(),
            watermark: None,
            alignment: None,
            idle_timeout: None,
        }
    }
}

/// One split being read.
struct Split {
    /// Its number among the source's splits (`None`: found while running).
    id: Option<usize>,
    /// The name of a split found while running (its file).
    name: Option<String>,
    /// Rows read from it so far (its position in a checkpoint).
    offset: u64,
    /// Its reader, once opened.
    stream: Option<SourceStream>,
    /// Opens the split on first read.
    opener: Option<Box<dyn FnOnce() -> Result<SourceStream> + Send>>,
    finished: bool,
    watermark: i64,
    idle: bool,
    last_data: Instant,
}

impl Split {
    fn live(&self) -> bool {
        !self.finished
    }
}

/// What woke the source loop.
enum Event {
    Batch(usize, RecordBatch),
    Finished(usize),
    NewSplit(String, SourceStream),
    DiscoveryEnded,
    IdleCheck,
    Aligned,
    /// A checkpoint was triggered: snapshot the position and send its barrier.
    Trigger(u64),
}

/// Runs one instance of a source node until its splits (and discovery) end. With checkpoints,
/// it starts from `restored` (each split's row offset and watermark) and answers every trigger
/// with its position and a barrier between two batches.
pub(crate) async fn run_source(
    node: Arc<SourceNode>,
    mut chain: Vec<Box<dyn Operator>>,
    schema: SchemaRef,
    emitter: Emitter,
    ctx: OperatorContext,
    restored: Option<(Arc<StateSnapshot>, bool)>,
) -> Result<()> {
    let (instance, parallelism) = (ctx.instance, ctx.parallelism.max(1));
    let now = Instant::now();
    let ((positions, named), restored_sent) = match &restored {
        Some((snapshot, _)) => (
            read_positions(snapshot, node.factory.splits())
                .map_err(|e| e.context(format!("restoring {}", ctx.uid)))?,
            super::runtime::get_runtime(snapshot)?.1,
        ),
        None => ((HashMap::new(), Vec::new()), i64::MIN),
    };
    let mut splits: Vec<Split> = (instance..node.factory.splits())
        .step_by(parallelism)
        .map(|k| {
            let factory = Arc::clone(&node.factory);
            let at = positions.get(&k).copied().unwrap_or_default();
            let skip = at.offset;
            Split {
                id: Some(k),
                name: None,
                offset: at.offset,
                stream: None,
                opener: Some(Box::new(move || factory.open_split_at(k, skip))),
                finished: at.finished,
                watermark: at.watermark,
                idle: false,
                last_data: now,
            }
        })
        .collect();
    let hooks = ctx.checkpoints.clone();
    let mut triggers = hooks.as_ref().map(|h| {
        let mut rx = h.triggers.clone();
        rx.borrow_and_update();
        rx
    });
    let mut stop = hooks.as_ref().map(|h| h.stop.subscribe());
    // Splits found by an earlier run of the job: known to discovery; unfinished ones reopen.
    let now = Instant::now();
    let mut known = HashSet::new();
    for (name, at) in named {
        known.insert(name.clone());
        let factory = Arc::clone(&node.factory);
        let (open_name, skip) = (name.clone(), at.offset);
        splits.push(Split {
            id: None,
            name: Some(name),
            offset: at.offset,
            stream: None,
            opener: Some(Box::new(move || {
                Ok(skip_rows(factory.reopen(&open_name)?, skip))
            })),
            finished: at.finished,
            watermark: at.watermark,
            idle: false,
            last_data: now,
        });
    }
    // A task that had ended when the checkpoint was taken (a drained or finished job) stays
    // ended: the operators after it are restored as ended too and would drop what it read.
    let ended = restored.as_ref().is_some_and(|(_, finished)| *finished);
    if ended {
        for split in &mut splits {
            split.finished = true;
        }
    }
    let mut discovery = if ended {
        None
    } else {
        node.factory.discover(instance, parallelism, known)
    };
    let strict = discovery.is_none();
    let idle_timeout = node.idle_timeout.or(ctx.settings.idle_timeout);
    let mut rng = ctx
        .settings
        .perturbation_seed
        .map(|seed| StdRng::seed_from_u64(seed ^ mix(ctx.node as u64, instance as u64)));
    let mut marks = Marks {
        member: node.alignment.as_ref().map(|a| a.group.join()),
        sent_watermark: restored_sent,
        sent_idle: false,
    };

    loop {
        if discovery.is_none() && splits.iter().all(|s| !s.live()) {
            break;
        }
        if stop.as_ref().is_some_and(|s| *s.borrow()) {
            // Drained: end now, as if the input ended here.
            break;
        }
        // Splits that may be read now: live and not paused by alignment.
        let group_min = node.alignment.as_ref().map(|a| a.group.min());
        let limit = match (&node.alignment, group_min) {
            (Some(a), Some(min)) => {
                min.saturating_add(a.max_drift.as_millis().min(i64::MAX as u128) as i64)
            }
            _ => i64::MAX,
        };
        let candidates: Vec<usize> = (0..splits.len())
            .filter(|&k| splits[k].live() && splits[k].watermark <= limit)
            .collect();
        // The order in which splits are polled: furthest behind first (non-idle before idle);
        // a bounded source polls only the first of them.
        let mut order = candidates.clone();
        order.sort_by_key(|&k| (splits[k].idle, splits[k].watermark, k));
        if let Some(rng) = rng.as_mut() {
            shuffle(&mut order, rng);
        }
        let poll_only = if strict {
            match order.iter().position(|&k| !splits[k].idle) {
                // The target plus every idle split (an idle split wakes up when it has data).
                Some(p) => {
                    let target = order[p];
                    let mut o = vec![target];
                    o.extend(order.iter().copied().filter(|&k| splits[k].idle));
                    o
                }
                None => order.clone(),
            }
        } else {
            order.clone()
        };
        for &k in &poll_only {
            if splits[k].stream.is_none()
                && let Some(open) = splits[k].opener.take()
            {
                splits[k].stream = Some(open()?);
            }
        }
        let idle_deadline = idle_timeout.and_then(|t| {
            splits
                .iter()
                .filter(|s| s.live() && !s.idle)
                .map(|s| s.last_data + t)
                .min()
        });
        let paused = candidates.len() < splits.iter().filter(|s| s.live()).count();
        let event = {
            let next_split = poll_splits(&mut splits, &poll_only);
            let idle_sleep = async {
                match idle_deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => futures::future::pending().await,
                }
            };
            let discovered = async {
                match discovery.as_mut() {
                    Some(d) => d.next().await,
                    None => futures::future::pending().await,
                }
            };
            let aligned = async {
                match &node.alignment {
                    // Paused splits: wait until the group's minimum moves.
                    Some(a) if paused => {
                        // Registered before the check, so a change in between is not missed.
                        let notified = a.group.changed.notified();
                        tokio::pin!(notified);
                        notified.as_mut().enable();
                        if Some(a.group.min()) == group_min {
                            notified.await;
                        }
                    }
                    _ => futures::future::pending().await,
                }
            };
            let triggered = async {
                match triggers.as_mut() {
                    Some(rx) => match rx.changed().await {
                        Ok(()) => *rx.borrow_and_update(),
                        Err(_) => futures::future::pending().await,
                    },
                    None => futures::future::pending().await,
                }
            };
            let stopped = async {
                match stop.as_mut() {
                    Some(rx) => {
                        if rx.wait_for(|s| *s).await.is_err() {
                            futures::future::pending::<()>().await;
                        }
                    }
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                id = triggered => Event::Trigger(id),
                () = stopped => Event::Aligned,
                e = next_split, if !poll_only.is_empty() => e?,
                d = discovered => match d {
                    Some(split) => {
                        let (name, stream) = split?;
                        Event::NewSplit(name, stream)
                    }
                    None => Event::DiscoveryEnded,
                },
                () = idle_sleep => Event::IdleCheck,
                () = aligned => Event::Aligned,
            }
        };
        match event {
            Event::Batch(k, batch) => {
                let split = &mut splits[k];
                split.offset += batch.num_rows() as u64;
                split.last_data = Instant::now();
                split.idle = false;
                marks.sent_idle = false;
                if batch.num_rows() == 0 {
                    continue;
                }
                // A changelog source's batches carry their row kinds in a trailing column.
                let changelog = super::changes::has_kind_column(&batch.schema());
                for piece in pieces(&batch, rng.as_mut()) {
                    let piece = if changelog {
                        Changes::from_kind_column(&piece)?
                    } else {
                        Changes::inserts(piece)
                    };
                    let piece = if piece.data.schema().fields() != schema.fields() {
                        piece.with_data(RecordBatch::try_new(
                            Arc::clone(&schema),
                            piece.data.columns().to_vec(),
                        )?)
                    } else {
                        piece
                    };
                    ctx.counters
                        .rows_out
                        .fetch_add(piece.num_rows() as u64, Ordering::Relaxed);
                    let mut changes = vec![piece];
                    for op in chain.iter_mut() {
                        let mut out = Output::default();
                        for c in changes {
                            op.process(0, c, &mut out).await?;
                        }
                        changes = out.changes;
                    }
                    for c in changes {
                        if let Some(expr) = &node.watermark {
                            let values = expr.evaluate(&c.data)?.into_array(c.num_rows())?;
                            let ms = millis(&values)?;
                            if let Some(max) = (0..ms.len())
                                .filter(|i| !ms.is_null(*i))
                                .map(|i| ms.value(i))
                                .max()
                            {
                                splits[k].watermark = splits[k].watermark.max(max);
                            }
                        }
                        emitter.data(c).await?;
                    }
                    if let Some(rng) = rng.as_mut()
                        && rng.random_bool(0.5)
                    {
                        tokio::task::yield_now().await;
                    }
                    let w = instance_watermark(&splits);
                    marks.advance(&node, w, &emitter).await?;
                }
                continue;
            }
            Event::Finished(k) => {
                splits[k].finished = true;
                splits[k].stream = None;
            }
            Event::NewSplit(name, stream) => splits.push(Split {
                id: None,
                name: Some(name),
                offset: 0,
                stream: Some(stream),
                opener: None,
                finished: false,
                watermark: i64::MIN,
                idle: false,
                last_data: Instant::now(),
            }),
            Event::DiscoveryEnded => discovery = None,
            Event::IdleCheck => {
                if let Some(t) = idle_timeout {
                    let now = Instant::now();
                    for s in splits.iter_mut().filter(|s| s.live()) {
                        if now >= s.last_data + t {
                            s.idle = true;
                        }
                    }
                }
            }
            Event::Aligned => {}
            Event::Trigger(id) => {
                if let Some(h) = hooks.as_ref() {
                    let snapshot =
                        snapshot_positions(&splits, node.factory.splits(), marks.sent_watermark)?;
                    super::runtime::ack(h, &ctx, id, &snapshot)?;
                    emitter.control(Message::Barrier(id)).await?;
                }
                continue;
            }
        }
        let w = instance_watermark(&splits);
        marks.advance(&node, w, &emitter).await?;
    }
    if let (Some(a), Some(m)) = (&node.alignment, marks.member) {
        a.group.set(m, i64::MAX);
    }
    if let Some(h) = hooks.as_ref() {
        let snapshot = snapshot_positions(&splits, node.factory.splits(), marks.sent_watermark)?;
        super::runtime::ack(h, &ctx, FINAL, &snapshot)?;
    }
    emitter.control(Message::End).await
}

/// Where a split was at a checkpoint.
#[derive(Debug, Clone, Copy)]
struct Position {
    offset: u64,
    watermark: i64,
    finished: bool,
}

impl Default for Position {
    fn default() -> Position {
        Position {
            offset: 0,
            watermark: i64::MIN,
            finished: false,
        }
    }
}

/// Restored split positions: by split number, and by name (splits found while running).
type Positions = (HashMap<usize, Position>, Vec<(String, Position)>);

/// The table of split positions in a source's snapshot.
pub(crate) const SPLITS_TABLE: &str = "splits";
/// Schema metadata of the `splits` table: how many numbered splits the source had (a restore
/// refuses positions of another split layout).
const SPLIT_COUNT: &str = "weir.source.splits";

/// The instance (of `parallelism`) that reads the split found while running with name `name`
/// (discovery assigns by name, so every instance agrees without talking to the others).
pub fn split_owner(name: &str, parallelism: usize) -> usize {
    (super::checkpoint::fnv1a(name.as_bytes()) % parallelism.max(1) as u64) as usize
}

/// Rescaling: the split positions instance `instance` of `parallelism` reads, out of every old
/// instance's `splits` table (split `k` goes to instance `k % parallelism`, a named split to
/// [`split_owner`]). `None` when it reads none of them.
///
/// # Errors
/// `External` for a corrupt table.
pub(crate) fn rescale_positions(
    tables: &[&RecordBatch],
    instance: usize,
    parallelism: usize,
) -> Result<Option<RecordBatch>> {
    let mut parts = Vec::new();
    for t in tables {
        if t.schema().fields() != positions_schema().fields() {
            return Err(Error::invalid(
                "incompatible state: the source's `splits` table has other columns",
            ));
        }
        let corrupt =
            || Error::external("corrupt checkpoint state: bad `splits` table of a source");
        let split = t
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(corrupt)?;
        let name = t
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(corrupt)?;
        let mask: BooleanArray = (0..t.num_rows())
            .map(|i| {
                Some(if split.is_valid(i) {
                    split.value(i) as usize % parallelism.max(1) == instance
                } else {
                    name.is_valid(i) && split_owner(name.value(i), parallelism) == instance
                })
            })
            .collect();
        let rows = datafusion::arrow::compute::filter_record_batch(t, &mask)?;
        if rows.num_rows() > 0 {
            parts.push(rows);
        }
    }
    let Some(first) = tables.first() else {
        return Ok(None);
    };
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(datafusion::arrow::compute::concat_batches(
        &first.schema(),
        &parts,
    )?))
}

fn positions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("split", DataType::UInt64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("offset", DataType::UInt64, false),
        Field::new("watermark", DataType::Int64, false),
        Field::new("finished", DataType::Boolean, false),
    ]))
}

/// A source instance's snapshot: one row per split it owns (by number, or by name for splits
/// found while running: rows read, watermark, finished), and the watermark it sent.
fn snapshot_positions(
    splits: &[Split],
    count: usize,
    sent_watermark: i64,
) -> Result<StateSnapshot> {
    let owned: Vec<&Split> = splits.iter().collect();
    let schema = positions_schema().as_ref().clone().with_metadata(
        [(SPLIT_COUNT.to_string(), count.to_string())]
            .into_iter()
            .collect(),
    );
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(UInt64Array::from_iter(
                owned.iter().map(|s| s.id.map(|k| k as u64)),
            )),
            Arc::new(StringArray::from_iter(
                owned.iter().map(|s| s.name.as_deref()),
            )),
            Arc::new(UInt64Array::from_iter_values(
                owned.iter().map(|s| s.offset),
            )),
            Arc::new(Int64Array::from_iter_values(
                owned.iter().map(|s| s.watermark),
            )),
            Arc::new(BooleanArray::from(
                owned.iter().map(|s| s.finished).collect::<Vec<_>>(),
            )),
        ],
    )?;
    let mut snapshot = StateSnapshot::new();
    snapshot.put(SPLITS_TABLE, batch);
    super::runtime::put_runtime(&mut snapshot, sent_watermark, sent_watermark)?;
    Ok(snapshot)
}

/// The split positions of a source's snapshot: by split number, and by name for splits found
/// while running.
fn read_positions(snapshot: &StateSnapshot, count: usize) -> Result<Positions> {
    let Some(t) = snapshot.get(SPLITS_TABLE) else {
        return Ok((HashMap::new(), Vec::new()));
    };
    if let Some(was) = t.schema().metadata().get(SPLIT_COUNT)
        && *was != count.to_string()
    {
        return Err(Error::invalid(format!(
            "incompatible state: the source's input was cut into {was} splits when the \
             checkpoint was taken and is cut into {count} now (its files changed, or it splits \
             by parallelism); restore it with the same input"
        )));
    }
    let corrupt = || Error::external("corrupt checkpoint state: bad `splits` table of a source");
    if t.schema().fields() != positions_schema().fields() {
        return Err(Error::invalid(
            "incompatible state: the source's `splits` table has other columns",
        ));
    }
    let column = |i: usize| Arc::clone(t.column(i));
    let (split, name, offset, watermark, finished) =
        (column(0), column(1), column(2), column(3), column(4));
    let split = split
        .as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(corrupt)?;
    let name = name
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(corrupt)?;
    let offset = offset
        .as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(corrupt)?;
    let watermark = watermark
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(corrupt)?;
    let finished = finished
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(corrupt)?;
    let mut by_id = HashMap::new();
    let mut by_name = Vec::new();
    for i in 0..t.num_rows() {
        let at = Position {
            offset: offset.value(i),
            watermark: watermark.value(i),
            finished: finished.value(i),
        };
        if split.is_valid(i) {
            by_id.insert(split.value(i) as usize, at);
        } else if name.is_valid(i) {
            by_name.push((name.value(i).to_string(), at));
        } else {
            return Err(corrupt());
        }
    }
    Ok((by_id, by_name))
}

/// A split's stream without its first `skip` rows (where a restored job resumes it).
fn skip_rows(stream: SourceStream, skip: u64) -> SourceStream {
    if skip == 0 {
        return stream;
    }
    stream
        .scan(skip, |left, batch| {
            let out = match batch {
                Ok(b) if *left > 0 => {
                    let n = b.num_rows() as u64;
                    if n <= *left {
                        *left -= n;
                        Some(Ok(b.slice(0, 0)))
                    } else {
                        let from = *left as usize;
                        *left = 0;
                        Some(Ok(b.slice(from, b.num_rows() - from)))
                    }
                }
                other => Some(other),
            };
            futures::future::ready(out)
        })
        .filter(|b| futures::future::ready(!matches!(b, Ok(b) if b.num_rows() == 0)))
        .boxed()
}

/// What a source instance has told downstream and its alignment group.
struct Marks {
    /// Its index in the alignment group, if any.
    member: Option<usize>,
    sent_watermark: i64,
    sent_idle: bool,
}

impl Marks {
    /// Sends the instance's watermark (the minimum over its live, non-idle splits) when it
    /// advanced, or `Idle` when every live split is idle; updates the alignment group.
    async fn advance(
        &mut self,
        node: &SourceNode,
        (current, any_live): (Option<i64>, bool),
        emitter: &Emitter,
    ) -> Result<()> {
        if let (Some(a), Some(m)) = (&node.alignment, self.member) {
            a.group.set(m, current.unwrap_or(i64::MAX));
        }
        if node.watermark.is_none() {
            return Ok(());
        }
        match current {
            Some(w) if w > self.sent_watermark => {
                self.sent_watermark = w;
                emitter.control(Message::Watermark(w)).await?;
            }
            None if any_live && !self.sent_idle => {
                self.sent_idle = true;
                emitter.control(Message::Idle).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The instance's watermark: the minimum over live, non-idle splits (`None` when there is no such
/// split), and whether any split is live.
fn instance_watermark(splits: &[Split]) -> (Option<i64>, bool) {
    let current = splits
        .iter()
        .filter(|s| s.live() && !s.idle)
        .map(|s| s.watermark)
        .min();
    (current, splits.iter().any(Split::live))
}

/// Polls the splits in `order` (each at most once per wake-up) and returns the first that has a
/// batch or ended.
fn poll_splits<'a>(splits: &'a mut [Split], order: &'a [usize]) -> BoxFuture<'a, Result<Event>> {
    futures::future::poll_fn(move |cx| {
        for &k in order {
            let Some(stream) = splits[k].stream.as_mut() else {
                continue;
            };
            match stream.poll_next_unpin(cx) {
                std::task::Poll::Ready(Some(Ok(batch))) => {
                    return std::task::Poll::Ready(Ok(Event::Batch(k, batch)));
                }
                std::task::Poll::Ready(Some(Err(e))) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Ready(None) => {
                    return std::task::Poll::Ready(Ok(Event::Finished(k)));
                }
                std::task::Poll::Pending => {}
            }
        }
        std::task::Poll::Pending
    })
    .boxed()
}

/// A batch as it is, or (perturbed) cut into random pieces.
fn pieces(batch: &RecordBatch, rng: Option<&mut StdRng>) -> Vec<RecordBatch> {
    let Some(rng) = rng else {
        return vec![batch.clone()];
    };
    let n = batch.num_rows();
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = rng.random_range(1..=(n - start).min(1 + n / 2));
        out.push(batch.slice(start, len));
        start += len;
    }
    out
}

/// Seeded Fisher-Yates shuffle.
pub(crate) fn shuffle<T>(items: &mut [T], rng: &mut StdRng) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

/// Mixes a node id and an instance into a seed offset (SplitMix64's finalizer).
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Alignment groups of one job, by name.
#[derive(Default)]
pub struct AlignmentGroups(HashMap<String, Arc<AlignmentGroup>>);

impl AlignmentGroups {
    pub fn get(&mut self, name: &str) -> Arc<AlignmentGroup> {
        Arc::clone(
            self.0
                .entry(name.to_string())
                .or_insert_with(AlignmentGroup::new),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampMillisecondArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::col;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        )]))
    }

    fn batch(ts: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![Arc::new(TimestampMillisecondArray::from(ts.to_vec()))],
        )
        .unwrap()
    }

    /// One step of a test split: wait, then yield rows with these times.
    type Step = (u64, Vec<i64>);

    /// Splits from scripts of steps; a split whose script ends with `stall` never ends. Every
    /// batch handed out is logged as (source name, largest time) in `log`.
    struct Scripted {
        name: &'static str,
        splits: Vec<(Vec<Step>, bool)>,
        log: Arc<Mutex<Vec<(&'static str, i64)>>>,
    }

    impl SourceFactory for Scripted {
        fn splits(&self) -> usize {
            self.splits.len()
        }

        fn open_split(&self, split: usize) -> Result<SourceStream> {
            let (steps, stall) = self.splits[split].clone();
            let (name, log) = (self.name, Arc::clone(&self.log));
            let items = futures::stream::iter(steps).then(move |(wait, ts)| {
                let log = Arc::clone(&log);
                async move {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    let max = ts.iter().copied().max().unwrap_or(i64::MIN);
                    log.lock().unwrap().push((name, max));
                    Ok(batch(&ts))
                }
            });
            Ok(if stall {
                items.chain(futures::stream::pending()).boxed()
            } else {
                items.boxed()
            })
        }
    }

    fn node(factory: Scripted) -> SourceNode {
        let schema = schema();
        SourceNode {
            factory: Arc::new(factory),
            scan_schema: Arc::clone(&schema),
            chain: Vec::new(),
            watermark: Some(col("ts", &schema).unwrap()),
            alignment: None,
            idle_timeout: None,
        }
    }

    fn context(idle_timeout: Option<Duration>, seed: Option<u64>) -> OperatorContext {
        let mut ctx = OperatorContext::for_tests();
        let mut settings = (*ctx.settings).clone();
        settings.idle_timeout = idle_timeout;
        settings.perturbation_seed = seed;
        ctx.settings = Arc::new(settings);
        ctx
    }

    /// Runs one source instance to its end (or for `limit`), returning what it sent:
    /// `Ok(ts)` per row, `Err(w)` per watermark (`Err(i64::MIN)` for `Idle`).
    async fn run(
        node: SourceNode,
        ctx: OperatorContext,
        limit: Duration,
    ) -> Vec<std::result::Result<i64, i64>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let task = tokio::spawn(run_source(
            Arc::new(node),
            Vec::new(),
            schema(),
            Emitter::to_channel(tx),
            ctx,
            None,
        ));
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            match m {
                Message::Data(c) => {
                    let ts = millis(c.data.column(0)).unwrap();
                    out.extend((0..ts.len()).map(|i| Ok(ts.value(i))));
                }
                Message::Watermark(w) => out.push(Err(w)),
                Message::Idle => out.push(Err(i64::MIN)),
                Message::Barrier(_) => {}
                Message::End => break,
            }
        }
        task.abort();
        out
    }

    /// No row is behind a watermark sent before it.
    fn none_late(events: &[std::result::Result<i64, i64>]) -> bool {
        let mut w = i64::MIN;
        events.iter().all(|e| match e {
            Ok(ts) => *ts > w,
            Err(x) => {
                w = w.max(*x);
                true
            }
        })
    }

    fn log() -> Arc<Mutex<Vec<(&'static str, i64)>>> {
        Arc::new(Mutex::new(Vec::new()))
    }

    #[tokio::test]
    async fn each_split_has_its_own_watermark() {
        // Two files covering the same time, each in order: a single watermark over the first
        // file would make every row of the second late.
        let a = vec![
            (0, vec![1000, 1100]),
            (0, vec![2000]),
            (0, vec![3000, 3500]),
        ];
        let b = vec![(0, vec![1050]), (0, vec![2500, 2600]), (0, vec![3100])];
        for seed in [None, Some(1), Some(2), Some(3)] {
            let factory = Scripted {
                name: "t",
                splits: vec![(a.clone(), false), (b.clone(), false)],
                log: log(),
            };
            let events = run(node(factory), context(None, seed), Duration::from_secs(5)).await;
            assert!(none_late(&events), "{seed:?}: {events:?}");
            let rows = events.iter().filter(|e| e.is_ok()).count();
            assert_eq!(rows, 9, "{events:?}");
            // The watermark moved inside the files, not only at their end.
            let marks: Vec<i64> = events.iter().filter_map(|e| e.err()).collect();
            assert!(marks.iter().any(|w| *w >= 2000 && *w < 3500), "{marks:?}");
        }
    }

    #[tokio::test]
    async fn a_split_not_read_yet_holds_the_watermark() {
        // The furthest-behind split is read first: the watermark never passes the unread split.
        let factory = Scripted {
            name: "t",
            splits: vec![
                (
                    (0..5).map(|i| (0, vec![10_000 + i * 1000])).collect(),
                    false,
                ),
                (vec![(0, vec![100]), (0, vec![200])], false),
            ],
            log: log(),
        };
        let events = run(node(factory), context(None, None), Duration::from_secs(5)).await;
        assert!(none_late(&events), "{events:?}");
    }

    #[tokio::test]
    async fn an_idle_split_stops_holding_the_watermark_back() {
        // Split 1 has one row and then nothing (it never ends); split 0 moves on.
        let splits = || {
            vec![
                (vec![(0, vec![1000]), (0, vec![5000])], true),
                (vec![(0, vec![500])], true),
            ]
        };
        let stuck = run(
            node(Scripted {
                name: "t",
                splits: splits(),
                log: log(),
            }),
            context(None, None),
            Duration::from_millis(400),
        )
        .await;
        let last = stuck.iter().filter_map(|e| e.err()).max();
        assert_eq!(last, Some(500), "without an idle timeout: {stuck:?}");

        let mut n = node(Scripted {
            name: "t",
            splits: splits(),
            log: log(),
        });
        n.idle_timeout = Some(Duration::from_millis(50));
        let moving = run(n, context(None, None), Duration::from_millis(600)).await;
        let marks: Vec<i64> = moving.iter().filter_map(|e| e.err()).collect();
        assert!(
            marks.contains(&5000),
            "the idle split was left out: {moving:?}"
        );
        // Then split 0 is idle too: the instance says so.
        assert_eq!(marks.last(), Some(&i64::MIN), "{moving:?}");
    }

    #[tokio::test]
    async fn aligned_sources_wait_for_the_slowest() {
        let steps = |wait: u64| -> Vec<Step> { (0..=20).map(|i| (wait, vec![i * 1000])).collect() };
        for aligned in [false, true] {
            let shared = log();
            let group = AlignmentGroup::new();
            let mut fast = node(Scripted {
                name: "fast",
                splits: vec![(steps(0), false)],
                log: Arc::clone(&shared),
            });
            let mut slow = node(Scripted {
                name: "slow",
                splits: vec![(steps(15), false)],
                log: Arc::clone(&shared),
            });
            if aligned {
                for n in [&mut fast, &mut slow] {
                    n.alignment = Some(Alignment {
                        group: Arc::clone(&group),
                        max_drift: Duration::from_millis(1000),
                    });
                }
            }
            let (f, s) = tokio::join!(
                run(fast, context(None, None), Duration::from_secs(10)),
                run(slow, context(None, None), Duration::from_secs(10)),
            );
            assert_eq!(f.iter().filter(|e| e.is_ok()).count(), 21);
            assert_eq!(s.iter().filter(|e| e.is_ok()).count(), 21);
            // Whenever the fast source read time t, the slow one had read at least t - 2 s
            // (its own watermark was within the 1 s drift before it read on).
            let log = shared.lock().unwrap().clone();
            // (Both start at time 0.)
            let mut slow_max = 0;
            let mut within = true;
            for (name, ts) in &log {
                if *name == "slow" {
                    slow_max = slow_max.max(*ts);
                } else if *ts > slow_max.saturating_add(2000) {
                    within = false;
                }
            }
            assert_eq!(within, aligned, "aligned={aligned}: {log:?}");
        }
    }

    #[tokio::test]
    async fn perturbation_cuts_batches_and_keeps_rows() {
        let a: Vec<Step> = (0..10)
            .map(|i| (0, (0..20).map(|k| i * 100 + k).collect()))
            .collect();
        let plain = run(
            node(Scripted {
                name: "t",
                splits: vec![(a.clone(), false)],
                log: log(),
            }),
            context(None, None),
            Duration::from_secs(5),
        )
        .await;
        let perturbed = run(
            node(Scripted {
                name: "t",
                splits: vec![(a, false)],
                log: log(),
            }),
            context(None, Some(7)),
            Duration::from_secs(5),
        )
        .await;
        let rows = |e: &[std::result::Result<i64, i64>]| -> Vec<i64> {
            e.iter().filter_map(|x| x.ok()).collect()
        };
        assert_eq!(rows(&plain), rows(&perturbed));
        // Smaller pieces: more watermarks between the same rows.
        let marks = |e: &[std::result::Result<i64, i64>]| e.iter().filter(|x| x.is_err()).count();
        assert!(marks(&perturbed) > marks(&plain), "{perturbed:?}");
    }

    #[tokio::test]
    async fn file_scans_become_one_split_per_file_or_byte_range() {
        use datafusion::prelude::{CsvReadOptions, SessionConfig, SessionContext};
        let dir = tempfile::tempdir().unwrap();
        let mut total = 0;
        for f in 0..3 {
            let rows: Vec<String> = (0..40).map(|i| format!("{},{}", f, i)).collect();
            total += rows.len();
            std::fs::write(
                dir.path().join(format!("part-{f}.csv")),
                format!("a,b\n{}\n", rows.join("\n")),
            )
            .unwrap();
        }
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        let df = ctx
            .read_csv(dir.path().to_str().unwrap(), CsvReadOptions::new())
            .await
            .unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        for (layout, at_least) in [(SplitLayout::File, 3), (SplitLayout::ByteRange(64), 6)] {
            let split = split_plan(Arc::clone(&plan), layout).unwrap();
            let n = split.output_partitioning().partition_count();
            if layout == SplitLayout::File {
                assert_eq!(n, 3);
            } else {
                assert!(n >= at_least, "{n} byte-range splits");
            }
            let source = PhysicalPlanSource {
                plan: split,
                task: ctx.task_ctx(),
            };
            let mut rows = 0;
            for k in 0..source.splits() {
                let batches: Vec<RecordBatch> = source
                    .open_split(k)
                    .unwrap()
                    .map(|b| b.unwrap())
                    .collect()
                    .await;
                rows += batches.iter().map(|b| b.num_rows()).sum::<usize>();
            }
            assert_eq!(rows, total, "{layout:?}: every row read exactly once");
        }
    }
}
