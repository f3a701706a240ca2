//! The on-disk tier of keyed state (`'state.backend.type' = 'disk'`). It sits under
//! [`super::state::KeyedState`]: operators keep reading and writing their state tables as before,
//! the hot entries stay decoded in memory, and when the job's state grows past its memory budget
//! (`'state.backend.memory-budget'`) the least recently used entries move to a local LSM store and
//! come back on their next access.
//!
//! **The store.** One [fjall](https://docs.rs/fjall) database per job, in a scratch directory under
//! `'state.backend.local-dir'` (the system's temporary directory by default), removed when the job
//! ends. fjall is a maintained, pure-Rust LSM tree (the design of RocksDB, which Flink's on-disk
//! backend uses): writes go to a memtable and are flushed as immutable sorted files, which suits
//! state that is written much more than it is scanned, builds on stable Rust without a C++
//! toolchain (RocksDB's bindings add minutes to every clean build on a 2-core machine), and keeps
//! its memory to a bounded block cache and memtable. The store is a cache of the job's state, not
//! its durable copy: checkpoints write the state in their own format (and restores read it back),
//! so the store needs no journal syncs and a job that restarts starts from an empty store.
//!
//! **Encoding.** A cold entry's value is stored in exactly the encoding of a checkpoint's keyed
//! table (the operator's [`StateCodec`], the same bytes [`super::checkpoint::snapshot`] writes),
//! after a small header: the entry's last write time and whether it changed since the last
//! checkpoint. So a checkpoint copies cold entries byte for byte, without decoding them.
//!
//! **Keys.** Every state table gets a 4-byte prefix when it is created; its entries are stored
//! under `prefix ++ key row bytes`. Tables of one job share the store and the budget.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::row::OwnedRow;

use super::checkpoint::snapshot::{Dec, Enc};
use crate::error::{Error, Result};

/// How an operator's state values are written to bytes and read back: the value encoding of its
/// checkpoint tables, reused by the on-disk tier. A manual:
///
/// - `encode` writes `value` (the key is given for codecs that need it, e.g. to order rows);
///   `decode` must read back exactly what `encode` wrote, and fail (never panic) on bytes that
///   are not such a value: they may come from a corrupt file.
/// - `size` estimates the heap bytes `value` owns beyond its own inline size (the table counts
///   that, with its slot), as the allocator hands them out: use [`heap`] (hash tables by their
///   capacity, allocations by size class). It decides when the budget is reached, and an estimate
///   that counts only the payload lets the real memory run to twice the budget and more.
/// - The codec is shared by every instance of the operator (`Send + Sync`), and must not keep
///   per-instance state.
pub trait StateCodec<V>: Send + Sync {
    /// Writes `value` (of `key`).
    ///
    /// # Errors
    /// Values that cannot be encoded.
    fn encode(&self, key: &OwnedRow, value: &V, enc: &mut Enc) -> Result<()>;

    /// Reads a value written by [`StateCodec::encode`].
    ///
    /// # Errors
    /// `External` ("corrupt checkpoint state") for bytes that are not a value.
    fn decode(&self, dec: &mut Dec) -> Result<V>;

    /// Approximate bytes `value` holds in memory.
    fn size(&self, value: &V) -> usize;
}

/// Estimates of what state costs on the heap, for the memory budget: what the allocator hands out
/// (its size classes), hash tables by their capacity (their slots exist whether filled or not),
/// B-trees by their nodes. Estimates, not measurements: `state::tests` checks them against a
/// counting allocator.
pub mod heap {
    use datafusion::arrow::row::OwnedRow;

    /// Bytes an allocation of `n` bytes takes (mimalloc's size classes step by 16 bytes up to
    /// 128, then by about an eighth).
    pub fn alloc(n: usize) -> usize {
        match n {
            0 => 0,
            1..=128 => n.div_ceil(16) * 16,
            _ => n + n / 8,
        }
    }

    /// The heap bytes of a row (its bytes; the `OwnedRow` itself is inline where it is kept).
    pub fn row(r: &OwnedRow) -> usize {
        alloc(r.row().as_ref().len())
    }

    /// The heap bytes of a `HashMap<K, V>` whose `capacity()` is `capacity`: its buckets (a slot
    /// and a control byte each, a power of two holding `capacity` at 7/8 load) and 16 control
    /// bytes more.
    pub fn hash_table<K, V>(capacity: usize) -> usize {
        if capacity == 0 {
            return 0;
        }
        let buckets = if capacity < 8 {
            (capacity + 1).next_power_of_two()
        } else {
            (capacity * 8 / 7).next_power_of_two()
        };
        alloc(buckets * (std::mem::size_of::<(K, V)>() + 1) + 16)
    }

