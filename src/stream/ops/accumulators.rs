//! Retractable accumulators of the streaming `GROUP BY` ([`super::aggregate`]): `COUNT(*)`,
//! `COUNT(x)`, `SUM`, `AVG`, `MIN`, `MAX`, each optionally `DISTINCT` and with a
//! `FILTER (WHERE ...)`. Every input row is added (`+I`, `+U`) or retracted (`-U`, `-D`); an
//! accumulator's value after any sequence of additions and retractions equals the value of the
//! same aggregate computed in batch mode (DataFusion) over the rows that remain, with the same
//! result type (the aggregate's output field in the logical plan).
//!
//! `MIN` / `MAX` keep a multiset of values (value → count), so retracting the current extreme
//! falls back to the next one. `DISTINCT` aggregates keep the same multiset and count a value
//! while its multiplicity is positive.
//!
//! Every value depends only on the multiset of rows that remain, never on the order rows were
//! added and retracted in (so parallel runs, whose interleaving varies, agree exactly): integer
//! and decimal sums are exact `i128`s; floating-point sums are kept exactly as non-overlapping
//! partials (Shewchuk's algorithm, as Python's `math.fsum`), which retracting a value undoes
//! exactly, and rounded once when read.
//!
//! Checkpoints: [`AggSpec::encode_acc`] / [`AggSpec::decode_acc`] write an accumulator's own
//! fields exactly (integers, `i128` sums, the float partials bit for bit, multisets as
//! row-format values), under [`AggSpec::state_format`], which names the aggregate and its types.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, RecordBatch,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;

use super::codec::{Dec, Enc, check_rows, corrupt};
use crate::error::{Error, Result};

/// The aggregate functions with a retractable streaming implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggKind {
    /// The kind for a DataFusion aggregate function name, if supported.
    pub fn from_name(name: &str) -> Option<AggKind> {
        match name.to_ascii_lowercase().as_str() {
            "count" => Some(AggKind::Count),
            "sum" => Some(AggKind::Sum),
            "avg" | "mean" => Some(AggKind::Avg),
            "min" => Some(AggKind::Min),
            "max" => Some(AggKind::Max),
            _ => None,
        }
    }
}

/// How `SUM` / `AVG` add their input: exactly as scaled integers (integers and decimals, with the
/// decimal scale) or as doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
enum NumClass {
    Exact { scale: i8 },
    Float,
}

/// One aggregate call of a `GROUP BY`: what it computes and over which expressions.
pub struct AggSpec {
    pub kind: AggKind,
    pub distinct: bool,
    /// The argument; `None` for `COUNT(*)`.
    arg: Option<Arc<dyn PhysicalExpr>>,
    /// `FILTER (WHERE ...)`: rows where it is not true are ignored by this aggregate.
    filter: Option<Arc<dyn PhysicalExpr>>,
    pub output_type: DataType,
    /// The argument's type; `None` for `COUNT(*)`.
    input_type: Option<DataType>,
    class: Option<NumClass>,
    /// Encodes argument values for `MIN` / `MAX` / `DISTINCT` multisets.
    values: Option<Arc<RowConverter>>,
}

/// An aggregate's inputs for one batch: which rows count, and their values in the forms the
/// accumulator needs.
pub struct EvaluatedArg {
    /// Row `i` takes part: the filter holds and the argument is not null.
    valid: Vec<bool>,
    exact: Option<Decimal128Array>,
    float: Option<Float64Array>,
    rows: Option<Rows>,
}

/// The state of one aggregate for one group.
#[derive(Debug, Clone)]
pub enum Acc {
    Count(i64),
    /// `SUM` / `AVG`: number of values and their sum (exact or float, per the input type).
    Sum {
        n: i64,
        exact: i128,
        float: ExactFloatSum,
    },
    /// `MIN` / `MAX`: value → multiplicity.
    Extremes(BTreeMap<OwnedRow, i64>),
    /// `COUNT` / `SUM` / `AVG` `DISTINCT`: value → multiplicity, and the sum of distinct values.
    Distinct {
        values: HashMap<OwnedRow, i64>,
        exact: i128,
        float: ExactFloatSum,
    },
}

impl Acc {
    /// The heap bytes the accumulator owns beyond its inline size (for the state memory budget;
    /// see [`crate::stream::spill::heap`]).
    pub fn heap_size(&self) -> usize {
        use crate::stream::spill::heap;
        match self {
            Acc::Count(_) => 0,
            Acc::Sum { float, .. } => heap::vec::<f64>(float.partials.capacity()),
            Acc::Extremes(m) => {
                heap::btree::<OwnedRow, i64>(m.len()) + m.keys().map(heap::row).sum::<usize>()
            }
            Acc::Distinct { values, float, .. } => {
                heap::hash_table::<OwnedRow, i64>(values.capacity())
                    + values.keys().map(heap::row).sum::<usize>()
                    + heap::vec::<f64>(float.partials.capacity())
            }
        }
    }
}

