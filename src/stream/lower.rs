//! Lowering: a DataFusion [`LogicalPlan`] (planned for streaming: tables with a watermark carry a
//! [`WatermarkNode`]) becomes a [`StreamGraph`]. Each logical node maps to one operator (or a
//! source); while lowering, every node gets its changelog mode (append-only or retract, with an
//! upsert key when one is known) and its time attributes, which decide how the consumers behave
//! (a `GROUP BY window_start, window_end` over a window TVF is a window aggregate that fires on
//! watermarks; over anything else it is an updating aggregate).
//!
//! Operator-specific lowering lives next to each operator in [`super::ops`]; this file holds
//! the walk, the stateless nodes and the sources.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::PhysicalExpr;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::changes::ChangelogMode;
use super::ops;
use super::runtime::{Edge, GraphNode, NodeKind, OperatorFactory, Partitioning, StreamGraph};
use super::source::{PhysicalPlanSource, SourceNode, split_plan};
use crate::error::{Error, Result};
use crate::functions::window::WindowKind;
use crate::planner::temporal_join::TemporalJoinNode;
use crate::planner::watermark::WatermarkNode;
use crate::planner::window_tvf::{WindowTvfNode, describe};

/// Time attributes of a lowered relation's columns.
#[derive(Debug, Clone, Default)]
pub struct Times {
    /// Columns that are event-time attributes (the watermark refers to them).
    pub rowtime: Vec<usize>,
    /// Columns that are processing-time attributes (`PROCTIME()`).
    pub proctime: Vec<usize>,
    /// The `window_start` / `window_end` columns of a windowed relation (a window TVF's output, or
    /// a window aggregate's output that kept them).
    pub window: Option<WindowCols>,
}

#[derive(Debug, Clone, Copy)]
pub struct WindowCols {
    pub start: usize,
    pub end: usize,
    /// The window is over processing time (fires on the wall clock, not on watermarks).
    pub proctime: bool,
}

impl Times {
    /// The time attributes after a projection: `sources[i]` is the input column that output
    /// column `i` passes through unchanged, if any.
    pub fn project(&self, sources: &[Option<usize>]) -> Times {
        let map = |cols: &[usize]| -> Vec<usize> {
            sources
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_some_and(|s| cols.contains(&s)))
                .map(|(i, _)| i)
                .collect()
        };
        let find = |col: usize| sources.iter().position(|s| *s == Some(col));
        Times {
            rowtime: map(&self.rowtime),
            proctime: map(&self.proctime),
            window: self.window.and_then(|w| {
                Some(WindowCols {
                    start: find(w.start)?,
                    end: find(w.end)?,
                    proctime: w.proctime,
                })
            }),
        }
    }
}

/// A logical node after lowering: the graph node that produces its rows, and what they are.
#[derive(Debug, Clone)]
pub struct Lowered {
    pub id: usize,
    pub mode: ChangelogMode,
    pub times: Times,
    /// Every source below is bounded (the stream ends).
    pub bounded: bool,
    pub parallelism: usize,
}

/// The lowering walk; operator lowerings in [`super::ops`] receive it to add their nodes.
pub struct Lowering<'a> {
    pub graph: StreamGraph,
    pub state: &'a SessionState,
    /// `state` with [`SOURCE_SPLITS`] target partitions: the one table scans are planned with.
    scan_state: SessionState,
    pub parallelism: usize,
    /// Watermark alignment groups of this job, by name.
    pub groups: super::source::AlignmentGroups,
}

/// How many splits a generator (`nexmark`, `datagen`) cuts its rows into in streaming mode:
/// the scans are planned with this many target partitions, whatever the job's parallelism, so
/// split `k` is the same rows at every parallelism and a job can restore from a checkpoint at
/// another parallelism. (File scans are cut by file or byte range: see
/// [`super::source::SplitLayout`].)
pub const SOURCE_SPLITS: usize = 4;

