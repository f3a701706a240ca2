//! The `Session`: the one entry point every front door (shell, Flight SQL server, bench runner)
//! uses. It owns the catalogs, the session options (`SET`), and the DataFusion state, and runs
//! statements: parse → resolve names into a catalog snapshot → plan → execute.
//!
//! Submodules: `ddl` (CREATE/DROP/ALTER/USE), `show` (SHOW, DESCRIBE), `config` (SET/RESET and
//! the DataFusion state), `result` (what statements return).

mod checkpoints;
pub mod config;
mod ddl;
pub mod functions;
pub mod jobs;
pub mod result;
mod show;
mod streaming;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{collect, displayable, execute_stream};

pub use crate::sql::ParsedStatement;
pub use crate::stream::runtime::JobStatus;
pub use jobs::Jobs;
pub use result::{Materialized, Progress, RowsResult, StatementResult, StatusResult, materialize};
pub use show::sql_like;

/// The stack size of the threads that plan and run statements (the `weir` binary's query
/// runtime): planning recurses over a statement's tree. DataFusion's and sqlparser's recursion
/// grows its stack on demand (their `recursive_protection`), sqlparser refuses nesting deeper
/// than 50, but not every recursive walk (ours, some of DataFusion's) is protected, and a stack
/// overflow aborts the process. Only touched pages cost memory.
pub const QUERY_THREAD_STACK: usize = 64 * 1024 * 1024;

use crate::catalog::registry::CatalogRegistry;
use crate::catalog::snapshot::CatalogSnapshot;
use crate::error::{Error, Result};
use crate::planner::{self, PlanningContext, resolve};
use crate::sql::{self, Statement};

/// How to open a [`Session`].
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Where the embedded persistent catalog lives. `None`: the default catalog is in memory and
    /// nothing survives the session.
    pub data_dir: Option<PathBuf>,
}

/// A SQL session: catalogs, current catalog/database, `SET` options, and the engines.
pub struct Session {
    registry: CatalogRegistry,
    options: BTreeMap<String, String>,
    state: SessionState,
    jobs: jobs::Jobs,
    /// `CREATE FUNCTION`s of this session (registered in `state`).
    functions: functions::UserFunctions,
    /// The text of the statement being run (names streaming jobs).
    current_text: String,
    /// Per-query memory limit of batch queries (DataFusion memory pool), if any.
    memory_limit: Option<usize>,
    /// The data directory (default place of checkpoints and job records), if any.
    data_dir: Option<PathBuf>,
    /// While resuming a job: its id and how many times it was resumed.
    resume_id: Option<(String, u32)>,
}

impl Session {
    /// Opens a session; with a data directory, loads (or creates) the persistent catalog there.
    ///
    /// # Errors
    /// `External` when the data directory cannot be created or its catalog is unreadable.
    pub async fn open(options: SessionOptions) -> Result<Session> {
        let registry = CatalogRegistry::open(options.data_dir.as_deref())?;
        let data_dir = options.data_dir.clone();
        let options = BTreeMap::new();
        let state = config::build_state(&options)?;
        Ok(Session {
            registry,
            options,
            state,
            jobs: jobs::Jobs::default(),
            functions: functions::UserFunctions::default(),
            current_text: String::new(),
            memory_limit: None,
            data_dir,
            resume_id: None,
        })
    }

    /// Limits the memory each batch query may use (DataFusion's memory pool; operators that
    /// can spill do, others fail with a resources-exhausted error). `None`: no limit.
    ///
    /// # Errors
    /// `Invalid` for a zero limit.
    pub fn set_memory_limit(&mut self, limit: Option<usize>) -> Result<()> {
        if limit == Some(0) {
            return Err(Error::invalid("the memory limit must be positive"));
        }
        self.memory_limit = limit;
        self.state = self.build_state(&self.options, &self.functions)?;
        Ok(())
    }

