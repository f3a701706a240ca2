//! Where checkpoints live: a directory on an object store (a local directory by default; any
//! `object_store` URL), one sub-directory per job, one per checkpoint:
//!
//! ```text
//! <dir>/<job id>/chk-<n>/<node uid>-<instance>.state   one per task: an encoded StateSnapshot
//! <dir>/<job id>/chk-<n>/_metadata                     the manifest, written last
//! <dir>/<job id>/chk-<n>/<node uid>-<instance>.base.state
//!                                   a compacted chain (incremental checkpoints, see below)
//! ```
//!
//! Incremental checkpoints: a task's file may be a delta over the state the task had at the
//! previous checkpoint. Its manifest entry then lists `base`, the files (paths relative to the
//! job's directory, oldest first, each with size and checksum) that hold that earlier state: a
//! full snapshot and the deltas after it. Loading merges the chain
//! ([`super::snapshot::merge`]). Files are written once and never changed; a chain is shortened
//! in the background by writing its merge as one `.base.state` file ([`CheckpointStore::compact`])
//! that later checkpoints refer to instead. Retention deletes an old checkpoint's manifest and
//! every file of it that no retained checkpoint (and no running job) still refers to.
//!
//! A checkpoint exists only once its `_metadata` is written (a single atomic put); the manifest
//! lists every state file with its size and CRC-32, so a torn or corrupt checkpoint is found
//! when it is read, and [`CheckpointStore::latest`] falls back to the previous complete one with
//! a warning that says why. Savepoints use the same layout in a directory of the user's choice.
//!
//! URLs: a plain path or `file://` (local directory, created if missing), `memory://<name>` (an
//! in-process store shared by name, for tests). Other schemes are refused with a clear error
//! until their object_store features are built in.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::snapshot::{StateSnapshot, merge};
use crate::error::{Error, Result};

/// The manifest format written by this version (2: tasks may list `base` files; format 1,
/// without them, is still read).
pub const FORMAT: u32 = 2;
const MANIFEST: &str = "_metadata";
/// The largest checkpoint id a manifest may hold (2^53: exact in every JSON reader; a job
/// checkpointing every millisecond reaches it after 285,000 years).
const MAX_CHECKPOINT_ID: u64 = 1 << 53;
/// The most key groups a job may have (`'pipeline.max-parallelism'`, as in Flink).
const MAX_KEY_GROUPS: usize = 32768;

/// The manifest of one complete checkpoint (`_metadata`, JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub checkpoint: u64,
    pub created_ms: i64,
    /// Taken after every input of a bounded job ended.
    pub final_checkpoint: bool,
    /// Written by `STOP JOB ... WITH SAVEPOINT`.
    pub savepoint: bool,
    /// The job's number of key groups (`'pipeline.max-parallelism'`): keyed state is split by
    /// key group, so a restore may change parallelism but must keep this.
    #[serde(default = "default_key_groups")]
    pub max_parallelism: usize,
    pub nodes: Vec<ManifestNode>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestNode {
    pub uid: String,
    /// The operator's name as EXPLAIN shows it.
    pub name: String,
    pub parallelism: usize,
    /// Per instance.
    pub tasks: Vec<ManifestTask>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestTask {
    /// Relative to the checkpoint's directory.
    pub file: String,
    pub size: u64,
    pub crc32: u32,
    /// The task had ended (its input was exhausted) when the checkpoint was taken.
    pub finished: bool,
    /// When `file` is a delta: the files holding the state it applies to, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base: Vec<StateFile>,
}

/// One state file a checkpoint refers to, by its path relative to the job's directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct StateFile {
    pub file: String,
    pub size: u64,
    pub crc32: u32,
}

/// Key groups of a manifest that does not record them (written before rescaling existed).
fn default_key_groups() -> usize {
    128
}

impl Manifest {
    /// Bytes written by this checkpoint (its own state files).
    pub fn size(&self) -> u64 {
        self.nodes
            .iter()
            .flat_map(|n| n.tasks.iter())
            .map(|t| t.size)
            .sum()
    }

