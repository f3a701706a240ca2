//! The catalog layer: where table, view and database definitions live between statements.
//!
//! A [`Catalog`] stores definitions only; it never reads data. The session keeps several catalogs
//! by name (see [`registry::CatalogRegistry`]) and addresses objects as `catalog.database.object`.
//! Planning is synchronous, but catalogs may be remote (the Hive Metastore), so the session first
//! resolves every name a statement mentions into a [`snapshot::CatalogSnapshot`] (asynchronously),
//! then plans against that snapshot.
//!
//! Implementations: [`store::StoredCatalog`] in two flavours, in-memory (`generic_in_memory`) and
//! the embedded persistent catalog (`weir`), kept as one JSON document under the data directory and
//! replaced atomically on every change; [`hive::HiveCatalog`] (`hive`), a Hive Metastore.

pub mod hive;
pub mod registry;
pub mod snapshot;
pub mod store;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::SqlType;

/// A table defined by Flink-style DDL: its columns, time attributes, keys and connector options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub columns: Vec<ColumnDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<WatermarkDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_keys: Vec<String>,
    /// The `WITH (...)` options, e.g. `connector`, `path`, `format`.
    pub options: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl TableDef {
    /// The columns stored by the connector (in declared order): not computed, not metadata.
    pub fn physical_columns(&self) -> impl Iterator<Item = (&ColumnDef, &SqlType, bool)> {
        self.columns.iter().filter_map(|c| match &c.kind {
            ColumnKind::Physical {
                data_type,
                nullable,
            } => Some((c, data_type, *nullable)),
            _ => None,
        })
    }

    /// The value of the `connector` option, if any.
    pub fn connector(&self) -> Option<&str> {
        self.options.get("connector").map(String::as_str)
    }
}

/// One column of a [`TableDef`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub kind: ColumnKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnKind {
    /// Stored by the connector.
    Physical { data_type: SqlType, nullable: bool },
    /// Computed when read: `name AS expr` (the expression's SQL text, Flink dialect).
    Computed { expr: String },
}

/// `WATERMARK FOR column AS expr` (the expression's SQL text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatermarkDef {
    pub column: String,
    pub expr: String,
}

/// A view: a stored query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    /// The query's SQL text (Flink dialect), as written.
    pub query: String,
    /// Column names given in `CREATE VIEW v (a, b) AS ...`; empty means the query's own names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// What a catalog stores under a table name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum CatalogTable {
    Table(TableDef),
    View(ViewDef),
}

impl CatalogTable {
    pub fn is_view(&self) -> bool {
        matches!(self, CatalogTable::View(_))
    }
}

/// A database's own properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// A store of database, table and view definitions.
///
/// # Contract
/// - Names are compared exactly (the session normalizes case before calling).
/// - Every mutating call is all-or-nothing: when it returns `Ok`, the change is durable (for a
///   persistent catalog) and visible to the next call; when it returns `Err`, nothing changed.
/// - `get_*` calls return `Ok(None)` for a missing object; errors mean the catalog itself failed
///   (e.g. a remote metastore is down) and are `External`.
///
/// # Errors
/// Creating an object that exists without `if_not_exists` is `AlreadyExists`; dropping or altering
/// a missing one without `if_exists` is `NotFound`; dropping a non-empty database without
/// `cascade` is `Invalid`.
///
/// # Cancellation
/// Calls may be dropped at any await point; a persistent implementation must then leave either the
/// old or the new state on disk, never a mix.
#[async_trait]
pub trait Catalog: Send + Sync + Debug {
    /// The catalog's type as written in `CREATE CATALOG ... WITH ('type' = ..)`.
    fn catalog_type(&self) -> &str;

    /// The database `USE CATALOG` switches to.
    fn default_database(&self) -> &str;

    async fn list_databases(&self) -> Result<Vec<String>>;
    async fn get_database(&self, name: &str) -> Result<Option<DatabaseDef>>;
    async fn create_database(
        &self,
        name: &str,
        def: DatabaseDef,
        if_not_exists: bool,
    ) -> Result<()>;
    async fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<()>;

    /// Tables and views of a database, sorted by name. `NotFound` if the database does not exist.
    async fn list_tables(&self, database: &str) -> Result<Vec<(String, CatalogTable)>>;
    async fn get_table(&self, database: &str, name: &str) -> Result<Option<CatalogTable>>;
    async fn create_table(
        &self,
        database: &str,
        name: &str,
        table: CatalogTable,
        if_not_exists: bool,
    ) -> Result<()>;
    /// Replaces an existing table's definition (ALTER TABLE ... SET/RESET).
    async fn alter_table(&self, database: &str, name: &str, table: CatalogTable) -> Result<()>;
    async fn rename_table(&self, database: &str, from: &str, to: &str) -> Result<()>;
    /// Drops a table (`view == false`) or a view (`view == true`); dropping a view with DROP
    /// TABLE, or a table with DROP VIEW, is `Invalid`.
    async fn drop_table(
        &self,
        database: &str,
        name: &str,
        view: bool,
        if_exists: bool,
    ) -> Result<()>;

    /// The table provider for a table whose data this catalog serves itself (a Hive-format
    /// table in a Hive Metastore), or `None` to build it from the table's connector options (the
    /// default, and what every table with a `connector` option gets). Called while the session
    /// builds a statement's snapshot, for each table the statement uses; `def` is what
    /// [`get_table`](Catalog::get_table) returned.
    ///
    /// # Errors
    /// As `get_table`; also the provider's own errors (e.g. an unsupported storage format).
    async fn table_provider(
        &self,
        database: &str,
        name: &str,
        def: &TableDef,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let _ = (database, name, def);
        Ok(None)
    }
}
