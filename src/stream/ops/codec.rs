//! Checkpoint encoding shared by the stateful streaming operators (`aggregate`, `join_op`,
//! `over_op`, `session`, `temporal_join`, `watermark`). It sits between an operator's in-memory
//! state and the tables of a [`StateSnapshot`] (format in [`crate::stream::checkpoint::snapshot`]):
//! on a barrier, [`crate::stream::operator::Operator::snapshot`] turns the state into tables with
//! these helpers; on restore, before any input arrives, they turn the tables back into state.
//!
//! Every stateful operator writes
//!
//! - one keyed table per [`KeyedState`], named by its state id, whose value bytes are written
//!   with [`Enc`] under a value format naming the layout, its version and the types it holds
//!   (see [`types`]), so restoring into a query with other key or value types fails with an
//!   "incompatible state" error instead of misreading bytes; and
//! - one row of operator-level values (watermark, counters, flags) in the table `<uid>.operator`
//!   ([`put_operator`] / [`get_operator`]).
//!
//! Rows (Arrow's row format) read back are checked with [`check_rows`] / [`check_keys`]: decoded
//! and encoded again, so bytes that are not a row of the expected types give a "corrupt
//! checkpoint state" error (`External`), never a panic or a row that compares wrongly.

use std::panic::AssertUnwindSafe;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::row::{OwnedRow, Row, RowConverter};

use crate::error::Result;
pub use crate::stream::checkpoint::snapshot::{Dec, Enc, corrupt};
use crate::stream::checkpoint::snapshot::{KeyedTableBuilder, StateSnapshot, keyed_entries};
use crate::stream::state::{KeyEncoder, KeyedState};

/// The name of the operator-level table (`<uid>.operator`, see
/// [`crate::stream::operator::OperatorContext::state_id`]).
pub const OPERATOR: &str = "operator";

/// Types as they appear in value formats: `DataType` debug strings joined by `,`.
pub fn types<'a>(types: impl IntoIterator<Item = &'a DataType>) -> String {
    types
        .into_iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The column types of `schema`, as [`types`] writes them.
pub fn schema_types(schema: &Schema) -> String {
    types(schema.fields().iter().map(|f| f.data_type()))
}

/// Writes the operator-level values (one row, written by `write`) as table `id`, under value
/// format `format`.
///
/// # Errors
/// Arrow errors building the table.
pub fn put_operator(
    snapshot: &mut StateSnapshot,
    id: &str,
    format: &str,
    write: impl FnOnce(&mut Enc),
) -> Result<()> {
    let mut b = KeyedTableBuilder::new(&[], format);
    b.append(&[], 0, |e| {
        write(e);
        Ok(())
    })?;
    snapshot.put(id, b.finish()?);
    Ok(())
}

/// Reads what [`put_operator`] wrote; `None` when the snapshot has no table `id`. A snapshot
/// rebuilt for another parallelism (see [`crate::stream::checkpoint::rescale`]) holds one row
/// per old instance: `merge` combines their values (e.g. the minimum of watermarks).
///
/// # Errors
/// `Invalid` ("incompatible state") for another value format; `External` for corrupt state
/// (including bytes `read` leaves unread).
pub fn get_operator<T>(
    snapshot: &StateSnapshot,
    id: &str,
    format: &str,
    read: impl Fn(&mut Dec) -> Result<T>,
    merge: impl Fn(T, T) -> T,
) -> Result<Option<T>> {
    let Some(table) = snapshot.get(id) else {
        return Ok(None);
    };
    let mut value: Option<T> = None;
    for (_, _, bytes) in keyed_entries(table, id, &[], format)? {
        let mut d = Dec::new(bytes);
        let v = read(&mut d)?;
        d.finish()?;
        value = Some(match value {
            None => v,
            Some(prev) => merge(prev, v),
        });
    }
    value
        .map(Some)
        .ok_or_else(|| corrupt(format!("operator state `{id}` has no row")))
}

/// Checks that `rows` (parsed with `converter`'s parser from snapshot bytes) are rows of
/// `converter`'s types, exactly as `converter` writes them, and returns them as columns (in
/// order). `what` names the rows in the error.
///
/// # Errors
/// `External` ("corrupt checkpoint state") when they are not.
pub fn check_rows<'a>(
    converter: &RowConverter,
    rows: impl IntoIterator<Item = &'a OwnedRow>,
    what: &str,
) -> Result<Vec<ArrayRef>> {
    let rows: Vec<Row<'a>> = rows.into_iter().map(|r| r.row()).collect();
    // Decoding bytes that are not a row may panic inside arrow-row (it trusts its input).
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
        converter.convert_rows(rows.iter().copied())
    }));
    let columns = match decoded {
        Ok(Ok(columns)) => columns,
        Ok(Err(e)) => return Err(corrupt(format!("{what}: {e}"))),
        Err(_) => return Err(corrupt(format!("{what}: not a row of its types"))),
    };
    let again = converter.convert_columns(&columns)?;
    if again.num_rows() != rows.len() || rows.iter().enumerate().any(|(i, r)| again.row(i) != *r) {
        return Err(corrupt(format!("{what}: not a row of its types")));
    }
    Ok(columns)
}

