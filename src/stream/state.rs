//! Keyed state for streaming operators. Every stateful operator keeps its state in
//! [`KeyedState`] tables, each declared with a stable id (`<operator id>.<name>`), so the
//! checkpoint work that follows can snapshot and restore them by id. Keys are Arrow rows
//! ([`OwnedRow`]: the byte-comparable row format of the key columns), built by a [`KeyEncoder`].
//!
//! State TTL (`'table.exec.state.ttl'`): a table created with a TTL remembers when each key was
//! last written; [`KeyedState::expire`] drops keys idle for longer than the TTL (processing time).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, BinaryBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{OwnedRow, RowConverter, Rows, SortField};

use datafusion::arrow::array::RecordBatch;

use super::checkpoint::StateSnapshot;
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

/// How a [`KeyedState`] writes one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Every entry.
    Full,
    /// The entries written and the keys removed since the previous snapshot.
    Delta,
}

/// One keyed state table of one operator instance.
///
/// Change tracking (for incremental checkpoints): after the first snapshot, the table remembers
/// which keys were written (an entry's `dirty` flag, and the key in `changed` the first time)
/// and which were removed, so the next snapshot in delta mode writes only those. Before any
/// snapshot (checkpointing off) nothing is tracked and writes cost nothing extra.
pub struct KeyedState<V> {
    id: String,
    ttl: Option<Duration>,
    entries: HashMap<OwnedRow, Entry<V>>,
    /// Whether writes are tracked (set by the first snapshot).
    tracking: bool,
    /// Keys whose entry went from clean to dirty since the last snapshot.
    changed: Vec<OwnedRow>,
    /// Keys removed since the last snapshot (some may have been written again since).
    removed: Vec<OwnedRow>,
    /// The table was cleared since the last snapshot: the next one is written in full.
    rewrite: bool,
}

struct Entry<V> {
    value: V,
    touched_ms: i64,
    /// Written since the last snapshot (only while tracking).
    dirty: bool,
}

