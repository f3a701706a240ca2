//! Hive tables' data: reading and writing the files of a table registered in a Hive Metastore,
//! directly (no Hive, no Spark at query time).
//!
//! The Hive catalog (`catalog::hive`) turns a metastore table into a [`HiveTableDesc`] (location,
//! storage format, SerDe parameters, Arrow schema, partition keys) and hands it, with a
//! [`HiveMetastoreAccess`] for partition listing and registration, to [`hive_table`], which
//! returns the DataFusion table provider the planner scans and inserts into. This module never
//! talks Thrift: everything it needs from the metastore goes through [`HiveMetastoreAccess`].
//!
//! Files: `types` (Hive type strings ↔ Arrow), `table` (the provider: pruning, listing, insert
//! planning), `prune` (metastore filter strings, evaluation on partition values), `scan` (the
//! physical scan: Parquet, ORC, text readers), `adapt` (fitting file arrays to the table's types),
//! `text` (LazySimpleSerDe decoding and encoding), `sink` (writing: staging, commit, partition
//! registration).

mod adapt;
mod prune;
mod scan;
mod sink;
mod table;
#[cfg(test)]
mod tests;
mod text;
pub mod types;

pub use types::hive_to_arrow;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;

use crate::error::{Error, Result};

/// How a Hive table's files are stored, from its storage descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiveFormat {
    /// `ParquetHiveSerDe` / `MapredParquetInputFormat` (also Spark datasource parquet tables).
    Parquet,
    /// `OrcSerde` / `OrcInputFormat`.
    Orc,
    /// `LazySimpleSerDe` / `TextInputFormat` (delimited text).
    Text,
}

impl HiveFormat {
    /// The format of a storage descriptor, from its SerDe library and input format class names.
    ///
    /// # Errors
    /// `NotSupported` naming the classes for any other storage (Avro, RCFile, SequenceFile, ...).
    pub fn from_storage(serde_lib: &str, input_format: &str) -> Result<Self> {
        let s = serde_lib.to_ascii_lowercase();
        let i = input_format.to_ascii_lowercase();
        if s.contains("parquet") || i.contains("parquet") {
            Ok(HiveFormat::Parquet)
        } else if s.contains("orc") || i.contains("orc") {
            Ok(HiveFormat::Orc)
        } else if s.ends_with("lazysimpleserde") && i.ends_with("textinputformat") {
            Ok(HiveFormat::Text)
        } else {
            Err(Error::not_supported(format!(
                "Hive storage with SerDe '{serde_lib}' and input format '{input_format}' is not \
                 supported yet (supported: Parquet, ORC, text with LazySimpleSerDe)"
            )))
        }
    }
}

/// One partition of a partitioned Hive table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HivePartition {
    /// The partition values as the metastore stores them (text), in partition-key order.
    pub values: Vec<String>,
    /// The partition's directory URL (e.g. `file:/warehouse/db.db/t/dt=2024-01-01/hr=0`).
    pub location: String,
}

/// Everything needed to read or write a Hive table's files.
#[derive(Debug, Clone)]
pub struct HiveTableDesc {
    /// The table's full name (`catalog.database.table`), for messages.
    pub name: String,
    /// The table's directory URL (`file:/...`, `s3://...`, `hdfs://...`).
    pub location: String,
    pub format: HiveFormat,
    /// The storage descriptor's SerDe parameters (`field.delim`, `colelction.delim`,
    /// `mapkey.delim`, `serialization.null.format`, `escape.delim`, ...).
    pub serde_params: BTreeMap<String, String>,
    /// The table's parameters (e.g. `orc.compress`, `parquet.compression`).
    pub table_params: BTreeMap<String, String>,
    /// The columns the table exposes: data columns (in file order) followed by the partition
    /// keys, with Arrow types mapped from the Hive types.
    pub schema: SchemaRef,
    /// How many of the schema's last columns are partition keys (0 for an unpartitioned table).
    pub partition_key_count: usize,
}

/// What the Hive connector needs from the metastore, implemented by the Hive catalog.
///
/// # Contract
/// - Calls are bounded in time: a metastore that does not answer gives an `External` error after
///   the catalog's timeout, never a hang.
/// - `list_partitions` with a filter returns a superset of the partitions matching it (the
///   connector still evaluates its predicates on the partition values).
#[async_trait]
pub trait HiveMetastoreAccess: Send + Sync + Debug {
    /// The table's partitions; with `filter`, those matching a metastore filter expression in
    /// Hive's `get_partitions_by_filter` syntax (e.g. `dt = "2024-01-01" and hr = 1`).
    async fn list_partitions(&self, filter: Option<&str>) -> Result<Vec<HivePartition>>;

    /// Registers partitions whose files were written (and moved into place) by an insert;
    /// partitions that already exist are left as they are.
    async fn add_partitions(&self, partitions: Vec<HivePartition>) -> Result<()>;
}

/// The table provider for a Hive table: scans (with partition pruning) and `INSERT INTO` /
/// `INSERT OVERWRITE`.
///
/// Scans list the files through the session's object store registry (`file:` is always there;
/// `s3://`, `hdfs://`, ... work once a store is registered for them). Files and directories whose
/// names start with `.` or `_` are skipped. For partitioned tables, filters on partition keys
/// are sent to the metastore (`list_partitions(Some(filter))`) and evaluated on the partition
/// values; EXPLAIN shows `HiveScan: <table> format=.. partitions=<read>/<listed> files=..`, where
/// `listed` is what the metastore returned (all partitions when no filter could be sent).
///
/// # Errors
/// `Invalid` for a malformed location or SerDe parameters (text delimiters);
/// `NotSupported` for what cannot be read yet (another text encoding than UTF-8).
pub fn hive_table(
    desc: HiveTableDesc,
    access: Arc<dyn HiveMetastoreAccess>,
) -> Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(table::HiveTable::try_new(desc, access)?))
}
