//! The query fuzzer's oracles (issue 19): generated queries over generated tables, checked by
//! - batch vs streaming at parallelism 1 and 2 (perturbed source order): the same final rows;
//! - ternary-logic partitioning (TLP): `q` equals `q WHERE p` ∪ `q WHERE NOT p` ∪
//!   `q WHERE p IS NULL`, for plain, DISTINCT and MIN/MAX/SUM/COUNT queries;
//! - NoREC: `COUNT(*) .. WHERE p` equals the count of rows where `p` is true, computed without
//!   the filter;
//! - always: no panic, no statement past the timeout.
//!
//! A failing case is reduced (rows of the tables, then parts of the query) and reported as a
//! reproducer: the tables' DDL and rows, and the query.

pub mod data;
pub mod query;

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::{FutureExt, StreamExt};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use weir::error::{ErrorCode, ErrorKind};
use weir::{Session, SessionOptions, StatementResult};

use data::Table;
use query::{Gen, Query, Select};

/// How long one statement may take before it counts as a hang.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Which oracle checks a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oracle {
    BatchVsStreaming,
    Tlp,
    NoRec,
}

/// What running one statement gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Rows(Vec<String>),
    Error(ErrorKind, ErrorCode, String),
    Panic(String),
    Timeout,
}

impl Outcome {
    fn rows(&self) -> Option<&[String]> {
        match self {
            Outcome::Rows(r) => Some(r),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Rows(r) if r.len() <= 12 => write!(f, "{} rows: {r:?}", r.len()),
            Outcome::Rows(r) => write!(f, "{} rows, first {:?}", r.len(), &r[..12]),
            Outcome::Error(k, c, m) => write!(f, "{k:?}/{c:?} error: {m}"),
            Outcome::Panic(m) => write!(f, "panic: {m}"),
            Outcome::Timeout => write!(f, "no answer within {TIMEOUT:?}"),
        }
    }
}

/// A cell as text; floating-point values to 9 significant digits (batch and streaming add in
/// different orders).
fn cell(text: String) -> String {
    if text.contains(['.', 'e', 'E'])
        && let Ok(v) = text.parse::<f64>()
        && v.is_finite()
    {
        let r = format!("{v:.8e}").parse::<f64>().unwrap_or(v);
        return if r == 0.0 { "0".into() } else { format!("{r}") };
    }
    text
}

fn canonical(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = fmts.iter().map(|f| cell(f.value(r).to_string())).collect();
            out.push(cells.join(" | "));
        }
    }
    out.sort();
    out
}

async fn collect(s: &mut Session, sql: &str) -> weir::Result<Vec<String>> {
    let mut results = s.execute_sql(sql).await?;
    let Some(StatementResult::Rows(mut r)) = results.pop() else {
        return Err(weir::Error::internal(format!("no rows from {sql}")));
    };
    let mut batches = Vec::new();
    while let Some(b) = r.stream.next().await {
        batches.push(b?);
    }
    if r.changelog {
        batches = vec![weir::session::materialize(&r.schema, &batches)?];
    }
    Ok(canonical(&batches))
}

/// Runs `sql` in `s`: its final rows, or what went wrong.
pub async fn run(s: &mut Session, sql: &str) -> Outcome {
    let fut = AssertUnwindSafe(collect(s, sql)).catch_unwind();
    match tokio::time::timeout(TIMEOUT, fut).await {
        Err(_) => Outcome::Timeout,
        Ok(Err(panic)) => Outcome::Panic(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        ),
        Ok(Ok(Ok(rows))) => Outcome::Rows(rows),
        Ok(Ok(Err(e))) => Outcome::Error(e.kind, e.code, e.to_string()),
    }
}

/// The sessions one round of queries runs in.
pub struct Sessions {
    pub batch: Session,
    pub streaming: Vec<Session>,
}

