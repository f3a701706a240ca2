//! Runs the sqllogictest files under `sql-tests/` against Weir, each file in a fresh session with
//! its own scratch directory (`__SCRATCH__` in SQL is replaced by its path; the session's data
//! directory is `__SCRATCH__/data`). `__DATA__` stands for `sql-tests/data` (shared input files).
//!
//! Files under `sql-tests/unified/` run three times: in batch mode, in streaming mode, and in
//! streaming mode with `'parallelism.default' = '2'` (keyed operators run two instances behind
//! hash exchanges); the session starts with `SET 'execution.runtime-mode'` set accordingly and
//! `'table.dml-sync' = 'true'`, and streaming reads batches of 7 rows so watermarks advance inside a
//! file and out-of-order rows arrive late (within the watermark bound):
//! the streaming run materializes each query's changelog and must give the same rows as batch.
//! That is the unification invariant; queries there use `rowsort` (a changelog has no order).
//!
//! **Scheduling independence.** Unified files also run over *split* data: every input file cut
//! into nine files (rows spread over them at random but each file keeping the rows' order, so
//! every file is ordered within the watermark delay and covers an overlapping stretch of time; one
//! file empty, one about ten times longer than the others), in streaming mode at parallelism 1, 2
//! and 4, with one split per file or byte-range splits of 64 bytes, under the perturbation mode
//! (`'weir.testing.perturbation-seed'`: random batch sizes, split and channel polling order,
//! yields). Every final result must equal batch mode's. `cargo test` runs a sample of that matrix
//! (one run per parallelism, seed and layout varying); `WEIR_LONG_TESTS=1` runs all of it (three
//! parallelisms x three seeds x two layouts).
//!
//! `cargo test --test sqllogictests` runs them all; `-- <filter>` runs files whose path contains
//! the filter; `-- --complete` rewrites the expected output of the files from what Weir returns
//! (review the diff!).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use sqllogictest::{DBOutput, DefaultColumnType};
use weir::{Session, SessionOptions, StatementResult};

struct WeirDb {
    session: Session,
    scratch: PathBuf,
    /// What `__DATA__` stands for.
    data: PathBuf,
}

#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating()
            || matches!(t, DataType::Decimal128(_, _) | DataType::Decimal256(_, _)) =>
        {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

fn format_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DbError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DbError(e.to_string()))?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| {
                        let s = f.value(row).to_string();
                        if s.is_empty() {
                            "(empty)".to_string()
                        } else {
                            s
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for WeirDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let data = &self.data;
        let sql = sql
            .replace("__SCRATCH__", &self.scratch.display().to_string())
            .replace("__DATA__", &data.display().to_string());
        let statements = self
            .session
            .parse(&sql)
            .map_err(|e| DbError(e.to_string()))?;
        let mut last = DBOutput::StatementComplete(0);
        for statement in &statements {
            last = match self
                .session
                .execute(statement)
                .await
                .map_err(|e| DbError(e.to_string()))?
            {
                StatementResult::Rows(rows) => {
                    let skip = usize::from(rows.changelog);
                    let types = rows
                        .schema
                        .fields()
                        .iter()
                        .skip(skip)
                        .map(|f| column_type(f.data_type()))
                        .collect();
                    let mut batches: Vec<RecordBatch> = rows
                        .stream
                        .try_collect()
                        .await
                        .map_err(|e| DbError(weir::Error::from(e).to_string()))?;
                    if rows.changelog {
                        // The final result of a changelog: apply every change in order.
                        batches = vec![
                            weir::stream::changes::materialize(&rows.schema, &batches)
                                .map_err(|e| DbError(e.to_string()))?,
                        ];
                    }
                    // Scratch paths differ per run: show them as the placeholder the files use.
                    let scratch = self.scratch.display().to_string();
                    let mut rows: Vec<Vec<String>> = Vec::new();
                    for row in format_rows(&batches)? {
                        let row: Vec<String> = row
                            .into_iter()
                            .map(|v| v.replace(&scratch, "__SCRATCH__"))
                            .collect();
                        if row.iter().any(|v| v.contains('\n')) {
                            // Multi-line values (plans, SHOW CREATE): one result line per text line.
                            rows.extend(row.join(" ").lines().map(|l| vec![l.to_string()]));
                        } else {
                            rows.push(row);
                        }
                    }
                    DBOutput::Rows { types, rows }
                }
                StatementResult::Status(status) => {
                    DBOutput::StatementComplete(status.rows_affected.unwrap_or(0))
                }
            };
        }
        Ok(last)
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "weir"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            slt_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
}

/// How a unified file runs.
#[derive(Debug, Clone)]
struct Mode {
    /// `batch` or `streaming`.
    runtime: &'static str,
    parallelism: usize,
    /// Read the split copies of the data files (see the module documentation).
    split_data: bool,
    /// `'weir.stream.split-size'`: byte-range splits instead of one split per file.
    split_size: Option<&'static str>,
    seed: Option<u64>,
}

impl Mode {
    fn plain(runtime: &'static str, parallelism: usize) -> Mode {
        Mode {
            runtime,
            parallelism,
            split_data: false,
            split_size: None,
            seed: None,
        }
    }

    fn label(&self) -> String {
        let mut l = self.runtime.to_string();
        if self.parallelism != 1 {
            l.push_str(&format!("-p{}", self.parallelism));
        }
        if self.split_data {
            l.push_str(match self.split_size {
                Some(_) => " byte-ranges",
                None => " files",
            });
        }
        if let Some(seed) = self.seed {
            l.push_str(&format!(" seed={seed}"));
        }
        l
    }
}

/// The scheduling-independence runs (see the module documentation).
fn split_modes(long: bool) -> Vec<Mode> {
    let mut modes = Vec::new();
    for (i, parallelism) in [1usize, 2, 4].into_iter().enumerate() {
        for seed in 1..=3u64 {
            for split_size in [None, Some("64b")] {
                let sampled = (seed as usize - 1) == i && split_size.is_some() == (i % 2 == 1);
                if long || sampled {
                    modes.push(Mode {
                        runtime: "streaming",
                        parallelism,
                        split_data: true,
                        split_size,
                        seed: Some(seed),
                    });
                }
            }
        }
    }
    modes
}

/// Copies every CSV file of `data` into a directory of the same name under `out`, its rows spread
/// over nine files: row order kept within each file, one file empty, file 1 weighted ten times
/// the others. Deterministic (a fixed-seed generator).
fn split_data(data: &Path, out: &Path) -> std::io::Result<()> {
    let mut state: u64 = 0x5eed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    // Weights of files 0..8: file 1 ten times the others, file 8 empty.
    let weights = [1usize, 10, 1, 1, 1, 1, 1, 1, 0];
    let total: usize = weights.iter().sum();
    for entry in std::fs::read_dir(data)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "csv") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let mut parts: Vec<String> = weights.iter().map(|_| format!("{header}\n")).collect();
        for line in lines {
            let mut pick = next() % total;
            let mut file = 0;
            while pick >= weights[file] {
                pick -= weights[file];
                file += 1;
            }
            parts[file].push_str(line);
            parts[file].push('\n');
        }
        let dir = out.join(path.file_name().unwrap_or_default());
        std::fs::create_dir_all(&dir)?;
        for (i, part) in parts.iter().enumerate() {
            std::fs::write(dir.join(format!("part-{i}.csv")), part)?;
        }
    }
    Ok(())
}

