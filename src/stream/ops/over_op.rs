//! The partitioned-window operator behind `OVER` windows, TopN and deduplication in streaming
//! mode (lowered in [`super::over`]). It sits right after the exchange that hashes rows on the
//! `PARTITION BY` keys. State per partition key: the partition's input rows (with multiplicity,
//! in arrival order). Window-function values are computed by DataFusion's own window
//! expressions over the partition's rows sorted by the `ORDER BY` keys (ties by arrival), so the
//! values and types are those of the batch engine.
//!
//! Three modes ([`Mode`]):
//! - `Recompute` (retract output): every batch updates the touched partitions, recomputes their
//!   outputs and emits the difference from what was emitted before (`-U`/`-D` old, `+U`/`+I`
//!   new). TopN (`Rank`) applies its projections and `rn <= N` filter before diffing, and with
//!   insert-only input forgets rows that fell out of the top N (they can never come back).
//! - `Rowtime` (Flink's `OverAggregate`, append-only): rows are buffered until the watermark
//!   passes their time, then emitted once with values over the rows released so far. Late rows
//!   are dropped and counted.
//! - `Window` (Flink's `WindowRank` / `WindowDeduplicate`, append-only): rows are buffered per
//!   window partition and the final top N is emitted when the watermark passes `window_end`.
//!
//! Checkpoints (see [`super::codec`]): `<uid>.partitions` holds each partition's rows with their
//! arrival sequence, the rows emitted so far (recompute mode, so they can be retracted after a
//! restore), the rows pending the watermark and the window end; `<uid>.operator` holds the next
//! arrival sequence and the watermark.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::{SortColumn, cast, lexsort_to_indices, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::window::WindowExpr;
use datafusion::physical_expr_common::sort_expr::PhysicalSortExpr;

use super::codec::{self, Dec, Enc, check_rows, schema_types};
use crate::error::{Error, Result};
use crate::functions::window::millis;
use crate::stream::changes::{Changes, RowKind};
use crate::stream::checkpoint::StateSnapshot;
use crate::stream::operator::{Operator, OperatorContext, Output};
use crate::stream::ops::calc::Calc;
use crate::stream::spill::StateCodec;
use crate::stream::state::KeyedState;

/// How the operator emits (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Recompute,
    /// `time`: the rowtime `ORDER BY` column; `keep_last`: rows of history the frames need
    /// (`None`: all of it).
    Rowtime {
        time: usize,
        keep_last: Option<usize>,
    },
    /// `end`: the `window_end` column of the input.
    Window {
        end: usize,
    },
}

/// Everything the operator instances share (built once at lowering).
pub struct WindowSpec {
    pub exprs: Vec<Arc<dyn WindowExpr>>,
    /// `PARTITION BY` expressions over the input.
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub order_by: Vec<PhysicalSortExpr>,
    pub input_schema: SchemaRef,
    /// Input columns then one column per window expression (`Window.schema`).
    pub window_schema: SchemaRef,
    /// Stages applied to the window output before it is emitted (TopN: projections, filter).
    pub post: Vec<Calc>,
    /// The emitted schema (`window_schema` when `post` is empty).
    pub out_schema: SchemaRef,
    /// TopN over insert-only input: `(rank column in window_schema, N)`; rows ranked after N
    /// are forgotten.
    pub prune: Option<(usize, u64)>,
    pub mode: Mode,
}

#[derive(Default)]
struct Partition {
    /// Input rows (row format of the input schema) with their arrival sequence.
    rows: Vec<(OwnedRow, u64)>,
    /// Recompute mode: the output rows emitted so far (row format of the output schema).
    emitted: Vec<OwnedRow>,
    /// Rowtime mode: rows not yet released by the watermark, with their times.
    pending: Vec<(OwnedRow, u64, i64)>,
    /// Window mode: the partition's window end (ms).
    window_end: i64,
}

pub struct PartitionedWindow {
    ctx: OperatorContext,
    spec: Arc<WindowSpec>,
    input_rows: RowConverter,
    output_rows: RowConverter,
    key_rows: RowConverter,
    /// The `PARTITION BY` types (of `key_rows`).
    key_types: Vec<DataType>,
    partitions: KeyedState<Partition>,
    seq: u64,
    watermark: i64,
}

fn converter(schema: &SchemaRef) -> Result<RowConverter> {
    Ok(RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )?)
}

