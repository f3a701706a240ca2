//! Event-time temporal join (`JOIN versioned FOR SYSTEM_TIME AS OF left.rowtime`): the
//! [`TemporalJoinOperator`] and its lowering from the planner's [`TemporalJoinNode`].
//!
//! Both inputs are hash-exchanged on the versioned table's primary key (left: the expressions
//! equal to it). Per key the operator keeps
//!
//! - the right input's *versions*: rowtime → row (`+I`/`+U` start a version; `-U`/`-D` end the
//!   current one: a "no row" entry at their rowtime), and
//! - the left rows not yet joined, by their event time.
//!
//! When the merged watermark passes `W`, no more right rows with rowtime `<= W` will arrive, so
//! every buffered left row with time `<= W` is joined with the version valid at its time (the
//! latest rowtime `<=` its time; ties: the later arrival wins) and emitted; the residual condition
//! is applied to that pair. Versions older than the latest one at or before `W` can no longer be
//! needed and are dropped. Left rows that arrive with a time `<=` the watermark are late: dropped
//! and counted. Output is append-only; it keeps the left input's rowtime attribute.
//!
//! Checkpoints (see [`super::codec`]): `<uid>.left` holds the waiting left rows by time,
//! `<uid>.versions` the versions by rowtime, `<uid>.operator` the watermark.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, filter as filter_array, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::logical_expr::{Expr, ExprSchemable, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::PhysicalExpr;

use super::codec::{self, Dec, Enc, check_rows, schema_types};
use crate::error::{Error, Result};
use crate::functions::window::millis;
use crate::planner::temporal_join::TemporalJoinNode;
use crate::stream::changes::{ChangelogMode, Changes, WATERMARK_MAX};
use crate::stream::checkpoint::StateSnapshot;
use crate::stream::lower::{Lowered, Lowering, Times, unalias};
use crate::stream::operator::{Operator, OperatorContext, Output};
use crate::stream::state::{KeyEncoder, KeyedState};

/// What every instance of a temporal join needs to know.
pub struct TemporalJoinSpec {
    /// Per side (0 = left, 1 = right): the data columns (a prefix of the input's columns; key
    /// columns computed by a projection may follow).
    pub sides: [SchemaRef; 2],
    /// Per side: input column indices of the key (pairwise equal; right: the primary key).
    pub keys: [Vec<usize>; 2],
    /// Key types (both sides' keys are cast to these).
    pub key_types: Vec<DataType>,
    /// Per side: the rowtime column (left: the `AS OF` column; right: the versioned table's).
    pub time: [usize; 2],
    /// The residual condition over left ++ right data columns.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// `LEFT JOIN`: left rows without a (matching) version are emitted with NULLs.
    pub outer: bool,
    /// The output schema (left data columns then right data columns).
    pub schema: SchemaRef,
}

/// One instance of an event-time temporal join (see the module doc).
pub struct TemporalJoinOperator {
    spec: Arc<TemporalJoinSpec>,
    ctx: OperatorContext,
    keys: KeyEncoder,
    rows: [RowConverter; 2],
    /// Key → event time → left rows waiting for the watermark.
    left: KeyedState<BTreeMap<i64, Vec<OwnedRow>>>,
    /// Key → rowtime → version (`None`: the key had no row from then on).
    versions: KeyedState<BTreeMap<i64, Option<OwnedRow>>>,
    watermark: i64,
    held: usize,
}

