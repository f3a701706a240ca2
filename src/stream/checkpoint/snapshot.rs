//! The serialized form of operator state: what a task hands to the checkpoint coordinator on a
//! barrier and gets back on restore. A [`StateSnapshot`] is a set of named state tables, each one
//! Arrow record batch whose schema the operator defines (typed columns where the state is
//! tabular: a source's split positions; `key` / `touched_ms` / `value` for keyed state, where
//! `key` holds the key's row-format bytes and `value` the operator's compact encoding of the
//! entry, see [`Enc`]). The batch's schema metadata names the key types and the value format,
//! so a restore into a changed query can tell compatible state from incompatible state.
//!
//! On disk a snapshot is a sequence of frames `name-length name ipc-length ipc-stream`, each
//! table one Arrow IPC stream; the checkpoint store adds the checksum (see `store`).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::row::{OwnedRow, RowParser};

use crate::error::{Error, Result};

/// Schema metadata key: the key columns' types, as `DataType` debug strings joined by `,`.
pub const KEY_TYPES: &str = "weir.state.key-types";
/// Schema metadata key: the value encoding (operator-defined name and version).
pub const VALUE_FORMAT: &str = "weir.state.value-format";

/// Schema metadata key of a keyed table written in delta mode: it holds only the entries
/// written since the previous snapshot (see [`merge`]).
pub const DELTA: &str = "weir.state.delta";
/// Suffix of the table that lists the keys a delta removed (`<table id>#removed`, one `key`
/// column of row-format bytes).
pub const REMOVED_SUFFIX: &str = "#removed";

/// The state of one operator instance (or one source instance) at a checkpoint.
///
/// A snapshot is taken in full or in delta mode ([`StateSnapshot::delta`], chosen by the
/// checkpoint coordinator for incremental checkpoints): in delta mode keyed tables that track
/// their changes write only what changed since the task's previous snapshot, and tables that
/// do not track changes (source positions, operator-level values) are written in full as
/// always. A delta means nothing alone: [`merge`] applies it to the state it was taken after.
#[derive(Debug, Default, Clone)]
pub struct StateSnapshot {
    tables: BTreeMap<String, RecordBatch>,
    /// Taken in delta mode (a property of taking it; not encoded: delta tables say so
    /// themselves in their schema metadata).
    delta: bool,
}

impl StateSnapshot {
    pub fn new() -> StateSnapshot {
        StateSnapshot::default()
    }

    /// An empty snapshot to be taken in delta mode when `delta` holds.
    pub fn taking(delta: bool) -> StateSnapshot {
        StateSnapshot {
            tables: BTreeMap::new(),
            delta,
        }
    }

    /// Whether this snapshot is taken in delta mode.
    pub fn is_delta(&self) -> bool {
        self.delta
    }

    /// Whether any table is a delta (the snapshot must be merged onto its base).
    pub fn has_deltas(&self) -> bool {
        self.tables
            .values()
            .any(|t| t.schema_ref().metadata().contains_key(DELTA))
    }

    /// Adds keyed table `name` as a delta: `upserts` (a keyed table, see [`keyed_schema`]) are
    /// the entries written since the previous snapshot, `removed` the keys removed since then.
    ///
    /// # Errors
    /// Arrow errors building the tables.
    pub fn put_delta(
        &mut self,
        name: &str,
        upserts: RecordBatch,
        removed: BinaryArray,
    ) -> Result<()> {
        let schema = upserts.schema();
        let mut metadata = schema.metadata().clone();
        metadata.insert(DELTA.to_string(), "1".to_string());
        let marked = Arc::new(Schema::new_with_metadata(schema.fields().clone(), metadata));
        self.tables.insert(
            name.to_string(),
            RecordBatch::try_new(marked, upserts.columns().to_vec())?,
        );
        if !removed.is_empty() {
            let schema = Arc::new(Schema::new(vec![Field::new(
                "key",
                DataType::Binary,
                false,
            )]));
            self.tables.insert(
                format!("{name}{REMOVED_SUFFIX}"),
                RecordBatch::try_new(schema, vec![Arc::new(removed)])?,
            );
        }
        Ok(())
    }

    /// Adds (or replaces) table `name`.
    pub fn put(&mut self, name: &str, batch: RecordBatch) {
        self.tables.insert(name.to_string(), batch);
    }

    pub fn get(&self, name: &str) -> Option<&RecordBatch> {
        self.tables.get(name)
    }

