//! `GROUP BY` in streaming mode: the lowering of a DataFusion [`Aggregate`] into one of two
//! operators, which sit after a hash exchange on the group keys:
//!
//! - [`WindowAggregate`] when the group keys include the `window_start` and `window_end` of a
//!   window TVF: state per window and key; a window's rows are emitted (`+I`, append-only) once
//!   the watermark passes its end, and rows arriving for a window already emitted are late
//!   (dropped and counted). Processing-time windows fire on the wall clock.
//! - [`GroupAggregate`] otherwise: an updating aggregate over an insert-only or retracting input;
//!   after every batch it emits `+I` / `-U` `+U` / `-D` for each group that changed.
//!
//! The accumulators (retractable `COUNT`, `SUM`, `AVG`, `MIN`, `MAX`, `DISTINCT`, `FILTER`) are in
//! [`super::accumulators`].
//!
//! Checkpoints (see [`super::codec`]): `<uid>.groups` holds each group's row count, accumulators
//! and the values last emitted (so `-U` / `-D` retract exactly what was sent before the
//! restore), `<uid>.windows` each window's end and accumulators; `<uid>.operator` holds the
//! window aggregate's watermark and whether a global aggregate emitted anything yet.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable};
use datafusion::physical_expr::PhysicalExpr;

use super::accumulators::{Acc, AggKind, AggSpec, EvaluatedArg};
use super::codec::{self, Dec, Enc, check_rows};
use crate::error::{Error, Result};
use crate::functions::window::millis;
use crate::stream::changes::{ChangelogMode, Changes, RowKind, WATERMARK_MAX};
use crate::stream::checkpoint::StateSnapshot;
use crate::stream::lower::{Lowered, Lowering, Times, WindowCols, unalias};
use crate::stream::operator::{Operator, OperatorContext, Output};
use crate::stream::spill::StateCodec;
use crate::stream::state::{KeyEncoder, KeyedState};

