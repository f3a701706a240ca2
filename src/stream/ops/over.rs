//! `OVER` windows, TopN and deduplication in streaming mode: the lowering of DataFusion `Window`
//! nodes (and of `Filter(rn <= N)` over them) to the partitioned-window operator of
//! [`super::over_op`], which sits after a hash exchange on the `PARTITION BY` keys.
//!
//! - A `Window` over append-only input ordered by one rowtime column ascending, with causal
//!   frames, becomes an `OverAggregate` that emits each row once when the watermark passes it.
//!   Any other `Window` becomes a retracting `OverAggregate` that recomputes changed partitions.
//! - `Filter(rn <= N | rn < N | rn = N)` on a `ROW_NUMBER()` / `RANK()` / `DENSE_RANK()` column
//!   (through projections / aliases) becomes a `Rank` (`Deduplicate` for `ROW_NUMBER` and N = 1)
//!   that emits only the top N; partitioned by `window_start, window_end` over append-only
//!   windowed input, a `WindowRank` / `WindowDeduplicate` that emits once per window.

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Filter, LogicalPlan, Operator as BinOp, Window, WindowFrameBound,
    WindowFrameUnits, WindowFunctionDefinition,
};
use datafusion::physical_planner::create_window_expr;

use super::calc::Calc;
use super::over_op::{Mode, PartitionedWindow, WindowSpec};
use crate::error::{Error, Result};
use crate::stream::changes::ChangelogMode;
use crate::stream::lower::{Lowered, Lowering, Times, unalias};

/// The functions the streaming `OVER` supports.
const RANKING: [&str; 3] = ["row_number", "rank", "dense_rank"];
const AGGREGATES: [&str; 5] = ["count", "sum", "avg", "min", "max"];

/// What a `Window` node computes, checked and turned into physical expressions.
struct Parts {
    spec: WindowSpec,
    /// `PARTITION BY` input columns (`None` if some key is an expression).
    partition_cols: Option<Vec<usize>>,
    detail: String,
    /// All frames end at the current row (and its peers) or before.
    causal: bool,
    /// Rows of history the frames need (`None`: all).
    keep_last: Option<usize>,
    /// The single `ORDER BY` key when it is a plain ascending column.
    order_col: Option<usize>,
}

fn window_function(e: &Expr) -> Result<&WindowFunction> {
    match unalias(e) {
        Expr::WindowFunction(f) => Ok(f),
        other => Err(Error::internal(format!(
            "window node with a non-window expression {other}"
        ))),
    }
}

fn function_name(f: &WindowFunction) -> String {
    match &f.fun {
        WindowFunctionDefinition::AggregateUDF(u) => u.name().to_ascii_lowercase(),
        WindowFunctionDefinition::WindowUDF(u) => u.name().to_ascii_lowercase(),
    }
}