impl TemporalJoinOperator {
    pub fn new(spec: Arc<TemporalJoinSpec>, ctx: &OperatorContext) -> Result<Self> {
        let converter = |s: &SchemaRef| -> Result<RowConverter> {
            Ok(RowConverter::new(
                s.fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?)
        };
        Ok(Self {
            keys: KeyEncoder::new(&spec.key_types)?,
            rows: [converter(&spec.sides[0])?, converter(&spec.sides[1])?],
            left: KeyedState::new(ctx.state_id("left"), None),
            versions: KeyedState::new(ctx.state_id("versions"), None),
            watermark: i64::MIN,
            held: 0,
            ctx: ctx.clone(),
            spec,
        })
    }

    /// Per row of `changes` (side `s`): its data columns, time, and key (`None` when the time or
    /// a key column is NULL: such a row never matches).
    #[allow(clippy::type_complexity)]
    fn decode(
        &self,
        s: usize,
        changes: &Changes,
    ) -> Result<(Vec<ArrayRef>, Vec<Option<(i64, OwnedRow)>>)> {
        let width = self.spec.sides[s].fields().len();
        let columns = changes.data.columns();
        if columns.len() < width {
            return Err(Error::internal(
                "temporal join input has fewer columns than expected",
            ));
        }
        let data = columns[..width].to_vec();
        let time_column = columns
            .get(self.spec.time[s])
            .ok_or_else(|| Error::internal("temporal join time column out of range"))?;
        let times = millis(time_column)?;
        let mut key_arrays = Vec::with_capacity(self.spec.keys[s].len());
        for (c, t) in self.spec.keys[s].iter().zip(&self.spec.key_types) {
            let a = columns
                .get(*c)
                .ok_or_else(|| Error::internal("temporal join key column out of range"))?;
            key_arrays.push(if a.data_type() == t {
                Arc::clone(a)
            } else {
                cast(a, t)?
            });
        }
        let keys = self.keys.encode(&key_arrays)?;
        let slots = (0..changes.num_rows())
            .map(|i| {
                let null = times.is_null(i) || key_arrays.iter().any(|a| a.is_null(i));
                (!null).then(|| (times.value(i), keys.row(i).owned()))
            })
            .collect();
        Ok((data, slots))
    }

    fn process_left(&mut self, changes: &Changes, out: &mut Output) -> Result<()> {
        if !changes.is_insert_only() {
            return Err(Error::not_supported(
                "a temporal join with an updating left input is not supported yet",
            ));
        }
        let (data, slots) = self.decode(0, changes)?;
        let rows = self.rows[0].convert_columns(&data)?;
        let mut unmatched: Vec<(OwnedRow, Option<OwnedRow>)> = Vec::new();
        let mut late: Vec<usize> = Vec::new();
        for (i, slot) in slots.into_iter().enumerate() {
            match slot {
                None => {
                    if self.spec.outer {
                        unmatched.push((rows.row(i).owned(), None));
                    }
                }
                Some((t, _)) if t <= self.watermark => late.push(i),
                Some((t, key)) => {
                    self.left
                        .get_or_insert_with(&key, BTreeMap::new)?
                        .entry(t)
                        .or_default()
                        .push(rows.row(i).owned());
                    self.held += 1;
                }
            }
        }
        self.ctx.late_rows(&changes.data, &late, self.watermark)?;
        if let Some(batch) = self.build(unmatched)? {
            out.emit(Changes::inserts(batch));
        }
        Ok(())
    }

    fn process_right(&mut self, changes: &Changes) -> Result<()> {
        let (data, slots) = self.decode(1, changes)?;
        let rows = self.rows[1].convert_columns(&data)?;
        for (i, slot) in slots.into_iter().enumerate() {
            let Some((t, key)) = slot else { continue };
            let version = changes.kind(i).is_addition().then(|| rows.row(i).owned());
            let versions = self.versions.get_or_insert_with(&key, BTreeMap::new)?;
            if versions.insert(t, version).is_none() {
                self.held += 1;
            }
        }
        Ok(())
    }

    /// Joined rows for (left row, its version) pairs, after the residual condition; `None` when
    /// nothing is left.
    fn build(&self, pairs: Vec<(OwnedRow, Option<OwnedRow>)>) -> Result<Option<RecordBatch>> {
        if pairs.is_empty() {
            return Ok(None);
        }
        let n = pairs.len();
        let left = self.rows[0].convert_rows(pairs.iter().map(|(l, _)| l.row()))?;
        let right_rows: Vec<&OwnedRow> = pairs.iter().filter_map(|(_, r)| r.as_ref()).collect();
        let right = self.rows[1].convert_rows(right_rows.iter().map(|r| r.row()))?;
        let mut next = 0u32;
        let mut indices: Vec<Option<u32>> = pairs
            .iter()
            .map(|(_, r)| {
                r.as_ref().map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        let take_right = |indices: &[Option<u32>]| -> Result<Vec<ArrayRef>> {
            let idx = UInt32Array::from(indices.to_vec());
            right
                .iter()
                .map(|c| Ok(take(c.as_ref(), &idx, None)?))
                .collect()
        };
        let mut right_cols = take_right(&indices)?;
        if let Some(filter) = &self.spec.filter {
            let fields: Vec<Field> = self.spec.sides[0]
                .fields()
                .iter()
                .chain(self.spec.sides[1].fields().iter())
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect();
            let columns: Vec<ArrayRef> = left.iter().chain(right_cols.iter()).cloned().collect();
            let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
            let mask = filter.evaluate(&batch)?.into_array(n)?;
            let mask = mask
                .as_boolean_opt()
                .ok_or_else(|| Error::internal("temporal join condition is not boolean"))?;
            let mut changed = false;
            for (i, idx) in indices.iter_mut().enumerate() {
                if idx.is_some() && !(mask.is_valid(i) && mask.value(i)) {
                    *idx = None;
                    changed = true;
                }
            }
            if changed {
                right_cols = take_right(&indices)?;
            }
        }
        let mut columns: Vec<ArrayRef> = left;
        columns.extend(right_cols);
        if !self.spec.outer {
            let keep = datafusion::arrow::array::BooleanArray::from(
                indices.iter().map(|i| i.is_some()).collect::<Vec<_>>(),
            );
            columns = columns
                .iter()
                .map(|c| Ok(filter_array(c.as_ref(), &keep)?))
                .collect::<Result<_>>()?;
            if keep.true_count() == 0 {
                return Ok(None);
            }
        }
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.spec.schema),
            columns,
        )?))
    }
}

