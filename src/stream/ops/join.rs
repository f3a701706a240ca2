//! Joins in streaming mode: lowering of a logical `Join` into the [`JoinOperator`] (in
//! `join_op`), fed by both inputs hash-exchanged on their equi-join keys (a projection first
//! appends key expressions that are not plain columns).
//!
//! Every join is a regular join with retraction. When both inputs are append-only and the
//! condition bounds the two rowtimes relative to each other by constants (`a.ts BETWEEN b.ts -
//! INTERVAL .. AND b.ts + INTERVAL ..`) it is an `IntervalJoin`; when both sides join on their
//! `window_end` it is a `WindowJoin`: in both cases state is dropped once the watermark shows no
//! more matches can come. After an inner interval join the rowtime attributes survive (the output
//! watermark is held back by the interval's width).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, JoinType, NullEquality, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Join, Operator as BinOp};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column as ColumnExpr;

use super::join_op::{Cleanup, JoinOperator, JoinSpec, Shape, Track};
use crate::error::{Error, Result};
use crate::stream::changes::ChangelogMode;
use crate::stream::lower::{Lowered, Lowering, Times, WindowCols, unalias};

/// Lowers a logical join (see the module doc).
///
/// # Errors
/// `NotSupported` for mark joins and null-aware anti joins (`NOT IN`).
pub fn lower(l: &mut Lowering, join: &Join, left: Lowered, right: Lowered) -> Result<Lowered> {
    let (shape, track, name) = match join.join_type {
        JoinType::Inner => (Shape::Pairs, [None, None], "InnerJoin"),
        JoinType::Left => (
            Shape::Pairs,
            [Some(Track::Unmatched), None],
            "LeftOuterJoin",
        ),
        JoinType::Right => (
            Shape::Pairs,
            [None, Some(Track::Unmatched)],
            "RightOuterJoin",
        ),
        JoinType::Full => (
            Shape::Pairs,
            [Some(Track::Unmatched), Some(Track::Unmatched)],
            "FullOuterJoin",
        ),
        JoinType::LeftSemi => (
            Shape::LeftOnly,
            [Some(Track::Matched), None],
            "LeftSemiJoin",
        ),
        JoinType::LeftAnti => (
            Shape::LeftOnly,
            [Some(Track::Unmatched), None],
            "LeftAntiJoin",
        ),
        JoinType::RightSemi => (
            Shape::RightOnly,
            [None, Some(Track::Matched)],
            "RightSemiJoin",
        ),
        JoinType::RightAnti => (
            Shape::RightOnly,
            [None, Some(Track::Unmatched)],
            "RightAntiJoin",
        ),
        other => {
            return Err(Error::not_supported(format!(
                "{other} join in a streaming query is not supported yet"
            )));
        }
    };
    if join.null_aware {
        return Err(Error::not_supported(
            "NOT IN with a subquery (null-aware anti join) in a streaming query is not supported \
             yet; use NOT EXISTS",
        ));
    }
    let left_df = join.left.schema();
    let right_df = join.right.schema();
    let left_schema: SchemaRef = Arc::new(left_df.as_arrow().clone());
    let right_schema: SchemaRef = Arc::new(right_df.as_arrow().clone());

    // Equi keys: column indices, or expressions appended by a projection.
    let mut key_types = Vec::with_capacity(join.on.len());
    let mut same_types = true;
    for (a, b) in &join.on {
        let ta = a.get_type(left_df.as_ref())?;
        let tb = b.get_type(right_df.as_ref())?;
        same_types &= ta == tb;
        key_types.push(ta);
    }
    let left_on: Vec<&Expr> = join.on.iter().map(|(a, _)| a).collect();
    let right_on: Vec<&Expr> = join.on.iter().map(|(_, b)| b).collect();
    let (left_in, left_keys) = key_columns(l, &left, left_df, &left_on)?;
    let (right_in, right_keys) = key_columns(l, &right, right_df, &right_on)?;

    // Residual condition over left ++ right.
    let filter_df = left_df.join(right_df)?;
    let filter_schema: SchemaRef = Arc::new(filter_df.as_arrow().clone());
    let filter = match &join.filter {
        Some(f) => Some(l.physical_expr(f, &filter_df)?),
        None => None,
    };

    // Cleanup by watermark: only when neither input retracts (a retraction could refer to a row
    // already dropped).
    let insert_only = left.mode.is_insert_only() && right.mode.is_insert_only();
    let window = window_pair(join, left_df, right_df, &left.times, &right.times);
    let interval = join
        .filter
        .as_ref()
        .and_then(|f| interval_bounds(f, left_df, right_df, &left.times, &right.times));
    let cleanup = match (insert_only, window, interval) {
        (false, _, _) => Cleanup::None,
        (true, Some(end), _) => Cleanup::Window { end },
        (true, None, Some((time, lo, hi))) => Cleanup::Interval { time, lo, hi },
        (true, None, None) => Cleanup::None,
    };
    let inner = join.join_type == JoinType::Inner;
    let hold_watermark = inner && matches!(cleanup, Cleanup::Interval { .. });
    let wl = left_schema.fields().len();
    let times = match &cleanup {
        Cleanup::Interval { .. } if inner => Times {
            rowtime: left
                .times
                .rowtime
                .iter()
                .copied()
                .chain(right.times.rowtime.iter().map(|c| c + wl))
                .collect(),
            proctime: vec![],
            window: None,
        },
        Cleanup::Window { .. } if inner => Times {
            rowtime: vec![],
            proctime: vec![],
            window: left.times.window.map(|w| WindowCols {
                start: w.start,
                end: w.end,
                proctime: false,
            }),
        },
        _ => Times::default(),
    };
    let op_name = match &cleanup {
        Cleanup::None => "Join",
        Cleanup::Interval { .. } => "IntervalJoin",
        Cleanup::Window { .. } => "WindowJoin",
    };

    let mut conditions: Vec<String> = join.on.iter().map(|(a, b)| format!("{a} = {b}")).collect();
    if let Some(f) = &join.filter {
        conditions.push(f.to_string());
    }
    let names = |keys: &[usize], schema: &SchemaRef, on: &[&Expr]| -> Vec<String> {
        keys.iter()
            .zip(on)
            .map(|(k, e)| {
                schema
                    .fields()
                    .get(*k)
                    .map_or_else(|| e.to_string(), |f| f.name().clone())
            })
            .collect()
    };
    let mut detail = format!(
        "joinType=[{name}], where=[{}], leftKeys=[{}], rightKeys=[{}]",
        if conditions.is_empty() {
            "true".to_string()
        } else {
            conditions.join(" AND ")
        },
        names(&left_keys, &left_schema, &left_on).join(", "),
        names(&right_keys, &right_schema, &right_on).join(", "),
    );
    match &cleanup {
        Cleanup::Interval { time, lo, hi } => detail.push_str(&format!(
            ", windowBounds=[isRowTime=true, leftLowerBound={}, leftUpperBound={}, \
             leftTimeIndex={}, rightTimeIndex={}]",
            lo.map_or("-inf".to_string(), |v| v.to_string()),
            hi.map_or("+inf".to_string(), |v| v.to_string()),
            time[0],
            time[1]
        )),
        Cleanup::Window { end } => detail.push_str(&format!(
            ", leftWindowEnd=[{}], rightWindowEnd=[{}]",
            left_schema.field(end[0]).name(),
            right_schema.field(end[1]).name()
        )),
        Cleanup::None => {}
    }

    let schema: SchemaRef = Arc::new(join.schema.as_arrow().clone());
    let mode = if inner && insert_only {
        ChangelogMode::InsertOnly
    } else {
        ChangelogMode::Retract { key: None }
    };
    let parallelism = if same_types {
        l.keyed_parallelism(&left_keys)
    } else {
        1
    };
    let edges = vec![
        l.keyed_edge(&left_in, left_keys.clone(), parallelism),
        l.keyed_edge(&right_in, right_keys.clone(), parallelism),
    ];
    let spec = Arc::new(JoinSpec {
        shape,
        track,
        sides: [left_schema, right_schema],
        keys: [left_keys, right_keys],
        key_types,
        null_equal: join.null_equality == NullEquality::NullEqualsNull,
        filter,
        filter_schema,
        schema: Arc::clone(&schema),
        cleanup,
        hold_watermark,
    });
    let id = l.add_operator(
        op_name,
        detail,
        schema,
        mode.clone(),
        parallelism,
        edges,
        Box::new(move |ctx| Ok(Box::new(JoinOperator::new(Arc::clone(&spec), ctx)?))),
    );
    Ok(Lowered {
        id,
        mode,
        times,
        bounded: left.bounded && right.bounded,
        parallelism,
    })
}

