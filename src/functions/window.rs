//! Window assignment: the meaning of Flink's window table-valued functions, row by row.
//!
//! `TUMBLE`, `HOP` and `CUMULATE` assign each row to one or more windows from its time attribute
//! alone, so a batch is mapped to an output batch that repeats each input row once per window and
//! appends `window_start`, `window_end` and `window_time` (= `window_end` - 1 ms, Flink's
//! convention). `SESSION` windows depend on neighbouring rows of the same key, so
//! [`assign_sessions`] takes all rows of a bounded input at once.
//!
//! Times are handled in milliseconds since the epoch (Flink windows have millisecond precision);
//! rows whose time attribute is NULL belong to no window and are dropped, as in Flink.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use datafusion::arrow::row::{RowConverter, SortField};

use crate::error::{Error, Result};

/// The window table-valued functions. Durations are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindowKind {
    /// `TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])`.
    Tumble { size: i64, offset: i64 },
    /// `HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])`.
    Hop { slide: i64, size: i64, offset: i64 },
    /// `CUMULATE(TABLE t, DESCRIPTOR(ts), step, size [, offset])`.
    Cumulate { step: i64, size: i64, offset: i64 },
    /// `SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), gap)`.
    Session { gap: i64 },
}

impl WindowKind {
    /// The function name, as written in SQL.
    pub fn name(&self) -> &'static str {
        match self {
            WindowKind::Tumble { .. } => "TUMBLE",
            WindowKind::Hop { .. } => "HOP",
            WindowKind::Cumulate { .. } => "CUMULATE",
            WindowKind::Session { .. } => "SESSION",
        }
    }

    /// Checks the sizes Flink checks: positive, and size a multiple of slide/step.
    pub fn validate(&self) -> Result<()> {
        let positive = |what: &str, v: i64| {
            if v <= 0 {
                Err(Error::invalid(format!(
                    "{} window {what} must be positive, got {v} ms",
                    self.name()
                )))
            } else {
                Ok(())
            }
        };
        match *self {
            WindowKind::Tumble { size, .. } => positive("size", size),
            WindowKind::Hop { slide, size, .. } => {
                positive("slide", slide)?;
                positive("size", size)?;
                self.check_multiple(size, "slide", slide)
            }
            WindowKind::Cumulate { step, size, .. } => {
                positive("step", step)?;
                positive("size", size)?;
                self.check_multiple(size, "step", step)
            }
            WindowKind::Session { gap } => positive("gap", gap),
        }
    }

    fn check_multiple(&self, size: i64, what: &str, unit: i64) -> Result<()> {
        if size % unit != 0 {
            return Err(Error::invalid(format!(
                "{} window size ({size} ms) must be an integral multiple of the {what} ({unit} ms)",
                self.name()
            )));
        }
        // Each row is copied into every window it belongs to.
        if size / unit > MAX_WINDOWS_PER_ROW {
            return Err(Error::invalid(format!(
                "{} window size ({size} ms) / {what} ({unit} ms) puts each row in {} windows; at \
                 most {MAX_WINDOWS_PER_ROW} are supported yet (use a larger {what})",
                self.name(),
                size / unit
            )));
        }
        Ok(())
    }

    /// The windows `[start, end)` (in ms) a row with time `ts` (ms) belongs to.
    pub fn windows_of(&self, ts: i64, out: &mut Vec<(i64, i64)>) {
        match *self {
            WindowKind::Tumble { size, offset } => {
                let start = window_start(ts, offset, size);
                out.push((start, start + size));
            }
            WindowKind::Hop {
                slide,
                size,
                offset,
            } => {
                let last = window_start(ts, offset, slide);
                let mut start = last;
                while start > ts - size {
                    out.push((start, start + size));
                    start -= slide;
                }
                out.reverse();
            }
            WindowKind::Cumulate { step, size, offset } => {
                let start = window_start(ts, offset, size);
                let mut end = window_start(ts, offset, step) + step;
                while end <= start + size {
                    out.push((start, end));
                    end += step;
                }
            }
            WindowKind::Session { .. } => {}
        }
    }
}