/// Lowers `agg` over the already lowered `input`.
///
/// # Errors
/// `NotSupported` for grouping sets, aggregate functions other than `COUNT` / `SUM` / `AVG` /
/// `MIN` / `MAX`, ordered aggregates, and window aggregates over an updating input.
pub fn lower(l: &mut Lowering, agg: &Aggregate, input: Lowered) -> Result<Lowered> {
    let in_schema = agg.input.schema();
    if agg
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Err(Error::not_supported(
            "GROUPING SETS / ROLLUP / CUBE in a streaming query is not supported yet",
        ));
    }
    let out_schema: SchemaRef = Arc::new(agg.schema.as_arrow().clone());
    let ng = agg.group_expr.len();
    let mut group_exprs = Vec::with_capacity(ng);
    let mut group_sources = Vec::with_capacity(ng);
    for e in &agg.group_expr {
        group_exprs.push(l.physical_expr(e, in_schema)?);
        group_sources.push(match unalias(e) {
            Expr::Column(c) => in_schema.index_of_column(c).ok(),
            _ => None,
        });
    }
    let group_types: Vec<DataType> = (0..ng)
        .map(|i| out_schema.field(i).data_type().clone())
        .collect();

    let mut specs = Vec::with_capacity(agg.aggr_expr.len());
    let mut select = Vec::new();
    for i in 0..ng {
        select.push(out_schema.field(i).name().clone());
    }
    for (j, e) in agg.aggr_expr.iter().enumerate() {
        let output_type = out_schema.field(ng + j).data_type().clone();
        specs.push(plan_aggregate(l, e, in_schema, output_type)?);
        let shown = describe_aggregate(e);
        let name = out_schema.field(ng + j).name();
        // Aliases the planner generated (e.g. after type coercion) are names like `sum(t.v)`.
        select.push(if matches!(e, Expr::Alias(_)) && !name.contains('(') {
            format!("{shown} AS {name}")
        } else {
            shown
        });
    }
    let detail = format!(
        "groupBy=[{}], select=[{}]",
        (0..ng)
            .map(|i| out_schema.field(i).name().clone())
            .collect::<Vec<_>>()
            .join(", "),
        select.join(", ")
    );

    let keys: Vec<usize> = group_sources.iter().flatten().copied().collect();
    let keys = if keys.len() == ng { keys } else { Vec::new() };
    let parallelism = l.keyed_parallelism(&keys);
    let edge = l.keyed_edge(&input, keys, parallelism);
    let core = Arc::new(CoreSpec {
        group_exprs,
        group_types,
        specs,
        schema: Arc::clone(&out_schema),
    });

    let window = input.times.window.and_then(|w| {
        let start = group_sources.iter().position(|s| *s == Some(w.start))?;
        let end = group_sources.iter().position(|s| *s == Some(w.end))?;
        Some((w, start, end))
    });
    if let Some((w, start, end)) = window {
        if !input.mode.is_insert_only() {
            return Err(Error::not_supported(
                "a window aggregate over an updating input is not supported yet",
            ));
        }
        let proctime = w.proctime;
        let id = l.add_operator(
            "WindowAggregate",
            detail,
            Arc::clone(&out_schema),
            ChangelogMode::InsertOnly,
            parallelism,
            vec![edge],
            Box::new(move |ctx| {
                Ok(Box::new(WindowAggregate::new(
                    Arc::clone(&core),
                    end,
                    proctime,
                    ctx.clone(),
                )?))
            }),
        );
        // Output time attributes: the window bounds kept as group keys, window_end and any
        // grouped time attribute (window_time).
        let mut time_cols = vec![end];
        for (i, s) in group_sources.iter().enumerate() {
            if let Some(s) = s
                && i != start
                && i != end
                && (input.times.rowtime.contains(s) || input.times.proctime.contains(s))
            {
                time_cols.push(i);
            }
        }
        let mut times = Times {
            window: Some(WindowCols {
                start,
                end,
                proctime,
            }),
            ..Times::default()
        };
        if proctime {
            times.proctime = time_cols;
        } else {
            times.rowtime = time_cols;
        }
        return Ok(Lowered {
            id,
            mode: ChangelogMode::InsertOnly,
            times,
            bounded: input.bounded,
            parallelism,
        });
    }

    let mode = ChangelogMode::Retract {
        key: if ng > 0 {
            Some((0..ng).collect())
        } else {
            None
        },
    };
    let id = l.add_operator(
        "GroupAggregate",
        detail,
        Arc::clone(&out_schema),
        mode.clone(),
        parallelism,
        vec![edge],
        Box::new(move |ctx| Ok(Box::new(GroupAggregate::new(Arc::clone(&core), ctx)?))),
    );
    Ok(Lowered {
        id,
        mode,
        times: Times::default(),
        bounded: input.bounded,
        parallelism,
    })
}

/// An aggregate call for plan explanations, as Flink shows it: `COUNT(*)`, `SUM(DISTINCT v)`,
/// `MAX(v) FILTER (WHERE ...)`.
fn describe_aggregate(expr: &Expr) -> String {
    let Expr::AggregateFunction(f) = unalias(expr) else {
        return expr.schema_name().to_string();
    };
    let name = f.func.name().to_uppercase();
    let p = &f.params;
    let arg_name = |a: &Expr| -> String {
        let mut a = a;
        while let Expr::Cast(c) = a {
            a = &c.expr;
        }
        match a {
            Expr::Column(c) => c.name.clone(),
            other => other.to_string(),
        }
    };
    let args = match p.args.as_slice() {
        [] => "*".to_string(),
        [Expr::Literal(v, _)] if name == "COUNT" && !v.is_null() && !p.distinct => "*".to_string(),
        args => args.iter().map(arg_name).collect::<Vec<_>>().join(", "),
    };
    let distinct = if p.distinct { "DISTINCT " } else { "" };
    let mut s = format!("{name}({distinct}{args})");
    if let Some(f) = &p.filter {
        s.push_str(&format!(" FILTER (WHERE {f})"));
    }
    s
}

