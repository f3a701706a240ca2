//! `PROCTIME()`: Flink's processing-time attribute. In batch mode it is the statement's start
//! time (like `NOW()`), typed `TIMESTAMP_LTZ(3)`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit,
};

/// The `PROCTIME()` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ProcTime {
    signature: Signature,
    /// Streaming: evaluated per batch (the wall clock as rows pass), never folded to a constant.
    streaming: bool,
}

impl ProcTime {
    /// Batch: the time the query started, folded into a constant at planning.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(ProcTime {
            signature: Signature::nullary(Volatility::Stable),
            streaming: false,
        })
    }

    /// Streaming: the processing time when each batch is evaluated.
    pub fn streaming_udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(ProcTime {
            signature: Signature::nullary(Volatility::Volatile),
            streaming: true,
        })
    }
}

fn return_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")))
}

impl ScalarUDFImpl for ProcTime {
    fn name(&self) -> &str {
        "proctime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(return_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let now = chrono::Utc::now().timestamp_millis();
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(now),
            Some(Arc::from("UTC")),
        )))
    }

    fn simplify(&self, _args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        if self.streaming {
            return Ok(ExprSimplifyResult::Original(vec![]));
        }
        let now = info
            .query_execution_start_time()
            .map(|t| t.timestamp_millis());
        match now {
            Some(ms) => Ok(ExprSimplifyResult::Simplified(lit(
                ScalarValue::TimestampMillisecond(Some(ms), Some(Arc::from("UTC"))),
            ))),
            None => Ok(ExprSimplifyResult::Original(vec![])),
        }
    }
}