/// The key columns of one side: plain columns are used in place; other expressions are appended
/// to the side's rows by a projection (whose node is returned instead of `input`).
pub(crate) fn key_columns(
    l: &mut Lowering,
    input: &Lowered,
    schema: &DFSchema,
    on: &[&Expr],
) -> Result<(Lowered, Vec<usize>)> {
    let n = schema.fields().len();
    let mut keys = Vec::with_capacity(on.len());
    let mut extra: Vec<&Expr> = Vec::new();
    for e in on {
        match unalias(e) {
            Expr::Column(c) if schema.index_of_column(c).is_ok() => {
                keys.push(schema.index_of_column(c)?);
            }
            other => {
                keys.push(n + extra.len());
                extra.push(other);
            }
        }
    }
    if extra.is_empty() {
        return Ok((input.clone(), keys));
    }
    let arrow = schema.as_arrow();
    let mut exprs: Vec<Arc<dyn PhysicalExpr>> = Vec::with_capacity(n + extra.len());
    let mut fields: Vec<Field> = Vec::with_capacity(n + extra.len());
    for (i, f) in arrow.fields().iter().enumerate() {
        exprs.push(Arc::new(ColumnExpr::new(f.name(), i)));
        fields.push(f.as_ref().clone());
    }
    for (i, e) in extra.iter().enumerate() {
        exprs.push(l.physical_expr(e, schema)?);
        let t: DataType = e.get_type(schema)?;
        fields.push(Field::new(format!("$join_key{i}"), t, true));
    }
    let out: SchemaRef = Arc::new(Schema::new(fields));
    let detail = format!(
        "select=[*, {}]",
        extra
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let calc_schema = Arc::clone(&out);
    let id = l.add_stateless(
        input,
        "Calc",
        detail,
        out,
        Box::new(move |_| {
            Ok(Box::new(super::calc::Calc {
                filter: None,
                projection: Some(exprs.clone()),
                schema: Arc::clone(&calc_schema),
            }))
        }),
    );
    Ok((
        Lowered {
            id,
            ..input.clone()
        },
        keys,
    ))
}

/// The `window_end` columns of both sides when they are joined on them (event-time windows).
fn window_pair(
    join: &Join,
    left: &DFSchema,
    right: &DFSchema,
    lt: &Times,
    rt: &Times,
) -> Option<[usize; 2]> {
    let (lw, rw) = (lt.window?, rt.window?);
    if lw.proctime || rw.proctime {
        return None;
    }
    join.on.iter().find_map(|(a, b)| {
        let (Expr::Column(a), Expr::Column(b)) = (unalias(a), unalias(b)) else {
            return None;
        };
        let (ia, ib) = (
            left.index_of_column(a).ok()?,
            right.index_of_column(b).ok()?,
        );
        (ia == lw.end && ib == rw.end).then_some([ia, ib])
    })
}

/// A side of a comparison: a column (left: side 0, right: side 1) plus a constant in ms.
type Term = (usize, usize, i64);

/// Bounds on `left.time - right.time` implied by the conjuncts of `filter`, for the first pair
/// of rowtime columns that has any: `([left col, right col], lower, upper)`.
#[allow(clippy::type_complexity)]
fn interval_bounds(
    filter: &Expr,
    left: &DFSchema,
    right: &DFSchema,
    lt: &Times,
    rt: &Times,
) -> Option<([usize; 2], Option<i64>, Option<i64>)> {
    let mut found: Vec<([usize; 2], Option<i64>, Option<i64>)> = Vec::new();
    for c in datafusion::logical_expr::utils::split_conjunction(filter) {
        let mut add = |cols: [usize; 2], lo: Option<i64>, hi: Option<i64>| match found
            .iter_mut()
            .find(|f| f.0 == cols)
        {
            Some(f) => {
                f.1 = match (f.1, lo) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                f.2 = match (f.2, hi) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            None => found.push((cols, lo, hi)),
        };
        let pairs: Vec<(&Expr, &Expr, BinOp)> = match unalias(c) {
            Expr::BinaryExpr(BinaryExpr {
                left: a,
                op,
                right: b,
            }) => vec![(a, b, *op)],
            Expr::Between(bt) if !bt.negated => vec![
                (&bt.expr, &bt.low, BinOp::GtEq),
                (&bt.expr, &bt.high, BinOp::LtEq),
            ],
            _ => continue,
        };
        for (a, b, op) in pairs {
            let (Some(ta), Some(tb)) = (term(a, left, right), term(b, left, right)) else {
                continue;
            };
            // a.col + a.off  op  b.col + b.off, normalized to  L - R  op'  c
            let (op, c, cols) = match (ta.0, tb.0) {
                (0, 1) => (op, tb.2 - ta.2, [ta.1, tb.1]),
                (1, 0) => match op.swap() {
                    Some(swapped) => (swapped, ta.2 - tb.2, [tb.1, ta.1]),
                    None => continue,
                },
                _ => continue,
            };
            if !lt.rowtime.contains(&cols[0]) || !rt.rowtime.contains(&cols[1]) {
                continue;
            }
            // Strict bounds are kept as non-strict ones: rows are kept a little longer.
            match op {
                BinOp::Gt | BinOp::GtEq => add(cols, Some(c), None),
                BinOp::Lt | BinOp::LtEq => add(cols, None, Some(c)),
                BinOp::Eq => add(cols, Some(c), Some(c)),
                _ => {}
            }
        }
    }
    found.into_iter().next()
}

/// `column (+|-) interval ...` → (side, column index, offset in ms).
fn term(e: &Expr, left: &DFSchema, right: &DFSchema) -> Option<Term> {
    match unalias(e) {
        Expr::Column(c) => {
            if let Ok(i) = left.index_of_column(c) {
                Some((0, i, 0))
            } else {
                right.index_of_column(c).ok().map(|i| (1, i, 0))
            }
        }
        Expr::Cast(c) if matches!(c.field.data_type(), DataType::Timestamp(..)) => {
            term(&c.expr, left, right)
        }
        Expr::BinaryExpr(BinaryExpr {
            left: a,
            op,
            right: b,
        }) => {
            let ms = interval_ms(unalias(b))?;
            let (side, col, off) = term(a, left, right)?;
            match op {
                BinOp::Plus => Some((side, col, off.checked_add(ms)?)),
                BinOp::Minus => Some((side, col, off.checked_sub(ms)?)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A constant interval / duration in ms (intervals with months have no fixed length).
fn interval_ms(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds))
        }
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            if v.nanoseconds % 1_000_000 != 0 {
                return None;
            }
            Some(i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        ScalarValue::DurationSecond(Some(v)) => v.checked_mul(1000),
        ScalarValue::DurationMillisecond(Some(v)) => Some(*v),
        ScalarValue::DurationMicrosecond(Some(v)) if v % 1000 == 0 => Some(v / 1000),
        ScalarValue::DurationNanosecond(Some(v)) if v % 1_000_000 == 0 => Some(v / 1_000_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, RecordBatch};
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::util::display::array_value_to_string;
    use futures::TryStreamExt;

    use crate::stream::changes::materialize;
    use crate::{Session, SessionOptions, StatementResult};

    async fn query(session: &mut Session, sql: &str) -> Vec<String> {
        let mut results = session
            .execute_sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let Some(StatementResult::Rows(r)) = results.pop() else {
            panic!("no rows from {sql}")
        };
        let schema = r.schema.clone();
        let changelog = r.changelog;
        let batches: Vec<RecordBatch> = r
            .stream
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let batch = if changelog {
            materialize(&schema, &batches).unwrap()
        } else {
            concat_batches(&schema, &batches).unwrap()
        };
        let mut rows: Vec<String> = (0..batch.num_rows())
            .map(|i| {
                batch
                    .columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(i) {
                            "null".to_string()
                        } else {
                            array_value_to_string(c, i).unwrap()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        rows.sort();
        rows
    }

    async fn session(dir: &std::path::Path) -> Session {
        let write = |name: &str, text: &str| {
            let d = dir.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("data.csv"), text).unwrap();
            d.display().to_string()
        };
        let l = write(
            "l",
            "k,v,ts\n1,10,2024-01-01 00:00:01\n1,11,2024-01-01 00:00:09\n2,20,2024-01-01 00:00:03\n,30,2024-01-01 00:00:04\n4,40,2024-01-01 00:00:20\n",
        );
        let r = write(
            "r",
            "k,w,ts\n1,5,2024-01-01 00:00:02\n1,12,2024-01-01 00:00:30\n2,25,2024-01-01 00:00:07\n,35,2024-01-01 00:00:05\n3,50,2024-01-01 00:00:06\n2,26,2024-01-01 00:00:04\n",
        );
        let mut s = Session::open(SessionOptions::default()).await.unwrap();
        for (name, path, col) in [("l", l, "v"), ("r", r, "w")] {
            s.execute_sql(&format!(
                "CREATE TABLE {name} (k INT, {col} INT, ts TIMESTAMP(3), \
                 WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector'='filesystem', \
                 'path'='{path}', 'format'='csv', 'csv.header'='true')"
            ))
            .await
            .unwrap();
        }
        s
    }

    #[tokio::test]
    async fn streaming_joins_equal_batch_joins() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path()).await;
        let queries = [
            "SELECT l.k, v, r.k, w FROM l JOIN r ON l.k = r.k",
            "SELECT l.k, v, r.k, w FROM l LEFT JOIN r ON l.k = r.k",
            "SELECT l.k, v, r.k, w FROM l RIGHT JOIN r ON l.k = r.k",
            "SELECT l.k, v, r.k, w FROM l FULL JOIN r ON l.k = r.k",
            "SELECT l.k, v, r.k, w FROM l FULL JOIN r ON l.k = r.k AND v < w",
            "SELECT l.k, v, r.k, w FROM l LEFT JOIN r ON l.k = r.k AND v + 10 > w",
            "SELECT l.k, v, r.k, w FROM l JOIN r ON l.k + 1 = r.k",
            "SELECT l.k, v, r.k, w FROM l, r WHERE v < w",
            "SELECT k, v FROM l WHERE k IN (SELECT k FROM r)",
            "SELECT k, v FROM l WHERE EXISTS (SELECT 1 FROM r WHERE r.k = l.k AND r.w > l.v)",
            "SELECT k, v FROM l WHERE NOT EXISTS (SELECT 1 FROM r WHERE r.k = l.k)",
            "SELECT l.k, v, w, l.ts, r.ts FROM l JOIN r ON l.k = r.k \
             AND l.ts BETWEEN r.ts - INTERVAL '5' SECOND AND r.ts + INTERVAL '5' SECOND",
            "SELECT l.k, v, w FROM l JOIN r ON l.k = r.k \
             AND l.ts >= r.ts AND l.ts < r.ts + INTERVAL '10' SECOND",
            "SELECT a.k, a.window_end, a.v, b.w \
             FROM (SELECT * FROM TABLE(TUMBLE(TABLE l, DESCRIPTOR(ts), INTERVAL '10' SECOND))) a \
             JOIN (SELECT * FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(ts), INTERVAL '10' SECOND))) b \
             ON a.k = b.k AND a.window_start = b.window_start AND a.window_end = b.window_end",
        ];
        for q in queries {
            s.execute_sql("SET 'execution.runtime-mode' = 'batch'")
                .await
                .unwrap();
            let batch = query(&mut s, q).await;
            for parallelism in ["1", "2"] {
                s.execute_sql("SET 'execution.runtime-mode' = 'streaming'")
                    .await
                    .unwrap();
                s.execute_sql(&format!("SET 'parallelism.default' = '{parallelism}'"))
                    .await
                    .unwrap();
                let stream = query(&mut s, q).await;
                assert_eq!(stream, batch, "{q} (parallelism {parallelism})");
            }
            assert!(!batch.is_empty(), "{q}");
        }
    }

    #[tokio::test]
    async fn explain_names_interval_joins() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path()).await;
        s.execute_sql("SET 'execution.runtime-mode' = 'streaming'")
            .await
            .unwrap();
        let plan = query(
            &mut s,
            "EXPLAIN SELECT l.k, v, w FROM l JOIN r ON l.k = r.k \
             AND l.ts BETWEEN r.ts - INTERVAL '5' SECOND AND r.ts + INTERVAL '3' SECOND",
        )
        .await
        .join("\n");
        assert!(plan.contains("IntervalJoin(joinType=[InnerJoin]"), "{plan}");
        assert!(
            plan.contains("leftLowerBound=-5000, leftUpperBound=3000"),
            "{plan}"
        );
        let plan = query(
            &mut s,
            "EXPLAIN SELECT l.k, v, w FROM l LEFT JOIN r ON l.k = r.k",
        )
        .await
        .join("\n");
        assert!(plan.contains("Join(joinType=[LeftOuterJoin]"), "{plan}");
        assert!(plan.contains("changelogMode=[I,UB,UA,D]"), "{plan}");
    }
}
