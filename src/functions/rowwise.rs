//! A row-at-a-time adapter for Flink built-in scalar functions whose work is per value (string,
//! encoding, JSON, URL and time-conversion functions): each function is a name, the argument
//! counts it takes, a coercion per argument, a return type and a function over one row's
//! `ScalarValue`s. `RowFn` turns that into a DataFusion `ScalarUDFImpl`, so the functions sit in
//! expression evaluation exactly like the vectorized ones in `flink` (registered in the
//! session's DataFusion state, called by batch plans and streaming operators alike).
//!
//! NULL handling: with `null_in_null_out` (the default for Flink's built-ins) any NULL argument
//! gives NULL without calling the row function; functions that treat NULL specially (`ELT`,
//! `PRINTF`, `IF`, `JSON_STRING`, ...) see the NULLs themselves.

use std::hash::{Hash, Hasher};

use datafusion::arrow::array::{ArrayRef, new_empty_array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The context a row function sees besides its arguments.
pub(super) struct Ctx<'a> {
    /// The planned result type.
    pub ret: &'a DataType,
    /// The session time zone (`table.local-time-zone`), if set.
    pub zone: Option<&'a str>,
}

/// How one argument is coerced (by position).
pub(super) type CoerceFn = fn(&str, usize, &DataType) -> DfResult<DataType>;
/// The result type for the coerced argument types.
pub(super) type ReturnFn = fn(&str, &[DataType]) -> DfResult<DataType>;
/// The result type when it depends on literal arguments (`None`: not a literal).
pub(super) type LiteralReturnFn =
    fn(&str, &[DataType], &[Option<&ScalarValue>]) -> DfResult<DataType>;
/// One row: the arguments (coerced) to the result.
pub(super) type EvalFn = fn(&[ScalarValue], &Ctx) -> DfResult<ScalarValue>;

/// A Flink scalar function evaluated row by row; see the module docs.
#[derive(Debug)]
pub(super) struct RowFn {
    name: &'static str,
    aliases: Vec<String>,
    arities: &'static [usize],
    /// Any count from `arities[0]` up (variadic functions such as `ELT`, `PRINTF`).
    variadic: bool,
    coerce: CoerceFn,
    ret: ReturnFn,
    ret_literal: Option<LiteralReturnFn>,
    eval: EvalFn,
    null_in_null_out: bool,
    signature: Signature,
}

impl PartialEq for RowFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for RowFn {}