/// The most windows one row may belong to (HOP: size / slide; CUMULATE: size / step). Rows are
/// copied into each of their windows, so a 1 ms slide over a day (86.4 million copies of every
/// row) is refused rather than run out of memory.
pub const MAX_WINDOWS_PER_ROW: i64 = 100_000;

/// The start of the window of length `size` (aligned at `offset`) that holds `ts`.
pub fn window_start(ts: i64, offset: i64, size: i64) -> i64 {
    ts - (ts - offset).rem_euclid(size)
}

/// The three columns the window functions append, typed like the time attribute's time zone.
pub fn window_fields(time_type: &DataType) -> Vec<Field> {
    let tz = match time_type {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let ty = DataType::Timestamp(TimeUnit::Millisecond, tz);
    vec![
        Field::new("window_start", ty.clone(), false),
        Field::new("window_end", ty.clone(), false),
        Field::new("window_time", ty, false),
    ]
}

/// Checks that a column can be a window's time attribute.
pub fn check_time_type(column: &str, data_type: &DataType) -> Result<()> {
    match data_type {
        DataType::Timestamp(_, _) => Ok(()),
        other => Err(Error::invalid(format!(
            "the window time attribute `{column}` must be of type TIMESTAMP or TIMESTAMP_LTZ, but is {other}"
        ))),
    }
}

/// The time column as milliseconds since the epoch.
pub fn millis(column: &ArrayRef) -> Result<TimestampMillisecondArray> {
    let tz = match column.data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        other => {
            return Err(Error::internal(format!(
                "window time column has type {other}"
            )));
        }
    };
    let ms = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, tz))?;
    Ok(ms
        .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>()
        .clone())
}

/// Builds the output batch from chosen input rows and their windows.
fn emit(
    input: &RecordBatch,
    out_schema: &SchemaRef,
    rows: Vec<u32>,
    windows: Vec<(i64, i64)>,
) -> Result<RecordBatch> {
    let indices = UInt32Array::from(rows);
    let mut columns: Vec<ArrayRef> = input
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), &indices, None))
        .collect::<std::result::Result<_, _>>()?;
    let n = input.num_columns();
    let tz = match out_schema.field(n).data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let starts = TimestampMillisecondArray::from_iter_values(windows.iter().map(|w| w.0))
        .with_timezone_opt(tz.clone());
    let ends = TimestampMillisecondArray::from_iter_values(windows.iter().map(|w| w.1))
        .with_timezone_opt(tz.clone());
    let times = TimestampMillisecondArray::from_iter_values(windows.iter().map(|w| w.1 - 1))
        .with_timezone_opt(tz);
    columns.push(Arc::new(starts));
    columns.push(Arc::new(ends));
    columns.push(Arc::new(times));
    Ok(RecordBatch::try_new(Arc::clone(out_schema), columns)?)
}

/// Assigns `TUMBLE`/`HOP`/`CUMULATE` windows to every row of `batch`.
pub fn assign_windows(
    batch: &RecordBatch,
    time_index: usize,
    kind: &WindowKind,
    out_schema: &SchemaRef,
) -> Result<RecordBatch> {
    let ts = millis(batch.column(time_index))?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut windows = Vec::with_capacity(batch.num_rows());
    let mut scratch = Vec::new();
    for i in 0..batch.num_rows() {
        if ts.is_null(i) {
            continue;
        }
        scratch.clear();
        kind.windows_of(ts.value(i), &mut scratch);
        for w in &scratch {
            rows.push(i as u32);
            windows.push(*w);
        }
    }
    emit(batch, out_schema, rows, windows)
}

