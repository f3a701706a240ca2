//! The `weir` binary: the command line in front of the shell. It parses arguments, sets up
//! logging, opens a [`weir::Session`] (persistent in `--data-dir`, or `--in-memory`), runs an
//! init script, then either runs SQL non-interactively (`-e`, `-f`, or a script on stdin) or
//! starts the interactive shell. `weir serve` starts the Flight SQL server; later subcommands
//! (`weir bench`) hang off [`Command`].

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::runtime::Handle;
use weir::shell::{self, OutputFormat, RunOptions, ShellConfig};
use weir::{Session, SessionOptions};

/// The allocator of the `weir` binary: mimalloc, as DataFusion's own binaries (and the
/// `datafusion` Python package we compare with) use. Hash joins and aggregations allocate many
/// short-lived buffers from several threads, where it does better than glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Weir: a SQL-first batch and stream query engine speaking Flink SQL.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    shell: ShellArgs,
}

/// Subcommands; without one, `weir` runs SQL or the shell.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a benchmark through the Session API and report timings.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Serve Arrow Flight SQL (queries, streaming queries, DDL/DML, prepared statements,
    /// metadata) to JDBC/ADBC clients.
    Serve(ServeArgs),
    /// Read a password from stdin and print its argon2 hash for a `weir serve --users` file.
    HashPassword,
}

/// Benchmarks of `weir bench`.
#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// TPC-H: data generated once as Parquet, then the 22 queries.
    Tpch(Box<BenchArgs>),
    /// TPC-DS: data generated once as Parquet, then the 99 queries.
    Tpcds(Box<BenchArgs>),
    /// Nexmark q0-q23 in streaming mode over the bounded `nexmark` generator.
    Nexmark(Box<NexmarkArgs>),
    /// Checkpoint size and duration of a large state that changes a little (incremental
    /// against full checkpoints).
    Checkpoints(Box<CheckpointArgs>),
}

/// Options of `weir bench checkpoints`.
#[derive(Debug, Args)]
struct CheckpointArgs {
    /// Distinct keys of the state.
    #[arg(long, value_name = "N", default_value_t = 10_000_000)]
    keys: u64,
    /// Fraction of the keys changed per round.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.01)]
    change: f64,
    /// Rounds of changes.
    #[arg(long, value_name = "N", default_value_t = 5)]
    rounds: usize,
    /// Checkpoint interval.
    #[arg(long, value_name = "INTERVAL", default_value = "1 s")]
    interval: String,
    /// parallelism.default [default: CPUs]
    #[arg(long, value_name = "N")]
    parallelism: Option<usize>,
}

/// Options of `weir bench nexmark`.
#[derive(Debug, Args)]
struct NexmarkArgs {
    /// Events of the bounded input.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    events: u64,
    /// parallelism.default [default: CPUs]
    #[arg(long, value_name = "N")]
    parallelism: Option<usize>,
    /// Queries to run, e.g. q0,q5,q8 [default: all but q6 and q12]
    #[arg(long, value_name = "LIST", default_value = "")]
    queries: String,
    /// Timed iterations per query.
    #[arg(long, value_name = "N", default_value_t = 1)]
    iterations: usize,
    /// Run each query again with checkpoints every INTERVAL (e.g. '1 s') and report the cost.
    #[arg(long, value_name = "INTERVAL")]
    checkpoint_interval: Option<String>,
    /// Check that streaming mode gives each query's batch result.
    #[arg(long)]
    verify: bool,
    /// Run each query again on the disk state backend with this memory budget (e.g. '256 mb')
    /// and report it beside the heap backend.
    #[arg(long, value_name = "SIZE")]
    disk_budget: Option<String>,
    /// Write the Markdown report to FILE.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// An extra session option, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
}

