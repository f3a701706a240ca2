//! Running statements for the shell and the `weir` binary: hands each parsed statement to the
//! [`Session`], reads its result stream (in a spawned task, so a Ctrl-C can abandon it at once),
//! and renders batches as they arrive through [`crate::shell::print`]. This is where the data
//! path ends: record batches become text on stdout.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;

use crate::error::{Error, ErrorCode, Result};
use crate::session::ParsedStatement;
use crate::session::{Materialized, RowsResult, Session, StatementResult};
use crate::shell::print::{self, CsvPrinter, JsonPrinter, ResultMode, TablePrinter};
use crate::shell::progress::{ProgressLine, REFRESH_EVERY};

/// The session option that selects how results are shown.
pub const RESULT_MODE_OPTION: &str = "sql-client.execution.result-mode";

/// The output formats of `weir --output ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A bordered table, printed once the whole result is read.
    Table,
    /// A bordered table, printed as batches arrive.
    Tableau,
    /// CSV with a header line; status lines go to stderr.
    Csv,
    /// Newline-delimited JSON objects; status lines go to stderr.
    Json,
}

/// How statements are run and their results shown.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The runtime that executes queries; `None`: the current one. The shell keeps queries off
    /// the runtime that watches Ctrl-C and draws progress, so that busy query threads cannot
    /// delay either (a long CPU-bound poll would starve that runtime's signal and timer driver).
    pub executor: Option<tokio::runtime::Handle>,
    /// A fixed output format; `None` follows the session's result mode (`table` by default).
    pub output: Option<OutputFormat>,
    /// Ctrl-C cancels the running statement (interactive shell). Otherwise SIGINT keeps its
    /// default effect (the process ends).
    pub cancellable: bool,
    /// Draw a progress line on stderr for long queries (only if stderr is a terminal).
    pub progress: bool,
    /// Run without printing anything (init scripts); errors are still returned.
    pub silent: bool,
}

/// Whether an error means the statement was cancelled (Ctrl-C), not that it failed.
pub fn is_cancelled(err: &Error) -> bool {
    err.code == ErrorCode::Cancelled
}

/// Resolves when SIGINT (Ctrl-C) arrives; never, if the signal cannot be watched.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Polls `future` inside `handle`'s runtime context, so that the tasks it spawns (DataFusion
/// starts some while building its streams) run on that runtime.
pub fn on_runtime<F: Future>(handle: Option<&tokio::runtime::Handle>, future: F) -> OnRuntime<F> {
    OnRuntime {
        handle: handle.cloned(),
        future: Box::pin(future),
    }
}

/// The future of [`on_runtime`].
pub struct OnRuntime<F> {
    handle: Option<tokio::runtime::Handle>,
    future: std::pin::Pin<Box<F>>,
}

impl<F: Future> Future for OnRuntime<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = &mut *self;
        let _guard = this.handle.as_ref().map(|h| h.enter());
        this.future.as_mut().poll(cx)
    }
}

/// Aborts a spawned task when dropped (on cancellation or error).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one statement and prints its result to `out` (status lines to `err` in CSV/JSON
/// output). Returns the statement's error, or [`Error::cancelled`] on Ctrl-C when
/// `options.cancellable`; the caller prints those.
pub async fn run_statement(
    session: &mut Session,
    statement: &ParsedStatement,
    options: &RunOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let started = Instant::now();
    let mut interrupt = std::pin::pin!(interrupted());
    let execute = on_runtime(options.executor.as_ref(), session.execute(statement));
    let result = if options.cancellable {
        tokio::select! {
            result = execute => result?,
            _ = &mut interrupt => return Err(Error::cancelled()),
        }
    } else {
        execute.await?
    };
    match result {
        StatementResult::Status(status) => {
            if !options.silent {
                let line = print::format_status(&status.message, started.elapsed());
                let target: &mut dyn Write = if machine_output(options) { err } else { out };
                writeln!(target, "{line}").map_err(write_error)?;
                target.flush().map_err(write_error)?;
            }
            Ok(())
        }
        StatementResult::Rows(rows) => {
            let mut renderer = if rows.changelog {
                Renderer::for_changelog(session, &rows.schema, options)?
            } else {
                Renderer::new(session, &rows.schema, options)?
            };
            let mut rows_shown =
                drain(rows, options, started, &mut interrupt, &mut renderer, out).await?;
            if let Renderer::Materialize { table, .. } = &renderer {
                rows_shown = table.len();
            }
            let footer = print::format_footer(rows_shown, started.elapsed());
            match renderer {
                Renderer::Silent => {}
                // CSV and JSON keep stdout machine-readable, also when they print the
                // materialized result of a streaming query.
                _ if renderer.is_machine_output() => {
                    writeln!(err, "{footer}").map_err(write_error)?;
                    err.flush().map_err(write_error)?;
                }
                _ => writeln!(out, "{footer}").map_err(write_error)?,
            }
            out.flush().map_err(write_error)?;
            Ok(())
        }
    }
}