/// Assigns `SESSION` windows to all rows of a bounded input: rows of the same key whose times
/// are less than `gap` apart (after sorting) share a session `[first, last + gap)`.
pub fn assign_sessions(
    batches: &[RecordBatch],
    input_schema: &SchemaRef,
    time_index: usize,
    key_indices: &[usize],
    gap: i64,
    out_schema: &SchemaRef,
) -> Result<RecordBatch> {
    let all = concat_batches(input_schema, batches)?;
    let ts = millis(all.column(time_index))?;
    let keys = if key_indices.is_empty() {
        None
    } else {
        let fields = key_indices
            .iter()
            .map(|&i| SortField::new(all.schema().field(i).data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields)?;
        let cols: Vec<ArrayRef> = key_indices
            .iter()
            .map(|&i| Arc::clone(all.column(i)))
            .collect();
        Some(converter.convert_columns(&cols)?)
    };
    let mut order: Vec<u32> = (0..all.num_rows() as u32)
        .filter(|&i| !ts.is_null(i as usize))
        .collect();
    order.sort_by(|&a, &b| {
        let key_order = match &keys {
            Some(k) => k.row(a as usize).cmp(&k.row(b as usize)),
            None => std::cmp::Ordering::Equal,
        };
        key_order.then(ts.value(a as usize).cmp(&ts.value(b as usize)))
    });
    let mut windows = vec![(0i64, 0i64); order.len()];
    let mut group_start = 0;
    while group_start < order.len() {
        // One session: extend while the next row (same key) starts before the session's end.
        let first = order[group_start] as usize;
        let mut end = ts.value(first) + gap;
        let mut j = group_start + 1;
        while j < order.len() {
            let row = order[j] as usize;
            let same_key = keys.as_ref().is_none_or(|k| k.row(row) == k.row(first));
            if !same_key || ts.value(row) >= end {
                break;
            }
            end = end.max(ts.value(row) + gap);
            j += 1;
        }
        let start = ts.value(first);
        for w in windows.iter_mut().take(j).skip(group_start) {
            *w = (start, end);
        }
        group_start = j;
    }
    emit(&all, out_schema, order, windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wins(kind: WindowKind, ts: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        kind.windows_of(ts, &mut out);
        out
    }

    #[test]
    fn tumble_hop_cumulate_assign_flink_windows() {
        assert_eq!(
            wins(
                WindowKind::Tumble {
                    size: 10,
                    offset: 0
                },
                23
            ),
            vec![(20, 30)]
        );
        assert_eq!(
            wins(
                WindowKind::Tumble {
                    size: 10,
                    offset: 0
                },
                -3
            ),
            vec![(-10, 0)]
        );
        assert_eq!(
            wins(
                WindowKind::Tumble {
                    size: 10,
                    offset: 2
                },
                23
            ),
            vec![(22, 32)]
        );
        assert_eq!(
            wins(
                WindowKind::Hop {
                    slide: 5,
                    size: 10,
                    offset: 0
                },
                23
            ),
            vec![(15, 25), (20, 30)]
        );
        assert_eq!(
            wins(
                WindowKind::Hop {
                    slide: 5,
                    size: 15,
                    offset: 0
                },
                20
            ),
            vec![(10, 25), (15, 30), (20, 35)]
        );
        assert_eq!(
            wins(
                WindowKind::Cumulate {
                    step: 2,
                    size: 6,
                    offset: 0
                },
                13
            ),
            vec![(12, 14), (12, 16), (12, 18)]
        );
        assert_eq!(
            wins(
                WindowKind::Cumulate {
                    step: 2,
                    size: 6,
                    offset: 0
                },
                17
            ),
            vec![(12, 18)]
        );
    }

    #[test]
    fn sizes_are_validated() {
        assert!(
            WindowKind::Hop {
                slide: 3,
                size: 10,
                offset: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            WindowKind::Tumble { size: 0, offset: 0 }
                .validate()
                .is_err()
        );
        assert!(WindowKind::Session { gap: 5 }.validate().is_ok());
        // A one-second slide over a day: 86,400 windows a row, allowed; a millisecond slide
        // (86.4 million) is refused with the count.
        let day = 86_400_000;
        assert!(
            WindowKind::Hop {
                slide: 1_000,
                size: day,
                offset: 0
            }
            .validate()
            .is_ok()
        );
        let err = WindowKind::Hop {
            slide: 1,
            size: day,
            offset: 0,
        }
        .validate()
        .unwrap_err();
        assert!(err.message.contains("86400000 windows"), "{err}");
        assert!(
            WindowKind::Cumulate {
                step: 1,
                size: day,
                offset: 0
            }
            .validate()
            .is_err()
        );
    }
}