/// One aggregate call of the logical plan as an [`AggSpec`].
fn plan_aggregate(
    l: &Lowering,
    expr: &Expr,
    schema: &datafusion::common::DFSchema,
    output_type: DataType,
) -> Result<AggSpec> {
    let Expr::AggregateFunction(f) = unalias(expr) else {
        return Err(Error::not_supported(format!(
            "aggregate expression {expr} in a streaming query is not supported yet"
        )));
    };
    let name = f.func.name();
    let Some(kind) = AggKind::from_name(name) else {
        return Err(Error::not_supported(format!(
            "aggregate function {} in a streaming query is not supported yet",
            name.to_uppercase()
        )));
    };
    let p = &f.params;
    if !p.order_by.is_empty() {
        return Err(Error::not_supported(format!(
            "ORDER BY inside {} in a streaming query is not supported yet",
            name.to_uppercase()
        )));
    }
    let arg = match p.args.as_slice() {
        [] if kind == AggKind::Count => None,
        // COUNT(*) is planned as COUNT(<non-null literal>): every row counts.
        [Expr::Literal(v, _)] if kind == AggKind::Count && !v.is_null() && !p.distinct => None,
        [a] => Some((l.physical_expr(a, schema)?, a.get_type(schema)?)),
        _ => {
            return Err(Error::not_supported(format!(
                "{} with {} arguments in a streaming query is not supported yet",
                name.to_uppercase(),
                p.args.len()
            )));
        }
    };
    let filter = match &p.filter {
        Some(f) => Some(l.physical_expr(f, schema)?),
        None => None,
    };
    AggSpec::new(kind, p.distinct, arg, filter, output_type)
}

/// What both aggregate operators share: the group key expressions, the aggregates and the output
/// schema (group keys first, then one column per aggregate).
pub struct CoreSpec {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    group_types: Vec<DataType>,
    specs: Vec<AggSpec>,
    schema: SchemaRef,
}

/// A batch evaluated for aggregation: each row's group key, the key columns, and each
/// aggregate's inputs.
struct Evaluated {
    keys: Vec<OwnedRow>,
    key_columns: Vec<ArrayRef>,
    args: Vec<EvaluatedArg>,
}

/// [`CoreSpec`] with an instance's key encoder.
struct Core {
    spec: Arc<CoreSpec>,
    encoder: KeyEncoder,
    /// The aggregates' values as rows of their output types (for checkpoints).
    values_rows: RowConverter,
}

impl Core {
    fn new(spec: Arc<CoreSpec>) -> Result<Core> {
        let encoder = KeyEncoder::new(&spec.group_types)?;
        let values_rows = RowConverter::new(
            spec.specs
                .iter()
                .map(|s| SortField::new(s.output_type.clone()))
                .collect(),
        )?;
        Ok(Core {
            spec,
            encoder,
            values_rows,
        })
    }

    /// The value format of a state table with layout `layout`: it and every accumulator's.
    fn state_format(&self, layout: &str) -> String {
        let accs: Vec<String> = self.spec.specs.iter().map(AggSpec::state_format).collect();
        format!("{layout} [{}]", accs.join(", "))
    }

    fn encode_accs(&self, accs: &[Acc], e: &mut Enc) -> Result<()> {
        if accs.len() != self.spec.specs.len() {
            return Err(Error::internal(
                "a group with the wrong number of accumulators",
            ));
        }
        for (spec, acc) in self.spec.specs.iter().zip(accs) {
            spec.encode_acc(acc, e);
        }
        Ok(())
    }

    fn decode_accs(&self, d: &mut Dec) -> Result<Vec<Acc>> {
        self.spec.specs.iter().map(|s| s.decode_acc(d)).collect()
    }

