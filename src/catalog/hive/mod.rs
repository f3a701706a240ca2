//! The Hive Metastore catalog (`CREATE CATALOG h WITH ('type' = 'hive', 'uri' = 'thrift://..')`):
//! databases, tables and views kept in a Hive Metastore, spoken to over Thrift.
//!
//! Where it sits: the session resolves names through [`Catalog`] calls (asynchronously, into the
//! planning snapshot); for Hive-format tables it also asks [`Catalog::table_provider`], which
//! builds the Hive connector's provider (`connectors::hive::hive_table`) from the table's
//! [`HiveTableDesc`](crate::connectors::hive::HiveTableDesc) and a
//! [`HivePartitionAccess`](partitions::HivePartitionAccess). Generic tables (Weir connector
//! tables stored in the metastore, as Flink's `HiveCatalog` does) get `None` there and are built
//! from their connector options like any other catalog's tables.
//!
//! Note on layers: this module is the one place where `catalog` uses `connectors` (the Hive
//! connector's interface types) and `sql` (to read back generic tables' Flink type strings).
//!
//! Files: `conf` (options, hive-site.xml), `client` (Thrift calls with timeouts, cache),
//! `types` (Hive types ↔ SqlType), `convert` (metastore tables ↔ catalog objects),
//! `partitions` (the connector's partition access).

pub mod client;
pub mod conf;
pub mod convert;
pub mod partitions;
pub mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use hive_metastore::Database;

use self::client::Metastore;
use self::conf::HiveConfig;
use self::partitions::HivePartitionAccess;
use super::{Catalog, CatalogTable, DatabaseDef, TableDef};
use crate::connectors::hive::{HiveMetastoreAccess, hive_table};
use crate::error::{Error, ErrorCode, Result};

/// A catalog backed by a Hive Metastore.
#[derive(Debug)]
pub struct HiveCatalog {
    name: String,
    metastore: Arc<Metastore>,
    owner: String,
}

impl HiveCatalog {
    /// A Hive catalog from `CREATE CATALOG` options. No connection is made here: a metastore
    /// that is down is reported by the first statement that needs it.
    ///
    /// # Errors
    /// `Invalid` for bad options (see [`HiveConfig::from_options`]).
    pub fn new(name: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let config = HiveConfig::from_options(name, options)?;
        Ok(Self {
            name: name.to_string(),
            metastore: Arc::new(Metastore::new(config)),
            owner: std::env::var("USER").unwrap_or_else(|_| "weir".to_string()),
        })
    }

    fn full(&self, database: &str, name: &str) -> String {
        format!("`{}`.`{database}`.`{name}`", self.name)
    }

