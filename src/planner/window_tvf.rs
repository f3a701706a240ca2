//! Window table-valued functions in the logical plan.
//!
//! `FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND))` (and `HOP`, `CUMULATE`,
//! `SESSION`) is planned by [`WindowTvfPlanner`], a DataFusion `RelationPlanner`, into a
//! [`WindowTvfNode`]: the input relation plus `window_start`, `window_end` and `window_time`
//! columns. The batch engine lowers it to `WindowAssignExec`; the streaming engine will read the
//! same node to build window operators.
//!
//! Arguments are positional or named (`DATA =>`, `TIMECOL =>`, `SIZE =>`, `SLIDE =>`,
//! `STEP =>`, `GAP =>`, `OFFSET =>`), as in Flink. The argument `TABLE t` arrives from the
//! dialect as a function call `TABLE(t [, PARTITION_BY(k, ...)])` (see `sql::dialect`).

use std::fmt;
use std::sync::Arc;

use datafusion::common::{Column, DFSchema, DFSchemaRef, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::sql::sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, FunctionArgOperator, FunctionArguments, ObjectName,
    TableFactor,
};

use crate::error::Error;
use crate::functions::window::{WindowKind, check_time_type, window_fields};

/// A window TVF applied to an input relation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowTvfNode {
    pub input: LogicalPlan,
    pub kind: WindowKind,
    /// The time attribute (`DESCRIPTOR(col)`).
    pub time_column: Column,
    /// `SESSION(TABLE t PARTITION BY k, ...)` keys; empty for the other windows.
    pub partition_keys: Vec<Column>,
    schema: DFSchemaRef,
}

impl PartialOrd for WindowTvfNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (
            &self.input,
            &self.kind,
            &self.time_column,
            &self.partition_keys,
        )
            .partial_cmp(&(
                &other.input,
                &other.kind,
                &other.time_column,
                &other.partition_keys,
            ))
    }
}

impl WindowTvfNode {
    /// Checks the time column and builds the output schema.
    pub fn try_new(
        input: LogicalPlan,
        kind: WindowKind,
        time_column: Column,
        partition_keys: Vec<Column>,
    ) -> crate::Result<Self> {
        kind.validate()?;
        let input_schema = input.schema();
        let (_, time_field) = input_schema
            .qualified_field_from_column(&time_column)
            .map_err(|_| {
                Error::not_found(format!(
                    "{} window: time column `{}` not found; columns: {}",
                    kind.name(),
                    time_column.name,
                    super::column_names(input_schema.fields())
                ))
            })?;
        check_time_type(&time_column.name, time_field.data_type())?;
        for key in &partition_keys {
            input_schema.qualified_field_from_column(key).map_err(|_| {
                Error::not_found(format!(
                    "SESSION window: partition column `{}` not found",
                    key.name
                ))
            })?;
        }
        let extra = DFSchema::from_unqualified_fields(
            window_fields(time_field.data_type()).into(),
            Default::default(),
        )?;
        let schema = Arc::new(input_schema.join(&extra).map_err(|e| {
            Error::from(e).context(format!(
                "{} window: the input already has a window column",
                kind.name()
            ))
        })?);
        Ok(Self {
            input,
            kind,
            time_column,
            partition_keys,
            schema,
        })
    }

    /// The index of the time column in the input schema.
    pub fn time_index(&self) -> crate::Result<usize> {
        Ok(self.input.schema().index_of_column(&self.time_column)?)
    }

    /// The indices of the partition key columns in the input schema.
    pub fn key_indices(&self) -> crate::Result<Vec<usize>> {
        self.partition_keys
            .iter()
            .map(|k| Ok(self.input.schema().index_of_column(k)?))
            .collect()
    }
}

