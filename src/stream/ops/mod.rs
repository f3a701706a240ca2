//! Streaming operators, each file with its lowering (`lower`) next to the operator:
//!
//! - `calc`: filter / projection, `UNION ALL` (stateless);
//! - `watermark`: watermark assigner for `WATERMARK FOR`;
//! - `window_assign`: `TUMBLE` / `HOP` / `CUMULATE` window TVFs (row-local);
//! - `session`: `SESSION` window TVF (buffers rows per key until the watermark closes sessions);
//! - `aggregate`: `GROUP BY` — window aggregates (fire on watermark) and updating aggregates
//!   (with retraction); `accumulators`: their retractable COUNT / SUM / AVG / MIN / MAX;
//! - `join`: regular joins with retraction, interval joins (state cleaned by watermark);
//! - `over`: `OVER` windows, TopN and deduplication (`ROW_NUMBER() ... WHERE rn <= N`), with the
//!   partitioned-window operator in `over_op`;
//! - `temporal_join`: event-time temporal joins against versioned tables (`FOR SYSTEM_TIME AS
//!   OF` a rowtime), released by the watermark;
//! - `sink`: `INSERT INTO` a connector table; `collect`: the result of a streaming `SELECT`;
//! - `codec`: how the stateful operators above write their state into checkpoints and read it
//!   back (`Operator::snapshot` / `Operator::restore`).

pub mod accumulators;
pub mod aggregate;
pub mod calc;
pub mod codec;
pub mod collect;
pub mod join;
pub mod join_op;
pub mod over;
pub mod over_op;
pub mod session;
pub mod sink;
pub mod temporal_join;
pub mod watermark;
pub mod window_assign;