    pub fn tables(&self) -> impl Iterator<Item = (&str, &RecordBatch)> {
        self.tables.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Rows over all tables.
    pub fn rows(&self) -> usize {
        self.tables.values().map(RecordBatch::num_rows).sum()
    }

    /// The snapshot as bytes (see the module documentation).
    ///
    /// # Errors
    /// `Internal` when Arrow cannot encode a table.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for (name, batch) in &self.tables {
            let mut ipc = Vec::new();
            {
                let mut w = StreamWriter::try_new(&mut ipc, batch.schema_ref())?;
                w.write(batch)?;
                w.finish()?;
            }
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(ipc.len() as u64).to_le_bytes());
            out.extend_from_slice(&ipc);
        }
        Ok(out)
    }

    /// Reads what [`StateSnapshot::encode`] wrote.
    ///
    /// # Errors
    /// `External` ("corrupt state") for bytes that are not a snapshot.
    pub fn decode(bytes: &[u8]) -> Result<StateSnapshot> {
        let mut d = Dec::new(bytes);
        let mut tables = BTreeMap::new();
        while !d.is_empty() {
            let n = d.u32()? as usize;
            let name = String::from_utf8(d.take(n)?.to_vec())
                .map_err(|_| corrupt("a table name is not UTF-8"))?;
            let len = d.u64()? as usize;
            let ipc = d.take(len)?;
            // Arrow's IPC reader validates what it reads, but not everything: some damage
            // (a buffer length past the message) panics inside it. It is bytes from disk, so
            // that is a corrupt file, not a crash.
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let reader = StreamReader::try_new(Cursor::new(ipc), None)?;
                let schema = reader.schema();
                let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
                datafusion::arrow::compute::concat_batches(&schema, &batches)
            }));
            let batch = match read {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => return Err(corrupt(format!("table `{name}`: {e}"))),
                Err(_) => {
                    return Err(corrupt(format!(
                        "table `{name}`: Arrow IPC data the reader cannot decode"
                    )));
                }
            };
            tables.insert(name, batch);
        }
        Ok(StateSnapshot {
            tables,
            delta: false,
        })
    }
}

/// Applies `delta` (a snapshot taken in delta mode) to `base` (the state the same task had at
/// its previous snapshot, itself merged): a delta keyed table replaces the base's entries of the
/// keys it lists and drops the keys its `#removed` table lists; any other table of the delta
/// replaces the base's table; tables the delta lacks are kept. The result has no delta tables.
///
/// # Errors
/// `External` ("corrupt checkpoint state") for a removed-keys table without its delta table or a
/// malformed table.
pub fn merge(mut base: StateSnapshot, delta: StateSnapshot) -> Result<StateSnapshot> {
    let mut removed: BTreeMap<String, RecordBatch> = BTreeMap::new();
    let mut tables = Vec::new();
    for (name, table) in delta.tables {
        match name.strip_suffix(REMOVED_SUFFIX) {
            Some(id) => {
                removed.insert(id.to_string(), table);
            }
            None => tables.push((name, table)),
        }
    }
    for (name, table) in tables {
        if !table.schema_ref().metadata().contains_key(DELTA) {
            base.tables.insert(name, table);
            continue;
        }
        let gone = removed.remove(&name);
        let merged = apply_delta(base.tables.remove(&name), &table, gone.as_ref(), &name)?;
        base.tables.insert(name, merged);
    }
    if let Some(name) = removed.keys().next() {
        return Err(corrupt(format!(
            "removed keys of `{name}` without its delta table"
        )));
    }
    base.delta = false;
    Ok(base)
}