fn machine_output(options: &RunOptions) -> bool {
    matches!(options.output, Some(OutputFormat::Csv | OutputFormat::Json))
}

fn write_error(e: std::io::Error) -> Error {
    Error::io("cannot write the result", e)
}

/// Turns batches into output text, in one of the output formats.
enum Renderer {
    /// `table`: collect everything, print at the end.
    Collect {
        schema: SchemaRef,
        mode: ResultMode,
        batches: Vec<RecordBatch>,
        rows: usize,
    },
    /// `tableau` / `changelog`: print as batches come.
    Stream(TablePrinter),
    Csv(CsvPrinter, SchemaRef),
    Json(JsonPrinter),
    /// Init scripts: read everything, print nothing.
    Silent,
    /// A streaming query's changelog shown as its current result (table mode, csv, json): the
    /// changes are applied to a table; `live` (interactive) redraws it as it changes, otherwise
    /// the final table is printed at the end.
    Materialize {
        table: Materialized,
        inner: Box<Renderer>,
        live: Option<LiveTable>,
    },
}

/// The state of a live-updating table on the terminal.
struct LiveTable {
    schema: SchemaRef,
    /// Lines of the last drawing (to move the cursor back over them).
    lines: usize,
    drawn: Option<Instant>,
}

/// How often a live table is redrawn at most.
const LIVE_REDRAW: std::time::Duration = std::time::Duration::from_millis(250);

impl Renderer {
    fn new(session: &Session, schema: &SchemaRef, options: &RunOptions) -> Result<Self> {
        if options.silent {
            return Ok(Renderer::Silent);
        }
        let mode = match options.output {
            Some(OutputFormat::Csv) => return Ok(Renderer::Csv(CsvPrinter::new(), schema.clone())),
            Some(OutputFormat::Json) => return Ok(Renderer::Json(JsonPrinter::new())),
            Some(OutputFormat::Table) => ResultMode::Table,
            Some(OutputFormat::Tableau) => ResultMode::Tableau,
            None => ResultMode::parse(session.option(RESULT_MODE_OPTION).as_deref())?,
        };
        Ok(match mode {
            ResultMode::Table => Renderer::Collect {
                schema: schema.clone(),
                mode,
                batches: Vec::new(),
                rows: 0,
            },
            ResultMode::Tableau | ResultMode::Changelog => {
                Renderer::Stream(TablePrinter::new(schema, mode))
            }
        })
    }

    /// The renderer for a changelog result (leading `op` column): changelog and tableau modes
    /// print every change as it comes; the others show the materialized result.
    fn for_changelog(session: &Session, schema: &SchemaRef, options: &RunOptions) -> Result<Self> {
        let inner = Renderer::new(session, schema, options)?;
        if matches!(inner, Renderer::Stream(_) | Renderer::Silent) {
            return Ok(inner);
        }
        let data = Arc::new(datafusion::arrow::datatypes::Schema::new(
            schema.fields()[1..].to_vec(),
        ));
        let live = matches!(inner, Renderer::Collect { .. }) && options.cancellable;
        let inner = match inner {
            Renderer::Collect { mode, .. } => Renderer::Collect {
                schema: Arc::clone(&data),
                mode,
                batches: Vec::new(),
                rows: 0,
            },
            Renderer::Csv(p, _) => Renderer::Csv(p, Arc::clone(&data)),
            other => other,
        };
        Ok(Renderer::Materialize {
            table: Materialized::new(Arc::clone(&data))?,
            inner: Box::new(inner),
            live: live.then_some(LiveTable {
                schema: data,
                lines: 0,
                drawn: None,
            }),
        })
    }

    /// Whether the output is CSV or JSON (status lines then go to stderr), directly or as the
    /// printer of a materialized changelog.
    fn is_machine_output(&self) -> bool {
        match self {
            Renderer::Csv(..) | Renderer::Json(_) => true,
            Renderer::Materialize { inner, .. } => inner.is_machine_output(),
            _ => false,
        }
    }

