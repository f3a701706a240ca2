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
        checkpointing_for(
            &self.options,
            self.data_dir.as_deref(),
            graph,
            job_id,
            false,
        )
        .await
    }
}

impl Session {
    /// With `'execution.savepoint.path'` set: what starting `graph` from it would do with each
    /// operator's state (`EXPLAIN`), one line per operator: restored, starts empty, dropped.
    ///
    /// # Errors
    /// As [`Session::job_checkpointing`] (dropped state is reported, not refused).
    pub(crate) async fn restore_report(&self, graph: &StreamGraph) -> Result<Option<String>> {
        let Some(path) = self
            .option("execution.savepoint.path")
            .filter(|p| !p.trim().is_empty())
        else {
            return Ok(None);
        };
        let mut warnings = Vec::new();
        let loaded = load_savepoint(&path, &mut warnings).await?;
        let (_, plan) = restore::plan_restore(graph, &loaded)?;
        let mut lines = vec![format!(
            "from {} (checkpoint {})",
            loaded.location, loaded.manifest.checkpoint
        )];
        lines.extend(warnings);
        lines.extend(plan.lines());
        if !plan.incompatible.is_empty() {
            lines.push(
                "refused: state does not fit the changed query (see incompatible above)"
                    .to_string(),
            );
        } else if !plan.dropped.is_empty()
            && self
                .option("execution.savepoint.ignore-unclaimed-state")
                .is_none_or(|v| !v.eq_ignore_ascii_case("true"))
        {
            lines.push(
                "refused: state would be dropped; SET 'execution.savepoint.ignore-unclaimed-state' = 'true' to start without it"
                    .to_string(),
            );
        }
        Ok(Some(lines.join("\n")))
    }
}

/// The checkpointing of job `job_id` running `graph` under session `options`. A `restart`
/// (after a failure) starts from the job's own last complete checkpoint, else from where the
/// job started (`'execution.savepoint.path'`, or nothing).
///
/// # Errors
/// As [`Session::job_checkpointing`].
pub(crate) async fn checkpointing_for(
    options: &std::collections::BTreeMap<String, String>,
    data_dir: Option<&std::path::Path>,
    graph: &StreamGraph,
    job_id: &str,
    restart: bool,
) -> Result<Option<JobCheckpointing>> {
    let default_dir = data_dir.map(|d| d.join("checkpoints").to_string_lossy().into_owned());
    let config = CheckpointConfig::from_options(options, default_dir.as_deref())?;
    let mut savepoint = options
        .get("execution.savepoint.path")
        .filter(|p| !p.trim().is_empty())
        .cloned();
    if restart && let Some(c) = &config {
        let own = format!("{}/{job_id}", c.dir.trim_end_matches('/'));
        if !CheckpointStore::open(&own)?
            .complete_ids()
            .await?
            .is_empty()
        {
            savepoint = Some(own);
        }
    }
    if config.is_none() && savepoint.is_none() {
        return Ok(None);
    }
    let mut warnings = Vec::new();
    let mut restored = None;
    let mut next_id = 1;
    if let Some(path) = savepoint {
        let loaded = load_savepoint(&path, &mut warnings).await?;
        let ignore = match options
            .get("execution.savepoint.ignore-unclaimed-state")
            .map(|v| v.trim().to_ascii_lowercase())
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

/// A checkpointed streaming job as recorded in the data directory (`jobs/<id>.json`), so that a
/// server started again on the same directory resumes it from its last complete checkpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub name: String,
    /// The statement that started it (`INSERT` or `EXECUTE STATEMENT SET`).
    pub sql: String,
    /// The session options it was started with.
    pub options: std::collections::BTreeMap<String, String>,
    pub catalog: String,
    pub database: String,
    /// `RUNNING` until the job ends; then how it ended.
    pub status: String,
    /// The checkpoint directory (the job's checkpoints are under `<dir>/<id>`).
    pub checkpoint_dir: String,
    pub error: Option<String>,
    /// How many times the job was resumed after its process died.
    #[serde(default)]
    pub resumed: u32,
}

fn records_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("jobs")
}

/// Writes a record atomically (a temporary file renamed over the old one).
fn write_record(data_dir: &std::path::Path, record: &JobRecord) -> Result<()> {
    let dir = records_dir(data_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("cannot create '{}'", dir.display()), e))?;
    let path = dir.join(format!("{}.json", record.id));
    let tmp = dir.join(format!(".{}.json.tmp", record.id));
    let bytes = serde_json::to_vec_pretty(record)
        .map_err(|e| Error::internal(format!("encoding a job record: {e}")))?;
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| Error::io(format!("cannot write '{}'", path.display()), e))
}