fn apply_delta(
    base: Option<RecordBatch>,
    upserts: &RecordBatch,
    removed: Option<&RecordBatch>,
    id: &str,
) -> Result<RecordBatch> {
    let schema = upserts.schema();
    let mut metadata = schema.metadata().clone();
    metadata.remove(DELTA);
    let schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), metadata));
    let upserts = RecordBatch::try_new(Arc::clone(&schema), upserts.columns().to_vec())
        .map_err(|e| corrupt(format!("state `{id}`: {e}")))?;
    let Some(base) = base else {
        return Ok(upserts);
    };
    if upserts.num_columns() != 3 || base.num_columns() != 3 {
        return Err(corrupt(format!(
            "state `{id}`: a delta over a non-keyed table"
        )));
    }
    let mut replaced: std::collections::HashSet<&[u8]> =
        binary(upserts.column(0), id)?.iter().flatten().collect();
    if let Some(r) = removed {
        let keys = r
            .columns()
            .first()
            .ok_or_else(|| corrupt(format!("state `{id}`: removed keys without a column")))?;
        replaced.extend(binary(keys, id)?.iter().flatten());
    }
    let base_keys = binary(base.column(0), id)?;
    let keep: datafusion::arrow::array::BooleanArray = base_keys
        .iter()
        .map(|k| Some(k.is_some_and(|k| !replaced.contains(k))))
        .collect();
    let kept = datafusion::arrow::compute::filter_record_batch(&base, &keep)?;
    let kept = RecordBatch::try_new(Arc::clone(&schema), kept.columns().to_vec())
        .map_err(|e| corrupt(format!("state `{id}`: {e}")))?;
    Ok(datafusion::arrow::compute::concat_batches(
        &schema,
        [&kept, &upserts],
    )?)
}

/// An `External` "corrupt checkpoint state" error: bytes that are not what their writer wrote.
pub fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::external(format!("corrupt checkpoint state: {what}"))
}

/// The schema of a keyed state table: `key` (row-format bytes), `touched_ms` (last write, for
/// TTL), `value` (the operator's encoding), with the key types and value format as metadata.
pub fn keyed_schema(key_types: &[DataType], value_format: &str) -> Arc<Schema> {
    let types: Vec<String> = key_types.iter().map(|t| format!("{t:?}")).collect();
    let metadata = [
        (KEY_TYPES.to_string(), types.join(",")),
        (VALUE_FORMAT.to_string(), value_format.to_string()),
    ]
    .into_iter()
    .collect();
    Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("key", DataType::Binary, false),
            Field::new("touched_ms", DataType::Int64, false),
            Field::new("value", DataType::Binary, false),
        ],
        metadata,
    ))
}

/// Builds a keyed state table row by row.
pub struct KeyedTableBuilder {
    schema: Arc<Schema>,
    keys: BinaryBuilder,
    touched: Vec<i64>,
    values: BinaryBuilder,
    enc: Enc,
}

impl KeyedTableBuilder {
    pub fn new(key_types: &[DataType], value_format: &str) -> KeyedTableBuilder {
        KeyedTableBuilder {
            schema: keyed_schema(key_types, value_format),
            keys: BinaryBuilder::new(),
            touched: Vec::new(),
            values: BinaryBuilder::new(),
            enc: Enc::default(),
        }
    }

    /// Appends one entry; `value` writes the entry's value into the encoder.
    pub fn append(
        &mut self,
        key: &[u8],
        touched_ms: i64,
        value: impl FnOnce(&mut Enc) -> Result<()>,
    ) -> Result<()> {
        self.enc.0.clear();
        value(&mut self.enc)?;
        self.keys.append_value(key);
        self.touched.push(touched_ms);
        self.values.append_value(&self.enc.0);
        Ok(())
    }

    pub fn finish(mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.keys.finish()),
            Arc::new(Int64Array::from(self.touched)),
            Arc::new(self.values.finish()),
        ];
        Ok(RecordBatch::try_new(self.schema, columns)?)
    }
}

/// The entries of a keyed state table: `(key bytes, touched_ms, value bytes)`, after checking
/// the table's key types and value format against what the operator expects now.
///
/// # Errors
/// `Invalid` ("incompatible state") when the key types or value format differ; `External` for
/// a malformed table.
pub fn keyed_entries<'a>(
    table: &'a RecordBatch,
    id: &str,
    key_types: &[DataType],
    value_format: &str,
) -> Result<impl Iterator<Item = (&'a [u8], i64, &'a [u8])> + 'a> {
    let expected = keyed_schema(key_types, value_format);
    let meta = table.schema_ref().metadata();
    for k in [KEY_TYPES, VALUE_FORMAT] {
        if meta.get(k) != expected.metadata().get(k) {
            return Err(Error::invalid(format!(
                "incompatible state `{id}`: {k} was {:?}, the query now needs {:?}",
                meta.get(k).map(String::as_str).unwrap_or(""),
                expected.metadata().get(k).map(String::as_str).unwrap_or("")
            )));
        }
    }
    if table.num_columns() != 3 {
        return Err(corrupt(format!(
            "state `{id}` has {} columns",
            table.num_columns()
        )));
    }
    let keys = binary(table.column(0), id)?;
    let touched = table
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| corrupt(format!("state `{id}`: touched_ms is not BIGINT")))?;
    let values = binary(table.column(2), id)?;
    Ok((0..table.num_rows()).map(move |i| (keys.value(i), touched.value(i), values.value(i))))
}