impl UserDefinedLogicalNodeCore for WindowTvfNode {
    fn name(&self) -> &str {
        "WindowTvf"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WindowTvf: {}", describe(&self.kind))?;
        write!(f, ", time_col={}", self.time_column.name)?;
        if !self.partition_keys.is_empty() {
            let keys: Vec<_> = self
                .partition_keys
                .iter()
                .map(|k| k.name.as_str())
                .collect();
            write!(f, ", partition_by=[{}]", keys.join(", "))?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DfResult<Self> {
        let input = inputs
            .pop()
            .ok_or_else(|| DataFusionError::Internal("WindowTvf needs one input".into()))?;
        Self::try_new(
            input,
            self.kind.clone(),
            self.time_column.clone(),
            self.partition_keys.clone(),
        )
        .map_err(Into::into)
    }

    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let n = self.input.schema().fields().len();
        let mut needed: Vec<usize> = output_columns.iter().copied().filter(|&i| i < n).collect();
        needed.push(self.time_index().ok()?);
        needed.extend(self.key_indices().ok()?);
        needed.sort_unstable();
        needed.dedup();
        Some(vec![needed])
    }
}

/// How EXPLAIN shows a window: `TUMBLE(size=10s)`.
pub fn describe(kind: &WindowKind) -> String {
    let d = |ms: i64| {
        if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    };
    let offset = |o: i64| {
        if o == 0 {
            String::new()
        } else {
            format!(", offset={}", d(o))
        }
    };
    match *kind {
        WindowKind::Tumble { size, offset: o } => format!("TUMBLE(size={}{})", d(size), offset(o)),
        WindowKind::Hop {
            slide,
            size,
            offset: o,
        } => format!("HOP(slide={}, size={}{})", d(slide), d(size), offset(o)),
        WindowKind::Cumulate {
            step,
            size,
            offset: o,
        } => {
            format!("CUMULATE(step={}, size={}{})", d(step), d(size), offset(o))
        }
        WindowKind::Session { gap } => format!("SESSION(gap={})", d(gap)),
    }
}

/// Plans `TABLE(TUMBLE|HOP|CUMULATE|SESSION(...))` relations.
#[derive(Debug, Default)]
pub struct WindowTvfPlanner;

const WINDOW_FUNCTIONS: &[&str] = &["TUMBLE", "HOP", "CUMULATE", "SESSION"];

impl RelationPlanner for WindowTvfPlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> DfResult<RelationPlanning> {
        let TableFactor::TableFunction {
            expr: ast::Expr::Function(func),
            alias,
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let name = func.name.to_string().to_ascii_uppercase();
        if !WINDOW_FUNCTIONS.contains(&name.as_str()) {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        }
        let args = match &func.args {
            FunctionArguments::List(list) => list.args.clone(),
            _ => Vec::new(),
        };
        let plan = plan_window(&name, args, context).map_err(DataFusionError::from)?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

/// Sorts positional and named arguments into Flink's parameter order.
fn order_args(function: &str, args: Vec<FunctionArg>) -> crate::Result<Vec<ast::Expr>> {
    let params: &[&str] = match function {
        "TUMBLE" => &["DATA", "TIMECOL", "SIZE", "OFFSET"],
        "HOP" => &["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"],
        "CUMULATE" => &["DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"],
        _ => &["DATA", "TIMECOL", "GAP"],
    };
    let required = params.len() - usize::from(function != "SESSION");
    let mut slots: Vec<Option<ast::Expr>> = vec![None; params.len()];
    let mut positional = 0;
    for arg in args {
        let (slot, expr) = match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                let slot = positional;
                positional += 1;
                (slot, e)
            }
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                operator:
                    FunctionArgOperator::RightArrow
                    | FunctionArgOperator::Equals
                    | FunctionArgOperator::Assignment,
            } => {
                let upper = name.value.to_ascii_uppercase();
                let slot = params.iter().position(|p| *p == upper).ok_or_else(|| {
                    Error::invalid(format!(
                        "{function}: unknown parameter `{}`; parameters: {}",
                        name.value,
                        params.join(", ")
                    ))
                })?;
                (slot, e)
            }
            other => {
                return Err(Error::invalid(format!(
                    "{function}: unsupported argument `{other}`"
                )));
            }
        };
        if slot >= params.len() {
            return Err(Error::invalid(format!(
                "{function} takes at most {} arguments ({})",
                params.len(),
                params.join(", ")
            )));
        }
        if slots[slot].replace(expr).is_some() {
            return Err(Error::invalid(format!(
                "{function}: parameter {} given twice",
                params[slot]
            )));
        }
    }
    let missing: Vec<&str> = params
        .iter()
        .zip(&slots)
        .take(required)
        .filter(|(_, s)| s.is_none())
        .map(|(p, _)| *p)
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "{function} is missing {}; usage: {function}(TABLE t, DESCRIPTOR(time_col), {})",
            missing.join(", "),
            params[2..required].join(", ")
        )));
    }
    Ok(slots.into_iter().flatten().collect())
}