/// Options of `weir bench tpch|tpcds`.
#[derive(Debug, Args)]
struct BenchArgs {
    /// Scale factor (1 = about 1 GB of raw data).
    #[arg(long, value_name = "SF", default_value_t = 1.0)]
    scale: f64,
    /// Where the Parquet data lives [default: ~/.weir/bench/<benchmark>-sf<SF>]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Queries to run, e.g. 1,3,5-7 [default: all]
    #[arg(long, value_name = "LIST", default_value = "")]
    queries: String,
    /// Timed iterations per query.
    #[arg(long, value_name = "N", default_value_t = 3)]
    iterations: usize,
    /// Data format (only parquet).
    #[arg(long, value_name = "FORMAT", default_value = "parquet")]
    format: String,
    /// Check answers: against the stored reference answers, else DuckDB run live.
    #[arg(long)]
    verify: bool,
    /// Run the same queries in these engines too: duckdb,datafusion (Python packages; missing
    /// ones are skipped).
    #[arg(long, value_name = "ENGINES", default_value = "")]
    compare: String,
    /// Write the report to FILE: .json, .csv, .md or .svg by extension.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write a Markdown summary to FILE.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Write an SVG bar chart of the peers' per-query ratios to FILE.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    /// Memory limit, e.g. 2GB (Weir spills where it can; the peers get the same limit).
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<String>,
    /// Threads for Weir (parallelism.default), the peers and data generation [default: CPUs]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// An extra session option for Weir, KEY=VALUE (repeatable), e.g.
    /// datafusion.execution.parquet.pushdown_filters=true
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
}

/// Options of `weir serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The address to listen on. Without --users only loopback addresses are allowed.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// The port to listen on (0: any free port).
    #[arg(long, default_value_t = 50051)]
    port: u16,

    /// Where the persistent catalog lives [env: WEIR_DATA_DIR] [default: ~/.weir]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Keep everything in memory (each client connection has its own catalog).
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,

    /// Users allowed to connect: one `name:<hash from weir hash-password>` (or `name:password`)
    /// per line. Without it there is no authentication and only loopback is served.
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,

    /// Serve TLS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Queries running at a time (more are refused until one ends).
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_queries: usize,

    /// Memory each query may use, e.g. 512M or 2G (DataFusion memory pool) [default: no limit]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<usize>,

    /// Close sessions idle for this many seconds (their tokens stop working).
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    idle_timeout: u64,
}

/// Parses a byte size for a flag: `1048576`, `512M`, `2GB`, `1.5g` (powers of 1024; the grammar
/// of `SET 'weir.memory-limit'`).
fn parse_size(text: &str) -> Result<usize, String> {
    weir::session::config::parse_memory_size(text).map_err(|e| e.message)
}

/// Options of the SQL shell / runner (the default command).
#[derive(Debug, Args)]
struct ShellArgs {
    /// Where the persistent catalog and the shell history live [env: WEIR_DATA_DIR] [default:
    /// ~/.weir]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Keep everything in memory: nothing is read from or written to a data directory.
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,

    /// Run these SQL statements and exit.
    #[arg(
        short = 'e',
        long = "execute",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    execute: Option<String>,

    /// Run the SQL script in FILE and exit.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,

    /// Run the SQL script in FILE first (silently, unless it fails).
    #[arg(short = 'i', long = "init", value_name = "FILE")]
    init: Option<PathBuf>,

