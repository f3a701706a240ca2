//! Checkpointing of the session's streaming jobs: reads the checkpoint options
//! (`'execution.checkpointing.*'`, `'state.checkpoints.num-retained'`), picks the job's
//! checkpoint directory (`<dir>/<job id>`, by default under the data directory), and, with
//! `'execution.savepoint.path'`, loads the checkpoint or savepoint a new job starts from and
//! matches its state to the job's operators.

use super::Session;
use crate::error::{Error, Result};
use crate::stream::checkpoint::store::CheckpointStore;
use crate::stream::checkpoint::{CheckpointConfig, JobCheckpointing, restore};
use crate::stream::runtime::StreamGraph;

impl Session {
    /// Where checkpoints go when `'execution.checkpointing.dir'` is unset.
    fn default_checkpoint_dir(&self) -> Option<String> {
        self.data_dir
            .as_ref()
            .map(|d| d.join("checkpoints").to_string_lossy().into_owned())
    }

    /// The checkpointing of a new job `job_id` running `graph`: `None` when the session neither
    /// takes checkpoints nor restores from one.
    ///
    /// # Errors
    /// `Invalid` for bad option values or state that would be dropped; `NotFound` when the
    /// savepoint path holds no complete checkpoint; store errors.
    pub(crate) async fn job_checkpointing(
        &self,
        graph: &StreamGraph,
        job_id: &str,
    ) -> Result<Option<JobCheckpointing>> {
        let default_dir = self.default_checkpoint_dir();
        let config = CheckpointConfig::from_options(&self.options, default_dir.as_deref())?;
        let savepoint = self
            .option("execution.savepoint.path")
            .filter(|p| !p.trim().is_empty());
        if config.is_none() && savepoint.is_none() {
            return Ok(None);
        }
        let mut warnings = Vec::new();
        let mut restored = None;
        let mut next_id = 1;
        if let Some(path) = savepoint {
            let loaded = load_savepoint(&path, &mut warnings).await?;
            let ignore = match self
                .option("execution.savepoint.ignore-unclaimed-state")
                .map(|v| v.to_ascii_lowercase())
                .as_deref()
            {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(Error::invalid(format!(
                        "bad 'execution.savepoint.ignore-unclaimed-state' '{other}'; expected true or false"
                    )));
                }
            };
            let (state, plan) = restore::match_state(graph, &loaded, ignore)?;
            for line in plan.lines() {
                tracing::info!("restore from {}: {line}", loaded.location);
            }
            for (uid, tables) in &plan.dropped {
                warnings.push(format!(
                    "state of {uid} ({}) in {} is dropped: no operator of this query claims it",
                    tables.join(", "),
                    loaded.location
                ));
            }
            next_id = loaded.manifest.checkpoint.saturating_add(1);
            restored = Some(state);
        }
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let checkpoints = match config {
            Some(c) => {
                let store = CheckpointStore::open(&c.dir)?.child(job_id);
                Some((c, store))
            }
            None => None,
        };
        Ok(Some(JobCheckpointing {
            checkpoints,
            restored,
            next_id,
            warnings,
        }))
    }
}

/// The checkpoint at `path`: the checkpoint directory itself (`.../chk-<n>`, or a savepoint),
/// or the newest complete checkpoint of a job's checkpoint directory (skipping torn ones, with
/// a warning each).
///
/// # Errors
/// `NotFound` when there is none; `External` for a corrupt checkpoint named directly.
async fn load_savepoint(
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<crate::stream::checkpoint::store::LoadedCheckpoint> {
    let store =
        CheckpointStore::open(path).map_err(|e| e.context("in 'execution.savepoint.path'"))?;
    if store.is_checkpoint().await {
        return store.load_here().await;
    }
    let (loaded, skipped) = store.latest().await?;
    warnings.extend(skipped);
    loaded.ok_or_else(|| {
        Error::not_found(format!(
            "no complete checkpoint or savepoint at '{path}' ('execution.savepoint.path')"
        ))
    })
}
