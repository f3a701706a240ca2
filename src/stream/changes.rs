//! The changelog data model of the streaming side: a [`Changes`] batch is an Arrow
//! [`RecordBatch`] of rows plus one [`RowKind`] per row (`+I`, `-U`, `+U`, `-D`), and a
//! [`Message`] is what flows on every channel between operator instances: changes, watermarks,
//! idleness and the end of a bounded input.
//!
//! Also here: [`ChangelogMode`] (what kinds of change a stream may carry, derived by the
//! planner for every operator) and [`materialize`], which applies a changelog to an empty table
//! (the shell's table mode, the tests' streaming-equals-batch check).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int8Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};

use crate::error::{Error, Result};

/// The kind of one change, as in Flink's `RowKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert = 0,
    /// `-U`: the old content of an updated row (always followed by its `+U`).
    UpdateBefore = 1,
    /// `+U`: the new content of an updated row.
    UpdateAfter = 2,
    /// `-D`: a row removed.
    Delete = 3,
}

impl RowKind {
    pub fn from_i8(v: i8) -> RowKind {
        match v {
            1 => RowKind::UpdateBefore,
            2 => RowKind::UpdateAfter,
            3 => RowKind::Delete,
            _ => RowKind::Insert,
        }
    }

    /// `+I`, `-U`, `+U` or `-D`.
    pub fn short(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// True for `+I` and `+U` (the row is added to the materialized result).
    pub fn is_addition(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }

    /// The opposite sign: an addition becomes a retraction and the reverse.
    pub fn negate(self) -> RowKind {
        match self {
            RowKind::Insert => RowKind::Delete,
            RowKind::UpdateAfter => RowKind::UpdateBefore,
            RowKind::UpdateBefore => RowKind::UpdateAfter,
            RowKind::Delete => RowKind::Insert,
        }
    }
}

/// Rows with a row kind each. `kinds` is `None` when every row is `+I` (the common,
/// append-only case costs nothing).
#[derive(Debug, Clone)]
pub struct Changes {
    pub data: RecordBatch,
    kinds: Option<Int8Array>,
}

impl Changes {
    /// All rows are inserts.
    pub fn inserts(data: RecordBatch) -> Changes {
        Changes { data, kinds: None }
    }

    /// Rows with explicit kinds (`kinds.len()` must equal the row count).
    pub fn new(data: RecordBatch, kinds: Vec<RowKind>) -> Result<Changes> {
        if kinds.len() != data.num_rows() {
            return Err(Error::internal(format!(
                "changes: {} row kinds for {} rows",
                kinds.len(),
                data.num_rows()
            )));
        }
        if kinds.iter().all(|k| *k == RowKind::Insert) {
            return Ok(Changes::inserts(data));
        }
        let kinds = Int8Array::from_iter_values(kinds.into_iter().map(|k| k as i8));
        Ok(Changes {
            data,
            kinds: Some(kinds),
        })
    }

    pub fn num_rows(&self) -> usize {
        self.data.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.data.num_rows() == 0
    }

    pub fn schema(&self) -> SchemaRef {
        self.data.schema()
    }

    /// True when every row is `+I`.
    pub fn is_insert_only(&self) -> bool {
        self.kinds.is_none()
    }

    pub fn kind(&self, row: usize) -> RowKind {
        match &self.kinds {
            None => RowKind::Insert,
            Some(k) => RowKind::from_i8(k.value(row)),
        }
    }

    /// The kinds as an array (all zeros when insert-only).
    pub fn kinds_array(&self) -> Int8Array {
        match &self.kinds {
            Some(k) => k.clone(),
            None => Int8Array::from(vec![RowKind::Insert as i8; self.num_rows()]),
        }
    }

    /// The same rows with new columns (e.g. after a projection).
    pub fn with_data(&self, data: RecordBatch) -> Changes {
        Changes {
            data,
            kinds: self.kinds.clone(),
        }
    }

