//! `SUM` and `AVG` with Apache Flink's result types, replacing DataFusion's in the session (so
//! batch plans compute them, and the streaming accumulators, which take the result type from
//! the plan, follow). Checked against Flink 2.3 by `scripts/flink-types.py` and
//! `tests/flink_types.rs`:
//!
//! - `SUM(x)`: the argument's type for `TINYINT`..`BIGINT`, `FLOAT`, `DOUBLE` (DataFusion widens
//!   to `BIGINT` / `DOUBLE`); `DECIMAL(38, s)` for `DECIMAL(p, s)`.
//! - `AVG(x)`: the argument's type, with integer division (truncating toward zero) for
//!   integers, as Flink (DataFusion returns `DOUBLE`); `DECIMAL(38, max(s, 6))` for
//!   `DECIMAL(p, s)`, rounded half away from zero (Flink's `HALF_UP`).
//!
//! Each is DataFusion's aggregate run over a wider input where needed, its result cast to
//! Flink's type; integer `AVG` (no `DISTINCT`) sums exactly in `BIGINT` (wrapping, as Java).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Int8Type, Int16Type, Int32Type, Int64Type,
};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, ReversedUDAF,
    Signature, Volatility,
};

/// The aggregates of this module, ready to register in a session (over DataFusion's).
pub fn udafs() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::new_from_impl(FlinkAggregate::new(Kind::Sum)),
        AggregateUDF::new_from_impl(FlinkAggregate::new(Kind::Avg)),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Sum,
    Avg,
}

/// A DataFusion aggregate typed as Flink types it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FlinkAggregate {
    kind: Kind,
    inner: Arc<AggregateUDF>,
    signature: Signature,
    aliases: Vec<String>,
}

impl FlinkAggregate {
    fn new(kind: Kind) -> Self {
        let (inner, aliases) = match kind {
            Kind::Sum => (sum_udaf(), vec![]),
            Kind::Avg => (avg_udaf(), vec!["mean".to_string()]),
        };
        Self {
            kind,
            inner,
            signature: Signature::user_defined(Volatility::Immutable),
            aliases,
        }
    }

    /// The type DataFusion's aggregate is run over, for an argument of type `t`.
    fn inner_input(&self, t: &DataType) -> DataType {
        match (self.kind, t) {
            (Kind::Sum, t) if is_signed_integer(t) => DataType::Int64,
            (Kind::Avg, t) if is_signed_integer(t) => DataType::Int64,
            (_, DataType::Float16 | DataType::Float32) => DataType::Float64,
            (Kind::Avg, t) if t.is_integer() => DataType::Float64,
            (_, t) => t.clone(),
        }
    }

    /// The result type DataFusion's aggregate is asked for (it may compute at a finer scale
    /// than Flink's result, then round).
    fn inner_return(&self, input: &DataType, flink: &DataType) -> DfResult<DataType> {
        match (self.kind, flink) {
            // One more digit than Flink's scale: DataFusion truncates, the cast to Flink's
            // type then rounds half up (exactly: the extra digit is exact).
            (Kind::Avg, DataType::Decimal128(p, s)) if *s < 38 => {
                Ok(DataType::Decimal128(*p, *s + 1))
            }
            (Kind::Avg, t) if is_signed_integer(t) => Ok(DataType::Int64),
            _ => self.inner.return_type(std::slice::from_ref(input)),
        }
    }

    /// Integer `AVG` without `DISTINCT`: our exact accumulators, not DataFusion's.
    fn exact_int_avg(&self, args: &AccumulatorArgs) -> bool {
        self.kind == Kind::Avg
            && !args.is_distinct
            && args
                .expr_fields
                .first()
                .is_some_and(|f| is_signed_integer(f.data_type()))
    }

    /// `args` with the argument and result types DataFusion's aggregate runs with.
    fn inner_fields(&self, args: &AccumulatorArgs) -> DfResult<(Vec<FieldRef>, FieldRef)> {
        let Some(arg) = args.expr_fields.first() else {
            return plan_err!("{} takes one argument", self.name());
        };
        let input = self.inner_input(arg.data_type());
        let ret = self.inner_return(&input, args.return_field.data_type())?;
        Ok((
            vec![Arc::new(arg.as_ref().clone().with_data_type(input))],
            Arc::new(args.return_field.as_ref().clone().with_data_type(ret)),
        ))
    }
}