    /// How to print results of -e / -f (the interactive shell uses the session's result mode).
    #[arg(long, value_enum, value_name = "FORMAT")]
    output: Option<OutputArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputArg {
    Table,
    Tableau,
    Csv,
    Json,
}

impl From<OutputArg> for OutputFormat {
    fn from(arg: OutputArg) -> Self {
        match arg {
            OutputArg::Table => OutputFormat::Table,
            OutputArg::Tableau => OutputFormat::Tableau,
            OutputArg::Csv => OutputFormat::Csv,
            OutputArg::Json => OutputFormat::Json,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    // Two runtimes: queries run on a multi-threaded one; the shell (terminal, Ctrl-C, timers
    // for the progress line) on the main thread, where busy query threads cannot starve it.
    let runtimes = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|shell| {
            let queries = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("weir-query")
                .thread_stack_size(weir::session::QUERY_THREAD_STACK)
                .build()?;
            Ok((shell, queries))
        });
    let (shell_runtime, query_runtime) = match runtimes {
        Ok(rts) => rts,
        Err(e) => {
            eprintln!("[ERROR] cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match shell_runtime.block_on(run(cli, query_runtime.handle().clone())) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("[ERROR] {e:#}");
            ExitCode::FAILURE
        }
    };
    // Cancelled queries may still be winding down: do not wait for them.
    query_runtime.shutdown_background();
    code
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli, executor: Handle) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Bench(BenchCommand::Tpch(args))) => run_bench("tpch", args, executor).await,
        Some(Command::Bench(BenchCommand::Tpcds(args))) => run_bench("tpcds", args, executor).await,
        Some(Command::Bench(BenchCommand::Nexmark(args))) => run_nexmark(args, executor).await,
        Some(Command::Bench(BenchCommand::Checkpoints(args))) => {
            run_checkpoint_bench(args, executor).await
        }
        Some(Command::Serve(args)) => serve(args, executor).await,
        Some(Command::HashPassword) => hash_password(),
        None => run_sql(cli.shell, executor).await,
    }
}

/// `KEY=VALUE` options of `--set`.
fn key_values(settings: &[String]) -> weir::Result<Vec<(String, String)>> {
    settings
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| weir::Error::invalid(format!("--set '{kv}' must be KEY=VALUE")))
        })
        .collect()
}

