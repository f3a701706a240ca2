//! End-to-end tests of the interactive shell: the real `weir` binary in a pseudo-terminal,
//! driven like a person would (multi-line input, Ctrl-C while typing and while a query runs,
//! Ctrl-D, `quit;`).

#![cfg(unix)]

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use expectrl::process::unix::WaitStatus;
use expectrl::session::{OsProcess, OsStream};
use expectrl::stream::log::LogStream;
use expectrl::{Captures, Eof, Expect, Needle, Regex, Session};

/// Generous: the debug binary on a slow, shared CI machine.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Everything read from and written to the terminal, to show when an expectation fails.
#[derive(Clone, Default)]
struct Transcript(Arc<Mutex<Vec<u8>>>);

impl Write for Transcript {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("transcript lock poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The shell in a pseudo-terminal; a failed expectation panics with the terminal transcript.
struct Shell {
    session: Session<OsProcess, LogStream<OsStream, Transcript>>,
    transcript: Transcript,
}

impl Shell {
    fn spawn(args: &[&str]) -> Shell {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.args(args)
            .env("TERM", "xterm")
            .env_remove("RUST_LOG")
            .env_remove("WEIR_DATA_DIR");
        let session = Session::spawn(cmd).expect("spawn weir in a pty");
        let transcript = Transcript::default();
        let mut session =
            expectrl::session::log(session, transcript.clone()).expect("log the terminal");
        session.set_expect_timeout(Some(TIMEOUT));
        Shell {
            session,
            transcript,
        }
    }

    /// Waits for `needle`; on a timeout, fails with `what` and the last of the transcript.
    fn expect<N: Needle>(&mut self, needle: N, what: &str) -> Captures {
        match self.session.expect(needle) {
            Ok(found) => found,
            Err(e) => {
                let log = self
                    .transcript
                    .0
                    .lock()
                    .map(|l| l.clone())
                    .unwrap_or_default();
                let log = String::from_utf8_lossy(&log);
                let tail: String = {
                    let chars: Vec<char> = log.chars().collect();
                    chars[chars.len().saturating_sub(6000)..].iter().collect()
                };
                panic!("waiting for {what}: {e}\n--- terminal transcript (end) ---\n{tail}")
            }
        }
    }

    fn send(&mut self, text: &str) {
        self.session.send(text).expect("write to the pty");
    }

    fn send_line(&mut self, line: &str) {
        self.session.send_line(line).expect("write to the pty");
    }

    fn expect_exit_ok(&mut self) {
        self.expect(Eof, "weir to exit");
        let status = self.session.get_process().wait().expect("wait for weir");
        assert!(
            matches!(status, WaitStatus::Exited(_, 0)),
            "exit status: {status:?}"
        );
    }
}

#[test]
fn multi_line_statement_cancel_and_ctrl_d() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_dir_arg = data_dir.to_str().unwrap();
    let mut p = Shell::spawn(&["--data-dir", data_dir_arg]);
    p.expect("weir> ", "first prompt");

    // A statement over three lines, with a continuation prompt.
    p.send_line("SELECT");
    p.expect("    -> ", "continuation prompt");
    p.send_line("  1 AS x");
    p.expect("    -> ", "second continuation prompt");
    p.send_line(";");
    p.expect("| x |", "result header");
    p.expect(Regex(r"\|\s+1 \|"), "result row");
    p.expect("1 row in set", "footer");
    p.expect("weir> ", "prompt after the result");

    // Ctrl-C while typing drops the input.
    p.send("SELECT 1");
    p.send("\x03");
    p.expect("weir> ", "prompt after Ctrl-C");
    p.send_line("SELECT 7 AS y;");
    p.expect(Regex(r"\|\s+7 \|"), "the typed statement alone ran");
    p.expect("weir> ", "the prompt");

    // Ctrl-C while a (10^10-row) query runs cancels it; the shell goes on.
    p.send_line("SELECT count(*) FROM range(100000) a, range(100000) b;");
    std::thread::sleep(Duration::from_secs(1));
    p.send("\x03");
    p.expect("Query cancelled.", "cancel message");
    p.expect("weir> ", "prompt after cancel");
    p.send_line("SELECT 42;");
    p.expect(Regex(r"\|\s+42 \|"), "the shell still works");
    p.expect("weir> ", "the prompt");

    // Ctrl-D on an empty line leaves.
    p.send("\x04");
    p.expect("Goodbye!", "goodbye");
    p.expect_exit_ok();

    let history = std::fs::read_to_string(data_dir.join("history")).expect("history file written");
    assert!(history.contains("SELECT 42;"), "{history}");
}

#[test]
fn errors_and_quit() {
    let mut p = Shell::spawn(&["--in-memory"]);
    p.expect("weir> ", "the prompt");
    p.send_line("SELECT * FROM no_such_table;");
    p.expect("[ERROR]", "error line");
    p.expect("no_such_table", "the table named in the error");
    p.expect("weir> ", "prompt after an error");
    // A `;` inside a comment does not end the statement.
    p.send_line("SELECT 5 AS c -- not the end;");
    p.expect("    -> ", "a continuation prompt");
    p.send_line(";");
    p.expect(Regex(r"\|\s+5 \|"), "the result 5");
    p.expect("weir> ", "the prompt");
    p.send_line("quit;");
    p.expect("Goodbye!", "goodbye");
    p.expect_exit_ok();
}

/// A streaming SELECT over an unbounded source updates its table live; Ctrl-C cancels the query
/// and returns to the prompt.
#[test]
fn streaming_select_updates_live_until_ctrl_c() {
    let mut p = Shell::spawn(&["--in-memory"]);
    p.expect("weir> ", "first prompt");
    p.send_line(
        "CREATE TABLE ticks (k INT) WITH ('connector' = 'datagen', 'rows-per-second' = '50', \
         'fields.k.min' = '1', 'fields.k.max' = '10');",
    );
    p.expect("weir> ", "prompt after CREATE");
    // Unbounded source: `auto` runs it in streaming mode. One updating row: the count.
    p.send_line("SELECT COUNT(*) AS n FROM ticks;");
    p.expect("| n", "the live table's header");
    // The table is redrawn with a growing count: two different values appear.
    let first = p.expect(Regex(r"\|\s+(\d+) \|"), "a first count");
    let first = String::from_utf8_lossy(first.get(1).unwrap()).to_string();
    let mut changed = false;
    for _ in 0..20 {
        let next = p.expect(Regex(r"\|\s+(\d+) \|"), "a redrawn count");
        if String::from_utf8_lossy(next.get(1).unwrap()) != first {
            changed = true;
            break;
        }
    }
    assert!(changed, "the count never changed from {first}");
    p.send("\x03");
    p.expect("Query cancelled.", "cancel message");
    p.expect("weir> ", "prompt after cancel");
    p.send_line("SELECT 5 AS z;");
    p.expect(Regex(r"\|\s+5 \|"), "the shell still works");
    p.send("\x04");
    p.expect("Goodbye!", "goodbye");
    p.expect_exit_ok();
}

/// Lines typed (or pasted without bracketed paste) before the shell is back at its prompt are
/// kept and run in order, not dropped with the line editor's read-ahead buffer.
#[test]
fn lines_typed_ahead_all_run() {
    let mut p = Shell::spawn(&["--in-memory"]);
    p.expect("weir> ", "first prompt");
    p.send("SELECT 11 AS a;\nSELECT 22 AS b;\nSELECT 33 AS c;\n");
    p.expect(Regex(r"\|\s+11 \|"), "the first result");
    p.expect(Regex(r"\|\s+22 \|"), "the second result");
    p.expect(Regex(r"\|\s+33 \|"), "the third result");
    p.expect("weir> ", "the prompt");
    p.send_line("quit;");
    p.expect("Goodbye!", "goodbye");
    p.expect_exit_ok();
}
