//! [`CatalogRegistry`]: the session's catalogs by name, the current catalog and database, and
//! the session's temporary tables and views. It resolves `[catalog.][database.]name` against the
//! current catalog and database.
//!
//! Catalogs made by `CREATE CATALOG` are remembered in `<data-dir>/catalogs.json` (written
//! atomically, like the catalog document), so they are there again after a restart, as with
//! Flink's catalog store. The default catalog, `default_catalog`, is the embedded persistent
//! catalog under `<data-dir>/catalog` (or an in-memory one when there is no data directory).
//! Catalog types: `generic_in_memory`, `weir` (persistent, embedded) and `hive` (a Hive
//! Metastore, see [`super::hive`]).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::store::{DEFAULT_DATABASE, StoredCatalog};
use super::{Catalog, CatalogTable};
use crate::error::{Error, Result};

/// The name of the catalog every session starts in.
pub const DEFAULT_CATALOG: &str = "default_catalog";

/// The catalog types `CREATE CATALOG ... WITH ('type' = ..)` accepts.
pub const CATALOG_TYPES: &[&str] = &["generic_in_memory", "hive", "weir"];

/// A fully qualified object name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectPath {
    pub catalog: String,
    pub database: String,
    pub name: String,
}

impl ObjectPath {
    /// `catalog.database.name`, without quoting (for messages that quote the whole name).
    pub fn dotted(&self) -> String {
        format!("{}.{}.{}", self.catalog, self.database, self.name)
    }
}