/// Value formats of [`TemporalJoinOperator`]'s checkpoint tables (the row tables add the row
/// types).
const LEFT_FORMAT: &str = "weir.temporal-join.left/1 (time,rows)*";
const VERSIONS_FORMAT: &str = "weir.temporal-join.versions/1 (rowtime,row?)*";
const TEMPORAL_OPERATOR_FORMAT: &str = "weir.temporal-join.operator/1 watermark";

impl TemporalJoinOperator {
    fn formats(&self) -> [String; 2] {
        [
            format!("{LEFT_FORMAT} rows=[{}]", schema_types(&self.spec.sides[0])),
            format!(
                "{VERSIONS_FORMAT} rows=[{}]",
                schema_types(&self.spec.sides[1])
            ),
        ]
    }

    fn restore_state(&mut self, snapshot: &StateSnapshot) -> Result<()> {
        let [left_format, versions_format] = self.formats();
        let parser = self.rows[0].parser();
        codec::restore_keyed(
            &mut self.left,
            snapshot,
            self.keys.converter(),
            &self.spec.key_types,
            &left_format,
            |d: &mut Dec| {
                let mut waiting = BTreeMap::new();
                for _ in 0..d.len()? {
                    let t = d.i64()?;
                    let n = d.len()?;
                    let mut rows = Vec::with_capacity(n);
                    for _ in 0..n {
                        rows.push(d.row(&parser)?);
                    }
                    waiting.insert(t, rows);
                }
                Ok(waiting)
            },
        )?;
        let parser = self.rows[1].parser();
        codec::restore_keyed(
            &mut self.versions,
            snapshot,
            self.keys.converter(),
            &self.spec.key_types,
            &versions_format,
            |d: &mut Dec| {
                let mut versions = BTreeMap::new();
                for _ in 0..d.len()? {
                    let t = d.i64()?;
                    let row = if d.bool()? {
                        Some(d.row(&parser)?)
                    } else {
                        None
                    };
                    versions.insert(t, row);
                }
                Ok(versions)
            },
        )?;
        check_rows(
            &self.rows[0],
            self.left.iter().flat_map(|(_, m)| m.values().flatten()),
            "a temporal join's left row",
        )?;
        check_rows(
            &self.rows[1],
            self.versions.iter().flat_map(|(_, m)| m.values().flatten()),
            "a temporal join's version",
        )?;
        Ok(())
    }
}

