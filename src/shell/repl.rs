//! The interactive shell loop (`weir` on a terminal): reads SQL with rustyline (history,
//! completion, a continuation prompt until a statement ends with `;`), runs each complete buffer
//! through the session statement by statement, and prints results. Ctrl-C while typing clears
//! the input; Ctrl-C while a statement runs cancels it; Ctrl-D or `quit;` / `exit;` leave.

use std::io::Write;
use std::path::PathBuf;

use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor};

use crate::error::{Error, Result};
use crate::session::Session;
use crate::shell::complete::ShellHelper;
use crate::shell::input::{is_blank, is_complete, is_exit_command, split_statements};
use crate::shell::print::format_error;
use crate::shell::run::{RunOptions, is_cancelled, on_runtime, run_statement};

/// The main prompt.
pub const PROMPT: &str = "weir> ";
/// The prompt for the following lines of an unfinished statement.
pub const CONTINUATION_PROMPT: &str = "    -> ";

/// Settings of the interactive shell.
#[derive(Debug, Clone, Default)]
pub struct ShellConfig {
    /// Where to keep the line history; `None` keeps none.
    pub history_file: Option<PathBuf>,
    /// The runtime that executes queries (see [`RunOptions::executor`]); `None`: the current one.
    pub executor: Option<tokio::runtime::Handle>,
}

/// What to do after a buffer ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Continue,
    Exit,
}

/// Runs the interactive shell until the user leaves. Errors of statements are printed, not
/// returned; an error is returned only if the terminal cannot be read.
pub async fn run_interactive(session: &mut Session, config: ShellConfig) -> Result<()> {
    let rl_config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .max_history_size(10_000)
        .map_err(|e| Error::invalid(format!("bad shell configuration: {e}")))?
        .build();
    let mut editor: Editor<ShellHelper, FileHistory> = Editor::with_config(rl_config)
        .map_err(|e| Error::external(format!("cannot open the terminal: {e}")))?;
    editor.set_helper(Some(ShellHelper::new()));
    if let Some(path) = &config.history_file
        && path.exists()
        && let Err(e) = editor.load_history(path)
    {
        tracing::warn!("cannot read the history file {}: {e}", path.display());
    }
    install_interrupt_handler();

    println!("Weir SQL shell. End statements with ';'. Type 'quit;' or press Ctrl-D to exit.");
    let options = RunOptions {
        executor: config.executor.clone(),
        output: None,
        cancellable: true,
        progress: true,
        silent: false,
    };
    let mut buffer = String::new();
    loop {
        if buffer.is_empty()
            && let Some(helper) = editor.helper_mut()
        {
            helper
                .set_names(on_runtime(options.executor.as_ref(), session.completion_names()).await);
        }
        let prompt = if buffer.is_empty() {
            PROMPT
        } else {
            CONTINUATION_PROMPT
        };
        match editor.readline(prompt) {
            Ok(line) => {
                if !buffer.is_empty() {
                    buffer.push('\n');
                }
                buffer.push_str(&line);
                if is_blank(&buffer) {
                    buffer.clear();
                    continue;
                }
                if !is_complete(&buffer) {
                    continue;
                }
                let text = std::mem::take(&mut buffer);
                if let Err(e) = editor.add_history_entry(text.as_str()) {
                    tracing::warn!("cannot add to the history: {e}");
                }
                save_history(&mut editor, &config);
                if run_buffer(session, &text, &options).await == Next::Exit {
                    break;
                }
            }
            // Ctrl-C while typing: drop what was typed, fresh prompt.
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                save_history(&mut editor, &config);
                return Err(Error::external(format!("cannot read input: {e}")));
            }
        }
    }
    save_history(&mut editor, &config);
    println!("Goodbye!");
    Ok(())
}

/// Makes SIGINT catchable from the start, so a Ctrl-C that arrives while no statement runs (and
/// the terminal is not in raw mode) does not end the shell.
fn install_interrupt_handler() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Tokio keeps its handler installed for the life of the process; the stream itself is
        // not needed.
        if let Err(e) = signal(SignalKind::interrupt()) {
            tracing::warn!("cannot watch Ctrl-C: {e}");
        }
    }
}

fn save_history(editor: &mut Editor<ShellHelper, FileHistory>, config: &ShellConfig) {
    let Some(path) = &config.history_file else {
        return;
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        tracing::warn!("cannot create {}: {e}", dir.display());
        return;
    }
    if let Err(e) = editor.save_history(path) {
        tracing::warn!("cannot write the history file {}: {e}", path.display());
    }
}

/// Runs the statements of a complete buffer in order; stops at the first failure. `quit` or
/// `exit` runs what comes before it, then ends the shell.
async fn run_buffer(session: &mut Session, text: &str, options: &RunOptions) -> Next {
    let chunks = split_statements(text);
    let exit_at = chunks
        .iter()
        .find(|c| is_exit_command(&text[c.start..c.end]))
        .map(|c| c.start);
    let script = match exit_at {
        Some(start) => &text[..start],
        None => text,
    };
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let ok = if is_blank(script) {
        true
    } else {
        match session.parse(script) {
            Err(e) => {
                report(&mut stderr, &e);
                false
            }
            Ok(statements) => {
                let mut ok = true;
                for statement in &statements {
                    if let Err(e) =
                        run_statement(session, statement, options, &mut stdout, &mut stderr).await
                    {
                        report(&mut stderr, &e);
                        ok = false;
                        break;
                    }
                }
                ok
            }
        }
    };
    if ok && exit_at.is_some() {
        Next::Exit
    } else {
        Next::Continue
    }
}

fn report(stderr: &mut dyn Write, err: &Error) {
    let _ = std::io::stdout().flush();
    let message = if is_cancelled(err) {
        "\nQuery cancelled.".to_string()
    } else {
        format_error(err)
    };
    let _ = writeln!(stderr, "{message}");
    let _ = stderr.flush();
}
