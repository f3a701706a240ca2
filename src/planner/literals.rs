//! Flink's meaning of two literal forms, rewritten in the query's AST before DataFusion plans it
//! (called from [`super::plan_query`] and for views):
//!
//! - An approximate numeric literal (`1e300`, `2.5E-3`) is a `DOUBLE` in Flink. The session
//!   parses plain decimals as exact `DECIMAL`s (`0.908` is `DECIMAL(3, 3)`, as in Flink), and
//!   DataFusion would read the exponent form as a decimal too, failing for exponents past
//!   DECIMAL's range. It becomes `CAST('<literal>' AS DOUBLE)`.
//! - `GROUP BY 2` groups by the constant 2 in Flink (Calcite's default conformance has no
//!   GROUP BY ordinals); DataFusion reads it as "the second SELECT item", which changes the
//!   answer or fails. An integer literal among the GROUP BY expressions becomes
//!   `CAST(2 AS INT)`, a constant DataFusion does not take for a position.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, CastKind, DataType, ExactNumberInfo, Expr, GroupByExpr, SetExpr, Value, ValueWithSpan,
    VisitMut, VisitorMut,
};

/// Rewrites the literal forms above everywhere in `query` (subqueries included).
pub fn rewrite(query: &mut ast::Query) {
    let _ = ast::visit_expressions_mut(query, |expr| {
        if let Expr::Value(ValueWithSpan {
            value: Value::Number(text, _),
            span,
        }) = expr
            && text.contains(['e', 'E'])
        {
            *expr = cast(
                Expr::Value(ValueWithSpan {
                    value: Value::SingleQuotedString(text.clone()),
                    span: *span,
                }),
                DataType::Double(ExactNumberInfo::None),
            );
        }
        ControlFlow::<()>::Continue(())
    });
    let _ = query.visit(&mut GroupByConstants);
}

fn cast(expr: Expr, data_type: DataType) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(expr),
        data_type,
        array: false,
        format: None,
    }
}

/// Wraps integer literals of every `GROUP BY` in a cast (see the module docs).
struct GroupByConstants;

impl VisitorMut for GroupByConstants {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        group_by_constants(&mut query.body);
        ControlFlow::Continue(())
    }
}

/// `2`, `-2`, `(2)`: what DataFusion would fold to an integer and take for a position.
fn integer_literal(e: &Expr) -> bool {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::Number(text, _),
            ..
        }) => text.bytes().all(|b| b.is_ascii_digit()),
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) => integer_literal(expr),
        _ => false,
    }
}

fn group_by_constants(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
                for e in exprs {
                    if integer_literal(e) {
                        *e = cast(e.clone(), DataType::Int(None));
                    }
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            group_by_constants(left);
            group_by_constants(right);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_query;

    fn rewritten(sql: &str) -> String {
        let mut q = parse_query(sql).unwrap();
        rewrite(&mut q);
        q.to_string()
    }

    #[test]
    fn exponent_literals_are_doubles_and_group_by_integers_are_constants() {
        assert_eq!(
            rewritten("SELECT 1e300, 2.5E-3, 0.5, 7 FROM t"),
            "SELECT CAST('1e300' AS DOUBLE), CAST('2.5E-3' AS DOUBLE), 0.5, 7 FROM t"
        );
        assert_eq!(
            rewritten("SELECT a, 2, COUNT(*) FROM t GROUP BY a, 2"),
            "SELECT a, 2, COUNT(*) FROM t GROUP BY a, CAST(2 AS INT)"
        );
        assert_eq!(
            rewritten(
                "SELECT * FROM (SELECT 1 FROM t GROUP BY 1) UNION ALL SELECT 2 FROM u GROUP BY 3"
            ),
            "SELECT * FROM (SELECT 1 FROM t GROUP BY CAST(1 AS INT)) UNION ALL SELECT 2 FROM u \
             GROUP BY CAST(3 AS INT)"
        );
        assert_eq!(
            rewritten("SELECT a FROM t GROUP BY a, -1, (4), 1.5, 'x'"),
            "SELECT a FROM t GROUP BY a, CAST(-1 AS INT), CAST((4) AS INT), 1.5, 'x'"
        );
    }
}