/// The exact sum of a multiset of doubles: finite values as non-overlapping partials (their
/// exact sum, Shewchuk's "Adaptive Precision Floating-Point Arithmetic"), infinities and NaNs
/// counted. Adding `-x` undoes adding `x` exactly, so the value is a function of the multiset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactFloatSum {
    partials: Vec<f64>,
    pos_inf: i64,
    neg_inf: i64,
    nan: i64,
}

impl ExactFloatSum {
    /// Writes the sum exactly (partials bit for bit, then the counts).
    pub fn encode(&self, e: &mut Enc) {
        e.len(self.partials.len());
        for p in &self.partials {
            e.f64(*p);
        }
        e.i64(self.pos_inf);
        e.i64(self.neg_inf);
        e.i64(self.nan);
    }

    /// Reads what [`ExactFloatSum::encode`] wrote.
    ///
    /// # Errors
    /// `External` for corrupt bytes (including a partial that is not finite).
    pub fn decode(d: &mut Dec) -> Result<ExactFloatSum> {
        let n = d.len()?;
        let mut partials = Vec::with_capacity(n);
        for _ in 0..n {
            let p = d.f64()?;
            if !p.is_finite() {
                return Err(corrupt("a float sum partial is not finite"));
            }
            partials.push(p);
        }
        Ok(ExactFloatSum {
            partials,
            pos_inf: d.i64()?,
            neg_inf: d.i64()?,
            nan: d.i64()?,
        })
    }

    /// Adds `x` (`sign` = 1) or takes it away (`sign` = -1).
    pub fn add(&mut self, x: f64, sign: i64) {
        if x.is_nan() {
            self.nan += sign;
        } else if x == f64::INFINITY {
            self.pos_inf += sign;
        } else if x == f64::NEG_INFINITY {
            self.neg_inf += sign;
        } else {
            self.add_finite(if sign < 0 { -x } else { x });
        }
    }

    fn add_finite(&mut self, mut x: f64) {
        let mut kept = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        self.partials.truncate(kept);
        if x != 0.0 || self.partials.is_empty() {
            self.partials.push(x);
        }
    }

    /// The sum, correctly rounded (as `math.fsum`); NaN when NaNs or both infinities remain.
    pub fn value(&self) -> f64 {
        match (self.nan > 0, self.pos_inf > 0, self.neg_inf > 0) {
            (true, _, _) | (false, true, true) => return f64::NAN,
            (false, true, false) => return f64::INFINITY,
            (false, false, true) => return f64::NEG_INFINITY,
            _ => {}
        }
        let p = &self.partials;
        let Some((&last, rest)) = p.split_last() else {
            return 0.0;
        };
        let mut hi = last;
        let mut lo = 0.0;
        let mut n = rest.len();
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        // Round half to even across the partials below: when the next partial has the same
        // sign as the rounding error, the exact sum lies past the halfway point.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            let yr = x - hi;
            if y == yr {
                hi = x;
            }
        }
        hi
    }
}

impl AggSpec {
    /// An aggregate over `arg` (of type `input_type`) with result type `output_type`.
    ///
    /// # Errors
    /// `NotSupported` for argument types the streaming accumulators cannot add up.
    pub fn new(
        kind: AggKind,
        distinct: bool,
        arg: Option<(Arc<dyn PhysicalExpr>, DataType)>,
        filter: Option<Arc<dyn PhysicalExpr>>,
        output_type: DataType,
    ) -> Result<AggSpec> {
        let (arg, input_type) = match arg {
            Some((e, t)) => (Some(e), Some(t)),
            None => (None, None),
        };
        let class = match (kind, &input_type) {
            (AggKind::Sum | AggKind::Avg, Some(t)) => Some(num_class(t).ok_or_else(|| {
                Error::not_supported(format!(
                    "{kind:?}({t}) in a streaming query is not supported yet"
                ))
            })?),
            (AggKind::Sum | AggKind::Avg, None) => {
                return Err(Error::invalid(format!("{kind:?} needs an argument")));
            }
            _ => None,
        };
        let needs_values = distinct || matches!(kind, AggKind::Min | AggKind::Max);
        let values = match (&input_type, needs_values) {
            (Some(t), true) => Some(Arc::new(RowConverter::new(vec![SortField::new(
                t.clone(),
            )])?)),
            (None, true) => {
                return Err(Error::invalid(format!("{kind:?} needs an argument")));
            }
            _ => None,
        };
        Ok(AggSpec {
            kind,
            distinct,
            arg,
            filter,
            output_type,
            input_type,
            class,
            values,
        })
    }