impl PartitionedWindow {
    pub fn new(ctx: OperatorContext, spec: Arc<WindowSpec>) -> Result<PartitionedWindow> {
        let key_types = spec
            .partition_by
            .iter()
            .map(|e| Ok(e.data_type(&spec.input_schema)?))
            .collect::<Result<Vec<_>>>()?;
        let ttl = match spec.mode {
            Mode::Recompute => ctx.settings.state_ttl,
            _ => None,
        };
        let input_rows = converter(&spec.input_schema)?;
        let output_rows = converter(&spec.out_schema)?;
        let key_rows = RowConverter::new(
            key_types
                .iter()
                .map(|t| SortField::new(t.clone()))
                .collect(),
        )?;
        let mut partitions = KeyedState::new(ctx.state_id("partitions"), ttl);
        // Only unwindowed partitions go to disk: the window and rowtime modes visit every
        // partition on each watermark.
        if matches!(spec.mode, Mode::Recompute) {
            let codec = Arc::new(PartitionCodec {
                input: input_rows.parser(),
                output: output_rows.parser(),
            });
            partitions = partitions.spilling(ctx.settings.disk.as_ref(), codec, &key_rows)?;
        }
        Ok(PartitionedWindow {
            input_rows,
            output_rows,
            key_rows,
            key_types,
            partitions,
            ctx,
            spec,
            seq: 0,
            watermark: i64::MIN,
        })
    }

    fn keys(&self, batch: &RecordBatch) -> Result<Vec<OwnedRow>> {
        let cols = self
            .spec
            .partition_by
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<datafusion::error::Result<Vec<ArrayRef>>>()?;
        if cols.is_empty() {
            let key = crate::stream::state::KeyEncoder::empty_key()?;
            return Ok(vec![key; batch.num_rows()]);
        }
        let rows = self.key_rows.convert_columns(&cols)?;
        Ok(rows.iter().map(|r| r.owned()).collect())
    }