    /// The rows where `mask` is true (nulls count as false).
    pub fn filter(&self, mask: &BooleanArray) -> Result<Changes> {
        let mask = if mask.null_count() > 0 {
            datafusion::arrow::compute::prep_null_mask_filter(mask)
        } else {
            mask.clone()
        };
        let data = filter_record_batch(&self.data, &mask)?;
        let kinds = match &self.kinds {
            None => None,
            Some(k) => {
                let a = datafusion::arrow::compute::filter(k, &mask)?;
                Some(
                    a.as_any()
                        .downcast_ref::<Int8Array>()
                        .cloned()
                        .ok_or_else(|| Error::internal("filter changed the row kind type"))?,
                )
            }
        };
        Ok(Changes { data, kinds })
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &datafusion::arrow::array::UInt32Array) -> Result<Changes> {
        let columns = self
            .data
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let data = RecordBatch::try_new_with_options(
            self.data.schema(),
            columns,
            &datafusion::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(indices.len())),
        )?;
        let kinds = match &self.kinds {
            None => None,
            Some(k) => Some(
                take(k, indices, None)?
                    .as_any()
                    .downcast_ref::<Int8Array>()
                    .cloned()
                    .ok_or_else(|| Error::internal("take changed the row kind type"))?,
            ),
        };
        Ok(Changes { data, kinds })
    }

    /// Concatenates change batches of one schema.
    pub fn concat(schema: &SchemaRef, parts: &[Changes]) -> Result<Changes> {
        let data = concat_batches(schema, parts.iter().map(|c| &c.data))?;
        if parts.iter().all(|c| c.kinds.is_none()) {
            return Ok(Changes::inserts(data));
        }
        let mut kinds = Vec::with_capacity(data.num_rows());
        for part in parts {
            for row in 0..part.num_rows() {
                kinds.push(part.kind(row));
            }
        }
        Changes::new(data, kinds)
    }

    /// The batch with a leading `op` column (`+I`, `-U`, `+U`, `-D`), as shown to users.
    pub fn to_op_batch(&self) -> Result<RecordBatch> {
        let ops: StringArray = (0..self.num_rows())
            .map(|r| Some(self.kind(r).short()))
            .collect();
        let schema = op_schema(&self.data.schema());
        let mut columns: Vec<ArrayRef> = vec![Arc::new(ops)];
        columns.extend(self.data.columns().iter().cloned());
        Ok(RecordBatch::try_new_with_options(
            schema,
            columns,
            &datafusion::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(self.num_rows())),
        )?)
    }

    /// Reads a batch produced by [`Changes::to_op_batch`] back.
    pub fn from_op_batch(batch: &RecordBatch) -> Result<Changes> {
        let ops = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::internal("changelog batch without an `op` column"))?;
        let kinds = (0..ops.len())
            .map(|i| match ops.value(i) {
                "-U" => RowKind::UpdateBefore,
                "+U" => RowKind::UpdateAfter,
                "-D" => RowKind::Delete,
                _ => RowKind::Insert,
            })
            .collect();
        let schema = Arc::new(Schema::new(batch.schema().fields()[1..].to_vec()));
        let data = RecordBatch::try_new_with_options(
            schema,
            batch.columns()[1..].to_vec(),
            &datafusion::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(batch.num_rows())),
        )?;
        Changes::new(data, kinds)
    }
}

/// The name of the row-kind column in changelog results.
pub const OP_COLUMN: &str = "op";

