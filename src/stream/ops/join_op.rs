//! The streaming join operator (two inputs: 0 = left, 1 = right), built by
//! [`super::join::lower`]. It sits after the hash exchange of both inputs on their equi-join keys
//! and emits a retract stream (`+I` / `-D`) of joined rows.
//!
//! State per side: equi-key → multiset of that side's rows (Arrow rows over all its columns, with
//! a count and the number of rows of the other side each matches). An addition on one side is
//! joined against the other side's state; a retraction emits `-D` for each pair it formed. Outer,
//! semi and anti joins "track" a side: such a side's row is also emitted on its own (null-padded
//! for outer joins, bare for semi/anti joins) while it has no match (outer, anti) or at least one
//! (semi), and that solo row is retracted / re-emitted when its match count crosses zero.
//!
//! Cleanup by watermark ([`Cleanup`]): for interval joins (both rowtimes bounded relative to each
//! other by constants) and window joins (equal `window_end` keys), rows that can never match again
//! are dropped once the watermark passes; this never changes the result. Rows that arrive after
//! their bound closed (an interval join's row whose rowtime is at or before the watermark, when
//! the other side's state is cleaned) or after their window ended (window joins) are late:
//! dropped and counted (`late_rows_dropped`), as the window aggregates do.
//!
//! Checkpoints (see [`super::codec`]): `<uid>.left` / `<uid>.right` hold each side's buckets
//! (row, copies, matches), `<uid>.operator` the watermark. Cleanup timers are not stored: a row's
//! expiry is a function of the row, so restore rebuilds them from the rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, RecordBatch, RecordBatchOptions, UInt32Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::codec::{self, Dec, Enc, check_rows, corrupt, schema_types};
use crate::error::{Error, Result};
use crate::functions::window::millis;
use crate::stream::changes::{Changes, RowKind, WATERMARK_MAX};
use crate::stream::checkpoint::StateSnapshot;
use crate::stream::operator::{Operator, OperatorContext, Output};
use crate::stream::spill::{StateCodec, heap};
use crate::stream::state::{KeyEncoder, KeyedState};

/// Which columns a join emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Left columns then right columns (inner and outer joins).
    Pairs,
    /// Only the left row (left semi / anti joins).
    LeftOnly,
    /// Only the right row (right semi / anti joins).
    RightOnly,
}

/// When a tracked side's row is emitted on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// While it has no match: outer joins (null-padded) and anti joins.
    Unmatched,
    /// While it has at least one match: semi joins.
    Matched,
}

impl Track {
    fn visible(self, matches: i64) -> bool {
        match self {
            Track::Unmatched => matches <= 0,
            Track::Matched => matches > 0,
        }
    }
}

/// How state is cleaned up by the watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Never (regular join).
    None,
    /// `left.time - right.time` is within `[lo, hi]` (ms) for every match; `time`: the rowtime
    /// column of each side. A missing bound means that side's rows are kept.
    Interval {
        time: [usize; 2],
        lo: Option<i64>,
        hi: Option<i64>,
    },
    /// Both sides have `window_end` (column `end` of each side) among their equi keys.
    Window { end: [usize; 2] },
}

impl Cleanup {
    /// How far the output watermark is held back behind the input watermark so that the output
    /// rows' rowtime columns are never late (interval joins); 0 otherwise.
    pub fn watermark_delay(&self) -> i64 {
        match self {
            Cleanup::Interval { lo, hi, .. } => {
                let lo = lo.map_or(0, |lo| lo.saturating_neg());
                let hi = hi.unwrap_or(0);
                lo.max(hi).max(0)
            }
            _ => 0,
        }
    }
}

/// Everything a join instance needs to know (shared by its instances).
pub struct JoinSpec {
    pub shape: Shape,
    /// Per side: `Some` when that side's rows are also emitted on their own.
    pub track: [Option<Track>; 2],
    /// Per side: the schema of its data columns (a prefix of the input's columns; key columns
    /// computed by a projection may follow).
    pub sides: [SchemaRef; 2],
    /// Per side: input column indices of the equi-join keys (pairwise equal).
    pub keys: [Vec<usize>; 2],
    /// Key types (keys of both sides are cast to these).
    pub key_types: Vec<DataType>,
    /// `NULL = NULL` matches (`IS NOT DISTINCT FROM` keys).
    pub null_equal: bool,
    /// The residual condition over left columns ++ right columns (`filter_schema`).
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub filter_schema: SchemaRef,
    /// The output schema.
    pub schema: SchemaRef,
    pub cleanup: Cleanup,
    /// Hold the output watermark back by [`Cleanup::watermark_delay`] (when the output keeps
    /// rowtime attributes).
    pub hold_watermark: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct RowEntry {
    /// Copies of the row in state.
    count: i64,
    /// Rows (with multiplicity) of the other side this row matches.
    matches: i64,
}

type Bucket = HashMap<OwnedRow, RowEntry>;

struct Side {
    rows: RowConverter,
    state: KeyedState<Bucket>,
    /// Cleanup timers, one per key: the earliest time at which some row of the key can be
    /// dropped → keys. When it fires, the rows of the key's bucket whose time has come are dropped
    /// (a row's expiry is a function of the row) and the key is scheduled again at the earliest
    /// expiry of the rest. Per key, not per row: the timers stay as small as the set of keys
    /// (rows may be on disk).
    timers: BTreeMap<i64, Vec<OwnedRow>>,
    /// The time each key is scheduled at (entries in `timers` at another time are stale).
    scheduled: HashMap<OwnedRow, i64>,
}

impl Side {
    /// Schedules `key` for cleanup at `at` unless it already is at or before then.
    fn schedule(&mut self, key: &OwnedRow, at: i64) {
        if self.scheduled.get(key).is_some_and(|t| *t <= at) {
            return;
        }
        self.scheduled.insert(key.clone(), at);
        self.timers.entry(at).or_default().push(key.clone());
    }
}

/// A side's bucket as bytes: its rows in row order, each with its copies and matches (the value
/// encoding of the side's checkpoint table and of its entries on disk).
struct BucketCodec {
    parser: datafusion::arrow::row::RowParser,
}

impl StateCodec<Bucket> for BucketCodec {
    fn encode(&self, _key: &OwnedRow, bucket: &Bucket, e: &mut Enc) -> Result<()> {
        encode_bucket(bucket, e);
        Ok(())
    }

