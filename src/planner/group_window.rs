//! Flink's legacy group windows, `GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)` with
//! `TUMBLE_START(ts, ...)` / `TUMBLE_END` / `TUMBLE_ROWTIME` in the select list (and `HOP`,
//! `SESSION`), rewritten before planning into the window TVF form both engines run:
//!
//! ```sql
//! WITH __group_window_1 AS (SELECT * FROM <from> WHERE <where>)
//! SELECT k, COUNT(*), window_start FROM TABLE(TUMBLE(TABLE __group_window_1, DESCRIPTOR(ts),
//!   INTERVAL '10' SECOND)) AS <alias> GROUP BY k, window_start, window_end
//! ```
//!
//! A `SESSION` group window becomes `SESSION(TABLE .. PARTITION BY <the other group keys>, ..)`,
//! so sessions are per key, as in Flink. The rewrite is textual on the AST (pieces are printed and
//! re-parsed with the Flink dialect), so names keep their quoting.

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Query, Select,
    SetExpr, TableFactor,
};

use crate::error::{Error, Result};
use crate::sql;

const GROUP_WINDOWS: &[&str] = &["TUMBLE", "HOP", "SESSION"];

/// Rewrites every legacy group window in `query` (and its subqueries / CTEs).
///
/// # Errors
/// `NotSupported` for a group window over a join (use a window TVF); `Invalid` for malformed
/// window calls.
pub fn rewrite(query: &mut Query) -> Result<()> {
    let mut counter = 0;
    rewrite_query(query, &mut counter)
}

fn rewrite_query(q: &mut Query, counter: &mut usize) -> Result<()> {
    if let Some(with) = &mut q.with {
        for cte in &mut with.cte_tables {
            rewrite_query(&mut cte.query, counter)?;
        }
    }
    let mut ctes = Vec::new();
    rewrite_set_expr(&mut q.body, &mut ctes, counter)?;
    if !ctes.is_empty() {
        let text = format!(
            "WITH {} SELECT 1",
            ctes.iter()
                .map(|(name, body)| format!("{name} AS ({body})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let parsed = sql::parse_query(&text)?;
        let new = parsed
            .with
            .ok_or_else(|| Error::internal("group window rewrite lost its WITH"))?;
        match &mut q.with {
            Some(with) => {
                // The new CTEs only read tables of the FROM clause: put them first.
                let mut tables = new.cte_tables;
                tables.append(&mut with.cte_tables);
                with.cte_tables = tables;
            }
            None => q.with = Some(new),
        }
    }
    Ok(())
}

fn rewrite_set_expr(
    body: &mut SetExpr,
    ctes: &mut Vec<(String, String)>,
    counter: &mut usize,
) -> Result<()> {
    match body {
        SetExpr::Select(s) => rewrite_select(s, ctes, counter),
        SetExpr::Query(q) => rewrite_query(q, counter),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left, ctes, counter)?;
            rewrite_set_expr(right, ctes, counter)
        }
        _ => Ok(()),
    }
}

fn function_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Function(f) => Some(f.name.to_string().to_ascii_uppercase()),
        _ => None,
    }
}

