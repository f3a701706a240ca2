//! [`CatalogSnapshot`]: the catalog metadata one statement needs, fetched before planning.
//!
//! Planning (DataFusion's `SqlToRel`) is synchronous while catalogs may be remote; the session
//! collects the names a statement mentions, looks them up (asynchronously) into a snapshot, and
//! the planner reads only the snapshot. A name missing from the snapshot is "not found".

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;

use super::CatalogTable;
use super::registry::ObjectPath;

/// Resolved definitions of the objects a statement uses.
#[derive(Debug, Clone, Default)]
pub struct CatalogSnapshot {
    pub current_catalog: String,
    pub current_database: String,
    pub tables: HashMap<ObjectPath, CatalogTable>,
    /// Providers the catalogs built themselves (e.g. Hive-format tables), by table; tables not
    /// listed here are built from their connector options. An `Err` is reported when the table
    /// is planned, not while the snapshot is built.
    pub providers: HashMap<ObjectPath, crate::error::Result<Arc<dyn TableProvider>>>,
}

impl CatalogSnapshot {
    /// Qualifies a 1-, 2- or 3-part name with the snapshot's current catalog and database.
    pub fn qualify(&self, parts: &[String]) -> Option<ObjectPath> {
        Some(match parts {
            [name] => ObjectPath {
                catalog: self.current_catalog.clone(),
                database: self.current_database.clone(),
                name: name.clone(),
            },
            [db, name] => ObjectPath {
                catalog: self.current_catalog.clone(),
                database: db.clone(),
                name: name.clone(),
            },
            [cat, db, name] => ObjectPath {
                catalog: cat.clone(),
                database: db.clone(),
                name: name.clone(),
            },
            _ => return None,
        })
    }

    pub fn get(&self, path: &ObjectPath) -> Option<&CatalogTable> {
        self.tables.get(path)
    }

    /// The provider a catalog built for a table, if it built one.
    ///
    /// # Errors
    /// The catalog's error from building it.
    pub fn provider(
        &self,
        path: &ObjectPath,
    ) -> crate::error::Result<Option<Arc<dyn TableProvider>>> {
        match self.providers.get(path) {
            None => Ok(None),
            Some(Ok(p)) => Ok(Some(Arc::clone(p))),
            Some(Err(e)) => Err(e.clone()),
        }
    }
}