    /// The partition access the Hive connector gets for a table (also for tests and tools).
    ///
    /// # Errors
    /// `NotFound` when the table does not exist; `External` when the metastore fails.
    pub async fn partition_access(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Arc<dyn HiveMetastoreAccess>> {
        let t = self.metastore.table(database, name).await?.ok_or_else(|| {
            Error::not_found(format!(
                "table {} does not exist",
                self.full(database, name)
            ))
        })?;
        Ok(Arc::new(HivePartitionAccess::new(
            Arc::clone(&self.metastore),
            database,
            name,
            t.sd,
        )))
    }

    /// The connector description of a Hive-format table (None for generic tables and views).
    ///
    /// # Errors
    /// As [`convert::hive_desc`]; `NotFound` for a missing table.
    pub async fn table_desc(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Option<crate::connectors::hive::HiveTableDesc>> {
        let t = self.metastore.table(database, name).await?.ok_or_else(|| {
            Error::not_found(format!(
                "table {} does not exist",
                self.full(database, name)
            ))
        })?;
        if convert::is_generic(&t) || t.table_type.as_deref() == Some(convert::VIRTUAL_VIEW) {
            return Ok(None);
        }
        let full = format!("{}.{database}.{name}", self.name);
        convert::hive_desc(&full, &t).map(Some)
    }

    async fn require_database(&self, database: &str) -> Result<()> {
        if self.metastore.database(database).await?.is_none() {
            return Err(Error::not_found(format!(
                "database `{}`.`{database}` does not exist",
                self.name
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl Catalog for HiveCatalog {
    fn catalog_type(&self) -> &str {
        "hive"
    }

    fn default_database(&self) -> &str {
        &self.metastore.config.default_database
    }

    async fn list_databases(&self) -> Result<Vec<String>> {
        self.metastore.all_databases().await
    }

    async fn get_database(&self, name: &str) -> Result<Option<DatabaseDef>> {
        Ok(self.metastore.database(name).await?.map(|db| DatabaseDef {
            comment: db
                .description
                .as_ref()
                .map(|d| d.to_string())
                .filter(|d| !d.is_empty()),
            properties: db
                .parameters
                .iter()
                .flatten()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }))
    }

    async fn create_database(
        &self,
        name: &str,
        def: DatabaseDef,
        if_not_exists: bool,
    ) -> Result<()> {
        let location = self
            .metastore
            .config
            .warehouse
            .as_ref()
            .map(|w| format!("{}/{name}.db", w.trim_end_matches('/')).into());
        let db = Database {
            name: Some(name.to_string().into()),
            description: def.comment.map(Into::into),
            location_uri: location,
            parameters: Some(
                def.properties
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
            owner_name: Some(self.owner.clone().into()),
            ..Default::default()
        };
        let result = self
            .metastore
            .call(&format!("create database `{name}`"), |c| async move {
                c.create_database(db).await
            })
            .await;
        self.metastore.invalidate();
        match result {
            Err(e) if e.code == ErrorCode::AlreadyExists && if_not_exists => Ok(()),
            Err(e) if e.code == ErrorCode::AlreadyExists => Err(Error::already_exists(format!(
                "database `{}`.`{name}` already exists",
                self.name
            ))),
            other => other,
        }
    }

    async fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<()> {
        if self.metastore.database(name).await?.is_none() {
            return if if_exists {
                Ok(())
            } else {
                Err(Error::not_found(format!(
                    "database `{}`.`{name}` does not exist",
                    self.name
                )))
            };
        }
        if !cascade && !self.metastore.table_names(name).await?.is_empty() {
            return Err(Error::invalid(format!(
                "database `{}`.`{name}` is not empty; use DROP DATABASE ... CASCADE",
                self.name
            )));
        }
        let n = name.to_string();
        let result = self
            .metastore
            .call(&format!("drop database `{name}`"), |c| async move {
                c.drop_database(n.into(), true, cascade).await
            })
            .await;
        self.metastore.invalidate();
        match result {
            Err(e) if e.code == ErrorCode::NotFound && if_exists => Ok(()),
            other => other,
        }
    }

    async fn list_tables(&self, database: &str) -> Result<Vec<(String, CatalogTable)>> {
        self.require_database(database).await?;
        let names = self.metastore.table_names(database).await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let tables = self.metastore.tables(database, names).await?;
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            let name = t.table_name.as_deref().unwrap_or("").to_string();
            let full = self.full(database, &name);
            let table = match convert::table_from_hive(&full, &t) {
                Ok(table) => table,
                // Listing must not fail because one table is unreadable: it is listed, and
                // using it reports why.
                Err(e) => CatalogTable::Table(TableDef {
                    columns: Vec::new(),
                    watermark: None,
                    primary_key: None,
                    partition_keys: Vec::new(),
                    options: BTreeMap::from([
                        ("connector".to_string(), "hive".to_string()),
                        ("unreadable".to_string(), e.message),
                    ]),
                    comment: None,
                }),
            };
            out.push((name, table));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<CatalogTable>> {
        let Some(t) = self.metastore.table(database, name).await? else {
            return Ok(None);
        };
        convert::table_from_hive(&self.full(database, name), &t).map(Some)
    }

    async fn create_table(
        &self,
        database: &str,
        name: &str,
        table: CatalogTable,
        if_not_exists: bool,
    ) -> Result<()> {
        self.require_database(database).await?;
        let t = convert::hive_from_table(database, name, &table, &self.owner)?;
        let result = self
            .metastore
            .call(
                &format!("create table {}", self.full(database, name)),
                |c| async move { c.create_table(t).await },
            )
            .await;
        self.metastore.invalidate();
        match result {
            Err(e) if e.code == ErrorCode::AlreadyExists && if_not_exists => Ok(()),
            Err(e) if e.code == ErrorCode::AlreadyExists => Err(Error::already_exists(format!(
                "table {} already exists",
                self.full(database, name)
            ))),
            other => other,
        }
    }

    async fn alter_table(&self, database: &str, name: &str, table: CatalogTable) -> Result<()> {
        let old = self.metastore.table(database, name).await?.ok_or_else(|| {
            Error::not_found(format!(
                "table {} does not exist",
                self.full(database, name)
            ))
        })?;
        if !convert::is_generic(&old) {
            return Err(Error::not_supported(format!(
                "ALTER of Hive table {} is not supported yet (only generic tables and views \
                 Weir stored can be altered)",
                self.full(database, name)
            )));
        }
        let mut new = convert::hive_from_table(database, name, &table, &self.owner)?;
        new.create_time = old.create_time;
        new.owner = old.owner.clone();
        if let (Some(new_sd), Some(old_sd)) = (new.sd.as_mut(), old.sd.as_ref()) {
            new_sd.location = old_sd.location.clone();
        }
        let (d, n) = (database.to_string(), name.to_string());
        let result = self
            .metastore
            .call(
                &format!("alter table {}", self.full(database, name)),
                |c| async move { c.alter_table(d.into(), n.into(), new).await },
            )
            .await;
        self.metastore.invalidate();
        result
    }

    async fn rename_table(&self, database: &str, from: &str, to: &str) -> Result<()> {
        let mut t = self.metastore.table(database, from).await?.ok_or_else(|| {
            Error::not_found(format!(
                "table {} does not exist",
                self.full(database, from)
            ))
        })?;
        if self.metastore.table(database, to).await?.is_some() {
            return Err(Error::already_exists(format!(
                "table {} already exists",
                self.full(database, to)
            )));
        }
        t.table_name = Some(to.to_string().into());
        let (d, n) = (database.to_string(), from.to_string());
        let result = self
            .metastore
            .call(
                &format!("rename table {}", self.full(database, from)),
                |c| async move { c.alter_table(d.into(), n.into(), t).await },
            )
            .await;
        self.metastore.invalidate();
        result
    }

    async fn drop_table(
        &self,
        database: &str,
        name: &str,
        view: bool,
        if_exists: bool,
    ) -> Result<()> {
        let full = self.full(database, name);
        let Some(t) = self.metastore.table(database, name).await? else {
            return if if_exists {
                Ok(())
            } else {
                Err(Error::not_found(format!(
                    "{} {full} does not exist",
                    if view { "view" } else { "table" }
                )))
            };
        };
        let is_view = t.table_type.as_deref() == Some(convert::VIRTUAL_VIEW);
        if is_view != view {
            return Err(Error::invalid(if view {
                format!("{full} is a table; use DROP TABLE")
            } else {
                format!("{full} is a view; use DROP VIEW")
            }));
        }
        let (d, n) = (database.to_string(), name.to_string());
        let result = self
            .metastore
            .call(&format!("drop {full}"), |c| async move {
                c.drop_table(d.into(), n.into(), true).await
            })
            .await;
        self.metastore.invalidate();
        match result {
            Err(e) if e.code == ErrorCode::NotFound && if_exists => Ok(()),
            other => other,
        }
    }

    async fn table_provider(
        &self,
        database: &str,
        name: &str,
        def: &TableDef,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        if matches!(def.connector(), Some(c) if c.trim() != "hive") {
            return Ok(None);
        }
        let Some(desc) = self.table_desc(database, name).await? else {
            return Ok(None);
        };
        let access = self.partition_access(database, name).await?;
        hive_table(desc, access).map(Some)
    }
}
