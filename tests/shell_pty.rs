//! End-to-end tests of the interactive shell: the real `weir` binary in a pseudo-terminal,
//! driven like a person would (multi-line input, Ctrl-C while typing and while a query runs,
//! Ctrl-D, `quit;`).

#![cfg(unix)]

use std::process::Command;
use std::time::Duration;

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession;
use expectrl::{Eof, Expect, Regex, Session};

/// Generous: the debug binary on a slow, shared CI machine.
const TIMEOUT: Duration = Duration::from_secs(30);

fn spawn(args: &[&str]) -> OsSession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args)
        .env("TERM", "xterm")
        .env_remove("RUST_LOG")
        .env_remove("WEIR_DATA_DIR");
    let mut session = Session::spawn(cmd).expect("spawn weir in a pty");
    session.set_expect_timeout(Some(TIMEOUT));
    session
}

fn expect_exit_ok(session: &mut OsSession) {
    session.expect(Eof).expect("weir exits");
    let status = session.get_process().wait().expect("wait for weir");
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "exit status: {status:?}"
    );
}

#[test]
fn multi_line_statement_cancel_and_ctrl_d() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_dir_arg = data_dir.to_str().unwrap();
    let mut p = spawn(&["--data-dir", data_dir_arg]);
    p.expect("weir> ").expect("first prompt");

    // A statement over three lines, with a continuation prompt.
    p.send_line("SELECT").unwrap();
    p.expect("    -> ").expect("continuation prompt");
    p.send_line("  1 AS x").unwrap();
    p.expect("    -> ").expect("second continuation prompt");
    p.send_line(";").unwrap();
    p.expect("| x |").expect("result header");
    p.expect(Regex(r"\|\s+1 \|")).expect("result row");
    p.expect("1 row in set").expect("footer");
    p.expect("weir> ").expect("prompt after the result");

    // Ctrl-C while typing drops the input.
    p.send("SELECT 1").unwrap();
    p.send("\x03").unwrap();
    p.expect("weir> ").expect("prompt after Ctrl-C");
    p.send_line("SELECT 7 AS y;").unwrap();
    p.expect(Regex(r"\|\s+7 \|"))
        .expect("the typed statement alone ran");
    p.expect("weir> ").unwrap();

    // Ctrl-C while a (10^10-row) query runs cancels it; the shell goes on.
    p.send_line("SELECT count(*) FROM range(100000) a, range(100000) b;")
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    p.send("\x03").unwrap();
    p.expect("Query cancelled.").expect("cancel message");
    p.expect("weir> ").expect("prompt after cancel");
    p.send_line("SELECT 42;").unwrap();
    p.expect(Regex(r"\|\s+42 \|"))
        .expect("the shell still works");
    p.expect("weir> ").unwrap();

    // Ctrl-D on an empty line leaves.
    p.send("\x04").unwrap();
    p.expect("Goodbye!").expect("goodbye");
    expect_exit_ok(&mut p);

    let history = std::fs::read_to_string(data_dir.join("history")).expect("history file written");
    assert!(history.contains("SELECT 42;"), "{history}");
}

#[test]
fn errors_and_quit() {
    let mut p = spawn(&["--in-memory"]);
    p.expect("weir> ").unwrap();
    p.send_line("SELECT * FROM no_such_table;").unwrap();
    p.expect("[ERROR]").expect("error line");
    p.expect("no_such_table").unwrap();
    p.expect("weir> ").expect("prompt after an error");
    // A `;` inside a comment does not end the statement.
    p.send_line("SELECT 5 AS c -- not the end;").unwrap();
    p.expect("    -> ").unwrap();
    p.send_line(";").unwrap();
    p.expect(Regex(r"\|\s+5 \|")).unwrap();
    p.expect("weir> ").unwrap();
    p.send_line("quit;").unwrap();
    p.expect("Goodbye!").unwrap();
    expect_exit_ok(&mut p);
}

/// A streaming SELECT over an unbounded source updates its table live; Ctrl-C cancels the query
/// and returns to the prompt.
#[test]
fn streaming_select_updates_live_until_ctrl_c() {
    let mut p = spawn(&["--in-memory"]);
    p.expect("weir> ").expect("first prompt");
    p.send_line(
        "CREATE TABLE ticks (k INT) WITH ('connector' = 'datagen', 'rows-per-second' = '50', \
         'fields.k.min' = '1', 'fields.k.max' = '10');",
    )
    .unwrap();
    p.expect("weir> ").expect("prompt after CREATE");
    // Unbounded source: `auto` runs it in streaming mode. One updating row: the count.
    p.send_line("SELECT COUNT(*) AS n FROM ticks;").unwrap();
    p.expect("| n").expect("the live table's header");
    // The table is redrawn with a growing count: two different values appear.
    let first = p.expect(Regex(r"\|\s+(\d+) \|")).expect("a first count");
    let first = String::from_utf8_lossy(first.get(1).unwrap()).to_string();
    let mut changed = false;
    for _ in 0..20 {
        let next = p.expect(Regex(r"\|\s+(\d+) \|")).expect("a redrawn count");
        if String::from_utf8_lossy(next.get(1).unwrap()) != first {
            changed = true;
            break;
        }
    }
    assert!(changed, "the count never changed from {first}");
    p.send("\x03").unwrap();
    p.expect("Query cancelled.").expect("cancel message");
    p.expect("weir> ").expect("prompt after cancel");
    p.send_line("SELECT 5 AS z;").unwrap();
    p.expect(Regex(r"\|\s+5 \|"))
        .expect("the shell still works");
    p.send("\x04").unwrap();
    p.expect("Goodbye!").expect("goodbye");
    expect_exit_ok(&mut p);
}
