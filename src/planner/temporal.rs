//! `FOR SYSTEM_TIME AS OF` (temporal joins). DataFusion's SQL planner ignores table versions, so
//! the clause is taken out of the AST before planning ([`take`]) and applied to the plan after
//! ([`apply`]):
//!
//! - `AS OF` a processing-time attribute (`PROCTIME()`): a lookup join. Each row joins the lookup
//!   table as it is when the row is processed; for a table that does not change while the query
//!   runs (files), that is the plain join the planner builds, in batch and in streaming mode.
//! - `AS OF` an event-time attribute of the left input, against a *versioned table* (a table with
//!   a `PRIMARY KEY` and a `WATERMARK`): an event-time temporal join. The plain join DataFusion
//!   planned (against every version) is replaced by a [`TemporalJoinNode`] in streaming plans, or
//!   by its batch form ([`super::temporal_join::batch_plan`]). The join must be an inner or
//!   `LEFT JOIN` whose condition has an equality on every primary key column of the versioned
//!   table; the rest of the condition is a residual filter on the version found.
//!   A versioned *view* (Flink's deduplication form) is not supported yet, and said so.

use std::ops::ControlFlow;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, JoinType};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, Extension, Join, LogicalPlan, Operator, cast,
};
use datafusion::sql::sqlparser::ast::{
    self, Spanned, TableFactor, TableVersion, VisitMut, VisitorMut,
};

use super::PlanningContext;
use super::temporal_join::{TemporalJoinNode, batch_plan};
use crate::catalog::CatalogTable;
use crate::error::{Error, Result, Span};

/// One `FOR SYSTEM_TIME AS OF` taken out of a query.
#[derive(Debug, Clone)]
pub struct AsOf {
    /// The table's name as written.
    pub table: Vec<String>,
    /// The name its columns are qualified with (its alias, else its own name).
    pub relation: String,
    pub expr: ast::Expr,
    pub span: Option<Span>,
}

/// Removes every `FOR SYSTEM_TIME AS OF <expr>` from `query`; returns what was removed.
pub fn take(query: &mut ast::Query) -> Vec<AsOf> {
    struct Taker(Vec<AsOf>);
    impl VisitorMut for Taker {
        type Break = ();
        fn pre_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                alias,
                version,
                ..
            } = tf
                && let Some(TableVersion::ForSystemTimeAsOf(e)) = version.take()
            {
                let table: Vec<String> = name
                    .0
                    .iter()
                    .map(|p| match p.as_ident() {
                        Some(i) => i.value.clone(),
                        None => p.to_string(),
                    })
                    .collect();
                let relation = match alias {
                    Some(a) => a.name.value.clone(),
                    None => table.last().cloned().unwrap_or_default(),
                };
                let span = Span::from_sqlparser(e.span());
                self.0.push(AsOf {
                    table,
                    relation,
                    expr: e,
                    span,
                });
            }
            ControlFlow::Continue(())
        }
    }
    let mut taker = Taker(Vec::new());
    let _ = query.visit(&mut taker);
    taker.0
}

/// The SQL text of `query` that parses back to the same query. sqlparser prints a table's
/// `FOR SYSTEM_TIME AS OF` after its alias but parses it only before; stored view text must
/// round-trip, so the versioned tables are printed here in the parseable order. A table reference
/// with an `OPTIONS` hint (an encoded name, see [`crate::sql::hints`]) is printed as its name
/// followed by the hint.
pub fn query_text(query: &ast::Query) -> String {
    struct Marker(Vec<(String, String)>);
    impl VisitorMut for Marker {
        type Break = ();
        fn pre_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                alias,
                version,
                ..
            } = tf
            {
                let hinted = hinted_name_text(name);
                let v = version.take();
                if hinted.is_none() && v.is_none() {
                    return ControlFlow::Continue(());
                }
                let name_text = hinted.unwrap_or_else(|| name.to_string());
                let placeholder = format!("__weir_table_version_{}", self.0.len());
                let text = match (v, alias.take()) {
                    (Some(v), Some(a)) => format!("{name_text} {v} {a}"),
                    (Some(v), None) => format!("{name_text} {v}"),
                    (None, Some(a)) => format!("{name_text} {a}"),
                    (None, None) => name_text,
                };
                *name = ast::ObjectName::from(vec![ast::Ident::new(placeholder.clone())]);
                self.0.push((placeholder, text));
            }
            ControlFlow::Continue(())
        }
    }
    /// `name /*+ OPTIONS(...) */` for a hinted name.
    fn hinted_name_text(name: &ast::ObjectName) -> Option<String> {
        let mut plain = name.clone();
        let last = plain.0.last_mut()?.as_ident()?.clone();
        let (table, options) = crate::sql::hints::decode(&last.value)?;
        let hint = crate::sql::hints::hint_text(&options);
        if let Some(ast::ObjectNamePart::Identifier(id)) = plain.0.last_mut() {
            id.value = table.to_string();
        }
        Some(format!("{plain} {hint}"))
    }
    let mut query = query.clone();
    let mut marker = Marker(Vec::new());
    let _ = query.visit(&mut marker);
    let mut text = query.to_string();
    // Replace the longest placeholders first (`_10` before `_1`).
    for (placeholder, original) in marker.0.iter().rev() {
        text = text.replace(placeholder, original);
    }
    text
}

