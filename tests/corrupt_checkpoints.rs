//! Corrupt checkpoint files (issue 19, `docs/fuzzing.md`): the savepoint and the checkpoints of
//! a stateful streaming job (a GROUP BY with COUNT DISTINCT, a TopN, a self-join under an
//! aggregate; parallelism 2; incremental checkpoints) are damaged on a fixed seed, and the job is
//! restored from them through `weir::Session`, as a user would.
//!
//! Damage: the manifest (`_metadata`) truncated, bit-flipped, overwritten with random bytes, and
//! edited as JSON into well-formed nonsense (huge ids and sizes, zero or huge parallelism and
//! key groups, paths that leave the directory, a missing or duplicated node, a base that does
//! not exist); state files truncated, bit-flipped or overwritten — once as they are (the size and
//! CRC-32 in the manifest catch it), and once with the manifest's size and checksum rewritten to
//! match, so the damage reaches the decoders (Arrow IPC, the operators' own encodings, row-format
//! keys) as a checksum cannot see it.
//!
//! Every restore must end in one of: an error that names the checkpoint, a fallback to an older
//! complete checkpoint (the job's checkpoint directory, with a warning), or a job that restores
//! and runs. Never a panic, never an internal error, never a hang. An undamaged control restore
//! must give the exact answer, so the harness restores real state.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use weir::stream::runtime::JobStatus;
use weir::{ErrorKind, Session, SessionOptions, StatementResult};

mod common;

/// A small deterministic generator (xorshift64*), so every run damages the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TABLES: [(&str, &str); 3] = [
    (
        "agg",
        "k INT, n BIGINT, total BIGINT, top STRING, d BIGINT, PRIMARY KEY (k) NOT ENFORCED",
    ),
    ("best", "k INT, v BIGINT, s STRING"),
    ("pairs", "k INT, n BIGINT, PRIMARY KEY (k) NOT ENFORCED"),
];

const JOB: &str = "EXECUTE STATEMENT SET BEGIN \
    INSERT INTO agg SELECT k, COUNT(*), SUM(v), MAX(s), COUNT(DISTINCT v) FROM src GROUP BY k; \
    INSERT INTO best SELECT k, v, s FROM (SELECT k, v, s, ROW_NUMBER() OVER (PARTITION BY k \
      ORDER BY v DESC, s) AS rn FROM src) WHERE rn <= 2; \
    INSERT INTO pairs SELECT a.k, COUNT(*) FROM src a JOIN src b ON a.k = b.k GROUP BY a.k; \
    END";

