//! Keyed state for streaming operators. Every stateful operator keeps its state in
//! [`KeyedState`] tables, each declared with a stable id (`<operator id>.<name>`), so the
//! checkpoint work that follows can snapshot and restore them by id. Keys are Arrow rows
//! ([`OwnedRow`]: the byte-comparable row format of the key columns), built by a [`KeyEncoder`].
//!
//! State TTL (`'table.exec.state.ttl'`): a table created with a TTL remembers when each key was
//! last written; [`KeyedState::expire`] drops keys idle for longer than the TTL (processing time).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{OwnedRow, RowConverter, Rows, SortField};

use datafusion::arrow::array::RecordBatch;

use super::checkpoint::snapshot::{Dec, Enc, KeyedTableBuilder, keyed_entries};
use crate::error::Result;

/// Turns key columns into comparable, hashable rows (and back).
pub struct KeyEncoder {
    converter: RowConverter,
}

impl KeyEncoder {
    pub fn new(types: &[DataType]) -> Result<KeyEncoder> {
        Ok(KeyEncoder {
            converter: RowConverter::new(
                types.iter().map(|t| SortField::new(t.clone())).collect(),
            )?,
        })
    }

    /// The keys of every row of `columns` (all of one length).
    pub fn encode(&self, columns: &[ArrayRef]) -> Result<Rows> {
        Ok(self.converter.convert_columns(columns)?)
    }

    /// Key rows back into columns.
    pub fn decode<'a>(
        &self,
        rows: impl IntoIterator<Item = &'a OwnedRow>,
    ) -> Result<Vec<ArrayRef>> {
        Ok(self
            .converter
            .convert_rows(rows.into_iter().map(|r| r.row()))?)
    }

    /// Parses key bytes written by a snapshot back into a key row (unchecked: see
    /// [`crate::stream::ops::codec::check_keys`]).
    pub fn parse(&self, bytes: &[u8]) -> OwnedRow {
        self.converter.parser().parse(bytes).owned()
    }

    /// The row converter of the key columns.
    pub fn converter(&self) -> &RowConverter {
        &self.converter
    }

    /// An empty key (for operators without key columns, e.g. a global aggregate).
    pub fn empty_key() -> Result<OwnedRow> {
        // A constant one-column key: every row maps to it.
        let converter = RowConverter::new(vec![SortField::new(DataType::Boolean)])?;
        let column: ArrayRef =
            std::sync::Arc::new(datafusion::arrow::array::BooleanArray::from(vec![true]));
        let rows = converter.convert_columns(&[column])?;
        Ok(rows.row(0).owned())
    }
}

/// A deterministic hash of a key row: the same on every instance and every run (used to pick the
/// instance that owns a key).
pub fn key_hash(row: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    row.hash(&mut h);
    h.finish()
}

/// `'pipeline.max-parallelism'` when it is not set (Flink's rule): the parallelism and a half,
/// rounded up to a power of two, at least 128 and at most 32768. Keys hash into this many key
/// groups; each instance of a keyed operator owns a contiguous range of them, so a job can restart
/// from a checkpoint with another parallelism (up to this one) by moving whole key groups.
pub fn default_max_parallelism(parallelism: usize) -> usize {
    (parallelism + parallelism / 2)
        .next_power_of_two()
        .clamp(128, 32768)
}

/// The key group of a key hash (see [`key_hash`]).
pub fn key_group(hash: u64, max_parallelism: usize) -> usize {
    (hash % max_parallelism.max(1) as u64) as usize
}

/// The instance (of `parallelism`) that owns key group `group` (Flink's assignment: contiguous
/// ranges, so rescaling moves whole ranges).
pub fn instance_for_key_group(group: usize, max_parallelism: usize, parallelism: usize) -> usize {
    group * parallelism / max_parallelism.max(1)
}

/// The instance (of `parallelism`) that owns the key with row bytes `row`.
pub fn instance_for_key(row: &[u8], max_parallelism: usize, parallelism: usize) -> usize {
    instance_for_key_group(
        key_group(key_hash(row), max_parallelism),
        max_parallelism,
        parallelism,
    )
}

/// One keyed state table of one operator instance.
pub struct KeyedState<V> {
    id: String,
    ttl: Option<Duration>,
    entries: HashMap<OwnedRow, Entry<V>>,
}

struct Entry<V> {
    value: V,
    touched_ms: i64,
}

