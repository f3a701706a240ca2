//! The operator contract of the streaming runtime. An operator instance only *reacts*: to a
//! batch of changes on one of its inputs, to the merged watermark advancing, to a processing-time
//! tick, and to the end of its (bounded) inputs. The runtime ([`super::runtime`]) owns the
//! protocol around it: channels, watermark merging, idleness, exchanges and backpressure.
//!
//! # Writing an operator
//!
//! 1. Implement [`Operator`]. Put any per-key state in [`super::state::KeyedState`] tables whose
//!    ids start with [`OperatorContext::state_id`] (stable across runs of the same plan).
//! 2. Emit output with [`Output::emit`]. Emitted changes must match the node's output schema,
//!    and must respect the node's [`super::changes::ChangelogMode`] (an insert-only node never
//!    emits retractions).
//! 3. Event time: rows whose time attribute is `<=` the current watermark are late. Operators
//!    that drop late rows report them with [`OperatorContext::late_rows`] (counted, and routed
//!    to the late-rows table when one is set).
//! 4. Watermarks: after `on_watermark(w)` returns, the runtime forwards `w` downstream, so rows
//!    emitted during `on_watermark` reach the next operator before the watermark that released
//!    them. Operators that *assign* watermarks (the table's `WATERMARK FOR`) set
//!    [`Output::watermark`] instead and return `true` from [`Operator::assigns_watermarks`].
//! 5. `on_end` runs once after every input ended (bounded streams), after a final
//!    `on_watermark(WATERMARK_MAX)`; flush whatever is left.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::LineDelimitedWriter;

use super::changes::Changes;
use super::checkpoint::TaskHooks;
use super::checkpoint::snapshot::StateSnapshot;
use crate::error::{Error, Result};

/// What an operator produced during one call.
#[derive(Default)]
pub struct Output {
    pub(crate) changes: Vec<Changes>,
    /// For watermark assigners only: the watermark to send downstream after this call.
    pub watermark: Option<i64>,
}

impl Output {
    pub fn emit(&mut self, changes: Changes) {
        if !changes.is_empty() {
            self.changes.push(changes);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.watermark.is_none()
    }
}

/// One operator instance.
#[async_trait]
pub trait Operator: Send {
    /// A batch of changes arrived on input `input` (0 for single-input operators; 0 = left and
    /// 1 = right for joins).
    async fn process(&mut self, input: usize, changes: Changes, out: &mut Output) -> Result<()>;