/// Input file `name` with rows `rows` (k, v, s), written beside the directory and moved in.
fn add_file(dir: &Path, name: &str, rows: std::ops::Range<u64>) {
    let mut text = String::from("k,v,s\n");
    for j in rows {
        text.push_str(&format!("{},{},s{}\n", j % 13, (j * 7919) % 101, j % 17));
    }
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The tables under `root`; `src` is a monitored directory for streaming, bounded for batch.
fn ddl(root: &Path, streaming: bool) -> String {
    let monitor = if streaming {
        ", 'source.monitor-interval' = '50 ms'"
    } else {
        ""
    };
    let mut ddl = format!(
        "CREATE TABLE src (k INT, v BIGINT, s STRING) WITH ('connector' = 'filesystem', \
         'path' = '{}', 'format' = 'csv', 'csv.header' = 'true'{monitor});",
        root.join("in").display()
    );
    for (name, columns) in TABLES {
        ddl.push_str(&format!(
            " CREATE TABLE {name} ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', \
             'format' = 'debezium-json');",
            root.join(name).display()
        ));
    }
    ddl
}

async fn exec(s: &mut Session, sql: &str) -> StatementResult {
    let mut results = s
        .execute_sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    results.pop().expect("a result")
}

/// A streaming session at parallelism 2 over the tables under `root`, checkpointing every
/// 100 ms into `root/checkpoints`, restoring from `savepoint` when given.
async fn session(root: &Path, savepoint: Option<&Path>) -> Session {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let mut settings = vec![
        ("execution.runtime-mode", "streaming".to_string()),
        ("parallelism.default", "2".to_string()),
        ("execution.checkpointing.interval", "100 ms".to_string()),
        ("execution.checkpointing.incremental", "true".to_string()),
        ("state.checkpoints.num-retained", "3".to_string()),
        // A restore that fails fails the job (the default strategy would restart it from the
        // same damaged checkpoint, with growing delays, and report it only as a warning).
        ("restart-strategy.type", "none".to_string()),
        (
            "execution.checkpointing.dir",
            root.join("checkpoints").display().to_string(),
        ),
    ];
    if let Some(p) = savepoint {
        settings.push(("execution.savepoint.path", p.display().to_string()));
    }
    for (k, v) in settings {
        exec(&mut s, &format!("SET '{k}' = '{v}'")).await;
    }
    s.execute_sql(&ddl(root, true)).await.unwrap();
    s
}

fn job_id(result: &StatementResult) -> String {
    let StatementResult::Status(s) = result else {
        panic!("status expected");
    };
    s.message
        .rsplit("Job ID: ")
        .next()
        .map(|id| id.trim().to_string())
        .expect("a job id")
}

/// The last complete checkpoint of a job (0 = none yet) and whether it still runs, or its
/// failure.
fn progress(s: &Session, id: &str) -> Result<(u64, bool), weir::Error> {
    let entry = s.jobs().get(id).expect("the job");
    let status = entry.job.status();
    if let JobStatus::Failed(e) = status {
        return Err(e);
    }
    let last = entry
        .job
        .checkpoint_stats()
        .and_then(|c| c.last.map(|l| l.id))
        .unwrap_or(0);
    Ok((last, status.is_running()))
}

/// Waits until job `id` completed `n` checkpoints after `after`, ended, or failed.
async fn wait_checkpoints(s: &Session, id: &str, after: u64, n: u64) -> Result<u64, weir::Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (last, running) = progress(s, id)?;
        if last >= after.saturating_add(n) || !running {
            return Ok(last);
        }
        assert!(
            Instant::now() < deadline,
            "job {id}: no {n} checkpoints after {after} within 60 s (last {last})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every row of table `name` under `root`, materialized and sorted (batch mode).
async fn rows(root: &Path, name: &str) -> Vec<String> {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    exec(&mut s, "SET 'execution.runtime-mode' = 'batch'").await;
    s.execute_sql(&ddl(root, false)).await.unwrap();
    query(&mut s, &format!("SELECT * FROM {name}")).await
}

async fn query(s: &mut Session, sql: &str) -> Vec<String> {
    let StatementResult::Rows(r) = exec(s, sql).await else {
        panic!("rows expected");
    };
    common::sorted_rows(&r.stream.try_collect::<Vec<_>>().await.unwrap())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The job's tree after it ran and was stopped with a savepoint: where the savepoint is and
/// the job's checkpoint directory, both relative to the root.
struct Origin {
    root: tempfile::TempDir,
    savepoint: PathBuf,
    job_dir: PathBuf,
}

async fn origin() -> Origin {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    add_file(&input, "a.csv", 0..300);
    add_file(&input, "b.csv", 300..500);
    let mut s = session(root.path(), None).await;
    let id = job_id(&exec(&mut s, JOB).await);
    let first = wait_checkpoints(&s, &id, 0, 1).await.unwrap();
    // A second input while the job runs: later checkpoints are deltas over earlier ones.
    add_file(&input, "c.csv", 500..650);
    wait_checkpoints(&s, &id, first, 4).await.unwrap();
    let StatementResult::Status(st) =
        exec(&mut s, &format!("STOP JOB '{id}' WITH SAVEPOINT")).await
    else {
        panic!("status expected");
    };
    let path = st
        .message
        .split("Path: ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no path in {:?}", st.message));
    drop(s);
    let savepoint = path.strip_prefix(root.path()).unwrap().to_path_buf();
    let job_dir = PathBuf::from("checkpoints").join(&id);
    assert!(root.path().join(&job_dir).is_dir());
    Origin {
        root,
        savepoint,
        job_dir,
    }
}

/// How a restore ended.
#[derive(Debug)]
enum Outcome {
    /// The statement was refused (the checkpoint could not be used).
    Refused(weir::Error),
    /// The job started and then failed.
    Failed(weir::Error),
    /// The job restored and completed two checkpoints after the restore (or ended).
    Ran,
}

/// Restores the job under `root` from `from` (relative to `root`), with a new input file
/// waiting, and runs it for `checkpoints` checkpoints.
async fn restore_for(root: &Path, from: &Path, checkpoints: u64) -> Outcome {
    add_file(&root.join("in"), "d.csv", 650..800);
    let mut s = session(root, Some(&root.join(from))).await;
    let id = match s.execute_sql(JOB).await {
        Err(e) => return Outcome::Refused(e),
        Ok(mut r) => job_id(&r.pop().expect("a result")),
    };
    let restored = s
        .jobs()
        .get(&id)
        .and_then(|e| e.job.checkpoint_stats())
        .and_then(|c| c.restored_from)
        .unwrap_or(0);
    let outcome = match wait_checkpoints(&s, &id, restored, checkpoints).await {
        Ok(_) => Outcome::Ran,
        Err(e) => Outcome::Failed(e),
    };
    if matches!(outcome, Outcome::Ran)
        && s.jobs()
            .get(&id)
            .is_some_and(|e| e.job.status().is_running())
    {
        exec(&mut s, &format!("STOP JOB '{id}'")).await;
    }
    outcome
}

async fn restore(root: &Path, from: &Path) -> Outcome {
    restore_for(root, from, 2).await
}

/// Prints the case (with `WEIR_FUZZ_VERBOSE`) before it runs; false for a case that
/// `WEIR_FUZZ_CASE` (a part of its label) does not select.
fn announce(case: &str) -> bool {
    if let Ok(only) = std::env::var("WEIR_FUZZ_CASE")
        && !case.contains(&only)
    {
        return false;
    }
    if std::env::var_os("WEIR_FUZZ_VERBOSE").is_some() {
        eprintln!("case: {case}");
    }
    true
}

/// The assertion every damaged restore must pass: an error is the user's or external (never
/// internal, never a panic) and says which checkpoint; anything else ran.
fn check(case: &str, outcome: &Outcome) {
    let (Outcome::Refused(e) | Outcome::Failed(e)) = outcome else {
        return;
    };
    let text = e.to_string();
    assert!(
        e.kind != ErrorKind::Internal && !text.contains("panick"),
        "{case}: {outcome:?}"
    );
    if matches!(outcome, Outcome::Refused(_)) {
        assert!(
            text.contains("checkpoint") || text.contains("savepoint") || text.contains("state"),
            "{case}: the error does not say what was wrong: {text}"
        );
    }
}

/// Ways to damage bytes: (label, damaged copy).
fn damages(bytes: &[u8], rng: &mut Rng) -> Vec<(String, Vec<u8>)> {
    let n = bytes.len();
    let mut out = Vec::new();
    for cut in [0, 1, n / 2, n.saturating_sub(1)] {
        out.push((format!("truncated to {cut}"), bytes[..cut.min(n)].to_vec()));
    }
    for _ in 0..6 {
        let mut b = bytes.to_vec();
        if n > 0 {
            let at = rng.below(n);
            let bit = rng.below(8);
            b[at] ^= 1 << bit;
            out.push((format!("bit {bit} of byte {at} flipped"), b));
        }
    }
    for _ in 0..2 {
        let mut b = bytes.to_vec();
        if n > 0 {
            let at = rng.below(n);
            let len = (1 + rng.below(64)).min(n - at);
            for x in &mut b[at..at + len] {
                *x = rng.next() as u8;
            }
            out.push((format!("{len} random bytes at {at}"), b));
        }
    }
    out
}

/// A copy of the origin's tree for one case.
fn case_root(origin: &Origin) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(origin.root.path(), dir.path());
    dir
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("_metadata")).unwrap()).unwrap()
}