impl<V> KeyedState<V> {
    /// A state table with a stable `id` (unique within the job) and an optional TTL.
    pub fn new(id: impl Into<String>, ttl: Option<Duration>) -> KeyedState<V> {
        KeyedState {
            id: id.into(),
            ttl,
            entries: HashMap::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &OwnedRow) -> Option<&V> {
        self.entries.get(key).map(|e| &e.value)
    }

    /// The value for `key`, created with `init` if absent; marks the key as written now.
    pub fn get_or_insert_with(&mut self, key: &OwnedRow, init: impl FnOnce() -> V) -> &mut V {
        let now = now_ms();
        let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            value: init(),
            touched_ms: now,
        });
        entry.touched_ms = now;
        &mut entry.value
    }

    /// The value for `key` if present; marks the key as written now.
    pub fn get_mut(&mut self, key: &OwnedRow) -> Option<&mut V> {
        let now = now_ms();
        self.entries.get_mut(key).map(|e| {
            e.touched_ms = now;
            &mut e.value
        })
    }

    pub fn insert(&mut self, key: OwnedRow, value: V) {
        self.entries.insert(
            key,
            Entry {
                value,
                touched_ms: now_ms(),
            },
        );
    }

    pub fn remove(&mut self, key: &OwnedRow) -> Option<V> {
        self.entries.remove(key).map(|e| e.value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&OwnedRow, &V)> {
        self.entries.iter().map(|(k, e)| (k, &e.value))
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Removes and returns the entries for which `pred` holds.
    pub fn drain_where(
        &mut self,
        mut pred: impl FnMut(&OwnedRow, &V) -> bool,
    ) -> Vec<(OwnedRow, V)> {
        let keys: Vec<OwnedRow> = self
            .entries
            .iter()
            .filter(|(k, e)| pred(k, &e.value))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| self.entries.remove(&k).map(|e| (k, e.value)))
            .collect()
    }

    /// The table as a snapshot table (see [`super::checkpoint::snapshot`]): every entry's key
    /// bytes, last write, and `value`'s encoding of its value. `key_types` and `format` (the
    /// value encoding's name and version) are recorded, so a restore can tell whether the state
    /// still fits the operator.
    ///
    /// # Errors
    /// `value`'s errors.
    pub fn snapshot(
        &self,
        key_types: &[DataType],
        format: &str,
        mut value: impl FnMut(&V, &mut Enc) -> Result<()>,
    ) -> Result<RecordBatch> {
        self.snapshot_with_keys(key_types, format, |_, v, enc| value(v, enc))
    }

    /// [`KeyedState::snapshot`] with each entry's key passed to `value` as well. Entries come in
    /// the order of [`KeyedState::iter`] (the table is not changed in between).
    ///
    /// # Errors
    /// `value`'s errors.
    pub fn snapshot_with_keys(
        &self,
        key_types: &[DataType],
        format: &str,
        mut value: impl FnMut(&OwnedRow, &V, &mut Enc) -> Result<()>,
    ) -> Result<RecordBatch> {
        let mut b = KeyedTableBuilder::new(key_types, format);
        for (k, e) in &self.entries {
            b.append(k.row().as_ref(), e.touched_ms, |enc| {
                value(k, &e.value, enc)
            })?;
        }
        b.finish()
    }

    /// Replaces the table's entries with those of a snapshot table written by
    /// [`KeyedState::snapshot`]; `key` parses key bytes, `value` decodes a value.
    ///
    /// # Errors
    /// `Invalid` for state written with other key types or another value format; `External`
    /// for corrupt state.
    pub fn restore(
        &mut self,
        table: &RecordBatch,
        key_types: &[DataType],
        format: &str,
        key: impl Fn(&[u8]) -> OwnedRow,
        mut value: impl FnMut(&mut Dec) -> Result<V>,
    ) -> Result<()> {
        self.entries.clear();
        for (k, touched_ms, v) in keyed_entries(table, &self.id, key_types, format)? {
            let mut d = Dec::new(v);
            let value = value(&mut d)?;
            d.finish()?;
            self.entries.insert(key(k), Entry { value, touched_ms });
        }
        Ok(())
    }

    /// Drops keys not written for longer than the TTL (no-op without a TTL); returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let Some(ttl) = self.ttl else { return 0 };
        let limit = now_ms - ttl.as_millis() as i64;
        let before = self.entries.len();
        self.entries.retain(|_, e| e.touched_ms > limit);
        before - self.entries.len()
    }
}

/// Processing time now, ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use std::sync::Arc;

    #[test]
    fn keys_round_trip_and_ttl_expires() {
        let enc = KeyEncoder::new(&[DataType::Int64]).unwrap();
        let rows = enc
            .encode(&[Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef])
            .unwrap();
        let mut s: KeyedState<u32> = KeyedState::new("op1.counts", Some(Duration::from_millis(10)));
        *s.get_or_insert_with(&rows.row(0).owned(), || 0) += 5;
        s.insert(rows.row(1).owned(), 7);
        assert_eq!(s.get(&rows.row(0).owned()), Some(&5));
        let cols = enc.decode(s.iter().map(|(k, _)| k)).unwrap();
        assert_eq!(cols[0].len(), 2);
        assert_eq!(s.expire(now_ms() - 1000), 0);
        assert_eq!(s.expire(now_ms() + 1000), 2);
        assert!(s.is_empty());
        assert_eq!(
            key_hash(rows.row(0).as_ref()),
            key_hash(rows.row(0).as_ref())
        );
    }
}
