//! `SESSION` window TVF in streaming mode: the `SessionWindow` operator sits between the
//! (append-only, watermarked) input and whatever consumes the window rows. It buffers rows per
//! partition key; when the watermark passes a session's end (last row time + gap - 1ms), no later
//! row can merge into it, so its rows are emitted with `window_start`, `window_end`,
//! `window_time` computed by the batch kernel [`assign_sessions`] (the streaming result equals the
//! batch one). Rows that arrive after the watermark and would only fall into a closed session are
//! late: dropped and counted.
//!
//! Checkpoints (see [`super::codec`]): `<uid>.sessions` holds each key's buffered rows with their
//! times, `<uid>.operator` the watermark.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};

use super::codec::{self, check_rows, schema_types};
use crate::error::{Error, Result};
use crate::functions::window::{WindowKind, assign_sessions, millis};
use crate::planner::window_tvf::WindowTvfNode;
use crate::stream::changes::{ChangelogMode, Changes};
use crate::stream::checkpoint::StateSnapshot;
use crate::stream::lower::{Lowered, Lowering, Times};
use crate::stream::operator::{Operator, OperatorContext, Output};
use crate::stream::state::{KeyEncoder, KeyedState};

pub fn lower(
    l: &mut Lowering,
    tvf: &WindowTvfNode,
    input: Lowered,
    times: Times,
) -> Result<Lowered> {
    let WindowKind::Session { gap } = tvf.kind else {
        return Err(Error::internal("session lowering of a non-SESSION window"));
    };
    if times.window.is_some_and(|w| w.proctime) {
        return Err(Error::not_supported(
            "SESSION windows over a processing-time attribute are not supported yet",
        ));
    }
    let time_index = tvf.time_index()?;
    let keys = tvf.key_indices()?;
    let input_schema = Arc::new(tvf.input.schema().as_arrow().clone());
    let schema = Arc::new(
        datafusion::logical_expr::UserDefinedLogicalNodeCore::schema(tvf)
            .as_arrow()
            .clone(),
    );
    let parallelism = l.keyed_parallelism(&keys);
    let edge = l.keyed_edge(&input, keys.clone(), parallelism);
    let key_names: Vec<String> = keys
        .iter()
        .map(|&i| input_schema.field(i).name().clone())
        .collect();
    let detail = format!(
        "partitionBy=[{}], gap=[{} ms], time_col=[{}]",
        key_names.join(", "),
        gap,
        tvf.time_column.name
    );
    let op_schema = Arc::clone(&schema);
    let id = l.add_operator(
        "SessionWindow",
        detail,
        schema,
        ChangelogMode::InsertOnly,
        parallelism,
        vec![edge],
        Box::new(move |ctx| {
            Ok(Box::new(SessionWindow::new(
                ctx.clone(),
                Arc::clone(&input_schema),
                Arc::clone(&op_schema),
                time_index,
                keys.clone(),
                gap,
            )?))
        }),
    );
    Ok(Lowered {
        id,
        mode: ChangelogMode::InsertOnly,
        times,
        bounded: input.bounded,
        parallelism,
    })
}

/// The buffered rows of one partition key (row format of the input), with their times.
#[derive(Default)]
struct Pending {
    rows: Vec<(i64, OwnedRow)>,
}

/// Buffers rows per key until the watermark closes their session.
pub struct SessionWindow {
    ctx: OperatorContext,
    input_schema: SchemaRef,
    schema: SchemaRef,
    time_index: usize,
    keys: Vec<usize>,
    key_types: Vec<DataType>,
    encoder: KeyEncoder,
    /// Whole input rows to and from the compact row format of the state.
    row_format: RowConverter,
    gap: i64,
    watermark: i64,
    pending: KeyedState<Pending>,
}