#[async_trait]
impl Operator for TemporalJoinOperator {
    async fn process(&mut self, input: usize, changes: Changes, out: &mut Output) -> Result<()> {
        match input {
            0 => self.process_left(&changes, out),
            _ => self.process_right(&changes),
        }
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        // Left rows whose time the watermark passed, joined with the version valid then.
        let ready: Vec<OwnedRow> = self
            .left
            .iter()
            .filter(|(_, m)| m.first_key_value().is_some_and(|(t, _)| *t <= watermark))
            .map(|(k, _)| k.clone())
            .collect();
        let mut pairs: Vec<(OwnedRow, Option<OwnedRow>)> = Vec::new();
        for key in ready {
            let Some(waiting) = self.left.get_mut(&key)? else {
                continue;
            };
            let due = if watermark == WATERMARK_MAX {
                std::mem::take(waiting)
            } else {
                let later = waiting.split_off(&(watermark + 1));
                std::mem::replace(waiting, later)
            };
            if waiting.is_empty() {
                self.left.remove(&key)?;
            }
            let versions = self.versions.get(&key)?;
            for (t, rows) in due {
                let version = versions
                    .and_then(|v| v.range(..=t).next_back())
                    .and_then(|(_, r)| r.clone());
                self.held = self.held.saturating_sub(rows.len());
                pairs.extend(rows.into_iter().map(|r| (r, version.clone())));
            }
        }
        // Versions no longer needed: all but the latest at or before the watermark.
        let mut dropped = 0;
        let mut empty: Vec<OwnedRow> = Vec::new();
        let keys: Vec<OwnedRow> = self.versions.iter().map(|(k, _)| k.clone()).collect();
        for key in keys {
            let Some(versions) = self.versions.get_mut(&key)? else {
                continue;
            };
            let Some((&current, _)) = versions.range(..=watermark).next_back() else {
                continue;
            };
            let kept = versions.split_off(&current);
            dropped += versions.len();
            *versions = kept;
            if versions.len() == 1 && versions.get(&current).is_some_and(|v| v.is_none()) {
                dropped += 1;
                empty.push(key);
            }
        }
        for key in empty {
            self.versions.remove(&key)?;
        }
        self.held = self.held.saturating_sub(dropped);
        if let Some(batch) = self.build(pairs)? {
            out.emit(Changes::inserts(batch));
        }
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint: u64, snapshot: &mut StateSnapshot) -> Result<()> {
        let [left_format, versions_format] = self.formats();
        self.left.snapshot_into(
            snapshot,
            &self.spec.key_types,
            &left_format,
            |_, waiting, e: &mut Enc| {
                e.len(waiting.len());
                for (t, rows) in waiting {
                    e.i64(*t);
                    e.len(rows.len());
                    for row in rows {
                        e.row(row);
                    }
                }
                Ok(())
            },
        )?;
        self.versions.snapshot_into(
            snapshot,
            &self.spec.key_types,
            &versions_format,
            |_, versions, e: &mut Enc| {
                e.len(versions.len());
                for (t, row) in versions {
                    e.i64(*t);
                    e.bool(row.is_some());
                    if let Some(row) = row {
                        e.row(row);
                    }
                }
                Ok(())
            },
        )?;
        let watermark = self.watermark;
        codec::put_operator(
            snapshot,
            &self.ctx.state_id(codec::OPERATOR),
            TEMPORAL_OPERATOR_FORMAT,
            |e| e.i64(watermark),
        )
    }