/// Applies the taken `AS OF` clauses to `plan` (see the module doc).
///
/// # Errors
/// `Invalid` for an `AS OF` that is not a column of the join's left input or a table that is not
/// versioned (no primary key or no watermark) or a join without equality on its primary key;
/// `NotSupported` for versioned views and for join types other than inner and `LEFT`.
pub fn apply(ctx: &PlanningContext, plan: LogicalPlan, taken: &[AsOf]) -> Result<LogicalPlan> {
    if taken.is_empty() {
        return Ok(plan);
    }
    let proctime = proctime_columns(&plan);
    let mut plan = plan;
    for as_of in taken {
        let column = match &as_of.expr {
            ast::Expr::Identifier(i) => Column::from_name(i.value.clone()),
            ast::Expr::CompoundIdentifier(ids) if ids.len() == 2 => {
                Column::new(Some(ids[0].value.clone()), ids[1].value.clone())
            }
            ast::Expr::CompoundIdentifier(ids) if !ids.is_empty() => {
                Column::from_name(ids[ids.len() - 1].value.clone())
            }
            other => {
                return Err(at(
                    Error::not_supported(format!(
                        "FOR SYSTEM_TIME AS OF {other}: only a time attribute column of the \
                         joined table is supported"
                    )),
                    as_of,
                ));
            }
        };
        if proctime.contains(&column.name) {
            continue;
        }
        let mut found = false;
        let mut failure: Option<Error> = None;
        plan = plan
            .transform_up(|node| {
                if found || failure.is_some() {
                    return Ok(Transformed::no(node));
                }
                let LogicalPlan::Join(join) = &node else {
                    return Ok(Transformed::no(node));
                };
                if !join
                    .right
                    .schema()
                    .iter()
                    .any(|(q, _)| q.is_some_and(|q| q.table() == as_of.relation))
                {
                    return Ok(Transformed::no(node));
                }
                found = true;
                match temporal_join(ctx, join, &column, as_of) {
                    Ok(p) => Ok(Transformed::yes(p)),
                    Err(e) => {
                        failure = Some(e);
                        Ok(Transformed::no(node))
                    }
                }
            })?
            .data;
        if let Some(e) = failure {
            return Err(at(e, as_of));
        }
        if !found {
            return Err(at(
                Error::invalid(format!(
                    "FOR SYSTEM_TIME AS OF {}: `{}` must be the right side of a JOIN",
                    as_of.expr,
                    as_of.table.join(".")
                )),
                as_of,
            ));
        }
    }
    Ok(plan)
}

fn at(e: Error, as_of: &AsOf) -> Error {
    match as_of.span {
        Some(span) if e.span.is_none() => e.with_span(span),
        _ => e,
    }
}