impl SessionWindow {
    pub fn new(
        ctx: OperatorContext,
        input_schema: SchemaRef,
        schema: SchemaRef,
        time_index: usize,
        keys: Vec<usize>,
        gap: i64,
    ) -> Result<SessionWindow> {
        let types: Vec<_> = keys
            .iter()
            .map(|&i| input_schema.field(i).data_type().clone())
            .collect();
        let pending = KeyedState::new(ctx.state_id("sessions"), None);
        let row_format = RowConverter::new(
            input_schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(SessionWindow {
            ctx,
            input_schema,
            schema,
            time_index,
            keys,
            encoder: KeyEncoder::new(&types)?,
            key_types: types,
            row_format,
            gap,
            watermark: i64::MIN,
            pending,
        })
    }

    fn key_of(&self, batch: &RecordBatch) -> Result<Vec<OwnedRow>> {
        if self.keys.is_empty() {
            let empty = crate::stream::state::KeyEncoder::empty_key()?;
            return Ok(vec![empty; batch.num_rows()]);
        }
        let cols: Vec<ArrayRef> = self
            .keys
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let rows = self.encoder.encode(&cols)?;
        Ok(rows.iter().map(|r| r.owned()).collect())
    }
}

/// Splits a key's sorted times into sessions; returns `(first index, last index + 1, end)`.
fn sessions(times: &[i64], gap: i64) -> Vec<(usize, usize, i64)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < times.len() {
        let mut end = times[i] + gap;
        let mut j = i + 1;
        while j < times.len() && times[j] < end {
            end = end.max(times[j] + gap);
            j += 1;
        }
        out.push((i, j, end));
        i = j;
    }
    out
}

#[async_trait]
impl Operator for SessionWindow {
    async fn process(&mut self, _input: usize, changes: Changes, _out: &mut Output) -> Result<()> {
        if !changes.is_insert_only() {
            return Err(Error::not_supported(
                "SESSION window over a stream with updates (window TVFs take append-only input)",
            ));
        }
        let batch = &changes.data;
        let ts = millis(batch.column(self.time_index))?;
        let keys = self.key_of(batch)?;
        let converted = self.row_format.convert_columns(batch.columns())?;
        let mut late: Vec<usize> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if ts.is_null(i) {
                // The batch kernel leaves rows without a time out as well.
                continue;
            }
            let t = ts.value(i);
            if t + self.gap - 1 <= self.watermark {
                // Its own session is already closed: it survives only by merging into an open
                // session of its key (one within `gap` of a buffered row).
                let merges = self
                    .pending
                    .get(key)?
                    .is_some_and(|p| p.rows.iter().any(|(u, _)| (u - t).abs() < self.gap));
                if !merges {
                    late.push(i);
                    continue;
                }
            }
            let row = converted.row(i).owned();
            self.pending
                .get_or_insert_with(key, Pending::default)?
                .rows
                .push((t, row));
        }
        self.ctx.late_rows(&changes.data, &late, self.watermark)?;
        Ok(())
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let w = self.watermark;
        let mut closed: Vec<OwnedRow> = Vec::new();
        let keys: Vec<OwnedRow> = self.pending.iter().map(|(k, _)| k.clone()).collect();
        for key in keys {
            let gap = self.gap;
            let Some(p) = self.pending.get_mut(&key)? else {
                continue;
            };
            p.rows.sort_by_key(|(t, _)| *t);
            let times: Vec<i64> = p.rows.iter().map(|(t, _)| *t).collect();
            let sessions = sessions(&times, gap);
            let mut keep = Vec::new();
            let rows = std::mem::take(&mut p.rows);
            let mut rows = rows.into_iter();
            for (a, b, end) in sessions {
                let part: Vec<(i64, OwnedRow)> = rows.by_ref().take(b - a).collect();
                if end - 1 <= w {
                    closed.extend(part.into_iter().map(|(_, r)| r));
                } else {
                    keep.extend(part);
                }
            }
            if keep.is_empty() {
                self.pending.remove(&key)?;
            } else if let Some(p) = self.pending.get_mut(&key)? {
                p.rows = keep;
            }
        }
        if closed.is_empty() {
            return Ok(());
        }
        let columns = self
            .row_format
            .convert_rows(closed.iter().map(|r| r.row()))?;
        let rows = RecordBatch::try_new_with_options(
            Arc::clone(&self.input_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(closed.len())),
        )?;
        let data = assign_sessions(
            &[rows],
            &self.input_schema,
            self.time_index,
            &self.keys,
            self.gap,
            &self.schema,
        )?;
        out.emit(Changes::inserts(data));
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint: u64, snapshot: &mut StateSnapshot) -> Result<()> {
        let format = self.sessions_format();
        self.pending
            .snapshot_into(snapshot, &self.key_types, &format, |_, p, e| {
                e.len(p.rows.len());
                for (t, row) in &p.rows {
                    e.i64(*t);
                    e.row(row);
                }
                Ok(())
            })?;
        let watermark = self.watermark;
        codec::put_operator(
            snapshot,
            &self.ctx.state_id(codec::OPERATOR),
            SESSION_OPERATOR_FORMAT,
            |e| e.i64(watermark),
        )
    }

    fn restore(&mut self, snapshot: &StateSnapshot) -> Result<()> {
        let format = self.sessions_format();
        let parser = self.row_format.parser();
        codec::restore_keyed(
            &mut self.pending,
            snapshot,
            self.encoder.converter(),
            &self.key_types,
            &format,
            |d| {
                let n = d.len()?;
                let mut rows = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = d.i64()?;
                    rows.push((t, d.row(&parser)?));
                }
                Ok(Pending { rows })
            },
        )?;
        let checked = check_rows(
            &self.row_format,
            self.pending
                .iter()
                .flat_map(|(_, p)| p.rows.iter().map(|(_, r)| r)),
            "a session window's row",
        );
        if let Err(e) = checked {
            self.pending.clear();
            return Err(e);
        }
        self.watermark = codec::get_operator(
            snapshot,
            &self.ctx.state_id(codec::OPERATOR),
            SESSION_OPERATOR_FORMAT,
            |d| d.i64(),
            i64::min,
        )?
        .unwrap_or(i64::MIN);
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.pending.iter().map(|(_, p)| p.rows.len()).sum()
    }
}