fn write_manifest(dir: &Path, m: &serde_json::Value) {
    std::fs::write(dir.join("_metadata"), serde_json::to_vec(m).unwrap()).unwrap();
}

/// The state files a checkpoint's manifest lists: (node, task) and the file.
fn state_files(m: &serde_json::Value) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for (n, node) in m["nodes"].as_array().unwrap().iter().enumerate() {
        for (t, task) in node["tasks"].as_array().unwrap().iter().enumerate() {
            out.push((n, t, task["file"].as_str().unwrap().to_string()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_checkpoints_are_errors_or_fallbacks_never_panics() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let origin = origin().await;
    let mut rng = Rng(0x5eed_0019);
    let mut tally = std::collections::BTreeMap::<&str, usize>::new();
    let mut count = |o: &Outcome| {
        *tally
            .entry(match o {
                Outcome::Refused(_) => "refused",
                Outcome::Failed(_) => "failed",
                Outcome::Ran => "ran",
            })
            .or_default() += 1;
    };

    // The control: undamaged, the restore gives the exact answer over all four inputs.
    {
        let root = case_root(&origin);
        let outcome = restore_for(root.path(), &origin.savepoint, 6).await;
        assert!(matches!(outcome, Outcome::Ran), "control: {outcome:?}");
        let mut batch = Session::open(SessionOptions::default()).await.unwrap();
        exec(&mut batch, "SET 'execution.runtime-mode' = 'batch'").await;
        batch.execute_sql(&ddl(root.path(), false)).await.unwrap();
        let expected = query(
            &mut batch,
            "SELECT k, COUNT(*), SUM(v), MAX(s), COUNT(DISTINCT v) FROM src GROUP BY k",
        )
        .await;
        assert_eq!(rows(root.path(), "agg").await, expected, "control: agg");
        let expected = query(
            &mut batch,
            "SELECT a.k, COUNT(*) FROM src a JOIN src b ON a.k = b.k GROUP BY a.k",
        )
        .await;
        assert_eq!(rows(root.path(), "pairs").await, expected, "control: pairs");
    }

    // The manifest, damaged as bytes.
    let sp_manifest =
        std::fs::read(origin.root.path().join(&origin.savepoint).join("_metadata")).unwrap();
    for (label, bytes) in damages(&sp_manifest, &mut rng) {
        let root = case_root(&origin);
        std::fs::write(root.path().join(&origin.savepoint).join("_metadata"), bytes).unwrap();
        if !announce(&label) {
            continue;
        }
        let outcome = restore(root.path(), &origin.savepoint).await;
        check(&format!("savepoint manifest {label}"), &outcome);
        count(&outcome);
    }

    // The manifest, edited into well-formed nonsense.
    type Edit = fn(&mut serde_json::Value);
    let edits: Vec<(&str, Edit)> = vec![
        ("format 0", |m| m["format"] = 0.into()),
        ("format 99", |m| m["format"] = 99.into()),
        ("checkpoint u64::MAX", |m| m["checkpoint"] = u64::MAX.into()),
        ("max_parallelism 0", |m| m["max_parallelism"] = 0.into()),
        ("max_parallelism 1", |m| m["max_parallelism"] = 1.into()),
        ("max_parallelism u64::MAX", |m| {
            m["max_parallelism"] = u64::MAX.into()
        }),
        ("no nodes", |m| m["nodes"] = serde_json::json!([])),
        ("first node twice", |m| {
            let first = m["nodes"][0].clone();
            m["nodes"].as_array_mut().unwrap().push(first);
        }),
        ("parallelism 0", |m| m["nodes"][1]["parallelism"] = 0.into()),
        ("parallelism u64::MAX", |m| {
            m["nodes"][1]["parallelism"] = u64::MAX.into()
        }),
        ("one task dropped (parallelism 1)", |m| {
            for node in m["nodes"].as_array_mut().unwrap() {
                node["tasks"].as_array_mut().unwrap().truncate(1);
                node["parallelism"] = 1.into();
            }
        }),
        ("tasks swapped", |m| {
            for node in m["nodes"].as_array_mut().unwrap() {
                node["tasks"].as_array_mut().unwrap().reverse();
            }
        }),
        ("state files of two nodes swapped", |m| {
            let a = m["nodes"][1]["tasks"].clone();
            m["nodes"][1]["tasks"] = m["nodes"][2]["tasks"].clone();
            m["nodes"][2]["tasks"] = a;
        }),
        ("a file outside the directory", |m| {
            m["nodes"][1]["tasks"][0]["file"] = "../../../../etc/passwd".into()
        }),
        ("an absolute file", |m| {
            m["nodes"][1]["tasks"][0]["file"] = "/etc/passwd".into()
        }),
        ("an empty file name", |m| {
            m["nodes"][1]["tasks"][0]["file"] = "".into()
        }),
        ("size u64::MAX", |m| {
            m["nodes"][1]["tasks"][0]["size"] = u64::MAX.into()
        }),
        ("a base that does not exist", |m| {
            m["nodes"][1]["tasks"][0]["base"] =
                serde_json::json!([{"file": "chk-999/x.state", "size": 1, "crc32": 0}])
        }),
        ("a task's own file as its base", |m| {
            let t = &m["nodes"][1]["tasks"][0];
            let own =
                serde_json::json!({"file": t["file"], "size": t["size"], "crc32": t["crc32"]});
            m["nodes"][1]["tasks"][0]["base"] = serde_json::json!([own]);
        }),
        ("every task finished", |m| {
            for node in m["nodes"].as_array_mut().unwrap() {
                for t in node["tasks"].as_array_mut().unwrap() {
                    t["finished"] = true.into();
                }
            }
        }),
        ("an operator renamed", |m| {
            m["nodes"][1]["uid"] = "GroupAggregate-0000000000000000".into()
        }),
        ("a field of the wrong type", |m| m["nodes"] = "x".into()),
    ];
    for (label, edit) in edits {
        let root = case_root(&origin);
        let dir = root.path().join(&origin.savepoint);
        let mut m = manifest(&dir);
        edit(&mut m);
        write_manifest(&dir, &m);
        if !announce(label) {
            continue;
        }
        let outcome = restore(root.path(), &origin.savepoint).await;
        check(&format!("savepoint manifest: {label}"), &outcome);
        count(&outcome);
    }

    // State files of the savepoint: damaged as they are (the checksum catches it), and with the
    // manifest's size and CRC-32 rewritten (the decoders must).
    let sp_dir = origin.root.path().join(&origin.savepoint);
    let files = state_files(&manifest(&sp_dir));
    assert!(files.len() >= 6, "{files:?}");
    for round in 0..files.len().min(8) {
        let (n, t, file) = files[rng.below(files.len())].clone();
        let bytes = std::fs::read(sp_dir.join(&file)).unwrap();
        for (k, (label, damaged)) in damages(&bytes, &mut rng).into_iter().enumerate() {
            // Unchecked damage is found by the checksum alone: a few cases suffice.
            for fix_checksum in [true, false] {
                if !fix_checksum && (k % 4 != round % 4) {
                    continue;
                }
                let root = case_root(&origin);
                let dir = root.path().join(&origin.savepoint);
                std::fs::write(dir.join(&file), &damaged).unwrap();
                if fix_checksum {
                    let mut m = manifest(&dir);
                    let task = &mut m["nodes"][n]["tasks"][t];
                    task["size"] = (damaged.len() as u64).into();
                    task["crc32"] = crc32fast::hash(&damaged).into();
                    write_manifest(&dir, &m);
                }
                let case = format!("state file {file} {label} (checksum fixed: {fix_checksum})");
                if !announce(&case) {
                    continue;
                }
                let outcome = restore(root.path(), &origin.savepoint).await;
                check(&case, &outcome);
                if !fix_checksum {
                    let Outcome::Refused(e) = &outcome else {
                        panic!("{case}: the checksum did not catch it: {outcome:?}");
                    };
                    assert!(e.to_string().contains(&file), "{case}: {e}");
                }
                count(&outcome);
            }
        }
    }

    // The job's own checkpoint directory. A checkpoint with incremental chains (the newest
    // that refers to earlier files), restored by its path: damage to any file of its chains is
    // an error naming it.
    let job_dir = origin.root.path().join(&origin.job_dir);
    let mut complete: Vec<u64> = std::fs::read_dir(&job_dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let id: u64 = name.strip_prefix("chk-")?.parse().ok()?;
            job_dir.join(&name).join("_metadata").exists().then_some(id)
        })
        .collect();
    complete.sort();
    let chains = |id: u64| {
        let m = manifest(&job_dir.join(format!("chk-{id}")));
        let mut files: Vec<String> = vec![format!("chk-{id}/_metadata")];
        let mut bases = 0;
        for node in m["nodes"].as_array().unwrap() {
            for task in node["tasks"].as_array().unwrap() {
                for b in task["base"].as_array().into_iter().flatten() {
                    files.push(b["file"].as_str().unwrap().to_string());
                    bases += 1;
                }
                files.push(format!("chk-{id}/{}", task["file"].as_str().unwrap()));
            }
        }
        files.sort();
        files.dedup();
        (files, bases)
    };
    let (chained, chain_files) = complete
        .iter()
        .rev()
        .map(|&id| (id, chains(id)))
        .find(|(_, (_, bases))| *bases > 0)
        .map(|(id, (files, _))| (id, files))
        .unwrap_or_else(|| panic!("no retained checkpoint is incremental: {complete:?}"));
    let chained_dir = origin.job_dir.join(format!("chk-{chained}"));
    // Undamaged, it restores (its chains reach into earlier checkpoints' directories).
    {
        let root = case_root(&origin);
        let outcome = restore(root.path(), &chained_dir).await;
        assert!(
            matches!(outcome, Outcome::Ran),
            "chk-{chained}: {outcome:?}"
        );
    }
    for _ in 0..6 {
        let file = chain_files[rng.below(chain_files.len())].clone();
        let bytes = std::fs::read(job_dir.join(&file)).unwrap();
        let all = damages(&bytes, &mut rng);
        let (label, damaged) = &all[rng.below(all.len())];
        let case = format!("checkpoint chk-{chained}: file {file} {label}");
        if !announce(&case) {
            continue;
        }
        let root = case_root(&origin);
        std::fs::write(root.path().join(&origin.job_dir).join(&file), damaged).unwrap();
        let outcome = restore(root.path(), &chained_dir).await;
        check(&case, &outcome);
        let Outcome::Refused(e) = &outcome else {
            panic!("{case}: not found: {outcome:?}");
        };
        let name = file.rsplit('/').next().unwrap();
        assert!(e.to_string().contains(name), "{case}: {e}");
        count(&outcome);
    }

    // The job's directory, its newest checkpoint damaged: the restore falls back to the one
    // before it (with a warning) and runs.
    let newest = *complete.last().unwrap();
    let (newest_files, _) = chains(newest);
    let own: Vec<&String> = newest_files
        .iter()
        .filter(|f| f.starts_with(&format!("chk-{newest}/")))
        .collect();
    for _ in 0..2 {
        let file = own[rng.below(own.len())].clone();
        let bytes = std::fs::read(job_dir.join(&file)).unwrap();
        let all = damages(&bytes, &mut rng);
        let (label, damaged) = &all[rng.below(all.len())];
        let case = format!("the job's directory, newest checkpoint's {file} {label}");
        if !announce(&case) {
            continue;
        }
        let root = case_root(&origin);
        std::fs::write(root.path().join(&origin.job_dir).join(&file), damaged).unwrap();
        let outcome = restore(root.path(), &origin.job_dir).await;
        assert!(matches!(outcome, Outcome::Ran), "{case}: {outcome:?}");
        count(&outcome);
    }
    eprintln!("restores of damaged checkpoints: {tally:?}");
}