fn names(exprs: &[Expr]) -> String {
    exprs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parts(l: &Lowering, window: &Window) -> Result<Parts> {
    let input_df = window.input.schema();
    let input_schema = Arc::new(input_df.as_arrow().clone());
    let window_schema = Arc::new(window.schema.as_arrow().clone());
    let mut first: Option<&WindowFunctionParams> = None;
    let mut exprs = Vec::with_capacity(window.window_expr.len());
    let mut causal = true;
    let mut keep_last: Option<usize> = Some(0);
    for e in &window.window_expr {
        let f = window_function(e)?;
        let name = function_name(f);
        let ranking = RANKING.contains(&name.as_str());
        if !ranking && !AGGREGATES.contains(&name.as_str()) {
            return Err(Error::not_supported(format!(
                "the window function {} in a streaming query is not supported yet (supported: \
                 ROW_NUMBER, RANK, DENSE_RANK, COUNT, SUM, AVG, MIN, MAX)",
                name.to_ascii_uppercase()
            )));
        }
        if f.params.distinct || f.params.filter.is_some() {
            return Err(Error::not_supported(
                "DISTINCT / FILTER in an OVER aggregate in a streaming query is not supported yet",
            ));
        }
        match first {
            None => first = Some(&f.params),
            Some(p) => {
                if p.partition_by != f.params.partition_by || p.order_by != f.params.order_by {
                    return Err(Error::not_supported(
                        "OVER windows with different PARTITION BY / ORDER BY in one \
                         streaming query node are not supported yet",
                    ));
                }
            }
        }
        let frame = &f.params.window_frame;
        // Rows released together by a watermark include all peers of the current row, so a
        // frame ending at the current row (or before it) only needs released rows.
        causal &= match &frame.end_bound {
            WindowFrameBound::CurrentRow | WindowFrameBound::Preceding(_) => true,
            WindowFrameBound::Following(v) => scalar_u64(v) == Some(0),
        };
        // Bounded history: an aggregate over `ROWS n PRECEDING .. CURRENT ROW / m PRECEDING`.
        let bounded = match (&frame.units, &frame.start_bound, &frame.end_bound) {
            (
                WindowFrameUnits::Rows,
                WindowFrameBound::Preceding(n),
                WindowFrameBound::CurrentRow | WindowFrameBound::Preceding(_),
            ) if !ranking && !n.is_null() => scalar_u64(n).map(|n| n as usize + 1),
            _ => None,
        };
        keep_last = match (keep_last, bounded) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        exprs.push(create_window_expr(
            e,
            input_df,
            l.state.execution_props(),
            &PhysicalPlanningContext::default(),
        )?);
    }
    let Some(params) = first else {
        return Err(Error::internal("window node without window expressions"));
    };
    let Some(physical) = exprs.first() else {
        return Err(Error::internal("window node without window expressions"));
    };
    let partition_by = physical.partition_by().to_vec();
    let order_by = physical.order_by().to_vec();
    let partition_cols = params
        .partition_by
        .iter()
        .map(|e| match unalias(e) {
            Expr::Column(c) => input_df.index_of_column(c).ok(),
            _ => None,
        })
        .collect::<Option<Vec<usize>>>();
    let order_col = match params.order_by.as_slice() {
        [s] if s.asc => match unalias(&s.expr) {
            Expr::Column(c) => input_df.index_of_column(c).ok(),
            _ => None,
        },
        _ => None,
    };
    let detail = format!(
        "partitionBy=[{}], orderBy=[{}]",
        names(&params.partition_by),
        params
            .order_by
            .iter()
            .map(|s| format!("{} {}", s.expr, if s.asc { "ASC" } else { "DESC" }))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Parts {
        spec: WindowSpec {
            exprs,
            partition_by,
            order_by,
            input_schema,
            out_schema: Arc::clone(&window_schema),
            window_schema,
            post: Vec::new(),
            prune: None,
            mode: Mode::Recompute,
        },
        partition_cols,
        detail,
        causal,
        keep_last,
        order_col,
    })
}

fn scalar_u64(v: &ScalarValue) -> Option<u64> {
    match v
        .cast_to(&datafusion::arrow::datatypes::DataType::UInt64)
        .ok()?
    {
        ScalarValue::UInt64(Some(n)) => Some(n),
        _ => None,
    }
}

/// Adds the operator node; returns its id and parallelism.
fn add(
    l: &mut Lowering,
    name: &str,
    detail: String,
    spec: WindowSpec,
    partition_cols: Option<Vec<usize>>,
    mode: ChangelogMode,
    input: &Lowered,
) -> (usize, usize) {
    let keys = partition_cols.unwrap_or_default();
    let parallelism = l.keyed_parallelism(&keys);
    let edge = l.keyed_edge(input, keys, parallelism);
    let schema = Arc::clone(&spec.out_schema);
    let spec = Arc::new(spec);
    let id = l.add_operator(
        name,
        detail,
        schema,
        mode,
        parallelism,
        vec![edge],
        Box::new(move |ctx| {
            Ok(Box::new(PartitionedWindow::new(
                ctx.clone(),
                Arc::clone(&spec),
            )?))
        }),
    );
    (id, parallelism)
}

pub fn lower(l: &mut Lowering, window: &Window, input: Lowered) -> Result<Lowered> {
    let mut p = parts(l, window)?;
    let rowtime = input.mode.is_insert_only()
        && p.causal
        && p.order_col
            .is_some_and(|c| input.times.rowtime.contains(&c));
    let mode = match (rowtime, p.order_col) {
        (true, Some(time)) => {
            p.spec.mode = Mode::Rowtime {
                time,
                keep_last: p.keep_last,
            };
            ChangelogMode::InsertOnly
        }
        _ => ChangelogMode::Retract { key: None },
    };
    let detail = format!("{}, select=[{}]", p.detail, names(&window.window_expr));
    let (id, parallelism) = add(
        l,
        "OverAggregate",
        detail,
        p.spec,
        p.partition_cols,
        mode.clone(),
        &input,
    );
    // The input columns pass through; the window columns are no time attributes.
    let times = if mode.is_insert_only() {
        input.times.clone()
    } else {
        Times::default()
    };
    Ok(Lowered {
        id,
        mode,
        times,
        bounded: input.bounded,
        parallelism,
    })
}

/// `rn <= N` / `rn < N` / `rn = N` (either side): the column and the largest rank kept.
fn rank_bound(predicate: &Expr) -> Option<(&datafusion::common::Column, u64, bool)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = predicate else {
        return None;
    };
    fn column(e: &Expr) -> Option<&datafusion::common::Column> {
        match e {
            Expr::Column(c) => Some(c),
            Expr::Cast(c) => match c.expr.as_ref() {
                Expr::Column(col) => Some(col),
                _ => None,
            },
            _ => None,
        }
    }
    let literal = |e: &Expr| match e {
        Expr::Literal(v, _) => {
            match v
                .cast_to(&datafusion::arrow::datatypes::DataType::Int64)
                .ok()?
            {
                ScalarValue::Int64(Some(n)) => Some(n),
                _ => None,
            }
        }
        _ => None,
    };
    let (col, op, n) = if let (Some(c), Some(n)) = (column(left), literal(right)) {
        (c, *op, n)
    } else if let (Some(n), Some(c)) = (literal(left), column(right)) {
        let flipped = match op {
            BinOp::GtEq => BinOp::LtEq,
            BinOp::Gt => BinOp::Lt,
            BinOp::Eq => BinOp::Eq,
            _ => return None,
        };
        (c, flipped, n)
    } else {
        return None;
    };
    let (limit, exact) = match op {
        BinOp::LtEq => (n, false),
        BinOp::Lt => (n - 1, false),
        BinOp::Eq => (n, true),
        _ => return None,
    };
    (limit >= 1).then_some((col, limit as u64, exact))
}