    /// The window output of `rows` (sorted by the `ORDER BY` keys, ties by sequence) in
    /// `window_schema`, and for each output row the index of its input row in `rows`.
    fn evaluate(&self, rows: &[(OwnedRow, u64)]) -> Result<(RecordBatch, Vec<u32>)> {
        let spec = &self.spec;
        let columns = self
            .input_rows
            .convert_rows(rows.iter().map(|(r, _)| r.row()))?;
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&spec.input_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?;
        let mut sort_columns = Vec::with_capacity(spec.order_by.len() + 1);
        for s in &spec.order_by {
            sort_columns.push(SortColumn {
                values: s.expr.evaluate(&batch)?.into_array(batch.num_rows())?,
                options: Some(s.options),
            });
        }
        sort_columns.push(SortColumn {
            values: Arc::new(UInt64Array::from_iter_values(rows.iter().map(|(_, s)| *s))),
            options: None,
        });
        let order = lexsort_to_indices(&sort_columns, None)?;
        let mut columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &order, None))
            .collect::<std::result::Result<_, _>>()?;
        let sorted = RecordBatch::try_new_with_options(
            Arc::clone(&spec.input_schema),
            columns.clone(),
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?;
        for (i, e) in spec.exprs.iter().enumerate() {
            let field = spec
                .window_schema
                .field(spec.input_schema.fields().len() + i);
            let mut values = e.evaluate(&sorted)?;
            if values.data_type() != field.data_type() {
                values = cast(&values, field.data_type())?;
            }
            columns.push(values);
        }
        let out = RecordBatch::try_new_with_options(
            Arc::clone(&spec.window_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?;
        Ok((out, order.values().to_vec()))
    }

    /// Applies the post stages (TopN projection / filter) to a window output batch.
    fn post(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut changes = Changes::inserts(batch);
        for stage in &self.spec.post {
            changes = stage.apply(changes)?;
        }
        Ok(changes.data)
    }

    /// For TopN over insert-only input: the indices (into the evaluated rows) ranked within N.
    fn within_limit(&self, out: &RecordBatch, order: &[u32]) -> Result<Option<Vec<u32>>> {
        let Some((col, n)) = self.spec.prune else {
            return Ok(None);
        };
        let ranks = cast(out.column(col), &DataType::UInt64)?;
        let ranks = ranks.as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
        let keep = (0..ranks.len())
            .filter(|&i| ranks.is_valid(i) && ranks.value(i) <= n)
            .map(|i| order[i])
            .collect();
        Ok(Some(keep))
    }

    /// Recompute mode: applies `changes`, emits the output difference of touched partitions.
    fn process_recompute(&mut self, changes: &Changes, out: &mut Output) -> Result<()> {
        let keys = self.keys(&changes.data)?;
        let rows = self.input_rows.convert_columns(changes.data.columns())?;
        let mut touched: Vec<OwnedRow> = Vec::new();
        let mut seen: HashMap<OwnedRow, ()> = HashMap::new();
        for (i, key) in keys.into_iter().enumerate() {
            let row = rows.row(i);
            let kind = changes.kind(i);
            let seq = self.seq;
            self.seq += 1;
            let p = self
                .partitions
                .get_or_insert_with(&key, Partition::default)?;
            if kind.is_addition() {
                p.rows.push((row.owned(), seq));
            } else {
                match p.rows.iter().rposition(|(r, _)| r.row() == row) {
                    Some(pos) => {
                        p.rows.remove(pos);
                    }
                    None if self.spec.prune.is_some() => {
                        // Forgotten (ranked after N): retracting it changes nothing.
                    }
                    None => {
                        return Err(Error::internal(
                            "OVER window: a retraction of a row that is not in its partition",
                        ));
                    }
                }
            }
            if seen.insert(key.clone(), ()).is_none() {
                touched.push(key);
            }
        }
        let mut retract: Vec<OwnedRow> = Vec::new();
        let mut add: Vec<OwnedRow> = Vec::new();
        for key in touched {
            self.partitions.load(&key)?;
            let Some(p) = self.partitions.peek(&key) else {
                continue;
            };
            let (new_rows, keep) = if p.rows.is_empty() {
                (Vec::new(), None)
            } else {
                let (batch, order) = self.evaluate(&p.rows)?;
                let keep = self.within_limit(&batch, &order)?;
                let result = self.post(batch)?;
                let converted = self.output_rows.convert_columns(result.columns())?;
                (
                    converted.iter().map(|r| r.owned()).collect::<Vec<_>>(),
                    keep,
                )
            };
            let Some(p) = self.partitions.get_mut(&key)? else {
                continue;
            };
            let mut counts: HashMap<OwnedRow, i64> = HashMap::new();
            for r in &p.emitted {
                *counts.entry(r.clone()).or_insert(0) -= 1;
            }
            for r in &new_rows {
                *counts.entry(r.clone()).or_insert(0) += 1;
            }
            // Deterministic order: old rows in their emitted order, new rows in theirs.
            for r in &p.emitted {
                if let Some(c) = counts.get_mut(r)
                    && *c < 0
                {
                    *c += 1;
                    retract.push(r.clone());
                }
            }
            for r in &new_rows {
                if let Some(c) = counts.get_mut(r)
                    && *c > 0
                {
                    *c -= 1;
                    add.push(r.clone());
                }
            }
            if let Some(keep) = keep {
                let mut keep = keep;
                keep.sort_unstable();
                let old = std::mem::take(&mut p.rows);
                p.rows = keep
                    .into_iter()
                    .filter_map(|i| old.get(i as usize).cloned())
                    .collect();
            }
            p.emitted = new_rows;
            if p.rows.is_empty() && p.emitted.is_empty() {
                self.partitions.remove(&key)?;
            }
        }
        self.emit_diff(retract, add, out)
    }

    fn emit_diff(
        &self,
        retract: Vec<OwnedRow>,
        add: Vec<OwnedRow>,
        out: &mut Output,
    ) -> Result<()> {
        if retract.is_empty() && add.is_empty() {
            return Ok(());
        }
        let pairs = retract.len().min(add.len());
        // -U must directly precede its +U: interleave the pairs.
        let mut rows: Vec<&OwnedRow> = Vec::with_capacity(retract.len() + add.len());
        let mut ordered_kinds = Vec::with_capacity(retract.len() + add.len());
        for i in 0..pairs {
            rows.push(&retract[i]);
            ordered_kinds.push(RowKind::UpdateBefore);
            rows.push(&add[i]);
            ordered_kinds.push(RowKind::UpdateAfter);
        }
        for r in &retract[pairs..] {
            rows.push(r);
            ordered_kinds.push(RowKind::Delete);
        }
        for r in &add[pairs..] {
            rows.push(r);
            ordered_kinds.push(RowKind::Insert);
        }
        let columns = self
            .output_rows
            .convert_rows(rows.iter().map(|r| r.row()))?;
        let data = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.out_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(ordered_kinds.len())),
        )?;
        out.emit(Changes::new(data, ordered_kinds)?);
        Ok(())
    }

    /// Rowtime / window modes: buffers insert-only rows, dropping late ones.
    fn buffer(&mut self, changes: &Changes) -> Result<()> {
        if !changes.is_insert_only() {
            return Err(Error::internal(
                "OVER window: an append-only mode got an updating input",
            ));
        }
        let time_col = match self.spec.mode {
            Mode::Rowtime { time, .. } => time,
            Mode::Window { end } => end,
            Mode::Recompute => return Err(Error::internal("buffer() in recompute mode")),
        };
        let times = millis(changes.data.column(time_col))?;
        let keys = self.keys(&changes.data)?;
        let rows = self.input_rows.convert_columns(changes.data.columns())?;
        let mut late: Vec<usize> = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            if times.is_null(i) {
                late.push(i);
                continue;
            }
            let t = times.value(i);
            let closed = match self.spec.mode {
                Mode::Window { .. } => t - 1 <= self.watermark,
                _ => t <= self.watermark,
            };
            if closed {
                late.push(i);
                continue;
            }
            let seq = self.seq;
            self.seq += 1;
            let p = self
                .partitions
                .get_or_insert_with(&key, Partition::default)?;
            match self.spec.mode {
                Mode::Window { .. } => {
                    p.window_end = t;
                    p.rows.push((rows.row(i).owned(), seq));
                }
                _ => p.pending.push((rows.row(i).owned(), seq, t)),
            }
        }
        self.ctx.late_rows(&changes.data, &late, self.watermark)?;
        // Window TopN over insert-only input: rows ranked after N can be forgotten early.
        if matches!(self.spec.mode, Mode::Window { .. }) && self.spec.prune.is_some() {
            self.prune_all()?;
        }
        Ok(())
    }

    fn prune_all(&mut self) -> Result<()> {
        let Some((_, n)) = self.spec.prune else {
            return Ok(());
        };
        let keys: Vec<OwnedRow> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.rows.len() as u64 > 2 * n + 16)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.partitions.load(&key)?;
            let Some(p) = self.partitions.peek(&key) else {
                continue;
            };
            let (batch, order) = self.evaluate(&p.rows)?;
            if let Some(mut keep) = self.within_limit(&batch, &order)? {
                keep.sort_unstable();
                if let Some(p) = self.partitions.get_mut(&key)? {
                    let old = std::mem::take(&mut p.rows);
                    p.rows = keep
                        .into_iter()
                        .filter_map(|i| old.get(i as usize).cloned())
                        .collect();
                }
            }
        }
        Ok(())
    }

    fn fire_windows(&mut self, out: &mut Output) -> Result<()> {
        let w = self.watermark;
        let mut fired = self.partitions.drain_where(|_, p| p.window_end - 1 <= w)?;
        fired.sort_by_key(|(_, p)| p.rows.first().map(|(_, s)| *s));
        for (_, p) in fired {
            if p.rows.is_empty() {
                continue;
            }
            let (batch, _) = self.evaluate(&p.rows)?;
            out.emit(Changes::inserts(self.post(batch)?));
        }
        Ok(())
    }

    fn fire_rowtime(&mut self, keep_last: Option<usize>, out: &mut Output) -> Result<()> {
        let w = self.watermark;
        let keys: Vec<OwnedRow> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.pending.iter().any(|(_, _, t)| *t <= w))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(p) = self.partitions.get_mut(&key)? else {
                continue;
            };
            let (mut released, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut p.pending)
                .into_iter()
                .partition(|(_, _, t)| *t <= w);
            released.sort_by_key(|(_, s, t)| (*t, *s));
            p.pending = pending;
            let history = p.rows.len();
            p.rows.extend(released.into_iter().map(|(r, s, _)| (r, s)));
            self.partitions.load(&key)?;
            let Some(p) = self.partitions.peek(&key) else {
                continue;
            };
            let (batch, order) = self.evaluate(&p.rows)?;
            // The released rows sort after the history (their times are above the previous
            // watermark): emit the positions holding them.
            let fresh: Vec<u32> = order
                .iter()
                .enumerate()
                .filter(|(_, src)| **src as usize >= history)
                .map(|(i, _)| i as u32)
                .collect();
            let idx = UInt32Array::from(fresh);
            let cols = batch
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let picked = RecordBatch::try_new_with_options(
                batch.schema(),
                cols,
                &RecordBatchOptions::new().with_row_count(Some(idx.len())),
            )?;
            out.emit(Changes::inserts(self.post(picked)?));
            if let Some(p) = self.partitions.get_mut(&key)?
                && let Some(n) = keep_last
                && p.rows.len() > n
            {
                // History in time order (the order the rows were released in), keep the tail.
                let drop = p.rows.len() - n;
                p.rows.drain(..drop);
            }
        }
        Ok(())
    }
}

