//! Streaming execution of statements: which mode a statement runs in, streaming `SELECT`
//! (a changelog result), streaming `INSERT` / statement sets (background jobs), and `EXPLAIN`
//! of a streaming plan (operators with their changelog modes).

use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::sqlparser::ast;

use super::{Session, StatementResult, StatusResult, result::RowsResult};
use crate::catalog::CatalogTable;
use crate::catalog::snapshot::CatalogSnapshot;
use crate::connectors;
use crate::error::{Error, Result};
use crate::planner::{self, PlanningContext};
use crate::sql::Insert;
use crate::stream::{self, runtime};

impl Session {
    /// Whether a statement over `snapshot` runs in streaming mode: `'execution.runtime-mode'` is
    /// `streaming`, or `auto` (the default) and some table it reads is unbounded.
    ///
    /// # Errors
    /// `Invalid` for batch mode over an unbounded table.
    pub(crate) fn streaming_for(&self, snapshot: &CatalogSnapshot) -> Result<bool> {
        let mut unbounded: Vec<String> = snapshot
            .tables
            .iter()
            .filter_map(|(path, t)| match t {
                CatalogTable::Table(def) if !connectors::is_bounded(def) => {
                    Some(planner::resolve::display_path(path).dotted())
                }
                _ => None,
            })
            .collect();
        unbounded.sort();
        match self.option("execution.runtime-mode").as_deref() {
            Some("streaming") => Ok(true),
            Some("batch") => match unbounded.first() {
                Some(t) => Err(Error::invalid(format!(
                    "table {t} is unbounded, and batch mode reads only bounded tables; \
                     SET 'execution.runtime-mode' = 'streaming' (or 'auto')"
                ))),
                None => Ok(false),
            },
            _ => Ok(!unbounded.is_empty()),
        }
    }

    /// Plans and starts a streaming query; its changelog streams as the result is read, and
    /// dropping the result cancels the query.
    pub(crate) async fn stream_query(
        &self,
        snapshot: &CatalogSnapshot,
        query: &ast::Query,
    ) -> Result<StatementResult> {
        let plan = planner::plan_query(&PlanningContext::streaming(&self.state, snapshot), query)?;
        let plan = self.state.optimize(&plan)?;
        let planned = stream::plan_select(
            &self.state,
            &plan,
            stream::settings(&self.options)?,
            self.late_rows_table().await?.as_ref(),
        )
        .await?;
        let job = runtime::launch(planned.graph)?;
        let schema = Arc::clone(&planned.schema);
        let state = (Some(job), planned.receiver);
        let batches = futures::stream::unfold(state, |(job, mut rx)| async move {
            let job = job?;
            match rx.recv().await {
                Some(batch) => Some((Ok(batch), (Some(job), rx))),
                None => match job.wait().await {
                    runtime::JobStatus::Failed(e) => {
                        Some((Err(DataFusionError::External(Box::new(e))), (None, rx)))
                    }
                    _ => None,
                },
            }
        });
        Ok(StatementResult::Rows(RowsResult {
            schema: Arc::clone(&schema),
            stream: Box::pin(RecordBatchStreamAdapter::new(schema, batches)),
            progress: None,
            changelog: true,
        }))
    }

    /// Plans and launches `INSERT`s as one streaming job. With `'table.dml-sync' = 'true'` waits
    /// for the job to end; otherwise returns its id at once.
    pub(crate) async fn stream_inserts(
        &mut self,
        snapshot: &CatalogSnapshot,
        inserts: &[Insert],
        name: String,
    ) -> Result<StatementResult> {
        let mut plans = Vec::new();
        {
            let ctx = PlanningContext::streaming(&self.state, snapshot);
            for insert in inserts {
                let (_, plan) = planner::insert::plan_insert(&ctx, insert)?;
                plans.push(self.state.optimize(&plan)?);
            }
        }
        let late = self.late_rows_table().await?;
        let (mut graph, bounded) = stream::plan_inserts(
            &self.state,
            &plans,
            stream::settings(&self.options)?,
            late.as_ref(),
        )
        .await?;
        let (id, resumed) = self
            .resume_id
            .take()
            .unwrap_or_else(|| (super::jobs::Jobs::new_id(), 0));
        graph.checkpointing = self.job_checkpointing(&graph, &id).await?;
        let checkpointed = graph
            .checkpointing
            .as_ref()
            .is_some_and(|c| c.checkpoints.is_some());
        let strategy = stream::restart::RestartStrategy::from_options(&self.options, checkpointed)?;
        if checkpointed && late.is_none() && strategy != stream::restart::RestartStrategy::None {
            let (state, options) = (self.state.clone(), self.options.clone());
            let (data_dir, job_id) = (self.data_dir.clone(), id.clone());
            let plans = Arc::new(plans);
            graph.restart = Some(stream::restart::RestartPlan {
                strategy,
                relaunch: Arc::new(move || {
                    let (state, options, plans) =
                        (state.clone(), options.clone(), Arc::clone(&plans));
                    let (data_dir, job_id) = (data_dir.clone(), job_id.clone());
                    Box::pin(async move {
                        let settings = stream::settings(&options)?;
                        let (mut graph, _) =
                            stream::plan_inserts(&state, &plans, settings, None).await?;
                        graph.checkpointing = super::checkpoints::checkpointing_for(
                            &options,
                            data_dir.as_deref(),
                            &graph,
                            &job_id,
                            true,
                        )
                        .await?;
                        Ok(graph)
                    })
                }),
            });
        }
        let checkpoint_dir = graph
            .checkpointing
            .as_ref()
            .and_then(|c| c.checkpoints.as_ref())
            .map(|(config, _)| config.dir.clone());
        let job = runtime::launch(graph)?;
        if let Some(dir) = checkpoint_dir {
            self.record_job(&id, &name, &job, dir, resumed)?;
        }
        let id = self.jobs.add(id, name, job, bounded);
        let sync = self
            .option("table.dml-sync")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if sync {
            let entry = self
                .jobs
                .get(&id)
                .ok_or_else(|| Error::internal("a job vanished"))?;
            return match entry.job.wait().await {
                runtime::JobStatus::Failed(e) => Err(e.context(format!("in job {id}"))),
                runtime::JobStatus::Canceled => Err(Error::cancelled()),
                _ => {
                    let rows = entry.job.rows_written();
                    Ok(StatementResult::Status(StatusResult {
                        message: format!("Job {id} finished."),
                        rows_affected: Some(rows),
                    }))
                }
            };
        }
        Ok(StatementResult::Status(StatusResult::new(format!(
            "SQL update statement has been successfully submitted to the cluster:\nJob ID: {id}"
        ))))
    }