/// A `Filter` on a `ROW_NUMBER()` column (`rn <= N`): TopN. `None` if `filter` is not one.
pub async fn try_lower_top_n(l: &mut Lowering<'_>, filter: &Filter) -> Result<Option<Lowered>> {
    let Some((column, n, exact)) = rank_bound(&filter.predicate) else {
        return Ok(None);
    };
    let Ok(mut idx) = filter.input.schema().index_of_column(column) else {
        return Ok(None);
    };
    // The stages between the filter and the window, top down.
    let mut stages: Vec<&LogicalPlan> = Vec::new();
    let mut node: &LogicalPlan = &filter.input;
    let window = loop {
        match node {
            LogicalPlan::SubqueryAlias(a) => {
                stages.push(node);
                node = &a.input;
            }
            LogicalPlan::Projection(p) => {
                let Some(Expr::Column(c)) = p.expr.get(idx).map(unalias) else {
                    return Ok(None);
                };
                let Ok(i) = p.input.schema().index_of_column(c) else {
                    return Ok(None);
                };
                idx = i;
                stages.push(node);
                node = &p.input;
            }
            LogicalPlan::Window(w) => break w,
            _ => return Ok(None),
        }
    };
    let n_in = window.input.schema().fields().len();
    let Some(rank_expr) = idx
        .checked_sub(n_in)
        .and_then(|k| window.window_expr.get(k))
    else {
        return Ok(None);
    };
    let Ok(f) = window_function(rank_expr) else {
        return Ok(None);
    };
    let rank_fn = function_name(f);
    if !RANKING.contains(&rank_fn.as_str()) {
        return Ok(None);
    }
    let supported = window.window_expr.iter().all(|e| {
        window_function(e).is_ok_and(|f| {
            let name = function_name(f);
            RANKING.contains(&name.as_str()) || AGGREGATES.contains(&name.as_str())
        })
    });
    if !supported {
        return Ok(None);
    }
    let keep_first = f.params.order_by.first().is_none_or(|s| s.asc);

    let input = l.lower(&window.input).await?;
    let mut p = parts(l, window)?;
    // Projections / aliases between the window and the filter, bottom up, then the filter.
    let mut times = input.times.clone();
    for stage in stages.iter().rev() {
        match stage {
            LogicalPlan::SubqueryAlias(a) => p.spec.post.push(Calc {
                filter: None,
                projection: None,
                schema: Arc::new(a.schema.as_arrow().clone()),
            }),
            LogicalPlan::Projection(proj) => {
                let mut exprs = Vec::with_capacity(proj.expr.len());
                let mut sources = Vec::with_capacity(proj.expr.len());
                for e in &proj.expr {
                    exprs.push(l.physical_expr(e, proj.input.schema())?);
                    sources.push(match unalias(e) {
                        Expr::Column(c) => proj.input.schema().index_of_column(c).ok(),
                        _ => None,
                    });
                }
                times = times.project(&sources);
                p.spec.post.push(Calc {
                    filter: None,
                    projection: Some(exprs),
                    schema: Arc::new(proj.schema.as_arrow().clone()),
                });
            }
            _ => {
                return Err(Error::internal(
                    "unexpected node between a filter and a window",
                ));
            }
        }
    }
    let out_schema = Arc::new(filter.input.schema().as_arrow().clone());
    p.spec.post.push(Calc {
        filter: Some(l.physical_expr(&filter.predicate, filter.input.schema())?),
        projection: None,
        schema: Arc::clone(&out_schema),
    });
    p.spec.out_schema = out_schema;
    if input.mode.is_insert_only() {
        p.spec.prune = Some((n_in + (idx - n_in), n));
    }
    let cols = p.partition_cols.clone().unwrap_or_default();
    let windowed = input.mode.is_insert_only()
        && input
            .times
            .window
            .is_some_and(|w| !w.proctime && cols.contains(&w.start) && cols.contains(&w.end));
    let dedup = rank_fn == "row_number" && n == 1;
    let (name, mode) = if windowed {
        if let Some(w) = input.times.window {
            p.spec.mode = Mode::Window { end: w.end };
        }
        (
            if dedup {
                "WindowDeduplicate"
            } else {
                "WindowRank"
            },
            ChangelogMode::InsertOnly,
        )
    } else {
        (
            if dedup { "Deduplicate" } else { "Rank" },
            ChangelogMode::Retract { key: None },
        )
    };
    let detail = if dedup {
        format!(
            "keep=[{}], {}, select=[{}]",
            if keep_first { "FirstRow" } else { "LastRow" },
            p.detail,
            names(&window.window_expr)
        )
    } else {
        format!(
            "rankType=[{}], rankRange=[{}], {}, select=[{}]",
            rank_fn.to_ascii_uppercase(),
            if exact {
                format!("rank={n}")
            } else {
                format!("rankStart=1, rankEnd={n}")
            },
            p.detail,
            names(&window.window_expr)
        )
    };
    let (id, parallelism) = add(
        l,
        name,
        detail,
        p.spec,
        p.partition_cols,
        mode.clone(),
        &input,
    );
    if !mode.is_insert_only() {
        times = Times::default();
    }
    Ok(Some(Lowered {
        id,
        mode,
        times,
        bounded: input.bounded,
        parallelism,
    }))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::RecordBatch;
    use datafusion::arrow::util::display::array_value_to_string;
    use futures::TryStreamExt;

    use crate::stream::changes::materialize;
    use crate::{Session, SessionOptions, StatementResult};

    const DATA: &str = "k,price,ts\n\
        a,10,2024-01-01 00:00:01\n\
        b,5,2024-01-01 00:00:02\n\
        a,30,2024-01-01 00:00:03\n\
        a,20,2024-01-01 00:00:04\n\
        b,7,2024-01-01 00:00:09\n\
        a,40,2024-01-01 00:00:12\n\
        b,1,2024-01-01 00:00:20\n\
        a,15,2024-01-01 00:00:21\n\
        b,9,2024-01-01 00:00:22\n\
        a,25,2024-01-01 00:00:30\n\
        b,3,2024-01-01 00:00:31\n";

    fn lines(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            for i in 0..b.num_rows() {
                let row: Vec<String> = b
                    .columns()
                    .iter()
                    .map(|c| array_value_to_string(c, i).unwrap())
                    .collect();
                out.push(row.join("|"));
            }
        }
        out.sort();
        out
    }

    async fn run(session: &mut Session, mode: &str, sql: &str) -> Vec<String> {
        session
            .execute_sql(&format!("SET 'execution.runtime-mode' = '{mode}'"))
            .await
            .unwrap();
        let mut results = session.execute_sql(sql).await.unwrap();
        let Some(StatementResult::Rows(rows)) = results.pop() else {
            panic!("no rows for {sql}");
        };
        let schema = rows.schema.clone();
        let changelog = rows.changelog;
        let batches: Vec<RecordBatch> = rows.stream.try_collect().await.unwrap();
        if changelog {
            lines(&[materialize(&schema, &batches).unwrap()])
        } else {
            lines(&batches)
        }
    }

    #[tokio::test]
    async fn streaming_equals_batch_for_over_top_n_and_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bids.csv");
        std::fs::write(&path, DATA).unwrap();
        let mut session = Session::open(SessionOptions::default()).await.unwrap();
        session
            .execute_sql(&format!(
                "CREATE TABLE t (k STRING, price INT, ts TIMESTAMP(3), \
                 WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector'='filesystem', \
                 'path'='{}', 'format'='csv', 'csv.header'='true')",
                path.display()
            ))
            .await
            .unwrap();
        let queries = [
            "SELECT * FROM (SELECT k, price, ts, ROW_NUMBER() OVER (PARTITION BY k ORDER BY price DESC) AS rn FROM t) WHERE rn <= 2",
            "SELECT k, price FROM (SELECT k, price, ts, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts ASC) AS rn FROM t) WHERE rn = 1",
            "SELECT k, price FROM (SELECT k, price, ts, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) AS rn FROM t) WHERE rn = 1",
            "SELECT * FROM (SELECT k, price, RANK() OVER (PARTITION BY k ORDER BY price) AS r FROM t) WHERE r < 3",
            "SELECT k, price, RANK() OVER (PARTITION BY k ORDER BY price DESC) AS r, DENSE_RANK() OVER (PARTITION BY k ORDER BY price DESC) AS d FROM t",
            "SELECT k, price, ts, SUM(price) OVER w AS s, AVG(price) OVER w AS a, COUNT(*) OVER w AS c FROM t \
             WINDOW w AS (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)",
            "SELECT k, price, ts, SUM(price) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW) AS s, \
             MAX(price) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW) AS m FROM t",
            "SELECT k, price, MIN(price) OVER (PARTITION BY k ORDER BY ts) AS m, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) AS rn FROM t",
            "SELECT k, price, SUM(price) OVER (ORDER BY price ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS s FROM t",
            "SELECT * FROM TABLE(SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '5' SECOND))",
            "SELECT * FROM TABLE(SESSION(TABLE t, DESCRIPTOR(ts), INTERVAL '3' SECOND))",
            "SELECT * FROM (SELECT window_start, window_end, k, price, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY price DESC) AS rn \
             FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND))) WHERE rn <= 2",
        ];
        for q in queries {
            let batch = run(&mut session, "batch", q).await;
            let streaming = run(&mut session, "streaming", q).await;
            assert!(!batch.is_empty(), "{q}");
            assert_eq!(batch, streaming, "{q}");
        }
        // The plans use the operators meant for them (one instance each: no exchanges between).
        session
            .execute_sql(
                "SET 'execution.runtime-mode' = 'streaming'; SET 'parallelism.default' = '1'",
            )
            .await
            .unwrap();
        for (q, name) in [
            (queries[0], "Rank("),
            (queries[1], "Deduplicate(keep=[FirstRow]"),
            (queries[5], "OverAggregate("),
            (queries[7], "changelogMode=[I])\n      WatermarkAssigner"),
            (queries[9], "SessionWindow("),
            (queries[11], "WindowRank("),
        ] {
            let mut results = session.execute_sql(&format!("EXPLAIN {q}")).await.unwrap();
            let Some(StatementResult::Rows(rows)) = results.pop() else {
                panic!("no plan");
            };
            let batches: Vec<RecordBatch> = rows.stream.try_collect().await.unwrap();
            let text = lines(&batches).join("\n");
            assert!(text.contains(name), "{name} not in {text}");
        }
    }
}