/// Value formats of [`PartitionedWindow`]'s checkpoint tables (the partitions' adds the mode
/// and the row types).
const PARTITIONS_FORMAT: &str = "weir.partitioned-window.partitions/1 rows,emitted,pending,end";
const WINDOW_OPERATOR_FORMAT: &str = "weir.partitioned-window.operator/1 seq,watermark";

impl PartitionedWindow {
    fn partitions_format(&self) -> String {
        let mode = match self.spec.mode {
            Mode::Recompute => "recompute",
            Mode::Rowtime { .. } => "rowtime",
            Mode::Window { .. } => "window",
        };
        format!(
            "{PARTITIONS_FORMAT} mode={mode} in=[{}] out=[{}]",
            schema_types(&self.spec.input_schema),
            schema_types(&self.spec.out_schema)
        )
    }
}

/// A partition as bytes (the value encoding of the `partitions` checkpoint table and of
/// partitions on disk).
struct PartitionCodec {
    input: datafusion::arrow::row::RowParser,
    output: datafusion::arrow::row::RowParser,
}

impl StateCodec<Partition> for PartitionCodec {
    fn encode(&self, _key: &OwnedRow, p: &Partition, e: &mut Enc) -> Result<()> {
        encode_partition(p, e);
        Ok(())
    }

    fn decode(&self, d: &mut Dec) -> Result<Partition> {
        decode_partition(d, &self.input, &self.output)
    }

