//! Connectors: where a table's rows come from and go to. A catalog [`TableDef`] names a
//! connector in its `connector` option; this module turns the definition into a DataFusion
//! [`TableProvider`] that reads the table's *physical* columns (in declared order) and, for
//! writable connectors, accepts `INSERT INTO` / `INSERT OVERWRITE` through `insert_into`.
//!
//! Computed columns, watermarks and views are not the connector's business: the planner layers
//! them on top of the provider.
//!
//! Connectors: `filesystem` (csv, json, parquet; partitioned directories; atomic writes; a
//! watched directory with `source.monitor-interval` is unbounded; debezium-json changelogs),
//! `datagen` (bounded by `number-of-rows`, else unbounded at `rows-per-second`), `nexmark` (the
//! Nexmark benchmark's events, bounded by `events.num`), `print` and `blackhole` (sinks only).
//!
//! Streaming `INSERT`s write through [`stream_sink()`]: the connector's per-instance writer of
//! changelog batches, driven by the streaming sink operator (`stream::ops::sink`).
//!
//! Files: `options` (option parsing and messages), `filesystem` (read side and options),
//! `file_sink` (write side), `debezium` (the debezium-json format's lines) and `json_values`
//! (their values as Arrow arrays), `changelog_scan` (reading debezium-json tables: materialized
//! in batch, a changelog in streaming), `context_exec` (names the table in scan errors, and the file when a scan fails),
//! `checked_format` (the listing formats with footers checked and the failing file found),
//! `read_guard` (decoder panics contained as errors naming the file; Parquet footer checks),
//! `datagen`, `sinks` (`print`, `blackhole`), `nexmark`, `stream_exec` (leaf scans made of
//! streams), streaming sinks in `sinks`.

mod changelog_scan;
mod checked_format;
mod context_exec;
mod datagen;
mod debezium;
mod file_sink;
mod filesystem;
pub mod hive;
mod json_values;
mod nexmark;
mod options;
pub(crate) mod read_guard;
mod sinks;
pub(crate) mod stream_exec;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;

pub use datagen::DatagenExec;
pub use sinks::PrintTarget;
pub use sinks::{StreamSinkFactory, StreamWriter, stream_sink};

use crate::catalog::TableDef;
use crate::error::{Error, Result};
use options::ConnectorOptions;

/// The connectors Weir knows, for error messages.
pub const CONNECTORS: &[&str] = &["blackhole", "datagen", "filesystem", "nexmark", "print"];

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
    check(None, def)
}

/// As [`validate`], with the table's full name in the messages.
///
/// # Errors
/// As [`validate`].
pub fn validate_table(name: &str, def: &TableDef) -> Result<()> {
    check(Some(name), def)
}

/// The connector a definition names, checked against [`CONNECTORS`].
fn connector_of(name: Option<&str>, def: &TableDef) -> Result<&'static str> {
    let for_table = name
        .map(|n| format!(" for table `{n}`"))
        .unwrap_or_default();
    let Some(connector) = def.connector() else {
        return Err(Error::invalid(format!(
            "missing option 'connector'{for_table}; valid connectors: {}",
            CONNECTORS.join(", ")
        )));
    };
    CONNECTORS
        .iter()
        .copied()
        .find(|c| *c == connector.trim())
        .ok_or_else(|| {
            Error::invalid(format!(
                "unknown connector '{connector}'{for_table}; valid connectors: {}",
                CONNECTORS.join(", ")
            ))
        })
}

fn check(name: Option<&str>, def: &TableDef) -> Result<()> {
    let connector = connector_of(name, def)?;
    let o = ConnectorOptions::new(name, connector, &def.options);
    if !def.partition_keys.is_empty() && connector != "filesystem" {
        return Err(Error::invalid(format!(
            "{} cannot be partitioned (PARTITIONED BY)",
            o.describe()
        )));
    }
    match connector {
        "filesystem" => filesystem::FsConfig::parse(&o, def).map(|_| ()),
        "datagen" => datagen::validate(&o, def),
        "nexmark" => nexmark::parse(&o, def).map(|_| ()),
        "print" => sinks::validate_print(&o),
        "blackhole" => sinks::validate_blackhole(&o),
        other => Err(Error::internal(format!(
            "connector '{other}' is listed but has no implementation"
        ))),
    }
}

/// Builds the table provider for a table definition. `name` is the table's full name, used in
/// error messages.
///
/// # Errors
/// As [`validate`]; connectors may also fail with `External` errors (e.g. a missing directory).
pub fn create_table_provider(name: &str, def: &TableDef) -> Result<Arc<dyn TableProvider>> {
    provider(name, def, None)
}

/// As [`create_table_provider`], with `print` tables writing to `target` instead of stdout or
/// stderr (for tests and embedding).
///
/// # Errors
/// As [`create_table_provider`].
pub fn create_table_provider_with_print_target(
    name: &str,
    def: &TableDef,
    target: PrintTarget,
) -> Result<Arc<dyn TableProvider>> {
    provider(name, def, Some(target))
}

fn provider(
    name: &str,
    def: &TableDef,
    print: Option<PrintTarget>,
) -> Result<Arc<dyn TableProvider>> {
    validate_table(name, def)?;
    let schema = physical_schema(def);
    Ok(match connector_of(Some(name), def)? {
        "filesystem" => Arc::new(filesystem::FilesystemTable::try_new(name, def, schema)?),
        "datagen" => Arc::new(datagen::DatagenTable::try_new(name, def, schema)?),
        "nexmark" => Arc::new(nexmark::NexmarkTable::try_new(name, def, schema)?),
        "print" => Arc::new(sinks::SinkTable::print(name, def, schema, print)?),
        "blackhole" => Arc::new(sinks::SinkTable::blackhole(name, def, schema)?),
        other => {
            return Err(Error::internal(format!(
                "connector '{other}' is listed but has no implementation"
            )));
        }
    })
}

/// The streaming scan of a table stored as a changelog (`'format' = 'debezium-json'`): a plan
/// whose batches carry their row kinds in a trailing `stream::changes::ROW_KIND_COLUMN`. `None`
/// for every other table (its provider's ordinary scan is the streaming scan).
///
/// # Errors
/// `External` when the table's files cannot be listed.
pub fn changelog_scan(
    provider: &dyn TableProvider,
    projection: Option<&Vec<usize>>,
) -> Result<Option<Arc<dyn datafusion::physical_plan::ExecutionPlan>>> {
    let Some(table) = provider.downcast_ref::<filesystem::FilesystemTable>() else {
        return Ok(None);
    };
    match changelog_scan::files_of(table)? {
        Some(files) => Ok(Some(changelog_scan::changelog_plan(files, projection)?)),
        None => Ok(None),
    }
}

/// True when reading the table ends (a bounded source). `auto` runtime mode runs statements
/// over bounded tables in batch and anything else in streaming.
pub fn is_bounded(def: &TableDef) -> bool {
    let has = |k: &str| def.options.contains_key(k);
    match def.connector().map(str::trim) {
        Some("datagen") => has("number-of-rows"),
        Some("nexmark") => has("events.num"),
        Some("filesystem") => !has("source.monitor-interval"),
        _ => true,
    }
}
