//! Flink's `BITMAP_*` built-ins over 32-bit Roaring bitmaps (the `roaring` crate), in
//! expression evaluation (the scalar functions, row by row through `rowwise::RowFn`, both
//! engines) and as DataFusion aggregate UDFs (batch; a streaming query using them is refused
//! with a "not supported yet" error by `stream::ops::aggregate`).
//!
//! Weir has no `BITMAP` type: a bitmap is a `BYTES` value holding the bitmap in the portable
//! 32-bit RoaringBitmap format (the format Flink's `BITMAP_TO_BYTES` writes, run containers
//! optimized as Flink's `runOptimize`), so `BITMAP_TO_BYTES` / `BITMAP_FROM_BYTES` only check
//! and re-encode, and any `BYTES` argument that is not such a bitmap raises. The values are
//! `INT`s taken as unsigned 32-bit numbers, as Java's RoaringBitmap does.
//!
//! - `BITMAP_BUILD(ARRAY<INT>)` → bitmap of the array's non-NULL values (each must fit `INT`).
//! - `BITMAP_AND` / `BITMAP_OR` / `BITMAP_XOR` / `BITMAP_ANDNOT(b1, b2)` → bitmap.
//! - `BITMAP_CARDINALITY(b)` → `BIGINT`.
//! - `BITMAP_TO_ARRAY(b)` → `ARRAY<INT>` in unsigned order (so `-1` comes last).
//! - `BITMAP_TO_STRING(b)` → `STRING`: `{0,1,4294967295}` (unsigned), cut with `...` past
//!   524288 characters, as Java's `RoaringBitmap.toString`.
//! - `BITMAP_TO_BYTES(b)` → `BYTES`; `BITMAP_FROM_BYTES(bytes)` → bitmap (invalid bytes raise).
//!
//! NULL in → NULL out. Aggregates (NULL inputs skipped):
//! - `BITMAP_BUILD_AGG(int)` → bitmap of the values; `BITMAP_BUILD_CARDINALITY_AGG(int)` →
//!   `BIGINT`; both NULL when there are no values.
//! - `BITMAP_AND_AGG` / `BITMAP_OR_AGG` / `BITMAP_XOR_AGG(bitmap)` → bitmap, and the
//!   `..._CARDINALITY_AGG` forms → `BIGINT`: NULL when there is no non-NULL bitmap.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ScalarUDF, Signature, Volatility,
};
use roaring::RoaringBitmap;

use super::rowwise::{Ctx, RowFn, sql_name};

/// The scalar functions of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        RowFn::new("bitmap_build", &[1], int_array_arg, ret_bitmap, build).udf(),
        RowFn::new("bitmap_and", &[2], bitmap_arg, ret_bitmap, and).udf(),
        RowFn::new("bitmap_or", &[2], bitmap_arg, ret_bitmap, or).udf(),
        RowFn::new("bitmap_xor", &[2], bitmap_arg, ret_bitmap, xor).udf(),
        RowFn::new("bitmap_andnot", &[2], bitmap_arg, ret_bitmap, andnot).udf(),
        RowFn::new(
            "bitmap_cardinality",
            &[1],
            bitmap_arg,
            |_, _| Ok(DataType::Int64),
            cardinality,
        )
        .udf(),
        RowFn::new(
            "bitmap_to_array",
            &[1],
            bitmap_arg,
            |_, _| Ok(DataType::new_list(DataType::Int32, true)),
            to_array,
        )
        .udf(),
        RowFn::new(
            "bitmap_to_string",
            &[1],
            bitmap_arg,
            |_, _| Ok(DataType::Utf8),
            to_string,
        )
        .udf(),
        RowFn::new("bitmap_to_bytes", &[1], bitmap_arg, ret_bitmap, reencode).udf(),
        RowFn::new("bitmap_from_bytes", &[1], bitmap_arg, ret_bitmap, reencode).udf(),
    ]
}

/// The aggregates of this module.
pub fn udafs() -> Vec<AggregateUDF> {
    let mut out = Vec::new();
    for op in [Op::Build, Op::And, Op::Or, Op::Xor] {
        for cardinality in [false, true] {
            out.push(AggregateUDF::new_from_impl(BitmapAgg::new(op, cardinality)));
        }
    }
    out
}

fn ret_bitmap(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Binary)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null
    )
}

fn bitmap_arg(func: &str, _: usize, t: &DataType) -> DfResult<DataType> {
    if is_binary(t) {
        Ok(DataType::Binary)
    } else {
        plan_err!(
            "{func} expects a BITMAP (a BYTES value), got {}",
            sql_name(t)
        )
    }
}