impl<'a> Lowering<'a> {
    pub fn new(
        state: &'a SessionState,
        settings: super::operator::StreamSettings,
        parallelism: usize,
    ) -> Lowering<'a> {
        let config = state.config().clone().with_target_partitions(SOURCE_SPLITS);
        let scan_state =
            datafusion::execution::session_state::SessionStateBuilder::new_from_existing(
                state.clone(),
            )
            .with_config(config)
            .build();
        Lowering {
            graph: StreamGraph::new(settings),
            state,
            scan_state,
            parallelism,
            groups: Default::default(),
        }
    }

    /// A DataFusion physical expression for `expr` over `schema`.
    pub fn physical_expr(&self, expr: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(self.state.create_physical_expr(expr.clone(), schema)?)
    }

    /// Adds an operator node fed by `inputs`; returns its id.
    #[allow(clippy::too_many_arguments)]
    pub fn add_operator(
        &mut self,
        name: &str,
        detail: String,
        schema: SchemaRef,
        mode: ChangelogMode,
        parallelism: usize,
        inputs: Vec<Edge>,
        factory: OperatorFactory,
    ) -> usize {
        self.graph.add(GraphNode {
            name: name.to_string(),
            detail,
            schema,
            mode,
            kind: NodeKind::Operator(factory),
            inputs,
            parallelism,
            fused: Vec::new(),
        })
    }

    /// The edge from `input` to a consumer with `parallelism` instances that needs rows with equal
    /// `keys` on one instance (`keys` empty: everything on one instance).
    pub fn keyed_edge(&self, input: &Lowered, keys: Vec<usize>, parallelism: usize) -> Edge {
        let partitioning = if parallelism == 1 {
            if input.parallelism == 1 {
                Partitioning::Forward
            } else {
                Partitioning::Single
            }
        } else if keys.is_empty() {
            Partitioning::Single
        } else {
            Partitioning::Hash(keys)
        };
        Edge {
            from: input.id,
            partitioning,
        }
    }

    /// The parallelism for a keyed operator (1 when it has no key).
    pub fn keyed_parallelism(&self, keys: &[usize]) -> usize {
        if keys.is_empty() { 1 } else { self.parallelism }
    }

    /// A stateless operator right after `input` (same parallelism, forward edge).
    pub fn add_stateless(
        &mut self,
        input: &Lowered,
        name: &str,
        detail: String,
        schema: SchemaRef,
        factory: OperatorFactory,
    ) -> usize {
        let edge = Edge {
            from: input.id,
            partitioning: Partitioning::Forward,
        };
        let mode = input.mode.clone();
        self.add_operator(
            name,
            detail,
            schema,
            mode,
            input.parallelism,
            vec![edge],
            factory,
        )
    }

    /// Lowers a logical plan (recursively).
    pub fn lower<'b>(&'b mut self, plan: &'b LogicalPlan) -> BoxFuture<'b, Result<Lowered>> {
        async move { self.lower_node(plan).await }.boxed()
    }

    async fn lower_node(&mut self, plan: &LogicalPlan) -> Result<Lowered> {
        match plan {
            LogicalPlan::SubqueryAlias(a) => self.lower(&a.input).await,
            LogicalPlan::Projection(p) => {
                let input = self.lower(&p.input).await?;
                let schema = Arc::new(p.schema.as_arrow().clone());
                let mut exprs = Vec::with_capacity(p.expr.len());
                let mut sources = Vec::with_capacity(p.expr.len());
                let mut proctime = Vec::new();
                for (i, e) in p.expr.iter().enumerate() {
                    exprs.push(self.physical_expr(e, p.input.schema())?);
                    let inner = unalias(e);
                    sources.push(match inner {
                        Expr::Column(c) => p.input.schema().index_of_column(c).ok(),
                        _ => None,
                    });
                    if let Expr::ScalarFunction(f) = inner
                        && f.name().eq_ignore_ascii_case("proctime")
                    {
                        proctime.push(i);
                    }
                }
                let mut times = input.times.project(&sources);
                times.proctime.extend(proctime);
                let mode = project_mode(&input.mode, &sources);
                let detail = format!(
                    "select=[{}]",
                    p.expr
                        .iter()
                        .map(|e| e.schema_name().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let calc_schema = Arc::clone(&schema);
                let id = self.add_stateless(
                    &input,
                    "Calc",
                    detail,
                    schema,
                    Box::new(move |_| {
                        Ok(Box::new(ops::calc::Calc {
                            filter: None,
                            projection: Some(exprs.clone()),
                            schema: Arc::clone(&calc_schema),
                        }))
                    }),
                );
                self.graph.nodes[id].mode = mode.clone();
                Ok(Lowered {
                    id,
                    mode,
                    times,
                    ..input
                })
            }
            LogicalPlan::Filter(f) => {
                if let Some(lowered) = ops::over::try_lower_top_n(self, f).await? {
                    return Ok(lowered);
                }
                let input = self.lower(&f.input).await?;
                let predicate = self.physical_expr(&f.predicate, f.input.schema())?;
                let schema = Arc::new(f.input.schema().as_arrow().clone());
                let calc_schema = Arc::clone(&schema);
                let id = self.add_stateless(
                    &input,
                    "Calc",
                    format!("where=[{}]", f.predicate),
                    schema,
                    Box::new(move |_| {
                        Ok(Box::new(ops::calc::Calc {
                            filter: Some(Arc::clone(&predicate)),
                            projection: None,
                            schema: Arc::clone(&calc_schema),
                        }))
                    }),
                );
                Ok(Lowered { id, ..input })
            }
            LogicalPlan::TableScan(scan) => {
                let name =
                    crate::planner::resolve::display_name(&scan.table_name.to_string()).to_string();
                // A table stored as a changelog (debezium-json) is read as one.
                let changelog = match datafusion::datasource::source_as_provider(&scan.source) {
                    Ok(provider) => crate::connectors::changelog_scan(
                        provider.as_ref(),
                        scan.projection.as_ref(),
                    )
                    .map_err(|e| e.context(format!("while opening table `{name}`")))?,
                    Err(_) => None,
                };
                let physical = match changelog {
                    Some(plan) => plan,
                    None => self
                        .scan_state
                        .create_physical_plan(plan)
                        .await
                        .map_err(|e| {
                            Error::from(e).context(format!("while opening table `{name}`"))
                        })?,
                };
                let fields: Vec<String> = scan
                    .projected_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let bounded = matches!(
                    datafusion::physical_plan::ExecutionPlanProperties::boundedness(&physical),
                    datafusion::physical_plan::execution_plan::Boundedness::Bounded
                );
                let detail = format!("table=[[{name}]], fields=[{}]", fields.join(", "));
                self.add_source("TableSourceScan", detail, physical, bounded)
            }
            LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {
                let physical = self.state.create_physical_plan(plan).await?;
                self.add_source("Values", String::new(), physical, true)
            }
            LogicalPlan::Union(u) => {
                let mut inputs = Vec::new();
                for i in &u.inputs {
                    inputs.push(self.lower(i).await?);
                }
                let schema = Arc::new(u.schema.as_arrow().clone());
                let mode = ChangelogMode::union(
                    &inputs.iter().map(|i| i.mode.clone()).collect::<Vec<_>>(),
                );
                let parallelism = self.parallelism;
                let edges = inputs
                    .iter()
                    .map(|i| Edge {
                        from: i.id,
                        partitioning: if i.parallelism == parallelism {
                            Partitioning::Forward
                        } else {
                            Partitioning::Hash((0..schema.fields().len()).collect())
                        },
                    })
                    .collect();
                let union_schema = Arc::clone(&schema);
                let id = self.add_operator(
                    "Union",
                    String::new(),
                    schema,
                    mode.clone(),
                    parallelism,
                    edges,
                    Box::new(move |_| {
                        Ok(Box::new(ops::calc::Union {
                            schema: Arc::clone(&union_schema),
                        }))
                    }),
                );
                // Time attributes survive a union only where every input has them.
                let first = inputs[0].times.clone();
                let times = Times {
                    rowtime: first
                        .rowtime
                        .iter()
                        .copied()
                        .filter(|c| inputs.iter().all(|i| i.times.rowtime.contains(c)))
                        .collect(),
                    proctime: first
                        .proctime
                        .iter()
                        .copied()
                        .filter(|c| inputs.iter().all(|i| i.times.proctime.contains(c)))
                        .collect(),
                    window: None,
                };
                Ok(Lowered {
                    id,
                    mode,
                    times,
                    bounded: inputs.iter().all(|i| i.bounded),
                    parallelism,
                })
            }
            LogicalPlan::Aggregate(agg) => {
                let input = self.lower(&agg.input).await?;
                ops::aggregate::lower(self, agg, input)
            }
            LogicalPlan::Join(join) => {
                let left = self.lower(&join.left).await?;
                let right = self.lower(&join.right).await?;
                ops::join::lower(self, join, left, right)
            }
            LogicalPlan::Window(window) => {
                let input = self.lower(&window.input).await?;
                ops::over::lower(self, window, input)
            }
            LogicalPlan::Extension(ext) => {
                let node = ext.node.as_any();
                if let Some(wm) = node.downcast_ref::<WatermarkNode>() {
                    let input = self.lower(&wm.input).await?;
                    let expr = self.physical_expr(&wm.expr, wm.input.schema())?;
                    let column = wm.column_index()?;
                    let schema = Arc::new(wm.input.schema().as_arrow().clone());
                    let detail = format!("rowtime=[{}], watermark=[{}]", wm.column, wm.expr);
                    let mut times = input.times.clone();
                    if !times.rowtime.contains(&column) {
                        times.rowtime.push(column);
                    }
                    // Per-split watermarks: the table's scan and computed columns run in the
                    // source task, which generates the watermark split by split.
                    if let Some(id) = self.fuse_watermark(
                        input.id,
                        Arc::clone(&expr),
                        detail.clone(),
                        &schema,
                        &wm.options,
                    ) {
                        return Ok(Lowered { id, times, ..input });
                    }
                    // Not directly over a scan (cannot happen for tables today): one watermark
                    // per source instance.
                    let id = self.add_stateless(
                        &input,
                        "WatermarkAssigner",
                        detail,
                        schema,
                        Box::new(move |ctx| {
                            Ok(Box::new(ops::watermark::WatermarkAssigner::new(
                                Arc::clone(&expr),
                                ctx,
                            )))
                        }),
                    );
                    return Ok(Lowered { id, times, ..input });
                }
                if let Some(tj) = node.downcast_ref::<TemporalJoinNode>() {
                    let left = self.lower(&tj.left).await?;
                    let right = self.lower(&tj.right).await?;
                    return ops::temporal_join::lower(self, tj, left, right);
                }
                if let Some(tvf) = node.downcast_ref::<WindowTvfNode>() {
                    let input = self.lower(&tvf.input).await?;
                    return self.lower_window_tvf(tvf, input);
                }
                Err(Error::not_supported(format!(
                    "{} in a streaming query",
                    ext.node.name()
                )))
            }
            LogicalPlan::Sort(_) => Err(Error::not_supported(
                "ORDER BY in a streaming query is not supported yet (sort the result in batch mode)",
            )),
            LogicalPlan::Limit(_) => Err(Error::not_supported(
                "LIMIT / FETCH in a streaming query is not supported yet",
            )),
            other => Err(Error::not_supported(format!(
                "{} in a streaming query is not supported yet",
                other.display()
            ))),
        }
    }

    fn add_source(
        &mut self,
        name: &str,
        detail: String,
        physical: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        bounded: bool,
    ) -> Result<Lowered> {
        let physical = split_plan(physical, self.graph.settings.split_layout)?;
        // A changelog scan's batches carry their row kinds in a trailing column, which the
        // source strips (`source::run_source`).
        let changelog = super::changes::has_kind_column(&physical.schema());
        let schema = super::changes::without_kind_column(&physical.schema());
        let mode = if changelog {
            ChangelogMode::Retract { key: None }
        } else {
            ChangelogMode::InsertOnly
        };
        let parallelism = self.parallelism;
        let factory = Arc::new(PhysicalPlanSource {
            plan: physical,
            task: self.state.task_ctx(),
        });
        let id = self.graph.add(GraphNode {
            name: name.to_string(),
            detail,
            schema: Arc::clone(&schema),
            mode: mode.clone(),
            kind: NodeKind::Source(Arc::new(SourceNode::plain(factory, schema))),
            inputs: vec![],
            parallelism,
            fused: Vec::new(),
        });
        Ok(Lowered {
            id,
            mode,
            times: Times::default(),
            bounded,
            parallelism,
        })
    }

    /// Adds the route of late rows to `table` (`'weir.stream.late-rows-table'`): a source node
    /// fed by every operator that drops late rows, and the table's sink.
    ///
    /// # Errors
    /// `Invalid` when the table's columns are not `(operator STRING, watermark TIMESTAMP(3),
    /// row STRING)`; the sink's errors.
    pub fn add_late_rows(&mut self, table: &super::LateRowsTable) -> Result<()> {
        use datafusion::arrow::datatypes::DataType;
        let schema = table.provider.schema();
        let types: Vec<&DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
        let fits = matches!(
            types.as_slice(),
            [DataType::Utf8, DataType::Timestamp(_, _), DataType::Utf8]
        );
        if !fits {
            return Err(Error::invalid(format!(
                "the late-rows table `{}` ('weir.stream.late-rows-table') must have the columns \
                 (operator STRING, watermark TIMESTAMP(3), row STRING); it has ({})",
                table.name,
                schema
                    .fields()
                    .iter()
                    .map(|f| {
                        let t = crate::types::SqlType::from_arrow(f.data_type())
                            .map_or_else(|_| f.data_type().to_string(), |t| t.to_string());
                        format!("{} {t}", f.name())
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let factory = Arc::new(super::source::ChannelSource {
            receiver: std::sync::Mutex::new(Some(receiver)),
        });
        let id = self.graph.add(GraphNode {
            name: "LateRows".to_string(),
            detail: String::new(),
            schema: Arc::clone(&schema),
            mode: ChangelogMode::InsertOnly,
            kind: NodeKind::Source(Arc::new(SourceNode::plain(factory, Arc::clone(&schema)))),
            inputs: vec![],
            parallelism: 1,
            fused: Vec::new(),
        });
        let input = Lowered {
            id,
            mode: ChangelogMode::InsertOnly,
            times: Times::default(),
            bounded: true,
            parallelism: 1,
        };
        let sink =
            ops::sink::lower_into(self, &table.name, Arc::clone(&table.provider), false, input)?;
        self.graph.late_rows = Some((
            super::operator::LateRowsRoute { sender, schema },
            vec![id, sink],
        ));
        Ok(())
    }

    /// Fuses the table's read plan (a source and the `Calc`s of its computed columns, which must
    /// be the graph's newest nodes, `top` the last of them) into one source node that generates
    /// the watermark `expr` per split. Returns the source's id, or `None` (graph unchanged) when
    /// the chain has another shape.
    fn fuse_watermark(
        &mut self,
        top: usize,
        expr: Arc<dyn PhysicalExpr>,
        detail: String,
        schema: &SchemaRef,
        options: &crate::planner::watermark::WatermarkOptions,
    ) -> Option<usize> {
        if top + 1 != self.graph.nodes.len() {
            return None;
        }
        let mut id = top;
        loop {
            let n = &self.graph.nodes[id];
            match &n.kind {
                NodeKind::Source(s) if s.chain.is_empty() && s.watermark.is_none() => break,
                NodeKind::Operator(_)
                    if n.name == "Calc"
                        && id > 0
                        && n.inputs.len() == 1
                        && n.inputs[0].from == id - 1
                        && n.inputs[0].partitioning == Partitioning::Forward =>
                {
                    id -= 1
                }
                _ => return None,
            }
        }
        let source_id = id;
        let mut calcs = Vec::new();
        while self.graph.nodes.len() > source_id + 1 {
            calcs.extend(self.graph.nodes.pop());
        }
        // `calcs` is top-down; the chain runs bottom-up.
        let mut fused: Vec<(String, String)> = calcs
            .iter()
            .map(|n| (n.name.clone(), n.detail.clone()))
            .collect();
        let mut chain = Vec::with_capacity(calcs.len());
        for n in calcs.into_iter().rev() {
            if let NodeKind::Operator(f) = n.kind {
                chain.push(f);
            }
        }
        let node = &mut self.graph.nodes[source_id];
        let NodeKind::Source(old) = &node.kind else {
            return None;
        };
        let alignment =
            options
                .alignment
                .as_ref()
                .map(|(group, max_drift)| super::source::Alignment {
                    group: self.groups.get(group),
                    max_drift: *max_drift,
                });
        let source = SourceNode {
            factory: Arc::clone(&old.factory),
            scan_schema: Arc::clone(&old.scan_schema),
            chain,
            watermark: Some(expr),
            alignment,
            idle_timeout: options.idle_timeout,
        };
        fused.push((
            std::mem::replace(&mut node.name, "WatermarkAssigner".to_string()),
            std::mem::replace(&mut node.detail, detail),
        ));
        node.fused = fused;
        node.schema = Arc::clone(schema);
        node.kind = NodeKind::Source(Arc::new(source));
        Some(source_id)
    }

    fn lower_window_tvf(&mut self, tvf: &WindowTvfNode, input: Lowered) -> Result<Lowered> {
        if !input.mode.is_insert_only() {
            return Err(Error::not_supported(format!(
                "{} window over an updating input (window TVFs take append-only input, as in Flink)",
                tvf.kind.name()
            )));
        }
        let time_index = tvf.time_index()?;
        let proctime = input.times.proctime.contains(&time_index);
        if !proctime && !input.times.rowtime.contains(&time_index) {
            return Err(Error::invalid(format!(
                "{} window: `{}` is not a time attribute in streaming mode; declare a WATERMARK \
                 for it in the table, or use a PROCTIME() column",
                tvf.kind.name(),
                tvf.time_column.name
            )));
        }
        let n = tvf.input.schema().fields().len();
        let schema = Arc::new(tvf.schema().as_arrow().clone());
        let mut times = input.times.clone();
        times.window = Some(WindowCols {
            start: n,
            end: n + 1,
            proctime,
        });
        if proctime {
            times.proctime.push(n + 2);
        } else {
            times.rowtime.push(n + 2);
        }
        if let WindowKind::Session { .. } = tvf.kind {
            return ops::session::lower(self, tvf, input, times);
        }
        let kind = tvf.kind.clone();
        let assign_schema = Arc::clone(&schema);
        let id = self.add_stateless(
            &input,
            "WindowTableFunction",
            format!(
                "{}, time_col=[{}]",
                describe(&tvf.kind),
                tvf.time_column.name
            ),
            schema,
            Box::new(move |_| {
                Ok(Box::new(ops::window_assign::WindowAssign {
                    kind: kind.clone(),
                    time_index,
                    schema: Arc::clone(&assign_schema),
                }))
            }),
        );
        Ok(Lowered { id, times, ..input })
    }
}

/// The expression under any aliases.
pub fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

/// The changelog mode after a projection: an upsert key survives if all its columns pass through.
fn project_mode(mode: &ChangelogMode, sources: &[Option<usize>]) -> ChangelogMode {
    match mode {
        ChangelogMode::InsertOnly => ChangelogMode::InsertOnly,
        ChangelogMode::Retract { key } => ChangelogMode::Retract {
            key: key.as_ref().and_then(|k| {
                k.iter()
                    .map(|c| sources.iter().position(|s| *s == Some(*c)))
                    .collect::<Option<Vec<usize>>>()
            }),
        },
    }
}
