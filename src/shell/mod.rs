//! The front door for people: the interactive SQL shell and the non-interactive runner behind
//! the `weir` binary (`weir -e SQL`, `weir -f FILE`). SQL text comes in here, goes to the
//! [`crate::session::Session`], and the statement results (Arrow batches or status lines) come
//! back out as text. Uses only `session` and `error` (the layer rule in `lib.rs`).
//!
//! - [`input`]: when typed lines form complete statements; `quit;` / `exit;`.
//! - [`repl`]: the rustyline loop, Ctrl-C / Ctrl-D handling, history.
//! - [`complete`]: keyword and name completion.
//! - [`run`]: runs statements and streams their results to the output.
//! - [`print`]: pure formatting of tables, CSV, JSON and status lines.
//! - [`progress`]: the progress line of long queries.

pub mod complete;
pub mod input;
pub mod print;
pub mod progress;
pub mod repl;
pub mod run;

pub use print::ResultMode;
pub use repl::{ShellConfig, run_interactive};
pub use run::{
    OutputFormat, RunOptions, finish_jobs, is_cancelled, on_runtime, run_script, run_statement,
};
