//! [`CatalogSnapshot`]: the catalog metadata one statement needs, fetched before planning.
//!
//! Planning (DataFusion's `SqlToRel`) is synchronous while catalogs may be remote; the session
//! collects the names a statement mentions, looks them up (asynchronously) into a snapshot, and
//! the planner reads only the snapshot. A name missing from the snapshot is "not found".

use std::collections::HashMap;

use super::CatalogTable;
use super::registry::ObjectPath;

/// Resolved definitions of the objects a statement uses.
#[derive(Debug, Clone, Default)]
pub struct CatalogSnapshot {
    pub current_catalog: String,
    pub current_database: String,
    pub tables: HashMap<ObjectPath, CatalogTable>,
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
}
