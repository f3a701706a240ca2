//! `INSERT INTO` a connector table in streaming mode.

use datafusion::logical_expr::DmlStatement;

use crate::error::{Error, Result};
use crate::stream::lower::{Lowered, Lowering};

pub fn lower(_l: &mut Lowering, _dml: &DmlStatement, _input: Lowered) -> Result<usize> {
    Err(Error::not_supported(
        "INSERT INTO in streaming mode is not supported yet",
    ))
}
