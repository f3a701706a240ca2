//! `WatermarkNode`: a table's `WATERMARK FOR ts AS expr` in the logical plan. The planner puts it
//! on top of a table's read plan (after computed columns, so a computed column can be the rowtime)
//! when a statement is planned for streaming; the streaming lowering fuses it into the table's
//! source node, which keeps a watermark per split (`stream::source`), and marks `ts` as an
//! event-time attribute. Batch plans never
//! contain it (in batch, watermarks mean nothing).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use datafusion::common::DFSchemaRef;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct WatermarkNode {
    pub input: LogicalPlan,
    /// The rowtime column (a column of `input`).
    pub column: String,
    /// The watermark expression, over `input`'s columns.
    pub expr: Expr,
    /// The table's `scan.watermark.*` options.
    pub options: WatermarkOptions,
}

/// A source table's watermark options (Flink's FLIP-296 keys, in `WITH (...)`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd)]
pub struct WatermarkOptions {
    /// `'scan.watermark.idle-timeout'`: a split without data this long stops holding the
    /// watermark back (overrides `'table.exec.source.idle-timeout'` for this table).
    pub idle_timeout: Option<Duration>,
    /// `'scan.watermark.alignment.group'` and `'.max-drift'`: splits more than the drift ahead
    /// of the slowest source instance in the group pause.
    pub alignment: Option<(String, Duration)>,
}

impl WatermarkOptions {
    /// Reads the options of a table definition.
    ///
    /// # Errors
    /// `Invalid` for a malformed duration, or a group without a max drift (or the reverse).
    pub fn parse(options: &BTreeMap<String, String>) -> crate::Result<WatermarkOptions> {
        let duration = |key: &str| -> crate::Result<Option<Duration>> {
            options
                .get(key)
                .map(|v| {
                    crate::units::parse_duration(v).ok_or_else(|| {
                        crate::Error::invalid(format!(
                            "'{key}' = '{v}' is not a duration (e.g. '500 ms', '10 s', '1 min')"
                        ))
                    })
                })
                .transpose()
        };
        // Checked for its form only: groups are updated whenever a watermark moves.
        duration("scan.watermark.alignment.update-interval")?;
        let group = options.get("scan.watermark.alignment.group");
        let drift = duration("scan.watermark.alignment.max-drift")?;
        let alignment = match (group, drift) {
            (Some(g), Some(d)) if !g.trim().is_empty() => Some((g.clone(), d)),
            (None, None) => None,
            _ => {
                return Err(crate::Error::invalid(
                    "watermark alignment needs both 'scan.watermark.alignment.group' (a name) and \
                     'scan.watermark.alignment.max-drift' (a duration)",
                ));
            }
        };
        Ok(WatermarkOptions {
            idle_timeout: duration("scan.watermark.idle-timeout")?.filter(|d| !d.is_zero()),
            alignment,
        })
    }
}

impl WatermarkNode {
    /// The index of the rowtime column in the schema.
    pub fn column_index(&self) -> crate::Result<usize> {
        self.input
            .schema()
            .fields()
            .iter()
            .position(|f| f.name() == &self.column)
            .ok_or_else(|| {
                crate::Error::internal(format!("watermark column `{}` is gone", self.column))
            })
    }
}

impl UserDefinedLogicalNodeCore for WatermarkNode {
    fn name(&self) -> &str {
        "Watermark"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![self.expr.clone()]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "Watermark: rowtime={}, watermark={}",
            self.column, self.expr
        )
    }

    fn with_exprs_and_inputs(
        &self,
        mut exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DfResult<Self> {
        let (Some(expr), Some(input)) = (exprs.pop(), inputs.pop()) else {
            return Err(DataFusionError::Internal(
                "Watermark needs one input and one expression".into(),
            ));
        };
        Ok(Self {
            input,
            column: self.column.clone(),
            expr,
            options: self.options.clone(),
        })
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }
}
