//! End-to-end tests of the `weir` command line run non-interactively: `-e`, `-f`, `-i`,
//! `--output`, SQL on stdin, and exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn weir(args: &[&str]) -> Output {
    weir_with_stdin(args, "")
}

fn weir_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("WEIR_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run weir");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait for weir")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn execute_prints_tables() {
    let o = weir(&["--in-memory", "-e", "SELECT 1 AS a; SELECT 2 AS b"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("+---+\n| a |\n+---+\n| 1 |\n+---+\n1 row in set ("),
        "{out}"
    );
    assert!(
        out.contains("+---+\n| b |\n+---+\n| 2 |\n+---+\n1 row in set ("),
        "{out}"
    );
    assert_eq!(stderr(&o), "");
}

#[test]
fn csv_output_is_only_data_on_stdout() {
    let o = weir(&[
        "--in-memory",
        "--output",
        "csv",
        "-e",
        "SELECT value AS v, 'x' AS s FROM range(3)",
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "v,s\n0,x\n1,x\n2,x\n");
    assert!(stderr(&o).contains("3 rows in set"), "{}", stderr(&o));
}

#[test]
fn streaming_csv_and_json_keep_stdout_clean() {
    // A streaming (updating) query over a bounded source: the final materialized result is
    // printed as CSV/JSON on stdout, the row count on stderr.
    let script = "SET 'execution.runtime-mode' = 'streaming';
        CREATE TEMPORARY TABLE nums (n INT) WITH ('connector' = 'datagen',
          'number-of-rows' = '6', 'fields.n.kind' = 'sequence',
          'fields.n.start' = '1', 'fields.n.end' = '6');
        SELECT n % 2 AS k, COUNT(*) AS c FROM nums GROUP BY n % 2;";
    let o = weir(&["--in-memory", "--output", "csv", "-e", script]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"k,c"), "{out}");
    lines.sort();
    assert_eq!(lines, ["0,3", "1,3", "k,c"], "{out}");
    assert!(!out.contains("in set"), "{out}");
    assert!(stderr(&o).contains("2 rows in set"), "{}", stderr(&o));

    let o = weir(&["--in-memory", "--output", "json", "-e", script]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["{\"k\":0,\"c\":3}", "{\"k\":1,\"c\":3}"], "{out}");
    assert!(stderr(&o).contains("2 rows in set"), "{}", stderr(&o));
}

#[test]
fn json_output_is_newline_delimited() {
    let o = weir(&[
        "--in-memory",
        "--output",
        "json",
        "-e",
        "SELECT 1 AS a, 'q' AS b; SELECT 2 AS a",
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "{\"a\":1,\"b\":\"q\"}\n{\"a\":2}\n");
}

#[test]
fn file_script() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sql");
    std::fs::write(
        &script,
        "-- a script\nSELECT 10 AS ten;\n\nSELECT\n  20 AS twenty;\n",
    )
    .unwrap();
    let o = weir(&[
        "--in-memory",
        "--output",
        "csv",
        "-f",
        script.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "ten\n10\ntwenty\n20\n");
}

#[test]
fn failing_statement_stops_the_script() {
    let o = weir(&[
        "--in-memory",
        "-e",
        "SELECT 1 AS first; SELECT * FROM missing_table; SELECT 3 AS third",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("| first |"), "{out}");
    assert!(
        !out.contains("third"),
        "later statements must not run: {out}"
    );
    let err = stderr(&o);
    assert!(err.starts_with("[ERROR] "), "{err}");
    assert!(err.contains("missing_table"), "{err}");
}

#[test]
fn missing_script_file_fails() {
    let o = weir(&["--in-memory", "-f", "/nonexistent/weir/script.sql"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read /nonexistent/weir/script.sql"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn init_script_runs_first_and_silently() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("init.sql");
    std::fs::write(&init, "SELECT 'from init' AS marker;").unwrap();
    let o = weir(&[
        "--in-memory",
        "-i",
        init.to_str().unwrap(),
        "--output",
        "csv",
        "-e",
        "SELECT 5 AS five",
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "five\n5\n");
    assert!(!stderr(&o).contains("marker"));

    std::fs::write(&init, "SELECT * FROM not_there;").unwrap();
    let o = weir(&[
        "--in-memory",
        "-i",
        init.to_str().unwrap(),
        "-e",
        "SELECT 5 AS five",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!stdout(&o).contains("five"), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("not_there") && err.contains("init script"),
        "{err}"
    );
}

#[test]
fn sql_on_stdin() {
    let o = weir_with_stdin(&["--in-memory", "--output", "csv"], "SELECT 7 AS seven;\n");
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "seven\n7\n");
}

#[test]
fn data_dir_and_in_memory_conflict() {
    let o = weir(&["--in-memory", "--data-dir", "/tmp/x", "-e", "SELECT 1"]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    let o = weir(&["-e", "SELECT 1", "-f", "x.sql"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn data_dir_from_env() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["--output", "csv", "-e", "SELECT 1 AS one"])
        .env("WEIR_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "one\n1\n");
}

#[test]
fn memory_limit_flag_uses_the_set_option_grammar() {
    // Not a size: a usage error naming the value, before anything starts.
    let o = weir(&["serve", "--memory-limit", "12 parsecs"]);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    assert!(
        stderr(&o).contains("invalid memory size '12 parsecs'"),
        "{}",
        stderr(&o)
    );
    let o = weir(&["serve", "--memory-limit", "0"]);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    // The same spellings as `SET 'weir.memory-limit'` are accepted by the flag's parser (checked
    // through --help-free parsing: a bad --port after a good size fails on the port, not the size).
    let o = weir(&["serve", "--memory-limit", "1.5g", "--port", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("memory size"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--port"), "{}", stderr(&o));
}