    fn decode(&self, d: &mut Dec) -> Result<Bucket> {
        let n = d.len()?;
        let mut bucket = Bucket::with_capacity(n);
        for _ in 0..n {
            let row = d.row(&self.parser)?;
            let entry = RowEntry {
                count: d.i64()?,
                matches: d.i64()?,
            };
            if entry.count <= 0 || bucket.insert(row, entry).is_some() {
                return Err(corrupt("a join row without copies or twice in its bucket"));
            }
        }
        Ok(bucket)
    }

    fn size(&self, bucket: &Bucket) -> usize {
        heap::hash_table::<OwnedRow, RowEntry>(bucket.capacity())
            + bucket.keys().map(heap::row).sum::<usize>()
    }
}

fn encode_bucket(bucket: &Bucket, e: &mut Enc) {
    let mut rows: Vec<(&OwnedRow, &RowEntry)> = bucket.iter().collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    e.len(rows.len());
    for (row, entry) in rows {
        e.row(row);
        e.i64(entry.count);
        e.i64(entry.matches);
    }
}

/// Value formats of [`JoinOperator`]'s checkpoint tables (a side's table adds its row types).
const SIDE_FORMAT: &str = "weir.join.side/1 (row,count,matches)*";
const JOIN_OPERATOR_FORMAT: &str = "weir.join.operator/1 watermark";

/// One instance of a streaming join.
pub struct JoinOperator {
    spec: Arc<JoinSpec>,
    keys: KeyEncoder,
    sides: [Side; 2],
    /// `'table.exec.state.ttl'`: idle keys are dropped on processing-time ticks.
    ttl: Option<std::time::Duration>,
    /// Rows held in state (both sides, with multiplicity; approximate after TTL expiry).
    held: usize,
    /// The current (merged) input watermark.
    watermark: i64,
    ctx: OperatorContext,
}

/// One output row: the row of the side that sent the batch (`this`) and of the other side's
/// candidates (`other`), either possibly missing (null-padded).
struct OutRow {
    this: Option<u32>,
    other: Option<u32>,
    kind: RowKind,
}

impl JoinOperator {
    pub fn new(spec: Arc<JoinSpec>, ctx: &OperatorContext) -> Result<JoinOperator> {
        let keys = KeyEncoder::new(&spec.key_types)?;
        let side = |i: usize, name: &str| -> Result<Side> {
            let rows = RowConverter::new(
                spec.sides[i]
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?;
            let codec = Arc::new(BucketCodec {
                parser: rows.parser(),
            });
            Ok(Side {
                state: KeyedState::new(ctx.state_id(name), ctx.settings.state_ttl).spilling(
                    ctx.settings.disk.as_ref(),
                    codec,
                    keys.converter(),
                )?,
                rows,
                timers: BTreeMap::new(),
                scheduled: HashMap::new(),
            })
        };
        let sides = [side(0, "left")?, side(1, "right")?];
        Ok(JoinOperator {
            keys,
            sides,
            ttl: ctx.settings.state_ttl,
            held: 0,
            watermark: i64::MIN,
            ctx: ctx.clone(),
            spec,
        })
    }

    /// When a row of side `s` can be dropped (`None`: never).
    fn expiry(&self, s: usize, data: &[ArrayRef]) -> Result<Option<Vec<i64>>> {
        let n = data.first().map_or(0, |c| c.len());
        let times = |col: usize| -> Result<Vec<Option<i64>>> {
            let column = data
                .get(col)
                .ok_or_else(|| Error::internal("join cleanup column out of range"))?;
            let ms = millis(column)?;
            Ok((0..n)
                .map(|i| (!ms.is_null(i)).then(|| ms.value(i)))
                .collect())
        };
        match &self.spec.cleanup {
            Cleanup::None => Ok(None),
            Cleanup::Interval { time, lo, hi } => {
                // left t_l matches right t_r in [t_l - hi, t_l - lo]; right t_r matches left t_l
                // in [t_r + lo, t_r + hi]. Rows without a time never match.
                let bound = if s == 0 { lo.map(|lo| -lo) } else { *hi };
                let Some(bound) = bound else { return Ok(None) };
                Ok(Some(
                    times(time[s])?
                        .into_iter()
                        .map(|t| t.map_or(i64::MIN, |t| t.saturating_add(bound)))
                        .collect(),
                ))
            }
            Cleanup::Window { end } => Ok(Some(
                times(end[s])?
                    .into_iter()
                    .map(|t| t.map_or(i64::MIN, |t| t.saturating_sub(1)))
                    .collect(),
            )),
        }
    }

    /// Rows of side `s` that arrive after their bound / window closed (`None`: none can be):
    /// an interval join's row whose rowtime is at or before the watermark (the other side's rows
    /// it could match may already be gone), a window join's row whose window ended.
    fn late(&self, s: usize, data: &[ArrayRef]) -> Result<Option<Vec<bool>>> {
        let w = self.watermark;
        if w == i64::MIN {
            return Ok(None);
        }
        let (col, slack) = match &self.spec.cleanup {
            Cleanup::None => return Ok(None),
            Cleanup::Interval { time, lo, hi } => {
                // Only when the other side's rows are ever dropped.
                let other_dropped = if s == 0 { hi.is_some() } else { lo.is_some() };
                if !other_dropped {
                    return Ok(None);
                }
                (time[s], 0)
            }
            Cleanup::Window { end } => (end[s], 1),
        };
        let column = data
            .get(col)
            .ok_or_else(|| Error::internal("join time column out of range"))?;
        let ms = millis(column)?;
        Ok(Some(
            (0..ms.len())
                .map(|i| !ms.is_null(i) && ms.value(i).saturating_sub(slack) <= w)
                .collect(),
        ))
    }

    fn handle(&mut self, s: usize, changes: &Changes, out: &mut Output) -> Result<()> {
        let spec = Arc::clone(&self.spec);
        let o = 1 - s;
        let n = changes.num_rows();
        let width = spec.sides[s].fields().len();
        if changes.data.num_columns() < width {
            return Err(Error::internal(
                "join input has fewer columns than expected",
            ));
        }
        let data: Vec<ArrayRef> = changes.data.columns()[..width].to_vec();
        let mut key_arrays = Vec::with_capacity(spec.keys[s].len());
        for (c, t) in spec.keys[s].iter().zip(&spec.key_types) {
            let a = changes
                .data
                .columns()
                .get(*c)
                .ok_or_else(|| Error::internal("join key column out of range"))?;
            key_arrays.push(if a.data_type() == t {
                Arc::clone(a)
            } else {
                cast(a, t)?
            });
        }
        // Without equi keys (cross joins) every row has the empty key.
        let key_rows = if key_arrays.is_empty() {
            None
        } else {
            Some(self.keys.encode(&key_arrays)?)
        };
        let empty_key = match &key_rows {
            Some(_) => None,
            None => Some(crate::stream::state::KeyEncoder::empty_key()?),
        };
        let null_key: Vec<bool> = (0..n)
            .map(|i| !spec.null_equal && key_arrays.iter().any(|a| a.is_null(i)))
            .collect();
        let row_rows = if data.is_empty() {
            // A side without columns (`EXISTS (SELECT 1 FROM ..)` keeps none): arrow's row
            // format has no rows for no columns, so each row is the empty row.
            let empty = BinaryArray::from_iter_values(std::iter::repeat_n(b"".as_slice(), n));
            self.sides[s].rows.from_binary(empty)
        } else {
            self.sides[s].rows.convert_columns(&data)?
        };
        let expiry = self.expiry(s, &data)?;
        let late = self.late(s, &data)?;
        let mut late_rows: Vec<usize> = Vec::new();

        // Phase 1: candidates from the other side (unchanged while this batch is applied).
        let mut cand_this: Vec<u32> = Vec::new();
        let mut cand_other: Vec<OwnedRow> = Vec::new();
        let mut ranges = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        for (i, null) in null_key.iter().enumerate() {
            let start = cand_this.len();
            if *null {
                keys.push(None);
            } else {
                let key = match &key_rows {
                    Some(rows) => rows.row(i).owned(),
                    None => empty_key
                        .clone()
                        .ok_or_else(|| Error::internal("join without a key"))?,
                };
                if let Some(bucket) = self.sides[o].state.get(&key)? {
                    for row in bucket.keys() {
                        cand_this.push(i as u32);
                        cand_other.push(row.clone());
                    }
                }
                keys.push(Some(key));
            }
            ranges.push(start..cand_this.len());
        }
        let other_data = self.sides[o]
            .rows
            .convert_rows(cand_other.iter().map(|r| r.row()))?;
        let mask: Option<Vec<bool>> = match &spec.filter {
            Some(filter) if !cand_this.is_empty() => {
                let idx = UInt32Array::from(cand_this.clone());
                let this_cols = take_all(&data, &idx)?;
                let cols: Vec<ArrayRef> = if s == 0 {
                    this_cols
                        .into_iter()
                        .chain(other_data.iter().cloned())
                        .collect()
                } else {
                    other_data.iter().cloned().chain(this_cols).collect()
                };
                let batch = RecordBatch::try_new_with_options(
                    Arc::clone(&spec.filter_schema),
                    cols,
                    &RecordBatchOptions::new().with_row_count(Some(cand_this.len())),
                )?;
                let result = filter.evaluate(&batch)?.into_array(cand_this.len())?;
                let result = result
                    .as_boolean_opt()
                    .ok_or_else(|| Error::internal("join condition is not boolean"))?;
                Some(
                    (0..result.len())
                        .map(|i| result.is_valid(i) && result.value(i))
                        .collect(),
                )
            }
            _ => None,
        };

        // Phase 2: apply row by row.
        let mut rows_out: Vec<OutRow> = Vec::new();
        for i in 0..n {
            let add = changes.kind(i).is_addition();
            if add && late.as_ref().is_some_and(|l| l[i]) {
                late_rows.push(i);
                continue;
            }
            let kind = if add {
                RowKind::Insert
            } else {
                RowKind::Delete
            };
            let row = row_rows.row(i).owned();
            let key = &keys[i];
            if let Some(key) = key
                && !add
            {
                let present = self.sides[s]
                    .state
                    .get(key)?
                    .and_then(|b| b.get(&row))
                    .is_some_and(|e| e.count > 0);
                if !present {
                    // Retraction of a row not in state (expired by TTL): nothing to undo.
                    continue;
                }
            }
            let mut n_match = 0i64;
            if let Some(key) = key {
                let other_bucket = self.sides[o].state.get_mut(key)?;
                if let Some(bucket) = other_bucket {
                    for c in ranges[i].clone() {
                        if mask.as_ref().is_some_and(|m| !m[c]) {
                            continue;
                        }
                        let Some(entry) = bucket.get_mut(&cand_other[c]) else {
                            continue;
                        };
                        let copies = entry.count;
                        n_match += copies;
                        if spec.shape == Shape::Pairs {
                            for _ in 0..copies {
                                rows_out.push(OutRow {
                                    this: Some(i as u32),
                                    other: Some(c as u32),
                                    kind,
                                });
                            }
                        }
                        let before = entry.matches;
                        entry.matches += if add { 1 } else { -1 };
                        if let Some(track) = spec.track[o] {
                            let (was, is) = (track.visible(before), track.visible(entry.matches));
                            if was != is {
                                let solo = if is { RowKind::Insert } else { RowKind::Delete };
                                for _ in 0..copies {
                                    rows_out.push(OutRow {
                                        this: None,
                                        other: Some(c as u32),
                                        kind: solo,
                                    });
                                }
                            }
                        }
                    }
                }
            }
            if let Some(track) = spec.track[s]
                && track.visible(n_match)
            {
                rows_out.push(OutRow {
                    this: Some(i as u32),
                    other: None,
                    kind,
                });
            }
            let Some(key) = key else { continue };
            let side = &mut self.sides[s];
            if add {
                if let Some(expiry) = &expiry {
                    side.schedule(key, expiry[i]);
                }
                let bucket = side.state.get_or_insert_with(key, HashMap::new)?;
                let entry = bucket.entry(row).or_default();
                entry.count += 1;
                entry.matches = n_match;
                self.held += 1;
            } else if remove_copies(&mut side.state, key, &row, 1)? > 0 {
                self.held = self.held.saturating_sub(1);
            }
        }
        self.ctx
            .late_rows(&changes.data, &late_rows, self.watermark)?;
        if !rows_out.is_empty() {
            out.emit(self.output(s, &data, &other_data, &rows_out)?);
        }
        Ok(())
    }

    fn output(
        &self,
        s: usize,
        data: &[ArrayRef],
        other: &[ArrayRef],
        rows: &[OutRow],
    ) -> Result<Changes> {
        let this_idx: UInt32Array = rows.iter().map(|r| r.this).collect();
        let other_idx: UInt32Array = rows.iter().map(|r| r.other).collect();
        let (left, right) = if s == 0 {
            (take_all(data, &this_idx)?, take_all(other, &other_idx)?)
        } else {
            (take_all(other, &other_idx)?, take_all(data, &this_idx)?)
        };
        let columns = match self.spec.shape {
            Shape::Pairs => left.into_iter().chain(right).collect(),
            Shape::LeftOnly => left,
            Shape::RightOnly => right,
        };
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?;
        Changes::new(batch, rows.iter().map(|r| r.kind).collect())
    }

    /// The value format of side `s`'s checkpoint table.
    fn side_format(&self, s: usize) -> String {
        format!("{SIDE_FORMAT} rows=[{}]", schema_types(&self.spec.sides[s]))
    }

    /// Restores side `s`'s state from `snapshot` and rebuilds its cleanup timers.
    fn restore_side(&mut self, s: usize, snapshot: &StateSnapshot) -> Result<()> {
        let format = self.side_format(s);
        let side = &mut self.sides[s];
        let codec = BucketCodec {
            parser: side.rows.parser(),
        };
        codec::restore_keyed(
            &mut side.state,
            snapshot,
            self.keys.converter(),
            &self.spec.key_types,
            &format,
            |d| codec.decode(d),
        )?;
        let side = &self.sides[s];
        let held: Vec<(&OwnedRow, &OwnedRow)> = side
            .state
            .iter()
            .flat_map(|(k, b)| b.keys().map(move |r| (k, r)))
            .collect();
        let columns = check_rows(&side.rows, held.iter().map(|(_, r)| *r), "a join row")?;
        let mut earliest: HashMap<OwnedRow, i64> = HashMap::new();
        if let Some(expiry) = self.expiry(s, &columns)? {
            for ((key, _), at) in held.into_iter().zip(expiry) {
                let t = earliest.entry(key.clone()).or_insert(at);
                *t = (*t).min(at);
            }
        }
        let side = &mut self.sides[s];
        side.timers.clear();
        side.scheduled.clear();
        for (key, at) in earliest {
            side.schedule(&key, at);
        }
        Ok(())
    }

    /// A cleanup timer of `key` on side `s` fired at watermark `w`: drops the key's rows whose
    /// time has come and schedules the key again for the rest.
    fn clean_key(&mut self, s: usize, key: &OwnedRow, w: i64) -> Result<()> {
        let rows: Vec<OwnedRow> = match self.sides[s].state.get(key)? {
            Some(bucket) => bucket.keys().cloned().collect(),
            None => return Ok(()),
        };
        let columns = self.sides[s]
            .rows
            .convert_rows(rows.iter().map(|r| r.row()))?;
        let Some(expiry) = self.expiry(s, &columns)? else {
            return Ok(());
        };
        let mut next: Option<i64> = None;
        for (row, at) in rows.iter().zip(expiry) {
            if at <= w {
                let removed = remove_copies(&mut self.sides[s].state, key, row, i64::MAX)?;
                self.held = self.held.saturating_sub(removed);
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        if let Some(at) = next {
            self.sides[s].schedule(key, at);
        }
        Ok(())
    }

    /// Counts the rows held in state (both sides, with multiplicity).
    fn count_held(&self) -> usize {
        self.sides
            .iter()
            .map(|s| {
                s.state
                    .iter()
                    .map(|(_, b)| b.values().map(|e| e.count.max(0) as usize).sum::<usize>())
                    .sum::<usize>()
            })
            .sum()
    }
}

/// Removes up to `copies` copies of `row` under `key`; returns how many were there.
fn remove_copies(
    state: &mut KeyedState<Bucket>,
    key: &OwnedRow,
    row: &OwnedRow,
    copies: i64,
) -> Result<usize> {
    let mut empty = false;
    let mut removed = 0;
    if let Some(bucket) = state.get_mut(key)? {
        if let Some(entry) = bucket.get_mut(row) {
            removed = entry.count.clamp(0, copies);
            entry.count -= removed;
            if entry.count <= 0 {
                bucket.remove(row);
            }
        }
        empty = bucket.is_empty();
    }
    if empty {
        state.remove(key)?;
    }
    Ok(removed as usize)
}

fn take_all(columns: &[ArrayRef], idx: &UInt32Array) -> Result<Vec<ArrayRef>> {
    Ok(columns
        .iter()
        .map(|c| take(c.as_ref(), idx, None))
        .collect::<std::result::Result<Vec<_>, _>>()?)
}

#[async_trait]
impl Operator for JoinOperator {
    async fn process(&mut self, input: usize, changes: Changes, out: &mut Output) -> Result<()> {
        if input > 1 {
            return Err(Error::internal(format!(
                "join input {input} (expected 0 or 1)"
            )));
        }
        self.handle(input, &changes, out)
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        for s in 0..2 {
            let side = &mut self.sides[s];
            if side.timers.is_empty() {
                continue;
            }
            let keep = match watermark.checked_add(1) {
                Some(next) => side.timers.split_off(&next),
                None => BTreeMap::new(),
            };
            let due = std::mem::replace(&mut side.timers, keep);
            for (at, keys) in due {
                for key in keys {
                    // Only the key's current timer (an earlier row rescheduled it otherwise).
                    if self.sides[s].scheduled.get(&key) != Some(&at) {
                        continue;
                    }
                    self.sides[s].scheduled.remove(&key);
                    self.clean_key(s, &key, watermark)?;
                }
            }
        }
        if self.spec.hold_watermark {
            out.watermark = Some(if watermark == WATERMARK_MAX {
                WATERMARK_MAX
            } else {
                watermark.saturating_sub(self.spec.cleanup.watermark_delay())
            });
        }
        Ok(())
    }

    async fn on_tick(&mut self, now_ms: i64, _out: &mut Output) -> Result<()> {
        let mut expired = 0;
        for side in &mut self.sides {
            expired += side.state.expire(now_ms)?;
        }
        if expired > 0 {
            self.held = self.count_held();
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<std::time::Duration> {
        self.ttl.map(|t| {
            (t / 4).clamp(
                std::time::Duration::from_millis(10),
                std::time::Duration::from_secs(1),
            )
        })
    }

    fn assigns_watermarks(&self) -> bool {
        self.spec.hold_watermark
    }

    fn snapshot(&mut self, _checkpoint: u64, snapshot: &mut StateSnapshot) -> Result<()> {
        for s in 0..2 {
            let format = self.side_format(s);
            let side = &mut self.sides[s];
            side.state
                .snapshot_into(snapshot, &self.spec.key_types, &format, |_, bucket, e| {
                    encode_bucket(bucket, e);
                    Ok(())
                })?;
        }
        let watermark = self.watermark;
        codec::put_operator(
            snapshot,
            &self.ctx.state_id(codec::OPERATOR),
            JOIN_OPERATOR_FORMAT,
            |e| e.i64(watermark),
        )
    }

    fn restore(&mut self, snapshot: &StateSnapshot) -> Result<()> {
        for s in 0..2 {
            if let Err(e) = self.restore_side(s, snapshot) {
                for side in &mut self.sides {
                    side.state.clear();
                    side.timers.clear();
                    side.scheduled.clear();
                }
                self.held = 0;
                return Err(e);
            }
        }
        self.watermark = codec::get_operator(
            snapshot,
            &self.ctx.state_id(codec::OPERATOR),
            JOIN_OPERATOR_FORMAT,
            |d| d.i64(),
            i64::min,
        )?
        .unwrap_or(i64::MIN);
        self.held = self.count_held();
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::arrow::util::display::array_value_to_string;
    use datafusion::common::{DFSchema, ScalarValue};
    use datafusion::logical_expr::{col, lit};
    use datafusion::prelude::SessionContext;

    use crate::stream::changes::Materialized;
    use crate::stream::operator::NodeCounters;
    use crate::stream::ops::codec::testing::{Event, assert_restores, checkpoint};

    type Row = (Option<i64>, i64, RowKind);

    fn side(names: [&str; 2], ts: bool) -> SchemaRef {
        let t = if ts {
            DataType::Timestamp(TimeUnit::Millisecond, None)
        } else {
            DataType::Int64
        };
        Arc::new(Schema::new(vec![
            Field::new(names[0], DataType::Int64, true),
            Field::new(names[1], t, true),
        ]))
    }

    fn spec(
        shape: Shape,
        track: [Option<Track>; 2],
        ts: bool,
        filter: Option<datafusion::logical_expr::Expr>,
        cleanup: Cleanup,
    ) -> Arc<JoinSpec> {
        let left = side(["lk", "lv"], ts);
        let right = side(["rk", "rv"], ts);
        let pair = Arc::new(Schema::new(
            left.fields()
                .iter()
                .chain(right.fields().iter())
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let schema = match shape {
            Shape::Pairs => Arc::clone(&pair),
            Shape::LeftOnly => Arc::clone(&left),
            Shape::RightOnly => Arc::clone(&right),
        };
        let filter = filter.map(|f| {
            let df = DFSchema::try_from(pair.as_ref().clone()).unwrap();
            SessionContext::new().create_physical_expr(f, &df).unwrap()
        });
        Arc::new(JoinSpec {
            shape,
            track,
            sides: [left, right],
            keys: [vec![0], vec![0]],
            key_types: vec![DataType::Int64],
            null_equal: false,
            filter,
            filter_schema: pair,
            schema,
            cleanup,
            hold_watermark: false,
        })
    }

    fn changes(schema: &SchemaRef, rows: &[Row]) -> Changes {
        let k = Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
        let v: ArrayRef = if matches!(schema.field(1).data_type(), DataType::Timestamp(..)) {
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            ))
        } else {
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            ))
        };
        let batch = RecordBatch::try_new(Arc::clone(schema), vec![Arc::new(k), v]).unwrap();
        Changes::new(batch, rows.iter().map(|r| r.2).collect()).unwrap()
    }

    fn render(c: &Changes) -> Vec<String> {
        (0..c.num_rows())
            .map(|r| {
                let vals: Vec<String> = c
                    .data
                    .columns()
                    .iter()
                    .map(|a| {
                        if a.is_null(r) {
                            "null".to_string()
                        } else {
                            array_value_to_string(a, r).unwrap()
                        }
                    })
                    .collect();
                format!("{} {}", c.kind(r).short(), vals.join(","))
            })
            .collect()
    }

    struct Harness {
        op: JoinOperator,
        all: Vec<Changes>,
    }

    impl Harness {
        fn new(spec: Arc<JoinSpec>) -> Harness {
            Harness {
                op: JoinOperator::new(spec, &OperatorContext::for_tests()).unwrap(),
                all: vec![],
            }
        }

        /// Feeds rows to `input`; returns the changes emitted, rendered and sorted.
        async fn feed(&mut self, input: usize, rows: &[Row]) -> Vec<String> {
            let schema = Arc::clone(&self.op.spec.sides[input]);
            let mut out = Output::default();
            self.op
                .process(input, changes(&schema, rows), &mut out)
                .await
                .unwrap();
            self.collect(out)
        }

        async fn watermark(&mut self, w: i64) -> Vec<String> {
            let mut out = Output::default();
            self.op.on_watermark(w, &mut out).await.unwrap();
            self.collect(out)
        }

        fn collect(&mut self, out: Output) -> Vec<String> {
            let mut rendered: Vec<String> = out.changes.iter().flat_map(render).collect();
            rendered.sort();
            self.all.extend(out.changes);
            rendered
        }

        fn result(&self) -> Vec<String> {
            let mut m = Materialized::new(Arc::clone(&self.op.spec.schema)).unwrap();
            for c in &self.all {
                m.apply(c).unwrap();
            }
            let mut rows = render(&Changes::inserts(m.to_batch().unwrap()));
            rows.sort();
            rows
        }
    }

    const I: RowKind = RowKind::Insert;
    const D: RowKind = RowKind::Delete;
    const UB: RowKind = RowKind::UpdateBefore;
    const UA: RowKind = RowKind::UpdateAfter;

    #[tokio::test]
    async fn inner_join_with_retraction_and_duplicates() {
        let mut h = Harness::new(spec(Shape::Pairs, [None, None], false, None, Cleanup::None));
        assert_eq!(
            h.feed(0, &[(Some(1), 10, I), (None, 11, I)]).await,
            Vec::<String>::new()
        );
        assert_eq!(
            h.feed(1, &[(Some(1), 20, I), (Some(1), 20, I), (None, 21, I)])
                .await,
            vec!["+I 1,10,1,20", "+I 1,10,1,20"]
        );
        // an update of the left row: -U joins as -D, +U as +I
        assert_eq!(
            h.feed(0, &[(Some(1), 10, UB), (Some(1), 12, UA)]).await,
            vec![
                "+I 1,12,1,20",
                "+I 1,12,1,20",
                "-D 1,10,1,20",
                "-D 1,10,1,20"
            ]
        );
        assert_eq!(h.feed(1, &[(Some(1), 20, D)]).await, vec!["-D 1,12,1,20"]);
        assert_eq!(h.result(), vec!["+I 1,12,1,20"]);
        // retracting a row that is not in state changes nothing
        assert_eq!(h.feed(0, &[(Some(7), 1, D)]).await, Vec::<String>::new());
        assert_eq!(h.op.state_rows(), 2);
    }

    #[tokio::test]
    async fn left_outer_pads_and_retracts_padding() {
        let mut h = Harness::new(spec(
            Shape::Pairs,
            [Some(Track::Unmatched), None],
            false,
            None,
            Cleanup::None,
        ));
        assert_eq!(
            h.feed(0, &[(Some(1), 10, I), (None, 11, I)]).await,
            vec!["+I 1,10,null,null", "+I null,11,null,null"]
        );
        // first match: padding retracted
        assert_eq!(
            h.feed(1, &[(Some(1), 20, I)]).await,
            vec!["+I 1,10,1,20", "-D 1,10,null,null"]
        );
        // second match: no padding change
        assert_eq!(h.feed(1, &[(Some(1), 21, I)]).await, vec!["+I 1,10,1,21"]);
        assert_eq!(h.feed(1, &[(Some(1), 20, D)]).await, vec!["-D 1,10,1,20"]);
        // last match retracted: padding re-emitted
        assert_eq!(
            h.feed(1, &[(Some(1), 21, D)]).await,
            vec!["+I 1,10,null,null", "-D 1,10,1,21"]
        );
        // a null-keyed left row retracts its padding
        assert_eq!(
            h.feed(0, &[(None, 11, D)]).await,
            vec!["-D null,11,null,null"]
        );
        // unmatched right rows are not emitted in a left join
        assert_eq!(h.feed(1, &[(Some(5), 50, I)]).await, Vec::<String>::new());
        assert_eq!(h.result(), vec!["+I 1,10,null,null"]);
    }

    #[tokio::test]
    async fn full_outer_join() {
        let mut h = Harness::new(spec(
            Shape::Pairs,
            [Some(Track::Unmatched), Some(Track::Unmatched)],
            false,
            None,
            Cleanup::None,
        ));
        assert_eq!(
            h.feed(1, &[(Some(2), 30, I)]).await,
            vec!["+I null,null,2,30"]
        );
        assert_eq!(
            h.feed(0, &[(Some(2), 40, I), (Some(2), 41, I), (Some(3), 42, I)])
                .await,
            vec![
                "+I 2,40,2,30",
                "+I 2,41,2,30",
                "+I 3,42,null,null",
                "-D null,null,2,30"
            ]
        );
        assert_eq!(h.feed(0, &[(Some(2), 40, D)]).await, vec!["-D 2,40,2,30"]);
        assert_eq!(
            h.feed(0, &[(Some(2), 41, D)]).await,
            vec!["+I null,null,2,30", "-D 2,41,2,30"]
        );
        assert_eq!(h.result(), vec!["+I 3,42,null,null", "+I null,null,2,30"]);
    }

    #[tokio::test]
    async fn residual_filter_and_semi_anti() {
        let filter = col("lv").lt(col("rv"));
        let mut h = Harness::new(spec(
            Shape::Pairs,
            [Some(Track::Unmatched), None],
            false,
            Some(filter.clone()),
            Cleanup::None,
        ));
        h.feed(1, &[(Some(1), 5, I), (Some(1), 15, I)]).await;
        assert_eq!(
            h.feed(0, &[(Some(1), 10, I), (Some(1), 20, I)]).await,
            vec!["+I 1,10,1,15", "+I 1,20,null,null"]
        );
        let mut semi = Harness::new(spec(
            Shape::LeftOnly,
            [Some(Track::Matched), None],
            false,
            Some(filter.clone()),
            Cleanup::None,
        ));
        let mut anti = Harness::new(spec(
            Shape::LeftOnly,
            [Some(Track::Unmatched), None],
            false,
            Some(filter),
            Cleanup::None,
        ));
        for h in [&mut semi, &mut anti] {
            h.feed(0, &[(Some(1), 10, I), (Some(1), 20, I), (Some(2), 1, I)])
                .await;
            h.feed(1, &[(Some(1), 15, I), (Some(1), 16, I)]).await;
        }
        assert_eq!(semi.result(), vec!["+I 1,10"]);
        assert_eq!(anti.result(), vec!["+I 1,20", "+I 2,1"]);
        assert_eq!(
            semi.feed(1, &[(Some(1), 15, D)]).await,
            Vec::<String>::new()
        );
        assert_eq!(semi.feed(1, &[(Some(1), 16, D)]).await, vec!["-D 1,10"]);
        anti.feed(1, &[(Some(1), 15, D), (Some(1), 16, D)]).await;
        assert_eq!(anti.result(), vec!["+I 1,10", "+I 1,20", "+I 2,1"]);
    }

    #[tokio::test]
    async fn interval_cleanup_drops_state_without_changing_results() {
        // lv BETWEEN rv - 5ms AND rv + 10ms  →  lv - rv in [-5, 10]
        let rv = || col("rv");
        let ms = |v: i64| lit(ScalarValue::new_interval_mdn(0, 0, v * 1_000_000));
        let filter = col("lv")
            .gt_eq(rv() - ms(5))
            .and(col("lv").lt_eq(rv() + ms(10)));
        let cleanup = Cleanup::Interval {
            time: [1, 1],
            lo: Some(-5),
            hi: Some(10),
        };
        let mut clean = Harness::new(spec(
            Shape::Pairs,
            [None, None],
            true,
            Some(filter.clone()),
            cleanup,
        ));
        let mut plain = Harness::new(spec(
            Shape::Pairs,
            [None, None],
            true,
            Some(filter),
            Cleanup::None,
        ));
        let steps: Vec<(usize, Vec<Row>, i64)> = vec![
            (0, vec![(Some(1), 100, I), (Some(1), 104, I)], 90),
            (1, vec![(Some(1), 96, I), (Some(1), 103, I)], 95),
            (1, vec![(Some(1), 108, I)], 104),
            (0, vec![(Some(1), 112, I), (Some(1), 106, I)], 110),
            (1, vec![(Some(1), 115, I), (Some(1), 130, I)], 120),
            (0, vec![(Some(1), 125, I), (Some(1), 140, I)], 200),
        ];
        let mut state_seen = Vec::new();
        for (input, rows, w) in steps {
            let a = clean.feed(input, &rows).await;
            let b = plain.feed(input, &rows).await;
            assert_eq!(a, b, "outputs differ for {rows:?}");
            clean.watermark(w).await;
            plain.watermark(w).await;
            assert_eq!(clean.op.state_rows(), clean.op.count_held());
            state_seen.push(clean.op.state_rows());
        }
        assert_eq!(clean.result(), plain.result());
        assert!(!clean.result().is_empty());
        // after watermark 104: left 100 (expires at 105) kept; right 96 (expires 106) kept
        // after 110: left 100, 104 and right 96, 103 gone; at 200 everything is gone
        assert_eq!(*state_seen.last().unwrap(), 0);
        assert!(state_seen[3] < plain.op.state_rows());
        assert_eq!(plain.op.state_rows(), 11);
        assert_eq!(
            NodeCounters::get(&clean.op.ctx.counters.late_rows_dropped),
            0
        );
    }

    #[tokio::test]
    async fn interval_join_drops_and_counts_late_rows() {
        let rv = || col("rv");
        let ms = |v: i64| lit(ScalarValue::new_interval_mdn(0, 0, v * 1_000_000));
        let filter = col("lv")
            .gt_eq(rv() - ms(5))
            .and(col("lv").lt_eq(rv() + ms(10)));
        let mut h = Harness::new(spec(
            Shape::Pairs,
            [None, None],
            true,
            Some(filter),
            Cleanup::Interval {
                time: [1, 1],
                lo: Some(-5),
                hi: Some(10),
            },
        ));
        h.feed(1, &[(Some(1), 103, I)]).await;
        h.watermark(104).await;
        // Left 99 would match right 103 (still in state), but its bound closed: dropped.
        assert!(h.feed(0, &[(Some(1), 99, I)]).await.is_empty());
        assert!(h.feed(1, &[(Some(1), 104, I)]).await.is_empty());
        assert_eq!(
            h.feed(0, &[(Some(1), 105, I)]).await,
            vec!["+I 1,1970-01-01T00:00:00.105,1,1970-01-01T00:00:00.103"]
        );
        assert_eq!(NodeCounters::get(&h.op.ctx.counters.late_rows_dropped), 2);
    }

    #[tokio::test]
    async fn window_join_drops_and_counts_rows_of_closed_windows() {
        let mut h = Harness::new(spec(
            Shape::Pairs,
            [None, None],
            true,
            None,
            Cleanup::Window { end: [1, 1] },
        ));
        h.feed(1, &[(Some(1), 10, I), (Some(1), 20, I)]).await;
        h.watermark(9).await;
        // The window ending at 10 closed (its last instant, 9, is not after the watermark).
        assert!(h.feed(0, &[(Some(1), 10, I)]).await.is_empty());
        assert_eq!(
            h.feed(0, &[(Some(1), 20, I)]).await,
            vec!["+I 1,1970-01-01T00:00:00.020,1,1970-01-01T00:00:00.020"]
        );
        assert_eq!(NodeCounters::get(&h.op.ctx.counters.late_rows_dropped), 1);
    }

    fn pairs(input: usize, s: &Arc<JoinSpec>, rows: &[Row]) -> Event {
        Event::Input(input, changes(&s.sides[input], rows))
    }

    #[tokio::test]
    async fn joins_restore_from_a_checkpoint() {
        let make = |s: &Arc<JoinSpec>| {
            let s = Arc::clone(s);
            move |ctx: &OperatorContext| -> Box<dyn Operator> {
                Box::new(JoinOperator::new(Arc::clone(&s), ctx).unwrap())
            }
        };
        // Full outer join with a residual condition: padding retracted and re-emitted across
        // the checkpoint, duplicates, updates.
        let s = spec(
            Shape::Pairs,
            [Some(Track::Unmatched), Some(Track::Unmatched)],
            false,
            Some(col("lv").lt(col("rv"))),
            Cleanup::None,
        );
        let events = vec![
            pairs(1, &s, &[(Some(2), 30, I), (Some(1), 5, I)]),
            pairs(
                0,
                &s,
                &[(Some(2), 10, I), (Some(2), 10, I), (Some(3), 1, I)],
            ),
            pairs(1, &s, &[(Some(2), 30, UB), (Some(2), 31, UA), (None, 1, I)]),
            pairs(0, &s, &[(Some(2), 10, D), (Some(1), 1, I)]),
            pairs(1, &s, &[(Some(1), 5, D), (Some(2), 31, D)]),
            pairs(0, &s, &[(Some(2), 10, D), (Some(1), 1, D)]),
        ];
        let out = assert_restores(make(&s), &events).await;
        assert!(out.iter().flatten().any(|l| l.starts_with("-D")), "{out:?}");
        // Semi join: a left row is visible while it has a match.
        let s = spec(
            Shape::LeftOnly,
            [Some(Track::Matched), None],
            false,
            None,
            Cleanup::None,
        );
        assert_restores(make(&s), &events).await;

        // Interval join: state cleaned by the watermark (timers rebuilt on restore), late rows,
        // the held-back output watermark.
        let rv = || col("rv");
        let ms = |v: i64| lit(ScalarValue::new_interval_mdn(0, 0, v * 1_000_000));
        let filter = col("lv")
            .gt_eq(rv() - ms(5))
            .and(col("lv").lt_eq(rv() + ms(10)));
        let interval = |hold: bool| {
            let mut s = Arc::into_inner(spec(
                Shape::Pairs,
                [Some(Track::Unmatched), None],
                true,
                Some(filter.clone()),
                Cleanup::Interval {
                    time: [1, 1],
                    lo: Some(-5),
                    hi: Some(10),
                },
            ))
            .unwrap();
            s.hold_watermark = hold;
            Arc::new(s)
        };
        let s = interval(true);
        let events = vec![
            pairs(
                0,
                &s,
                &[(Some(1), 100, I), (Some(1), 104, I), (Some(1), 104, I)],
            ),
            Event::Watermark(90),
            pairs(1, &s, &[(Some(1), 96, I), (Some(1), 103, I)]),
            Event::Watermark(104),
            pairs(0, &s, &[(Some(1), 99, I), (Some(1), 112, I)]),
            pairs(1, &s, &[(Some(1), 108, I), (Some(1), 104, I)]),
            Event::Watermark(110),
            pairs(0, &s, &[(Some(1), 125, I), (Some(1), 106, I)]),
            pairs(1, &s, &[(Some(1), 115, I), (Some(1), 130, I)]),
            Event::Watermark(120),
            Event::End,
        ];
        let out = assert_restores(make(&s), &events).await;
        assert!(out[1].contains(&"watermark 80".to_string()), "{out:?}");
        // Window join.
        let s = spec(
            Shape::Pairs,
            [None, None],
            true,
            None,
            Cleanup::Window { end: [1, 1] },
        );
        let events = vec![
            pairs(0, &s, &[(Some(1), 10, I), (Some(1), 20, I)]),
            pairs(1, &s, &[(Some(1), 10, I)]),
            Event::Watermark(9),
            pairs(1, &s, &[(Some(1), 10, I), (Some(1), 20, I)]),
            Event::Watermark(19),
            pairs(0, &s, &[(Some(1), 20, I), (Some(1), 30, I)]),
            Event::End,
        ];
        assert_restores(make(&s), &events).await;
    }

    #[tokio::test]
    async fn join_state_of_other_row_types_is_incompatible() {
        let mut h = Harness::new(spec(Shape::Pairs, [None, None], false, None, Cleanup::None));
        h.feed(0, &[(Some(1), 10, I)]).await;
        let snapshot = checkpoint(&mut h.op);
        // The same keys, but timestamps where there were integers.
        let mut other = JoinOperator::new(
            spec(Shape::Pairs, [None, None], true, None, Cleanup::None),
            &OperatorContext::for_tests(),
        )
        .unwrap();
        let err = other.restore(&snapshot).unwrap_err();
        assert!(err.to_string().contains("incompatible state"), "{err}");
        assert_eq!(other.state_rows(), 0);
    }

    #[tokio::test]
    async fn window_cleanup_drops_closed_windows() {
        let mut h = Harness::new(spec(
            Shape::Pairs,
            [None, None],
            true,
            None,
            Cleanup::Window { end: [1, 1] },
        ));
        h.feed(0, &[(Some(1), 10, I), (Some(1), 20, I)]).await;
        assert_eq!(h.feed(1, &[(Some(1), 10, I)]).await.len(), 2);
        assert_eq!(h.op.state_rows(), 3);
        h.watermark(9).await;
        assert_eq!(h.op.state_rows(), 1);
        h.watermark(WATERMARK_MAX).await;
        assert_eq!(h.op.state_rows(), 0);
    }
}