impl<V> KeyedState<V> {
    /// A state table with a stable `id` (unique within the job) and an optional TTL.
    pub fn new(id: impl Into<String>, ttl: Option<Duration>) -> KeyedState<V> {
        KeyedState {
            id: id.into(),
            ttl,
            entries: HashMap::new(),
            tracking: false,
            changed: Vec::new(),
            removed: Vec::new(),
            rewrite: false,
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
        let tracking = self.tracking;
        // Look up first: the key is cloned only when it is new (or newly dirty).
        if !self.entries.contains_key(key) {
            if tracking {
                self.changed.push(key.clone());
            }
            self.entries.insert(
                key.clone(),
                Entry {
                    value: init(),
                    touched_ms: now,
                    dirty: tracking,
                },
            );
        }
        let Some(entry) = self.entries.get_mut(key) else {
            unreachable!("the entry was just inserted")
        };
        entry.touched_ms = now;
        if tracking && !entry.dirty {
            entry.dirty = true;
            self.changed.push(key.clone());
        }
        &mut entry.value
    }

    /// The value for `key` if present; marks the key as written now.
    pub fn get_mut(&mut self, key: &OwnedRow) -> Option<&mut V> {
        let now = now_ms();
        let tracking = self.tracking;
        let changed = &mut self.changed;
        self.entries.get_mut(key).map(|e| {
            e.touched_ms = now;
            if tracking && !e.dirty {
                e.dirty = true;
                changed.push(key.clone());
            }
            &mut e.value
        })
    }

    pub fn insert(&mut self, key: OwnedRow, value: V) {
        if self.tracking {
            self.changed.push(key.clone());
        }
        self.entries.insert(
            key,
            Entry {
                value,
                touched_ms: now_ms(),
                dirty: self.tracking,
            },
        );
    }

    pub fn remove(&mut self, key: &OwnedRow) -> Option<V> {
        let removed = self.entries.remove(key)?;
        if self.tracking {
            self.removed.push(key.clone());
        }
        Some(removed.value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&OwnedRow, &V)> {
        self.entries.iter().map(|(k, e)| (k, &e.value))
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.changed.clear();
        self.removed.clear();
        self.rewrite = self.tracking;
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
        if self.tracking {
            self.removed.extend(keys.iter().cloned());
        }
        keys.into_iter()
            .filter_map(|k| self.entries.remove(&k).map(|e| (k, e.value)))
            .collect()
    }

    /// Writes the table into `snapshot` under its id: in full, or, when the snapshot is taken
    /// in delta mode ([`StateSnapshot::is_delta`]) and this table's previous snapshot is its
    /// base, only the entries written since then and the keys removed since then (see
    /// [`super::checkpoint::snapshot::merge`]). `value` encodes an entry's value (it gets the
    /// key too). Tracking restarts from this snapshot.
    ///
    /// Operators that prepare something over the entries first (in the order they are written)
    /// use the steps instead: [`KeyedState::begin_snapshot`],
    /// [`KeyedState::snapshot_entries`], [`KeyedState::write_snapshot`],
    /// [`KeyedState::end_snapshot`].
    ///
    /// # Errors
    /// `value`'s errors.
    pub fn snapshot_into(
        &mut self,
        snapshot: &mut StateSnapshot,
        key_types: &[DataType],
        format: &str,
        value: impl FnMut(&OwnedRow, &V, &mut Enc) -> Result<()>,
    ) -> Result<()> {
        let mode = self.begin_snapshot(snapshot.is_delta());
        self.write_snapshot(mode, snapshot, key_types, format, value)?;
        self.end_snapshot();
        Ok(())
    }

    /// Step 1 of a snapshot: settles whether it is written in full or as a delta (`delta`: the
    /// snapshot is taken in delta mode) and which entries it writes.
    pub fn begin_snapshot(&mut self, delta: bool) -> SnapshotMode {
        if !(delta && self.tracking && !self.rewrite) {
            for e in self.entries.values_mut() {
                e.dirty = false;
            }
            return SnapshotMode::Full;
        }
        // Keep each changed key once (the first time), if it is still present; its flag is
        // cleared as it is kept, which is also its state after the snapshot.
        let entries = &mut self.entries;
        self.changed.retain(|k| match entries.get_mut(k) {
            Some(e) if e.dirty => {
                e.dirty = false;
                true
            }
            _ => false,
        });
        let mut gone: HashSet<&OwnedRow> = HashSet::new();
        let removed: Vec<OwnedRow> = self
            .removed
            .iter()
            .filter(|k| !self.entries.contains_key(*k) && gone.insert(*k))
            .cloned()
            .collect();
        self.removed = removed;
        SnapshotMode::Delta
    }

    /// Step 2: the entries the snapshot writes, in the order [`KeyedState::write_snapshot`]
    /// writes them.
    pub fn snapshot_entries(
        &self,
        mode: SnapshotMode,
    ) -> Box<dyn Iterator<Item = (&OwnedRow, &V)> + '_> {
        match mode {
            SnapshotMode::Full => Box::new(self.iter()),
            SnapshotMode::Delta => Box::new(
                self.changed
                    .iter()
                    .filter_map(|k| self.entries.get(k).map(|e| (k, &e.value))),
            ),
        }
    }

    /// Step 3: writes the table (see [`KeyedState::snapshot_into`]).
    ///
    /// # Errors
    /// `value`'s errors.
    pub fn write_snapshot(
        &self,
        mode: SnapshotMode,
        snapshot: &mut StateSnapshot,
        key_types: &[DataType],
        format: &str,
        mut value: impl FnMut(&OwnedRow, &V, &mut Enc) -> Result<()>,
    ) -> Result<()> {
        if mode == SnapshotMode::Full {
            let table = self.snapshot_with_keys(key_types, format, value)?;
            snapshot.put(&self.id, table);
            return Ok(());
        }
        let mut b = KeyedTableBuilder::new(key_types, format);
        for k in &self.changed {
            if let Some(e) = self.entries.get(k) {
                b.append(k.row().as_ref(), e.touched_ms, |enc| {
                    value(k, &e.value, enc)
                })?;
            }
        }
        let mut removed = BinaryBuilder::new();
        for k in &self.removed {
            removed.append_value(k.row().as_ref());
        }
        snapshot.put_delta(&self.id, b.finish()?, removed.finish())
    }

    /// Step 4: tracking restarts from this snapshot.
    pub fn end_snapshot(&mut self) {
        self.tracking = true;
        self.rewrite = false;
        self.changed.clear();
        self.removed.clear();
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
        self.tracking = false;
        self.rewrite = false;
        self.changed.clear();
        self.removed.clear();
        for (k, touched_ms, v) in keyed_entries(table, &self.id, key_types, format)? {
            let mut d = Dec::new(v);
            let value = value(&mut d)?;
            d.finish()?;
            self.entries.insert(
                key(k),
                Entry {
                    value,
                    touched_ms,
                    dirty: false,
                },
            );
        }
        Ok(())
    }

    /// Drops keys not written for longer than the TTL (no-op without a TTL); returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let Some(ttl) = self.ttl else { return 0 };
        let limit = now_ms - ttl.as_millis() as i64;
        let before = self.entries.len();
        if self.tracking {
            let removed = &mut self.removed;
            self.entries.retain(|k, e| {
                let keep = e.touched_ms > limit;
                if !keep {
                    removed.push(k.clone());
                }
                keep
            });
        } else {
            self.entries.retain(|_, e| e.touched_ms > limit);
        }
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

    /// The entries of a (merged) snapshot table as `(key bytes, value)`, sorted.
    fn entries_of(s: &StateSnapshot, id: &str) -> Vec<(Vec<u8>, i64)> {
        let mut out: Vec<(Vec<u8>, i64)> =
            keyed_entries(s.get(id).unwrap(), id, &[DataType::Int64], "t/1")
                .unwrap()
                .map(|(k, _, v)| (k.to_vec(), Dec::new(v).i64().unwrap()))
                .collect();
        out.sort();
        out
    }

    fn take(state: &mut KeyedState<i64>, delta: bool) -> StateSnapshot {
        let mut snap = StateSnapshot::taking(delta);
        state
            .snapshot_into(&mut snap, &[DataType::Int64], "t/1", |_, v, e| {
                e.i64(*v);
                Ok(())
            })
            .unwrap();
        // Through bytes, as a checkpoint stores it.
        StateSnapshot::decode(&snap.encode().unwrap()).unwrap()
    }

    #[test]
    fn deltas_hold_only_the_change_and_merge_to_the_full_state() {
        use crate::stream::checkpoint::snapshot::merge;
        let enc = KeyEncoder::new(&[DataType::Int64]).unwrap();
        let keys: Vec<OwnedRow> = {
            let rows = enc
                .encode(&[Arc::new(Int64Array::from_iter_values(0..1000)) as ArrayRef])
                .unwrap();
            (0..1000).map(|i| rows.row(i).owned()).collect()
        };
        let mut s: KeyedState<i64> = KeyedState::new("op.t", None);
        for (i, k) in keys.iter().enumerate() {
            s.insert(k.clone(), i as i64);
        }
        // Before the first snapshot nothing is tracked; a delta request writes in full.
        let mut chain = take(&mut s, true);
        assert!(!chain.has_deltas());
        assert_eq!(entries_of(&chain, "op.t").len(), 1000);
        // Rounds of a few changes: updates (twice to the same key), removals, a removal then a
        // re-insert, an insert of a key removed earlier, drains and TTL-free get_mut.
        for round in 0..5usize {
            for k in keys.iter().skip(round * 7).take(5) {
                *s.get_or_insert_with(k, || 0) += 100;
                *s.get_mut(k).unwrap() += 1;
            }
            s.remove(&keys[500 + round]);
            s.remove(&keys[600 + round]);
            s.insert(keys[600 + round].clone(), -1);
            if round > 0 {
                s.insert(keys[500 + round - 1].clone(), 42);
            }
            let drained = s.drain_where(|_, v| *v == 990 + round as i64);
            assert_eq!(drained.len(), 1);
            let delta = take(&mut s, true);
            assert!(delta.has_deltas());
            let changed = delta.get("op.t").unwrap().num_rows();
            assert!(changed <= 7, "round {round}: a delta of {changed} rows");
            chain = merge(chain, delta).unwrap();
            assert!(!chain.has_deltas());
            let full = take(&mut s, false);
            assert_eq!(
                entries_of(&chain, "op.t"),
                entries_of(&full, "op.t"),
                "round {round}"
            );
        }
        // An unchanged table gives an empty delta; a cleared table is written in full.
        let delta = take(&mut s, true);
        assert_eq!(delta.get("op.t").unwrap().num_rows(), 0);
        s.clear();
        s.insert(keys[1].clone(), 5);
        let delta = take(&mut s, true);
        assert!(!delta.has_deltas());
        let merged = merge(chain, delta).unwrap();
        assert_eq!(
            entries_of(&merged, "op.t"),
            vec![(keys[1].row().as_ref().to_vec(), 5)]
        );
    }
}