    fn size(&self, p: &Partition) -> usize {
        use crate::stream::spill::heap;
        heap::vec::<(OwnedRow, u64)>(p.rows.capacity())
            + p.rows.iter().map(|(r, _)| heap::row(r)).sum::<usize>()
            + heap::vec::<OwnedRow>(p.emitted.capacity())
            + p.emitted.iter().map(heap::row).sum::<usize>()
            + heap::vec::<(OwnedRow, u64, i64)>(p.pending.capacity())
            + p.pending
                .iter()
                .map(|(r, _, _)| heap::row(r))
                .sum::<usize>()
    }
}

fn encode_partition(p: &Partition, e: &mut Enc) {
    e.len(p.rows.len());
    for (row, seq) in &p.rows {
        e.row(row);
        e.u64(*seq);
    }
    e.len(p.emitted.len());
    for row in &p.emitted {
        e.row(row);
    }
    e.len(p.pending.len());
    for (row, seq, time) in &p.pending {
        e.row(row);
        e.u64(*seq);
        e.i64(*time);
    }
    e.i64(p.window_end);
}

fn decode_partition(
    d: &mut Dec,
    input: &datafusion::arrow::row::RowParser,
    output: &datafusion::arrow::row::RowParser,
) -> Result<Partition> {
    let n = d.len()?;
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        let row = d.row(input)?;
        rows.push((row, d.u64()?));
    }
    let n = d.len()?;
    let mut emitted = Vec::with_capacity(n);
    for _ in 0..n {
        emitted.push(d.row(output)?);
    }
    let n = d.len()?;
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        let row = d.row(input)?;
        let seq = d.u64()?;
        pending.push((row, seq, d.i64()?));
    }
    Ok(Partition {
        rows,
        emitted,
        pending,
        window_end: d.i64()?,
    })
}

#[async_trait]
impl Operator for PartitionedWindow {
    async fn process(&mut self, _input: usize, changes: Changes, out: &mut Output) -> Result<()> {
        match self.spec.mode {
            Mode::Recompute => self.process_recompute(&changes, out),
            _ => self.buffer(&changes),
        }
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        match self.spec.mode {
            Mode::Recompute => Ok(()),
            Mode::Window { .. } => self.fire_windows(out),
            Mode::Rowtime { keep_last, .. } => self.fire_rowtime(keep_last, out),
        }
    }

    async fn on_tick(&mut self, now_ms: i64, _out: &mut Output) -> Result<()> {
        self.partitions.expire(now_ms)?;
        Ok(())
    }

    fn tick_interval(&self) -> Option<std::time::Duration> {
        match self.spec.mode {
            Mode::Recompute => self
                .ctx
                .settings
                .state_ttl
                .map(|_| std::time::Duration::from_secs(1)),
            _ => None,
        }
    }

    fn snapshot(&mut self, _checkpoint: u64, snapshot: &mut StateSnapshot) -> Result<()> {
        let format = self.partitions_format();
        self.partitions
            .snapshot_into(snapshot, &self.key_types, &format, |_, p, e| {
                encode_partition(p, e);
                Ok(())
            })?;
        let (seq, watermark) = (self.seq, self.watermark);
        codec::put_operator(
            snapshot,
            &self.ctx.state_id(codec::OPERATOR),
            WINDOW_OPERATOR_FORMAT,
            |e| {
                e.u64(seq);
                e.i64(watermark);
            },
        )
    }