    /// Bytes of every state file the checkpoint needs (its own and the bases it refers to).
    pub fn full_size(&self) -> u64 {
        self.size()
            + self
                .nodes
                .iter()
                .flat_map(|n| n.tasks.iter())
                .flat_map(|t| t.base.iter())
                .map(|f| f.size)
                .sum::<u64>()
    }

    /// Every task's chain: its base files and its own file (relative to the job's directory),
    /// by node index and instance.
    pub fn chains(&self) -> HashMap<(usize, usize), Vec<StateFile>> {
        let mut chains = HashMap::new();
        for (n, node) in self.nodes.iter().enumerate() {
            for (i, task) in node.tasks.iter().enumerate() {
                let mut chain = task.base.clone();
                chain.push(StateFile {
                    file: format!("chk-{}/{}", self.checkpoint, task.file),
                    size: task.size,
                    crc32: task.crc32,
                });
                chains.insert((n, i), chain);
            }
        }
        chains
    }
}

/// A checkpoint read back and verified: its manifest and each task's state, by node index in
/// the manifest and instance.
pub struct LoadedCheckpoint {
    /// Where it was read from (a directory URL-ish path, for messages).
    pub location: String,
    pub manifest: Manifest,
    pub states: HashMap<(usize, usize), Arc<StateSnapshot>>,
}

/// A directory of checkpoints on an object store.
#[derive(Clone)]
pub struct CheckpointStore {
    store: Arc<dyn ObjectStore>,
    root: Path,
    /// The directory as the user named it.
    display: String,
}

fn named_memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    STORES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The directory holding `dir` (a checkpoint's directory: its job's directory).
fn parent(dir: &Path) -> Path {
    let parts: Vec<_> = dir.parts().collect();
    let n = parts.len().saturating_sub(1);
    Path::from_iter(parts.into_iter().take(n))
}

fn store_error(what: impl std::fmt::Display, e: object_store::Error) -> Error {
    Error::external(format!("checkpoint store: {what}: {e}"))
}

impl CheckpointStore {
    /// Opens the checkpoint directory `dir` (see the module documentation for the URLs).
    ///
    /// # Errors
    /// `Invalid` for an unsupported or malformed URL; `Io` when a local directory cannot be
    /// created.
    pub fn open(dir: &str) -> Result<CheckpointStore> {
        let display = dir.trim_end_matches('/').to_string();
        if let Some(name) = dir.strip_prefix("memory://") {
            let mut stores = named_memory_stores()
                .lock()
                .map_err(|_| Error::internal("memory store registry poisoned"))?;
            let store = Arc::clone(
                stores
                    .entry(name.split('/').next().unwrap_or("").to_string())
                    .or_insert_with(|| Arc::new(InMemory::new())),
            );
            let rest = name.split_once('/').map(|(_, r)| r).unwrap_or("");
            return Ok(CheckpointStore {
                store,
                root: Path::from(rest),
                display,
            });
        }
        let local = match dir.strip_prefix("file://") {
            Some(p) => p.to_string(),
            None if dir.contains("://") => {
                let scheme = dir.split("://").next().unwrap_or("");
                return Err(Error::not_supported(format!(
                    "checkpoint directory '{dir}': the '{scheme}://' object store is not built into \
                     this weir yet; use a local path, file:// or memory://"
                )));
            }
            None => dir.to_string(),
        };
        if local.is_empty() {
            return Err(Error::invalid("the checkpoint directory is empty"));
        }
        let path = std::path::absolute(&local)
            .map_err(|e| Error::io(format!("checkpoint directory '{local}'"), e))?;
        std::fs::create_dir_all(&path).map_err(|e| {
            Error::io(
                format!("cannot create checkpoint directory '{}'", path.display()),
                e,
            )
        })?;
        // The store is the whole file system and the directory a path in it, so that a
        // checkpoint named directly (`<job>/chk-<n>`) still reaches the files of earlier
        // checkpoints its incremental chains refer to (in its parent, the job's directory).
        let root = Path::from_absolute_path(&path)
            .map_err(|e| store_error(format!("'{}'", path.display()), e.into()))?;
        Ok(CheckpointStore {
            store: Arc::new(object_store::local::LocalFileSystem::new()),
            root,
            display: path.display().to_string(),
        })
    }