async fn run_file(
    path: &Path,
    complete: bool,
    mode: Option<Mode>,
    split_dir: &Path,
) -> Result<(), String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scratch_path = Arc::new(scratch.path().to_path_buf());
    let split_dir = split_dir.to_path_buf();
    let make = {
        let scratch_path = Arc::clone(&scratch_path);
        move || {
            let scratch_path = Arc::clone(&scratch_path);
            let mode = mode.clone();
            let split_dir = split_dir.clone();
            async move {
                let mut session = Session::open(SessionOptions {
                    data_dir: Some(scratch_path.join("data")),
                })
                .await
                .map_err(|e| DbError(e.to_string()))?;
                let mut data = manifest_dir().join("sql-tests/data");
                if let Some(mode) = &mode {
                    let runtime = mode.runtime;
                    let parallelism = mode.parallelism;
                    // Streaming reads small batches, so watermarks advance inside a file and
                    // out-of-order rows arrive after newer ones (within the watermark's bound).
                    let mut extra = if runtime == "streaming" {
                        " SET 'datafusion.execution.batch_size' = '7';".to_string()
                    } else {
                        String::new()
                    };
                    if let Some(size) = mode.split_size {
                        extra.push_str(&format!(" SET 'weir.stream.split-size' = '{size}';"));
                    }
                    if let Some(seed) = mode.seed {
                        extra.push_str(&format!(
                            " SET 'weir.testing.perturbation-seed' = '{seed}';"
                        ));
                    }
                    if mode.split_data {
                        data = split_dir.to_path_buf();
                    }
                    session
                        .execute_sql(&format!(
                            "SET 'execution.runtime-mode' = '{runtime}'; SET 'table.dml-sync' = 'true'; \
                             SET 'parallelism.default' = '{parallelism}';{extra}"
                        ))
                        .await
                        .map_err(|e| DbError(e.to_string()))?;
                }
                Ok(WeirDb {
                    session,
                    scratch: scratch_path.to_path_buf(),
                    data,
                })
            }
        }
    };
    let mut runner = sqllogictest::Runner::new(make);
    runner.with_column_validator(sqllogictest::strict_column_validator);
    if complete {
        runner
            .update_test_file(
                path,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::strict_column_validator,
            )
            .await
            .map_err(|e| e.to_string())
    } else {
        runner
            .run_file_async(path)
            .await
            .map_err(|e| e.display(true).to_string())
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let complete = args.iter().any(|a| a == "--complete");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let root = manifest_dir().join("sql-tests");
    let mut files = Vec::new();
    slt_files(&root, &mut files);
    let long = std::env::var("WEIR_LONG_TESTS").is_ok_and(|v| v == "1");
    let split_dir = tempfile::tempdir().expect("a temporary directory");
    split_data(&root.join("data"), split_dir.path()).expect("split copies of the data files");
    let (mut passed, mut failed) = (0, 0);
    for file in files {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        // Unified files: batch first (and only batch with --complete: it writes the answers).
        let modes: Vec<Option<Mode>> = if name.starts_with("unified") {
            if complete {
                vec![Some(Mode::plain("batch", 1))]
            } else {
                let mut m = vec![
                    Some(Mode::plain("batch", 1)),
                    Some(Mode::plain("streaming", 1)),
                    Some(Mode::plain("streaming", 2)),
                ];
                m.extend(split_modes(long).into_iter().map(Some));
                m
            }
        } else {
            vec![None]
        };
        for mode in modes {
            let label = match &mode {
                Some(m) => format!("{name} [{}]", m.label()),
                None => name.clone(),
            };
            match run_file(&file, complete, mode, split_dir.path()).await {
                Ok(()) => {
                    passed += 1;
                    println!("test {label} ... ok");
                }
                Err(e) => {
                    failed += 1;
                    println!("test {label} ... FAILED\n{e}\n");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The checkout under test: cargo's run-time `CARGO_MANIFEST_DIR` (the compile-time value can name
/// another checkout when several share one target directory and a build was reused).
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