fn is_signed_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

impl AggregateUDFImpl for FlinkAggregate {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Sum => "sum",
            Kind::Avg => "avg",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let [t] = arg_types else {
            return plan_err!("{} takes one argument", self.name());
        };
        let t = match t {
            DataType::Null => DataType::Int64,
            DataType::Dictionary(_, v) => v.as_ref().clone(),
            t => t.clone(),
        };
        if t.is_numeric() {
            Ok(vec![t])
        } else {
            plan_err!(
                "{}({t}) is not supported: the argument must be numeric",
                self.name().to_uppercase()
            )
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        let [t] = arg_types else {
            return plan_err!("{} takes one argument", self.name());
        };
        Ok(match (self.kind, t) {
            (_, t) if is_signed_integer(t) => t.clone(),
            (_, DataType::Float16 | DataType::Float32) => DataType::Float32,
            (Kind::Sum, DataType::Decimal128(_, s)) => DataType::Decimal128(38, *s),
            (Kind::Avg, DataType::Decimal128(_, s)) => DataType::Decimal128(38, (*s).max(6)),
            (_, t) => {
                let input = self.inner_input(t);
                self.inner.return_type(&[input])?
            }
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let output = args.return_field.data_type().clone();
        if self.exact_int_avg(&args) {
            return Ok(Box::new(IntAvg {
                sum: 0,
                count: 0,
                output,
            }));
        }
        let (fields, ret) = self.inner_fields(&args)?;
        let input = fields[0].data_type().clone();
        let inner = self.inner.accumulator(AccumulatorArgs {
            return_field: ret,
            expr_fields: &fields,
            ..args
        })?;
        Ok(Box::new(Casting {
            inner,
            input,
            output,
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let output = args.return_field.data_type().clone();
        if self.exact_int_avg(&args) {
            return self.accumulator(args);
        }
        let (fields, ret) = self.inner_fields(&args)?;
        let input = fields[0].data_type().clone();
        let inner = self.inner.create_sliding_accumulator(AccumulatorArgs {
            return_field: ret,
            expr_fields: &fields,
            ..args
        })?;
        Ok(Box::new(Casting {
            inner,
            input,
            output,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        let Some(arg) = args.input_fields.first() else {
            return plan_err!("{} takes one argument", self.name());
        };
        if self.kind == Kind::Avg && !args.is_distinct && is_signed_integer(arg.data_type()) {
            return Ok(vec![
                Arc::new(Field::new(
                    format_state_name(args.name, "count"),
                    DataType::UInt64,
                    true,
                )),
                Arc::new(Field::new(
                    format_state_name(args.name, "sum"),
                    DataType::Int64,
                    true,
                )),
            ]);
        }
        let input = self.inner_input(arg.data_type());
        let ret = self.inner_return(&input, args.return_field.data_type())?;
        let fields = vec![Arc::new(arg.as_ref().clone().with_data_type(input))];
        self.inner.state_fields(StateFieldsArgs {
            input_fields: &fields,
            return_field: Arc::new(args.return_field.as_ref().clone().with_data_type(ret)),
            ..args
        })
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        if self.exact_int_avg(&args) {
            return true;
        }
        match self.inner_fields(&args) {
            Ok((fields, ret)) => self.inner.groups_accumulator_supported(AccumulatorArgs {
                return_field: ret,
                expr_fields: &fields,
                ..args
            }),
            Err(_) => false,
        }
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        let output = args.return_field.data_type().clone();
        if self.exact_int_avg(&args) {
            return Ok(Box::new(IntAvgGroups {
                sums: Vec::new(),
                counts: Vec::new(),
                output,
            }));
        }
        let (fields, ret) = self.inner_fields(&args)?;
        let input = fields[0].data_type().clone();
        let inner = self.inner.create_groups_accumulator(AccumulatorArgs {
            return_field: ret,
            expr_fields: &fields,
            ..args
        })?;
        Ok(Box::new(CastingGroups {
            inner,
            input,
            output,
        }))
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
}

/// `sum / count`, truncating toward zero (Java's `long` division).
fn int_avg(sum: i64, count: u64) -> i64 {
    match i64::try_from(count) {
        Ok(n) if n > 0 => sum.wrapping_div(n),
        _ => 0,
    }
}

fn cast_all(values: &[ArrayRef], to: &DataType) -> DfResult<Vec<ArrayRef>> {
    values
        .iter()
        .map(|v| {
            if v.data_type() == to {
                Ok(Arc::clone(v))
            } else {
                Ok(cast(v, to)?)
            }
        })
        .collect()
}

/// A result of DataFusion's aggregate in Flink's type. Integer sums narrow as Java's `int` /
/// `short` / `byte` arithmetic overflows, wrapping (DataFusion sums them in `BIGINT`, itself
/// wrapping); other types cast, a decimal that does not fit becoming NULL as in Flink. Batch
/// (groups accumulators) and streaming (row accumulators) results go through here, so they
/// agree.
fn to_flink(v: &ArrayRef, to: &DataType) -> DfResult<ArrayRef> {
    if v.data_type() == to {
        return Ok(Arc::clone(v));
    }
    if let Some(wide) = v.as_primitive_opt::<Int64Type>() {
        let narrowed: Option<ArrayRef> = match to {
            DataType::Int32 => Some(Arc::new(wide.unary::<_, Int32Type>(|x| x as i32))),
            DataType::Int16 => Some(Arc::new(wide.unary::<_, Int16Type>(|x| x as i16))),
            DataType::Int8 => Some(Arc::new(wide.unary::<_, Int8Type>(|x| x as i8))),
            _ => None,
        };
        if let Some(n) = narrowed {
            return Ok(n);
        }
    }
    Ok(cast(v, to)?)
}

/// An accumulator fed its input cast to `input`, its result cast to `output`.
#[derive(Debug)]
struct Casting {
    inner: Box<dyn Accumulator>,
    input: DataType,
    output: DataType,
}

impl Accumulator for Casting {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.inner.update_batch(&cast_all(values, &self.input)?)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.inner.retract_batch(&cast_all(values, &self.input)?)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let v = self.inner.evaluate()?;
        if v.data_type() == self.output {
            Ok(v)
        } else {
            ScalarValue::try_from_array(&to_flink(&v.to_array()?, &self.output)?, 0)
        }
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.inner.size()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.inner.merge_batch(states)
    }
}

/// A groups accumulator fed its input cast to `input`, its results cast to `output`.
struct CastingGroups {
    inner: Box<dyn GroupsAccumulator>,
    input: DataType,
    output: DataType,
}

impl GroupsAccumulator for CastingGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.inner.update_batch(
            &cast_all(values, &self.input)?,
            group_indices,
            opt_filter,
            total_num_groups,
        )
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        to_flink(&self.inner.evaluate(emit_to)?, &self.output)
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        self.inner
            .convert_to_state(&cast_all(values, &self.input)?, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }
}

/// Integer `AVG`: a `BIGINT` sum (wrapping, as Java) and a count; the result truncates.
#[derive(Debug)]
struct IntAvg {
    sum: i64,
    count: u64,
    output: DataType,
}

impl IntAvg {
    fn add(&mut self, values: &ArrayRef, sign: i64) -> DfResult<()> {
        let values = cast(values, &DataType::Int64)?;
        let values = values.as_primitive::<Int64Type>();
        for v in values.iter().flatten() {
            self.sum = self.sum.wrapping_add(v.wrapping_mul(sign));
            if sign > 0 {
                self.count += 1;
            } else {
                self.count = self.count.saturating_sub(1);
            }
        }
        Ok(())
    }
}

impl Accumulator for IntAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        match values.first() {
            Some(v) => self.add(v, 1),
            None => Ok(()),
        }
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        match values.first() {
            Some(v) => self.add(v, -1),
            None => Ok(()),
        }
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let v = ScalarValue::Int64((self.count > 0).then(|| int_avg(self.sum, self.count)));
        v.cast_to(&self.output)
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::UInt64(Some(self.count)),
            ScalarValue::Int64(Some(self.sum)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let (Some(counts), Some(sums)) = (states.first(), states.get(1)) else {
            return plan_err!("AVG state needs a count and a sum");
        };
        let counts = counts
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| internal("count state"))?;
        let sums = int64_array(sums)?;
        for i in 0..counts.len() {
            if counts.is_valid(i) {
                self.count += counts.value(i);
            }
            if sums.is_valid(i) {
                self.sum = self.sum.wrapping_add(sums.value(i));
            }
        }
        Ok(())
    }
}

/// Integer `AVG` per group: `BIGINT` sums (wrapping) and counts; results truncate.
struct IntAvgGroups {
    sums: Vec<i64>,
    counts: Vec<u64>,
    output: DataType,
}

impl IntAvgGroups {
    fn grow(&mut self, total_num_groups: usize) {
        self.sums.resize(total_num_groups, 0);
        self.counts.resize(total_num_groups, 0);
    }
}

fn int64_array(a: &ArrayRef) -> DfResult<Int64Array> {
    Ok(cast(a, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

fn internal(what: &str) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Internal(format!("integer AVG: {what}"))
}

impl GroupsAccumulator for IntAvgGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.grow(total_num_groups);
        let values = int64_array(values.first().ok_or_else(|| internal("no input"))?)?;
        for (row, &g) in group_indices.iter().enumerate() {
            let keep = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            if keep && values.is_valid(row) {
                self.sums[g] = self.sums[g].wrapping_add(values.value(row));
                self.counts[g] += 1;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let avgs: Int64Array = sums
            .iter()
            .zip(&counts)
            .map(|(s, c)| (*c > 0).then(|| int_avg(*s, *c)))
            .collect();
        Ok(cast(&(Arc::new(avgs) as ArrayRef), &self.output)?)
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        Ok(vec![
            Arc::new(UInt64Array::from(counts)),
            Arc::new(Int64Array::from(sums)),
        ])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.grow(total_num_groups);
        let (Some(counts), Some(sums)) = (values.first(), values.get(1)) else {
            return Err(internal("state needs a count and a sum"));
        };
        let counts = counts
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| internal("count state"))?;
        let sums = int64_array(sums)?;
        for (row, &g) in group_indices.iter().enumerate() {
            if counts.is_valid(row) {
                self.counts[g] += counts.value(row);
            }
            if sums.is_valid(row) {
                self.sums[g] = self.sums[g].wrapping_add(sums.value(row));
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let values = int64_array(values.first().ok_or_else(|| internal("no input"))?)?;
        let mut counts = Vec::with_capacity(values.len());
        let mut sums = Vec::with_capacity(values.len());
        for row in 0..values.len() {
            let keep = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            let valid = keep && values.is_valid(row);
            counts.push(u64::from(valid));
            sums.push(if valid { values.value(row) } else { 0 });
        }
        Ok(vec![
            Arc::new(UInt64Array::from(counts)),
            Arc::new(Int64Array::from(sums)),
        ])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 8 + self.counts.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_result_types() {
        let sum = FlinkAggregate::new(Kind::Sum);
        let avg = FlinkAggregate::new(Kind::Avg);
        for t in [
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
        ] {
            assert_eq!(sum.return_type(std::slice::from_ref(&t)).unwrap(), t);
            assert_eq!(avg.return_type(std::slice::from_ref(&t)).unwrap(), t);
        }
        assert_eq!(
            sum.return_type(&[DataType::Decimal128(10, 2)]).unwrap(),
            DataType::Decimal128(38, 2)
        );
        assert_eq!(
            avg.return_type(&[DataType::Decimal128(10, 2)]).unwrap(),
            DataType::Decimal128(38, 6)
        );
        assert_eq!(
            avg.return_type(&[DataType::Decimal128(20, 8)]).unwrap(),
            DataType::Decimal128(38, 8)
        );
        assert!(sum.coerce_types(&[DataType::Utf8]).is_err());
    }

    #[test]
    fn int_avg_truncates_toward_zero_and_retracts() {
        let mut acc = IntAvg {
            sum: 0,
            count: 0,
            output: DataType::Int32,
        };
        let values: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(-7)]));
        acc.update_batch(&[values]).unwrap();
        // -4 / 3 = -1 (not -2)
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Int32(Some(-1)));
        let gone: ArrayRef = Arc::new(Int64Array::from(vec![-7]));
        acc.retract_batch(&[gone]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Int32(Some(1)));
    }
}
