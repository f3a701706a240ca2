//! End-to-end tests of `weir serve` with real Flight SQL clients: each test starts the `weir`
//! binary on a free loopback port (with a users file and a scratch data directory), then runs
//! a Python script from `tests/python/` that drives it with the ADBC Flight SQL driver or
//! pyarrow.flight (`WEIR_PYTHON`, installed by `scripts/test.sh`). A script prints
//! `N passed, N failed` and exits non-zero on failure. Without `WEIR_PYTHON` the tests print a
//! "skipped" line, unless `WEIR_REQUIRE_PEERS=1`, which makes them fail.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

/// The Python with pyarrow and the ADBC driver, or `None` (the test is skipped).
fn python() -> Option<PathBuf> {
    match std::env::var_os("WEIR_PYTHON").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            if std::env::var("WEIR_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
                panic!("WEIR_PYTHON is not set and WEIR_REQUIRE_PEERS=1: run scripts/test.sh");
            }
            eprintln!(
                "skipped: WEIR_PYTHON is not set (scripts/test.sh installs pyarrow and the ADBC driver)"
            );
            None
        }
    }
}

/// A running `weir serve`, killed when dropped.
struct Server {
    child: Child,
    uri: String,
    stderr: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        Self::start_with(extra, true)
    }

    /// Starts the server with a users file (alice with an argon2 hash, bob with a plain
    /// password) unless `users` is false.
    fn start_with(extra: &[&str], users: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--port".into(),
            "0".into(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
        ];
        if users {
            let path = dir.path().join("users");
            let hash = weir::flight::hash_password(PASSWORD).unwrap();
            std::fs::write(
                &path,
                format!("# test users\n{USER}:{hash}\nbob:plain-secret\n"),
            )
            .unwrap();
            set_mode(&path, 0o600);
            args.push("--users".into());
            args.push(path.display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[weir serve] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let uri = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("weir serve did not say where it listens");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        Server {
            child,
            uri,
            stderr: rx,
            dir,
        }
    }

    /// Runs a script of `tests/python` against this server; returns (success, stdout).
    fn run_script(&self, python: &Path, script: &str, args: &[&str]) -> (bool, String) {
        let scripts = manifest_dir().join("tests/python");
        let scratch = self.dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(scripts.join(script))
            .args(args)
            .current_dir(&scripts)
            .env("PYTHONPATH", &scripts)
            .env("WEIR_FLIGHT_URI", &self.uri)
            .env("WEIR_FLIGHT_USER", USER)
            .env("WEIR_FLIGHT_PASSWORD", PASSWORD)
            .env("WEIR_SERVER_PID", self.child.id().to_string())
            .env("WEIR_DATA_DIR", &scratch);
        if let Some(root) = self.tls_root() {
            cmd.env("WEIR_TLS_ROOT", root);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        println!("{stdout}");
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        (out.status.success(), stdout)
    }

    fn tls_root(&self) -> Option<PathBuf> {
        let path = self.dir.path().join("cert.pem");
        path.exists().then_some(path)
    }

    /// The server's stderr lines so far.
    fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Asserts a script passed and reported its counts.
fn assert_passed(result: (bool, String), script: &str) {
    let (ok, stdout) = result;
    assert!(
        stdout.contains(" passed, 0 failed"),
        "{script} did not report success:\n{stdout}"
    );
    assert!(ok, "{script} failed:\n{stdout}");
}

#[test]
fn adbc_driver_scenarios() {
    let Some(python) = python() else { return };
    let server = Server::start(&[]);
    assert_passed(
        server.run_script(&python, "flight_adbc.py", &[]),
        "flight_adbc.py",
    );
    // Passwords never reach the server's log.
    let log = server.stderr_lines().join("\n");
    assert!(
        !log.contains(PASSWORD),
        "the password leaked into the log:\n{log}"
    );
}

#[test]
fn pyarrow_flight_scenarios() {
    let Some(python) = python() else { return };
    let server = Server::start(&[]);
    assert_passed(
        server.run_script(&python, "flight_pyarrow.py", &[]),
        "flight_pyarrow.py",
    );
}

#[test]
fn ten_million_rows_stream_with_bounded_server_memory() {
    let Some(python) = python() else { return };
    let server = Server::start(&[]);
    // Bound: the server's peak RSS stays under 512 MiB while 10M rows (~300 MiB of Arrow
    // data) stream through it.
    assert_passed(
        server.run_script(&python, "flight_big.py", &["10000000", "512"]),
        "flight_big.py",
    );
}

#[test]
fn tls_with_a_self_signed_certificate() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("server.pem");
    let key_path = dir.path().join("server.key");
    std::fs::write(&cert_path, key.cert.pem()).unwrap();
    std::fs::write(&key_path, key.signing_key.serialize_pem()).unwrap();
    let server = Server::start(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    assert!(server.uri.starts_with("grpc+tls://"), "{}", server.uri);
    std::fs::copy(&cert_path, server.dir.path().join("cert.pem")).unwrap();
    assert_passed(
        server.run_script(&python, "flight_tls.py", &[]),
        "flight_tls.py",
    );
}

#[test]
fn without_users_only_loopback_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--in-memory"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback only"), "{stderr}");

    // A users file readable by others gets a warning; a malformed one is refused with its line.
    let users = dir.path().join("users");
    std::fs::write(&users, "carol:pw\nbroken line\n").unwrap();
    set_mode(&users, 0o644);
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--port", "0", "--in-memory", "--users"])
        .arg(&users)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2"), "{stderr}");

    let server = Server::start_with(&[], false);
    assert!(
        server.uri.starts_with("grpc://127.0.0.1:"),
        "{}",
        server.uri
    );
    drop(server);

    std::fs::write(&users, "carol:pw\n").unwrap();
    set_mode(&users, 0o644);
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--port", "0", "--in-memory", "--users"])
        .arg(&users)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let done = line.contains("listening on");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = seen.join("\n");
    assert!(seen.contains("readable by other users"), "{seen}");
    assert!(seen.contains("1 user(s)"), "{seen}");
    assert!(!seen.contains("pw\n"), "{seen}");
}

#[test]
fn hash_password_prints_a_verifiable_hash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hunter2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("hunter2"));
    let users = weir::flight::Users::parse(&format!("dave:{hash}\n"), "test").unwrap();
    assert!(users.verify("dave", "hunter2"));
    assert!(!users.verify("dave", "hunter3"));

    // An empty password is refused.
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
}

/// The checkout under test: cargo's run-time `CARGO_MANIFEST_DIR` (the compile-time value can name
/// another checkout when several share one target directory and a build was reused).
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