    fn restore(&mut self, snapshot: &StateSnapshot) -> Result<()> {
        let format = self.partitions_format();
        let (input, output) = (self.input_rows.parser(), self.output_rows.parser());
        codec::restore_keyed(
            &mut self.partitions,
            snapshot,
            &self.key_rows,
            &self.key_types,
            &format,
            |d| decode_partition(d, &input, &output),
        )?;
        let checked = check_rows(
            &self.input_rows,
            self.partitions.iter().flat_map(|(_, p)| {
                p.rows
                    .iter()
                    .map(|(r, _)| r)
                    .chain(p.pending.iter().map(|(r, _, _)| r))
            }),
            "an OVER window's input row",
        )
        .and_then(|_| {
            check_rows(
                &self.output_rows,
                self.partitions.iter().flat_map(|(_, p)| p.emitted.iter()),
                "an OVER window's emitted row",
            )
        });
        if let Err(e) = checked {
            self.partitions.clear();
            return Err(e);
        }
        let (seq, watermark) = codec::get_operator(
            snapshot,
            &self.ctx.state_id(codec::OPERATOR),
            WINDOW_OPERATOR_FORMAT,
            |d| Ok((d.u64()?, d.i64()?)),
            |(s1, w1), (s2, w2)| (s1.max(s2), w1.min(w2)),
        )?
        .unwrap_or((0, i64::MIN));
        self.seq = seq;
        self.watermark = watermark;
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.partitions
            .iter()
            .map(|(_, p)| p.rows.len() + p.pending.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::common::DFSchema;
    use datafusion::execution::context::ExecutionProps;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::functions_window::expr_fn::row_number;
    use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
    use datafusion::logical_expr::{
        Expr, ExprFunctionExt, WindowFrame, WindowFrameBound, WindowFrameUnits, col, lit,
    };
    use datafusion::physical_planner::create_window_expr;

    use crate::stream::changes::Materialized;
    use crate::stream::ops::codec::testing::{Event, assert_restores, checkpoint};

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("price", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    fn rows(data: &[(&str, i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(data.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(data.iter().map(|r| r.1))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    data.iter().map(|r| r.2),
                )),
            ],
        )
        .unwrap()
    }

    /// A spec for `expr OVER (PARTITION BY k ...)`; `top`: keep rows with `w <= top`.
    fn spec(expr: Expr, top: Option<u64>, prune: bool, mode: Mode) -> Arc<WindowSpec> {
        let input = input_schema();
        let df = DFSchema::try_from(input.as_ref().clone()).unwrap();
        let props = ExecutionProps::new();
        let w = create_window_expr(
            &expr.alias("w"),
            &df,
            &props,
            &PhysicalPlanningContext::default(),
        )
        .unwrap();
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(w.field().unwrap().as_ref().clone().with_name("w"));
        let window_schema = Arc::new(Schema::new(fields));
        let mut post = Vec::new();
        if let Some(n) = top {
            let wdf = DFSchema::try_from(window_schema.as_ref().clone()).unwrap();
            let pred = datafusion::physical_expr::create_physical_expr(
                &col("w").lt_eq(lit(n)),
                &wdf,
                &props,
                &PhysicalPlanningContext::default(),
            )
            .unwrap();
            post.push(Calc {
                filter: Some(pred),
                projection: None,
                schema: Arc::clone(&window_schema),
            });
        }
        Arc::new(WindowSpec {
            partition_by: w.partition_by().to_vec(),
            order_by: w.order_by().to_vec(),
            exprs: vec![w],
            input_schema: input,
            out_schema: Arc::clone(&window_schema),
            window_schema,
            post,
            prune: if prune { top.map(|n| (3, n)) } else { None },
            mode,
        })
    }

    fn ranked(desc: bool) -> Expr {
        row_number()
            .partition_by(vec![col("k")])
            .order_by(vec![
                col(if desc { "price" } else { "ts" }).sort(!desc, false),
            ])
            .build()
            .unwrap()
    }

    /// The materialized content as sorted `(k, price, w)` triples.
    fn content(m: &Materialized) -> Vec<(String, i64, String)> {
        let b = m.to_batch().unwrap();
        let mut v: Vec<_> = (0..b.num_rows())
            .map(|i| {
                (
                    b.column(0).as_string::<i32>().value(i).to_string(),
                    b.column(1)
                        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                        .value(i),
                    datafusion::arrow::util::display::array_value_to_string(b.column(3), i)
                        .unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    async fn feed(op: &mut PartitionedWindow, m: &mut Materialized, c: Changes) -> Vec<RowKind> {
        let mut out = Output::default();
        op.process(0, c, &mut out).await.unwrap();
        let mut kinds = Vec::new();
        for c in &out.changes {
            m.apply(c).unwrap();
            kinds.extend((0..c.num_rows()).map(|i| c.kind(i)));
        }
        kinds
    }

    #[tokio::test]
    async fn top_n_retraction_promotes_the_next_row() {
        let s = spec(ranked(true), Some(2), false, Mode::Recompute);
        let mut m = Materialized::new(Arc::clone(&s.out_schema)).unwrap();
        let mut op = PartitionedWindow::new(OperatorContext::for_tests(), s).unwrap();
        let batch = rows(&[("a", 10, 1), ("a", 30, 2), ("a", 20, 3), ("b", 5, 4)]);
        feed(&mut op, &mut m, Changes::inserts(batch)).await;
        assert_eq!(
            content(&m),
            vec![
                ("a".into(), 20, "2".into()),
                ("a".into(), 30, "1".into()),
                ("b".into(), 5, "1".into())
            ]
        );
        // Retracting the top row promotes 20 to rank 1 and brings 10 back in at rank 2.
        let kinds = feed(
            &mut op,
            &mut m,
            Changes::new(rows(&[("a", 30, 2)]), vec![RowKind::Delete]).unwrap(),
        )
        .await;
        assert!(kinds.contains(&RowKind::UpdateBefore), "{kinds:?}");
        assert_eq!(
            content(&m),
            vec![
                ("a".into(), 10, "2".into()),
                ("a".into(), 20, "1".into()),
                ("b".into(), 5, "1".into())
            ]
        );
        // A row outside the top N changes nothing.
        let kinds = feed(&mut op, &mut m, Changes::inserts(rows(&[("a", 1, 9)]))).await;
        assert!(kinds.is_empty());
    }

    #[tokio::test]
    async fn dedup_keep_first_and_keep_last() {
        // Keep first (ORDER BY ts ASC): later rows never replace the first one.
        let s = spec(ranked(false), Some(1), true, Mode::Recompute);
        let mut m = Materialized::new(Arc::clone(&s.out_schema)).unwrap();
        let mut op = PartitionedWindow::new(OperatorContext::for_tests(), s).unwrap();
        feed(&mut op, &mut m, Changes::inserts(rows(&[("a", 1, 1)]))).await;
        let kinds = feed(&mut op, &mut m, Changes::inserts(rows(&[("a", 2, 5)]))).await;
        assert!(kinds.is_empty());
        assert_eq!(content(&m), vec![("a".into(), 1, "1".into())]);
        assert_eq!(op.state_rows(), 1, "rows after the first are forgotten");

        // Keep last (ORDER BY ts DESC): each newer row replaces the previous one.
        let expr = row_number()
            .partition_by(vec![col("k")])
            .order_by(vec![col("ts").sort(false, false)])
            .build()
            .unwrap();
        let s = spec(expr, Some(1), true, Mode::Recompute);
        let mut m = Materialized::new(Arc::clone(&s.out_schema)).unwrap();
        let mut op = PartitionedWindow::new(OperatorContext::for_tests(), s).unwrap();
        feed(&mut op, &mut m, Changes::inserts(rows(&[("a", 1, 1)]))).await;
        let kinds = feed(&mut op, &mut m, Changes::inserts(rows(&[("a", 2, 5)]))).await;
        assert_eq!(kinds, vec![RowKind::UpdateBefore, RowKind::UpdateAfter]);
        assert_eq!(content(&m), vec![("a".into(), 2, "1".into())]);
    }

    #[tokio::test]
    async fn rowtime_over_rows_frame_emits_on_watermark_and_drops_late_rows() {
        let frame = WindowFrame::new_bounds(
            WindowFrameUnits::Rows,
            WindowFrameBound::Preceding(datafusion::common::ScalarValue::UInt64(Some(2))),
            WindowFrameBound::CurrentRow,
        );
        let expr = Expr::from(datafusion::logical_expr::expr::WindowFunction::new(
            datafusion::logical_expr::WindowFunctionDefinition::AggregateUDF(sum_udaf()),
            vec![col("price")],
        ))
        .partition_by(vec![col("k")])
        .order_by(vec![col("ts").sort(true, false)])
        .window_frame(frame)
        .build()
        .unwrap();
        let s = spec(
            expr,
            None,
            false,
            Mode::Rowtime {
                time: 2,
                keep_last: Some(3),
            },
        );
        let ctx = OperatorContext::for_tests();
        let mut m = Materialized::new(Arc::clone(&s.out_schema)).unwrap();
        let mut op = PartitionedWindow::new(ctx.clone(), s).unwrap();
        // Out of order within the watermark: sorted by time before computing.
        let kinds = feed(
            &mut op,
            &mut m,
            Changes::inserts(rows(&[("a", 3, 30), ("a", 1, 10), ("a", 2, 20)])),
        )
        .await;
        assert!(kinds.is_empty(), "nothing before the watermark");
        let mut out = Output::default();
        op.on_watermark(20, &mut out).await.unwrap();
        for c in &out.changes {
            m.apply(c).unwrap();
        }
        assert_eq!(
            content(&m),
            vec![("a".into(), 1, "1".into()), ("a".into(), 2, "3".into())]
        );
        // Late: ts 15 <= watermark 20.
        feed(
            &mut op,
            &mut m,
            Changes::inserts(rows(&[("a", 100, 15), ("a", 4, 40)])),
        )
        .await;
        assert_eq!(
            ctx.counters
                .late_rows_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        let mut out = Output::default();
        op.on_watermark(i64::MAX, &mut out).await.unwrap();
        for c in &out.changes {
            m.apply(c).unwrap();
        }
        // 3 + 2 + 1 and 4 + 3 + 2 (ROWS 2 PRECEDING).
        assert_eq!(
            content(&m),
            vec![
                ("a".into(), 1, "1".into()),
                ("a".into(), 2, "3".into()),
                ("a".into(), 3, "6".into()),
                ("a".into(), 4, "9".into())
            ]
        );
        assert_eq!(op.state_rows(), 3, "history trimmed to the frame");
    }

    fn restore_events() -> Vec<Event> {
        let del = |r: &[(&str, i64, i64)]| {
            Event::Input(
                0,
                Changes::new(rows(r), vec![RowKind::Delete; r.len()]).unwrap(),
            )
        };
        vec![
            Event::Input(
                0,
                Changes::inserts(rows(&[("a", 10, 1), ("a", 30, 2), ("b", 5, 4)])),
            ),
            Event::Input(0, Changes::inserts(rows(&[("a", 20, 3), ("b", 7, 5)]))),
            del(&[("a", 30, 2)]),
            Event::Input(0, Changes::inserts(rows(&[("a", 1, 9), ("a", 40, 12)]))),
            del(&[("b", 5, 4), ("b", 7, 5)]),
            Event::Input(0, Changes::inserts(rows(&[("b", 8, 15)]))),
        ]
    }

    #[tokio::test]
    async fn partitioned_windows_restore_from_a_checkpoint() {
        let make = |s: Arc<WindowSpec>| {
            move |ctx: &OperatorContext| -> Box<dyn Operator> {
                Box::new(PartitionedWindow::new(ctx.clone(), Arc::clone(&s)).unwrap())
            }
        };
        // TopN with retraction: the emitted rows are retracted after the restore.
        let out = assert_restores(
            make(spec(ranked(true), Some(2), false, Mode::Recompute)),
            &restore_events(),
        )
        .await;
        assert!(out.iter().flatten().any(|l| l.starts_with("-U")), "{out:?}");
        // Keep-last deduplication over insert-only input (forgotten rows, arrival sequence).
        let expr = row_number()
            .partition_by(vec![col("k")])
            .order_by(vec![col("ts").sort(false, false)])
            .build()
            .unwrap();
        let inserts: Vec<Event> = restore_events()
            .into_iter()
            .filter(|e| matches!(e, Event::Input(_, c) if c.is_insert_only()))
            .collect();
        assert_restores(make(spec(expr, Some(1), true, Mode::Recompute)), &inserts).await;

        // Rowtime OVER: rows pending the watermark, history trimmed to the frame, late rows.
        let frame = WindowFrame::new_bounds(
            WindowFrameUnits::Rows,
            WindowFrameBound::Preceding(datafusion::common::ScalarValue::UInt64(Some(2))),
            WindowFrameBound::CurrentRow,
        );
        let expr = Expr::from(datafusion::logical_expr::expr::WindowFunction::new(
            datafusion::logical_expr::WindowFunctionDefinition::AggregateUDF(sum_udaf()),
            vec![col("price")],
        ))
        .partition_by(vec![col("k")])
        .order_by(vec![col("ts").sort(true, false)])
        .window_frame(frame)
        .build()
        .unwrap();
        let mode = Mode::Rowtime {
            time: 2,
            keep_last: Some(3),
        };
        let mut events = inserts.clone();
        events.insert(2, Event::Watermark(3));
        events.insert(4, Event::Watermark(9));
        events.push(Event::End);
        let out = assert_restores(make(spec(expr, None, false, mode)), &events).await;
        assert!(!out[2].is_empty(), "{out:?}");
        // Window TopN: buffered per window, emitted when the window closes.
        let mut events = inserts;
        events.insert(1, Event::Watermark(2));
        events.insert(3, Event::Watermark(4));
        events.push(Event::Watermark(9));
        events.push(Event::End);
        let out = assert_restores(
            make(spec(ranked(true), Some(1), true, Mode::Window { end: 2 })),
            &events,
        )
        .await;
        assert_eq!(out.iter().flatten().count(), 4, "{out:?}");
    }

    #[tokio::test]
    async fn partition_state_of_another_mode_is_incompatible() {
        let mut op = PartitionedWindow::new(
            OperatorContext::for_tests(),
            spec(ranked(true), Some(2), false, Mode::Recompute),
        )
        .unwrap();
        crate::stream::ops::codec::testing::run(&mut op, &restore_events()).await;
        let snapshot = checkpoint(&mut op);
        let mut other = PartitionedWindow::new(
            OperatorContext::for_tests(),
            spec(ranked(true), Some(1), true, Mode::Window { end: 2 }),
        )
        .unwrap();
        let err = other.restore(&snapshot).unwrap_err();
        assert!(err.to_string().contains("incompatible state"), "{err}");
    }

    #[tokio::test]
    async fn window_rank_emits_once_when_the_window_closes() {
        // `ts` stands in for window_end here.
        let s = spec(ranked(true), Some(1), true, Mode::Window { end: 2 });
        let ctx = OperatorContext::for_tests();
        let mut m = Materialized::new(Arc::clone(&s.out_schema)).unwrap();
        let mut op = PartitionedWindow::new(ctx.clone(), s).unwrap();
        feed(
            &mut op,
            &mut m,
            Changes::inserts(rows(&[("a", 1, 10), ("a", 5, 10)])),
        )
        .await;
        let mut out = Output::default();
        op.on_watermark(8, &mut out).await.unwrap();
        assert!(out.changes.is_empty());
        op.on_watermark(9, &mut out).await.unwrap();
        for c in &out.changes {
            assert!(c.is_insert_only());
            m.apply(c).unwrap();
        }
        assert_eq!(content(&m), vec![("a".into(), 5, "1".into())]);
        feed(&mut op, &mut m, Changes::inserts(rows(&[("a", 9, 10)]))).await;
        assert_eq!(
            ctx.counters
                .late_rows_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