    /// The table named by `'weir.stream.late-rows-table'`, if set: where streaming jobs send the
    /// rows their operators drop as late.
    ///
    /// # Errors
    /// `NotFound` when no such table exists; `Invalid` for a view.
    async fn late_rows_table(&self) -> Result<Option<stream::LateRowsTable>> {
        let Some(name) = self.option("weir.stream.late-rows-table") else {
            return Ok(None);
        };
        let parts: Vec<String> = name
            .split('.')
            .map(|p| p.trim_matches('`').to_string())
            .collect();
        let snapshot =
            planner::resolve::build_snapshot(&self.registry, vec![parts.clone()]).await?;
        let path = snapshot.qualify(&parts).ok_or_else(|| {
            Error::invalid(format!(
                "bad table name '{name}' in 'weir.stream.late-rows-table'"
            ))
        })?;
        let table = snapshot.get(&path).ok_or_else(|| {
            Error::not_found(format!(
                "the late-rows table '{name}' ('weir.stream.late-rows-table') does not exist; \
                 create it as (operator STRING, watermark TIMESTAMP(3), row STRING)"
            ))
        })?;
        if matches!(table, CatalogTable::View(_)) {
            return Err(Error::invalid(format!(
                "the late-rows table '{name}' is a view; late rows need a table"
            )));
        }
        let ctx = PlanningContext::streaming(&self.state, &snapshot);
        let provider = planner::tables::table_provider(&ctx, &path, table)?;
        Ok(Some(stream::LateRowsTable {
            name: name.to_string(),
            provider,
        }))
    }

    /// `EXPLAIN` of a statement in streaming mode: the optimized logical plan and the streaming
    /// plan, each operator with its changelog mode.
    pub(crate) async fn stream_explain(
        &self,
        snapshot: &CatalogSnapshot,
        statement: &crate::sql::Statement,
    ) -> Result<Vec<(String, String)>> {
        let ctx = PlanningContext::streaming(&self.state, snapshot);
        let settings = stream::settings(&self.options)?;
        let late = self.late_rows_table().await?;
        let (logical, graph) = match statement {
            crate::sql::Statement::Query(q) => {
                let plan = self.state.optimize(&planner::plan_query(&ctx, q)?)?;
                let graph = stream::plan_select(&self.state, &plan, settings, late.as_ref())
                    .await?
                    .graph;
                (plan, graph)
            }
            crate::sql::Statement::Insert(i) => {
                let plan = self
                    .state
                    .optimize(&planner::insert::plan_insert(&ctx, i)?.1)?;
                let graph = stream::plan_inserts(
                    &self.state,
                    std::slice::from_ref(&plan),
                    settings,
                    late.as_ref(),
                )
                .await?
                .0;
                (plan, graph)
            }
            _ => {
                return Err(Error::not_supported(
                    "EXPLAIN supports queries and INSERT statements",
                ));
            }
        };
        let mut out = vec![
            (
                "logical_plan".to_string(),
                logical.display_indent().to_string().trim_end().to_string(),
            ),
            (
                "stream_plan".to_string(),
                graph.explain().trim_end().to_string(),
            ),
        ];
        if let Some(report) = self.restore_report(&graph).await? {
            out.push(("restore".to_string(), report));
        }
        Ok(out)
    }
}
