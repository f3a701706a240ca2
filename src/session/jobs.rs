//! Streaming jobs: `INSERT INTO` in streaming mode runs as a background job, registered in a
//! [`Jobs`] registry. `SHOW JOBS` lists the registry's jobs with their state and counters,
//! `STOP JOB '<id>'` cancels one. A session has a registry of its own unless it is given a
//! shared one ([`super::Session::share_jobs`]): the shell's jobs stop with its session, while
//! `weir serve` gives every client session (and the session that resumes jobs after a crash)
//! one registry that lives as long as the server, so a job outlives the client that started it
//! and every client sees and can stop every job, as in a Flink cluster.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::{Session, StatementResult, StatusResult};
use crate::error::{Error, Result};
use crate::stream::runtime::{JobStatus, RunningJob};

pub struct JobEntry {
    pub id: String,
    pub name: String,
    pub started: DateTime<Utc>,
    pub job: RunningJob,
    /// Every source is bounded: the job ends by itself.
    pub bounded: bool,
}

impl JobEntry {
    /// Rows read by the job's sources, rows taken by its sinks, and rows dropped as late.
    pub fn row_counts(&self) -> (u64, u64, u64) {
        let (mut rows_in, mut rows_out) = (0, 0);
        for (name, counters) in self.job.counters() {
            match name.as_str() {
                "TableSourceScan" | "Values" => {
                    rows_in += counters.rows_out.load(Ordering::Relaxed);
                }
                "Sink" | "Collect" => rows_out += counters.rows_in.load(Ordering::Relaxed),
                _ => {}
            }
        }
        (rows_in, rows_out, self.job.late_rows_dropped())
    }
}

/// A registry of streaming jobs; clones share it. Dropping the last clone stops its jobs.
#[derive(Clone, Default)]
pub struct Jobs {
    entries: Arc<Mutex<Vec<Arc<JobEntry>>>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jobs({})", self.entries().len())
    }
}

impl Jobs {
    /// A new job id (32 hex digits, like Flink's job ids).
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<JobEntry>>> {
        // A panic while holding the lock cannot leave the list half-changed (push only).
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a launched job under `id`; returns the id.
    pub fn add(&self, id: String, name: String, job: RunningJob, bounded: bool) -> String {
        self.lock().push(Arc::new(JobEntry {
            id: id.clone(),
            name,
            started: Utc::now(),
            job,
            bounded,
        }));
        id
    }

    pub fn get(&self, id: &str) -> Option<Arc<JobEntry>> {
        self.lock().iter().find(|e| e.id == id).cloned()
    }

    /// Every job, oldest first.
    pub fn entries(&self) -> Vec<Arc<JobEntry>> {
        self.lock().clone()
    }

    /// Cancels a running job.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `Invalid` when the job is no longer running.
    pub async fn stop(&self, id: &str) -> Result<()> {
        let entry = self
            .get(id)
            .ok_or_else(|| Error::not_found(format!("no job with id '{id}'; see SHOW JOBS")))?;
        let status = entry.job.status();
        if !status.is_running() {
            return Err(Error::invalid(format!(
                "job '{id}' is not running (it is {})",
                status.name()
            )));
        }
        entry.job.cancel();
        entry.job.wait().await;
        Ok(())
    }

    /// Waits for every job over bounded sources to end (the end of a `-f` script).
    pub async fn wait_bounded(&self) -> Vec<(String, JobStatus)> {
        let mut out = Vec::new();
        for e in self.entries().iter().filter(|e| e.bounded) {
            out.push((e.id.clone(), e.job.wait().await));
        }
        out
    }
}

/// `STOP JOB '<id>'`: cancels a running job of the session. `WITH SAVEPOINT` first takes a
/// savepoint (its output committed), then cancels; `WITH DRAIN` ends the job's sources as if
/// their input ended (every window fires), so the job finishes with a final checkpoint. Both
/// answer the savepoint's path, to restore with `SET 'execution.savepoint.path'`.
///
/// # Errors
/// `Invalid` for a job that takes no checkpoints (savepoint / drain); as [`Jobs::stop`].
pub(crate) async fn stop_job(
    session: &mut Session,
    id: &str,
    savepoint: bool,
    drain: bool,
) -> Result<StatementResult> {
    let id = id.trim();
    if !savepoint && !drain {
        session.jobs.stop(id).await?;
        return Ok(StatementResult::Status(StatusResult::new(format!(
            "Job {id} has been stopped."
        ))));
    }
    let entry = session
        .jobs
        .get(id)
        .ok_or_else(|| Error::not_found(format!("no job with id '{id}'; see SHOW JOBS")))?;
    let status = entry.job.status();
    if !status.is_running() {
        return Err(Error::invalid(format!(
            "job '{id}' is not running (it is {})",
            status.name()
        )));
    }
    let path = if drain {
        entry.job.drain()?;
        match entry.job.wait().await {
            JobStatus::Failed(e) => return Err(e.context(format!("in job {id}"))),
            JobStatus::Canceled => return Err(Error::cancelled()),
            _ => {}
        }
        let stats = entry.job.checkpoint_stats().unwrap_or_default();
        let last = stats
            .last
            .ok_or_else(|| Error::internal("a drained job has no final checkpoint"))?;
        format!("{}/chk-{}", stats.location, last.id)
    } else {
        let (_, path) = entry.job.savepoint().await?;
        session.jobs.stop(id).await?;
        path
    };
    Ok(StatementResult::Status(StatusResult::new(format!(
        "Savepoint completed. Path: {path}\nJob {id} has been stopped."
    ))))
}
