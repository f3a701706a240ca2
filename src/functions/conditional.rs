//! Flink's `IF(condition, then, else)`, a scalar function in expression evaluation (both
//! engines): `then` where the condition is TRUE, else `else` (a NULL condition counts as
//! FALSE). The two branches are coerced to their common type (DataFusion's union coercion);
//! both are evaluated (they are expressions without side effects), then picked row by row.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::prep_null_mask_filter;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::type_coercion::binary::type_union_resolution;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::rowwise::sql_name;

/// The functions of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(If::new())]
}

/// `IF(condition, then, else)`: see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct If {
    signature: Signature,
}

impl If {
    pub fn new() -> Self {
        If {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for If {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for If {
    fn name(&self) -> &str {
        "if"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        super::flink::check_arity("IF", arg_types, &[3])?;
        if !matches!(arg_types[0], DataType::Boolean | DataType::Null) {
            return plan_err!(
                "IF expects a BOOLEAN condition, got {}",
                sql_name(&arg_types[0])
            );
        }
        let Some(common) = type_union_resolution(&arg_types[1..]) else {
            return plan_err!(
                "IF branches have no common type: {} and {}",
                sql_name(&arg_types[1]),
                sql_name(&arg_types[2])
            );
        };
        Ok(vec![DataType::Boolean, common.clone(), common])
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        super::flink::check_arity("IF", arg_types, &[3])?;
        Ok(arg_types[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [cond, then, other] = args.args.as_slice() else {
            return exec_err!("IF takes 3 arguments");
        };
        if let ColumnarValue::Scalar(c) = cond {
            let pick_then = matches!(c, ScalarValue::Boolean(Some(true)));
            return Ok(if pick_then {
                then.clone()
            } else {
                other.clone()
            });
        }
        let n = args.number_rows;
        let cond = cond.to_array(n)?;
        let cond = cond.as_boolean();
        // `prep_null_mask_filter` expects a null buffer.
        let mask = if cond.null_count() > 0 {
            prep_null_mask_filter(cond)
        } else {
            cond.clone()
        };
        let then = then.to_array(n)?;
        let other = other.to_array(n)?;
        let picked = zip(&mask, &then, &other)?;
        Ok(ColumnarValue::Array(picked))
    }
}
