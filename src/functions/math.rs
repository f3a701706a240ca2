//! Flink's numeric built-ins DataFusion lacks or types differently, evaluated row by row
//! through `rowwise::RowFn` in expression evaluation (both engines). NULL in → NULL out.
//!
//! - `TRUNCATE(x [, d])`: `x` cut (toward zero) to `d` decimal places (default 0; negative `d`
//!   zeroes integer digits). The type is `x`'s, except a `DECIMAL(p, s)` cut to fewer places
//!   (`d < s`), which becomes `DECIMAL(p - s + max(d, 0) + 1, max(d, 0))` as in Flink.
//! - `SIGN(x)`: -1, 0 or 1 in `x`'s type.
//! - `E()` → `DOUBLE`: Euler's number.
//! - `RAND_INTEGER([seed,] bound)` → `INT` in `[0, bound)`; a bound below 1 raises.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::ScalarUDF;

use super::rowwise::{Ctx, RowFn, int_arg, int_of, need_int, sql_name};

/// The functions of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        RowFn::new(
            "truncate",
            &[1, 2],
            truncate_coerce,
            truncate_type,
            truncate,
        )
        .literal_return(truncate_literal_type)
        .udf(),
        RowFn::new("sign", &[1], numeric_coerce, same_type, sign).udf(),
        RowFn::new("e", &[0], numeric_coerce, ret_double, |_, _| {
            Ok(ScalarValue::Float64(Some(std::f64::consts::E)))
        })
        .udf(),
        RowFn::new(
            "rand_integer",
            &[1, 2],
            |f, _, t| int_arg(f, t),
            ret_int,
            rand_integer,
        )
        .volatile()
        .udf(),
    ]
}

fn ret_int(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Int32)
}

/// `RAND_INTEGER([seed,] bound)`: a uniform integer in `[0, bound)`. With a seed the value is
/// the first draw of a generator seeded with it (the same for every row, as in Flink).
fn rand_integer(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    use rand::{Rng, SeedableRng};
    let bound = need_int("RAND_INTEGER", args, args.len() - 1)?;
    let Ok(bound) = i32::try_from(bound) else {
        return exec_err!("RAND_INTEGER: bound {bound} is out of the INT range");
    };
    if bound <= 0 {
        return exec_err!("RAND_INTEGER: bound must be positive, got {bound}");
    }
    let v = if args.len() == 2 {
        let seed = need_int("RAND_INTEGER", args, 0)?;
        rand::rngs::StdRng::seed_from_u64(seed as u64).random_range(0..bound)
    } else {
        rand::rng().random_range(0..bound)
    };
    Ok(ScalarValue::Int32(Some(v)))
}

fn ret_double(_: &str, _: &[DataType]) -> DfResult<DataType> {
    Ok(DataType::Float64)
}

fn same_type(_: &str, args: &[DataType]) -> DfResult<DataType> {
    Ok(args[0].clone())
}

fn numeric_coerce(func: &str, _: usize, t: &DataType) -> DfResult<DataType> {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(_, _) => Ok(t.clone()),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            Ok(DataType::Int64)
        }
        DataType::Float16 => Ok(DataType::Float32),
        DataType::Null => Ok(DataType::Float64),
        other => plan_err!("{func} expects a numeric argument, got {}", sql_name(other)),
    }
}

fn truncate_coerce(func: &str, i: usize, t: &DataType) -> DfResult<DataType> {
    if i == 0 {
        numeric_coerce(func, i, t)
    } else {
        int_arg(func, t)
    }
}

/// Without literal places `TRUNCATE` keeps `x`'s type.
fn truncate_type(_: &str, args: &[DataType]) -> DfResult<DataType> {
    Ok(args[0].clone())
}