/// A session in `mode` at `parallelism` with the tables created.
async fn session(
    mode: &str,
    parallelism: usize,
    seed: u64,
    tables: &[Table],
    root: &Path,
) -> Session {
    let mut s = Session::open(SessionOptions::default()).await.unwrap();
    let mut set = format!(
        "SET 'execution.runtime-mode' = '{mode}'; SET 'parallelism.default' = '{parallelism}';"
    );
    if mode == "streaming" {
        set.push_str(&format!(
            " SET 'weir.testing.perturbation-seed' = '{seed}';"
        ));
    }
    s.execute_sql(&set).await.unwrap();
    for t in tables {
        s.execute_sql(&t.ddl(&root.join(&t.name))).await.unwrap();
    }
    s
}

impl Sessions {
    /// Writes the tables' files under `root` and opens the sessions the oracle needs.
    pub async fn open(oracle: Oracle, tables: &[Table], root: &Path, seed: u64) -> Sessions {
        for t in tables {
            t.write(root);
        }
        let batch = session("batch", 2, seed, tables, root).await;
        let mut streaming = Vec::new();
        if oracle == Oracle::BatchVsStreaming {
            streaming.push(session("streaming", 1, seed, tables, root).await);
            streaming.push(session("streaming", 2, seed + 1, tables, root).await);
        }
        Sessions { batch, streaming }
    }
}

/// A failed check: what differed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub what: String,
}

/// Whether `outcome` is an error a generated query may legitimately get (types that do not
/// fit, overflow, a feature streaming does not support): tallied, not a failure. Internal
/// errors, panics and timeouts are failures.
fn acceptable_error(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Error(kind, _, _) if *kind != ErrorKind::Internal)
}

/// The statements of a TLP check of `s` with predicate `p`: the query, and the union of its
/// three partitions (as one statement).
fn tlp(s: &Select, p: &str, variant: usize) -> (String, String) {
    let part = |extra: &str| {
        let mut x = s.clone();
        x.filter.push(extra.to_string());
        x
    };
    let parts = [
        part(&format!("({p})")),
        part(&format!("NOT ({p})")),
        part(&format!("({p}) IS NULL")),
    ];
    match variant {
        // Plain: the multiset of rows.
        0 => {
            let mut base = s.clone();
            base.distinct = false;
            let sqls: Vec<String> = parts
                .iter()
                .map(|x| {
                    let mut x = x.clone();
                    x.distinct = false;
                    x.sql()
                })
                .collect();
            (base.sql(), sqls.join(" UNION ALL "))
        }
        // DISTINCT: the set of rows.
        1 => {
            let mut base = s.clone();
            base.distinct = true;
            let sqls: Vec<String> = parts
                .iter()
                .map(|x| {
                    let mut x = x.clone();
                    x.distinct = true;
                    x.sql()
                })
                .collect();
            (base.sql(), sqls.join(" UNION "))
        }
        // An aggregate of the first item, recombined.
        _ => {
            let (e, _) = &s.items[0];
            let (agg, combine) = match variant {
                2 => (format!("MIN({e})"), "MIN(x)"),
                3 => (format!("MAX({e})"), "MAX(x)"),
                4 => ("COUNT(*)".to_string(), "SUM(x)"),
                _ => (format!("COUNT({e})"), "SUM(x)"),
            };
            let one = |x: &Select| {
                let mut x = x.clone();
                x.distinct = false;
                x.items = vec![(agg.clone(), x.items[0].1)];
                x.sql().replace(" AS o0 ", " AS x ")
            };
            let sqls: Vec<String> = parts.iter().map(one).collect();
            (
                one(s).replace(" AS x ", " AS o0 "),
                format!("SELECT {combine} FROM ({}) AS u", sqls.join(" UNION ALL ")),
            )
        }
    }
}

/// With `WEIR_FUZZ_VERBOSE=1`, the tolerated errors are printed (to review what the generator
/// gets wrong and what the engine refuses).
fn show(sql: &str, outcome: &Outcome) {
    if std::env::var("WEIR_FUZZ_VERBOSE").is_ok_and(|v| v == "1") && outcome.rows().is_none() {
        eprintln!("{sql}\n  -> {outcome}");
    }
}

