//! Output names of nested-field references, as in Flink: `SELECT person.id FROM datagen` (a field
//! of the ROW column `person`) yields a column named `id`. DataFusion would name it after the
//! whole access path, so before planning an unaliased select item `a.b[.c]` whose first part is
//! not a relation of the `FROM` clause gets the alias of its last part.
//!
//! Also here: a `WHERE` that filters on a window-function alias of its own select list
//! (`SELECT *, ROW_NUMBER() OVER (..) AS rn FROM t WHERE rn <= 1`, as Nexmark q6 writes it) is
//! planned as a filter over that select: `SELECT * FROM (SELECT *, ROW_NUMBER() .. AS rn FROM t)
//! WHERE rn <= 1`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, Query, Select, SelectItem, SetExpr, TableFactor,
};

use crate::sql;

/// Applies the naming to every `SELECT` of `query` (subqueries and CTEs included).
pub fn name_nested_fields(query: &mut Query) {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            name_nested_fields(&mut cte.query);
        }
    }
    set_expr(&mut query.body);
}

fn set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            if let Some(wrapped) = filter_on_window_alias(select) {
                *body = wrapped;
                return set_expr(body);
            }
            let mut relations: Vec<String> = Vec::new();
            for from in &mut select.from {
                let factors = std::iter::once(&mut from.relation)
                    .chain(from.joins.iter_mut().map(|j| &mut j.relation));
                for factor in factors {
                    match factor {
                        TableFactor::Table { name, alias, .. } => {
                            if let Some(a) = alias {
                                relations.push(a.name.value.clone());
                            }
                            if let Some(last) = name.0.last() {
                                relations.push(last.to_string().trim_matches('`').to_string());
                            }
                        }
                        TableFactor::Derived {
                            subquery, alias, ..
                        } => {
                            name_nested_fields(subquery);
                            if let Some(a) = alias {
                                relations.push(a.name.value.clone());
                            }
                        }
                        TableFactor::TableFunction { alias: Some(a), .. }
                        | TableFactor::Function { alias: Some(a), .. } => {
                            relations.push(a.name.value.clone());
                        }
                        _ => {}
                    }
                }
            }
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(Expr::CompoundIdentifier(ids)) = item {
                    let qualified_column = ids.len() == 2 && relations.contains(&ids[0].value);
                    if ids.len() >= 2
                        && !qualified_column
                        && let Some(last) = ids.last().cloned()
                    {
                        *item = SelectItem::ExprWithAlias {
                            expr: Expr::CompoundIdentifier(ids.clone()),
                            alias: last,
                        };
                    }
                }
            }
        }
        SetExpr::Query(q) => name_nested_fields(q),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr(left);
            set_expr(right);
        }
        _ => {}
    }
}

/// `SELECT .., f() OVER (..) AS a .. WHERE <uses a>` as a filter over the select (see the module
/// docs); `None` when the select is not of that shape.
fn filter_on_window_alias(select: &mut Select) -> Option<SetExpr> {
    let selection = select.selection.as_ref()?;
    if !matches!(&select.group_by, ast::GroupByExpr::Expressions(e, _) if e.is_empty())
        || select.having.is_some()
    {
        return None;
    }
    let window_aliases: Vec<String> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias {
                expr: Expr::Function(f),
                alias,
            } if f.over.is_some() => Some(alias.value.clone()),
            _ => None,
        })
        .collect();
    if window_aliases.is_empty() {
        return None;
    }
    let mut uses = false;
    let _ = ast::visit_expressions(selection, |e| {
        if let Expr::Identifier(i) = e
            && window_aliases.contains(&i.value)
        {
            uses = true;
        }
        ControlFlow::<()>::Continue(())
    });
    if !uses {
        return None;
    }
    let filter = select.selection.take()?;
    let text = format!("SELECT * FROM ({select}) AS __window_filter WHERE {filter}");
    match sql::parse_query(&text) {
        Ok(q) => Some(*q.body),
        Err(_) => {
            select.selection = Some(filter);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql;

    #[test]
    fn nested_fields_are_named_by_their_last_part() {
        let mut q = sql::parse_query(
            "SELECT person.id, d.event_type, d.person.name, `dateTime` FROM datagen AS d",
        )
        .unwrap();
        name_nested_fields(&mut q);
        assert_eq!(
            q.to_string(),
            "SELECT person.id AS id, d.event_type, d.person.name AS name, `dateTime` FROM datagen AS d"
        );
        let mut q = sql::parse_query(
            "SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY v) AS rn FROM t WHERE rn <= 1",
        )
        .unwrap();
        name_nested_fields(&mut q);
        assert_eq!(
            q.to_string(),
            "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY v) AS rn FROM t) \
             AS __window_filter WHERE rn <= 1"
        );
    }
}
