//! Functions and kernels both engines share: window assignment for the window table-valued
//! functions, and Flink's scalar functions DataFusion lacks (`PROCTIME()`, and `flink`: `MOD`,
//! `DATE_FORMAT`, `SPLIT_INDEX`, `REGEXP_EXTRACT`, `HOUR`, ...; `timestamp_arith`:
//! `TIMESTAMPDIFF`, `TIMESTAMPADD`), and `SUM` / `AVG` typed as Flink types them (`aggregates`).
//! Row-at-a-time Flink built-ins grouped by family over `rowwise::RowFn`: `strings` (`LOCATE`,
//! `SPLIT`, `PARSE_URL`, `PRINTF`, ...), `encoding` (`HEX`, `SHA1`, `INET_ATON`, ...), `time`
//! (`UNIX_TIMESTAMP`, `TO_TIMESTAMP_LTZ`, `LOCALTIMESTAMP`, ...), `overlaps` (`(a, b) OVERLAPS
//! (c, d)`), `math` (`TRUNCATE`, `SIGN`, `E`), `collections` (`MAP_FROM_ARRAYS`, `MAP_UNION`, Flink's `ARRAY_PREPEND`), `json`
//! (`JSON_VALUE`, `JSON_QUERY`, `JSON_EXISTS`, `JSON_QUOTE`, ...), `json_build` (the JSON
//! constructors `JSON_OBJECT` / `JSON_ARRAY` / `JSON(...)`, `IS JSON`); and the aggregates
//! `LISTAGG` and `PERCENTILE` (`list_aggregates`), `JSON_ARRAYAGG` and `JSON_OBJECTAGG`
//! (`json_aggregates`), batch only so far; `IF` (`conditional`); the `BITMAP_*` functions and
//! aggregates over Roaring bitmaps in `BYTES` values (`bitmap`).
//!
//! Uses only `error`.

pub mod aggregates;
pub mod bitmap;
pub mod collections;
pub mod conditional;
pub mod encoding;
pub mod flink;
pub mod json;
pub mod json_aggregates;
pub mod json_build;
pub mod list_aggregates;
pub mod math;
pub mod overlaps;
pub mod proctime;
mod rowwise;
pub mod strings;
pub mod time;
pub mod timestamp_arith;
pub mod udf;
pub mod window;