    /// A fresh (empty) accumulator.
    pub fn new_acc(&self) -> Acc {
        match self.kind {
            AggKind::Min | AggKind::Max => Acc::Extremes(BTreeMap::new()),
            _ if self.distinct => Acc::Distinct {
                values: HashMap::new(),
                exact: 0,
                float: ExactFloatSum::default(),
            },
            AggKind::Count => Acc::Count(0),
            AggKind::Sum | AggKind::Avg => Acc::Sum {
                n: 0,
                exact: 0,
                float: ExactFloatSum::default(),
            },
        }
    }

    /// The checkpoint format of this aggregate's accumulator: the layout version, the function
    /// and its argument and result types, e.g. `acc/1 Sum(DISTINCT Int32)->Int64`. A query whose
    /// aggregate changed types cannot restore the old accumulators.
    pub fn state_format(&self) -> String {
        let arg = self
            .input_type
            .as_ref()
            .map_or_else(|| "*".to_string(), |t| format!("{t:?}"));
        let distinct = if self.distinct { "DISTINCT " } else { "" };
        format!(
            "acc/1 {:?}({distinct}{arg})->{:?}",
            self.kind, self.output_type
        )
    }

    /// Writes `acc` (an accumulator of this aggregate) exactly.
    pub fn encode_acc(&self, acc: &Acc, e: &mut Enc) {
        e.u8(acc_tag(acc));
        match acc {
            Acc::Count(n) => e.i64(*n),
            Acc::Sum { n, exact, float } => {
                e.i64(*n);
                e.i128(*exact);
                float.encode(e);
            }
            Acc::Extremes(map) => {
                e.len(map.len());
                for (value, count) in map {
                    e.row(value);
                    e.i64(*count);
                }
            }
            Acc::Distinct {
                values,
                exact,
                float,
            } => {
                let mut sorted: Vec<(&OwnedRow, &i64)> = values.iter().collect();
                sorted.sort();
                e.len(sorted.len());
                for (value, count) in sorted {
                    e.row(value);
                    e.i64(*count);
                }
                e.i128(*exact);
                float.encode(e);
            }
        }
    }