    /// The sub-directory `name` (a job's directory).
    pub fn child(&self, name: &str) -> CheckpointStore {
        CheckpointStore {
            store: Arc::clone(&self.store),
            root: self.root.clone().join(name),
            display: format!("{}/{name}", self.display),
        }
    }

    /// The directory as a string for messages and `SHOW JOBS` (a path, or the URL).
    pub fn location(&self) -> &str {
        &self.display
    }

    fn chk_dir(&self, id: u64) -> Path {
        self.root.clone().join(format!("chk-{id}"))
    }

    /// Writes checkpoint `manifest.checkpoint`: every task's state, then the manifest. `states`
    /// are in manifest order (node, then instance); the manifest's file names, sizes and
    /// checksums are filled in here. Returns the manifest as written.
    ///
    /// # Errors
    /// Store errors (the checkpoint then does not exist: no manifest was written).
    pub async fn write(
        &self,
        mut manifest: Manifest,
        states: Vec<Vec<Vec<u8>>>,
    ) -> Result<Manifest> {
        let dir = self.chk_dir(manifest.checkpoint);
        let mut puts = Vec::new();
        for (node, per_instance) in manifest.nodes.iter_mut().zip(states) {
            for (instance, (task, bytes)) in node.tasks.iter_mut().zip(per_instance).enumerate() {
                task.file = format!("{}-{instance}.state", node.uid);
                task.size = bytes.len() as u64;
                task.crc32 = crc32fast::hash(&bytes);
                let path = dir.clone().join(task.file.as_str());
                let store = Arc::clone(&self.store);
                puts.push(async move {
                    store
                        .put(&path, PutPayload::from(bytes))
                        .await
                        .map_err(|e| store_error(format!("writing {path}"), e))
                });
            }
        }
        futures::future::try_join_all(puts).await?;
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::internal(format!("checkpoint manifest: {e}")))?;
        let path = dir.join(MANIFEST);
        self.store
            .put(&path, PutPayload::from(json))
            .await
            .map_err(|e| store_error(format!("writing {path}"), e))?;
        Ok(manifest)
    }

    /// The ids of the checkpoints in this directory that have a manifest, newest first.
    ///
    /// # Errors
    /// Store errors.
    pub async fn complete_ids(&self) -> Result<Vec<u64>> {
        let listing = self
            .store
            .list_with_delimiter(Some(&self.root))
            .await
            .map_err(|e| store_error(format!("listing '{}'", self.display), e))?;
        let mut ids = Vec::new();
        for dir in listing.common_prefixes {
            let Some(id) = dir
                .filename()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if self.store.head(&dir.clone().join(MANIFEST)).await.is_ok() {
                ids.push(id);
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// Whether this directory itself is one checkpoint or savepoint (it has a manifest).
    pub async fn is_checkpoint(&self) -> bool {
        self.store
            .head(&self.root.clone().join(MANIFEST))
            .await
            .is_ok()
    }

    /// Reads and verifies checkpoint `id` of this directory.
    ///
    /// # Errors
    /// `External` for a missing, torn or corrupt checkpoint (bad manifest, missing file, size
    /// or checksum mismatch, undecodable state).
    pub async fn load(&self, id: u64) -> Result<LoadedCheckpoint> {
        self.load_dir(&self.chk_dir(id), format!("{}/chk-{id}", self.display))
            .await
    }

    /// Reads and verifies the checkpoint or savepoint that this directory is.
    ///
    /// # Errors
    /// As [`CheckpointStore::load`].
    pub async fn load_here(&self) -> Result<LoadedCheckpoint> {
        self.load_dir(&self.root, self.display.clone()).await
    }

    /// Reads the manifest of checkpoint directory `dir`; errors are the text of what is wrong.
    async fn manifest(&self, dir: &Path) -> std::result::Result<Manifest, String> {
        let path = dir.clone().join(MANIFEST);
        let bytes = self
            .store
            .get(&path)
            .await
            .map_err(|e| format!("no manifest: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("manifest unreadable: {e}"))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| format!("manifest is torn or corrupt: {e}"))?;
        if !(1..=FORMAT).contains(&manifest.format) {
            return Err(format!(
                "manifest format {} (this weir reads formats 1 to {FORMAT})",
                manifest.format
            ));
        }
        // Values no writer produces: the manifest is corrupt (and they would overflow the next
        // checkpoint's id or the key-group arithmetic).
        if manifest.checkpoint > MAX_CHECKPOINT_ID {
            return Err(format!(
                "manifest is corrupt: checkpoint id {} is out of range",
                manifest.checkpoint
            ));
        }
        if !(1..=MAX_KEY_GROUPS).contains(&manifest.max_parallelism) {
            return Err(format!(
                "manifest is corrupt: {} key groups ('pipeline.max-parallelism' is 1 to \
                 {MAX_KEY_GROUPS})",
                manifest.max_parallelism
            ));
        }
        Ok(manifest)
    }

    async fn load_dir(&self, dir: &Path, location: String) -> Result<LoadedCheckpoint> {
        let bad = |what: String| Error::external(format!("checkpoint {location}: {what}"));
        let manifest = self.manifest(dir).await.map_err(bad)?;
        let job_dir = parent(dir);
        let mut states = HashMap::new();
        for (n, node) in manifest.nodes.iter().enumerate() {
            if node.tasks.len() != node.parallelism {
                return Err(bad(format!(
                    "node {} lists {} tasks for parallelism {}",
                    node.uid,
                    node.tasks.len(),
                    node.parallelism
                )));
            }
            for (i, task) in node.tasks.iter().enumerate() {
                // Every file of a task's chain is named after the task: a manifest that gives a
                // task another's state is corrupt (restoring it would mix up positions, keys
                // and output files).
                let stem = format!("{}-{i}", node.uid);
                let names = std::iter::once(task.file.as_str())
                    .chain(task.base.iter().map(|f| f.file.as_str()));
                for name in names {
                    let base = name.rsplit('/').next().unwrap_or(name);
                    if base != format!("{stem}.state") && base != format!("{stem}.base.state") {
                        return Err(bad(format!(
                            "manifest is corrupt: task {i} of {} refers to state file {name}",
                            node.uid
                        )));
                    }
                }
                let own = StateFile {
                    file: task.file.clone(),
                    size: task.size,
                    crc32: task.crc32,
                };
                let mut state: Option<StateSnapshot> = None;
                for f in &task.base {
                    let s = self.read_state(&job_dir, f).await.map_err(&bad)?;
                    state = Some(match state {
                        None => s,
                        Some(b) => merge(b, s).map_err(|e| bad(format!("{}: {e}", f.file)))?,
                    });
                }
                let s = self.read_state(dir, &own).await.map_err(&bad)?;
                let state = match state {
                    None if s.has_deltas() => {
                        return Err(bad(format!(
                            "state file {} is a delta but the manifest lists no base",
                            task.file
                        )));
                    }
                    None => s,
                    Some(b) => merge(b, s).map_err(|e| bad(format!("{}: {e}", task.file)))?,
                };
                states.insert((n, i), Arc::new(state));
            }
        }
        Ok(LoadedCheckpoint {
            location,
            manifest,
            states,
        })
    }

    /// Reads, verifies and decodes state file `f` (relative to `dir`). Errors are the text of
    /// what is wrong (the caller says which checkpoint).
    async fn read_state(
        &self,
        dir: &Path,
        f: &StateFile,
    ) -> std::result::Result<StateSnapshot, String> {
        let mut path = dir.clone();
        for part in f.file.split('/') {
            path = path.join(part);
        }
        let data = self
            .store
            .get(&path)
            .await
            .map_err(|e| format!("state file {} is missing: {e}", f.file))?
            .bytes()
            .await
            .map_err(|e| format!("state file {} unreadable: {e}", f.file))?;
        if data.len() as u64 != f.size || crc32fast::hash(&data) != f.crc32 {
            return Err(format!(
                "state file {} is corrupt ({} bytes, expected {}; checksum mismatch)",
                f.file,
                data.len(),
                f.size
            ));
        }
        StateSnapshot::decode(&data).map_err(|e| format!("state file {}: {e}", f.file))
    }

    /// Merges `chain` (files relative to this job directory, oldest first) into one full state
    /// file, written as `chk-<n>/<stem>.base.state` where `chk-<n>` is the directory of the
    /// chain's last file; returns it. The chain's files are left as they are (checkpoints still
    /// refer to them until they are pruned).
    ///
    /// # Errors
    /// `External` for a missing or corrupt file in the chain; store errors.
    pub async fn compact(&self, chain: &[StateFile]) -> Result<StateFile> {
        let last = chain
            .last()
            .ok_or_else(|| Error::internal("compacting an empty chain"))?;
        let bad = |what: String| Error::external(format!("compacting {}: {what}", last.file));
        let mut states = Vec::new();
        for f in chain {
            states.push(self.read_state(&self.root, f).await.map_err(bad)?);
        }
        let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            let mut it = states.into_iter();
            let mut state = it
                .next()
                .ok_or_else(|| Error::internal("compacting an empty chain"))?;
            for s in it {
                state = merge(state, s)?;
            }
            state.encode()
        })
        .await
        .map_err(|e| Error::internal(format!("compacting state: {e}")))??;
        let file = match last.file.strip_suffix(".state") {
            Some(stem) if !stem.ends_with(".base") => format!("{stem}.base.state"),
            _ => {
                return Err(Error::internal(format!(
                    "compacting {}: not a task state file",
                    last.file
                )));
            }
        };
        let compacted = StateFile {
            size: bytes.len() as u64,
            crc32: crc32fast::hash(&bytes),
            file,
        };
        let mut path = self.root.clone();
        for part in compacted.file.split('/') {
            path = path.join(part);
        }
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| store_error(format!("writing {path}"), e))?;
        Ok(compacted)
    }

    /// The newest checkpoint of this directory that reads back whole, and a warning for each
    /// newer one that was skipped (torn or corrupt). `None` when there is none.
    ///
    /// # Errors
    /// Store errors while listing.
    pub async fn latest(&self) -> Result<(Option<LoadedCheckpoint>, Vec<String>)> {
        let mut warnings = Vec::new();
        for id in self.complete_ids().await? {
            match self.load(id).await {
                Ok(c) => return Ok((Some(c), warnings)),
                Err(e) => {
                    let w = format!("{e}; falling back to the previous checkpoint");
                    tracing::warn!("{w}");
                    warnings.push(w);
                }
            }
        }
        Ok((None, warnings))
    }

    /// Deletes checkpoints older than the `retained` newest complete ones, and unfinished
    /// checkpoint directories older than the newest complete one, except the files that a
    /// retained checkpoint refers to as a base or that are in `in_use` (paths relative to the
    /// job's directory: files a running job will refer to).
    ///
    /// # Errors
    /// Store errors.
    pub async fn prune(&self, retained: usize, in_use: &HashSet<String>) -> Result<()> {
        let complete = self.complete_ids().await?;
        let Some(&newest) = complete.first() else {
            return Ok(());
        };
        let keep: Vec<u64> = complete.iter().take(retained.max(1)).copied().collect();
        let mut referenced = in_use.clone();
        for id in &keep {
            // A retained checkpoint whose manifest cannot be read protects nothing: it cannot
            // be loaded anyway.
            if let Ok(m) = self.manifest(&self.chk_dir(*id)).await {
                for chain in m.chains().into_values() {
                    referenced.extend(chain.into_iter().map(|f| f.file));
                }
            }
        }
        let listing = self
            .store
            .list_with_delimiter(Some(&self.root))
            .await
            .map_err(|e| store_error(format!("listing '{}'", self.display), e))?;
        for dir in listing.common_prefixes {
            let Some(id) = dir
                .filename()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let stale = if complete.contains(&id) {
                !keep.contains(&id)
            } else {
                id < newest
            };
            if stale {
                // The manifest first: a half-deleted checkpoint is then simply incomplete.
                let _ = self.store.delete(&dir.clone().join(MANIFEST)).await;
                let files: Vec<_> = self
                    .store
                    .list(Some(&dir))
                    .try_collect()
                    .await
                    .map_err(|e| store_error(format!("listing {dir}"), e))?;
                for f in files {
                    let relative: Vec<String> = f
                        .location
                        .prefix_match(&self.root)
                        .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
                        .unwrap_or_default();
                    if referenced.contains(&relative.join("/")) {
                        continue;
                    }
                    let _ = self.store.delete(&f.location).await;
                }
            }
        }
        Ok(())
    }

    /// Overwrites the bytes of one file (tests: simulate a torn or corrupt checkpoint).
    ///
    /// # Errors
    /// Store errors.
    pub async fn overwrite(&self, relative: &str, bytes: Vec<u8>) -> Result<()> {
        let mut path = self.root.clone();
        for part in relative.split('/') {
            path = path.join(part);
        }
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| store_error(format!("writing {path}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::checkpoint::snapshot::KeyedTableBuilder;
    use datafusion::arrow::datatypes::DataType;

    fn manifest(id: u64) -> Manifest {
        Manifest {
            max_parallelism: 128,
            format: FORMAT,
            checkpoint: id,
            created_ms: 0,
            final_checkpoint: false,
            savepoint: false,
            nodes: vec![ManifestNode {
                uid: "Op-1".into(),
                name: "Op".into(),
                parallelism: 2,
                tasks: vec![
                    ManifestTask {
                        file: String::new(),
                        size: 0,
                        crc32: 0,
                        finished: false,
                        base: Vec::new(),
                    };
                    2
                ],
            }],
        }
    }

    fn state(v: i64) -> Vec<u8> {
        let mut b = KeyedTableBuilder::new(&[DataType::Int64], "t/1");
        b.append(b"k", 0, |e| {
            e.i64(v);
            Ok(())
        })
        .unwrap();
        let mut s = StateSnapshot::new();
        s.put("x", b.finish().unwrap());
        s.encode().unwrap()
    }

    #[tokio::test]
    async fn corrupt_checkpoints_fall_back_and_old_ones_are_pruned() {
        let store = CheckpointStore::open("memory://store-test/jobs")
            .unwrap()
            .child("j1");
        for id in 1..=3 {
            store
                .write(
                    manifest(id),
                    vec![vec![state(id as i64), state(-(id as i64))]],
                )
                .await
                .unwrap();
        }
        assert_eq!(store.complete_ids().await.unwrap(), vec![3, 2, 1]);
        let (c, w) = store.latest().await.unwrap();
        assert_eq!(c.unwrap().manifest.checkpoint, 3);
        assert!(w.is_empty());
        // A flipped byte in a state file of 3, a torn manifest in 2: 1 is the latest good one.
        let mut bytes = state(3);
        let last = bytes.len() - 9;
        bytes[last] ^= 0x40;
        store.overwrite("chk-3/Op-1-1.state", bytes).await.unwrap();
        store
            .overwrite("chk-2/_metadata", b"{\"format\": 1, \"check".to_vec())
            .await
            .unwrap();
        let (c, w) = store.latest().await.unwrap();
        assert_eq!(c.unwrap().manifest.checkpoint, 1);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("chk-3") && w[0].contains("corrupt"), "{w:?}");
        assert!(w[1].contains("chk-2") && w[1].contains("torn"), "{w:?}");
        store.prune(1, &HashSet::new()).await.unwrap();
        assert_eq!(store.complete_ids().await.unwrap(), vec![3]);
        assert!(CheckpointStore::open("s3://bucket/x").is_err());
    }

    /// A snapshot of keyed table `x` with `(key, value)` entries, as a delta when `delta`.
    fn keyed(entries: &[(&str, i64)], removed: &[&str], delta: bool) -> StateSnapshot {
        let mut b = KeyedTableBuilder::new(&[DataType::Int64], "t/1");
        for (k, v) in entries {
            b.append(k.as_bytes(), 0, |e| {
                e.i64(*v);
                Ok(())
            })
            .unwrap();
        }
        let mut s = StateSnapshot::taking(delta);
        if delta {
            s.put_delta(
                "x",
                b.finish().unwrap(),
                datafusion::arrow::array::BinaryArray::from_iter_values(removed),
            )
            .unwrap();
        } else {
            s.put("x", b.finish().unwrap());
        }
        s
    }

    fn values(c: &LoadedCheckpoint, instance: usize) -> Vec<(String, i64)> {
        let t = c.states[&(0, instance)].get("x").unwrap();
        let mut out: Vec<(String, i64)> =
            crate::stream::checkpoint::snapshot::keyed_entries(t, "x", &[DataType::Int64], "t/1")
                .unwrap()
                .map(|(k, _, v)| {
                    let v = crate::stream::checkpoint::snapshot::Dec::new(v)
                        .i64()
                        .unwrap();
                    (String::from_utf8(k.to_vec()).unwrap(), v)
                })
                .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn incremental_chains_load_merged_compact_and_survive_pruning() {
        let store = CheckpointStore::open("memory://store-test/chains")
            .unwrap()
            .child("j1");
        let write = |id: u64, snaps: [StateSnapshot; 2], bases: [Vec<StateFile>; 2]| {
            let store = store.clone();
            async move {
                let mut m = manifest(id);
                for (t, b) in m.nodes[0].tasks.iter_mut().zip(bases) {
                    t.base = b;
                }
                let bytes = snaps.map(|s| s.encode().unwrap()).to_vec();
                store.write(m, vec![bytes]).await.unwrap()
            }
        };
        let m1 = write(
            1,
            [
                keyed(&[("a", 1), ("b", 2)], &[], false),
                keyed(&[("z", 9)], &[], false),
            ],
            [vec![], vec![]],
        )
        .await;
        let c1 = m1.chains();
        let m2 = write(
            2,
            [keyed(&[("a", 10)], &["b"], true), keyed(&[], &[], true)],
            [c1[&(0, 0)].clone(), c1[&(0, 1)].clone()],
        )
        .await;
        assert!(m2.size() < m2.full_size());
        let c2 = m2.chains();
        let m3 = write(
            3,
            [
                keyed(&[("c", 3)], &[], true),
                keyed(&[("y", 8)], &["z"], true),
            ],
            [c2[&(0, 0)].clone(), c2[&(0, 1)].clone()],
        )
        .await;
        let loaded = store.load(3).await.unwrap();
        assert_eq!(values(&loaded, 0), vec![("a".into(), 10), ("c".into(), 3)]);
        assert_eq!(values(&loaded, 1), vec![("y".into(), 8)]);
        // Compact instance 0's chain; a checkpoint referring to the compacted file loads the
        // same state.
        let chain = m3.chains()[&(0, 0)].clone();
        assert_eq!(chain.len(), 3);
        let compacted = store.compact(&chain).await.unwrap();
        assert_eq!(compacted.file, "chk-3/Op-1-0.base.state");
        let c3 = m3.chains();
        let m4 = write(
            4,
            [keyed(&[("d", 4)], &["a"], true), keyed(&[], &[], true)],
            [vec![compacted.clone()], c3[&(0, 1)].clone()],
        )
        .await;
        // Retaining one checkpoint keeps exactly the files checkpoint 4 refers to.
        let in_use: HashSet<String> = m4
            .chains()
            .into_values()
            .flatten()
            .map(|f| f.file)
            .collect();
        store.prune(1, &HashSet::new()).await.unwrap();
        assert_eq!(store.complete_ids().await.unwrap(), vec![4]);
        let loaded = store.load(4).await.unwrap();
        assert_eq!(values(&loaded, 0), vec![("c".into(), 3), ("d".into(), 4)]);
        assert_eq!(values(&loaded, 1), vec![("y".into(), 8)]);
        let left: Vec<String> = store
            .store
            .list(Some(&store.root))
            .map_ok(|o| o.location.to_string())
            .try_collect()
            .await
            .unwrap();
        let chk12_0: Vec<&String> = left
            .iter()
            .filter(|f| f.contains("chk-1/Op-1-0") || f.contains("chk-2/Op-1-0"))
            .collect();
        assert!(
            chk12_0.is_empty(),
            "compacted-away files are deleted: {left:?}"
        );
        for f in &in_use {
            assert!(
                left.iter().any(|l| l.ends_with(f.as_str())),
                "{f} kept: {left:?}"
            );
        }
        // A missing base file makes the checkpoint unloadable, saying which file.
        store
            .overwrite("chk-1/Op-1-1.state", vec![1, 2, 3])
            .await
            .unwrap();
        let err = store.load(4).await.err().unwrap().to_string();
        assert!(
            err.contains("chk-1/Op-1-1.state") && err.contains("corrupt"),
            "{err}"
        );
    }
}