fn int_array_arg(func: &str, _: usize, t: &DataType) -> DfResult<DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
            if f.data_type().is_integer() || f.data_type() == &DataType::Null =>
        {
            Ok(DataType::new_list(DataType::Int64, true))
        }
        DataType::Null => Ok(DataType::new_list(DataType::Int64, true)),
        other => plan_err!("{func} expects an ARRAY<INT>, got {}", sql_name(other)),
    }
}

/// A bitmap value's bytes as a bitmap.
fn read(func: &str, v: &ScalarValue) -> DfResult<RoaringBitmap> {
    let bytes = match v {
        ScalarValue::Binary(Some(b))
        | ScalarValue::LargeBinary(Some(b))
        | ScalarValue::BinaryView(Some(b)) => b,
        other => {
            return exec_err!(
                "{func}: expected a BITMAP, got {}",
                sql_name(&other.data_type())
            );
        }
    };
    decode(func, bytes)
}

fn decode(func: &str, bytes: &[u8]) -> DfResult<RoaringBitmap> {
    match RoaringBitmap::deserialize_from(bytes) {
        Ok(b) => Ok(b),
        Err(e) => exec_err!("{func}: the bytes are not a 32-bit RoaringBitmap: {e}"),
    }
}

/// A bitmap as its portable bytes, run containers optimized (as Flink's `toBytes`).
fn encode(mut b: RoaringBitmap) -> DfResult<Vec<u8>> {
    b.optimize();
    let mut out = Vec::with_capacity(b.serialized_size());
    b.serialize_into(&mut out)
        .map_err(|e| datafusion::error::DataFusionError::Execution(format!("BITMAP: {e}")))?;
    Ok(out)
}

fn bitmap(b: RoaringBitmap) -> DfResult<ScalarValue> {
    Ok(ScalarValue::Binary(Some(encode(b)?)))
}

/// An `INT` value as the bitmap's unsigned 32-bit value (Java's bit pattern).
fn as_u32(func: &str, v: i64) -> DfResult<u32> {
    match i32::try_from(v) {
        Ok(i) => Ok(i as u32),
        Err(_) => exec_err!("{func}: {v} is out of the INT range of bitmap values"),
    }
}

fn build(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let ScalarValue::List(list) = &args[0] else {
        return exec_err!("BITMAP_BUILD: expected an ARRAY<INT>");
    };
    let items = cast(&list.value(0), &DataType::Int64)?;
    let mut b = RoaringBitmap::new();
    for v in items.as_primitive::<Int64Type>().iter().flatten() {
        b.insert(as_u32("BITMAP_BUILD", v)?);
    }
    bitmap(b)
}

fn binary_op(
    func: &str,
    args: &[ScalarValue],
    op: fn(RoaringBitmap, &RoaringBitmap) -> RoaringBitmap,
) -> DfResult<ScalarValue> {
    let a = read(func, &args[0])?;
    let b = read(func, &args[1])?;
    bitmap(op(a, &b))
}

fn and(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    binary_op("BITMAP_AND", args, |a, b| a & b)
}

fn or(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    binary_op("BITMAP_OR", args, |a, b| a | b)
}

fn xor(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    binary_op("BITMAP_XOR", args, |a, b| a ^ b)
}

fn andnot(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    binary_op("BITMAP_ANDNOT", args, |a, b| a - b)
}

fn cardinality(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let b = read("BITMAP_CARDINALITY", &args[0])?;
    Ok(ScalarValue::Int64(i64::try_from(b.len()).ok()))
}

fn to_array(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let b = read("BITMAP_TO_ARRAY", &args[0])?;
    let values: Vec<ScalarValue> = b
        .iter()
        .map(|v| ScalarValue::Int32(Some(v as i32)))
        .collect();
    Ok(ScalarValue::List(ScalarValue::new_list_nullable(
        &values,
        &DataType::Int32,
    )))
}

/// Java's `RoaringBitmap.toString` cuts the text past this many characters.
const STRING_LIMIT: usize = 0x80000;

fn bitmap_text(b: &RoaringBitmap) -> String {
    let mut out = String::from("{");
    for (i, v) in b.iter().enumerate() {
        if i > 0 {
            out.push(',');
            if out.len() > STRING_LIMIT {
                out.push_str("...");
                break;
            }
        }
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

fn to_string(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    let b = read("BITMAP_TO_STRING", &args[0])?;
    Ok(ScalarValue::Utf8(Some(bitmap_text(&b))))
}

/// `BITMAP_TO_BYTES` / `BITMAP_FROM_BYTES`: the bytes checked and written canonically.
fn reencode(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    bitmap(read("BITMAP_FROM_BYTES / BITMAP_TO_BYTES", &args[0])?)
}

// ---- aggregates

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    /// From `INT` values.
    Build,
    And,
    Or,
    Xor,
}

/// One of the eight bitmap aggregates; see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BitmapAgg {
    name: String,
    op: Op,
    cardinality: bool,
    signature: Signature,
}

