//! Restart strategies (Flink's `'restart-strategy.*'` options): when an attempt of a
//! checkpointed job fails, the job waits, plans itself again and starts a new attempt from its
//! last complete checkpoint, keeping its id, counters and checkpoint statistics. The job's
//! status is `RESTARTING` while it waits; it fails for good when the strategy gives up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::watch;

use super::runtime::{JobStatus, Reused, RunningJob, StreamGraph, launch_attempt};
use crate::error::{Error, Result};

/// Plans the job again (with its checkpointing set to restore the last complete checkpoint).
pub type Relaunch = Arc<dyn Fn() -> BoxFuture<'static, Result<StreamGraph>> + Send + Sync>;

/// How a job restarts, and how to plan it again.
pub struct RestartPlan {
    pub strategy: RestartStrategy,
    pub relaunch: Relaunch,
}

/// `'restart-strategy.type'`.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    /// `none` (also `off`, `disable`, `no-restart`): a failure ends the job.
    None,
    /// `fixed-delay`: up to `attempts` restarts, `delay` apart.
    FixedDelay { attempts: u32, delay: Duration },
    /// `exponential-delay`: the delay grows by `multiplier` from `initial` up to `max`; it goes
    /// back to `initial` after the job ran `reset_after` without failing; at most `attempts`.
    ExponentialDelay {
        initial: Duration,
        max: Duration,
        multiplier: f64,
        reset_after: Duration,
        attempts: u32,
    },
}

impl RestartStrategy {
    /// The strategy from session options. Unset: `exponential-delay` for a checkpointed job,
    /// `none` otherwise (Flink's defaults).
    ///
    /// # Errors
    /// `Invalid` for a bad value, naming the option.
    pub fn from_options(
        options: &BTreeMap<String, String>,
        checkpointing: bool,
    ) -> Result<RestartStrategy> {
        let get = |k: &str| options.get(k).map(|v| v.trim().to_string());
        let duration = |k: &str, default: Duration| -> Result<Duration> {
            match get(k) {
                None => Ok(default),
                Some(v) => crate::units::parse_duration(&v).ok_or_else(|| {
                    Error::invalid(format!(
                        "bad '{k}' '{v}'; expected a duration such as '1 s'"
                    ))
                }),
            }
        };
        let count = |k: &str, default: u32| -> Result<u32> {
            match get(k) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| {
                    Error::invalid(format!("bad '{k}' '{v}'; expected a whole number"))
                }),
            }
        };
        let kind = get("restart-strategy.type").map(|v| v.to_ascii_lowercase());
        Ok(match kind.as_deref() {
            None if !checkpointing => RestartStrategy::None,
            Some("none" | "off" | "disable" | "no-restart") => RestartStrategy::None,
            Some("fixed-delay" | "fixeddelay") => RestartStrategy::FixedDelay {
                attempts: count("restart-strategy.fixed-delay.attempts", 1)?,
                delay: duration("restart-strategy.fixed-delay.delay", Duration::from_secs(1))?,
            },
            None | Some("exponential-delay" | "exponentialdelay") => {
                let multiplier = match get("restart-strategy.exponential-delay.backoff-multiplier")
                {
                    None => 1.5,
                    Some(v) => v.parse::<f64>().ok().filter(|m| *m >= 1.0).ok_or_else(|| {
                        Error::invalid(format!(
                            "bad 'restart-strategy.exponential-delay.backoff-multiplier' '{v}'; \
                             expected a number of at least 1"
                        ))
                    })?,
                };
                RestartStrategy::ExponentialDelay {
                    initial: duration(
                        "restart-strategy.exponential-delay.initial-backoff",
                        Duration::from_secs(1),
                    )?,
                    max: duration(
                        "restart-strategy.exponential-delay.max-backoff",
                        Duration::from_secs(60),
                    )?,
                    multiplier,
                    reset_after: duration(
                        "restart-strategy.exponential-delay.reset-backoff-threshold",
                        Duration::from_secs(3600),
                    )?,
                    attempts: count(
                        "restart-strategy.exponential-delay.attempts-before-reset-backoff",
                        u32::MAX,
                    )?,
                }
            }
            Some(other) => {
                return Err(Error::invalid(format!(
                    "bad 'restart-strategy.type' '{other}'; expected none, fixed-delay or \
                     exponential-delay"
                )));
            }
        })
    }

    /// The delay before restart number `attempt` (1-based), or `None` to give up.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        match self {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                (attempt <= *attempts).then_some(*delay)
            }
            RestartStrategy::ExponentialDelay {
                initial,
                max,
                multiplier,
                attempts,
                ..
            } => {
                if attempt > *attempts {
                    return None;
                }
                let factor = multiplier.powi(attempt.saturating_sub(1).min(1000) as i32);
                let ms = (initial.as_millis() as f64 * factor).min(max.as_millis() as f64);
                Some(Duration::from_millis(ms as u64))
            }
        }
    }

    fn reset_after(&self) -> Option<Duration> {
        match self {
            RestartStrategy::ExponentialDelay { reset_after, .. } => Some(*reset_after),
            _ => None,
        }
    }
}

