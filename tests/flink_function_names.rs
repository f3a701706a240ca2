//! Guard over Flink's list of built-in functions: every name in `tests/data/flink-functions.txt`
//! (Flink 2.3's `SHOW FUNCTIONS`, copied from the shared reference) has one row in the
//! "Built-in functions" table of `docs/compatibility.md`. A row marked `yes` gives a SQL probe
//! that must run in Weir; any other status must give a reason, and its probe (if any) must
//! still fail, so the table never claims less or more than Weir does.

use futures::TryStreamExt;
use weir::{Session, SessionOptions, StatementResult};

struct Row {
    name: String,
    probe: Option<String>,
    status: String,
    reason: String,
}

fn unquote(cell: &str) -> String {
    cell.trim()
        .trim_start_matches('`')
        .trim_end_matches('`')
        .replace("\\|", "|")
}

fn rows() -> Vec<Row> {
    let doc = include_str!("../docs/compatibility.md");
    let section = doc
        .split("## Built-in functions")
        .nth(1)
        .expect("docs/compatibility.md has a 'Built-in functions' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let inner = l.trim().trim_start_matches('|').trim_end_matches('|');
            let cells: Vec<&str> = inner.split(" | ").collect();
            assert_eq!(cells.len(), 4, "a row needs 4 cells: {l}");
            let probe = unquote(cells[1]);
            Row {
                name: unquote(cells[0]),
                probe: (probe != "-").then_some(probe),
                status: cells[2].trim().to_string(),
                reason: cells[3].trim().to_string(),
            }
        })
        .collect()
}

fn names() -> Vec<String> {
    include_str!("data/flink-functions.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Runs a probe: statements separated by `; `, a bare expression as `SELECT expr`.
async fn run_probe(s: &mut Session, probe: &str) -> Result<(), String> {
    for stmt in probe.split("; ") {
        let sql = if stmt.starts_with("SELECT ") || stmt.starts_with("CREATE ") {
            stmt.to_string()
        } else {
            format!("SELECT {stmt}")
        };
        let results = s.execute_sql(&sql).await.map_err(|e| e.to_string())?;
        for r in results {
            if let StatementResult::Rows(r) = r {
                let _: Vec<_> = r.stream.try_collect().await.map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flink_builtin_resolves_or_is_listed_as_missing() {
    let names = names();
    assert!(names.len() >= 250, "only {} names", names.len());
    let rows = rows();
    let mut problems = Vec::new();
    for name in &names {
        let n = rows.iter().filter(|r| &r.name == name).count();
        if n != 1 {
            problems.push(format!(
                "{name}: {n} rows in docs/compatibility.md (want 1)"
            ));
        }
    }
    for r in &rows {
        if !names.contains(&r.name) {
            problems.push(format!("{}: not a name in flink-functions.txt", r.name));
        }
    }
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let mut missing = Vec::new();
    for r in &rows {
        match r.status.as_str() {
            "yes" => {
                let Some(probe) = &r.probe else {
                    problems.push(format!("{}: supported but no probe", r.name));
                    continue;
                };
                if let Err(e) = run_probe(&mut s, probe).await {
                    problems.push(format!("{}: `{probe}` fails: {e}", r.name));
                }
            }
            "not yet" | "no" | "internal" => {
                if r.reason.is_empty() {
                    problems.push(format!(
                        "{}: status '{}' without a reason",
                        r.name, r.status
                    ));
                }
                if r.status != "internal" {
                    missing.push(r.name.clone());
                }
                if let Some(probe) = &r.probe
                    && run_probe(&mut s, probe).await.is_ok()
                {
                    problems.push(format!(
                        "{}: listed as '{}' but `{probe}` runs: mark it yes",
                        r.name, r.status
                    ));
                }
            }
            other => problems.push(format!("{}: unknown status '{other}'", r.name)),
        }
    }
    eprintln!(
        "{} Flink built-ins not supported yet: {missing:?}",
        missing.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
