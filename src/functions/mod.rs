//! Functions and kernels both engines share: window assignment for the window table-valued
//! functions, and Flink's scalar functions DataFusion lacks (`PROCTIME()`, and `flink`: `MOD`,
//! `DATE_FORMAT`, `SPLIT_INDEX`, `REGEXP_EXTRACT`, `HOUR`, ...; `timestamp_arith`:
//! `TIMESTAMPDIFF`, `TIMESTAMPADD`), and `SUM` / `AVG` typed as Flink types them (`aggregates`).
//!
//! Uses only `error`.

pub mod aggregates;
pub mod flink;
pub mod proctime;
pub mod timestamp_arith;
pub mod udf;
pub mod window;