    /// The heap bytes of a `BTreeMap<K, V>` of `len` entries: nodes of up to 11 entries, about
    /// two thirds full, plus each node's header and edges.
    pub fn btree<K, V>(len: usize) -> usize {
        len * (std::mem::size_of::<K>() + std::mem::size_of::<V>()) * 3 / 2 + len.div_ceil(7) * 112
    }

    /// The heap bytes of a `Vec<T>` of `capacity`.
    pub fn vec<T>(capacity: usize) -> usize {
        alloc(capacity * std::mem::size_of::<T>())
    }
}

/// `'state.backend.type'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Every entry on the heap (`hashmap`, Flink's default).
    Heap,
    /// Entries beyond the memory budget on local disk (`disk`; Flink's `rocksdb` and `forst`
    /// select it too).
    Disk,
}

impl BackendKind {
    /// Parses `'state.backend.type'`.
    ///
    /// # Errors
    /// `Invalid` for another name.
    pub fn parse(text: &str) -> Result<BackendKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "hashmap" | "heap" | "memory" => Ok(BackendKind::Heap),
            "disk" | "rocksdb" | "forst" => Ok(BackendKind::Disk),
            other => Err(Error::invalid(format!(
                "unknown 'state.backend.type' '{other}': expected 'hashmap' (state on the heap) \
                 or 'disk' (state beyond 'state.backend.memory-budget' on local disk; 'rocksdb' \
                 and 'forst' select it too)"
            ))),
        }
    }
}

/// Entries moved to disk by every job of the process so far (a metric; tests check that a
/// job with a small budget really spilled).
static SPILLED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Entries moved to disk by every job of this process so far.
pub fn spilled_entries() -> u64 {
    SPILLED.load(Ordering::Relaxed)
}

/// The default `'state.backend.memory-budget'`.
pub const DEFAULT_BUDGET: usize = 256 << 20;

/// The disk backend of one job: its budget, the bytes its hot entries hold, and the store
/// (opened on first use).
pub struct DiskBackend {
    budget: usize,
    dir: PathBuf,
    used: AtomicUsize,
    next_table: AtomicU32,
    store: Mutex<Option<Arc<Store>>>,
    /// When [`DiskBackend::trace`] last wrote its line (ms since the epoch).
    traced_ms: AtomicU64,
}

impl std::fmt::Debug for DiskBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskBackend")
            .field("budget", &self.budget)
            .field("dir", &self.dir)
            .field("used", &self.used())
            .finish()
    }
}

struct Store {
    // Field order: the keyspace and database close before the directory is removed.
    data: fjall::Keyspace,
    db: fjall::Database,
    _dir: tempfile::TempDir,
}

/// The name prefix of a job's store directory, and the file in it naming the owning process.
const STORE_PREFIX: &str = "weir-state-";
const OWNER_FILE: &str = "weir-owner.pid";

/// Removes the store directories under `dir` left by processes that no longer run (a job's
/// directory goes when the job ends, but not when its process is killed). A directory whose
/// owner cannot be told (no owner file yet, or not Linux) is left alone.
fn remove_orphans(dir: &std::path::Path) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_store = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(STORE_PREFIX));
        let Some(pid) = is_store
            .then(|| std::fs::read_to_string(path.join(OWNER_FILE)).ok())
            .flatten()
            .and_then(|p| p.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(
                    "removed the state store {} of process {pid}, which no longer runs",
                    path.display()
                ),
                Err(e) => tracing::warn!(
                    "cannot remove the stale state store {}: {e}",
                    path.display()
                ),
            }
        }
    }
}

fn store_error(e: fjall::Error) -> Error {
    Error::external(format!("the on-disk state store failed: {e}"))
}

impl DiskBackend {
    /// A backend with `budget` bytes of hot state, storing the rest under `dir`.
    pub fn new(budget: usize, dir: PathBuf) -> DiskBackend {
        DiskBackend {
            budget,
            dir,
            used: AtomicUsize::new(0),
            next_table: AtomicU32::new(0),
            store: Mutex::new(None),
            traced_ms: AtomicU64::new(0),
        }
    }