impl BitmapAgg {
    fn new(op: Op, cardinality: bool) -> Self {
        let base = match op {
            Op::Build => "bitmap_build",
            Op::And => "bitmap_and",
            Op::Or => "bitmap_or",
            Op::Xor => "bitmap_xor",
        };
        let name = if cardinality {
            format!("{base}_cardinality_agg")
        } else {
            format!("{base}_agg")
        };
        BitmapAgg {
            name,
            op,
            cardinality,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for BitmapAgg {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let upper = self.name.to_uppercase();
        let [t] = arg_types else {
            return plan_err!("{upper} takes 1 argument, got {}", arg_types.len());
        };
        match self.op {
            Op::Build if t.is_integer() || t == &DataType::Null => Ok(vec![DataType::Int64]),
            Op::Build => plan_err!("{upper} expects an INT argument, got {}", sql_name(t)),
            _ if is_binary(t) => Ok(vec![DataType::Binary]),
            _ => plan_err!(
                "{upper} expects a BITMAP (a BYTES value), got {}",
                sql_name(t)
            ),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(if self.cardinality {
            DataType::Int64
        } else {
            DataType::Binary
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "bitmap"),
            DataType::Binary,
            true,
        ))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(BitmapAcc {
            name: self.name.to_uppercase(),
            op: self.op,
            cardinality: self.cardinality,
            bitmap: None,
        }))
    }
}

#[derive(Debug)]
struct BitmapAcc {
    name: String,
    op: Op,
    cardinality: bool,
    /// `None` until a non-NULL input (or a non-empty partial state) arrives.
    bitmap: Option<RoaringBitmap>,
}

impl BitmapAcc {
    /// Combines a bitmap into the accumulator (for `Build`, partial states are unions).
    fn combine(&mut self, other: RoaringBitmap) {
        self.bitmap = Some(match self.bitmap.take() {
            None => other,
            Some(acc) => match self.op {
                Op::And => acc & other,
                Op::Build | Op::Or => acc | other,
                Op::Xor => acc ^ other,
            },
        });
    }
}

impl Accumulator for BitmapAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        if self.op == Op::Build {
            let ints = cast(&values[0], &DataType::Int64)?;
            let b = self.bitmap.get_or_insert_with(RoaringBitmap::new);
            for v in ints.as_primitive::<Int64Type>().iter().flatten() {
                b.insert(as_u32(&self.name, v)?);
            }
            return Ok(());
        }
        let bytes = cast(&values[0], &DataType::Binary)?;
        for b in bytes.as_binary::<i32>().iter().flatten() {
            let b = decode(&self.name, b)?;
            self.combine(b);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        // BITMAP_BUILD_AGG of no values is NULL, as the others without a non-NULL bitmap.
        let b = match &self.bitmap {
            Some(b) if !(self.op == Op::Build && b.is_empty()) => b,
            _ => {
                return Ok(if self.cardinality {
                    ScalarValue::Int64(None)
                } else {
                    ScalarValue::Binary(None)
                });
            }
        };
        if self.cardinality {
            return Ok(ScalarValue::Int64(i64::try_from(b.len()).ok()));
        }
        bitmap(b.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .bitmap
                .as_ref()
                .map(RoaringBitmap::serialized_size)
                .unwrap_or(0)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![match &self.bitmap {
            Some(b) => ScalarValue::Binary(Some(encode(b.clone())?)),
            None => ScalarValue::Binary(None),
        }])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let bytes = states[0].as_binary::<i32>();
        for b in bytes.iter().flatten() {
            let b = decode(&self.name, b)?;
            self.combine(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BinaryArray, Int64Array};

    fn call(
        f: fn(&[ScalarValue], &Ctx) -> DfResult<ScalarValue>,
        args: &[ScalarValue],
    ) -> DfResult<ScalarValue> {
        let ret = DataType::Binary;
        f(
            args,
            &Ctx {
                ret: &ret,
                zone: None,
            },
        )
    }

    fn built(values: &[Option<i64>]) -> ScalarValue {
        let items: Vec<ScalarValue> = values.iter().map(|v| ScalarValue::Int64(*v)).collect();
        let list = ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Int64));
        call(build, &[list]).unwrap()
    }

