//! `weir bench checkpoints`: what a checkpoint costs when a large state changes a little. A
//! streaming `GROUP BY` over a monitored directory (`filesystem`, CSV) first reads `--keys`
//! distinct keys, then, per round, a file that updates `--change` of them; checkpoints run every
//! `--interval`. Run once with incremental checkpoints and once with full ones, it reports per
//! round the bytes each checkpoint wrote, the bytes of state it refers to, and how long it took,
//! all through the [`Session`] (the numbers `SHOW JOBS` shows).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::session::{Session, SessionOptions, StatementResult};

/// Options of `weir bench checkpoints`.
#[derive(Debug, Clone)]
pub struct CheckpointBenchOptions {
    /// Distinct keys of the state.
    pub keys: u64,
    /// Fraction of the keys updated per round (0.01 = 1%).
    pub change: f64,
    /// Rounds of changes.
    pub rounds: usize,
    /// `'execution.checkpointing.interval'`, e.g. `1 s`.
    pub interval: String,
    /// `parallelism.default`.
    pub parallelism: usize,
}

/// One checkpoint seen during a round.
#[derive(Debug, Clone)]
pub struct CheckpointSample {
    pub id: u64,
    pub bytes: u64,
    pub state_bytes: u64,
    pub duration: Duration,
    pub incremental: bool,
}

/// One run (incremental or full): the checkpoints taken after each round's change was read.
#[derive(Debug, Clone)]
pub struct CheckpointRun {
    pub incremental: bool,
    /// Seconds to read the initial keys.
    pub load_seconds: f64,
    /// Per round, the first checkpoint completed after the round's rows were all read.
    pub rounds: Vec<CheckpointSample>,
    /// After the rounds the job stops with a savepoint, one more round's file arrives, and the
    /// job starts again from the savepoint: seconds from that `INSERT` to the first new output
    /// row.
    pub restart_to_first_output: f64,
    /// ... and to the end of that round (every changed key's update emitted).
    pub restart_to_caught_up: f64,
}

/// The report: an incremental run and a full run over the same input.
#[derive(Debug, Clone)]
pub struct CheckpointReport {
    pub options: CheckpointBenchOptions,
    pub runs: Vec<CheckpointRun>,
}

fn write_csv(dir: &Path, name: &str, ids: impl Iterator<Item = u64>) -> Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(tmp.display().to_string(), e))?;
    let mut w = std::io::BufWriter::new(file);
    let io = |e| Error::io(tmp.display().to_string(), e);
    writeln!(w, "id,v").map_err(io)?;
    for id in ids {
        writeln!(w, "{id},{}", id % 1000).map_err(io)?;
    }
    w.flush().map_err(io)?;
    drop(w);
    std::fs::rename(&tmp, dir.join(name)).map_err(|e| Error::io(name.to_string(), e))
}

async fn exec(s: &mut Session, sql: &str) -> Result<StatementResult> {
    let mut results = s.execute_sql(sql).await?;
    results
        .pop()
        .ok_or_else(|| Error::internal(format!("no result for {sql}")))
}

/// A completed checkpoint and the moment it was triggered.
type Triggered = (CheckpointSample, chrono::DateTime<chrono::Utc>);