    /// The merged watermark of the inputs advanced to `watermark`.
    async fn on_watermark(&mut self, _watermark: i64, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    /// Processing-time tick, every [`Operator::tick_interval`] (processing-time windows, TTL).
    async fn on_tick(&mut self, _now_ms: i64, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    /// Every input ended; runs after `on_watermark(WATERMARK_MAX)`.
    async fn on_end(&mut self, _out: &mut Output) -> Result<()> {
        Ok(())
    }

    /// How often [`Operator::on_tick`] should run, if at all.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// True for watermark assigners: the runtime forwards the watermarks they set in
    /// [`Output::watermark`] instead of the merged input watermark.
    fn assigns_watermarks(&self) -> bool {
        false
    }

    /// Writes the instance's whole state into `snapshot` (on barrier `checkpoint`, after every
    /// change before the barrier was processed; `checkpoint` is [`super::checkpoint::FINAL`]
    /// for the state at the end of a bounded input). Stateful operators must implement it, together
    /// with [`Operator::restore`]: one table per [`super::state::KeyedState`] (named by its
    /// state id, see [`OperatorContext::state_id`]), plus any operator-level values (current
    /// watermark, flags). The default is right only for stateless operators.
    ///
    /// # Errors
    /// Encoding errors; `NotSupported` for state that cannot be checkpointed yet.
    fn snapshot(&mut self, _checkpoint: u64, _snapshot: &mut StateSnapshot) -> Result<()> {
        Ok(())
    }

    /// Replaces the instance's state with a snapshot's (before any input arrives). A table the
    /// operator does not find leaves that state empty.
    ///
    /// # Errors
    /// `Invalid` for incompatible state (other key or value types); `External` for corrupt state.
    fn restore(&mut self, _snapshot: &StateSnapshot) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `id` is complete (its manifest is written): everything this instance saw before
    /// barrier `id` is durable. Sinks make the output covered by it visible here (two-phase
    /// commit); `id` may skip numbers (failed checkpoints), and covers every earlier one.
    ///
    /// # Errors
    /// I/O errors (the job fails and restarts from the checkpoint, which commits again).
    async fn on_checkpoint_complete(&mut self, _id: u64) -> Result<()> {
        Ok(())
    }

    /// Rows currently held in state (for job metrics).
    fn state_rows(&self) -> usize {
        0
    }
}

/// Counters of one plan node, summed over its instances; shown by `SHOW JOBS` and job metrics.
#[derive(Debug, Default)]
pub struct NodeCounters {
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
    /// Rows dropped because they arrived after the watermark closed their window / interval.
    pub late_rows_dropped: AtomicU64,
    pub state_rows: AtomicU64,
}

impl NodeCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Settings from the session that operators read (`table.exec.*`).
#[derive(Debug, Clone, Default)]
pub struct StreamSettings {
    /// `'table.exec.state.ttl'`: unwindowed state idle for longer is dropped.
    pub state_ttl: Option<Duration>,
    /// `'table.exec.source.idle-timeout'`: a source with no data for this long stops holding
    /// watermarks back.
    pub idle_timeout: Option<Duration>,
    /// Capacity (in messages) of each channel between two operator instances.
    pub channel_capacity: usize,
    /// `'parallelism.default'` (unset: the machine's cores).
    pub parallelism: usize,
    /// `'weir.stream.split-size'`: how file scans are cut into splits.
    pub split_layout: super::source::SplitLayout,
    /// `'weir.testing.perturbation-seed'` (for tests): vary batch sizes, the order in which
    /// splits and channels are polled, and yields between operators, from this seed. Final
    /// results must not change.
    pub perturbation_seed: Option<u64>,
    /// `'pipeline.max-parallelism'`: the number of key groups (unset: see
    /// [`super::state::default_max_parallelism`]; a restore keeps the checkpoint's).
    pub max_parallelism: Option<usize>,
    /// `'state.backend.type' = 'disk'`: the job's on-disk state tier and memory budget
    /// (`None`: state on the heap).
    pub disk: Option<Arc<super::spill::DiskBackend>>,
}

/// Where late rows go when `'weir.stream.late-rows-table'` is set: batches of the late-rows
/// table's schema (`operator STRING, watermark TIMESTAMP(3), row STRING`), read by the job's
/// late-rows source node and written by its sink.
#[derive(Clone)]
pub struct LateRowsRoute {
    pub sender: tokio::sync::mpsc::UnboundedSender<RecordBatch>,
    pub schema: SchemaRef,
}

/// What an operator instance knows about where it runs.
#[derive(Clone)]
pub struct OperatorContext {
    /// The plan node's id (stable for a given plan).
    pub node: usize,
    /// The plan node's name as EXPLAIN shows it (e.g. `WindowAggregate`).
    pub name: Arc<str>,
    pub instance: usize,
    pub parallelism: usize,
    pub counters: Arc<NodeCounters>,
    pub settings: Arc<StreamSettings>,
    /// Where late rows are routed, if anywhere.
    pub late: Option<LateRowsRoute>,
    /// The node's stable id (see [`super::checkpoint::node_uids`]): state ids start with it.
    pub uid: Arc<str>,
    /// The job's checkpoint hooks, when checkpointing is on.
    pub checkpoints: Option<Arc<TaskHooks>>,
}

impl OperatorContext {
    /// The id of this operator's state table `name`: `<uid>.<name>`, stable across runs and
    /// across edits of the query that keep this operator.
    pub fn state_id(&self, name: &str) -> String {
        format!("{}.{name}", self.uid)
    }

    /// Rows `rows` of `data` arrived late (behind `watermark`) and are dropped: counts them and,
    /// with a late-rows table, sends them there with this operator's name and the watermark.
    ///
    /// # Errors
    /// `Internal` when the rows cannot be encoded.
    pub fn late_rows(&self, data: &RecordBatch, rows: &[usize], watermark: i64) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.counters
            .late_rows_dropped
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        let Some(route) = &self.late else {
            return Ok(());
        };
        let indices = UInt32Array::from(rows.iter().map(|r| *r as u32).collect::<Vec<u32>>());
        let late = take_record_batch(data, &indices)?;
        let mut writer = LineDelimitedWriter::new(Vec::new());
        writer.write(&late)?;
        writer.finish()?;
        let text = String::from_utf8(writer.into_inner())
            .map_err(|e| Error::internal(format!("late row JSON: {e}")))?;
        let json: Vec<&str> = text.lines().collect();
        let operator = format!("{}#{}", self.name, self.node);
        let watermark_col = cast(
            &(Arc::new(TimestampMillisecondArray::from(vec![watermark; json.len()])) as ArrayRef),
            route.schema.field(1).data_type(),
        )?;
        let batch = RecordBatch::try_new(
            Arc::clone(&route.schema),
            vec![
                Arc::new(StringArray::from(vec![operator.as_str(); json.len()])),
                watermark_col,
                Arc::new(StringArray::from(json)),
            ],
        )?;
        // The receiver is gone only when the job is ending.
        let _ = route.sender.send(batch);
        Ok(())
    }

    /// For tests: a context for a single instance of node 0.
    pub fn for_tests() -> OperatorContext {
        OperatorContext {
            node: 0,
            name: Arc::from("Test"),
            uid: Arc::from("Test-0"),
            checkpoints: None,
            late: None,
            instance: 0,
            parallelism: 1,
            counters: Arc::new(NodeCounters::default()),
            settings: Arc::new(StreamSettings {
                channel_capacity: 4,
                parallelism: 1,
                split_layout: super::source::SplitLayout::File,
                ..Default::default()
            }),
        }
    }
}