fn plan_window(
    function: &str,
    args: Vec<FunctionArg>,
    context: &mut dyn RelationPlannerContext,
) -> crate::Result<LogicalPlan> {
    let args = order_args(function, args)?;
    // DATA: `TABLE name [PARTITION BY k]` comes from the dialect as TABLE(name, PARTITION_BY(k...)).
    let (table, keys) = match &args[0] {
        ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("TABLE") => {
            let mut inner = match &f.args {
                FunctionArguments::List(l) => l.args.iter().filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                    _ => None,
                }),
                _ => {
                    return Err(Error::invalid(format!(
                        "{function}: malformed TABLE argument"
                    )));
                }
            };
            let table = match inner.next() {
                Some(ast::Expr::Identifier(id)) => ObjectName::from(vec![id]),
                Some(ast::Expr::CompoundIdentifier(ids)) => ObjectName::from(ids),
                _ => {
                    return Err(Error::invalid(format!(
                        "{function}: the first argument must be TABLE <name>"
                    )));
                }
            };
            let mut keys = Vec::new();
            for e in inner {
                match e {
                    ast::Expr::Function(pf) => {
                        if let FunctionArguments::List(l) = &pf.args {
                            for a in &l.args {
                                if let FunctionArg::Unnamed(FunctionArgExpr::Expr(k)) = a {
                                    keys.push(column_of(k, function)?);
                                }
                            }
                        }
                    }
                    other => keys.push(column_of(&other, function)?),
                }
            }
            (table, keys)
        }
        other => {
            return Err(Error::invalid(format!(
                "{function}: the first argument must be TABLE <name>, got `{other}`"
            )));
        }
    };
    if !keys.is_empty() && function != "SESSION" {
        return Err(Error::invalid(format!(
            "{function} does not take PARTITION BY; only SESSION does"
        )));
    }
    let input = context.plan(TableFactor::Table {
        name: table,
        alias: None,
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    })?;
    // TIMECOL: DESCRIPTOR(col).
    let time_column = match &args[1] {
        ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
            match &f.args {
                FunctionArguments::List(l) if l.args.len() == 1 => match &l.args[0] {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => column_of(e, function)?,
                    _ => {
                        return Err(Error::invalid(format!(
                            "{function}: DESCRIPTOR takes one column"
                        )));
                    }
                },
                _ => {
                    return Err(Error::invalid(format!(
                        "{function}: DESCRIPTOR takes one column"
                    )));
                }
            }
        }
        other => {
            return Err(Error::invalid(format!(
                "{function}: the time column must be given as DESCRIPTOR(column), got `{other}`"
            )));
        }
    };
    let mut durations = Vec::new();
    for e in &args[2..] {
        durations.push(interval_millis(function, e.clone(), context)?);
    }
    // `order_args` checked the argument count; the offset is optional.
    let at = |i: usize| durations.get(i).copied();
    let required = |i: usize| {
        at(i).ok_or_else(|| Error::invalid(format!("{function}: missing an interval argument")))
    };
    let kind = match function {
        "TUMBLE" => WindowKind::Tumble {
            size: required(0)?,
            offset: at(1).unwrap_or(0),
        },
        "HOP" => WindowKind::Hop {
            slide: required(0)?,
            size: required(1)?,
            offset: at(2).unwrap_or(0),
        },
        "CUMULATE" => WindowKind::Cumulate {
            step: required(0)?,
            size: required(1)?,
            offset: at(2).unwrap_or(0),
        },
        _ => WindowKind::Session { gap: required(0)? },
    };
    let resolve = |c: Column| -> crate::Result<Column> {
        let (q, f) = input
            .schema()
            .qualified_field_with_unqualified_name(&c.name)
            .map_err(|_| {
                Error::not_found(format!(
                    "{function}: column `{}` not found in the input; columns: {}",
                    c.name,
                    super::column_names(input.schema().fields())
                ))
            })?;
        Ok(Column::new(q.cloned(), f.name()))
    };
    let time_column = resolve(time_column)?;
    let keys = keys
        .into_iter()
        .map(resolve)
        .collect::<crate::Result<Vec<_>>>()?;
    let node = WindowTvfNode::try_new(input, kind, time_column, keys)?;
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    }))
}

fn column_of(e: &ast::Expr, function: &str) -> crate::Result<Column> {
    match e {
        ast::Expr::Identifier(id) => Ok(Column::from_name(id.value.clone())),
        ast::Expr::CompoundIdentifier(ids) => match ids.last() {
            Some(id) => Ok(Column::from_name(id.value.clone())),
            None => Err(Error::invalid(format!("{function}: empty column name"))),
        },
        other => Err(Error::invalid(format!(
            "{function}: expected a column name, got `{other}`"
        ))),
    }
}

/// Evaluates an `INTERVAL` literal argument to milliseconds.
fn interval_millis(
    function: &str,
    e: ast::Expr,
    context: &mut dyn RelationPlannerContext,
) -> crate::Result<i64> {
    let text = e.to_string();
    let expr = context.sql_to_expr(e, &DFSchema::empty())?;
    let value = match expr {
        Expr::Literal(v, _) => v,
        Expr::Cast(c) => match *c.expr {
            Expr::Literal(v, _) => v.cast_to(c.field.data_type())?,
            _ => ScalarValue::Null,
        },
        _ => ScalarValue::Null,
    };
    let ms = match value {
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(v.days as i64 * 86_400_000 + v.milliseconds as i64)
        }
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Some(v.days as i64 * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        ScalarValue::IntervalYearMonth(_) | ScalarValue::IntervalMonthDayNano(_) => {
            return Err(Error::invalid(format!(
                "{function}: window sizes in months or years are not supported (`{text}`)"
            )));
        }
        ScalarValue::DurationMillisecond(Some(v)) => Some(v),
        _ => None,
    };
    ms.ok_or_else(|| {
        Error::invalid(format!(
            "{function}: expected an INTERVAL literal such as INTERVAL '10' SECOND, got `{text}`"
        ))
    })
}