    /// At most every 10 s, a `debug` line with the hot state and the store's memory (memtables,
    /// block cache) and files: what to look at when a job's memory exceeds its budget
    /// (`RUST_LOG=weir::stream::spill=debug`).
    pub fn trace(&self) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let last = self.traced_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 10_000
            || self
                .traced_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Ok(guard) = self.store.lock() else {
            return;
        };
        let Some(store) = guard.as_ref() else {
            return;
        };
        tracing::debug!(
            hot_bytes = self.used(),
            budget = self.budget,
            write_buffer = store.db.write_buffer_size(),
            sealed_memtables = store.data.sealed_memtable_count(),
            outstanding_flushes = store.db.outstanding_flushes(),
            cache = store.db.cache_size(),
            tables = store.data.table_count(),
            l0_tables = store.data.l0_table_count(),
            disk = store.data.disk_space(),
            spilled = spilled_entries(),
            "disk state backend"
        );
    }

    /// Bytes the hot entries of every table hold (as their codecs estimate).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    fn sub(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    fn store(&self) -> Result<Arc<Store>> {
        let mut guard = self
            .store
            .lock()
            .map_err(|_| Error::internal("the state store lock is poisoned"))?;
        if let Some(store) = guard.as_ref() {
            return Ok(Arc::clone(store));
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(self.dir.display().to_string(), e))?;
        remove_orphans(&self.dir);
        let dir = tempfile::Builder::new()
            .prefix(STORE_PREFIX)
            .tempdir_in(&self.dir)
            .map_err(|e| Error::io(self.dir.display().to_string(), e))?;
        let owner = dir.path().join(OWNER_FILE);
        std::fs::write(&owner, std::process::id().to_string())
            .map_err(|e| Error::io(owner.display().to_string(), e))?;
        // The block cache and memtable come out of the budget's share for the store.
        let cache = (self.budget / 8).clamp(4 << 20, 64 << 20) as u64;
        let memtable = (self.budget / 8).clamp(2 << 20, 32 << 20) as u64;
        let db = fjall::Database::builder(dir.path().join("store"))
            .cache_size(cache)
            .manual_journal_persist(true)
            .open()
            .map_err(store_error)?;
        let data = db
            .keyspace("state", || {
                fjall::KeyspaceCreateOptions::default()
                    .max_memtable_size(memtable)
                    .manual_journal_persist(true)
            })
            .map_err(store_error)?;
        let store = Arc::new(Store {
            data,
            db,
            _dir: dir,
        });
        *guard = Some(Arc::clone(&store));
        Ok(store)
    }

    /// A new table in the store (each state table gets its own key prefix).
    ///
    /// # Errors
    /// The store cannot be created.
    pub fn table(self: &Arc<Self>) -> Result<SpillTable> {
        let prefix = self
            .next_table
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes();
        Ok(SpillTable {
            backend: Arc::clone(self),
            store: self.store()?,
            prefix,
            epoch: 0,
            last_sweep_ms: 0,
            charged: 0,
        })
    }
}

/// One state table's part of the store. Values are `touched_ms (8 bytes LE) ++ changed in
/// (8 bytes LE) ++ the codec's bytes`, where "changed in" is 1 + the snapshot epoch in which the
/// entry changed (0: unchanged), so a snapshot makes every stored entry clean without touching
/// it.
pub struct SpillTable {
    backend: Arc<DiskBackend>,
    store: Arc<Store>,
    prefix: [u8; 4],
    /// Snapshots taken of the table so far.
    epoch: u64,
    /// When entries idle past the TTL were last swept.
    last_sweep_ms: i64,
    /// Bytes this table has charged to the budget (given back when it is dropped).
    charged: usize,
}

impl Drop for SpillTable {
    fn drop(&mut self) {
        self.backend.sub(self.charged);
    }
}

/// A cold entry as stored.
pub struct ColdEntry {
    pub touched_ms: i64,
    changed_in: u64,
    /// The codec's bytes (a checkpoint's value bytes).
    pub value: Vec<u8>,
}

const HEADER: usize = 16;

impl ColdEntry {
    fn parse(bytes: &[u8]) -> Result<ColdEntry> {
        let (Some(ms), Some(changed)) = (bytes.get(..8), bytes.get(8..HEADER)) else {
            return Err(Error::external(
                "the on-disk state store returned a short entry",
            ));
        };
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            w
        };
        Ok(ColdEntry {
            touched_ms: i64::from_le_bytes(word(ms)),
            changed_in: u64::from_le_bytes(word(changed)),
            value: bytes[HEADER..].to_vec(),
        })
    }
}

