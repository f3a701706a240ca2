//! Keyed state for streaming operators. Every stateful operator keeps its state in
//! [`KeyedState`] tables, each declared with a stable id (`<operator id>.<name>`), so the
//! checkpoint work that follows can snapshot and restore them by id. Keys are Arrow rows
//! ([`OwnedRow`]: the byte-comparable row format of the key columns), built by a [`KeyEncoder`].
//!
//! State TTL (`'table.exec.state.ttl'`): a table created with a TTL remembers when each key was
//! last written; [`KeyedState::expire`] drops keys idle for longer than the TTL (processing time).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, BinaryBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{OwnedRow, RowConverter, RowParser, Rows, SortField};

use datafusion::arrow::array::RecordBatch;

use super::checkpoint::StateSnapshot;
use super::checkpoint::snapshot::{Dec, Enc, KeyedTableBuilder, keyed_entries};
use super::spill::{DiskBackend, SpillTable, StateCodec};
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
///
/// On the disk backend ([`KeyedState::spilling`]), entries beyond the job's memory budget live in
/// the job's on-disk store (see [`super::spill`]): every access brings a cold entry back first,
/// so operators see one table either way; a table holds each key either in memory or on disk.
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
    spill: Option<Spill<V>>,
}

struct Entry<V> {
    value: V,
    touched_ms: i64,
    /// Written since the last snapshot (only while tracking).
    dirty: bool,
    /// The last access (spilling tables: the least recently used entries go to disk first).
    access: u64,
}

/// The disk tier of a spilling table.
struct Spill<V> {
    codec: Arc<dyn StateCodec<V>>,
    parser: RowParser,
    table: SpillTable,
    /// Entries on disk only.
    cold: usize,
    /// Bytes of the in-memory entries at their last measurement (charged to the backend).
    hot_bytes: usize,
    /// Mutable accesses since the entries were last measured.
    writes: usize,
    clock: u64,
}

impl<V> Spill<V> {
    /// What an entry costs in memory: its slot in the table (key and entry inline, a control
    /// byte; a table grown by doubling is about two thirds full), the key's bytes, and what the
    /// value owns on the heap.
    fn measure(&self, key: &OwnedRow, value: &V) -> usize {
        entry_bytes::<V>(key, self.codec.size(value))
    }
}

/// What an entry of key `key` costs whose value owns `value_heap` bytes on the heap.
fn entry_bytes<V>(key: &OwnedRow, value_heap: usize) -> usize {
    slot_bytes::<V>() + super::spill::heap::row(key) + value_heap
}

