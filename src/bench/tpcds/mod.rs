//! TPC-DS for the benchmark runner: the data set generated as Parquet ([`data`]), the 99
//! queries ([`queries`]) and the reference answers at scale factor 1 ([`answers`]). The runner
//! registers the tables with [`create_table_sql`] through the `Session` like any user, runs
//! [`query_sql`] and may compare the rows with [`answer`] (or with DuckDB on the same files).

pub mod answers;
pub mod data;
pub mod queries;

pub use answers::{answer, parse_answer_csv};
pub use data::{TABLES, create_table_sql, default_data_dir, ensure_data, table_schema};
pub use queries::{QUERY_COUNT, query_name, query_sql};
