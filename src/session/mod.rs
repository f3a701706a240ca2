//! The `Session`: the one entry point every front door (shell, Flight SQL server, bench runner)
//! uses. It owns the catalogs, the session configuration (`SET`), and the DataFusion context, and
//! runs statements: parse → resolve names into a catalog snapshot → plan → execute.

pub mod result;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use result::{Progress, RowsResult, StatementResult, StatusResult};

use crate::error::{Error, Result};
use crate::sql::{self, ParsedStatement};

/// How to open a [`Session`].
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Where the embedded persistent catalog lives. `None`: the default catalog is in memory and
    /// nothing survives the session.
    pub data_dir: Option<PathBuf>,
}

/// A SQL session: catalogs, current catalog/database, `SET` options, and the engines.
pub struct Session {
    options: BTreeMap<String, String>,
    ctx: datafusion::prelude::SessionContext,
}

impl Session {
    /// Opens a session; with a data directory, loads (or creates) the persistent catalog there.
    pub async fn open(options: SessionOptions) -> Result<Session> {
        let _ = options;
        Ok(Session { options: BTreeMap::new(), ctx: datafusion::prelude::SessionContext::new() })
    }

    /// Parses a script into statements without running them.
    pub fn parse(&self, sql: &str) -> Result<Vec<ParsedStatement>> {
        sql::parse_script(sql)
    }

    /// Runs one parsed statement. Queries return a stream that runs as it is read; dropping the
    /// future or the stream cancels the statement.
    pub async fn execute(&mut self, statement: &ParsedStatement) -> Result<StatementResult> {
        // BOOTSTRAP: plain DataFusion; replaced by the real planner.
        match &statement.statement {
            sql::Statement::Query(_) => {
                let df = self.ctx.sql(&statement.text).await?;
                let plan = df.create_physical_plan().await?;
                let stream = datafusion::physical_plan::execute_stream(plan.clone(), self.ctx.task_ctx())?;
                Ok(StatementResult::Rows(RowsResult {
                    schema: stream.schema(),
                    stream,
                    progress: Some(Progress::new(plan)),
                }))
            }
            _ => Err(Error::not_supported("not implemented yet")),
        }
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
        self.options.get(key).cloned()
    }

    /// Names for completion in the shell: catalogs, databases, tables and views of the current
    /// catalog, and functions.
    pub async fn completion_names(&self) -> Vec<String> {
        Vec::new()
    }
}