    /// Reads an accumulator written by [`AggSpec::encode_acc`] for an aggregate with the same
    /// [`AggSpec::state_format`].
    ///
    /// # Errors
    /// `External` ("corrupt checkpoint state") for bytes that are not such an accumulator.
    pub fn decode_acc(&self, d: &mut Dec) -> Result<Acc> {
        let tag = d.u8()?;
        if tag != acc_tag(&self.new_acc()) {
            return Err(corrupt(format!(
                "accumulator kind {tag} for {}",
                self.state_format()
            )));
        }
        let multiset = |d: &mut Dec| -> Result<Vec<(OwnedRow, i64)>> {
            let conv = self
                .values
                .as_ref()
                .ok_or_else(|| corrupt("a multiset for an aggregate without values"))?;
            let parser = conv.parser();
            let n = d.len()?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let row = d.row(&parser)?;
                entries.push((row, d.i64()?));
            }
            check_rows(conv, entries.iter().map(|(r, _)| r), "an aggregate's value")?;
            Ok(entries)
        };
        Ok(match tag {
            0 => Acc::Count(d.i64()?),
            1 => Acc::Sum {
                n: d.i64()?,
                exact: d.i128()?,
                float: ExactFloatSum::decode(d)?,
            },
            2 => Acc::Extremes(multiset(d)?.into_iter().collect()),
            _ => Acc::Distinct {
                values: multiset(d)?.into_iter().collect(),
                exact: d.i128()?,
                float: ExactFloatSum::decode(d)?,
            },
        })
    }

    /// Evaluates the argument and the filter over a batch.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<EvaluatedArg> {
        let n = batch.num_rows();
        let mut valid = vec![true; n];
        if let Some(f) = &self.filter {
            let mask = f.evaluate(batch)?.into_array(n)?;
            let mask = mask
                .as_boolean_opt()
                .ok_or_else(|| Error::internal("aggregate FILTER is not boolean"))?;
            for (i, v) in valid.iter_mut().enumerate() {
                *v = mask.is_valid(i) && mask.value(i);
            }
        }
        let Some(arg) = &self.arg else {
            return Ok(EvaluatedArg {
                valid,
                exact: None,
                float: None,
                rows: None,
            });
        };
        let values: ArrayRef = arg.evaluate(batch)?.into_array(n)?;
        for (i, v) in valid.iter_mut().enumerate() {
            *v = *v && values.is_valid(i);
        }
        let (mut exact, mut float) = (None, None);
        match self.class {
            Some(NumClass::Exact { scale }) => {
                let a = cast(&values, &DataType::Decimal128(38, scale))?;
                exact = Some(a.as_primitive().clone());
            }
            Some(NumClass::Float) => {
                let a = cast(&values, &DataType::Float64)?;
                float = Some(a.as_primitive().clone());
            }
            None => {}
        }
        let rows = match &self.values {
            Some(c) => Some(c.convert_columns(&[values])?),
            None => None,
        };
        Ok(EvaluatedArg {
            valid,
            exact,
            float,
            rows,
        })
    }

    /// Adds (`sign` = 1) or retracts (`sign` = -1) row `row` of `arg`.
    pub fn update(&self, acc: &mut Acc, arg: &EvaluatedArg, row: usize, sign: i64) {
        if !arg.valid.get(row).copied().unwrap_or(false) {
            return;
        }
        let exact = arg.exact.as_ref().map(|a| a.value(row)).unwrap_or(0);
        let float = arg.float.as_ref().map(|a| a.value(row)).unwrap_or(0.0);
        match acc {
            Acc::Count(n) => *n += sign,
            Acc::Sum {
                n,
                exact: e,
                float: f,
            } => {
                *n += sign;
                *e = e.wrapping_add(exact.wrapping_mul(sign as i128));
                f.add(float, sign);
            }
            Acc::Extremes(map) => {
                let Some(rows) = &arg.rows else { return };
                let key = rows.row(row).owned();
                let count = map.entry(key.clone()).or_insert(0);
                *count += sign;
                if *count == 0 {
                    map.remove(&key);
                }
            }
            Acc::Distinct {
                values,
                exact: e,
                float: f,
            } => {
                let Some(rows) = &arg.rows else { return };
                let key = rows.row(row).owned();
                let count = values.entry(key.clone()).or_insert(0);
                let before = *count;
                *count += sign;
                let after = *count;
                if after == 0 {
                    values.remove(&key);
                }
                if before <= 0 && after > 0 {
                    *e = e.wrapping_add(exact);
                    f.add(float, 1);
                } else if before > 0 && after <= 0 {
                    *e = e.wrapping_sub(exact);
                    f.add(float, -1);
                }
            }
        }
    }

    /// The aggregate's current value, typed as the output field.
    pub fn value(&self, acc: &Acc) -> Result<ScalarValue> {
        let v = match acc {
            Acc::Count(n) => ScalarValue::Int64(Some(*n)),
            Acc::Sum { n, exact, float } => self.sum_or_avg(*n, *exact, float.value())?,
            Acc::Distinct {
                values,
                exact,
                float,
            } => {
                let n = values.values().filter(|c| **c > 0).count() as i64;
                if self.kind == AggKind::Count {
                    ScalarValue::Int64(Some(n))
                } else {
                    self.sum_or_avg(n, *exact, float.value())?
                }
            }
            Acc::Extremes(map) => {
                let mut present = map.iter().filter(|(_, c)| **c > 0).map(|(k, _)| k);
                let found = if self.kind == AggKind::Min {
                    present.next()
                } else {
                    present.next_back()
                };
                match (found, &self.values) {
                    (Some(row), Some(conv)) => {
                        let cols = conv.convert_rows([row.row()])?;
                        let col = cols
                            .first()
                            .ok_or_else(|| Error::internal("MIN/MAX value without a column"))?;
                        ScalarValue::try_from_array(col, 0)?
                    }
                    _ => ScalarValue::try_from(&self.output_type)?,
                }
            }
        };
        if v.data_type() == self.output_type {
            Ok(v)
        } else {
            Ok(v.cast_to(&self.output_type)?)
        }
    }

    fn sum_or_avg(&self, n: i64, exact: i128, float: f64) -> Result<ScalarValue> {
        if n <= 0 {
            return Ok(ScalarValue::try_from(&self.output_type)?);
        }
        let class = self
            .class
            .ok_or_else(|| Error::internal("SUM/AVG without a numeric class"))?;
        Ok(match (self.kind, class) {
            (AggKind::Sum, NumClass::Float) => ScalarValue::Float64(Some(float)),
            (AggKind::Sum, NumClass::Exact { scale }) => match &self.output_type {
                DataType::Decimal128(p, s) if *s == scale => {
                    ScalarValue::Decimal128(Some(exact), *p, *s)
                }
                // Integer sums overflow as Java's arithmetic does, wrapping (as the batch
                // aggregates in `functions::aggregates`).
                DataType::Int64 => ScalarValue::Int64(Some(exact as i64)),
                DataType::Int32 => ScalarValue::Int32(Some(exact as i32)),
                DataType::Int16 => ScalarValue::Int16(Some(exact as i16)),
                DataType::Int8 => ScalarValue::Int8(Some(exact as i8)),
                DataType::UInt64 => ScalarValue::UInt64(Some(exact as u64)),
                _ => ScalarValue::Decimal128(Some(exact), 38, scale),
            },
            (_, NumClass::Float) => ScalarValue::Float64(Some(float / n as f64)),
            (_, NumClass::Exact { scale }) => match &self.output_type {
                DataType::Decimal128(p, s) if *s >= scale => {
                    // As Flink (`functions::aggregates`): scale the sum up to the result scale,
                    // then divide, rounding half away from zero.
                    let factor = 10i128
                        .checked_pow((*s - scale) as u32)
                        .ok_or_else(|| Error::invalid("AVG: decimal scale overflow"))?;
                    let scaled = exact
                        .checked_mul(factor)
                        .ok_or_else(|| Error::invalid("Arithmetic overflow in AVG"))?;
                    ScalarValue::Decimal128(Some(div_half_up(scaled, n as i128)), *p, *s)
                }
                // Integer AVG: a `long` sum (wrapping) divided truncating toward zero, as Flink
                // (and the batch aggregate, `functions::aggregates::int_avg`).
                t if t.is_integer() => {
                    ScalarValue::Int64(Some((exact as i64).wrapping_div(n))).cast_to(t)?
                }
                _ => {
                    let unscaled = exact as f64 / 10f64.powi(scale as i32);
                    ScalarValue::Float64(Some(unscaled / n as f64))
                }
            },
        })
    }
}