/// `weir bench checkpoints`: progress on stderr, the Markdown table on stdout.
async fn run_checkpoint_bench(
    args: Box<CheckpointArgs>,
    executor: Handle,
) -> anyhow::Result<ExitCode> {
    let options = weir::bench::checkpoints::CheckpointBenchOptions {
        keys: args.keys,
        change: args.change,
        rounds: args.rounds,
        interval: args.interval.clone(),
        parallelism: args
            .parallelism
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let run = async move {
        weir::bench::checkpoints::run(&options, &mut |line| eprintln!("{line}")).await
    };
    match shell::on_runtime(Some(&executor), run).await {
        Ok(report) => {
            print!("{}", report.to_markdown());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("[ERROR] {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `weir bench nexmark`: runs the queries on the query runtime, one line per query on stderr,
/// then the Markdown table on stdout.
async fn run_nexmark(args: Box<NexmarkArgs>, executor: Handle) -> anyhow::Result<ExitCode> {
    let options = match (|| -> weir::Result<_> {
        Ok(weir::bench::nexmark::NexmarkOptions {
            events: args.events,
            parallelism: args
                .parallelism
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            queries: weir::bench::nexmark::parse_queries(&args.queries)?,
            iterations: args.iterations,
            checkpoint_interval: args.checkpoint_interval.clone(),
            verify: args.verify,
            disk_budget: args.disk_budget.clone(),
            settings: key_values(&args.settings)?,
        })
    })() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let run =
        async move { weir::bench::nexmark::run(&options, &mut |line| eprintln!("{line}")).await };
    let report = match shell::on_runtime(Some(&executor), run).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let markdown = report.to_markdown();
    print!("{markdown}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &markdown)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(if report.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `weir bench tpch|tpcds`: runs the benchmark on the query runtime with a progress bar,
/// prints the table, writes the reports asked for.
async fn run_bench(name: &str, args: Box<BenchArgs>, executor: Handle) -> anyhow::Result<ExitCode> {
    let prepared = (|| -> weir::Result<_> {
        let suite = weir::bench::suite::by_name(name)?;
        if !args.format.eq_ignore_ascii_case("parquet") {
            return Err(weir::Error::not_supported(format!(
                "--format {} is not supported yet; the benchmark data is Parquet",
                args.format
            )));
        }
        let options = weir::bench::BenchOptions {
            scale: args.scale,
            data_dir: args.data.clone(),
            queries: suite.parse_selection(&args.queries)?,
            iterations: args.iterations,
            verify: args.verify,
            threads: args.threads,
            memory_limit: args.memory_limit.clone(),
            compare: weir::bench::peers::Peer::parse_list(&args.compare)?,
            settings: key_values(&args.settings)?,
        };
        Ok((suite, options))
    })();
    let (suite, options) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let run = async move {
        let mut bar = ProgressBar::new(std::io::stderr().is_terminal());
        let report = weir::bench::run(&suite, &options, &mut |p| bar.show(p)).await;
        bar.finish();
        report
    };
    let report = match shell::on_runtime(Some(&executor), run).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    print!("{}", report.to_table());
    for path in [&args.output, &args.markdown, &args.chart]
        .into_iter()
        .flatten()
    {
        let written = match (path, &args.markdown, &args.chart) {
            (p, Some(m), _) if p == m => std::fs::write(p, report.to_markdown())
                .with_context(|| format!("cannot write {}", p.display())),
            (p, _, Some(c)) if p == c => std::fs::write(p, report.to_svg())
                .with_context(|| format!("cannot write {}", p.display())),
            (p, _, _) => report.write_to(p).map_err(anyhow::Error::from),
        };
        match written {
            Ok(()) => eprintln!("report written to {}", path.display()),
            Err(e) => {
                eprintln!("[ERROR] {e:#}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(if report.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The bench runner's progress on stderr: a bar redrawn in place on a terminal, one line per
/// step (every file while generating) otherwise.
struct ProgressBar {
    tty: bool,
    drawn: bool,
}

impl ProgressBar {
    fn new(tty: bool) -> Self {
        ProgressBar { tty, drawn: false }
    }

    fn show(&mut self, progress: weir::bench::Progress<'_>) {
        match progress {
            weir::bench::Progress::Message(m) => {
                self.finish();
                eprintln!("{m}");
            }
            weir::bench::Progress::Step {
                phase,
                done,
                total,
                label,
            } => {
                if self.tty {
                    let width = 30;
                    let filled = (done * width).checked_div(total).unwrap_or(width);
                    let label: String = label.chars().take(60).collect();
                    eprint!(
                        "\r\x1b[2K{phase:>10} [{}{}] {done}/{total} {label}",
                        "#".repeat(filled),
                        ".".repeat(width - filled.min(width))
                    );
                    let _ = std::io::stderr().flush();
                    self.drawn = true;
                    if done == total {
                        self.finish();
                    }
                } else if label.is_empty() {
                    eprintln!("{phase}: {done}/{total}");
                } else {
                    eprintln!("{phase} [{done}/{total}] {label}");
                }
            }
        }
    }

    fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// `weir hash-password`: reads a password (no echo on a terminal) and prints its PHC string.
fn hash_password() -> anyhow::Result<ExitCode> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let again = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        if first != again {
            eprintln!("[ERROR] the passwords differ");
            return Ok(ExitCode::FAILURE);
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        eprintln!("[ERROR] the password is empty");
        return Ok(ExitCode::FAILURE);
    }
    println!("{}", weir::flight::hash_password(&password)?);
    Ok(ExitCode::SUCCESS)
}

/// `weir serve`: the Flight SQL server, on the query runtime, until Ctrl-C.
async fn serve(args: ServeArgs, executor: Handle) -> anyhow::Result<ExitCode> {
    let data_dir = resolve_data_dir(args.in_memory, args.data_dir.as_ref())?;
    let mut config = weir::flight::ServerConfig::new(SessionOptions { data_dir });
    if let Some(path) = &args.users {
        match weir::flight::Users::load(path) {
            Ok(users) => config.users = users,
            Err(e) => {
                eprintln!("[ERROR] {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    if config.users.is_empty() && !weir::flight::is_loopback(&args.host) {
        eprintln!(
            "[ERROR] without --users there is no authentication, so Weir serves loopback only; \
             give --users FILE (see `weir hash-password`) to listen on {}",
            args.host
        );
        return Ok(ExitCode::FAILURE);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
        config.tls = Some(weir::flight::TlsConfig {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        });
    }
    config.max_queries = args.max_queries.max(1);
    config.memory_limit = args.memory_limit;
    config.idle_timeout = std::time::Duration::from_secs(args.idle_timeout.max(1));
    let scheme = if config.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    let auth = if config.users.is_empty() {
        "no authentication: loopback only; give --users FILE to require passwords".to_string()
    } else {
        format!("{} user(s), password required", config.users.len())
    };
    let server = executor.spawn(async move {
        let listener = weir::flight::bind(&args.host, args.port).await?;
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| format!("{}:{}", args.host, args.port));
        eprintln!("Weir Flight SQL server listening on {scheme}://{addr} ({auth})");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        weir::flight::serve_on(listener, config, shutdown).await
    });
    match server.await {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => {
            eprintln!("[ERROR] {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(anyhow::anyhow!("the Flight SQL server stopped: {e}")),
    }
}

/// The data directory: `--data-dir`, else `$WEIR_DATA_DIR`, else `~/.weir`; none in memory.
fn data_dir(args: &ShellArgs) -> anyhow::Result<Option<PathBuf>> {
    resolve_data_dir(args.in_memory, args.data_dir.as_ref())
}

fn resolve_data_dir(
    in_memory: bool,
    data_dir: Option<&PathBuf>,
) -> anyhow::Result<Option<PathBuf>> {
    if in_memory {
        return Ok(None);
    }
    if let Some(dir) = data_dir {
        return Ok(Some(dir.clone()));
    }
    if let Some(dir) = std::env::var_os("WEIR_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(Some(PathBuf::from(dir)));
    }
    let home = dirs::home_dir()
        .context("cannot find the home directory; use --data-dir DIR or --in-memory")?;
    Ok(Some(home.join(".weir")))
}

fn read_script(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn run_sql(args: ShellArgs, executor: Handle) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir(&args)?;
    // What to run non-interactively, if anything: -e, -f, or a script piped into stdin.
    let script = match (&args.execute, &args.file) {
        (Some(sql), _) => Some(sql.clone()),
        (None, Some(path)) => Some(read_script(path)?),
        (None, None) if !std::io::stdin().is_terminal() => {
            let mut sql = String::new();
            std::io::stdin()
                .read_to_string(&mut sql)
                .context("cannot read SQL from stdin")?;
            Some(sql)
        }
        (None, None) => None,
    };

    let open = Session::open(SessionOptions {
        data_dir: data_dir.clone(),
    });
    let mut session = match shell::on_runtime(Some(&executor), open).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();

    if let Some(init) = &args.init {
        let sql = read_script(init)?;
        let silent = RunOptions {
            executor: Some(executor.clone()),
            silent: true,
            ..RunOptions::default()
        };
        if let Err(e) =
            shell::run_script(&mut session, &sql, &silent, &mut stdout, &mut stderr).await
        {
            eprintln!(
                "[ERROR] {e}\n  while running the init script {}",
                init.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    }

    match script {
        Some(sql) => {
            let options = RunOptions {
                executor: Some(executor.clone()),
                output: args.output.map(Into::into),
                ..RunOptions::default()
            };
            let result =
                shell::run_script(&mut session, &sql, &options, &mut stdout, &mut stderr).await;
            // Streaming INSERTs run as background jobs: let those over bounded data finish.
            let jobs_ok = shell::finish_jobs(&session, &mut stderr).await;
            let _ = stdout.flush();
            match result {
                Ok(()) if jobs_ok => Ok(ExitCode::SUCCESS),
                Ok(()) => Ok(ExitCode::FAILURE),
                Err(e) => {
                    eprintln!("{}", shell::print::format_error(&e));
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        None => {
            let config = ShellConfig {
                history_file: data_dir.map(|d| d.join("history")),
                executor: Some(executor),
            };
            shell::run_interactive(&mut session, config).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