/// Checks one query with `oracle` in `sessions`: `Ok(tally key)` or the failure.
pub async fn check(
    oracle: Oracle,
    sessions: &mut Sessions,
    q: &Query,
    p: &str,
    variant: usize,
) -> Result<&'static str, Failure> {
    match oracle {
        Oracle::BatchVsStreaming => {
            let sql = q.sql();
            let expected = run(&mut sessions.batch, &sql).await;
            show(&sql, &expected);
            if !acceptable_error(&expected) && expected.rows().is_none() {
                return Err(Failure {
                    what: format!("batch: {expected}"),
                });
            }
            let mut tally = "same rows";
            for (i, s) in sessions.streaming.iter_mut().enumerate() {
                let actual = run(s, &sql).await;
                if expected.rows().is_some() {
                    show(&sql, &actual);
                }
                match (&expected, &actual) {
                    (Outcome::Rows(e), Outcome::Rows(a)) if e == a => {}
                    (Outcome::Error(..), Outcome::Error(..)) => tally = "error in both modes",
                    (Outcome::Rows(_), Outcome::Error(_, ErrorCode::NotSupported, _)) => {
                        tally = "not supported in streaming"
                    }
                    _ => {
                        return Err(Failure {
                            what: format!(
                                "batch: {expected}\nstreaming (parallelism {}): {actual}",
                                i + 1
                            ),
                        });
                    }
                }
            }
            Ok(tally)
        }
        Oracle::Tlp | Oracle::NoRec => {
            let Query::Select(s) = q else {
                return Ok("skipped");
            };
            let (a, b) = if oracle == Oracle::Tlp {
                tlp(s, p, variant)
            } else {
                let from = match s.filter.is_empty() {
                    true => s.from.clone(),
                    false => format!("{} WHERE {}", s.from, s.filter.join(" AND ")),
                };
                let with_p = if s.filter.is_empty() {
                    " WHERE "
                } else {
                    " AND "
                };
                (
                    format!("SELECT COUNT(*) FROM {from}{with_p}({p})"),
                    format!("SELECT COALESCE(SUM(CASE WHEN {p} THEN 1 ELSE 0 END), 0) FROM {from}"),
                )
            };
            let x = run(&mut sessions.batch, &a).await;
            let y = run(&mut sessions.batch, &b).await;
            show(&a, &x);
            show(&b, &y);
            match (&x, &y) {
                (Outcome::Rows(l), Outcome::Rows(r)) if l == r => Ok("same rows"),
                // An error on either side (an overflow in a row one side filters out, say)
                // is not a logic bug; panics, timeouts and internal errors are.
                _ if (acceptable_error(&x) || acceptable_error(&y))
                    && [&x, &y]
                        .iter()
                        .all(|o| o.rows().is_some() || acceptable_error(o)) =>
                {
                    Ok("error")
                }
                _ => Err(Failure {
                    what: format!("{a}\n  gave {x}\n{b}\n  gave {y}"),
                }),
            }
        }
    }
}

/// A generated case: its tables, its query, the oracle's predicate and variant.
#[derive(Debug, Clone)]
pub struct Case {
    pub tables: Vec<Table>,
    pub query: Query,
    pub predicate: String,
    pub variant: usize,
}

async fn fails(oracle: Oracle, case: &Case, root: &Path, seed: u64) -> Option<Failure> {
    let mut sessions = Sessions::open(oracle, &case.tables, root, seed).await;
    check(
        oracle,
        &mut sessions,
        &case.query,
        &case.predicate,
        case.variant,
    )
    .await
    .err()
}