    fn text(b: &ScalarValue) -> String {
        match call(to_string, std::slice::from_ref(b)).unwrap() {
            ScalarValue::Utf8(Some(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scalar_functions() {
        let a = built(&[Some(1), Some(2), None, Some(-1)]);
        let b = built(&[Some(2), Some(3)]);
        assert_eq!(text(&a), "{1,2,4294967295}");
        assert_eq!(
            call(cardinality, std::slice::from_ref(&a)).unwrap(),
            ScalarValue::Int64(Some(3))
        );
        assert_eq!(text(&call(and, &[a.clone(), b.clone()]).unwrap()), "{2}");
        assert_eq!(
            text(&call(or, &[a.clone(), b.clone()]).unwrap()),
            "{1,2,3,4294967295}"
        );
        assert_eq!(
            text(&call(xor, &[a.clone(), b.clone()]).unwrap()),
            "{1,3,4294967295}"
        );
        assert_eq!(
            text(&call(andnot, &[a.clone(), b]).unwrap()),
            "{1,4294967295}"
        );
        let ScalarValue::List(l) = call(to_array, std::slice::from_ref(&a)).unwrap() else {
            panic!("not a list");
        };
        let items = l.value(0);
        let ints: Vec<i32> = items
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(ints, [1, 2, -1]);
        assert_eq!(call(reencode, std::slice::from_ref(&a)).unwrap(), a);
        assert_eq!(text(&built(&[])), "{}");
        assert!(call(reencode, &[ScalarValue::Binary(Some(vec![1, 2, 3]))]).is_err());
        let items = [ScalarValue::Int64(Some(1 << 40))];
        let list = ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Int64));
        assert!(call(build, &[list]).is_err());
    }

    #[test]
    fn portable_format() {
        // The RoaringFormatSpec's array-container layout: cookie 12346, one container of
        // cardinality 1 (stored minus one), then the 16-bit value; no run containers here.
        let b = built(&[Some(1)]);
        assert_eq!(
            b,
            ScalarValue::Binary(Some(vec![
                0x3a, 0x30, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 1, 0
            ]))
        );
    }

    #[test]
    fn text_is_cut_like_java() {
        let b: RoaringBitmap = (0..200_000u32).collect();
        let s = bitmap_text(&b);
        assert!(s.ends_with(",...}"), "{}", &s[s.len() - 20..]);
        assert!(s.len() > STRING_LIMIT && s.len() < STRING_LIMIT + 20);
    }

    fn acc(op: Op, cardinality: bool) -> BitmapAcc {
        BitmapAcc {
            name: "T".into(),
            op,
            cardinality,
            bitmap: None,
        }
    }

    #[test]
    fn aggregates() {
        let mut build_agg = acc(Op::Build, true);
        assert_eq!(build_agg.evaluate().unwrap(), ScalarValue::Int64(None));
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(2), Some(1)]));
        build_agg.update_batch(&[ints]).unwrap();
        assert_eq!(build_agg.evaluate().unwrap(), ScalarValue::Int64(Some(2)));

        let bytes = |v: &ScalarValue| match v {
            ScalarValue::Binary(Some(b)) => b.clone(),
            _ => panic!("not a bitmap"),
        };
        let (x, y) = (built(&[Some(1), Some(2)]), built(&[Some(2), Some(3)]));
        let input: ArrayRef = Arc::new(BinaryArray::from(vec![
            Some(bytes(&x).as_slice()),
            None,
            Some(bytes(&y).as_slice()),
        ]));
        for (op, want) in [(Op::And, "{2}"), (Op::Or, "{1,2,3}"), (Op::Xor, "{1,3}")] {
            let mut a = acc(op, false);
            assert_eq!(a.evaluate().unwrap(), ScalarValue::Binary(None));
            a.update_batch(std::slice::from_ref(&input)).unwrap();
            // Merging a partial state of one more bitmap.
            let mut other = acc(op, false);
            other
                .update_batch(&[Arc::new(BinaryArray::from(vec![Some(
                    bytes(&x).as_slice(),
                )]))])
                .unwrap();
            let state = other.state().unwrap()[0].to_array().unwrap();
            a.merge_batch(&[state]).unwrap();
            let merged_want = match op {
                Op::And => "{2}",
                Op::Or => "{1,2,3}",
                _ => "{2,3}",
            };
            assert_eq!(text(&a.evaluate().unwrap()), merged_want, "{op:?} ({want})");
        }
    }
}