/// Checks restored keys: rows of `converter` (the key columns' converter), or, without key
/// columns (`key_types` empty), the constant [`KeyEncoder::empty_key`].
///
/// # Errors
/// `External` ("corrupt checkpoint state") for a key that is neither.
pub fn check_keys<'a>(
    converter: &RowConverter,
    key_types: &[DataType],
    keys: impl IntoIterator<Item = &'a OwnedRow>,
    id: &str,
) -> Result<()> {
    if key_types.is_empty() {
        let empty = KeyEncoder::empty_key()?;
        if keys.into_iter().any(|k| *k != empty) {
            return Err(corrupt(format!("state `{id}`: a key of a keyless table")));
        }
        return Ok(());
    }
    check_rows(converter, keys, &format!("a key of state `{id}`")).map(|_| ())
}

/// Replaces `state` with its table (named by its id) in `snapshot`, or empties it when the
/// snapshot has none. Keys are parsed with `key_converter`'s parser and checked
/// ([`check_keys`]); `value` decodes each value. On error the state is left empty.
///
/// # Errors
/// `Invalid` ("incompatible state") for other key types or another value format; `External`
/// for corrupt state.
pub fn restore_keyed<V>(
    state: &mut KeyedState<V>,
    snapshot: &StateSnapshot,
    key_converter: &RowConverter,
    key_types: &[DataType],
    format: &str,
    value: impl FnMut(&mut Dec) -> Result<V>,
) -> Result<()> {
    let id = state.id().to_string();
    let Some(table) = snapshot.get(&id) else {
        state.clear();
        return Ok(());
    };
    let parser = key_converter.parser();
    let restored = state
        .restore(table, key_types, format, |b| parser.parse(b).owned(), value)
        .and_then(|()| check_keys(key_converter, key_types, state.iter().map(|(k, _)| k), &id));
    if restored.is_err() {
        state.clear();
    }
    restored
}