/// Shrinks a failing case: rows of each file (halves, then single rows), then parts of the
/// query, while it still fails. Gives up on a step after a bounded number of tries.
pub async fn reduce(oracle: Oracle, mut case: Case, root: &Path, seed: u64) -> (Case, Failure) {
    let mut failure = fails(oracle, &case, root, seed).await.unwrap_or(Failure {
        what: "(did not fail again: flaky)".into(),
    });
    let mut budget = 200;
    // Rows.
    for t in 0..case.tables.len() {
        for f in 0..case.tables[t].files.len() {
            let mut chunk = case.tables[t].files[f].len().div_ceil(2);
            while chunk >= 1 && budget > 0 {
                let mut at = 0;
                let mut shrunk = false;
                while at < case.tables[t].files[f].len() && budget > 0 {
                    budget -= 1;
                    let mut smaller = case.clone();
                    let rows = &mut smaller.tables[t].files[f];
                    let end = (at + chunk).min(rows.len());
                    rows.drain(at..end);
                    if let Some(why) = fails(oracle, &smaller, root, seed).await {
                        case = smaller;
                        failure = why;
                        shrunk = true;
                    } else {
                        at += chunk;
                    }
                }
                if !shrunk {
                    chunk /= 2;
                }
            }
        }
    }
    // Query parts.
    let mut progress = true;
    while progress && budget > 0 {
        progress = false;
        for q in case.query.simpler() {
            budget -= 1;
            let smaller = Case {
                query: q,
                ..case.clone()
            };
            if let Some(why) = fails(oracle, &smaller, root, seed).await {
                case = smaller;
                failure = why;
                progress = true;
                break;
            }
        }
    }
    for t in &case.tables {
        t.write(root);
    }
    (case, failure)
}

/// A reduced failing case as text: tables (DDL and rows), query, and what differed.
pub fn report(oracle: Oracle, case: &Case, failure: &Failure, root: &Path) -> String {
    let mut out = format!("--- {oracle:?} failure\n");
    for t in &case.tables {
        out.push_str(&t.describe(&root.join(&t.name)));
    }
    out.push_str(&format!("{};\n", case.query.sql()));
    if oracle != Oracle::BatchVsStreaming {
        out.push_str(&format!(
            "-- predicate: {} (variant {})\n",
            case.predicate, case.variant
        ));
    }
    out.push_str(&failure.what);
    out.push('\n');
    out
}

/// The totals of a fuzz run.
#[derive(Debug, Default)]
pub struct Tally {
    pub statements: usize,
    pub outcomes: std::collections::BTreeMap<&'static str, usize>,
    pub failures: Vec<String>,
}

/// Runs `count` generated queries through `oracle` from `seed`, in rounds of fresh tables;
/// failing cases are reduced and reported.
pub async fn fuzz(oracle: Oracle, seed: u64, count: usize, scratch: &Path) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let per_round = 25;
    let mut round = 0;
    while tally.statements < count {
        round += 1;
        let root: PathBuf = scratch.join(format!("round-{round}"));
        let tables: Vec<Table> = (0..3)
            .map(|i| data::Table::random(&mut rng, &format!("t{i}"), i == 2))
            .collect();
        let session_seed = rng.random_range(1..1000);
        let mut sessions = Sessions::open(oracle, &tables, &root, session_seed).await;
        for _ in 0..per_round.min(count - tally.statements) {
            let (query, predicate, variant) = {
                let mut g = Gen {
                    rng: &mut rng,
                    tables: &tables,
                };
                let query = if oracle == Oracle::BatchVsStreaming {
                    g.query()
                } else {
                    Query::Select(g.plain(None))
                };
                let scope = match &query {
                    Query::Select(s) => s.scope.clone(),
                    _ => Vec::new(),
                };
                let predicate = g.pred(&scope, 2);
                (query, predicate, g.rng.random_range(0..6))
            };
            tally.statements += 1;
            match check(oracle, &mut sessions, &query, &predicate, variant).await {
                Ok(key) => *tally.outcomes.entry(key).or_default() += 1,
                Err(_) => {
                    *tally.outcomes.entry("failed").or_default() += 1;
                    let case = Case {
                        tables: tables.clone(),
                        query,
                        predicate,
                        variant,
                    };
                    let small = scratch.join(format!("reduced-{}", tally.failures.len()));
                    let (case, failure) = reduce(oracle, case, &small, session_seed).await;
                    let text = report(oracle, &case, &failure, &small);
                    eprintln!("{text}");
                    tally.failures.push(text);
                    // The sessions may hold a job of the failed statement: start afresh.
                    sessions = Sessions::open(oracle, &tables, &root, session_seed).await;
                }
            }
        }
    }
    tally
}
