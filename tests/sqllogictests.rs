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
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests/data");
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

async fn run_file(path: &Path, complete: bool, mode: Option<&'static str>) -> Result<(), String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scratch_path = Arc::new(scratch.path().to_path_buf());
    let make = {
        let scratch_path = Arc::clone(&scratch_path);
        move || {
            let scratch_path = Arc::clone(&scratch_path);
            async move {
                let mut session = Session::open(SessionOptions {
                    data_dir: Some(scratch_path.join("data")),
                })
                .await
                .map_err(|e| DbError(e.to_string()))?;
                if let Some(mode) = mode {
                    // `streaming-p2`: streaming with two instances per keyed operator.
                    let (mode, parallelism) = match mode.split_once("-p") {
                        Some((m, p)) => (m, p),
                        None => (mode, "1"),
                    };
                    // Streaming reads small batches, so watermarks advance inside a file and
                    // out-of-order rows arrive after newer ones (within the watermark's bound).
                    let small = if mode == "streaming" {
                        " SET 'datafusion.execution.batch_size' = '7';"
                    } else {
                        ""
                    };
                    session
                        .execute_sql(&format!(
                            "SET 'execution.runtime-mode' = '{mode}'; SET 'table.dml-sync' = 'true'; \
                             SET 'parallelism.default' = '{parallelism}';{small}"
                        ))
                        .await
                        .map_err(|e| DbError(e.to_string()))?;
                }
                Ok(WeirDb {
                    session,
                    scratch: scratch_path.to_path_buf(),
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests");
    let mut files = Vec::new();
    slt_files(&root, &mut files);
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
        let modes: &[Option<&'static str>] = if name.starts_with("unified") {
            if complete {
                &[Some("batch")]
            } else {
                &[Some("batch"), Some("streaming"), Some("streaming-p2")]
            }
        } else {
            &[None]
        };
        for mode in modes {
            let label = match mode {
                Some(m) => format!("{name} [{m}]"),
                None => name.clone(),
            };
            match run_file(&file, complete, *mode).await {
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