fn binary<'a>(a: &'a ArrayRef, id: &str) -> Result<&'a BinaryArray> {
    a.as_any()
        .downcast_ref::<BinaryArray>()
        .filter(|b| b.null_count() == 0)
        .ok_or_else(|| corrupt(format!("state `{id}`: expected non-null BINARY")))
}

/// A compact little-endian encoder for state values.
#[derive(Debug, Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.0.push(v as u8);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i128(&mut self, v: i128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    /// A length-prefixed byte string.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    /// A row (of the arrow row format), as its bytes.
    pub fn row(&mut self, row: &OwnedRow) {
        self.bytes(row.row().as_ref());
    }
    /// A length (collection size).
    pub fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }
}

/// Reads what [`Enc`] wrote; every read checks bounds (corrupt input is an error, never a panic).
pub struct Dec<'a> {
    buf: &'a [u8],
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(corrupt(format!(
                "needed {n} more bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(corrupt(format!("{b} is not a boolean"))),
        }
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn i128(&mut self) -> Result<i128> {
        Ok(i128::from_le_bytes(self.array()?))
    }
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(u64::from_le_bytes(self.array()?)))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt("a string is not UTF-8"))
    }
    /// A row written by [`Enc::row`], parsed with `parser` (from the converter of its columns).
    pub fn row(&mut self, parser: &RowParser) -> Result<OwnedRow> {
        let bytes = self.bytes()?;
        Ok(parser.parse(bytes).owned())
    }
    /// A length, checked against the bytes left (each element takes at least one byte), so a
    /// corrupt length cannot make a reader allocate without bound.
    pub fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        if n > self.buf.len() as u64 {
            return Err(corrupt(format!(
                "length {n} exceeds the {} bytes left",
                self.buf.len()
            )));
        }
        Ok(n as usize)
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(corrupt(format!("{} trailing bytes", self.buf.len())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_reject_garbage() {
        let mut b = KeyedTableBuilder::new(&[DataType::Int64], "test/1");
        b.append(b"k1", 5, |e| {
            e.i64(-3);
            e.str("x");
            Ok(())
        })
        .unwrap();
        let mut s = StateSnapshot::new();
        s.put("t", b.finish().unwrap());
        let bytes = s.encode().unwrap();
        let back = StateSnapshot::decode(&bytes).unwrap();
        let table = back.get("t").unwrap();
        let entries: Vec<_> = keyed_entries(table, "t", &[DataType::Int64], "test/1")
            .unwrap()
            .collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, b"k1");
        assert_eq!(entries[0].1, 5);
        let mut d = Dec::new(entries[0].2);
        assert_eq!(d.i64().unwrap(), -3);
        assert_eq!(d.str().unwrap(), "x");
        d.finish().unwrap();
        let err = keyed_entries(table, "t", &[DataType::Utf8], "test/1")
            .err()
            .unwrap();
        assert!(err.to_string().contains("incompatible state"), "{err}");
        for cut in [1, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(StateSnapshot::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut d = Dec::new(&[255, 255, 255, 255, 255, 255, 255, 255]);
        assert!(d.bytes().is_err());
    }

    #[test]
    fn merging_rejects_removed_keys_without_their_delta() {
        let mut base = StateSnapshot::new();
        let mut b = KeyedTableBuilder::new(&[DataType::Int64], "test/1");
        b.append(b"k1", 5, |e| {
            e.i64(1);
            Ok(())
        })
        .unwrap();
        base.put("t", b.finish().unwrap());
        let mut delta = StateSnapshot::taking(true);
        delta
            .put_delta(
                "t",
                KeyedTableBuilder::new(&[DataType::Int64], "test/1")
                    .finish()
                    .unwrap(),
                BinaryArray::from_iter_values([b"k1"]),
            )
            .unwrap();
        let bytes = delta.encode().unwrap();
        let merged = merge(base.clone(), StateSnapshot::decode(&bytes).unwrap()).unwrap();
        assert_eq!(merged.get("t").unwrap().num_rows(), 0);
        let mut orphan = StateSnapshot::decode(&bytes).unwrap();
        orphan.tables.remove("t");
        let err = merge(base, orphan).unwrap_err().to_string();
        assert!(err.contains("without its delta table"), "{err}");
    }
}