/// `schema` with a leading non-null `op` string column.
pub fn op_schema(schema: &SchemaRef) -> SchemaRef {
    let mut fields = vec![Arc::new(Field::new(OP_COLUMN, DataType::Utf8, false))];
    fields.extend(schema.fields().iter().cloned());
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The name of the trailing `Int8` column with which a changelog source's batches carry their
/// row kinds (a `debezium-json` file scan in streaming mode): the source turns such batches
/// into [`Changes`] with [`Changes::from_kind_column`]. The column is recognized by its field
/// metadata ([`ROW_KIND_METADATA`]), which SQL cannot give a column, not by its name alone.
pub const ROW_KIND_COLUMN: &str = "__weir_row_kind";

/// The field metadata key that marks [`ROW_KIND_COLUMN`].
pub const ROW_KIND_METADATA: &str = "weir.row-kind";

/// The row kind column's field.
pub fn kind_field() -> Field {
    Field::new(ROW_KIND_COLUMN, DataType::Int8, false).with_metadata(HashMap::from([(
        ROW_KIND_METADATA.to_string(),
        "true".to_string(),
    )]))
}

/// Whether batches of `schema` carry row kinds in a trailing [`ROW_KIND_COLUMN`].
pub fn has_kind_column(schema: &Schema) -> bool {
    schema.fields().last().is_some_and(|f| {
        f.name() == ROW_KIND_COLUMN
            && f.data_type() == &DataType::Int8
            && f.metadata().contains_key(ROW_KIND_METADATA)
    })
}

/// `schema` without its trailing row kind column (unchanged when it has none).
pub fn without_kind_column(schema: &SchemaRef) -> SchemaRef {
    if !has_kind_column(schema) {
        return Arc::clone(schema);
    }
    let fields = &schema.fields()[..schema.fields().len() - 1];
    Arc::new(Schema::new_with_metadata(
        fields.to_vec(),
        schema.metadata().clone(),
    ))
}

impl Changes {
    /// The rows with their kinds in a trailing [`ROW_KIND_COLUMN`].
    pub fn with_kind_column(&self) -> Result<RecordBatch> {
        let mut fields: Vec<_> = self.data.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(kind_field()));
        let mut columns = self.data.columns().to_vec();
        columns.push(Arc::new(self.kinds_array()));
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &datafusion::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(self.num_rows())),
        )?)
    }

    /// Reads a batch made by [`Changes::with_kind_column`] back.
    ///
    /// # Errors
    /// `Internal` when the batch has no row kind column.
    pub fn from_kind_column(batch: &RecordBatch) -> Result<Changes> {
        let schema = batch.schema();
        if !has_kind_column(&schema) {
            return Err(Error::internal("changelog batch without a row kind column"));
        }
        let n = batch.num_columns() - 1;
        let kinds = batch
            .column(n)
            .as_any()
            .downcast_ref::<Int8Array>()
            .ok_or_else(|| Error::internal("row kind column is not Int8"))?;
        let kinds = (0..kinds.len())
            .map(|i| RowKind::from_i8(kinds.value(i)))
            .collect();
        let data = RecordBatch::try_new_with_options(
            without_kind_column(&schema),
            batch.columns()[..n].to_vec(),
            &datafusion::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(batch.num_rows())),
        )?;
        Changes::new(data, kinds)
    }
}

/// What flows on a channel between two operator instances.
#[derive(Debug, Clone)]
pub enum Message {
    Data(Changes),
    /// Event time (ms since the epoch, UTC): no row with a time attribute `<=` this will follow
    /// (rows that do are late).
    Watermark(i64),
    /// The sender has had no data for the idle timeout: leave it out of watermark merging until
    /// it sends data again.
    Idle,
    /// A bounded input is exhausted; nothing follows.
    End,
    /// Checkpoint barrier `id`: every change before it belongs to checkpoint `id`, every change
    /// after it to later ones (see `checkpoint`).
    Barrier(u64),
}

/// The watermark that closes everything (sent when a bounded input ends).
pub const WATERMARK_MAX: i64 = i64::MAX;

/// Which changes a stream may carry (Flink's `ChangelogMode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangelogMode {
    /// Only `+I`.
    InsertOnly,
    /// `+I`, `-U`, `+U`, `-D`; `key`: column indices that identify a row (an upsert key), when
    /// known.
    Retract { key: Option<Vec<usize>> },
}

impl ChangelogMode {
    pub fn is_insert_only(&self) -> bool {
        matches!(self, ChangelogMode::InsertOnly)
    }

    /// Flink's notation: `[I]` or `[I,UB,UA,D]`.
    pub fn flink_notation(&self) -> &'static str {
        match self {
            ChangelogMode::InsertOnly => "I",
            ChangelogMode::Retract { .. } => "I,UB,UA,D",
        }
    }

    /// The mode of a stream merged from several (UNION ALL).
    pub fn union(modes: &[ChangelogMode]) -> ChangelogMode {
        if modes.iter().all(ChangelogMode::is_insert_only) {
            ChangelogMode::InsertOnly
        } else {
            ChangelogMode::Retract { key: None }
        }
    }
}

impl fmt::Display for ChangelogMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.flink_notation())
    }
}

/// A multiset of rows: the materialized result of a changelog.
pub struct Materialized {
    schema: SchemaRef,
    converter: RowConverter,
    rows: HashMap<OwnedRow, (i64, u64)>,
    next_seq: u64,
}