/// Every job record of a data directory (unreadable ones are skipped with a warning).
pub fn read_records(data_dir: &std::path::Path) -> Vec<JobRecord> {
    let Ok(entries) = std::fs::read_dir(records_dir(data_dir)) else {
        return Vec::new();
    };
    let mut out: Vec<JobRecord> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter_map(|p| {
            match std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!("skipping the job record '{}': {e}", p.display());
                    None
                }
            }
        })
        .collect();
    out.sort_by(|a: &JobRecord, b| a.id.cmp(&b.id));
    out
}

impl Session {
    /// Records a checkpointed job in the data directory and keeps its status there up to date
    /// (a job whose process dies stays `RUNNING`, so [`Session::resume_jobs`] picks it up).
    pub(crate) fn record_job(
        &self,
        id: &str,
        name: &str,
        job: &crate::stream::runtime::RunningJob,
        checkpoint_dir: String,
        resumed: u32,
    ) -> Result<()> {
        let Some(data_dir) = self.data_dir.clone() else {
            return Ok(());
        };
        let mut options = self.options.clone();
        options.remove("execution.savepoint.path");
        let (catalog, database) = self.current();
        let mut record = JobRecord {
            id: id.to_string(),
            name: name.to_string(),
            sql: self.current_text.clone(),
            options,
            catalog: catalog.to_string(),
            database: database.to_string(),
            status: "RUNNING".to_string(),
            checkpoint_dir,
            error: None,
            resumed,
        };
        write_record(&data_dir, &record)?;
        let ended = job.ended();
        tokio::spawn(async move {
            let status = ended.await;
            if status.is_running() {
                // The job was dropped with its session, not ended: leave it to be resumed.
                return;
            }
            record.status = status.name().to_string();
            if let crate::stream::runtime::JobStatus::Failed(e) = &status {
                record.error = Some(e.to_string());
            }
            if let Err(e) = write_record(&data_dir, &record) {
                tracing::warn!("cannot update the record of job {}: {e}", record.id);
            }
        });
        Ok(())
    }

    /// Starts again every job of the data directory that was running when its process died,
    /// each from its last complete checkpoint (from the start when it had none), under its own
    /// id and with the options it was started with. Returns the ids resumed; a job that cannot
    /// start is marked `FAILED` in its record with the reason.
    pub async fn resume_jobs(&mut self) -> Vec<String> {
        let Some(data_dir) = self.data_dir.clone() else {
            return Vec::new();
        };
        let mut resumed = Vec::new();
        for mut record in read_records(&data_dir) {
            if record.status != "RUNNING" {
                continue;
            }
            match self.resume(&record).await {
                Ok(()) => {
                    tracing::info!("resumed job {} ({})", record.id, record.name);
                    resumed.push(record.id.clone());
                }
                Err(e) => {
                    tracing::warn!("cannot resume job {}: {e}", record.id);
                    record.status = "FAILED".to_string();
                    record.error = Some(format!("cannot resume: {e}"));
                    if let Err(e) = write_record(&data_dir, &record) {
                        tracing::warn!("cannot update the record of job {}: {e}", record.id);
                    }
                }
            }
        }
        resumed
    }

    async fn resume(&mut self, record: &JobRecord) -> Result<()> {
        let job_dir = format!(
            "{}/{}",
            record.checkpoint_dir.trim_end_matches('/'),
            record.id
        );
        let has_checkpoint = !CheckpointStore::open(&job_dir)?
            .complete_ids()
            .await?
            .is_empty();
        let mut options = record.options.clone();
        options.remove("table.dml-sync");
        options.remove("execution.savepoint.path");
        if has_checkpoint {
            options.insert("execution.savepoint.path".to_string(), job_dir);
        }
        let saved_options = std::mem::replace(&mut self.options, options);
        let (catalog, database) = {
            let (c, d) = self.current();
            (c.to_string(), d.to_string())
        };
        let result = async {
            self.state = self.build_state(&self.options, &self.functions)?;
            self.registry
                .use_database(Some(&record.catalog), &record.database)
                .await?;
            self.resume_id = Some((record.id.clone(), record.resumed + 1));
            self.execute_sql(&record.sql).await.map(|_| ())
        }
        .await;
        self.resume_id = None;
        self.options = saved_options;
        self.state = self.build_state(&self.options, &self.functions)?;
        self.registry
            .use_database(Some(&catalog), &database)
            .await?;
        result
    }
}
