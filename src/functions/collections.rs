//! Flink's map and array built-ins that DataFusion lacks or orders differently, evaluated row
//! by row through `rowwise::RowFn` in expression evaluation (both engines).
//!
//! - `MAP_FROM_ARRAYS(keys, values)` → `MAP<K, V>`: pairs the arrays; arrays of different
//!   lengths raise; a repeated key keeps its last value. NULL array → NULL.
//! - `MAP_UNION(map1, map2, ...)` → the first map's type: the entries of all maps, a key's
//!   value from the last map that has it. Any NULL map → NULL.
//! - `ARRAY_PREPEND(array, element)`: Flink's argument order (DataFusion's `array_prepend`
//!   takes the element first).
//! - `ELEMENT(array)`: the single element of an array; NULL when empty; more raise.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, MapArray, StructArray, UInt32Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::rowwise::{Ctx, RowFn, sql_name};

/// The functions of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        RowFn::new(
            "map_from_arrays",
            &[2],
            list_coerce,
            map_from_arrays_type,
            map_from_arrays,
        )
        .udf(),
        RowFn::new("map_union", &[1], map_coerce, map_union_type, map_union)
            .variadic()
            .udf(),
        ScalarUDF::new_from_impl(ArrayPrepend::new()),
        RowFn::new("element", &[1], list_coerce, element_type, element).udf(),
    ]
}

fn element_type(_: &str, args: &[DataType]) -> DfResult<DataType> {
    Ok(item_type(&args[0]))
}

/// `ELEMENT(array)`: the only element; NULL for an empty array; more than one raises.
fn element(args: &[ScalarValue], ctx: &Ctx) -> DfResult<ScalarValue> {
    let Some(items) = list_values(&args[0]) else {
        return ScalarValue::try_from(ctx.ret);
    };
    match items.len() {
        0 => ScalarValue::try_from(ctx.ret),
        1 => ScalarValue::try_from_array(&items, 0),
        n => exec_err!("ELEMENT: the array has {n} elements, not one"),
    }
}

fn list_coerce(func: &str, _: usize, t: &DataType) -> DfResult<DataType> {
    match t {
        DataType::List(_) | DataType::Null => Ok(t.clone()),
        DataType::LargeList(f) | DataType::FixedSizeList(f, _) => Ok(DataType::List(f.clone())),
        other => plan_err!("{func} expects ARRAY arguments, got {}", sql_name(other)),
    }
}

fn map_coerce(func: &str, _: usize, t: &DataType) -> DfResult<DataType> {
    match t {
        DataType::Map(_, _) | DataType::Null => Ok(t.clone()),
        other => plan_err!("{func} expects MAP arguments, got {}", sql_name(other)),
    }
}