impl std::fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`.`{}`.`{}`", self.catalog, self.database, self.name)
    }
}

/// The catalogs of a session.
#[derive(Debug)]
pub struct CatalogRegistry {
    catalogs: BTreeMap<String, Arc<dyn Catalog>>,
    /// Options of catalogs made by CREATE CATALOG, as given (for SHOW CREATE CATALOG and restart).
    created: BTreeMap<String, BTreeMap<String, String>>,
    current_catalog: String,
    current_database: String,
    temporary: BTreeMap<ObjectPath, CatalogTable>,
    data_dir: Option<PathBuf>,
}

impl CatalogRegistry {
    /// Opens the registry: the default catalog (persistent under `data_dir`, else in memory) and
    /// every catalog created earlier with CREATE CATALOG.
    pub fn open(data_dir: Option<&Path>) -> Result<Self> {
        let default: Arc<dyn Catalog> = match data_dir {
            Some(dir) => Arc::new(StoredCatalog::open_persistent(
                &dir.join("catalog"),
                DEFAULT_DATABASE,
            )?),
            None => Arc::new(StoredCatalog::in_memory(DEFAULT_DATABASE)),
        };
        let mut registry = Self {
            catalogs: BTreeMap::from([(DEFAULT_CATALOG.to_string(), default)]),
            created: BTreeMap::new(),
            current_catalog: DEFAULT_CATALOG.to_string(),
            current_database: DEFAULT_DATABASE.to_string(),
            temporary: BTreeMap::new(),
            data_dir: data_dir.map(Path::to_path_buf),
        };
        if let Some(path) = registry.store_path()
            && path.exists()
        {
            {
                let text = fs::read_to_string(&path)
                    .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
                let created: BTreeMap<String, BTreeMap<String, String>> =
                    serde_json::from_str(&text).map_err(|e| {
                        Error::external(format!("catalog store {} is corrupt: {e}", path.display()))
                    })?;
                for (name, options) in created {
                    let catalog = registry.build_catalog(&name, &options)?;
                    registry.catalogs.insert(name.clone(), catalog);
                    registry.created.insert(name, options);
                }
            }
        }
        Ok(registry)
    }

    fn store_path(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|d| d.join("catalogs.json"))
    }

    fn build_catalog(
        &self,
        name: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Catalog>> {
        let kind = options.get("type").ok_or_else(|| {
            Error::invalid(format!(
                "CREATE CATALOG `{name}` needs a 'type' option; valid types: {}",
                CATALOG_TYPES.join(", ")
            ))
        })?;
        let allowed: &[&str] = match kind.as_str() {
            "generic_in_memory" => &["type", "default-database"],
            "weir" => &["type", "default-database", "path"],
            "hive" => return Ok(Arc::new(super::hive::HiveCatalog::new(name, options)?)),
            other => {
                return Err(Error::invalid(format!(
                    "unknown catalog type '{other}' for catalog `{name}`; valid types: {}",
                    CATALOG_TYPES.join(", ")
                )));
            }
        };
        if let Some(bad) = options.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Error::invalid(format!(
                "unknown option '{bad}' for catalog `{name}` of type '{kind}'; valid options: {}",
                allowed.join(", ")
            )));
        }
        let default_db = options
            .get("default-database")
            .map(String::as_str)
            .unwrap_or(DEFAULT_DATABASE);
        Ok(match kind.as_str() {
            "weir" => {
                let dir = match (options.get("path"), &self.data_dir) {
                    (Some(p), _) => PathBuf::from(p),
                    (None, Some(d)) => d.join("catalogs").join(name),
                    (None, None) => {
                        return Err(Error::invalid(format!(
                            "catalog `{name}` of type 'weir' needs a 'path' option when the session has no data directory"
                        )));
                    }
                };
                Arc::new(StoredCatalog::open_persistent(&dir, default_db)?)
            }
            _ => Arc::new(StoredCatalog::in_memory(default_db)),
        })
    }

    /// CREATE CATALOG.
    pub fn create_catalog(
        &mut self,
        name: &str,
        options: BTreeMap<String, String>,
        if_not_exists: bool,
    ) -> Result<()> {
        if self.catalogs.contains_key(name) {
            return if if_not_exists {
                Ok(())
            } else {
                Err(Error::already_exists(format!(
                    "catalog `{name}` already exists"
                )))
            };
        }
        let catalog = self.build_catalog(name, &options)?;
        let mut created = self.created.clone();
        created.insert(name.to_string(), options);
        self.save_created(&created)?;
        self.created = created;
        self.catalogs.insert(name.to_string(), catalog);
        Ok(())
    }

    /// DROP CATALOG. The current catalog cannot be dropped (as in Flink).
    pub fn drop_catalog(&mut self, name: &str, if_exists: bool) -> Result<()> {
        if !self.catalogs.contains_key(name) {
            return if if_exists {
                Ok(())
            } else {
                Err(Error::not_found(format!("catalog `{name}` does not exist")))
            };
        }
        if name == self.current_catalog {
            return Err(Error::invalid(format!(
                "cannot drop the current catalog `{name}`; USE CATALOG another one first"
            )));
        }
        if name == DEFAULT_CATALOG {
            return Err(Error::invalid("the default catalog cannot be dropped"));
        }
        let mut created = self.created.clone();
        created.remove(name);
        self.save_created(&created)?;
        self.created = created;
        self.catalogs.remove(name);
        self.temporary.retain(|p, _| p.catalog != name);
        Ok(())
    }

    fn save_created(&self, created: &BTreeMap<String, BTreeMap<String, String>>) -> Result<()> {
        let Some(path) = self.store_path() else {
            return Ok(());
        };
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let text =
            serde_json::to_vec_pretty(created).map_err(|e| Error::internal(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut f = File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(format!("cannot write {}", path.display()), e)
        })
    }

    /// The options a catalog was created with (None for the default catalog).
    pub fn catalog_options(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.created.get(name)
    }

    pub fn catalog_names(&self) -> Vec<String> {
        self.catalogs.keys().cloned().collect()
    }

    pub fn catalog(&self, name: &str) -> Result<&Arc<dyn Catalog>> {
        self.catalogs.get(name).ok_or_else(|| {
            Error::not_found(format!(
                "catalog `{name}` does not exist; catalogs: {}",
                self.catalogs.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    pub fn current_catalog(&self) -> &str {
        &self.current_catalog
    }

    pub fn current_database(&self) -> &str {
        &self.current_database
    }

    /// USE CATALOG: switches to the catalog and its default database.
    pub fn use_catalog(&mut self, name: &str) -> Result<()> {
        let catalog = self.catalog(name)?;
        self.current_database = catalog.default_database().to_string();
        self.current_catalog = name.to_string();
        Ok(())
    }

    /// USE [catalog.]database.
    pub async fn use_database(&mut self, catalog: Option<&str>, database: &str) -> Result<()> {
        let catalog_name = catalog.unwrap_or(&self.current_catalog).to_string();
        let catalog = self.catalog(&catalog_name)?;
        if catalog.get_database(database).await?.is_none() {
            return Err(Error::not_found(format!(
                "database `{catalog_name}`.`{database}` does not exist"
            )));
        }
        self.current_catalog = catalog_name;
        self.current_database = database.to_string();
        Ok(())
    }

    /// Qualifies a 1-, 2- or 3-part name with the current catalog and database.
    pub fn qualify(&self, parts: &[String]) -> Result<ObjectPath> {
        match parts {
            [name] => Ok(ObjectPath {
                catalog: self.current_catalog.clone(),
                database: self.current_database.clone(),
                name: name.clone(),
            }),
            [db, name] => Ok(ObjectPath {
                catalog: self.current_catalog.clone(),
                database: db.clone(),
                name: name.clone(),
            }),
            [cat, db, name] => Ok(ObjectPath {
                catalog: cat.clone(),
                database: db.clone(),
                name: name.clone(),
            }),
            _ => Err(Error::invalid(format!(
                "`{}` is not a valid object name: use [catalog.][database.]name",
                parts.join(".")
            ))),
        }
    }

    /// Looks a table or view up: temporary objects shadow catalog ones.
    pub async fn lookup(&self, path: &ObjectPath) -> Result<Option<CatalogTable>> {
        if let Some(t) = self.temporary.get(path) {
            return Ok(Some(t.clone()));
        }
        let Some(catalog) = self.catalogs.get(&path.catalog) else {
            return Ok(None);
        };
        catalog.get_table(&path.database, &path.name).await
    }

    pub fn temporary(&self, path: &ObjectPath) -> Option<&CatalogTable> {
        self.temporary.get(path)
    }

    /// All temporary objects in a database, by name.
    pub fn temporaries_in(&self, catalog: &str, database: &str) -> Vec<(String, CatalogTable)> {
        self.temporary
            .iter()
            .filter(|(p, _)| p.catalog == catalog && p.database == database)
            .map(|(p, t)| (p.name.clone(), t.clone()))
            .collect()
    }

    /// CREATE TEMPORARY TABLE / VIEW.
    pub fn create_temporary(
        &mut self,
        path: ObjectPath,
        table: CatalogTable,
        if_not_exists: bool,
    ) -> Result<()> {
        if self.temporary.contains_key(&path) {
            return if if_not_exists {
                Ok(())
            } else {
                Err(Error::already_exists(format!(
                    "temporary object {path} already exists"
                )))
            };
        }
        self.catalog(&path.catalog)?;
        self.temporary.insert(path, table);
        Ok(())
    }

    /// DROP TEMPORARY TABLE / VIEW; returns whether it existed.
    pub fn drop_temporary(&mut self, path: &ObjectPath) -> bool {
        self.temporary.remove(path).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn created_catalogs_come_back_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut r = CatalogRegistry::open(Some(dir.path())).unwrap();
            r.create_catalog(
                "mem",
                BTreeMap::from([("type".into(), "generic_in_memory".into())]),
                false,
            )
            .unwrap();
            r.create_catalog(
                "disk",
                BTreeMap::from([("type".into(), "weir".into())]),
                false,
            )
            .unwrap();
            let err = r
                .create_catalog(
                    "bad",
                    BTreeMap::from([("type".into(), "nope".into())]),
                    false,
                )
                .unwrap_err();
            assert!(
                err.message
                    .contains("valid types: generic_in_memory, hive, weir"),
                "{err}"
            );
            let err = r
                .create_catalog(
                    "bad",
                    BTreeMap::from([("type".into(), "weir".into()), ("x".into(), "1".into())]),
                    false,
                )
                .unwrap_err();
            assert!(err.message.contains("unknown option 'x'"), "{err}");
            r.catalog("disk")
                .unwrap()
                .create_database("d", Default::default(), false)
                .await
                .unwrap();
        }
        let mut r = CatalogRegistry::open(Some(dir.path())).unwrap();
        assert_eq!(r.catalog_names(), vec!["default_catalog", "disk", "mem"]);
        r.use_database(Some("disk"), "d").await.unwrap();
        assert_eq!(
            r.qualify(&["t".into()]).unwrap().to_string(),
            "`disk`.`d`.`t`"
        );
        r.use_catalog("mem").unwrap();
        assert_eq!(r.current_database(), "default_database");
        assert!(r.drop_catalog("mem", false).is_err());
        r.use_catalog("default_catalog").unwrap();
        r.drop_catalog("mem", false).unwrap();
    }

    #[test]
    fn hive_catalogs_check_their_options_without_connecting() {
        let mut r = CatalogRegistry::open(None).unwrap();
        let opts = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let err = r
            .create_catalog(
                "h",
                opts(&[
                    ("type", "hive"),
                    ("uri", "thrift://127.0.0.1:1"),
                    ("x", "1"),
                ]),
                false,
            )
            .unwrap_err();
        assert!(err.message.contains("unknown option 'x'"), "{err}");
        assert!(err.message.contains("valid options: type, uri"), "{err}");
        // Nothing listens on port 1: creating the catalog does not connect.
        r.create_catalog(
            "h",
            opts(&[
                ("type", "hive"),
                ("uri", "thrift://127.0.0.1:1"),
                ("default-database", "db1"),
            ]),
            false,
        )
        .unwrap();
        r.use_catalog("h").unwrap();
        assert_eq!(r.current_database(), "db1");
        assert_eq!(r.catalog("h").unwrap().catalog_type(), "hive");
    }
}
