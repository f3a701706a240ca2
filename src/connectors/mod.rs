//! Connectors: where a table's rows come from and go to. A catalog [`TableDef`] names a
//! connector in its `connector` option; this module turns the definition into a DataFusion
//! [`TableProvider`] that reads the table's *physical* columns (in declared order) and, for
//! writable connectors, accepts `INSERT INTO` / `INSERT OVERWRITE` through `insert_into`.
//!
//! Computed columns, watermarks and views are not the connector's business: the planner layers
//! them on top of the provider.
//!
//! Connectors (bounded part): `filesystem` (csv, json, parquet; partitioned directories; atomic
//! writes), `datagen` (bounded by `number-of-rows`), `print` and `blackhole` (sinks only).

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;

use crate::catalog::TableDef;
use crate::error::{Error, Result};

/// The connectors Weir knows, for error messages.
pub const CONNECTORS: &[&str] = &["blackhole", "datagen", "filesystem", "print"];

/// The Arrow schema of a table's physical columns, in declared order.
pub fn physical_schema(def: &TableDef) -> SchemaRef {
    Arc::new(Schema::new(
        def.physical_columns()
            .map(|(c, t, nullable)| Field::new(&c.name, t.to_arrow(), nullable))
            .collect::<Vec<_>>(),
    ))
}

/// Checks a table definition's connector and options without touching any data. Called by
/// `CREATE TABLE`, so a bad option is reported when the table is defined, not when it is used.
///
/// # Errors
/// `Invalid` for a missing or unknown connector, or an unknown, missing or malformed option; the
/// message lists the valid connectors or options.
pub fn validate(def: &TableDef) -> Result<()> {
    let _ = def;
    Err(Error::not_supported("connectors are not implemented yet"))
}

/// Builds the table provider for a table definition. `name` is the table's full name, used in
/// error messages.
///
/// # Errors
/// As [`validate`]; connectors may also fail with `External` errors (e.g. a missing directory).
pub fn create_table_provider(name: &str, def: &TableDef) -> Result<Arc<dyn TableProvider>> {
    let _ = name;
    validate(def)?;
    Err(Error::not_supported("connectors are not implemented yet"))
}
