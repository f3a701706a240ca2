//! Flink aggregates that keep their input values: `LISTAGG` and `PERCENTILE`, as DataFusion
//! aggregate UDFs registered in the session (batch plans run them; DataFusion's partial /
//! final split merges their states). The streaming engine has no retractable accumulator for
//! them yet, so a streaming query using them fails at planning with a clear "not supported
//! yet" error (`stream::ops::aggregate`) rather than answering wrongly.
//!
//! - `LISTAGG(expr [, separator])` → `STRING`: the non-NULL values joined by `separator`
//!   (default `,`) in input order; NULL when there are none.
//! - `PERCENTILE(expr, p [, frequency])` → `DOUBLE`: the `p`-th percentile (0 ≤ `p` ≤ 1) of the
//!   non-NULL numeric values, each counted `frequency` times (default 1; rows with a NULL or
//!   non-positive frequency are skipped), interpolated linearly between the two nearest ranks
//!   (position `p * (n - 1)`), as Flink; NULL when there are no values; `p` outside [0, 1]
//!   raises.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::rowwise::{is_string, sql_name};

/// The aggregates of this module, ready to register in a session.
pub fn udafs() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::new_from_impl(ListAgg::new()),
        AggregateUDF::new_from_impl(Percentile::new()),
    ]
}

// ---- LISTAGG

/// `LISTAGG(expr [, separator])`: see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ListAgg {
    signature: Signature,
}

impl ListAgg {
    pub fn new() -> Self {
        ListAgg {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for ListAgg {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for ListAgg {
    fn name(&self) -> &str {
        "listagg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if !(1..=2).contains(&arg_types.len()) {
            return plan_err!("LISTAGG takes 1 or 2 arguments, got {}", arg_types.len());
        }
        arg_types
            .iter()
            .map(|t| {
                if is_string(t) || t == &DataType::Null {
                    Ok(DataType::Utf8)
                } else {
                    plan_err!("LISTAGG expects STRING arguments, got {}", sql_name(t))
                }
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "values"),
                DataType::new_list(DataType::Utf8, true),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "separator"),
                DataType::Utf8,
                true,
            )),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(ListAggAcc::default()))
    }
}

#[derive(Debug, Default)]
struct ListAggAcc {
    values: Vec<String>,
    bytes: usize,
    separator: Option<String>,
}

impl Accumulator for ListAggAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let strings = cast(&values[0], &DataType::Utf8)?;
        let strings = strings.as_string::<i32>();
        let seps = values
            .get(1)
            .map(|s| cast(s, &DataType::Utf8))
            .transpose()?;
        for i in 0..strings.len() {
            if strings.is_null(i) {
                continue;
            }
            if self.separator.is_none()
                && let Some(seps) = &seps
            {
                let seps = seps.as_string::<i32>();
                if !seps.is_null(i) {
                    self.separator = Some(seps.value(i).to_string());
                }
            }
            let v = strings.value(i);
            self.bytes += v.len();
            self.values.push(v.to_string());
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        if self.values.is_empty() {
            return Ok(ScalarValue::Utf8(None));
        }
        let sep = self.separator.as_deref().unwrap_or(",");
        Ok(ScalarValue::Utf8(Some(self.values.join(sep))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bytes + self.values.len() * 24
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self
            .values
            .iter()
            .map(|v| ScalarValue::Utf8(Some(v.clone())))
            .collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Utf8)),
            ScalarValue::Utf8(self.separator.clone()),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let lists = states[0].as_list::<i32>();
        let seps = states[1].as_string::<i32>();
        for row in 0..lists.len() {
            if self.separator.is_none() && !seps.is_null(row) {
                self.separator = Some(seps.value(row).to_string());
            }
            if lists.is_null(row) {
                continue;
            }
            let items = lists.value(row);
            let items = items.as_string::<i32>();
            for v in items.iter().flatten() {
                self.bytes += v.len();
                self.values.push(v.to_string());
            }
        }
        Ok(())
    }
}

// ---- PERCENTILE

/// `PERCENTILE(expr, p [, frequency])`: see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Percentile {
    signature: Signature,
}

impl Percentile {
    pub fn new() -> Self {
        Percentile {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for Percentile {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for Percentile {
    fn name(&self) -> &str {
        "percentile"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if !(2..=3).contains(&arg_types.len()) {
            return plan_err!("PERCENTILE takes 2 or 3 arguments, got {}", arg_types.len());
        }
        let numeric = |t: &DataType| t.is_numeric() || t == &DataType::Null;
        if !numeric(&arg_types[0]) || !numeric(&arg_types[1]) {
            return plan_err!(
                "PERCENTILE expects a numeric value and percentage, got {} and {}",
                sql_name(&arg_types[0]),
                sql_name(&arg_types[1])
            );
        }
        let mut out = vec![DataType::Float64, DataType::Float64];
        if let Some(f) = arg_types.get(2) {
            if !f.is_integer() && f != &DataType::Null {
                return plan_err!(
                    "PERCENTILE expects an integer frequency, got {}",
                    sql_name(f)
                );
            }
            out.push(DataType::Int64);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "values"),
                DataType::new_list(DataType::Float64, true),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "frequencies"),
                DataType::new_list(DataType::Int64, true),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "percentage"),
                DataType::Float64,
                true,
            )),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(PercentileAcc::default()))
    }
}

