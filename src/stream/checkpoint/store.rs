//! Where checkpoints live: a directory on an object store (a local directory by default; any
//! `object_store` URL), one sub-directory per job, one per checkpoint:
//!
//! ```text
//! <dir>/<job id>/chk-<n>/<node uid>-<instance>.state   one per task: an encoded StateSnapshot
//! <dir>/<job id>/chk-<n>/_metadata                     the manifest, written last
//! ```
//!
//! A checkpoint exists only once its `_metadata` is written (a single atomic put); the manifest
//! lists every state file with its size and CRC-32, so a torn or corrupt checkpoint is found
//! when it is read, and [`CheckpointStore::latest`] falls back to the previous complete one with
//! a warning that says why. Savepoints use the same layout in a directory of the user's choice.
//!
//! URLs: a plain path or `file://` (local directory, created if missing), `memory://<name>` (an
//! in-process store shared by name, for tests). Other schemes are refused with a clear error
//! until their object_store features are built in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::snapshot::StateSnapshot;
use crate::error::{Error, Result};

/// The manifest format written by this version.
const FORMAT: u32 = 1;
const MANIFEST: &str = "_metadata";

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
}

/// Key groups of a manifest that does not record them (written before rescaling existed).
fn default_key_groups() -> usize {
    128
}

impl Manifest {
    /// Total bytes of state.
    pub fn size(&self) -> u64 {
        self.nodes
            .iter()
            .flat_map(|n| n.tasks.iter())
            .map(|t| t.size)
            .sum()
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
        let store = object_store::local::LocalFileSystem::new_with_prefix(&path)
            .map_err(|e| store_error(format!("'{}'", path.display()), e))?;
        Ok(CheckpointStore {
            store: Arc::new(store),
            root: Path::default(),
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

    async fn load_dir(&self, dir: &Path, location: String) -> Result<LoadedCheckpoint> {
        let bad = |what: String| Error::external(format!("checkpoint {location}: {what}"));
        let path = dir.clone().join(MANIFEST);
        let bytes = self
            .store
            .get(&path)
            .await
            .map_err(|e| bad(format!("no manifest: {e}")))?
            .bytes()
            .await
            .map_err(|e| bad(format!("manifest unreadable: {e}")))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("manifest is torn or corrupt: {e}")))?;
        if manifest.format != FORMAT {
            return Err(bad(format!(
                "manifest format {} (this weir reads format {FORMAT})",
                manifest.format
            )));
        }
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
                let path = dir.clone().join(task.file.as_str());
                let data = self
                    .store
                    .get(&path)
                    .await
                    .map_err(|e| bad(format!("state file {} is missing: {e}", task.file)))?
                    .bytes()
                    .await
                    .map_err(|e| bad(format!("state file {} unreadable: {e}", task.file)))?;
                if data.len() as u64 != task.size || crc32fast::hash(&data) != task.crc32 {
                    return Err(bad(format!(
                        "state file {} is corrupt ({} bytes, expected {}; checksum mismatch)",
                        task.file,
                        data.len(),
                        task.size
                    )));
                }
                let state = StateSnapshot::decode(&data)
                    .map_err(|e| bad(format!("state file {}: {e}", task.file)))?;
                states.insert((n, i), Arc::new(state));
            }
        }
        Ok(LoadedCheckpoint {
            location,
            manifest,
            states,
        })
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
    /// checkpoint directories older than the newest complete one.
    ///
    /// # Errors
    /// Store errors.
    pub async fn prune(&self, retained: usize) -> Result<()> {
        let complete = self.complete_ids().await?;
        let Some(&newest) = complete.first() else {
            return Ok(());
        };
        let keep: Vec<u64> = complete.iter().take(retained.max(1)).copied().collect();
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
                        finished: false
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
        store.prune(1).await.unwrap();
        assert_eq!(store.complete_ids().await.unwrap(), vec![3]);
        assert!(CheckpointStore::open("s3://bucket/x").is_err());
    }
}