fn function_args(e: &Expr) -> Vec<Expr> {
    match e {
        Expr::Function(f) => match &f.args {
            FunctionArguments::List(l) => l
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn rewrite_select(
    s: &mut Select,
    ctes: &mut Vec<(String, String)>,
    counter: &mut usize,
) -> Result<()> {
    for from in &mut s.from {
        if let TableFactor::Derived { subquery, .. } = &mut from.relation {
            rewrite_query(subquery, counter)?;
        }
        for join in &mut from.joins {
            if let TableFactor::Derived { subquery, .. } = &mut join.relation {
                rewrite_query(subquery, counter)?;
            }
        }
    }
    let GroupByExpr::Expressions(exprs, _) = &mut s.group_by else {
        return Ok(());
    };
    let Some(pos) = exprs
        .iter()
        .position(|e| function_name(e).is_some_and(|n| GROUP_WINDOWS.contains(&n.as_str())))
    else {
        return Ok(());
    };
    let window = exprs.remove(pos);
    let kind = function_name(&window).unwrap_or_default();
    let args = function_args(&window);
    let expected = if kind == "HOP" { 3 } else { 2 };
    if args.len() != expected {
        return Err(Error::invalid(format!(
            "{kind} group window takes {expected} arguments (time attribute, interval{}), got {}",
            if kind == "HOP" { "s" } else { "" },
            args.len()
        )));
    }
    let time = match &args[0] {
        Expr::Identifier(id) => id.clone(),
        Expr::CompoundIdentifier(ids) => ids
            .last()
            .cloned()
            .ok_or_else(|| Error::invalid("empty column name"))?,
        other => {
            return Err(Error::invalid(format!(
                "{kind} group window: the time attribute must be a column, got `{other}`"
            )));
        }
    };
    if s.from.len() != 1 || !s.from[0].joins.is_empty() {
        return Err(Error::not_supported(format!(
            "{kind}(...) group windows over several tables are not supported yet; join first in a \
             subquery, or use the window TVF TABLE({kind}(TABLE t, DESCRIPTOR(ts), ...))"
        )));
    }
    let alias = match &s.from[0].relation {
        TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } => {
            a.name.to_string()
        }
        TableFactor::Table { name, .. } => name
            .0
            .last()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "t".to_string()),
        _ => "__group_window".to_string(),
    };
    *counter += 1;
    let cte = format!("__group_window_{counter}");
    let mut body = format!("SELECT * FROM {}", s.from[0]);
    if let Some(w) = s.selection.take() {
        body.push_str(&format!(" WHERE {w}"));
    }
    ctes.push((cte.clone(), body));
    let intervals: Vec<String> = args[1..].iter().map(|a| a.to_string()).collect();
    let data = if kind == "SESSION" {
        let keys: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
        if keys.is_empty() {
            format!("TABLE {cte}")
        } else {
            for e in exprs.iter() {
                if !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                    return Err(Error::not_supported(format!(
                        "SESSION group window with the non-column key `{e}` is not supported yet"
                    )));
                }
            }
            let plain: Vec<String> = exprs
                .iter()
                .map(|e| match e {
                    Expr::CompoundIdentifier(ids) => {
                        ids.last().map(|i| i.to_string()).unwrap_or_default()
                    }
                    other => other.to_string(),
                })
                .collect();
            format!("TABLE {cte} PARTITION BY {}", plain.join(", "))
        }
    } else {
        format!("TABLE {cte}")
    };
    let tvf = format!(
        "SELECT * FROM TABLE({kind}({data}, DESCRIPTOR({time}), {})) AS {alias}",
        intervals.join(", ")
    );
    let parsed = sql::parse_query(&tvf)?;
    let SetExpr::Select(parsed) = *parsed.body else {
        return Err(Error::internal("group window rewrite: unexpected parse"));
    };
    s.from = parsed.from;
    exprs.push(Expr::Identifier(ast::Ident::new("window_start")));
    exprs.push(Expr::Identifier(ast::Ident::new("window_end")));
    // TUMBLE_START(ts, ...) and friends become the window columns.
    let replace = |e: &mut Expr| {
        if let Some(name) = function_name(e)
            && let Some((prefix, suffix)) = name.split_once('_')
            && GROUP_WINDOWS.contains(&prefix)
        {
            let column = match suffix {
                "START" => Some("window_start"),
                "END" => Some("window_end"),
                "ROWTIME" | "PROCTIME" => Some("window_time"),
                _ => None,
            };
            if let Some(c) = column {
                *e = Expr::Identifier(ast::Ident::new(c));
            }
        }
    };
    for item in &mut s.projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) => {
                let before = e.clone();
                visit(e, &replace);
                if *e != before {
                    // Keep the column name the user saw (e.g. `TUMBLE_START(ts, ...)`).
                    *item = ast::SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: ast::Ident::new(before.to_string()),
                    };
                }
            }
            ast::SelectItem::ExprWithAlias { expr, .. } => visit(expr, &replace),
            _ => {}
        }
    }
    if let Some(h) = &mut s.having {
        visit(h, &replace);
    }
    Ok(())
}

fn visit(e: &mut Expr, f: &impl Fn(&mut Expr)) {
    let _ = ast::visit_expressions_mut(e, |x| {
        f(x);
        std::ops::ControlFlow::<()>::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_tumble_and_session() {
        let mut q = sql::parse_query(
            "SELECT B.bidder, count(*), TUMBLE_START(B.ts, INTERVAL '10' SECOND) AS s FROM bid B \
             WHERE B.price > 1 GROUP BY B.bidder, TUMBLE(B.ts, INTERVAL '10' SECOND)",
        )
        .unwrap();
        rewrite(&mut q).unwrap();
        let text = q.to_string();
        assert!(
            text.contains("WITH __group_window_1 AS (SELECT * FROM bid B WHERE B.price > 1)"),
            "{text}"
        );
        assert!(
            text.contains(
                "TUMBLE(TABLE(__group_window_1), DESCRIPTOR(ts), INTERVAL '10' SECOND)) AS B"
            ),
            "{text}"
        );
        assert!(
            text.contains("GROUP BY B.bidder, window_start, window_end"),
            "{text}"
        );
        assert!(text.contains("window_start AS s"), "{text}");

        let mut q = sql::parse_query(
            "SELECT k, SESSION_END(ts, INTERVAL '5' SECOND) FROM t GROUP BY k, SESSION(ts, INTERVAL '5' SECOND)",
        )
        .unwrap();
        rewrite(&mut q).unwrap();
        let text = q.to_string();
        assert!(text.contains("PARTITION_BY(k)"), "{text}");
        assert!(text.contains("window_end AS"), "{text}");

        let mut q = sql::parse_query(
            "SELECT count(*) FROM a JOIN b ON a.x = b.x GROUP BY TUMBLE(a.ts, INTERVAL '1' SECOND)",
        )
        .unwrap();
        assert!(rewrite(&mut q).is_err());
    }
}