fn map_type(key: DataType, value: DataType) -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", key, false),
            Field::new("value", value, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn item_type(t: &DataType) -> DataType {
    match t {
        DataType::List(f) => f.data_type().clone(),
        _ => DataType::Null,
    }
}

fn map_from_arrays_type(_: &str, args: &[DataType]) -> DfResult<DataType> {
    Ok(map_type(item_type(&args[0]), item_type(&args[1])))
}

fn map_union_type(func: &str, args: &[DataType]) -> DfResult<DataType> {
    let first = args.iter().find(|t| matches!(t, DataType::Map(_, _)));
    let Some(first) = first else {
        return Ok(map_type(DataType::Null, DataType::Null));
    };
    // The other maps' entries are cast to the first map's key and value types when merged.
    let _ = func;
    Ok(first.clone())
}

fn list_values(v: &ScalarValue) -> Option<ArrayRef> {
    match v {
        ScalarValue::List(l) if !l.is_null(0) => Some(l.value(0)),
        _ => None,
    }
}

/// Builds one map value from keys and values, a repeated key keeping its last value (at the
/// position of its first occurrence).
fn build_map(ret: &DataType, keys: &ArrayRef, values: &ArrayRef) -> DfResult<ScalarValue> {
    let DataType::Map(entries_field, _) = ret else {
        return exec_err!("expected a MAP result type, got {ret}");
    };
    let DataType::Struct(fields) = entries_field.data_type() else {
        return exec_err!("bad MAP entries type {}", entries_field.data_type());
    };
    let mut seen: Vec<(ScalarValue, usize)> = Vec::new();
    for i in 0..keys.len() {
        let k = ScalarValue::try_from_array(keys, i)?;
        if k.is_null() {
            return exec_err!("a MAP key must not be NULL");
        }
        match seen.iter_mut().find(|(key, _)| *key == k) {
            Some(entry) => entry.1 = i,
            None => seen.push((k, i)),
        }
    }
    let idx = UInt32Array::from(
        seen.iter()
            .map(|(_, i)| u32::try_from(*i).unwrap_or(u32::MAX))
            .collect::<Vec<_>>(),
    );
    let keys = datafusion::arrow::compute::take(keys, &idx, None)?;
    let values = datafusion::arrow::compute::take(values, &idx, None)?;
    let keys = datafusion::arrow::compute::cast(&keys, fields[0].data_type())?;
    let values = datafusion::arrow::compute::cast(&values, fields[1].data_type())?;
    let n = keys.len();
    let entries = StructArray::try_new(fields.clone(), vec![keys, values], None)?;
    let map = MapArray::try_new(
        entries_field.clone(),
        OffsetBuffer::from_lengths([n]),
        entries,
        None,
        false,
    )?;
    Ok(ScalarValue::Map(Arc::new(map)))
}

fn map_from_arrays(args: &[ScalarValue], ctx: &Ctx) -> DfResult<ScalarValue> {
    let (Some(keys), Some(values)) = (list_values(&args[0]), list_values(&args[1])) else {
        return ScalarValue::try_from(ctx.ret);
    };
    if keys.len() != values.len() {
        return exec_err!(
            "MAP_FROM_ARRAYS: the key array has {} elements but the value array {}",
            keys.len(),
            values.len()
        );
    }
    build_map(ctx.ret, &keys, &values)
}

fn map_union(args: &[ScalarValue], ctx: &Ctx) -> DfResult<ScalarValue> {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for a in args {
        let ScalarValue::Map(m) = a else {
            return exec_err!("MAP_UNION expects MAP arguments");
        };
        let entries = m.value(0);
        keys.push(entries.column(0).clone());
        values.push(entries.column(1).clone());
    }
    let DataType::Map(entries_field, _) = ctx.ret else {
        return exec_err!("MAP_UNION: bad result type {}", ctx.ret);
    };
    let DataType::Struct(fields) = entries_field.data_type() else {
        return exec_err!("MAP_UNION: bad result type {}", ctx.ret);
    };
    let cast_all = |arrays: Vec<ArrayRef>, t: &DataType| -> DfResult<ArrayRef> {
        let cast: Vec<ArrayRef> = arrays
            .iter()
            .map(|a| datafusion::arrow::compute::cast(a, t))
            .collect::<Result<_, _>>()?;
        let refs: Vec<&dyn Array> = cast.iter().map(|a| a.as_ref()).collect();
        Ok(datafusion::arrow::compute::concat(&refs)?)
    };
    let keys = cast_all(keys, fields[0].data_type())?;
    let values = cast_all(values, fields[1].data_type())?;
    build_map(ctx.ret, &keys, &values)
}

/// `ARRAY_PREPEND(array, element)`: DataFusion's `array_prepend` with Flink's argument order.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayPrepend {
    inner: Arc<ScalarUDF>,
    signature: Signature,
}

impl ArrayPrepend {
    pub fn new() -> Self {
        ArrayPrepend {
            inner: datafusion::functions_nested::concat::array_prepend_udf(),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for ArrayPrepend {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for ArrayPrepend {
    fn name(&self) -> &str {
        "array_prepend"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        super::flink::check_arity("ARRAY_PREPEND", arg_types, &[2])?;
        match &arg_types[0] {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                Ok(vec![DataType::List(f.clone()), f.data_type().clone()])
            }
            other => plan_err!(
                "ARRAY_PREPEND expects an ARRAY first, got {}",
                sql_name(other)
            ),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        super::flink::check_arity("ARRAY_PREPEND", arg_types, &[2])?;
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DfResult<datafusion::arrow::datatypes::FieldRef> {
        let fields: Vec<_> = args.arg_fields.iter().rev().cloned().collect();
        let scalars: Vec<_> = args.scalar_arguments.iter().rev().copied().collect();
        self.inner
            .return_field_from_args(datafusion::logical_expr::ReturnFieldArgs {
                arg_fields: &fields,
                scalar_arguments: &scalars,
            })
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        args.args.reverse();
        args.arg_fields.reverse();
        self.inner.invoke_with_args(args)
    }
}