impl Materialized {
    pub fn new(schema: SchemaRef) -> Result<Materialized> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(Materialized {
            schema,
            converter: RowConverter::new(fields)?,
            rows: HashMap::new(),
            next_seq: 0,
        })
    }

    /// Applies changes: additions add a copy of the row, retractions remove one.
    ///
    /// # Errors
    /// `Internal` when a retraction removes a row that is not there (a broken changelog).
    pub fn apply(&mut self, changes: &Changes) -> Result<()> {
        let rows = self.converter.convert_columns(changes.data.columns())?;
        for (i, row) in rows.iter().enumerate() {
            let kind = changes.kind(i);
            if kind.is_addition() {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.rows.entry(row.owned()).or_insert((0, seq)).0 += 1;
            } else {
                let owned = row.owned();
                match self.rows.get_mut(&owned) {
                    Some(entry) => {
                        entry.0 -= 1;
                        if entry.0 == 0 {
                            self.rows.remove(&owned);
                        }
                    }
                    None => {
                        return Err(Error::internal(format!(
                            "changelog retracts a row that was never added ({})",
                            kind.short()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies a batch with a leading `op` column (a changelog result batch).
    ///
    /// # Errors
    /// As [`Materialized::apply`].
    pub fn apply_op_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        self.apply(&Changes::from_op_batch(batch)?)
    }

    /// Number of rows (with duplicates).
    pub fn len(&self) -> usize {
        self.rows.values().map(|(n, _)| (*n).max(0) as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current content, rows in the order they were first added.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let mut entries: Vec<(&OwnedRow, &(i64, u64))> = self.rows.iter().collect();
        entries.sort_by_key(|(_, (_, seq))| *seq);
        let mut rows = Vec::new();
        for (row, (n, _)) in entries {
            for _ in 0..*n {
                rows.push(row.row());
            }
        }
        if rows.is_empty() {
            return Ok(RecordBatch::new_empty(Arc::clone(&self.schema)));
        }
        let columns = self.converter.convert_rows(rows)?;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// Applies a whole changelog (batches with a leading `op` column) and returns the result.
pub fn materialize(schema: &SchemaRef, op_batches: &[RecordBatch]) -> Result<RecordBatch> {
    let data_schema = Arc::new(Schema::new(schema.fields()[1..].to_vec()));
    let mut table = Materialized::new(data_schema)?;
    for batch in op_batches {
        table.apply(&Changes::from_op_batch(batch)?)?;
    }
    table.to_batch()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    #[test]
    fn materialize_applies_retractions() {
        let mut m = Materialized::new(batch(&[]).schema()).unwrap();
        m.apply(&Changes::inserts(batch(&[1, 2, 2]))).unwrap();
        m.apply(
            &Changes::new(
                batch(&[2, 3]),
                vec![RowKind::UpdateBefore, RowKind::UpdateAfter],
            )
            .unwrap(),
        )
        .unwrap();
        let out = m.to_batch().unwrap();
        let col = out.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let mut v: Vec<i64> = col.values().to_vec();
        v.sort();
        assert_eq!(v, vec![1, 2, 3]);
        let err = m
            .apply(&Changes::new(batch(&[9]), vec![RowKind::Delete]).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("never added"), "{err}");
    }

    #[test]
    fn kind_column_round_trip() {
        let c = Changes::new(
            batch(&[1, 2]),
            vec![RowKind::UpdateBefore, RowKind::UpdateAfter],
        )
        .unwrap();
        let tagged = c.with_kind_column().unwrap();
        assert!(has_kind_column(&tagged.schema()));
        assert_eq!(without_kind_column(&tagged.schema()), c.schema());
        let back = Changes::from_kind_column(&tagged).unwrap();
        assert_eq!(back.data, c.data);
        assert_eq!(back.kind(0), RowKind::UpdateBefore);
        // A user column of that name is not a row kind column: it has no marker.
        let plain = Schema::new(vec![Field::new(ROW_KIND_COLUMN, DataType::Int8, false)]);
        assert!(!has_kind_column(&plain));
        assert!(Changes::from_kind_column(&c.data).is_err());
    }

    #[test]
    fn op_batch_round_trip_and_filter() {
        let c = Changes::new(
            batch(&[1, 2, 3]),
            vec![RowKind::Insert, RowKind::Delete, RowKind::UpdateAfter],
        )
        .unwrap();
        let op = c.to_op_batch().unwrap();
        assert_eq!(op.schema().field(0).name(), "op");
        let back = Changes::from_op_batch(&op).unwrap();
        assert_eq!(back.kind(1), RowKind::Delete);
        let f = back
            .filter(&BooleanArray::from(vec![false, true, true]))
            .unwrap();
        assert_eq!(f.num_rows(), 2);
        assert_eq!(f.kind(0), RowKind::Delete);
        assert_eq!(f.kind(1), RowKind::UpdateAfter);
    }
}