/// The job's rows read so far and its last checkpoint with the moment it was triggered.
fn job_state(s: &Session) -> Result<(u64, Option<Triggered>)> {
    let entry = s
        .jobs()
        .entries()
        .pop()
        .ok_or_else(|| Error::internal("the benchmark job is gone"))?;
    if !entry.job.status().is_running() {
        return Err(Error::external(format!(
            "the benchmark job stopped: it is {}",
            entry.job.status().name()
        )));
    }
    let (rows_in, _, _) = entry.row_counts();
    let last = entry.job.checkpoint_stats().and_then(|c| c.last).map(|l| {
        let triggered_at = chrono::Duration::from_std(l.duration)
            .ok()
            .and_then(|d| l.completed_at.checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let sample = CheckpointSample {
            id: l.id,
            bytes: l.size,
            state_bytes: l.state_size,
            duration: l.duration,
            incremental: l.incremental,
        };
        (sample, triggered_at)
    });
    Ok((rows_in, last))
}

/// Polls until the job has read `rows` rows, then until a checkpoint triggered after that moment
/// has completed, and returns it. A checkpoint already under way when the rows were read may
/// cover only some of them (or, after the initial load, the tail of the load); the one started
/// after them covers all of them, so every round's sample is measured over the same change.
async fn checkpoint_after(s: &Session, rows: u64, timeout: Duration) -> Result<CheckpointSample> {
    let deadline = Instant::now() + timeout;
    let tick = Duration::from_millis(10);
    let read_at = loop {
        let (read, _) = job_state(s)?;
        if read >= rows {
            break chrono::Utc::now();
        }
        if Instant::now() > deadline {
            return Err(Error::external(format!(
                "the job read {read} of {rows} rows within {timeout:?}"
            )));
        }
        tokio::time::sleep(tick).await;
    };
    loop {
        if let (_, Some((last, triggered_at))) = job_state(s)?
            && triggered_at > read_at
        {
            return Ok(last);
        }
        if Instant::now() > deadline {
            return Err(Error::external(format!(
                "no checkpoint started after the rows were read within {timeout:?}"
            )));
        }
        tokio::time::sleep(tick).await;
    }
}

async fn run_once(
    options: &CheckpointBenchOptions,
    incremental: bool,
    scratch: &Path,
    progress: &mut dyn FnMut(String),
) -> Result<CheckpointRun> {
    let input = scratch.join(format!("in-{incremental}"));
    std::fs::create_dir_all(&input).map_err(|e| Error::io(input.display().to_string(), e))?;
    write_csv(&input, "keys.csv", 0..options.keys)?;
    let mut s = Session::open(SessionOptions::default()).await?;
    let settings = [
        ("execution.runtime-mode", "streaming".to_string()),
        ("parallelism.default", options.parallelism.to_string()),
        ("execution.checkpointing.interval", options.interval.clone()),
        (
            "execution.checkpointing.dir",
            scratch
                .join(format!("checkpoints-{incremental}"))
                .display()
                .to_string(),
        ),
        (
            "execution.checkpointing.incremental",
            incremental.to_string(),
        ),
    ];
    for (k, v) in settings {
        exec(&mut s, &format!("SET '{k}' = '{v}'")).await?;
    }
    exec(
        &mut s,
        &format!(
            "CREATE TABLE src (id BIGINT, v BIGINT) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'csv', 'csv.header' = 'true', \
             'source.monitor-interval' = '100 ms')",
            input.display()
        ),
    )
    .await?;
    exec(
        &mut s,
        "CREATE TABLE sink (id BIGINT, n BIGINT, total BIGINT) WITH ('connector' = 'blackhole')",
    )
    .await?;
    let started = Instant::now();
    exec(
        &mut s,
        "INSERT INTO sink SELECT id, COUNT(*), SUM(v) FROM src GROUP BY id",
    )
    .await?;
    let timeout = Duration::from_secs(3600);
    let mut rows = options.keys;
    let first = checkpoint_after(&s, rows, timeout).await?;
    let load_seconds = started.elapsed().as_secs_f64();
    progress(format!(
        "{}: {} keys read in {load_seconds:.1} s; checkpoint {} wrote {} bytes",
        if incremental { "incremental" } else { "full" },
        options.keys,
        first.id,
        first.bytes
    ));
    let stride = ((1.0 / options.change.max(1e-9)).round() as u64).max(1);
    let mut samples = Vec::new();
    for round in 0..options.rounds {
        let changed = (0..options.keys).filter(|k| (k + round as u64).is_multiple_of(stride));
        let n = changed.clone().count() as u64;
        write_csv(&input, &format!("round-{round}.csv"), changed)?;
        rows += n;
        let sample = checkpoint_after(&s, rows, timeout).await?;
        progress(format!(
            "  round {round}: {n} keys changed; checkpoint {} wrote {} of {} bytes in {} ms{}",
            sample.id,
            sample.bytes,
            sample.state_bytes,
            sample.duration.as_millis(),
            if sample.incremental { "" } else { " (full)" }
        ));
        samples.push(sample);
    }
    let (restart_to_first_output, restart_to_caught_up) =
        restart(&mut s, options, &input, stride, timeout).await?;
    progress(format!(
        "  restart from a savepoint: first output after {:.0} ms, caught up after {:.0} ms",
        restart_to_first_output * 1e3,
        restart_to_caught_up * 1e3
    ));
    if let Some(e) = s.jobs().entries().last() {
        let id = e.id.clone();
        exec(&mut s, &format!("STOP JOB '{id}'")).await?;
    }
    Ok(CheckpointRun {
        incremental,
        load_seconds,
        rounds: samples,
        restart_to_first_output,
        restart_to_caught_up,
    })
}

/// Stops the running job with a savepoint, adds one more round of changes to the input, starts
/// the job again from the savepoint and times it: to the first output row, and to the output of
/// every changed key (an update of a key already in the state is a retraction and a new row).
async fn restart(
    s: &mut Session,
    options: &CheckpointBenchOptions,
    input: &Path,
    stride: u64,
    timeout: Duration,
) -> Result<(f64, f64)> {
    let id = s
        .jobs()
        .entries()
        .last()
        .map(|e| e.id.clone())
        .ok_or_else(|| Error::internal("the benchmark job is gone"))?;
    let answer = match exec(s, &format!("STOP JOB '{id}' WITH SAVEPOINT")).await? {
        StatementResult::Status(status) => status.message,
        _ => return Err(Error::internal("STOP JOB WITH SAVEPOINT gave rows")),
    };
    let path = answer
        .split("Path: ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .ok_or_else(|| Error::internal(format!("no savepoint path in '{answer}'")))?
        .to_string();
    let changed = (0..options.keys).filter(|k| (k + 1).is_multiple_of(stride));
    let expected = 2 * changed.clone().count() as u64;
    write_csv(input, "after-restart.csv", changed)?;
    exec(
        s,
        &format!(
            "SET 'execution.savepoint.path' = '{}'",
            path.replace('\'', "''")
        ),
    )
    .await?;
    let started = Instant::now();
    exec(
        s,
        "INSERT INTO sink SELECT id, COUNT(*), SUM(v) FROM src GROUP BY id",
    )
    .await?;
    exec(s, "RESET 'execution.savepoint.path'").await?;
    let deadline = started + timeout;
    let mut first = None;
    loop {
        let entry = s
            .jobs()
            .entries()
            .pop()
            .ok_or_else(|| Error::internal("the restarted job is gone"))?;
        if !entry.job.status().is_running() {
            return Err(Error::external(format!(
                "the restarted job stopped: it is {}",
                entry.job.status().name()
            )));
        }
        let (_, out, _) = entry.row_counts();
        if out > 0 && first.is_none() {
            first = Some(started.elapsed().as_secs_f64());
        }
        if out >= expected {
            let done = started.elapsed().as_secs_f64();
            return Ok((first.unwrap_or(done), done));
        }
        if Instant::now() > deadline {
            return Err(Error::external(format!(
                "the restarted job wrote {out} of {expected} rows within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs the benchmark (incremental, then full checkpoints); `progress` gets a line per step.
///
/// # Errors
/// Bad options; a job that fails or does not progress.
pub async fn run(
    options: &CheckpointBenchOptions,
    progress: &mut dyn FnMut(String),
) -> Result<CheckpointReport> {
    if options.keys == 0 || !(options.change > 0.0 && options.change <= 1.0) {
        return Err(Error::invalid(
            "--keys must be positive and --change in (0, 1]",
        ));
    }
    let scratch = tempfile::tempdir().map_err(|e| Error::io("a scratch directory", e))?;
    let mut runs = Vec::new();
    for incremental in [true, false] {
        runs.push(run_once(options, incremental, scratch.path(), progress).await?);
    }
    Ok(CheckpointReport {
        options: options.clone(),
        runs,
    })
}

impl CheckpointReport {
    /// The report as a Markdown table: per run, the median checkpoint of the rounds.
    pub fn to_markdown(&self) -> String {
        let o = &self.options;
        let mut out = format!(
            "Checkpoints of a streaming GROUP BY with {} keys, {}% of them changed per round, \
             {} rounds, checkpoints every {}, parallelism {}.\n\n\
             | checkpoints | bytes written (median) | state bytes | duration (median) | load | \
             restart to first output | restart to caught up |\n\
             |---|---|---|---|---|---|---|\n",
            o.keys,
            o.change * 100.0,
            o.rounds,
            o.interval,
            o.parallelism
        );
        for r in &self.runs {
            let median = |mut v: Vec<u64>| {
                v.sort_unstable();
                v.get(v.len() / 2).copied().unwrap_or(0)
            };
            let bytes = median(r.rounds.iter().map(|s| s.bytes).collect());
            let state = median(r.rounds.iter().map(|s| s.state_bytes).collect());
            let ms = median(
                r.rounds
                    .iter()
                    .map(|s| s.duration.as_millis() as u64)
                    .collect(),
            );
            out.push_str(&format!(
                "| {} | {bytes} | {state} | {ms} ms | {:.1} s | {:.0} ms | {:.0} ms |\n",
                if r.incremental { "incremental" } else { "full" },
                r.load_seconds,
                r.restart_to_first_output * 1e3,
                r.restart_to_caught_up * 1e3
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn incremental_checkpoints_write_less_than_full_ones() {
        let options = CheckpointBenchOptions {
            keys: 20_000,
            change: 0.01,
            rounds: 2,
            interval: "100 ms".to_string(),
            parallelism: 2,
        };
        let report = run(&options, &mut |_| {}).await.unwrap();
        let [inc, full] = &report.runs[..] else {
            panic!("two runs expected")
        };
        for (i, f) in inc.rounds.iter().zip(&full.rounds) {
            assert!(i.incremental && !f.incremental, "{i:?} {f:?}");
            assert!(i.bytes * 10 < f.bytes, "{i:?} {f:?}");
            assert_eq!(f.bytes, f.state_bytes, "{f:?}");
        }
        for r in [inc, full] {
            // The restarted job emitted every changed key's update (counted from its output).
            assert!(
                r.restart_to_first_output > 0.0
                    && r.restart_to_first_output <= r.restart_to_caught_up,
                "{r:?}"
            );
        }
        let md = report.to_markdown();
        assert!(
            md.contains("| incremental |") && md.contains("| full |"),
            "{md}"
        );
    }
}