/// Columns defined as `PROCTIME()` anywhere in the plan.
fn proctime_columns(plan: &LogicalPlan) -> Vec<String> {
    let mut proctime: Vec<String> = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::Projection(p) = node {
            for e in &p.expr {
                if let Expr::Alias(a) = e
                    && let Expr::ScalarFunction(f) = a.expr.as_ref()
                    && f.name().eq_ignore_ascii_case("proctime")
                {
                    proctime.push(a.name.clone());
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    proctime
}

/// The event-time temporal join replacing `join` (its right side is the versioned table).
fn temporal_join(
    ctx: &PlanningContext,
    join: &Join,
    time: &Column,
    as_of: &AsOf,
) -> Result<LogicalPlan> {
    let name = as_of
        .table
        .iter()
        .map(|p| super::resolve::display_name(p))
        .collect::<Vec<_>>()
        .join(".");
    let path = ctx
        .snapshot
        .qualify(&as_of.table)
        .ok_or_else(|| Error::invalid(format!("`{name}` is not a valid table name")))?;
    let def = match ctx.snapshot.get(&path) {
        Some(CatalogTable::Table(def)) => def,
        Some(CatalogTable::View(_)) => {
            return Err(Error::not_supported(format!(
                "FOR SYSTEM_TIME AS OF {}: `{name}` is a view; temporal joins against versioned \
                 views (deduplication) are not supported yet, only against versioned tables",
                as_of.expr
            )));
        }
        None => {
            return Err(Error::not_found(format!(
                "table {} does not exist",
                super::resolve::display_path(&path)
            )));
        }
    };
    let (Some(pk), Some(wm)) = (&def.primary_key, &def.watermark) else {
        return Err(Error::invalid(format!(
            "FOR SYSTEM_TIME AS OF {}: `{name}` is not a versioned table; an event-time temporal \
             join needs a PRIMARY KEY and a WATERMARK on it (or AS OF a PROCTIME() attribute for \
             a lookup join)",
            as_of.expr
        )));
    };
    let outer = match join.join_type {
        JoinType::Inner => false,
        JoinType::Left => true,
        other => {
            return Err(Error::not_supported(format!(
                "{other} JOIN with FOR SYSTEM_TIME AS OF is not supported; use JOIN or LEFT JOIN"
            )));
        }
    };
    let left_df = join.left.schema();
    let right_df = join.right.schema();
    let (lq, lf) = left_df.qualified_field_from_column(time).map_err(|_| {
        Error::invalid(format!(
            "FOR SYSTEM_TIME AS OF {}: not a column of the table joined to `{name}`",
            as_of.expr
        ))
    })?;
    if !matches!(
        lf.data_type(),
        datafusion::arrow::datatypes::DataType::Timestamp(..)
    ) {
        return Err(Error::invalid(format!(
            "FOR SYSTEM_TIME AS OF {}: must be a TIMESTAMP time attribute, but is {}",
            as_of.expr,
            lf.data_type()
        )));
    }
    let left_time = Expr::Column(Column::new(lq.cloned(), lf.name()));
    let right_column = |n: &str| -> Result<Column> {
        let (q, f) = right_df
            .iter()
            .find(|(_, f)| f.name() == n)
            .ok_or_else(|| Error::internal(format!("column `{n}` of `{name}` is missing")))?;
        Ok(Column::new(q.cloned(), f.name()))
    };
    let right_time = Expr::Column(right_column(&wm.column)?);
    let pk_columns: Vec<Column> = pk.iter().map(|c| right_column(c)).collect::<Result<_>>()?;

    // The condition's conjuncts: `left expr = right pk column` become keys, the rest a filter.
    let mut conjuncts: Vec<Expr> = join
        .on
        .iter()
        .map(|(a, b)| a.clone().eq(b.clone()))
        .collect();
    if let Some(f) = &join.filter {
        conjuncts.extend(split_conjunction(f).into_iter().cloned());
    }
    let mut keys: Vec<Option<Expr>> = vec![None; pk_columns.len()];
    let mut residual: Vec<Expr> = Vec::new();
    for c in conjuncts {
        if let Some((k, l)) = key_equality(&c, &pk_columns, left_df, right_df)
            && keys[k].is_none()
        {
            keys[k] = Some(l);
            continue;
        }
        residual.push(c);
    }
    let mut left_keys = Vec::with_capacity(keys.len());
    let mut right_keys = Vec::with_capacity(keys.len());
    for (k, pk_col) in keys.into_iter().zip(&pk_columns) {
        let Some(l) = k else {
            return Err(Error::invalid(format!(
                "FOR SYSTEM_TIME AS OF {}: the join condition must have an equality on the \
                 primary key column `{}` of the versioned table `{name}`",
                as_of.expr, pk_col.name
            )));
        };
        let r = Expr::Column(pk_col.clone());
        let (lt, rt) = (l.get_type(left_df)?, r.get_type(right_df)?);
        if lt == rt {
            left_keys.push(l);
            right_keys.push(r);
        } else {
            let common = comparison_coercion(&lt, &rt).ok_or_else(|| {
                Error::invalid(format!(
                    "cannot compare {l} ({lt}) with {r} ({rt}) in the temporal join condition"
                ))
            })?;
            left_keys.push(cast(l, common.clone()));
            right_keys.push(cast(r, common));
        }
    }
    let filter = residual.into_iter().reduce(Expr::and);
    let node = TemporalJoinNode::try_new(
        (*join.left).clone(),
        (*join.right).clone(),
        left_keys,
        right_keys,
        left_time,
        right_time,
        filter,
        outer,
    )?;
    if ctx.streaming {
        Ok(LogicalPlan::Extension(Extension {
            node: std::sync::Arc::new(node),
        }))
    } else {
        batch_plan(&node)
    }
}

/// `left expr = pk column` (either way round) → (which pk column, the left expression).
fn key_equality(
    e: &Expr,
    pk: &[Column],
    left: &DFSchema,
    right: &DFSchema,
) -> Option<(usize, Expr)> {
    let Expr::BinaryExpr(BinaryExpr {
        left: a,
        op: Operator::Eq,
        right: b,
    }) = e
    else {
        return None;
    };
    for (x, y) in [(a, b), (b, a)] {
        let Expr::Column(c) = y.as_ref() else {
            continue;
        };
        let Ok((q, f)) = right.qualified_field_from_column(c) else {
            continue;
        };
        let Some(k) = pk
            .iter()
            .position(|p| p.name == *f.name() && p.relation.as_ref() == q)
        else {
            continue;
        };
        let refs = x.column_refs();
        if !refs.is_empty() && refs.iter().all(|c| left.has_column(c)) {
            return Some((k, x.as_ref().clone()));
        }
    }
    None
}