/// Launches a job that restarts by its plan: the first attempt now, later ones after failures.
///
/// # Errors
/// The first attempt's launch errors (a job that cannot start does not restart).
pub(super) fn supervise(mut graph: StreamGraph) -> Result<RunningJob> {
    let plan = graph
        .restart
        .take()
        .ok_or_else(|| Error::internal("a supervised job without a restart plan"))?;
    let first = launch_attempt(graph)?;
    let counters = first.counters.clone();
    let stats = first.checkpoints.clone();
    let control = Arc::new(std::sync::Mutex::new(
        first.control.lock().ok().and_then(|c| c.clone()),
    ));
    let restarts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (status_tx, status_rx) = watch::channel(JobStatus::Running);
    let (cancel_tx, mut cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let names = first.names.clone();
    let sinks = first.sinks.clone();
    let (shared_control, shared_restarts) = (Arc::clone(&control), Arc::clone(&restarts));
    let (kept_counters, kept_stats) = (counters.clone(), stats.clone());
    let supervisor = tokio::spawn(async move {
        let mut inner = first;
        let mut attempt = 0u32;
        let mut started = Instant::now();
        let final_status = 'job: loop {
            let status = tokio::select! {
                _ = &mut cancel_rx => {
                    inner.cancel();
                    inner.wait().await;
                    break 'job JobStatus::Canceled;
                }
                s = inner.ended() => s,
            };
            let JobStatus::Failed(mut error) = status else {
                break 'job status;
            };
            loop {
                if plan
                    .strategy
                    .reset_after()
                    .is_some_and(|r| started.elapsed() >= r)
                {
                    attempt = 0;
                }
                attempt += 1;
                let Some(delay) = plan.strategy.delay(attempt) else {
                    let restarted = shared_restarts.load(Ordering::Relaxed);
                    break 'job JobStatus::Failed(if restarted > 0 {
                        error.context(format!("after {restarted} restarts"))
                    } else {
                        error
                    });
                };
                tracing::warn!(
                    "the job failed ({error}); restarting from its last complete checkpoint in {delay:?} (attempt {attempt})"
                );
                let _ = status_tx.send(JobStatus::Restarting);
                tokio::select! {
                    _ = &mut cancel_rx => break 'job JobStatus::Canceled,
                    () = tokio::time::sleep(delay) => {}
                }
                let next = match (plan.relaunch)().await {
                    Ok(mut g) => {
                        g.reuse = Some(Reused {
                            counters: kept_counters.clone(),
                            stats: kept_stats.clone(),
                        });
                        launch_attempt(g)
                    }
                    Err(e) => Err(e),
                };
                match next {
                    Ok(job) => {
                        if let (Ok(mut c), Ok(n)) = (shared_control.lock(), job.control.lock()) {
                            *c = n.clone();
                        }
                        inner = job;
                        started = Instant::now();
                        shared_restarts.fetch_add(1, Ordering::Relaxed);
                        let _ = status_tx.send(JobStatus::Running);
                        break;
                    }
                    Err(e) => error = e,
                }
            }
        };
        let _ = status_tx.send(final_status);
    });
    Ok(RunningJob {
        status: status_rx,
        counters,
        names,
        sinks,
        tasks: Some(supervisor),
        cancel: std::sync::Mutex::new(Some(cancel_tx)),
        checkpoints: stats,
        control,
        restarts,
    })
}
