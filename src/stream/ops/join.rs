//! Joins in streaming mode.

use datafusion::logical_expr::Join;

use crate::error::{Error, Result};
use crate::stream::lower::{Lowered, Lowering};

pub fn lower(_l: &mut Lowering, _join: &Join, _left: Lowered, _right: Lowered) -> Result<Lowered> {
    Err(Error::not_supported(
        "JOIN in a streaming query is not supported yet",
    ))
}
