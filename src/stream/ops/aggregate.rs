//! `GROUP BY` in streaming mode.

use datafusion::logical_expr::Aggregate;

use crate::error::{Error, Result};
use crate::stream::lower::{Lowered, Lowering};

pub fn lower(_l: &mut Lowering, _agg: &Aggregate, _input: Lowered) -> Result<Lowered> {
    Err(Error::not_supported(
        "GROUP BY in a streaming query is not supported yet",
    ))
}