    /// Text to print now for one more batch, and the number of rows it holds.
    fn push(&mut self, batch: RecordBatch) -> Result<(String, usize)> {
        let n = batch.num_rows();
        let text = match self {
            Renderer::Materialize { table, live, .. } => {
                table.apply_op_batch(&batch)?;
                match live {
                    Some(l) if l.drawn.is_none_or(|t| t.elapsed() >= LIVE_REDRAW) => {
                        redraw(l, table)?
                    }
                    _ => String::new(),
                }
            }
            Renderer::Collect { batches, rows, .. } => {
                *rows += n;
                batches.push(batch);
                String::new()
            }
            Renderer::Stream(printer) => printer.push(&batch)?,
            Renderer::Csv(printer, _) => printer.push(&batch)?,
            Renderer::Json(printer) => printer.push(&batch)?,
            Renderer::Silent => String::new(),
        };
        Ok((text, n))
    }

    /// Text to print once the result is complete.
    fn finish(&mut self) -> Result<String> {
        match self {
            Renderer::Collect {
                schema,
                mode,
                batches,
                ..
            } => {
                let text = print::format_table(schema, batches, *mode)?;
                batches.clear();
                Ok(text)
            }
            Renderer::Stream(printer) => Ok(printer.finish()),
            Renderer::Materialize { table, inner, live } => {
                if let Some(l) = live {
                    return redraw(l, table);
                }
                let batch = table.to_batch()?;
                let (mut text, _) = inner.push(batch)?;
                text.push_str(&inner.finish()?);
                Ok(text)
            }
            Renderer::Csv(printer, schema) => printer.finish(schema),
            Renderer::Json(_) | Renderer::Silent => Ok(String::new()),
        }
    }
}

/// Draws the current content of a live table over its previous drawing.
fn redraw(live: &mut LiveTable, table: &Materialized) -> Result<String> {
    let batch = table.to_batch()?;
    let body = print::format_table(&live.schema, &[batch], ResultMode::Table)?;
    let mut text = String::new();
    if live.lines > 0 {
        // Cursor up over the old drawing, then clear to the end of the screen.
        text.push_str(&format!("\x1b[{}A\x1b[J", live.lines));
    }
    live.lines = body.lines().count();
    live.drawn = Some(Instant::now());
    text.push_str(&body);
    Ok(text)
}

/// Reads the result stream to its end, printing as it goes; returns the number of rows.
async fn drain(
    rows: RowsResult,
    options: &RunOptions,
    started: Instant,
    interrupt: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    renderer: &mut Renderer,
    out: &mut dyn Write,
) -> Result<usize> {
    let RowsResult {
        mut stream,
        progress,
        ..
    } = rows;
    // The stream is read in its own task: a long CPU-bound poll cannot delay Ctrl-C handling,
    // and aborting the task (when this function returns early) drops the stream, which cancels
    // the query.
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let read = async move {
        while let Some(batch) = stream.next().await {
            let failed = batch.is_err();
            if tx.send(batch).await.is_err() || failed {
                break;
            }
        }
    };
    let task = match &options.executor {
        Some(handle) => handle.spawn(read),
        None => tokio::spawn(read),
    };
    let _abort = AbortOnDrop(task.abort_handle());
    let show_progress = options.progress
        && !options.silent
        && progress.is_some()
        && std::io::stderr().is_terminal();
    let mut line = ProgressLine::new(progress, started, show_progress);
    let mut ticker = tokio::time::interval(REFRESH_EVERY);
    let mut total = 0usize;
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(Ok(batch)) => {
                    let (text, n) = renderer.push(batch)?;
                    total += n;
                    if !text.is_empty() {
                        line.clear();
                        out.write_all(text.as_bytes()).map_err(write_error)?;
                        out.flush().map_err(write_error)?;
                    }
                }
                Some(Err(e)) => return Err(Error::from(e)),
                None => break,
            },
            _ = &mut *interrupt, if options.cancellable => return Err(Error::cancelled()),
            _ = ticker.tick(), if show_progress => line.tick(),
        }
    }
    match task.await {
        Err(e) if e.is_panic() => return Err(Error::internal(format!("the query panicked: {e}"))),
        _ => {}
    }
    line.clear();
    let text = renderer.finish()?;
    out.write_all(text.as_bytes()).map_err(write_error)?;
    Ok(total)
}

/// Parses and runs a script statement by statement, printing each result; stops at the first
/// failing statement and returns its error (not printed).
pub async fn run_script(
    session: &mut Session,
    sql: &str,
    options: &RunOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let statements = session.parse(sql)?;
    for statement in &statements {
        run_statement(session, statement, options, out, err).await?;
    }
    Ok(())
}