    /// The DataFusion state for `options` and the session's memory limit.
    /// The engine state for `options`: settings, the session's memory limit (unless the options
    /// set `weir.memory-limit` themselves) and the user functions.
    fn build_state(
        &self,
        options: &BTreeMap<String, String>,
        functions: &functions::UserFunctions,
    ) -> Result<SessionState> {
        let mut state = config::build_state(options)?;
        if let Some(limit) = self
            .memory_limit
            .filter(|_| !options.contains_key("weir.memory-limit"))
        {
            let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
                .with_memory_limit(limit, 1.0)
                .build_arc()?;
            state = datafusion::execution::SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime)
                .build();
        }
        functions.register(&mut state)?;
        Ok(state)
    }

    /// Parses a script into statements without running them.
    pub fn parse(&self, sql: &str) -> Result<Vec<ParsedStatement>> {
        sql::parse_script(sql)
    }

    /// Runs one parsed statement. Queries return a stream that runs as it is read; dropping the
    /// future or the stream cancels the statement.
    ///
    /// # Errors
    /// Any error of the statement, with its line:column where it has one.
    pub async fn execute(&mut self, statement: &ParsedStatement) -> Result<StatementResult> {
        self.current_text = statement.text.clone();
        // The statement's start time: what `CURRENT_TIMESTAMP`, `NOW()`, `CURRENT_DATE`, ...
        // fold to (DataFusion's `SessionContext` marks it per query; we hold the state).
        self.state.mark_start_execution();
        self.execute_statement(&statement.statement)
            .await
            .map_err(|e| {
                // Errors without a position point at the statement.
                if e.span.is_none()
                    && e.kind == crate::ErrorKind::User
                    && statement.span.start.line > 0
                {
                    e.with_span(statement.span)
                } else {
                    e
                }
            })
    }

    /// Parses and runs a script, statement by statement, stopping at the first error.
    pub async fn execute_sql(&mut self, sql: &str) -> Result<Vec<StatementResult>> {
        let mut out = Vec::new();
        for stmt in self.parse(sql)? {
            out.push(self.execute(&stmt).await?);
        }
        Ok(out)
    }

    /// A session option set with `SET 'key' = 'value'` (or its default).
    pub fn option(&self, key: &str) -> Option<String> {
        self.options.get(key).cloned().or_else(|| {
            config::DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }

    /// The current catalog and database.
    pub fn current(&self) -> (&str, &str) {
        (
            self.registry.current_catalog(),
            self.registry.current_database(),
        )
    }

    /// Names for completion in the shell: catalogs, databases, tables and views of the current
    /// catalog, and functions.
    pub async fn completion_names(&self) -> Vec<String> {
        let mut names = self.registry.catalog_names();
        if let Ok(catalog) = self.registry.catalog(self.registry.current_catalog()) {
            if let Ok(dbs) = catalog.list_databases().await {
                names.extend(dbs);
            }
            if let Ok(tables) = catalog.list_tables(self.registry.current_database()).await {
                names.extend(tables.into_iter().map(|(n, _)| n));
            }
        }
        names.extend(self.state.scalar_functions().keys().cloned());
        names.extend(self.state.aggregate_functions().keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    async fn snapshot(&self, statement: &Statement) -> Result<CatalogSnapshot> {
        resolve::build_snapshot(&self.registry, resolve::statement_relations(statement)).await
    }

    /// The session's streaming jobs (`SHOW JOBS`).
    pub fn jobs(&self) -> &jobs::Jobs {
        &self.jobs
    }

    /// Registers this session's jobs in `jobs`, a registry shared with other sessions, instead
    /// of its own (`weir serve`: jobs outlive the client session that started them, and every
    /// session sees them). Jobs the session started before stay in its former registry.
    pub fn share_jobs(&mut self, jobs: jobs::Jobs) {
        self.jobs = jobs;
    }

    /// Waits until every streaming job over bounded sources has ended (e.g. at the end of a
    /// script); returns each one's id and how it ended.
    pub async fn wait_for_bounded_jobs(&self) -> Vec<(String, crate::stream::runtime::JobStatus)> {
        self.jobs.wait_bounded().await
    }

    async fn execute_statement(&mut self, statement: &Statement) -> Result<StatementResult> {
        match statement {
            Statement::Query(query) => {
                let snapshot = self.snapshot(statement).await?;
                if self.streaming_for(&snapshot)? {
                    return self.stream_query(&snapshot, query).await;
                }
                let plan =
                    planner::plan_query(&PlanningContext::new(&self.state, &snapshot), query)?;
                self.run_query(&plan).await
            }
            Statement::Insert(insert) => {
                let snapshot = self.snapshot(statement).await?;
                if self.streaming_for(&snapshot)? {
                    let name = self.current_text.clone();
                    return self
                        .stream_inserts(&snapshot, std::slice::from_ref(insert), name)
                        .await;
                }
                let (_, plan) = planner::insert::plan_insert(
                    &PlanningContext::new(&self.state, &snapshot),
                    insert,
                )?;
                let rows = self.run_dml(&plan).await?;
                Ok(inserted(rows))
            }
            Statement::StatementSet(inserts) => {
                let snapshot = self.snapshot(statement).await?;
                if self.streaming_for(&snapshot)? {
                    let name = self.current_text.clone();
                    return self.stream_inserts(&snapshot, inserts, name).await;
                }
                let mut plans = Vec::new();
                {
                    let ctx = PlanningContext::new(&self.state, &snapshot);
                    for insert in inserts {
                        plans.push(planner::insert::plan_insert(&ctx, insert)?.1);
                    }
                }
                let mut total = 0;
                for plan in &plans {
                    total += self.run_dml(plan).await?;
                }
                Ok(inserted(total))
            }
            Statement::Explain {
                details,
                analyze,
                statement: inner,
            } => self.explain(inner, details, *analyze).await,
            Statement::Set(None) => show::set_listing(&self.options),
            Statement::Set(Some((key, value))) => {
                config::validate(key, value)?;
                let mut options = self.options.clone();
                options.insert(key.clone(), value.clone());
                self.state = self.build_state(&options, &self.functions)?;
                self.options = options;
                Ok(StatementResult::Status(StatusResult::new(
                    "Session property has been set.",
                )))
            }
            Statement::Reset(key) => {
                match key {
                    Some(k) => {
                        self.options.remove(k);
                    }
                    None => self.options.clear(),
                }
                self.state = self.build_state(&self.options, &self.functions)?;
                Ok(StatementResult::Status(StatusResult::new(
                    "All session properties have been set to their default values.",
                )))
            }
            Statement::Show(s) => show::show(self, statement, s).await,
            Statement::StopJob {
                id,
                savepoint,
                drain,
            } => jobs::stop_job(self, id, *savepoint, *drain).await,
            Statement::Describe { name } => show::describe(self, statement, name).await,
            Statement::CreateFunction(cf) => functions::create(self, cf).await,
            Statement::DropFunction {
                name,
                temporary,
                system,
                if_exists,
            } => functions::drop(self, name, *temporary, *system, *if_exists),
            _ => ddl::execute(self, statement).await,
        }
    }

    /// Plans and starts a query; rows stream as the result is read.
    async fn run_query(&self, plan: &LogicalPlan) -> Result<StatementResult> {
        let physical = self.state.create_physical_plan(plan).await?;
        let stream = execute_stream(Arc::clone(&physical), self.state.task_ctx())?;
        Ok(StatementResult::Rows(RowsResult {
            schema: stream.schema(),
            stream,
            progress: Some(Progress::new(physical)),
            changelog: false,
        }))
    }

    /// Runs a DML plan to completion and returns the number of rows it wrote.
    pub(crate) async fn run_dml(&self, plan: &LogicalPlan) -> Result<u64> {
        let physical = self.state.create_physical_plan(plan).await?;
        let batches = collect(physical, self.state.task_ctx()).await?;
        let mut rows = 0u64;
        for batch in &batches {
            if let Some(counts) = batch
                .columns()
                .first()
                .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
            {
                rows += counts.iter().flatten().sum::<u64>();
            }
        }
        Ok(rows)
    }

    async fn explain(
        &self,
        statement: &Statement,
        details: &[String],
        analyze: bool,
    ) -> Result<StatementResult> {
        if let Some(d) = details.iter().find(|d| {
            !matches!(
                d.as_str(),
                "ESTIMATED_COST" | "PLAN_ADVICE" | "CHANGELOG_MODE"
            )
        }) {
            return Err(Error::not_supported(format!(
                "EXPLAIN {d} is not supported yet"
            )));
        }
        let snapshot = self.snapshot(statement).await?;
        let changelog = details.iter().any(|d| d == "CHANGELOG_MODE");
        if changelog || self.streaming_for(&snapshot)? {
            if analyze {
                return Err(Error::not_supported(
                    "EXPLAIN ANALYZE of a streaming statement is not supported yet",
                ));
            }
            let rows = self.stream_explain(&snapshot, statement).await?;
            return string_rows(
                &["plan_type", "plan"],
                rows.into_iter().map(|(a, b)| vec![a, b]).collect(),
            );
        }
        let plan = {
            let ctx = PlanningContext::new(&self.state, &snapshot);
            match statement {
                Statement::Query(q) => planner::plan_query(&ctx, q)?,
                Statement::Insert(i) => planner::insert::plan_insert(&ctx, i)?.1,
                _ => {
                    return Err(Error::not_supported(
                        "EXPLAIN supports queries and INSERT statements",
                    ));
                }
            }
        };
        let optimized = self.state.optimize(&plan)?;
        let physical = self.state.create_physical_plan(&plan).await?;
        if analyze {
            // Run it, then show the plan with its metrics.
            collect(Arc::clone(&physical), self.state.task_ctx()).await?;
        }
        let physical_text = if analyze {
            datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                physical.as_ref(),
            )
            .indent(true)
            .to_string()
        } else {
            displayable(physical.as_ref()).indent(true).to_string()
        };
        let rows = vec![
            (
                "logical_plan",
                optimized
                    .display_indent()
                    .to_string()
                    .trim_end()
                    .to_string(),
            ),
            ("physical_plan", physical_text.trim_end().to_string()),
        ];
        string_rows(
            &["plan_type", "plan"],
            rows.into_iter()
                .map(|(a, b)| vec![a.to_string(), b])
                .collect(),
        )
    }

    pub(crate) fn registry(&self) -> &CatalogRegistry {
        &self.registry
    }

    pub(crate) fn registry_mut(&mut self) -> &mut CatalogRegistry {
        &mut self.registry
    }

    pub(crate) fn user_functions(&self) -> &functions::UserFunctions {
        &self.functions
    }

    pub(crate) fn state(&self) -> &SessionState {
        &self.state
    }
}

fn inserted(rows: u64) -> StatementResult {
    let noun = if rows == 1 { "row" } else { "rows" };
    StatementResult::Status(StatusResult {
        message: format!("{rows} {noun} inserted."),
        rows_affected: Some(rows),
    })
}

/// A result of string columns, all rows given.
pub(crate) fn string_rows(columns: &[&str], rows: Vec<Vec<String>>) -> Result<StatementResult> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays = (0..columns.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.get(i).cloned()).collect::<Vec<_>>(),
            )) as _
        })
        .collect();
    batch_result(RecordBatch::try_new(Arc::clone(&schema), arrays)?)
}

/// A result holding one ready batch.
pub(crate) fn batch_result(batch: RecordBatch) -> Result<StatementResult> {
    let schema = batch.schema();
    let stream = MemoryStream::try_new(vec![batch], Arc::clone(&schema), None)?;
    Ok(StatementResult::Rows(RowsResult {
        schema,
        stream: Box::pin(stream),
        progress: None,
        changelog: false,
    }))
}