    /// Aggregate values (one `Vec` per group, typed as the output) as rows, in one conversion;
    /// `None` without aggregates (nothing to write).
    fn values_to_rows(&self, values: &[&Vec<ScalarValue>]) -> Result<Option<Rows>> {
        if self.spec.specs.is_empty() {
            return Ok(None);
        }
        let mut columns = Vec::with_capacity(self.spec.specs.len());
        for (j, spec) in self.spec.specs.iter().enumerate() {
            let t = &spec.output_type;
            let a = if values.is_empty() {
                datafusion::arrow::array::new_empty_array(t)
            } else {
                let column = values
                    .iter()
                    .map(|v| {
                        v.get(j)
                            .cloned()
                            .ok_or_else(|| Error::internal("emitted values of the wrong width"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                ScalarValue::iter_to_array(column)?
            };
            columns.push(if a.data_type() == t { a } else { cast(&a, t)? });
        }
        Ok(Some(self.values_rows.convert_columns(&columns)?))
    }

    /// Reads aggregate values written as a row by a snapshot (nothing without aggregates).
    fn decode_values(&self, d: &mut Dec) -> Result<Vec<ScalarValue>> {
        if self.spec.specs.is_empty() {
            return Ok(Vec::new());
        }
        let row = d.row(&self.values_rows.parser())?;
        let columns = check_rows(&self.values_rows, [&row], "emitted aggregate values")?;
        Ok(columns
            .iter()
            .map(|c| ScalarValue::try_from_array(c, 0))
            .collect::<datafusion::error::Result<Vec<_>>>()?)
    }

    fn new_accs(&self) -> Vec<Acc> {
        self.spec.specs.iter().map(AggSpec::new_acc).collect()
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<Evaluated> {
        let n = batch.num_rows();
        let mut key_columns = Vec::with_capacity(self.spec.group_exprs.len());
        for (e, t) in self.spec.group_exprs.iter().zip(&self.spec.group_types) {
            let a = e.evaluate(batch)?.into_array(n)?;
            key_columns.push(if a.data_type() == t { a } else { cast(&a, t)? });
        }
        let keys = if key_columns.is_empty() {
            vec![KeyEncoder::empty_key()?; n]
        } else {
            let rows = self.encoder.encode(&key_columns)?;
            rows.iter().map(|r| r.owned()).collect()
        };
        let args = self
            .spec
            .specs
            .iter()
            .map(|s| s.evaluate(batch))
            .collect::<Result<Vec<_>>>()?;
        Ok(Evaluated {
            keys,
            key_columns,
            args,
        })
    }

    fn update(&self, accs: &mut [Acc], ev: &Evaluated, row: usize, sign: i64) {
        for ((spec, acc), arg) in self.spec.specs.iter().zip(accs.iter_mut()).zip(&ev.args) {
            spec.update(acc, arg, row, sign);
        }
    }

    fn values(&self, accs: &[Acc]) -> Result<Vec<ScalarValue>> {
        self.spec
            .specs
            .iter()
            .zip(accs)
            .map(|(s, a)| s.value(a))
            .collect()
    }

    /// Output rows: `rows[i]` = (group key, aggregate values, kind).
    fn build(&self, rows: Vec<(OwnedRow, Vec<ScalarValue>, RowKind)>) -> Result<Changes> {
        let n = rows.len();
        let schema = &self.spec.schema;
        let ng = self.spec.group_types.len();
        let mut columns: Vec<ArrayRef> = if ng == 0 {
            Vec::new()
        } else {
            self.encoder.decode(rows.iter().map(|(k, _, _)| k))?
        };
        for j in 0..self.spec.specs.len() {
            let t = schema.field(ng + j).data_type();
            let values = rows.iter().map(|(_, v, _)| v[j].clone());
            let a = if n == 0 {
                datafusion::arrow::array::new_empty_array(t)
            } else {
                ScalarValue::iter_to_array(values)?
            };
            columns.push(if a.data_type() == t { a } else { cast(&a, t)? });
        }
        let data = RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        Changes::new(data, rows.into_iter().map(|(_, _, k)| k).collect())
    }
}

fn sign(kind: RowKind) -> i64 {
    if kind.is_addition() { 1 } else { -1 }
}

/// The state of one group of an updating aggregate.
struct GroupState {
    /// Input rows currently in the group (additions minus retractions).
    rows: i64,
    accs: Vec<Acc>,
    /// The aggregate values last emitted for the group.
    emitted: Option<Vec<ScalarValue>>,
}

/// A group's state as bytes: rows, accumulators, emitted values as a row (the value encoding of
/// the `groups` checkpoint table and of groups on disk).
struct GroupCodec {
    core: Core,
}

impl StateCodec<GroupState> for GroupCodec {
    fn encode(&self, _key: &OwnedRow, group: &GroupState, e: &mut Enc) -> Result<()> {
        e.i64(group.rows);
        self.core.encode_accs(&group.accs, e)?;
        e.bool(group.emitted.is_some());
        if let Some(values) = &group.emitted
            && let Some(rows) = self.core.values_to_rows(&[values])?
        {
            e.bytes(rows.row(0).as_ref());
        }
        Ok(())
    }

    fn decode(&self, d: &mut Dec) -> Result<GroupState> {
        decode_group(&self.core, d)
    }

    fn size(&self, group: &GroupState) -> usize {
        use crate::stream::spill::heap;
        let scalar = std::mem::size_of::<ScalarValue>();
        heap::vec::<Acc>(group.accs.capacity())
            + group.accs.iter().map(Acc::heap_size).sum::<usize>()
            + group.emitted.as_ref().map_or(0, |v| {
                heap::vec::<ScalarValue>(v.capacity())
                    + v.iter()
                        .map(|x| x.size().saturating_sub(scalar))
                        .sum::<usize>()
            })
    }
}

fn decode_group(core: &Core, d: &mut Dec) -> Result<GroupState> {
    let rows = d.i64()?;
    let accs = core.decode_accs(d)?;
    let emitted = if d.bool()? {
        Some(core.decode_values(d)?)
    } else {
        None
    };
    Ok(GroupState {
        rows,
        accs,
        emitted,
    })
}

/// The updating (unwindowed) `GROUP BY`.
pub struct GroupAggregate {
    core: Core,
    state: KeyedState<GroupState>,
    /// No `GROUP BY` columns: one group that exists even over no rows (as in batch).
    global: bool,
    emitted_any: bool,
    ttl: Option<Duration>,
    /// The id of the operator-level checkpoint table.
    operator_id: String,
}

/// Value formats of [`GroupAggregate`]'s checkpoint tables.
const GROUPS_FORMAT: &str = "weir.group-aggregate.groups/1 rows,accs,emitted";
const GROUP_OPERATOR_FORMAT: &str = "weir.group-aggregate.operator/1 emitted_any";

impl GroupAggregate {
    pub fn new(spec: Arc<CoreSpec>, ctx: &OperatorContext) -> Result<GroupAggregate> {
        let global = spec.group_types.is_empty();
        let ttl = ctx.settings.state_ttl;
        let core = Core::new(Arc::clone(&spec))?;
        let codec = Arc::new(GroupCodec {
            core: Core::new(spec)?,
        });
        let state = KeyedState::new(ctx.state_id("groups"), ttl).spilling(
            ctx.settings.disk.as_ref(),
            codec,
            core.encoder.converter(),
        )?;
        Ok(GroupAggregate {
            core,
            state,
            global,
            emitted_any: false,
            ttl,
            operator_id: ctx.state_id(codec::OPERATOR),
        })
    }
}

#[async_trait]
impl Operator for GroupAggregate {
    async fn process(&mut self, _input: usize, changes: Changes, out: &mut Output) -> Result<()> {
        let ev = self.core.evaluate(&changes.data)?;
        let mut touched = Vec::new();
        let mut seen = HashSet::new();
        for (i, key) in ev.keys.iter().enumerate() {
            let s = sign(changes.kind(i));
            let core = &self.core;
            let group = self.state.get_or_insert_with(key, || GroupState {
                rows: 0,
                accs: core.new_accs(),
                emitted: None,
            })?;
            group.rows += s;
            core.update(&mut group.accs, &ev, i, s);
            if seen.insert(key.clone()) {
                touched.push(key.clone());
            }
        }
        let mut rows = Vec::new();
        for key in touched {
            let Some(group) = self.state.get_mut(&key)? else {
                continue;
            };
            if group.rows <= 0 && !self.global {
                if let Some(old) = group.emitted.take() {
                    rows.push((key.clone(), old, RowKind::Delete));
                }
                self.state.remove(&key)?;
                continue;
            }
            let new = self.core.values(&group.accs)?;
            match group.emitted.take() {
                None => rows.push((key.clone(), new.clone(), RowKind::Insert)),
                Some(old) if old != new => {
                    rows.push((key.clone(), old, RowKind::UpdateBefore));
                    rows.push((key.clone(), new.clone(), RowKind::UpdateAfter));
                }
                Some(_) => {}
            }
            group.emitted = Some(new);
        }
        if !rows.is_empty() {
            self.emitted_any = true;
            out.emit(self.core.build(rows)?);
        }
        Ok(())
    }

    async fn on_tick(&mut self, now_ms: i64, _out: &mut Output) -> Result<()> {
        self.state.expire(now_ms)?;
        Ok(())
    }

    async fn on_end(&mut self, out: &mut Output) -> Result<()> {
        if self.global && !self.emitted_any {
            // Batch semantics: an aggregate without GROUP BY gives one row over no rows.
            let values = self.core.values(&self.core.new_accs())?;
            out.emit(
                self.core
                    .build(vec![(KeyEncoder::empty_key()?, values, RowKind::Insert)])?,
            );
            self.emitted_any = true;
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.ttl.map(|t| (t / 4).max(Duration::from_millis(100)))
    }

    fn snapshot(&mut self, _checkpoint: u64, snapshot: &mut StateSnapshot) -> Result<()> {
        let mode = self.state.begin_snapshot(snapshot.is_delta());
        let core = &self.core;
        // The emitted values of every group written as rows, converted at once; the table below
        // visits the groups in the same order.
        let order: Vec<(&OwnedRow, &GroupState)> = self.state.snapshot_entries(mode).collect();
        let emitted: Vec<&Vec<ScalarValue>> = order
            .iter()
            .filter_map(|(_, g)| g.emitted.as_ref())
            .collect();
        let emitted = core.values_to_rows(&emitted)?;
        let (mut at, mut next_emitted) = (0, 0);
        let format = core.state_format(GROUPS_FORMAT);
        self.state.write_snapshot(
            mode,
            snapshot,
            &core.spec.group_types,
            &format,
            |key, group, e| {
                if !order.get(at).is_some_and(|(k, _)| std::ptr::eq(*k, key)) {
                    return Err(Error::internal("group state changed during a snapshot"));
                }
                at += 1;
                e.i64(group.rows);
                core.encode_accs(&group.accs, e)?;
                e.bool(group.emitted.is_some());
                if group.emitted.is_some() {
                    if let Some(rows) = &emitted {
                        e.bytes(rows.row(next_emitted).as_ref());
                    }
                    next_emitted += 1;
                }
                Ok(())
            },
        )?;
        self.state.end_snapshot();
        let emitted_any = self.emitted_any;
        codec::put_operator(snapshot, &self.operator_id, GROUP_OPERATOR_FORMAT, |e| {
            e.bool(emitted_any)
        })
    }

    fn restore(&mut self, snapshot: &StateSnapshot) -> Result<()> {
        let core = &self.core;
        let format = core.state_format(GROUPS_FORMAT);
        codec::restore_keyed(
            &mut self.state,
            snapshot,
            core.encoder.converter(),
            &core.spec.group_types,
            &format,
            |d| decode_group(core, d),
        )?;
        self.emitted_any = codec::get_operator(
            snapshot,
            &self.operator_id,
            GROUP_OPERATOR_FORMAT,
            |d| d.bool(),
            |a, b| a || b,
        )?
        .unwrap_or(false);
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.state.len()
    }
}

/// The state of one window (and key) of a window aggregate.
struct WindowGroup {
    end_ms: i64,
    accs: Vec<Acc>,
}

/// `GROUP BY window_start, window_end, ...` over a window TVF: append-only, fires on watermarks
/// (or the wall clock for processing-time windows).
pub struct WindowAggregate {
    core: Core,
    state: KeyedState<WindowGroup>,
    /// Index of the `window_end` group key.
    end_key: usize,
    proctime: bool,
    watermark: i64,
    ctx: OperatorContext,
}

impl WindowAggregate {
    pub fn new(
        spec: Arc<CoreSpec>,
        end_key: usize,
        proctime: bool,
        ctx: OperatorContext,
    ) -> Result<WindowAggregate> {
        Ok(WindowAggregate {
            core: Core::new(spec)?,
            state: KeyedState::new(ctx.state_id("windows"), None),
            end_key,
            proctime,
            watermark: i64::MIN,
            ctx,
        })
    }

    /// Emits and forgets every window with `window_end - 1 <= time`.
    fn fire(&mut self, time: i64, out: &mut Output) -> Result<()> {
        let mut fired = self
            .state
            .drain_where(|_, g| g.end_ms.saturating_sub(1) <= time)?;
        if fired.is_empty() {
            return Ok(());
        }
        fired.sort_by(|a, b| a.1.end_ms.cmp(&b.1.end_ms).then_with(|| a.0.cmp(&b.0)));
        let mut rows = Vec::with_capacity(fired.len());
        for (key, group) in fired {
            let values = self.core.values(&group.accs)?;
            rows.push((key, values, RowKind::Insert));
        }
        out.emit(self.core.build(rows)?);
        Ok(())
    }
}

#[async_trait]
impl Operator for WindowAggregate {
    async fn process(&mut self, _input: usize, changes: Changes, _out: &mut Output) -> Result<()> {
        if !changes.is_insert_only() {
            return Err(Error::not_supported(
                "a window aggregate over an updating input is not supported yet",
            ));
        }
        let ev = self.core.evaluate(&changes.data)?;
        let end_col = ev
            .key_columns
            .get(self.end_key)
            .ok_or_else(|| Error::internal("window aggregate without its window_end key"))?;
        let ends = millis(end_col)?;
        let mut late: Vec<usize> = Vec::new();
        for (i, key) in ev.keys.iter().enumerate() {
            if ends.is_null(i) {
                continue;
            }
            let end = ends.value(i);
            if !self.proctime && end.saturating_sub(1) <= self.watermark {
                late.push(i);
                continue;
            }
            let core = &self.core;
            let group = self.state.get_or_insert_with(key, || WindowGroup {
                end_ms: end,
                accs: core.new_accs(),
            })?;
            core.update(&mut group.accs, &ev, i, 1);
        }
        self.ctx.late_rows(&changes.data, &late, self.watermark)?;
        Ok(())
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        if self.proctime && watermark != WATERMARK_MAX {
            return Ok(());
        }
        self.fire(watermark, out)
    }

    async fn on_tick(&mut self, now_ms: i64, out: &mut Output) -> Result<()> {
        if self.proctime {
            self.fire(now_ms, out)?;
        }
        Ok(())
    }

    async fn on_end(&mut self, out: &mut Output) -> Result<()> {
        self.fire(WATERMARK_MAX, out)
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.proctime.then(|| Duration::from_millis(100))
    }

    fn snapshot(&mut self, _checkpoint: u64, snapshot: &mut StateSnapshot) -> Result<()> {
        let core = &self.core;
        let format = core.state_format(WINDOWS_FORMAT);
        self.state
            .snapshot_into(snapshot, &core.spec.group_types, &format, |_, group, e| {
                e.i64(group.end_ms);
                core.encode_accs(&group.accs, e)
            })?;
        let watermark = self.watermark;
        codec::put_operator(
            snapshot,
            &self.ctx.state_id(codec::OPERATOR),
            WINDOW_OPERATOR_FORMAT,
            |e| e.i64(watermark),
        )
    }

    fn restore(&mut self, snapshot: &StateSnapshot) -> Result<()> {
        let core = &self.core;
        let format = core.state_format(WINDOWS_FORMAT);
        codec::restore_keyed(
            &mut self.state,
            snapshot,
            core.encoder.converter(),
            &core.spec.group_types,
            &format,
            |d| {
                Ok(WindowGroup {
                    end_ms: d.i64()?,
                    accs: core.decode_accs(d)?,
                })
            },
        )?;
        self.watermark = codec::get_operator(
            snapshot,
            &self.ctx.state_id(codec::OPERATOR),
            WINDOW_OPERATOR_FORMAT,
            |d| d.i64(),
            i64::min,
        )?
        .unwrap_or(i64::MIN);
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.state.len()
    }
}

/// Value formats of [`WindowAggregate`]'s checkpoint tables.
const WINDOWS_FORMAT: &str = "weir.window-aggregate.windows/1 end_ms,accs";
const WINDOW_OPERATOR_FORMAT: &str = "weir.window-aggregate.operator/1 watermark";

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
