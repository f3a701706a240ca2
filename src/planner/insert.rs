//! Binding `INSERT INTO|OVERWRITE t [PARTITION (..)] [(cols)] query` as Flink does: the query's
//! columns are matched to the table's physical columns by position (or to the named columns),
//! static partition values fill their columns, omitted columns become NULL, and every value is
//! cast to its column's type, but only where Flink would cast implicitly: a string into an INT
//! column is a type error at planning time, not a failure halfway through the write.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue, TableReference};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    DmlStatement, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, WriteOp, cast, lit,
};
use datafusion::sql::planner::{PlannerContext, SqlToRel};

use super::context::PlanningContext;
use super::plan_query;
use crate::catalog::registry::ObjectPath;
use crate::error::{Error, Result};
use crate::sql::Insert;

/// Plans an INSERT into a DML plan whose execution returns the number of rows written.
pub fn plan_insert(ctx: &PlanningContext, insert: &Insert) -> Result<(ObjectPath, LogicalPlan)> {
    let parts: Vec<String> = insert
        .table
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect();
    let path = ctx
        .snapshot
        .qualify(&parts)
        .ok_or_else(|| Error::invalid(format!("`{}` is not a valid table name", insert.table)))?;
    let target = ctx.source(&path)?;
    // A hinted target's path carries its options (see `resolve`); messages and the plan name the
    // table itself.
    let shown = super::resolve::display_path(&path);
    if target.get_logical_plan().is_some() && ctx.snapshot.get(&path).is_some_and(|t| t.is_view()) {
        return Err(Error::invalid(format!(
            "{shown} is a view; INSERT needs a table"
        )));
    }
    let table_schema = target.schema();
    let source = plan_query(ctx, &insert.source)?;

    // Static partition values.
    let planner = SqlToRel::new(ctx);
    let mut fixed: Vec<(usize, Expr)> = Vec::new();
    for (name, value) in &insert.partition {
        let index = table_schema.index_of(name).map_err(|_| {
            Error::not_found(format!(
                "PARTITION ({name} = ...): {shown} has no column `{name}`"
            ))
        })?;
        let expr = planner.sql_to_expr(
            value.clone(),
            &DFSchema::empty(),
            &mut PlannerContext::new(),
        )?;
        fixed.push((index, expr));
    }

    // The columns the query fills, in order.
    let targets: Vec<usize> = if insert.columns.is_empty() {
        (0..table_schema.fields().len())
            .filter(|i| !fixed.iter().any(|(f, _)| f == i))
            .collect()
    } else {
        insert
            .columns
            .iter()
            .map(|c| {
                let i = table_schema.index_of(c).map_err(|_| {
                    Error::not_found(format!(
                        "INSERT INTO {shown}: no column `{c}`; columns: {}",
                        super::column_names(table_schema.fields())
                    ))
                })?;
                if fixed.iter().any(|(f, _)| *f == i) {
                    return Err(Error::invalid(format!(
                        "column `{c}` is both in PARTITION and in the column list"
                    )));
                }
                Ok(i)
            })
            .collect::<Result<_>>()?
    };
    let source_columns = source.schema().columns();
    if source_columns.len() != targets.len() {
        let names: Vec<&str> = targets
            .iter()
            .map(|&i| table_schema.field(i).name().as_str())
            .collect();
        return Err(Error::invalid(format!(
            "INSERT INTO {shown}: the query returns {} columns, but {} are expected ({})",
            source_columns.len(),
            targets.len(),
            names.join(", ")
        ))
        .with_span(insert.span));
    }

    let mut exprs = Vec::with_capacity(table_schema.fields().len());
    for (i, field) in table_schema.fields().iter().enumerate() {
        let value = if let Some(pos) = targets.iter().position(|&t| t == i) {
            let column = Expr::Column(source_columns[pos].clone());
            let from = column.to_field(source.schema())?.1.data_type().clone();
            if !assignable(&from, field.data_type()) {
                return Err(Error::invalid(format!(
                    "incompatible types for column `{}` of {shown}: the query gives {} (column {} `{}`), the table expects {}",
                    field.name(),
                    crate::types::SqlType::from_arrow(&from).map(|t| t.to_string()).unwrap_or_else(|_| from.to_string()),
                    pos + 1,
                    source_columns[pos].name,
                    crate::types::SqlType::from_arrow(field.data_type()).map(|t| t.to_string()).unwrap_or_else(|_| field.data_type().to_string()),
                ))
                .with_span(insert.span));
            }
            column
        } else if let Some((_, e)) = fixed.iter().find(|(f, _)| *f == i) {
            e.clone()
        } else {
            if !field.is_nullable() {
                return Err(Error::invalid(format!(
                    "INSERT INTO {shown}: column `{}` is NOT NULL and needs a value",
                    field.name()
                )));
            }
            lit(ScalarValue::Null)
        };
        exprs.push(cast(value, field.data_type().clone()).alias(field.name()));
    }
    let input = LogicalPlanBuilder::from(source).project(exprs)?.build()?;
    let op = if insert.overwrite {
        InsertOp::Overwrite
    } else {
        InsertOp::Append
    };
    let table_ref = TableReference::full(shown.catalog, shown.database, shown.name);
    let plan = LogicalPlan::Dml(DmlStatement::new(
        table_ref,
        target,
        WriteOp::Insert(op),
        Arc::new(input),
    ));
    Ok((path, plan))
}

/// Whether Flink would write a value of type `from` into a column of type `to` without an
/// explicit CAST.
pub fn assignable(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to || matches!(from, Null) {
        return true;
    }
    let stringy = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let binary = |t: &DataType| matches!(t, Binary | LargeBinary | BinaryView | FixedSizeBinary(_));
    let temporal = |t: &DataType| matches!(t, Timestamp(_, _) | Date32 | Date64);
    match (from, to) {
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (a, b) if stringy(a) && stringy(b) => true,
        (a, b) if binary(a) && binary(b) => true,
        (a, b) if temporal(a) && temporal(b) => true,
        (Time32(_) | Time64(_), Time32(_) | Time64(_)) => true,
        (Dictionary(_, v), b) => assignable(v, b),
        (List(a) | LargeList(a) | FixedSizeList(a, _), List(b) | LargeList(b)) => {
            assignable(a.data_type(), b.data_type())
        }
        (Struct(a), Struct(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| assignable(x.data_type(), y.data_type()))
        }
        (Map(a, _), Map(b, _)) => assignable(a.data_type(), b.data_type()),
        (Interval(_) | Duration(_), Interval(_) | Duration(_)) => true,
        _ => false,
    }
}