/// Flink's type of `TRUNCATE(DECIMAL(p, s), d)` for literal places `d` (0 when absent).
fn truncate_literal_type(
    _: &str,
    args: &[DataType],
    literals: &[Option<&ScalarValue>],
) -> DfResult<DataType> {
    let d = if args.len() > 1 {
        match literals.get(1).copied().flatten().and_then(int_of) {
            Some(d) => d,
            None => return Ok(args[0].clone()),
        }
    } else {
        0
    };
    Ok(match &args[0] {
        DataType::Decimal128(p, s) if d < i64::from(*s) => {
            let places = d.max(0);
            let precision = (i64::from(*p) - i64::from(*s) + places + 1).clamp(1, 38);
            DataType::Decimal128(
                u8::try_from(precision).unwrap_or(38),
                i8::try_from(places).unwrap_or(0),
            )
        }
        other => other.clone(),
    })
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

fn truncate(args: &[ScalarValue], ctx: &Ctx) -> DfResult<ScalarValue> {
    let d = if args.len() > 1 {
        need_int("TRUNCATE", args, 1)?
    } else {
        0
    };
    let int = |v: i64| -> i64 {
        if d >= 0 {
            return v;
        }
        match u32::try_from(-d).ok().and_then(pow10) {
            Some(m) if m <= i128::from(i64::MAX) => {
                let m = m as i64;
                v - v % m
            }
            _ => 0,
        }
    };
    Ok(match &args[0] {
        ScalarValue::Int8(Some(v)) => ScalarValue::Int8(i8::try_from(int(i64::from(*v))).ok()),
        ScalarValue::Int16(Some(v)) => ScalarValue::Int16(i16::try_from(int(i64::from(*v))).ok()),
        ScalarValue::Int32(Some(v)) => ScalarValue::Int32(i32::try_from(int(i64::from(*v))).ok()),
        ScalarValue::Int64(Some(v)) => ScalarValue::Int64(Some(int(*v))),
        ScalarValue::Float64(Some(v)) => ScalarValue::Float64(Some(truncate_float(*v, d))),
        ScalarValue::Float32(Some(v)) => {
            // Flink goes through the float's decimal text (`BigDecimal`), not its binary value.
            let text: f64 = v.to_string().parse().unwrap_or(f64::from(*v));
            ScalarValue::Float32(Some(truncate_float(text, d) as f32))
        }
        ScalarValue::Decimal128(Some(v), p, s) => {
            let (rp, rs) = match ctx.ret {
                DataType::Decimal128(rp, rs) => (*rp, *rs),
                _ => (*p, *s),
            };
            ScalarValue::Decimal128(truncate_decimal(*v, *s, d, rs), rp, rs)
        }
        other => return exec_err!("TRUNCATE cannot take {}", sql_name(&other.data_type())),
    })
}

/// Cuts `x` to `d` places through its shortest decimal text, as Java's `BigDecimal` does.
fn truncate_float(x: f64, d: i64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    if d < 0 {
        let m = 10f64.powi(i32::try_from(-d).unwrap_or(400));
        return (x / m).trunc() * m;
    }
    let text = format!("{x}");
    let Some((int, frac)) = text.split_once('.') else {
        return x;
    };
    let keep = usize::try_from(d).unwrap_or(usize::MAX).min(frac.len());
    format!("{int}.{}", &frac[..keep]).parse().unwrap_or(x)
}

/// Cuts a decimal `v` of scale `s` to `d` places, answered in scale `rs`.
fn truncate_decimal(v: i128, s: i8, d: i64, rs: i8) -> Option<i128> {
    let s = i64::from(s);
    let rs = i64::from(rs);
    if d >= s {
        return rescale(v, s, rs);
    }
    let drop = u32::try_from(s - d).ok()?;
    let t = match pow10(drop) {
        Some(m) => v / m,
        None => 0,
    };
    // `t` is in scale `d`; bring it to the result scale.
    rescale(t, d, rs)
}

fn rescale(v: i128, from: i64, to: i64) -> Option<i128> {
    if to >= from {
        v.checked_mul(pow10(u32::try_from(to - from).ok()?)?)
    } else {
        Some(v / pow10(u32::try_from(from - to).ok()?).unwrap_or(i128::MAX))
    }
}

fn sign(args: &[ScalarValue], _: &Ctx) -> DfResult<ScalarValue> {
    Ok(match &args[0] {
        ScalarValue::Int8(Some(v)) => ScalarValue::Int8(Some(v.signum())),
        ScalarValue::Int16(Some(v)) => ScalarValue::Int16(Some(v.signum())),
        ScalarValue::Int32(Some(v)) => ScalarValue::Int32(Some(v.signum())),
        ScalarValue::Int64(Some(v)) => ScalarValue::Int64(Some(v.signum())),
        ScalarValue::Float32(Some(v)) => {
            ScalarValue::Float32(Some(float_sign(f64::from(*v)) as f32))
        }
        ScalarValue::Float64(Some(v)) => ScalarValue::Float64(Some(float_sign(*v))),
        ScalarValue::Decimal128(Some(v), p, s) => {
            let one = u32::try_from(*s).ok().and_then(pow10).unwrap_or(1);
            ScalarValue::Decimal128(Some(v.signum() * one), *p, *s)
        }
        other => match int_of(other) {
            Some(v) => ScalarValue::Int64(Some(v.signum())),
            None => return exec_err!("SIGN cannot take {}", sql_name(&other.data_type())),
        },
    })
}

fn float_sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation() {
        assert_eq!(truncate_float(1.2345, 2), 1.23);
        assert_eq!(truncate_float(-9.99, 1), -9.9);
        assert_eq!(truncate_float(123.45, -1), 120.0);
        assert_eq!(truncate_decimal(12345, 4, 2, 2), Some(123));
        assert_eq!(truncate_decimal(-12345, 4, 2, 2), Some(-123));
        assert_eq!(truncate_decimal(12345, 2, -1, 0), Some(120));
        assert_eq!(truncate_decimal(15, 1, 0, 0), Some(1));
        assert_eq!(truncate_decimal(15, 1, 3, 1), Some(15));
    }
}