/// For operator tests: checkpoint an operator partway through its input, restore the state
/// into a fresh instance, and compare with an uninterrupted run.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::Ordering;

    use datafusion::arrow::array::Array;
    use datafusion::arrow::util::display::array_value_to_string;

    use crate::stream::changes::{Changes, WATERMARK_MAX};
    use crate::stream::checkpoint::StateSnapshot;
    use crate::stream::operator::{Operator, OperatorContext, Output};

    /// One call into an operator.
    #[derive(Clone)]
    pub enum Event {
        /// Changes on input `n`.
        Input(usize, Changes),
        Watermark(i64),
        /// `on_watermark(WATERMARK_MAX)` then `on_end`, as the runtime does.
        End,
    }

    /// What one call emitted: `+I a 1`-style lines (sorted: operators may emit the rows of
    /// different keys in any order), then the output watermark if it set one.
    pub fn render(out: &Output) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for c in &out.changes {
            for r in 0..c.num_rows() {
                let mut s = c.kind(r).short().to_string();
                for a in c.data.columns() {
                    s.push(' ');
                    s.push_str(&if a.is_null(r) {
                        "null".to_string()
                    } else {
                        array_value_to_string(a, r).unwrap_or_default()
                    });
                }
                lines.push(s);
            }
        }
        lines.sort();
        if let Some(w) = out.watermark {
            lines.push(format!("watermark {w}"));
        }
        lines
    }

    /// Runs `events` and gives what each emitted.
    pub async fn run(op: &mut dyn Operator, events: &[Event]) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        for e in events {
            let mut out = Output::default();
            match e {
                Event::Input(n, c) => op.process(*n, c.clone(), &mut out).await.unwrap(),
                Event::Watermark(w) => op.on_watermark(*w, &mut out).await.unwrap(),
                Event::End => {
                    op.on_watermark(WATERMARK_MAX, &mut out).await.unwrap();
                    op.on_end(&mut out).await.unwrap();
                }
            }
            all.push(render(&out));
        }
        all
    }

    /// `op`'s snapshot, through its encoded bytes.
    pub fn checkpoint(op: &mut dyn Operator) -> StateSnapshot {
        let mut s = StateSnapshot::new();
        op.snapshot(1, &mut s).unwrap();
        StateSnapshot::decode(&s.encode().unwrap()).unwrap()
    }

    fn late(ctx: &OperatorContext) -> u64 {
        ctx.counters.late_rows_dropped.load(Ordering::Relaxed)
    }

    /// For every cut of `events`: runs the events before the cut, checkpoints, restores into a
    /// fresh instance (from `make`), runs the rest there; the outputs of each event and the late
    /// rows dropped must equal an uninterrupted run's. Returns the uninterrupted output.
    pub async fn assert_restores(
        make: impl Fn(&OperatorContext) -> Box<dyn Operator>,
        events: &[Event],
    ) -> Vec<Vec<String>> {
        let ctx = OperatorContext::for_tests();
        let mut whole = make(&ctx);
        let expected = run(whole.as_mut(), events).await;
        let expected_late = late(&ctx);
        for cut in 0..=events.len() {
            let (before, after) = events.split_at(cut);
            let (ctx1, ctx2) = (OperatorContext::for_tests(), OperatorContext::for_tests());
            let mut first = make(&ctx1);
            let mut out = run(first.as_mut(), before).await;
            let snapshot = checkpoint(first.as_mut());
            drop(first);
            let mut second = make(&ctx2);
            second.restore(&snapshot).unwrap();
            assert_eq!(
                checkpoint(second.as_mut()).rows(),
                snapshot.rows(),
                "cut {cut}: state rows after restore"
            );
            out.extend(run(second.as_mut(), after).await);
            assert_eq!(out, expected, "cut {cut}");
            assert_eq!(
                late(&ctx1) + late(&ctx2),
                expected_late,
                "cut {cut}: late rows"
            );
        }
        expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::row::SortField;
    use std::sync::Arc;

    #[test]
    fn rows_are_checked_and_operator_values_round_trip() {
        let conv = RowConverter::new(vec![
            SortField::new(DataType::Utf8),
            SortField::new(DataType::Int64),
        ])
        .unwrap();
        let rows = conv
            .convert_columns(&[
                Arc::new(StringArray::from(vec![Some("ab"), None])) as ArrayRef,
                Arc::new(Int64Array::from(vec![1, -2])),
            ])
            .unwrap();
        let parser = conv.parser();
        let good: Vec<OwnedRow> = rows
            .iter()
            .map(|r| parser.parse(r.as_ref()).owned())
            .collect();
        let cols = check_rows(&conv, &good, "test").unwrap();
        assert_eq!(cols[1].len(), 2);
        // Truncated, extended and garbled rows are errors, not panics.
        let bytes = rows.row(0).as_ref().to_vec();
        let mut bad: Vec<Vec<u8>> = vec![
            bytes[..bytes.len() - 1].to_vec(),
            [bytes.clone(), vec![7]].concat(),
            vec![],
            vec![0xff; 3],
        ];
        let mut flipped = bytes.clone();
        flipped[1] ^= 0x80;
        bad.push(flipped);
        for b in bad {
            let row = parser.parse(&b).owned();
            let err = check_rows(&conv, [&row], "test").unwrap_err();
            assert!(
                err.to_string().contains("corrupt checkpoint state"),
                "{err}"
            );
        }

        let mut s = StateSnapshot::new();
        put_operator(&mut s, "op.operator", "f/1", |e| e.i64(-5)).unwrap();
        let s = StateSnapshot::decode(&s.encode().unwrap()).unwrap();
        assert_eq!(
            get_operator(&s, "op.operator", "f/1", |d| d.i64(), i64::min).unwrap(),
            Some(-5)
        );
        assert_eq!(
            get_operator(&s, "other.operator", "f/1", |d| d.i64(), i64::min).unwrap(),
            None
        );
        let err = get_operator(&s, "op.operator", "f/2", |d| d.i64(), i64::min).unwrap_err();
        assert!(err.to_string().contains("incompatible state"), "{err}");
        let err = get_operator(&s, "op.operator", "f/1", |d| d.u8(), u8::min).unwrap_err();
        assert!(
            err.to_string().contains("corrupt checkpoint state"),
            "{err}"
        );
        // Rows of several old instances (a rescaled restore) merge.
        let mut a = StateSnapshot::new();
        put_operator(&mut a, "op.operator", "f/1", |e| e.i64(7)).unwrap();
        let both = crate::stream::checkpoint::rescale::redistribute(
            "op",
            &[std::sync::Arc::new(a), std::sync::Arc::new(s)],
            1,
            128,
        )
        .unwrap();
        assert_eq!(
            get_operator(&both[0], "op.operator", "f/1", |d| d.i64(), i64::min).unwrap(),
            Some(-5)
        );
    }
}
