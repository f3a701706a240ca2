//! `SESSION` window TVF in streaming mode.

use crate::error::{Error, Result};
use crate::planner::window_tvf::WindowTvfNode;
use crate::stream::lower::{Lowered, Lowering, Times};

pub fn lower(
    _l: &mut Lowering,
    _tvf: &WindowTvfNode,
    _input: Lowered,
    _times: Times,
) -> Result<Lowered> {
    Err(Error::not_supported(
        "SESSION windows in a streaming query are not supported yet",
    ))
}