/// At the end of a non-interactive run: waits for the streaming jobs over bounded sources to
/// end and reports those that failed or were cancelled, and the unbounded jobs that stop because
/// the process exits. Returns false when some job failed.
pub async fn finish_jobs(session: &Session, err: &mut dyn Write) -> bool {
    let mut ok = true;
    for (id, status) in session.wait_for_bounded_jobs().await {
        match status {
            crate::session::JobStatus::Failed(e) => {
                ok = false;
                let _ = writeln!(err, "[ERROR] job {id} failed: {e}");
            }
            crate::session::JobStatus::Canceled => {
                let _ = writeln!(err, "[WARNING] job {id} was canceled");
            }
            _ => {}
        }
    }
    let running: Vec<String> = session
        .jobs()
        .entries()
        .iter()
        .filter(|e| !e.bounded && e.job.status().is_running())
        .map(|e| e.id.clone())
        .collect();
    if !running.is_empty() {
        let _ = writeln!(
            err,
            "[WARNING] stopping {} unbounded streaming job(s) at exit: {}",
            running.len(),
            running.join(", ")
        );
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionOptions;

    async fn run(sql: &str, options: RunOptions) -> (Result<()>, String, String) {
        let mut session = Session::open(SessionOptions::default()).await.unwrap();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let result = run_script(&mut session, sql, &options, &mut out, &mut err).await;
        (
            result,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[tokio::test]
    async fn table_output_with_footer() {
        let (result, out, err) = run("SELECT 1 AS a; SELECT 2 AS b", RunOptions::default()).await;
        result.unwrap();
        assert!(
            out.starts_with("+---+\n| a |\n+---+\n| 1 |\n+---+\n1 row in set ("),
            "{out}"
        );
        assert!(out.contains("| b |\n+---+\n| 2 |\n"), "{out}");
        assert_eq!(err, "");
    }

    #[tokio::test]
    async fn empty_result_and_tableau() {
        let options = RunOptions {
            output: Some(OutputFormat::Tableau),
            ..Default::default()
        };
        let (result, out, _) =
            run("SELECT * FROM range(3) WHERE value > 10", options.clone()).await;
        result.unwrap();
        assert!(out.starts_with("Empty set ("), "{out}");
        let (result, out, _) = run("SELECT * FROM range(3)", options).await;
        result.unwrap();
        assert!(
            out.contains(
                "| value |\n+-------+\n|     0 |\n|     1 |\n|     2 |\n+-------+\n3 rows in set"
            ),
            "{out}"
        );
    }

    #[tokio::test]
    async fn csv_and_json_keep_stdout_clean() {
        let csv = RunOptions {
            output: Some(OutputFormat::Csv),
            ..Default::default()
        };
        let (result, out, err) = run("SELECT 1 AS a, 'x' AS b", csv).await;
        result.unwrap();
        assert_eq!(out, "a,b\n1,x\n");
        assert!(err.starts_with("1 row in set"), "{err}");
        let json = RunOptions {
            output: Some(OutputFormat::Json),
            ..Default::default()
        };
        let (result, out, _) = run("SELECT 1 AS a, CAST(NULL AS INT) AS b", json).await;
        result.unwrap();
        assert_eq!(out, "{\"a\":1,\"b\":null}\n");
    }

    #[tokio::test]
    async fn stops_at_first_error() {
        let (result, out, _) = run(
            "SELECT 1 AS a; SELECT * FROM no_such_table; SELECT 3 AS c",
            RunOptions::default(),
        )
        .await;
        let e = result.unwrap_err();
        assert!(e.to_string().contains("no_such_table"), "{e}");
        assert!(out.contains("| a |"));
        assert!(!out.contains("| c |"), "{out}");
    }

    #[test]
    fn on_runtime_spawns_on_the_given_runtime() {
        let queries = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("query-test")
            .build()
            .unwrap();
        let shell = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let name = shell
            .block_on(on_runtime(Some(queries.handle()), async {
                let spawned =
                    tokio::spawn(async { std::thread::current().name().map(str::to_string) });
                spawned.await
            }))
            .unwrap();
        assert_eq!(name.as_deref(), Some("query-test"));
        queries.shutdown_background();
    }

    #[tokio::test]
    async fn silent_prints_nothing() {
        let options = RunOptions {
            silent: true,
            ..Default::default()
        };
        let (result, out, err) = run("SELECT 1", options).await;
        result.unwrap();
        assert_eq!((out.as_str(), err.as_str()), ("", ""));
    }
}