impl SpillTable {
    pub fn backend(&self) -> &Arc<DiskBackend> {
        &self.backend
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key);
        k
    }

    /// Writes entries (key row bytes, last write, changed since the last checkpoint, value
    /// bytes) in one batch.
    ///
    /// # Errors
    /// Store errors.
    pub fn put_all<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a [u8], i64, bool, &'a [u8])>,
    ) -> Result<()> {
        let mut batch = self.store.db.batch();
        let mut n = 0;
        for (key, touched_ms, dirty, value) in entries {
            n += 1;
            let mut bytes = Vec::with_capacity(HEADER + value.len());
            bytes.extend_from_slice(&touched_ms.to_le_bytes());
            let changed_in = if dirty { self.epoch + 1 } else { 0 };
            bytes.extend_from_slice(&changed_in.to_le_bytes());
            bytes.extend_from_slice(value);
            let k = self.key(key);
            batch.insert(&self.store.data, k, bytes);
        }
        SPILLED.fetch_add(n, Ordering::Relaxed);
        batch.commit().map_err(store_error)
    }

    /// The entry of `key`, if stored.
    ///
    /// # Errors
    /// Store errors.
    pub fn get(&self, key: &[u8]) -> Result<Option<ColdEntry>> {
        let k = self.key(key);
        match self.store.data.get(k).map_err(store_error)? {
            Some(bytes) => ColdEntry::parse(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes the entry of `key` (a no-op when there is none).
    ///
    /// # Errors
    /// Store errors.
    pub fn remove(&self, key: &[u8]) -> Result<()> {
        let k = self.key(key);
        self.store.data.remove(k).map_err(store_error)
    }

    /// Every stored entry of the table, in key order: `(key row bytes, entry)`.
    pub fn scan(&self) -> impl Iterator<Item = Result<(Vec<u8>, ColdEntry)>> + '_ {
        self.store.data.prefix(self.prefix).map(|guard| {
            let (k, v) = guard.into_inner().map_err(store_error)?;
            let key = k
                .get(self.prefix.len()..)
                .ok_or_else(|| Error::external("the on-disk state store returned a short key"))?
                .to_vec();
            Ok((key, ColdEntry::parse(&v)?))
        })
    }

    /// Forgets every entry: the table moves to a fresh prefix (the old entries stay in the
    /// store, unread, until the job ends).
    pub fn renew(&mut self) {
        self.prefix = self
            .backend
            .next_table
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes();
    }

    /// Whether `entry` changed since the table's last snapshot.
    pub fn is_dirty(&self, entry: &ColdEntry) -> bool {
        entry.changed_in == self.epoch + 1
    }

    /// A snapshot was taken: every stored entry is unchanged since.
    pub fn next_epoch(&mut self) {
        self.epoch += 1;
    }

    /// Whether entries idle past `ttl` are due to be swept (at most once per TTL); if so, the
    /// sweep is taken to happen now.
    pub fn sweep_due(&mut self, now_ms: i64, ttl: std::time::Duration) -> bool {
        let due = now_ms - self.last_sweep_ms >= ttl.as_millis() as i64;
        if due {
            self.last_sweep_ms = now_ms;
        }
        due
    }

    /// Counts `bytes` more of hot state against the budget.
    pub fn charge(&mut self, bytes: usize) {
        self.charged += bytes;
        self.backend.add(bytes);
    }

    /// Counts `bytes` less of hot state.
    pub fn release(&mut self, bytes: usize) {
        let bytes = bytes.min(self.charged);
        self.charged -= bytes;
        self.backend.sub(bytes);
    }

    /// The job's state in memory: the hot entries and the store's memtables not yet flushed.
    /// The memtables count up to half the budget: past that the flushes are behind, and
    /// evicting more entries would only add to them.
    fn in_memory(&self) -> usize {
        let unflushed = usize::try_from(self.store.db.write_buffer_size()).unwrap_or(usize::MAX);
        self.backend.used() + unflushed.min(self.backend.budget / 2)
    }

    /// Whether the job's state in memory is over its budget.
    pub fn over_budget(&self) -> bool {
        self.backend.trace();
        self.in_memory() > self.backend.budget
    }

    /// How many bytes to free so the job's state in memory is back at three quarters of its
    /// budget.
    pub fn excess(&self) -> usize {
        self.in_memory().saturating_sub(self.backend.budget / 4 * 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store left by a killed process is removed when another job opens its store in the same
    /// directory; a live process's store and a directory without an owner stay.
    #[test]
    fn stores_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let orphan = dir.path().join("weir-state-orphan");
        let live = dir.path().join("weir-state-live");
        let unknown = dir.path().join("weir-state-unknown");
        for d in [&orphan, &live, &unknown] {
            std::fs::create_dir_all(d.join("store")).unwrap();
        }
        std::fs::write(orphan.join(OWNER_FILE), dead.to_string()).unwrap();
        std::fs::write(live.join(OWNER_FILE), std::process::id().to_string()).unwrap();
        let backend = Arc::new(DiskBackend::new(1 << 20, dir.path().to_path_buf()));
        let table = backend.table().unwrap();
        table.put_all([(&b"k"[..], 1, false, &b"v"[..])]).unwrap();
        assert!(!orphan.exists(), "the dead process's store is still there");
        assert!(live.exists() && unknown.exists());
        let ours: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path().join(OWNER_FILE)).ok()
                    == Some(std::process::id().to_string())
            })
            .collect();
        assert_eq!(ours.len(), 2, "the live store and the new one");
        drop(table);
        drop(backend);
    }
}