#[derive(Debug, Default)]
struct PercentileAcc {
    values: Vec<(f64, i64)>,
    percentage: Option<f64>,
}

impl PercentileAcc {
    fn set_percentage(&mut self, p: f64) -> DfResult<()> {
        if !(0.0..=1.0).contains(&p) {
            return exec_err!("PERCENTILE: the percentage {p} is not between 0.0 and 1.0");
        }
        self.percentage.get_or_insert(p);
        Ok(())
    }
}

/// The `p`-th percentile of `(value, count)` pairs, interpolated between nearest ranks.
fn percentile_of(values: &mut [(f64, i64)], p: f64) -> Option<f64> {
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n: i64 = values.iter().map(|v| v.1).sum();
    if n == 0 {
        return None;
    }
    let position = p * (n - 1) as f64;
    let lower = position.floor() as i64;
    let upper = position.ceil() as i64;
    let at = |rank: i64| -> f64 {
        let mut seen = 0;
        for (v, c) in values.iter() {
            seen += c;
            if rank < seen {
                return *v;
            }
        }
        values.last().map_or(f64::NAN, |v| v.0)
    };
    let (lo, hi) = (at(lower), at(upper));
    Some(if lower == upper {
        lo
    } else {
        lo + (position - lower as f64) * (hi - lo)
    })
}

impl Accumulator for PercentileAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let xs = cast(&values[0], &DataType::Float64)?;
        let xs = xs.as_primitive::<Float64Type>();
        let ps = cast(&values[1], &DataType::Float64)?;
        let ps = ps.as_primitive::<Float64Type>();
        let freqs = values
            .get(2)
            .map(|f| cast(f, &DataType::Int64))
            .transpose()?;
        for i in 0..xs.len() {
            if !ps.is_null(i) {
                self.set_percentage(ps.value(i))?;
            }
            if xs.is_null(i) {
                continue;
            }
            let count = match &freqs {
                Some(f) => {
                    let f = f.as_primitive::<Int64Type>();
                    if f.is_null(i) {
                        continue;
                    }
                    f.value(i)
                }
                None => 1,
            };
            if count > 0 {
                self.values.push((xs.value(i), count));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let Some(p) = self.percentage else {
            return Ok(ScalarValue::Float64(None));
        };
        Ok(ScalarValue::Float64(percentile_of(&mut self.values, p)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * 16
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let xs: Vec<ScalarValue> = self
            .values
            .iter()
            .map(|v| ScalarValue::Float64(Some(v.0)))
            .collect();
        let cs: Vec<ScalarValue> = self
            .values
            .iter()
            .map(|v| ScalarValue::Int64(Some(v.1)))
            .collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&xs, &DataType::Float64)),
            ScalarValue::List(ScalarValue::new_list_nullable(&cs, &DataType::Int64)),
            ScalarValue::Float64(self.percentage),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let xs = states[0].as_list::<i32>();
        let cs = states[1].as_list::<i32>();
        let ps = states[2].as_primitive::<Float64Type>();
        for row in 0..xs.len() {
            if !ps.is_null(row) {
                self.set_percentage(ps.value(row))?;
            }
            if xs.is_null(row) || cs.is_null(row) {
                continue;
            }
            let x = xs.value(row);
            let c = cs.value(row);
            let x = x.as_primitive::<Float64Type>();
            let c = c.as_primitive::<Int64Type>();
            for i in 0..x.len() {
                self.values.push((x.value(i), c.value(i)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let mut v = vec![(4.0, 1), (1.0, 1), (3.0, 1), (2.0, 1)];
        assert_eq!(percentile_of(&mut v, 0.5), Some(2.5));
        assert_eq!(percentile_of(&mut v, 0.25), Some(1.75));
        assert_eq!(percentile_of(&mut v, 0.0), Some(1.0));
        assert_eq!(percentile_of(&mut v, 1.0), Some(4.0));
        let mut f = vec![(1.0, 1), (2.0, 3), (10.0, 1)];
        assert_eq!(percentile_of(&mut f, 0.5), Some(2.0));
        assert_eq!(percentile_of(&mut [], 0.5), None);
    }
}