    fn restore(&mut self, snapshot: &StateSnapshot) -> Result<()> {
        if let Err(e) = self.restore_state(snapshot) {
            self.left.clear();
            self.versions.clear();
            self.held = 0;
            return Err(e);
        }
        self.watermark = codec::get_operator(
            snapshot,
            &self.ctx.state_id(codec::OPERATOR),
            TEMPORAL_OPERATOR_FORMAT,
            |d| d.i64(),
            i64::min,
        )?
        .unwrap_or(i64::MIN);
        // Waiting left rows and versions, as `process_*` and `on_watermark` count them.
        self.held = self
            .left
            .iter()
            .map(|(_, m)| m.values().map(Vec::len).sum::<usize>())
            .sum::<usize>()
            + self.versions.iter().map(|(_, m)| m.len()).sum::<usize>();
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.held
    }
}

/// Lowers a [`TemporalJoinNode`]: both inputs keyed by the primary key, one operator.
///
/// # Errors
/// `Invalid` when the `AS OF` column is not an event-time attribute in streaming mode;
/// `NotSupported` for an updating left input.
pub fn lower(
    l: &mut Lowering,
    node: &TemporalJoinNode,
    left: Lowered,
    right: Lowered,
) -> Result<Lowered> {
    if !left.mode.is_insert_only() {
        return Err(Error::not_supported(
            "a temporal join (FOR SYSTEM_TIME AS OF) with an updating left input is not \
             supported yet",
        ));
    }
    let left_df = node.left.schema();
    let right_df = node.right.schema();
    let column_index = |e: &Expr, df: &datafusion::common::DFSchema| -> Option<usize> {
        match unalias(e) {
            Expr::Column(c) => df.index_of_column(c).ok(),
            _ => None,
        }
    };
    let left_time = column_index(&node.left_time, left_df)
        .filter(|i| left.times.rowtime.contains(i))
        .ok_or_else(|| {
            Error::invalid(format!(
                "FOR SYSTEM_TIME AS OF {}: not an event-time attribute in streaming mode; declare \
                 a WATERMARK for it in the table (or use a PROCTIME() column for a lookup join)",
                node.left_time
            ))
        })?;
    let right_time = column_index(&node.right_time, right_df)
        .filter(|i| right.times.rowtime.contains(i))
        .ok_or_else(|| {
            Error::invalid(format!(
                "temporal join: the versioned table's rowtime `{}` is not an event-time \
                 attribute here",
                node.right_time
            ))
        })?;
    let mut key_types = Vec::with_capacity(node.left_keys.len());
    for k in &node.left_keys {
        key_types.push(k.get_type(left_df.as_ref())?);
    }
    let left_on: Vec<&Expr> = node.left_keys.iter().collect();
    let right_on: Vec<&Expr> = node.right_keys.iter().collect();
    let (left_in, left_keys) = super::join::key_columns(l, &left, left_df, &left_on)?;
    let (right_in, right_keys) = super::join::key_columns(l, &right, right_df, &right_on)?;
    let filter = match &node.filter {
        Some(f) => Some(l.physical_expr(f, node.schema())?),
        None => None,
    };
    let schema: SchemaRef = Arc::new(node.schema().as_arrow().clone());
    let detail = format!(
        "joinType=[{}], where=[{}], leftKeys=[{}], rightKeys=[{}], leftTimeAttribute=[{}], \
         rightTimeAttribute=[{}]",
        if node.outer {
            "LeftOuterJoin"
        } else {
            "InnerJoin"
        },
        {
            let mut c: Vec<String> = node
                .left_keys
                .iter()
                .zip(&node.right_keys)
                .map(|(a, b)| format!("{a} = {b}"))
                .collect();
            c.extend(node.filter.iter().map(|f| f.to_string()));
            c.join(" AND ")
        },
        node.left_keys
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        node.right_keys
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        node.left_time,
        node.right_time,
    );
    let parallelism = l.keyed_parallelism(&left_keys);
    let edges = vec![
        l.keyed_edge(&left_in, left_keys.clone(), parallelism),
        l.keyed_edge(&right_in, right_keys.clone(), parallelism),
    ];
    let spec = Arc::new(TemporalJoinSpec {
        sides: [
            Arc::new(left_df.as_arrow().clone()),
            Arc::new(right_df.as_arrow().clone()),
        ],
        keys: [left_keys, right_keys],
        key_types,
        time: [left_time, right_time],
        filter,
        outer: node.outer,
        schema: Arc::clone(&schema),
    });
    let id = l.add_operator(
        "TemporalJoin",
        detail,
        schema,
        ChangelogMode::InsertOnly,
        parallelism,
        edges,
        Box::new(move |ctx| Ok(Box::new(TemporalJoinOperator::new(Arc::clone(&spec), ctx)?))),
    );
    let width = left_df.fields().len();
    Ok(Lowered {
        id,
        mode: ChangelogMode::InsertOnly,
        times: Times {
            rowtime: left
                .times
                .rowtime
                .iter()
                .copied()
                .filter(|c| *c < width)
                .collect(),
            proctime: vec![],
            window: None,
        },
        bounded: left.bounded && right.bounded,
        parallelism,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::changes::RowKind;
    use datafusion::arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::arrow::util::display::array_value_to_string;
    use std::sync::atomic::Ordering;

    fn side(value: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new(value, DataType::Utf8, true),
        ]))
    }

    fn operator(outer: bool) -> (TemporalJoinOperator, OperatorContext) {
        let (left, right) = (side("v"), side("r"));
        let fields: Vec<Field> = left
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .chain(
                right
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true)),
            )
            .collect();
        let spec = Arc::new(TemporalJoinSpec {
            sides: [left, right],
            keys: [vec![0], vec![0]],
            key_types: vec![DataType::Int64],
            time: [1, 1],
            filter: None,
            outer,
            schema: Arc::new(Schema::new(fields)),
        });
        let ctx = OperatorContext::for_tests();
        (TemporalJoinOperator::new(spec, &ctx).unwrap(), ctx)
    }

    fn rows(schema: SchemaRef, rows: &[(Option<i64>, i64, &str)]) -> RecordBatch {
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    async fn left(op: &mut TemporalJoinOperator, r: &[(Option<i64>, i64, &str)]) -> Vec<String> {
        let mut out = Output::default();
        let batch = rows(side("v"), r);
        op.process(0, Changes::inserts(batch), &mut out)
            .await
            .unwrap();
        render(out)
    }

    async fn right(
        op: &mut TemporalJoinOperator,
        r: &[(Option<i64>, i64, &str)],
        kinds: &[RowKind],
    ) {
        let mut out = Output::default();
        let batch = rows(side("r"), r);
        let changes = if kinds.is_empty() {
            Changes::inserts(batch)
        } else {
            Changes::new(batch, kinds.to_vec()).unwrap()
        };
        op.process(1, changes, &mut out).await.unwrap();
        assert!(out.changes.is_empty(), "the right input emits nothing");
    }

    async fn watermark(op: &mut TemporalJoinOperator, w: i64) -> Vec<String> {
        let mut out = Output::default();
        op.on_watermark(w, &mut out).await.unwrap();
        render(out)
    }

    /// `left value -> right value` per output row (NULL when no version), sorted.
    fn render(out: Output) -> Vec<String> {
        let mut lines = Vec::new();
        for c in &out.changes {
            assert!(c.is_insert_only());
            for i in 0..c.num_rows() {
                let v = array_value_to_string(c.data.column(2), i).unwrap();
                let r = c.data.column(5);
                let r = if r.is_null(i) {
                    "NULL".to_string()
                } else {
                    array_value_to_string(r, i).unwrap()
                };
                lines.push(format!("{v}->{r}"));
            }
        }
        lines.sort();
        lines
    }

    #[tokio::test]
    async fn joins_the_version_valid_at_the_left_time() {
        for outer in [false, true] {
            let (mut op, _) = operator(outer);
            right(&mut op, &[(Some(1), 10, "a"), (Some(1), 20, "b")], &[]).await;
            // Out of order, before any version, and a key without versions.
            let early = left(
                &mut op,
                &[
                    (Some(1), 25, "x25"),
                    (Some(1), 15, "x15"),
                    (Some(1), 5, "x5"),
                    (Some(1), 20, "x20"),
                    (Some(2), 12, "y12"),
                ],
            )
            .await;
            assert!(early.is_empty(), "nothing before the watermark: {early:?}");
            let out = watermark(&mut op, 16).await;
            let expected: Vec<&str> = if outer {
                vec!["x15->a", "x5->NULL", "y12->NULL"]
            } else {
                vec!["x15->a"]
            };
            assert_eq!(out, expected, "outer={outer}");
            // A later version replaces b for rows after it only.
            right(&mut op, &[(Some(1), 22, "c")], &[]).await;
            assert_eq!(watermark(&mut op, 30).await, vec!["x20->b", "x25->c"]);
        }
    }

    #[tokio::test]
    async fn late_left_rows_are_dropped_and_counted() {
        let (mut op, ctx) = operator(true);
        right(&mut op, &[(Some(1), 10, "a")], &[]).await;
        assert!(watermark(&mut op, 20).await.is_empty());
        assert!(
            left(&mut op, &[(Some(1), 20, "late"), (Some(1), 21, "ok")])
                .await
                .is_empty()
        );
        assert_eq!(ctx.counters.late_rows_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(watermark(&mut op, i64::MAX).await, vec!["ok->a"]);
        // NULL keys never match: a LEFT JOIN emits them at once.
        assert_eq!(left(&mut op, &[(None, 50, "n")]).await, vec!["n->NULL"]);
    }

    #[tokio::test]
    async fn a_retraction_ends_a_version_and_old_versions_are_cleaned() {
        let (mut op, _) = operator(false);
        right(
            &mut op,
            &[
                (Some(1), 10, "a"),
                (Some(1), 20, "a"),
                (Some(1), 20, "b"),
                (Some(2), 5, "z"),
            ],
            &[
                RowKind::Insert,
                RowKind::UpdateBefore,
                RowKind::UpdateAfter,
                RowKind::Insert,
            ],
        )
        .await;
        right(&mut op, &[(Some(2), 8, "z")], &[RowKind::Delete]).await;
        left(
            &mut op,
            &[
                (Some(1), 15, "p"),
                (Some(1), 20, "q"),
                (Some(2), 6, "r"),
                (Some(2), 9, "s"),
            ],
        )
        .await;
        assert_eq!(op.state_rows(), 4 + 4);
        assert_eq!(watermark(&mut op, 25).await, vec!["p->a", "q->b", "r->z"]);
        // Key 1 keeps only its version at 20; key 2 ended (a deletion) and is gone.
        assert_eq!(op.versions.len(), 1);
        assert_eq!(op.state_rows(), 1);
    }

    #[tokio::test]
    async fn temporal_joins_restore_from_a_checkpoint() {
        use crate::stream::ops::codec::testing::{Event, assert_restores, checkpoint};
        let l =
            |r: &[(Option<i64>, i64, &str)]| Event::Input(0, Changes::inserts(rows(side("v"), r)));
        let r = |r: &[(Option<i64>, i64, &str)], kinds: &[RowKind]| {
            Event::Input(1, Changes::new(rows(side("r"), r), kinds.to_vec()).unwrap())
        };
        use RowKind::{Delete as D, Insert as I, UpdateAfter as UA, UpdateBefore as UB};
        let events = vec![
            r(&[(Some(1), 10, "a"), (Some(2), 5, "z")], &[I, I]),
            l(&[
                (Some(1), 25, "x25"),
                (Some(1), 15, "x15"),
                (Some(1), 5, "x5"),
            ]),
            l(&[(Some(2), 12, "y12"), (None, 3, "n"), (Some(3), 1, "w")]),
            Event::Watermark(16),
            r(&[(Some(1), 20, "a"), (Some(1), 20, "b")], &[UB, UA]),
            r(&[(Some(2), 18, "z")], &[D]),
            l(&[
                (Some(1), 16, "late"),
                (Some(2), 20, "y20"),
                (Some(1), 21, "x21"),
            ]),
            Event::Watermark(22),
            r(&[(Some(1), 30, "c")], &[I]),
            l(&[(Some(1), 40, "x40")]),
            Event::End,
        ];
        for outer in [false, true] {
            let out = assert_restores(
                |ctx| {
                    let (op, _) = operator(outer);
                    Box::new(TemporalJoinOperator::new(Arc::clone(&op.spec), ctx).unwrap())
                },
                &events,
            )
            .await;
            let x21 = "+I 1 1970-01-01T00:00:00.021 x21 1 1970-01-01T00:00:00.020 b";
            assert!(out.iter().flatten().any(|l| l == x21), "{out:?}");
        }
        // A versioned table with other column types cannot take this state.
        let (mut op, _) = operator(false);
        crate::stream::ops::codec::testing::run(&mut op, &events[..2]).await;
        let snapshot = checkpoint(&mut op);
        let mut spec = Arc::into_inner(operator(false).0.spec).unwrap();
        spec.sides[1] = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("r", DataType::Int64, true),
        ]));
        let mut other =
            TemporalJoinOperator::new(Arc::new(spec), &OperatorContext::for_tests()).unwrap();
        let err = other.restore(&snapshot).unwrap_err();
        assert!(err.to_string().contains("incompatible state"), "{err}");
        assert_eq!(other.state_rows(), 0);
    }

    #[tokio::test]
    async fn explain_shows_the_temporal_join() {
        use crate::{Session, SessionOptions, StatementResult};
        use futures::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::open(SessionOptions::default()).await.unwrap();
        for (name, pk) in [("o", ""), ("r", ", PRIMARY KEY (k) NOT ENFORCED")] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(path.join("data.csv"), "k,ts\n1,2024-01-01 00:00:01\n").unwrap();
            s.execute_sql(&format!(
                "CREATE TABLE {name} (k INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts{pk}) WITH \
                 ('connector'='filesystem', 'path'='{}', 'format'='csv', 'csv.header'='true')",
                path.display()
            ))
            .await
            .unwrap();
        }
        s.execute_sql("SET 'execution.runtime-mode' = 'streaming'")
            .await
            .unwrap();
        let mut results = s
            .execute_sql(
                "EXPLAIN SELECT o.k, r.ts FROM o LEFT JOIN r FOR SYSTEM_TIME AS OF o.ts ON o.k = r.k",
            )
            .await
            .unwrap();
        let Some(StatementResult::Rows(rows)) = results.pop() else {
            panic!("EXPLAIN gave no rows")
        };
        let batches: Vec<RecordBatch> = rows.stream.try_collect().await.unwrap();
        let text: String = batches
            .iter()
            .flat_map(|b| {
                let c = b.column(b.num_columns() - 1);
                (0..b.num_rows())
                    .map(|i| array_value_to_string(c, i).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            text.contains("TemporalJoin(joinType=[LeftOuterJoin], where=[o.k = r.k]"),
            "{text}"
        );
        assert!(
            text.contains(
                "leftTimeAttribute=[o.ts], rightTimeAttribute=[r.ts], changelogMode=[I])"
            ),
            "{text}"
        );
    }
}
