//! Functions and kernels both engines share: window assignment for the window table-valued
//! functions, and Flink's scalar functions DataFusion lacks (`PROCTIME()`).
//!
//! Uses only `error`.

pub mod proctime;
pub mod window;