/// Value formats of [`SessionWindow`]'s checkpoint tables (the sessions' adds the row types).
const SESSIONS_FORMAT: &str = "weir.session.sessions/1 (time,row)*";
const SESSION_OPERATOR_FORMAT: &str = "weir.session.operator/1 watermark";

impl SessionWindow {
    fn sessions_format(&self) -> String {
        format!(
            "{SESSIONS_FORMAT} rows=[{}]",
            schema_types(&self.input_schema)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{
        DataType, Field, Schema, TimeUnit, TimestampMillisecondType,
    };
    use std::sync::atomic::Ordering;

    use crate::stream::ops::codec::testing::{Event, assert_restores, checkpoint, run};

    fn schemas() -> (SchemaRef, SchemaRef) {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let input = vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            Field::new("ts", ts.clone(), true),
        ];
        let mut out = input.clone();
        out.extend(crate::functions::window::window_fields(&ts));
        (Arc::new(Schema::new(input)), Arc::new(Schema::new(out)))
    }

    fn rows(data: &[(&str, i64, i64)]) -> Changes {
        Changes::inserts(
            RecordBatch::try_new(
                schemas().0,
                vec![
                    Arc::new(StringArray::from_iter_values(data.iter().map(|r| r.0))),
                    Arc::new(Int64Array::from_iter_values(data.iter().map(|r| r.1))),
                    Arc::new(TimestampMillisecondArray::from_iter_values(
                        data.iter().map(|r| r.2),
                    )),
                ],
            )
            .unwrap(),
        )
    }

    /// `(k, v, window_start, window_end)` of the emitted rows, sorted.
    fn emitted(out: &Output) -> Vec<(String, i64, i64, i64)> {
        let mut v = Vec::new();
        for c in &out.changes {
            let b = &c.data;
            for i in 0..b.num_rows() {
                v.push((
                    b.column(0).as_string::<i32>().value(i).to_string(),
                    b.column(1)
                        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                        .value(i),
                    b.column(3)
                        .as_primitive::<TimestampMillisecondType>()
                        .value(i),
                    b.column(4)
                        .as_primitive::<TimestampMillisecondType>()
                        .value(i),
                ));
            }
        }
        v.sort();
        v
    }

    #[tokio::test]
    async fn sessions_restore_from_a_checkpoint() {
        let events = vec![
            Event::Input(
                0,
                rows(&[("a", 1, 10), ("a", 2, 12), ("b", 3, 11), ("a", 3, 30)]),
            ),
            Event::Watermark(14),
            Event::Watermark(15),
            Event::Input(0, rows(&[("b", 5, 14), ("a", 6, 25)])),
            Event::Watermark(16),
            Event::Watermark(28),
            // Late (closed session a:[10, 17)), and one that merges into the open a:[25, 35).
            Event::Input(0, rows(&[("a", 9, 13), ("a", 4, 27)])),
            Event::Watermark(31),
            Event::End,
        ];
        let out = assert_restores(
            |ctx| {
                let (input, output) = schemas();
                Box::new(SessionWindow::new(ctx.clone(), input, output, 2, vec![0], 5).unwrap())
            },
            &events,
        )
        .await;
        assert_eq!(out.iter().flatten().count(), 7, "{out:?}");
        // Sessions keyed on another column type cannot take this state.
        let (input, output) = schemas();
        let mut op = SessionWindow::new(
            OperatorContext::for_tests(),
            Arc::clone(&input),
            Arc::clone(&output),
            2,
            vec![0],
            5,
        )
        .unwrap();
        run(&mut op, &events[..1]).await;
        let snapshot = checkpoint(&mut op);
        let mut other =
            SessionWindow::new(OperatorContext::for_tests(), input, output, 2, vec![1], 5).unwrap();
        let err = other.restore(&snapshot).unwrap_err();
        assert!(err.to_string().contains("incompatible state"), "{err}");
    }

    #[tokio::test]
    async fn sessions_close_on_watermark_and_late_rows_are_dropped() {
        let (input, output) = schemas();
        let ctx = OperatorContext::for_tests();
        let mut op = SessionWindow::new(ctx.clone(), input, output, 2, vec![0], 5).unwrap();
        let mut out = Output::default();
        op.process(
            0,
            rows(&[("a", 1, 10), ("a", 2, 12), ("b", 3, 11), ("a", 3, 30)]),
            &mut out,
        )
        .await
        .unwrap();
        // Session a:[10, 17) closes when the watermark reaches 16; b:[11, 16) at 15.
        op.on_watermark(14, &mut out).await.unwrap();
        assert!(out.changes.is_empty());
        op.on_watermark(15, &mut out).await.unwrap();
        assert_eq!(emitted(&out), vec![("b".into(), 3, 11, 16)]);
        let mut out = Output::default();
        op.on_watermark(16, &mut out).await.unwrap();
        assert_eq!(
            emitted(&out),
            vec![("a".into(), 1, 10, 17), ("a".into(), 2, 10, 17)]
        );
        // ts 13 would fall into the closed session a:[10, 17): late. ts 27 <= watermark 28 but
        // merges into the open session a:[30, 35): kept, and extends it to [27, 35).
        let mut out = Output::default();
        op.on_watermark(28, &mut out).await.unwrap();
        op.process(0, rows(&[("a", 9, 13), ("a", 4, 27)]), &mut out)
            .await
            .unwrap();
        assert_eq!(ctx.counters.late_rows_dropped.load(Ordering::Relaxed), 1);
        op.on_watermark(i64::MAX, &mut out).await.unwrap();
        assert_eq!(
            emitted(&out),
            vec![("a".into(), 3, 27, 35), ("a".into(), 4, 27, 35)]
        );
        assert_eq!(op.state_rows(), 0);
    }
}