/// The bytes of one slot of a table's map, at its average load.
fn slot_bytes<V>() -> usize {
    (std::mem::size_of::<(OwnedRow, Entry<V>)>() + 1) * 3 / 2
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
            spill: None,
        }
    }

    /// On the disk backend (`backend` set), lets entries beyond the job's memory budget go to
    /// disk, encoded with `codec` (which must write exactly what the operator's snapshot writes
    /// for a value); `keys` is the converter of the key columns. Without a backend, the table
    /// stays on the heap.
    ///
    /// # Errors
    /// The on-disk store cannot be opened.
    pub fn spilling(
        mut self,
        backend: Option<&Arc<DiskBackend>>,
        codec: Arc<dyn StateCodec<V>>,
        keys: &RowConverter,
    ) -> Result<KeyedState<V>> {
        if let Some(backend) = backend {
            self.spill = Some(Spill {
                codec,
                parser: keys.parser(),
                table: backend.table()?,
                cold: 0,
                hot_bytes: 0,
                writes: 0,
                clock: 0,
            });
        }
        Ok(self)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Entries in memory and on disk.
    pub fn len(&self) -> usize {
        self.entries.len() + self.spill.as_ref().map_or(0, |s| s.cold)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries on disk.
    pub fn cold_len(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.cold)
    }

    /// Brings `key`'s entry into memory if it is on disk (a no-op on the heap backend); counts
    /// an access. Entries idle past the TTL are dropped instead.
    fn fault_in(&mut self, key: &OwnedRow, write: bool) -> Result<()> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        spill.clock += 1;
        let clock = spill.clock;
        if write {
            spill.writes += 1;
        }
        if let Some(e) = self.entries.get_mut(key) {
            e.access = clock;
            return Ok(());
        }
        if spill.cold == 0 {
            return Ok(());
        }
        let Some(cold) = spill.table.get(key.row().as_ref())? else {
            return Ok(());
        };
        spill.table.remove(key.row().as_ref())?;
        spill.cold -= 1;
        if let Some(ttl) = self.ttl
            && cold.touched_ms <= now_ms() - ttl.as_millis() as i64
        {
            if self.tracking {
                self.removed.push(key.clone());
            }
            return Ok(());
        }
        let dirty = spill.table.is_dirty(&cold);
        let mut d = Dec::new(&cold.value);
        let value = spill.codec.decode(&mut d)?;
        d.finish()?;
        let bytes = spill.measure(key, &value);
        spill.hot_bytes += bytes;
        spill.table.charge(bytes);
        self.entries.insert(
            key.clone(),
            Entry {
                value,
                touched_ms: cold.touched_ms,
                dirty,
                access: clock,
            },
        );
        Ok(())
    }

    /// On the disk backend, every so many writes: measures the entries in memory again and, when
    /// the job's state is over its budget, moves this table's least recently used entries to
    /// disk.
    fn maintain(&mut self) -> Result<()> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        if spill.writes < (self.entries.len() / 4).max(1024) {
            return Ok(());
        }
        spill.writes = 0;
        let measured: usize = self
            .entries
            .iter()
            .map(|(k, e)| spill.measure(k, &e.value))
            .sum();
        if measured > spill.hot_bytes {
            spill.table.charge(measured - spill.hot_bytes);
        } else {
            spill.table.release(spill.hot_bytes - measured);
        }
        spill.hot_bytes = measured;
        if spill.table.over_budget() {
            self.evict()?;
        }
        Ok(())
    }

    /// Moves the least recently used entries to disk until the job's state is back at three
    /// quarters of its budget (or this table holds nothing in memory).
    fn evict(&mut self) -> Result<()> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        let target = spill.table.excess().min(spill.hot_bytes);
        if target == 0 {
            return Ok(());
        }
        let mut order: Vec<(u64, &OwnedRow)> =
            self.entries.iter().map(|(k, e)| (e.access, k)).collect();
        order.sort_unstable_by_key(|(a, _)| *a);
        let mut freed = 0;
        let mut victims = Vec::new();
        for (_, k) in order {
            if freed >= target {
                break;
            }
            if let Some(e) = self.entries.get(k) {
                freed += spill.measure(k, &e.value);
                victims.push(k.clone());
            }
        }
        let mut encoded: Vec<(Vec<u8>, i64, bool, Vec<u8>)> = Vec::with_capacity(victims.len());
        for k in victims {
            if let Some(e) = self.entries.remove(&k) {
                let mut enc = Enc::default();
                spill.codec.encode(&k, &e.value, &mut enc)?;
                encoded.push((k.row().as_ref().to_vec(), e.touched_ms, e.dirty, enc.0));
            }
        }
        spill.table.put_all(
            encoded
                .iter()
                .map(|(k, t, d, v)| (k.as_slice(), *t, *d, v.as_slice())),
        )?;
        spill.cold += encoded.len();
        let freed = freed.min(spill.hot_bytes);
        spill.hot_bytes -= freed;
        spill.table.release(freed);
        Ok(())
    }

    /// The value of `key`, if present.
    ///
    /// # Errors
    /// Reading it back from disk failed.
    pub fn get(&mut self, key: &OwnedRow) -> Result<Option<&V>> {
        self.fault_in(key, false)?;
        Ok(self.entries.get(key).map(|e| &e.value))
    }

    /// Brings `key`'s entry into memory if it is on disk; whether the table has it. With
    /// [`KeyedState::peek`] it reads an entry while other fields of the operator are borrowed.
    ///
    /// # Errors
    /// Disk errors (see [`KeyedState::get`]).
    pub fn load(&mut self, key: &OwnedRow) -> Result<bool> {
        self.fault_in(key, false)?;
        Ok(self.entries.contains_key(key))
    }

    /// The value of `key` if it is in memory: right after [`KeyedState::load`] (or any access)
    /// of the key, it is the value.
    pub fn peek(&self, key: &OwnedRow) -> Option<&V> {
        self.entries.get(key).map(|e| &e.value)
    }

    /// The value for `key`, created with `init` if absent; marks the key as written now.
    ///
    /// # Errors
    /// Disk errors (see [`KeyedState::get`]).
    pub fn get_or_insert_with(
        &mut self,
        key: &OwnedRow,
        init: impl FnOnce() -> V,
    ) -> Result<&mut V> {
        self.maintain()?;
        self.fault_in(key, true)?;
        let now = now_ms();
        let tracking = self.tracking;
        let access = self.spill.as_ref().map_or(0, |s| s.clock);
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
                    access,
                },
            );
        }
        let Some(entry) = self.entries.get_mut(key) else {
            return Err(crate::error::Error::internal(
                "a state entry vanished after it was inserted",
            ));
        };
        entry.touched_ms = now;
        if tracking && !entry.dirty {
            entry.dirty = true;
            self.changed.push(key.clone());
        }
        Ok(&mut entry.value)
    }

    /// The value for `key` if present; marks the key as written now.
    ///
    /// # Errors
    /// Disk errors (see [`KeyedState::get`]).
    pub fn get_mut(&mut self, key: &OwnedRow) -> Result<Option<&mut V>> {
        self.maintain()?;
        self.fault_in(key, true)?;
        let now = now_ms();
        let tracking = self.tracking;
        let changed = &mut self.changed;
        Ok(self.entries.get_mut(key).map(|e| {
            e.touched_ms = now;
            if tracking && !e.dirty {
                e.dirty = true;
                changed.push(key.clone());
            }
            &mut e.value
        }))
    }

    /// Sets the value of `key`.
    ///
    /// # Errors
    /// Disk errors (see [`KeyedState::get`]).
    pub fn insert(&mut self, key: OwnedRow, value: V) -> Result<()> {
        self.maintain()?;
        self.fault_in(&key, true)?;
        let tracking = self.tracking;
        let access = self.spill.as_ref().map_or(0, |s| s.clock);
        let entry = Entry {
            value,
            touched_ms: now_ms(),
            dirty: tracking,
            access,
        };
        if tracking {
            let old = self.entries.insert(key.clone(), entry);
            if !old.is_some_and(|e| e.dirty) {
                self.changed.push(key);
            }
        } else {
            self.entries.insert(key, entry);
        }
        Ok(())
    }

    /// Removes `key`'s entry and returns its value.
    ///
    /// # Errors
    /// Disk errors (see [`KeyedState::get`]).
    pub fn remove(&mut self, key: &OwnedRow) -> Result<Option<V>> {
        self.fault_in(key, false)?;
        let Some(removed) = self.entries.remove(key) else {
            return Ok(None);
        };
        if self.tracking {
            self.removed.push(key.clone());
        }
        Ok(Some(removed.value))
    }

    /// The entries in memory: every entry on the heap backend, and right after
    /// [`KeyedState::restore`] (before any write moved entries to disk).
    pub fn iter(&self) -> impl Iterator<Item = (&OwnedRow, &V)> {
        self.entries.iter().map(|(k, e)| (k, &e.value))
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.changed.clear();
        self.removed.clear();
        self.rewrite = self.tracking;
        if let Some(spill) = self.spill.as_mut() {
            // The old entries stay behind in the store under the old prefix, never read again.
            spill.table.renew();
            spill.cold = 0;
            spill.table.release(spill.hot_bytes);
            spill.hot_bytes = 0;
        }
    }

    /// Removes and returns the entries for which `pred` holds (on disk too).
    ///
    /// # Errors
    /// Disk errors.
    pub fn drain_where(
        &mut self,
        mut pred: impl FnMut(&OwnedRow, &V) -> bool,
    ) -> Result<Vec<(OwnedRow, V)>> {
        let keys: Vec<OwnedRow> = self
            .entries
            .iter()
            .filter(|(k, e)| pred(k, &e.value))
            .map(|(k, _)| k.clone())
            .collect();
        if self.tracking {
            self.removed.extend(keys.iter().cloned());
        }
        let mut out: Vec<(OwnedRow, V)> = keys
            .into_iter()
            .filter_map(|k| self.entries.remove(&k).map(|e| (k, e.value)))
            .collect();
        if let Some(spill) = self.spill.as_mut()
            && spill.cold > 0
        {
            let mut gone = Vec::new();
            for item in spill.table.scan() {
                let (bytes, cold) = item?;
                let mut d = Dec::new(&cold.value);
                let value = spill.codec.decode(&mut d)?;
                d.finish()?;
                let key = spill.parser.parse(&bytes).owned();
                if pred(&key, &value) {
                    gone.push(bytes);
                    out.push((key, value));
                }
            }
            for bytes in &gone {
                spill.table.remove(bytes)?;
            }
            spill.cold -= gone.len();
            if self.tracking {
                let start = out.len() - gone.len();
                self.removed
                    .extend(out[start..].iter().map(|(k, _)| k.clone()));
            }
        }
        Ok(out)
    }

    /// Writes the table into `snapshot` under its id: in full, or, when the snapshot is taken
    /// in delta mode ([`StateSnapshot::is_delta`]) and this table's previous snapshot is its
    /// base, only the entries written since then and the keys removed since then (see
    /// [`super::checkpoint::snapshot::merge`]). `value` encodes an entry's value (it gets the
    /// key too); entries on disk are copied as stored (a spilling table's codec writes the same
    /// bytes). Tracking restarts from this snapshot.
    ///
    /// Operators that prepare something over the entries first (in the order they are written)
    /// use the steps instead: [`KeyedState::begin_snapshot`],
    /// [`KeyedState::snapshot_entries`], [`KeyedState::write_snapshot`],
    /// [`KeyedState::end_snapshot`].
    ///
    /// # Errors
    /// `value`'s errors; disk errors.
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
        // cleared as it is kept, which is also its state after the snapshot. Keys not in memory
        // may be on disk: they are settled when the snapshot is written.
        let spilling = self.cold_len() > 0;
        let entries = &mut self.entries;
        self.changed.retain(|k| match entries.get_mut(k) {
            Some(e) if e.dirty => {
                e.dirty = false;
                true
            }
            Some(_) => false,
            None => spilling,
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

    /// Step 2: the entries in memory the snapshot writes, in the order
    /// [`KeyedState::write_snapshot`] passes them to its `value` (entries on disk are copied
    /// without it).
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
    /// `value`'s errors; disk errors.
    pub fn write_snapshot(
        &self,
        mode: SnapshotMode,
        snapshot: &mut StateSnapshot,
        key_types: &[DataType],
        format: &str,
        mut value: impl FnMut(&OwnedRow, &V, &mut Enc) -> Result<()>,
    ) -> Result<()> {
        let mut b = KeyedTableBuilder::new(key_types, format);
        if mode == SnapshotMode::Full {
            for (k, e) in &self.entries {
                b.append(k.row().as_ref(), e.touched_ms, |enc| {
                    value(k, &e.value, enc)
                })?;
            }
            if let Some(spill) = self.spill.as_ref()
                && spill.cold > 0
            {
                for item in spill.table.scan() {
                    let (key, cold) = item?;
                    b.append(&key, cold.touched_ms, |enc| {
                        enc.0.extend_from_slice(&cold.value);
                        Ok(())
                    })?;
                }
            }
            snapshot.put(&self.id, b.finish()?);
            return Ok(());
        }
        let mut cold_seen: HashSet<&OwnedRow> = HashSet::new();
        for k in &self.changed {
            if let Some(e) = self.entries.get(k) {
                b.append(k.row().as_ref(), e.touched_ms, |enc| {
                    value(k, &e.value, enc)
                })?;
            } else if let Some(spill) = self.spill.as_ref()
                && cold_seen.insert(k)
                && let Some(cold) = spill.table.get(k.row().as_ref())?
                && spill.table.is_dirty(&cold)
            {
                b.append(k.row().as_ref(), cold.touched_ms, |enc| {
                    enc.0.extend_from_slice(&cold.value);
                    Ok(())
                })?;
            }
        }
        let mut removed = BinaryBuilder::new();
        for k in &self.removed {
            let present = match self.spill.as_ref() {
                Some(spill) if spill.cold > 0 => spill.table.get(k.row().as_ref())?.is_some(),
                _ => false,
            };
            if !present {
                removed.append_value(k.row().as_ref());
            }
        }
        snapshot.put_delta(&self.id, b.finish()?, removed.finish())
    }

    /// Step 4: tracking restarts from this snapshot.
    pub fn end_snapshot(&mut self) {
        self.tracking = true;
        self.rewrite = false;
        self.changed.clear();
        self.removed.clear();
        if let Some(spill) = self.spill.as_mut() {
            // Entries on disk marked changed are clean from now on.
            spill.table.next_epoch();
        }
    }

    /// Replaces the table's entries with those of a snapshot table written by
    /// [`KeyedState::snapshot_into`]; `key` parses key bytes, `value` decodes a value. Every entry
    /// comes back into memory, except on the disk backend once the job's state is over its
    /// budget: the rest go straight to disk.
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
        self.clear();
        self.tracking = false;
        self.rewrite = false;
        // On the disk backend, entries come back into memory while the job is within its
        // budget; the rest go to disk as they are (the snapshot's value bytes are the store's).
        let mut raw: Vec<(&[u8], i64, bool, &[u8])> = Vec::new();
        for (k, touched_ms, v) in keyed_entries(table, &self.id, key_types, format)? {
            if let Some(spill) = self.spill.as_mut()
                && spill.table.over_budget()
            {
                raw.push((k, touched_ms, false, v));
                if raw.len() >= 4096 {
                    spill.table.put_all(raw.drain(..))?;
                }
                spill.cold += 1;
                continue;
            }
            let mut d = Dec::new(v);
            let value = value(&mut d)?;
            d.finish()?;
            let key = key(k);
            if let Some(spill) = self.spill.as_mut() {
                let bytes = spill.measure(&key, &value);
                spill.hot_bytes += bytes;
                spill.table.charge(bytes);
            }
            self.entries.insert(
                key,
                Entry {
                    value,
                    touched_ms,
                    dirty: false,
                    access: 0,
                },
            );
        }
        if let Some(spill) = self.spill.as_mut() {
            spill.table.put_all(raw)?;
            // Measured again (and moved to disk if need be) on the next writes.
            spill.writes = usize::MAX / 2;
        }
        Ok(())
    }

    /// Drops keys not written for longer than the TTL (no-op without a TTL); returns how many.
    /// Entries on disk are swept at most once per TTL (an expired one is never returned: it is
    /// dropped when read).
    ///
    /// # Errors
    /// Disk errors.
    pub fn expire(&mut self, now_ms: i64) -> Result<usize> {
        let Some(ttl) = self.ttl else { return Ok(0) };
        let limit = now_ms - ttl.as_millis() as i64;
        let before = self.len();
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
        if let Some(spill) = self.spill.as_mut()
            && spill.cold > 0
            && spill.table.sweep_due(now_ms, ttl)
        {
            let mut gone = Vec::new();
            for item in spill.table.scan() {
                let (key, cold) = item?;
                if cold.touched_ms <= limit {
                    gone.push(key);
                }
            }
            for key in &gone {
                spill.table.remove(key)?;
                if self.tracking {
                    self.removed.push(spill.parser.parse(key).owned());
                }
            }
            spill.cold -= gone.len();
        }
        Ok(before - self.len())
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
        *s.get_or_insert_with(&rows.row(0).owned(), || 0).unwrap() += 5;
        s.insert(rows.row(1).owned(), 7).unwrap();
        assert_eq!(s.get(&rows.row(0).owned()).unwrap(), Some(&5));
        let cols = enc.decode(s.iter().map(|(k, _)| k)).unwrap();
        assert_eq!(cols[0].len(), 2);
        assert_eq!(s.expire(now_ms() - 1000).unwrap(), 0);
        assert_eq!(s.expire(now_ms() + 1000).unwrap(), 2);
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
            s.insert(k.clone(), i as i64).unwrap();
        }
        // Before the first snapshot nothing is tracked; a delta request writes in full.
        let mut chain = take(&mut s, true);
        assert!(!chain.has_deltas());
        assert_eq!(entries_of(&chain, "op.t").len(), 1000);
        // Rounds of a few changes: updates (twice to the same key), removals, a removal then a
        // re-insert, an insert of a key removed earlier, drains and TTL-free get_mut.
        for round in 0..5usize {
            for k in keys.iter().skip(round * 7).take(5) {
                *s.get_or_insert_with(k, || 0).unwrap() += 100;
                *s.get_mut(k).unwrap().unwrap() += 1;
            }
            s.remove(&keys[500 + round]).unwrap();
            s.remove(&keys[600 + round]).unwrap();
            s.insert(keys[600 + round].clone(), -1).unwrap();
            if round > 0 {
                s.insert(keys[500 + round - 1].clone(), 42).unwrap();
            }
            let drained = s.drain_where(|_, v| *v == 990 + round as i64).unwrap();
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
        s.insert(keys[1].clone(), 5).unwrap();
        let delta = take(&mut s, true);
        assert!(!delta.has_deltas());
        let merged = merge(chain, delta).unwrap();
        assert_eq!(
            entries_of(&merged, "op.t"),
            vec![(keys[1].row().as_ref().to_vec(), 5)]
        );
    }

    /// The memory estimates of the disk backend's budget against what the allocator hands out
    /// (requested bytes, counted per thread): a table of join-like buckets (a hash map of rows
    /// per key, mostly small) and B-trees of rows (MIN / MAX accumulators). The estimate before
    /// (payload plus 48 bytes a row) came to 0.63 of it for these buckets.
    #[test]
    fn memory_estimates_follow_the_allocator() {
        use crate::stream::spill::heap;
        use crate::test_alloc::held;
        use datafusion::arrow::array::{Int64Array, StringArray};
        use datafusion::arrow::row::{RowConverter, SortField};
        use std::collections::{BTreeMap, HashMap};

        let enc = KeyEncoder::new(&[DataType::Int64]).unwrap();
        let rows = RowConverter::new(vec![
            SortField::new(DataType::Int64),
            SortField::new(DataType::Utf8),
        ])
        .unwrap();
        let make_rows = |k: i64, n: i64| {
            let ids = Int64Array::from_iter_values((0..n).map(|i| k * 10 + i));
            let names = StringArray::from_iter_values(
                (0..n).map(|i| format!("name-{k}-{i}-{}", "x".repeat((k % 40) as usize))),
            );
            rows.convert_columns(&[Arc::new(ids), Arc::new(names)])
                .unwrap()
        };
        let ratio = |estimate: usize, held: isize| estimate as f64 / held as f64;

        let before = held();
        let mut table: KeyedState<HashMap<OwnedRow, (i64, i64)>> = KeyedState::new("op.t", None);
        for k in 0..20_000i64 {
            let key = enc
                .encode(&[Arc::new(Int64Array::from(vec![k]))])
                .unwrap()
                .row(0)
                .owned();
            let converted = make_rows(k, [1, 2, 3, 9][k as usize % 4]);
            let bucket: HashMap<OwnedRow, (i64, i64)> =
                converted.iter().map(|r| (r.owned(), (1, 0))).collect();
            drop(converted);
            table.insert(key, bucket).unwrap();
        }
        let cost = held() - before;
        let estimate: usize = table
            .iter()
            .map(|(k, b)| {
                entry_bytes::<HashMap<OwnedRow, (i64, i64)>>(
                    k,
                    heap::hash_table::<OwnedRow, (i64, i64)>(b.capacity())
                        + b.keys().map(heap::row).sum::<usize>(),
                )
            })
            .sum();
        let r = ratio(estimate, cost);
        assert!(
            (0.85..1.35).contains(&r),
            "buckets: estimate {estimate}, held {cost} ({r:.2})"
        );
        drop(table);

        let before = held();
        let mut trees = Vec::with_capacity(2_000);
        for k in 0..2_000i64 {
            let converted = make_rows(k, 1 + k % 30);
            let tree: BTreeMap<OwnedRow, i64> = converted.iter().map(|r| (r.owned(), 1)).collect();
            drop(converted);
            trees.push(tree);
        }
        let cost = held() - before - heap::vec::<BTreeMap<OwnedRow, i64>>(2_000) as isize;
        let estimate: usize = trees
            .iter()
            .map(|t| heap::btree::<OwnedRow, i64>(t.len()) + t.keys().map(heap::row).sum::<usize>())
            .sum();
        let r = ratio(estimate, cost);
        assert!(
            (0.75..1.35).contains(&r),
            "B-trees: estimate {estimate}, held {cost} ({r:.2})"
        );
    }

    struct I64Codec;

    impl StateCodec<i64> for I64Codec {
        fn encode(&self, _key: &OwnedRow, value: &i64, enc: &mut Enc) -> Result<()> {
            enc.i64(*value);
            Ok(())
        }
        fn decode(&self, dec: &mut Dec) -> Result<i64> {
            dec.i64()
        }
        fn size(&self, _value: &i64) -> usize {
            0
        }
    }

    fn spilling(backend: &Arc<DiskBackend>, enc: &KeyEncoder) -> KeyedState<i64> {
        KeyedState::new("op.t", None)
            .spilling(Some(backend), Arc::new(I64Codec), enc.converter())
            .unwrap()
    }

    /// A spilling table with a tiny budget behaves like a map: random reads, writes, removals,
    /// drains and clears, with delta snapshots merged into a chain that always equals a full
    /// snapshot and the model; restoring the chain gives the same table back.
    #[test]
    fn a_spilling_table_is_a_map_and_its_snapshots_stay_exact() {
        use crate::stream::checkpoint::snapshot::merge;
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(DiskBackend::new(16 << 10, dir.path().to_path_buf()));
        let enc = KeyEncoder::new(&[DataType::Int64]).unwrap();
        let keys: Vec<OwnedRow> = {
            let rows = enc
                .encode(&[Arc::new(Int64Array::from_iter_values(0..3000)) as ArrayRef])
                .unwrap();
            (0..3000).map(|i| rows.row(i).owned()).collect()
        };
        let mut s = spilling(&backend, &enc);
        let mut model: HashMap<usize, i64> = HashMap::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut chain = take(&mut s, false);
        let mut spilled = 0;
        for round in 0..12 {
            for _ in 0..4000 {
                let i = rng.random_range(0..keys.len());
                match rng.random_range(0..10) {
                    0..=4 => {
                        *s.get_or_insert_with(&keys[i], || 0).unwrap() += 3;
                        *model.entry(i).or_insert(0) += 3;
                    }
                    5 => {
                        if let Some(v) = s.get_mut(&keys[i]).unwrap() {
                            *v -= 1;
                        }
                        if let Some(v) = model.get_mut(&i) {
                            *v -= 1;
                        }
                    }
                    6 => {
                        s.insert(keys[i].clone(), i as i64).unwrap();
                        model.insert(i, i as i64);
                    }
                    7 => {
                        assert_eq!(s.remove(&keys[i]).unwrap(), model.remove(&i));
                    }
                    _ => {
                        assert_eq!(s.get(&keys[i]).unwrap().copied(), model.get(&i).copied());
                    }
                }
            }
            spilled = spilled.max(s.cold_len());
            if round == 5 {
                let drained = s.drain_where(|_, v| *v % 7 == 0).unwrap();
                let expected = model.values().filter(|v| *v % 7 == 0).count();
                assert_eq!(drained.len(), expected);
                model.retain(|_, v| *v % 7 != 0);
            }
            if round == 9 {
                s.clear();
                model.clear();
                for i in (0..keys.len()).step_by(5) {
                    s.insert(keys[i].clone(), 1).unwrap();
                    model.insert(i, 1);
                }
            }
            assert_eq!(s.len(), model.len(), "round {round}");
            chain = merge(chain, take(&mut s, true)).unwrap();
            let expected: Vec<(Vec<u8>, i64)> = {
                let mut v: Vec<_> = model
                    .iter()
                    .map(|(i, v)| (keys[*i].row().as_ref().to_vec(), *v))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(entries_of(&chain, "op.t"), expected, "round {round}");
        }
        assert!(spilled > 1000, "only {spilled} entries went to disk");
        // Restore the chain into a fresh spilling table: the same entries, and no more of them
        // in memory than the budget allows (the rest go straight to disk).
        drop(s);
        assert_eq!(backend.used(), 0);
        let mut restored = spilling(&backend, &enc);
        let parser = enc.converter().parser();
        restored
            .restore(
                chain.get("op.t").unwrap(),
                &[DataType::Int64],
                "t/1",
                |b| parser.parse(b).owned(),
                |d| d.i64(),
            )
            .unwrap();
        assert!(
            // (at most one entry past the budget: the one that crossed it)
            restored.cold_len() > model.len() / 2 && backend.used() <= (16 << 10) + 256,
            "{} of {} entries on disk, {} bytes in memory",
            restored.cold_len(),
            model.len(),
            backend.used()
        );
        assert_eq!(restored.len(), model.len());
        let full = take(&mut restored, false);
        assert_eq!(entries_of(&full, "op.t"), entries_of(&chain, "op.t"));
        for (i, v) in &model {
            assert_eq!(restored.get(&keys[*i]).unwrap(), Some(v));
        }
        assert_eq!(restored.len(), model.len());
    }
}