/// The checkpoint tag of an accumulator's variant.
fn acc_tag(acc: &Acc) -> u8 {
    match acc {
        Acc::Count(_) => 0,
        Acc::Sum { .. } => 1,
        Acc::Extremes(_) => 2,
        Acc::Distinct { .. } => 3,
    }
}

/// `a / b` (`b` > 0) rounded half away from zero (Java's `RoundingMode.HALF_UP`).
fn div_half_up(a: i128, b: i128) -> i128 {
    let (q, r) = (a / b, a % b);
    if r.unsigned_abs() * 2 >= b.unsigned_abs() {
        q + a.signum()
    } else {
        q
    }
}

fn num_class(t: &DataType) -> Option<NumClass> {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Some(NumClass::Exact { scale: 0 }),
        DataType::Decimal128(_, s) => Some(NumClass::Exact { scale: *s }),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Some(NumClass::Float),
        DataType::Null => Some(NumClass::Float),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int32Array;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::Operator as BinOp;
    use datafusion::physical_expr::expressions::binary;
    use datafusion::physical_expr::expressions::{Column, col, lit};

    fn batch_i32(values: &[Option<i32>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(values.to_vec()))]).unwrap()
    }

    fn x() -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new("x", 0))
    }

    fn run(spec: &AggSpec, b: &RecordBatch, signs: &[i64], acc: &mut Acc) {
        let ev = spec.evaluate(b).unwrap();
        for (i, s) in signs.iter().enumerate() {
            spec.update(acc, &ev, i, *s);
        }
    }

    #[test]
    fn min_max_survive_retracting_the_extreme() {
        let min = AggSpec::new(
            AggKind::Min,
            false,
            Some((x(), DataType::Int32)),
            None,
            DataType::Int32,
        )
        .unwrap();
        let max = AggSpec::new(
            AggKind::Max,
            false,
            Some((x(), DataType::Int32)),
            None,
            DataType::Int32,
        )
        .unwrap();
        let b = batch_i32(&[Some(3), Some(1), Some(1), Some(7), None]);
        let (mut a, mut z) = (min.new_acc(), max.new_acc());
        run(&min, &b, &[1, 1, 1, 1, 1], &mut a);
        run(&max, &b, &[1, 1, 1, 1, 1], &mut z);
        assert_eq!(min.value(&a).unwrap(), ScalarValue::Int32(Some(1)));
        assert_eq!(max.value(&z).unwrap(), ScalarValue::Int32(Some(7)));
        // Retract one of the two 1s: still 1; then the other: 3. Retract 7: max 3.
        let r = batch_i32(&[Some(1)]);
        run(&min, &r, &[-1], &mut a);
        assert_eq!(min.value(&a).unwrap(), ScalarValue::Int32(Some(1)));
        run(&min, &r, &[-1], &mut a);
        assert_eq!(min.value(&a).unwrap(), ScalarValue::Int32(Some(3)));
        run(&max, &batch_i32(&[Some(7)]), &[-1], &mut z);
        assert_eq!(max.value(&z).unwrap(), ScalarValue::Int32(Some(3)));
        // Everything gone: NULL.
        run(&min, &batch_i32(&[Some(3), Some(7)]), &[-1, -1], &mut a);
        assert_eq!(min.value(&a).unwrap(), ScalarValue::Int32(None));
    }

    #[test]
    fn count_sum_avg_with_retraction_and_nulls() {
        let count_star = AggSpec::new(AggKind::Count, false, None, None, DataType::Int64).unwrap();
        let count = AggSpec::new(
            AggKind::Count,
            false,
            Some((x(), DataType::Int32)),
            None,
            DataType::Int64,
        )
        .unwrap();
        let sum = AggSpec::new(
            AggKind::Sum,
            false,
            Some((x(), DataType::Int32)),
            None,
            DataType::Int64,
        )
        .unwrap();
        let avg = AggSpec::new(
            AggKind::Avg,
            false,
            Some((x(), DataType::Int32)),
            None,
            DataType::Float64,
        )
        .unwrap();
        let b = batch_i32(&[Some(2), None, Some(4), Some(9)]);
        let signs = [1, 1, 1, 1];
        let mut accs: Vec<Acc> = [&count_star, &count, &sum, &avg]
            .iter()
            .map(|s| s.new_acc())
            .collect();
        for (s, a) in [&count_star, &count, &sum, &avg]
            .iter()
            .zip(accs.iter_mut())
        {
            run(s, &b, &signs, a);
        }
        assert_eq!(
            count_star.value(&accs[0]).unwrap(),
            ScalarValue::Int64(Some(4))
        );
        assert_eq!(count.value(&accs[1]).unwrap(), ScalarValue::Int64(Some(3)));
        assert_eq!(sum.value(&accs[2]).unwrap(), ScalarValue::Int64(Some(15)));
        assert_eq!(
            avg.value(&accs[3]).unwrap(),
            ScalarValue::Float64(Some(5.0))
        );
        // Retract 9 and the null.
        let r = batch_i32(&[Some(9), None]);
        for (s, a) in [&count_star, &count, &sum, &avg]
            .iter()
            .zip(accs.iter_mut())
        {
            run(s, &r, &[-1, -1], a);
        }
        assert_eq!(
            count_star.value(&accs[0]).unwrap(),
            ScalarValue::Int64(Some(2))
        );
        assert_eq!(count.value(&accs[1]).unwrap(), ScalarValue::Int64(Some(2)));
        assert_eq!(sum.value(&accs[2]).unwrap(), ScalarValue::Int64(Some(6)));
        assert_eq!(
            avg.value(&accs[3]).unwrap(),
            ScalarValue::Float64(Some(3.0))
        );
        // Retract the rest: SUM and AVG become NULL, counts 0.
        let r = batch_i32(&[Some(2), Some(4)]);
        for (s, a) in [&count_star, &count, &sum, &avg]
            .iter()
            .zip(accs.iter_mut())
        {
            run(s, &r, &[-1, -1], a);
        }
        assert_eq!(count.value(&accs[1]).unwrap(), ScalarValue::Int64(Some(0)));
        assert_eq!(sum.value(&accs[2]).unwrap(), ScalarValue::Int64(None));
        assert_eq!(avg.value(&accs[3]).unwrap(), ScalarValue::Float64(None));
    }

    #[test]
    fn distinct_and_filter() {
        let cd = AggSpec::new(
            AggKind::Count,
            true,
            Some((x(), DataType::Int32)),
            None,
            DataType::Int64,
        )
        .unwrap();
        let sd = AggSpec::new(
            AggKind::Sum,
            true,
            Some((x(), DataType::Int32)),
            None,
            DataType::Int64,
        )
        .unwrap();
        // FILTER (WHERE x > 2)
        let schema = batch_i32(&[]).schema();
        let pred: Arc<dyn PhysicalExpr> =
            binary(col("x", &schema).unwrap(), BinOp::Gt, lit(2i32), &schema).unwrap();
        let filtered =
            AggSpec::new(AggKind::Count, false, None, Some(pred), DataType::Int64).unwrap();
        let b = batch_i32(&[Some(5), Some(5), Some(1), Some(3)]);
        let (mut a, mut s, mut f) = (cd.new_acc(), sd.new_acc(), filtered.new_acc());
        run(&cd, &b, &[1, 1, 1, 1], &mut a);
        run(&sd, &b, &[1, 1, 1, 1], &mut s);
        run(&filtered, &b, &[1, 1, 1, 1], &mut f);
        assert_eq!(cd.value(&a).unwrap(), ScalarValue::Int64(Some(3)));
        assert_eq!(sd.value(&s).unwrap(), ScalarValue::Int64(Some(9)));
        assert_eq!(filtered.value(&f).unwrap(), ScalarValue::Int64(Some(3)));
        // Retract one 5: still distinct; then the other: gone.
        let r = batch_i32(&[Some(5)]);
        run(&cd, &r, &[-1], &mut a);
        run(&sd, &r, &[-1], &mut s);
        assert_eq!(cd.value(&a).unwrap(), ScalarValue::Int64(Some(3)));
        assert_eq!(sd.value(&s).unwrap(), ScalarValue::Int64(Some(9)));
        run(&cd, &r, &[-1], &mut a);
        run(&sd, &r, &[-1], &mut s);
        assert_eq!(cd.value(&a).unwrap(), ScalarValue::Int64(Some(2)));
        assert_eq!(sd.value(&s).unwrap(), ScalarValue::Int64(Some(4)));
    }

    #[test]
    fn decimal_sum_and_avg_match_datafusion_types() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "x",
            DataType::Decimal128(5, 2),
            true,
        )]));
        let values = Decimal128Array::from(vec![Some(100), Some(200), Some(201)])
            .with_precision_and_scale(5, 2)
            .unwrap();
        let b = RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap();
        let sum = AggSpec::new(
            AggKind::Sum,
            false,
            Some((x(), DataType::Decimal128(5, 2))),
            None,
            DataType::Decimal128(15, 2),
        )
        .unwrap();
        let avg = AggSpec::new(
            AggKind::Avg,
            false,
            Some((x(), DataType::Decimal128(5, 2))),
            None,
            DataType::Decimal128(9, 6),
        )
        .unwrap();
        let (mut s, mut a) = (sum.new_acc(), avg.new_acc());
        run(&sum, &b, &[1, 1, 1], &mut s);
        run(&avg, &b, &[1, 1, 1], &mut a);
        assert_eq!(
            sum.value(&s).unwrap(),
            ScalarValue::Decimal128(Some(501), 15, 2)
        );
        // 5.01 / 3 = 1.67 (truncated at 6 digits: 1.670000)
        assert_eq!(
            avg.value(&a).unwrap(),
            ScalarValue::Decimal128(Some(1_670_000), 9, 6)
        );
        // Strings are not summable.
        let strings = AggSpec::new(
            AggKind::Sum,
            false,
            Some((x(), DataType::Utf8)),
            None,
            DataType::Utf8,
        );
        assert!(strings.is_err());
    }

    #[test]
    fn accumulators_round_trip_exactly_and_reject_corrupt_bytes() {
        let int = |kind, distinct| {
            AggSpec::new(
                kind,
                distinct,
                Some((x(), DataType::Int32)),
                None,
                DataType::Int64,
            )
            .unwrap()
        };
        let float = AggSpec::new(
            AggKind::Sum,
            false,
            Some((x(), DataType::Float64)),
            None,
            DataType::Float64,
        )
        .unwrap();
        let ints = batch_i32(&[Some(3), Some(1), Some(3), None, Some(-7)]);
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
        let floats = RecordBatch::try_new(
            schema,
            vec![Arc::new(Float64Array::from(vec![
                1e16,
                0.1,
                -3.3,
                f64::INFINITY,
                f64::NAN,
                -0.0,
                5e-324,
            ]))],
        )
        .unwrap();
        let cases = [
            (
                AggSpec::new(AggKind::Count, false, None, None, DataType::Int64).unwrap(),
                &ints,
            ),
            (int(AggKind::Min, false), &ints),
            (int(AggKind::Sum, true), &ints),
            (int(AggKind::Avg, false), &ints),
            (float, &floats),
        ];
        for (spec, batch) in cases {
            let mut acc = spec.new_acc();
            let signs: Vec<i64> = (0..batch.num_rows()).map(|i| [1, 1, -1][i % 3]).collect();
            run(&spec, batch, &signs, &mut acc);
            let mut e = Enc::default();
            spec.encode_acc(&acc, &mut e);
            let mut d = Dec::new(&e.0);
            let back = spec.decode_acc(&mut d).unwrap();
            d.finish().unwrap();
            // The same fields bit for bit: written again, the same bytes.
            let mut again = Enc::default();
            spec.encode_acc(&back, &mut again);
            assert_eq!(again.0, e.0, "{}", spec.state_format());
            let (a, b) = (spec.value(&acc).unwrap(), spec.value(&back).unwrap());
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
            // Every truncation, and another accumulator kind, is an error (never a panic).
            for cut in 0..e.0.len() {
                assert!(
                    spec.decode_acc(&mut Dec::new(&e.0[..cut])).is_err(),
                    "cut {cut}"
                );
            }
            let mut other = e.0.clone();
            other[0] = (other[0] + 1) % 4;
            let err = spec.decode_acc(&mut Dec::new(&other)).unwrap_err();
            assert!(
                err.to_string().contains("corrupt checkpoint state"),
                "{err}"
            );
        }
    }

    /// A deterministic shuffle (xorshift) of `0..n`.
    fn shuffled(n: usize, mut seed: u64) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        v
    }

    #[test]
    fn float_sums_do_not_depend_on_order_or_retractions() {
        // Values of very different magnitudes: a plain f64 running sum gives different last
        // digits per order (and retracting 1e16 would lose the small ones).
        let values: Vec<f64> = (0..200)
            .map(|i| match i % 4 {
                0 => 1e16 + i as f64,
                1 => 0.1 * i as f64,
                2 => -1e-3 / (i as f64 + 1.0),
                _ => -(1e16 - 3.0 * i as f64),
            })
            .collect();
        let expected = {
            let mut s = ExactFloatSum::default();
            for v in &values {
                s.add(*v, 1);
            }
            s.value()
        };
        // Plain summation is order-dependent here: the test would be vacuous otherwise.
        let naive: Vec<f64> = (1..6)
            .map(|seed| {
                shuffled(values.len(), seed)
                    .iter()
                    .map(|&i| values[i])
                    .sum()
            })
            .collect();
        assert!(naive.iter().any(|v| *v != naive[0]), "{naive:?}");
        for seed in 1..20 {
            let mut s = ExactFloatSum::default();
            // Add everything plus some extra values, retract the extras, in shuffled orders.
            let extras = [1e300, -7.25, 3.5e-10, 1e16];
            for &i in &shuffled(values.len(), seed) {
                s.add(values[i], 1);
                if i % 50 == 0 {
                    s.add(extras[i / 50], 1);
                }
            }
            for e in extras {
                s.add(e, -1);
            }
            assert_eq!(s.value().to_bits(), expected.to_bits(), "seed {seed}");
        }
        // Correct rounding: 0.1 ten times is exactly 1.0 (a running sum gives 0.9999999999999999).
        let mut s = ExactFloatSum::default();
        (0..10).for_each(|_| s.add(0.1, 1));
        assert_eq!(s.value(), 1.0);
        // Infinities and NaN are counted, so retracting them restores the finite sum.
        s.add(f64::INFINITY, 1);
        assert_eq!(s.value(), f64::INFINITY);
        s.add(f64::NAN, 1);
        assert!(s.value().is_nan());
        s.add(f64::INFINITY, -1);
        s.add(f64::NAN, -1);
        assert_eq!(s.value(), 1.0);
    }

    #[test]
    fn double_avg_is_the_same_in_any_order() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
        let values: Vec<f64> = (0..100).map(|i| 1.0 / (i as f64 + 3.0) * 1e6).collect();
        let avg = AggSpec::new(
            AggKind::Avg,
            false,
            Some((x(), DataType::Float64)),
            None,
            DataType::Float64,
        )
        .unwrap();
        let mut results = Vec::new();
        for seed in 1..10 {
            let order = shuffled(values.len(), seed);
            let ordered: Vec<f64> = order.iter().map(|&i| values[i]).collect();
            let b = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Float64Array::from(ordered))],
            )
            .unwrap();
            let mut acc = avg.new_acc();
            // Add all, retract the first half, add it back.
            let half = values.len() / 2;
            let mut signs = vec![1i64; values.len()];
            run(&avg, &b, &signs, &mut acc);
            signs.iter_mut().skip(half).for_each(|s| *s = 0);
            signs.iter_mut().take(half).for_each(|s| *s = -1);
            let ev = avg.evaluate(&b).unwrap();
            for (i, s) in signs.iter().enumerate() {
                if *s != 0 {
                    avg.update(&mut acc, &ev, i, *s);
                }
            }
            for i in 0..half {
                avg.update(&mut acc, &ev, i, 1);
            }
            results.push(avg.value(&acc).unwrap());
        }
        assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    }

    #[test]
    fn integer_avg_truncates_and_decimal_avg_rounds_half_up() {
        // Flink: AVG(INT) of 1, 2, -7 is INT -1 (-4 / 3 truncated toward zero).
        let avg = AggSpec::new(
            AggKind::Avg,
            false,
            Some((x(), DataType::Int32)),
            None,
            DataType::Int32,
        )
        .unwrap();
        let mut a = avg.new_acc();
        run(
            &avg,
            &batch_i32(&[Some(1), Some(2), Some(-7)]),
            &[1, 1, 1],
            &mut a,
        );
        assert_eq!(avg.value(&a).unwrap(), ScalarValue::Int32(Some(-1)));
        // Flink: AVG(DECIMAL(10, 2)) of 1.00, 2.00, -7.01 is DECIMAL(38, 6) -1.336667.
        let schema = Arc::new(Schema::new(vec![Field::new(
            "x",
            DataType::Decimal128(10, 2),
            true,
        )]));
        let values = Decimal128Array::from(vec![Some(100), Some(200), Some(-701)])
            .with_precision_and_scale(10, 2)
            .unwrap();
        let b = RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap();
        let avg = AggSpec::new(
            AggKind::Avg,
            false,
            Some((x(), DataType::Decimal128(10, 2))),
            None,
            DataType::Decimal128(38, 6),
        )
        .unwrap();
        let mut a = avg.new_acc();
        run(&avg, &b, &[1, 1, 1], &mut a);
        assert_eq!(
            avg.value(&a).unwrap(),
            ScalarValue::Decimal128(Some(-1_336_667), 38, 6)
        );
        assert_eq!(div_half_up(5, 2), 3);
        assert_eq!(div_half_up(-5, 2), -3);
        assert_eq!(div_half_up(-4, 3), -1);
    }
}
