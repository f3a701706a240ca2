//! `OVER` windows, TopN and deduplication in streaming mode.

use datafusion::logical_expr::{Filter, Window};

use crate::error::{Error, Result};
use crate::stream::lower::{Lowered, Lowering};

pub fn lower(_l: &mut Lowering, _window: &Window, _input: Lowered) -> Result<Lowered> {
    Err(Error::not_supported(
        "OVER windows in a streaming query are not supported yet",
    ))
}

/// A `Filter` on a `ROW_NUMBER()` column (`rn <= N`): TopN. `None` if `filter` is not one.
pub async fn try_lower_top_n(_l: &mut Lowering<'_>, _filter: &Filter) -> Result<Option<Lowered>> {
    Ok(None)
}