impl Hash for RowFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl RowFn {
    pub(super) fn new(
        name: &'static str,
        arities: &'static [usize],
        coerce: CoerceFn,
        ret: ReturnFn,
        eval: EvalFn,
    ) -> Self {
        RowFn {
            name,
            aliases: Vec::new(),
            arities,
            variadic: false,
            coerce,
            ret,
            ret_literal: None,
            eval,
            null_in_null_out: true,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// The function sees NULL arguments itself.
    pub(super) fn nulls_handled(mut self) -> Self {
        self.null_in_null_out = false;
        self
    }

    /// Takes `arities[0]` or more arguments.
    pub(super) fn variadic(mut self) -> Self {
        self.variadic = true;
        self
    }

    /// The function's value changes between calls (`RAND_INTEGER`, `UNIX_TIMESTAMP()`).
    pub(super) fn volatile(mut self) -> Self {
        self.signature = Signature::user_defined(Volatility::Volatile);
        self
    }

    /// The result type also looks at literal arguments (`TRUNCATE(x, 2)`).
    pub(super) fn literal_return(mut self, f: LiteralReturnFn) -> Self {
        self.ret_literal = Some(f);
        self
    }

    pub(super) fn udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }

    fn upper(&self) -> String {
        self.name.to_ascii_uppercase()
    }

    fn check_arity(&self, n: usize) -> DfResult<()> {
        let ok = if self.variadic {
            n >= self.arities[0]
        } else {
            self.arities.contains(&n)
        };
        if ok {
            return Ok(());
        }
        let counts: Vec<String> = self.arities.iter().map(|n| n.to_string()).collect();
        let expected = if self.variadic {
            format!("at least {}", self.arities[0])
        } else {
            counts.join(" or ")
        };
        plan_err!("{} takes {expected} arguments, got {n}", self.upper())
    }
}

impl ScalarUDFImpl for RowFn {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.check_arity(arg_types.len())?;
        let name = self.upper();
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| (self.coerce)(&name, i, t))
            .collect()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.check_arity(arg_types.len())?;
        (self.ret)(&self.upper(), arg_types)
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DfResult<datafusion::arrow::datatypes::FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        self.check_arity(types.len())?;
        let t = match self.ret_literal {
            Some(f) => f(&self.upper(), &types, args.scalar_arguments)?,
            None => (self.ret)(&self.upper(), &types)?,
        };
        Ok(std::sync::Arc::new(
            datafusion::arrow::datatypes::Field::new(self.name, t, true),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let ret = args.return_type().clone();
        let zone = args.config_options.execution.time_zone.clone();
        let ctx = Ctx {
            ret: &ret,
            zone: zone.as_deref(),
        };
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<_>>()?;
        let null = ScalarValue::try_from(&ret)?;
        let mut out = Vec::with_capacity(rows);
        let mut row = Vec::with_capacity(arrays.len());
        for i in 0..rows {
            row.clear();
            for a in &arrays {
                row.push(ScalarValue::try_from_array(a, i)?);
            }
            if self.null_in_null_out && row.iter().any(ScalarValue::is_null) {
                out.push(null.clone());
                continue;
            }
            let v = (self.eval)(&row, &ctx)?;
            if !v.is_null() && v.data_type() != ret {
                return exec_err!(
                    "{} computed {} but planned {ret}",
                    self.upper(),
                    v.data_type()
                );
            }
            out.push(if v.is_null() { null.clone() } else { v });
        }
        let array = if out.is_empty() {
            new_empty_array(&ret)
        } else {
            ScalarValue::iter_to_array(out)?
        };
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(array))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Coercions and argument access shared by the families
// ---------------------------------------------------------------------------------------------

pub(super) fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

pub(super) fn string_arg(func: &str, t: &DataType) -> DfResult<DataType> {
    if is_string(t) || t == &DataType::Null {
        Ok(DataType::Utf8)
    } else {
        plan_err!("{func} expects a STRING argument, got {}", sql_name(t))
    }
}

pub(super) fn int_arg(func: &str, t: &DataType) -> DfResult<DataType> {
    if t.is_integer() || t == &DataType::Null {
        Ok(DataType::Int64)
    } else {
        plan_err!("{func} expects an integer argument, got {}", sql_name(t))
    }
}

/// Every argument is a string.
pub(super) fn all_strings(func: &str, _i: usize, t: &DataType) -> DfResult<DataType> {
    string_arg(func, t)
}

/// A rough SQL name of an Arrow type for messages (the `types` module is out of this layer).
pub(super) fn sql_name(t: &DataType) -> String {
    match t {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP_LTZ".into(),
        DataType::List(_) | DataType::LargeList(_) => "ARRAY".into(),
        DataType::Map(_, _) => "MAP".into(),
        other => other.to_string(),
    }
}

pub(super) fn str_of(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.as_deref(),
        _ => None,
    }
}

pub(super) fn int_of(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int8(x) => x.map(i64::from),
        ScalarValue::Int16(x) => x.map(i64::from),
        ScalarValue::Int32(x) => x.map(i64::from),
        ScalarValue::Int64(x) => *x,
        ScalarValue::UInt8(x) => x.map(i64::from),
        ScalarValue::UInt16(x) => x.map(i64::from),
        ScalarValue::UInt32(x) => x.map(i64::from),
        ScalarValue::UInt64(x) => x.and_then(|x| i64::try_from(x).ok()),
        _ => None,
    }
}

pub(super) fn string(s: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(s.into()))
}

/// A `STRING` argument the row function needs (NULLs were handled before).
pub(super) fn need_str<'a>(func: &str, args: &'a [ScalarValue], i: usize) -> DfResult<&'a str> {
    match args.get(i).and_then(str_of) {
        Some(s) => Ok(s),
        None => exec_err!("{func}: argument {} is not a STRING", i + 1),
    }
}

pub(super) fn need_int(func: &str, args: &[ScalarValue], i: usize) -> DfResult<i64> {
    match args.get(i).and_then(int_of) {
        Some(s) => Ok(s),
        None => exec_err!("{func}: argument {} is not an integer", i + 1),
    }
}

/// An `ARRAY<STRING>` value.
pub(super) fn string_list(items: Vec<Option<String>>) -> ScalarValue {
    let values: Vec<ScalarValue> = items.into_iter().map(ScalarValue::Utf8).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Utf8))
}

pub(super) fn list_type(item: DataType) -> DataType {
    DataType::new_list(item, true)
}
