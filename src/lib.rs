//! Weir: a SQL-first, unified batch and stream query engine that speaks Flink SQL.
//!
//! The data path:
//!
//! ```text
//! SQL text ─ sql (Flink dialect on sqlparser) ─ typed Statement
//!   └─ session: resolve names against catalogs into a snapshot
//!        └─ planner: bind against the snapshot ─ DataFusion LogicalPlan (+ our nodes: window TVF)
//!             └─ batch: DataFusion physical plan, run in bulk ─ connectors (sources, sinks)
//! ```
//!
//! Layer rule (a module may use only what is listed for it; never the reverse):
//! - `error`, `types`, `units`: nothing of ours.
//! - `sql`: `error`, `types`.
//! - `catalog`: `error`, `types`. Exception: `catalog::hive`, a catalog that also supplies its
//!   tables' providers, additionally uses `sql` (Flink type strings) and `connectors::hive` (the
//!   Hive file readers and writers); `connectors::hive` never uses `catalog::hive`.
//! - `connectors`: `error`, `types`, `catalog` (definitions only).
//! - `planner`: `error`, `types`, `sql`, `catalog`, `connectors`.
//! - `batch`: `error`, `planner` (its logical nodes).
//! - `session`: all of the above.
//! - `shell`, `flight`, `bench` (the front doors): only `session` and `error`.

pub mod batch;
pub mod bench;
pub mod catalog;
pub mod connectors;
pub mod error;
pub mod flight;
pub mod functions;
pub mod planner;
pub mod session;
pub mod shell;
pub mod sql;
pub mod stream;
pub mod types;
pub mod units;

#[cfg(test)]
mod test_alloc;

pub use error::{Error, ErrorKind, Result};
pub use session::{Session, SessionOptions, StatementResult};
pub use sql::ParsedStatement;
