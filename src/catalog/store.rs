//! [`StoredCatalog`]: the in-memory catalog (`generic_in_memory`) and the embedded persistent
//! catalog (`weir`, the shell's default), one implementation with an optional file behind it.
//!
//! The persistent flavour keeps the whole catalog as one JSON document, `catalog.json`, in its
//! directory. Every change is made on a copy, written to a temporary file, fsynced, and renamed
//! over the old document (then the directory is fsynced), so a crash leaves either the old or the
//! new catalog, never a torn one. A lock file serializes writers from several processes, and a
//! process re-reads the document when another process changed it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Catalog, CatalogTable, DatabaseDef};
use crate::error::{Error, Result};

/// The document version this code writes; older versions are migrated on read.
const FORMAT_VERSION: u32 = 1;
const DOCUMENT: &str = "catalog.json";
const LOCK: &str = "catalog.lock";

/// The default database of every catalog Weir creates.
pub const DEFAULT_DATABASE: &str = "default_database";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CatalogData {
    version: u32,
    databases: BTreeMap<String, DatabaseData>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DatabaseData {
    #[serde(default)]
    def: DatabaseDef,
    #[serde(default)]
    tables: BTreeMap<String, CatalogTable>,
}

impl CatalogData {
    fn new(default_database: &str) -> Self {
        let mut databases = BTreeMap::new();
        databases.insert(default_database.to_string(), DatabaseData::default());
        Self {
            version: FORMAT_VERSION,
            databases,
        }
    }

    fn database(&self, name: &str) -> Result<&DatabaseData> {
        self.databases
            .get(name)
            .ok_or_else(|| Error::not_found(format!("database `{name}` does not exist")))
    }

    fn database_mut(&mut self, name: &str) -> Result<&mut DatabaseData> {
        self.databases
            .get_mut(name)
            .ok_or_else(|| Error::not_found(format!("database `{name}` does not exist")))
    }
}

/// Where a persistent catalog's document lives, and the version of it this process last saw.
#[derive(Debug)]
struct Backing {
    dir: PathBuf,
    seen: Option<(SystemTime, u64)>,
}

#[derive(Debug)]
struct Inner {
    data: CatalogData,
    backing: Option<Backing>,
}

/// A catalog held in memory and, when opened with [`StoredCatalog::open_persistent`], stored in a
/// directory. See the module docs for the durability guarantees.
#[derive(Debug)]
pub struct StoredCatalog {
    catalog_type: &'static str,
    default_database: String,
    inner: Mutex<Inner>,
}

impl StoredCatalog {
    /// Flink's `generic_in_memory` catalog: gone when the session ends.
    pub fn in_memory(default_database: &str) -> Self {
        Self {
            catalog_type: "generic_in_memory",
            default_database: default_database.to_string(),
            inner: Mutex::new(Inner {
                data: CatalogData::new(default_database),
                backing: None,
            }),
        }
    }

    /// The embedded persistent catalog in `dir` (created if missing).
    ///
    /// # Errors
    /// `External` when the directory cannot be created or the document cannot be read or parsed
    /// (a corrupt document is reported, never silently replaced).
    pub fn open_persistent(dir: &Path, default_database: &str) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| {
            Error::io(
                format!("cannot create catalog directory {}", dir.display()),
                e,
            )
        })?;
        let mut inner = Inner {
            data: CatalogData::new(default_database),
            backing: Some(Backing {
                dir: dir.to_path_buf(),
                seen: None,
            }),
        };
        refresh(&mut inner)?;
        if inner.backing.as_ref().is_some_and(|b| b.seen.is_none()) {
            // A new catalog: write the initial document so the default database is durable.
            let data = inner.data.clone();
            persist(&mut inner, data)?;
        }
        Ok(Self {
            catalog_type: "weir",
            default_database: default_database.to_string(),
            inner: Mutex::new(inner),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&CatalogData) -> Result<T>) -> Result<T> {
        let mut inner = self.lock()?;
        refresh(&mut inner)?;
        f(&inner.data)
    }

    /// Applies `change` to a copy of the catalog and makes the copy current (and durable) only if
    /// the change succeeded.
    fn write(&self, change: impl FnOnce(&mut CatalogData) -> Result<()>) -> Result<()> {
        let mut inner = self.lock()?;
        let _file_lock = match &inner.backing {
            Some(b) => Some(lock_dir(&b.dir)?),
            None => None,
        };
        refresh(&mut inner)?;
        let mut data = inner.data.clone();
        change(&mut data)?;
        persist(&mut inner, data)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| Error::internal("catalog lock poisoned by an earlier panic"))
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot open catalog lock {}", path.display()), e))?;
    file.lock()
        .map_err(|e| Error::io(format!("cannot lock catalog {}", path.display()), e))?;
    Ok(file)
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Re-reads the document if another process (or a restart) changed it.
fn refresh(inner: &mut Inner) -> Result<()> {
    let Some(backing) = inner.backing.as_mut() else {
        return Ok(());
    };
    let path = backing.dir.join(DOCUMENT);
    let now = stamp(&path);
    if now.is_none() || now == backing.seen {
        return Ok(());
    }
    let text = fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("cannot read catalog {}", path.display()), e))?;
    let data: CatalogData = serde_json::from_str(&text).map_err(|e| {
        Error::external(format!(
            "catalog document {} is corrupt: {e}",
            path.display()
        ))
    })?;
    if data.version > FORMAT_VERSION {
        return Err(Error::external(format!(
            "catalog document {} was written by a newer Weir (format {}; this build reads up to {FORMAT_VERSION})",
            path.display(),
            data.version
        )));
    }
    inner.data = data;
    backing.seen = now;
    Ok(())
}

/// Makes `data` current: for a persistent catalog, durably replaces the document first.
fn persist(inner: &mut Inner, data: CatalogData) -> Result<()> {
    if let Some(backing) = inner.backing.as_mut() {
        let path = backing.dir.join(DOCUMENT);
        let tmp = backing
            .dir
            .join(format!(".{DOCUMENT}.{}.tmp", std::process::id()));
        let text = serde_json::to_vec_pretty(&data)
            .map_err(|e| Error::internal(format!("cannot serialize catalog: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&backing.dir)?.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(
                format!("cannot write catalog {}", path.display()),
                e,
            ));
        }
        backing.seen = stamp(&path);
    }
    inner.data = data;
    Ok(())
}

#[async_trait]
impl Catalog for StoredCatalog {
    fn catalog_type(&self) -> &str {
        self.catalog_type
    }

    fn default_database(&self) -> &str {
        &self.default_database
    }

    async fn list_databases(&self) -> Result<Vec<String>> {
        self.read(|d| Ok(d.databases.keys().cloned().collect()))
    }

    async fn get_database(&self, name: &str) -> Result<Option<DatabaseDef>> {
        self.read(|d| Ok(d.databases.get(name).map(|db| db.def.clone())))
    }

    async fn create_database(
        &self,
        name: &str,
        def: DatabaseDef,
        if_not_exists: bool,
    ) -> Result<()> {
        self.write(|d| {
            if d.databases.contains_key(name) {
                return if if_not_exists {
                    Ok(())
                } else {
                    Err(Error::already_exists(format!(
                        "database `{name}` already exists"
                    )))
                };
            }
            d.databases.insert(
                name.to_string(),
                DatabaseData {
                    def,
                    tables: BTreeMap::new(),
                },
            );
            Ok(())
        })
    }

    async fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<()> {
        self.write(|d| {
            let Some(db) = d.databases.get(name) else {
                return if if_exists {
                    Ok(())
                } else {
                    Err(Error::not_found(format!("database `{name}` does not exist")))
                };
            };
            if !db.tables.is_empty() && !cascade {
                return Err(Error::invalid(format!(
                    "database `{name}` is not empty ({} tables or views); use DROP DATABASE {name} CASCADE",
                    db.tables.len()
                )));
            }
            if name == self.default_database {
                return Err(Error::invalid(format!("the default database `{name}` cannot be dropped")));
            }
            d.databases.remove(name);
            Ok(())
        })
    }

    async fn list_tables(&self, database: &str) -> Result<Vec<(String, CatalogTable)>> {
        self.read(|d| {
            Ok(d.database(database)?
                .tables
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        })
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<CatalogTable>> {
        self.read(|d| {
            Ok(d.databases
                .get(database)
                .and_then(|db| db.tables.get(name))
                .cloned())
        })
    }

    async fn create_table(
        &self,
        database: &str,
        name: &str,
        table: CatalogTable,
        if_not_exists: bool,
    ) -> Result<()> {
        self.write(|d| {
            let db = d.database_mut(database)?;
            if let Some(existing) = db.tables.get(name) {
                return if if_not_exists {
                    Ok(())
                } else {
                    let what = if existing.is_view() {
                        "a view"
                    } else {
                        "a table"
                    };
                    Err(Error::already_exists(format!(
                        "{what} named `{database}`.`{name}` already exists"
                    )))
                };
            }
            db.tables.insert(name.to_string(), table);
            Ok(())
        })
    }

    async fn alter_table(&self, database: &str, name: &str, table: CatalogTable) -> Result<()> {
        self.write(|d| {
            let db = d.database_mut(database)?;
            match db.tables.get_mut(name) {
                Some(slot) => {
                    *slot = table;
                    Ok(())
                }
                None => Err(Error::not_found(format!(
                    "table `{database}`.`{name}` does not exist"
                ))),
            }
        })
    }

    async fn rename_table(&self, database: &str, from: &str, to: &str) -> Result<()> {
        self.write(|d| {
            let db = d.database_mut(database)?;
            if db.tables.contains_key(to) {
                return Err(Error::already_exists(format!(
                    "`{database}`.`{to}` already exists"
                )));
            }
            let table = db.tables.remove(from).ok_or_else(|| {
                Error::not_found(format!("table `{database}`.`{from}` does not exist"))
            })?;
            db.tables.insert(to.to_string(), table);
            Ok(())
        })
    }

    async fn drop_table(
        &self,
        database: &str,
        name: &str,
        view: bool,
        if_exists: bool,
    ) -> Result<()> {
        let what = if view { "view" } else { "table" };
        self.write(|d| {
            let Some(db) = d.databases.get_mut(database) else {
                return if if_exists {
                    Ok(())
                } else {
                    Err(Error::not_found(format!(
                        "database `{database}` does not exist"
                    )))
                };
            };
            match db.tables.get(name) {
                None if if_exists => Ok(()),
                None => Err(Error::not_found(format!(
                    "{what} `{database}`.`{name}` does not exist"
                ))),
                Some(t) if t.is_view() != view => Err(Error::invalid(format!(
                    "`{database}`.`{name}` is a {}, not a {what}; use DROP {}",
                    if t.is_view() { "view" } else { "table" },
                    if t.is_view() { "VIEW" } else { "TABLE" }
                ))),
                Some(_) => {
                    db.tables.remove(name);
                    Ok(())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ViewDef;

    fn view(q: &str) -> CatalogTable {
        CatalogTable::View(ViewDef {
            query: q.into(),
            columns: vec![],
            comment: None,
        })
    }

    #[tokio::test]
    async fn persistent_catalog_survives_reopen_and_rejects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = StoredCatalog::open_persistent(dir.path(), DEFAULT_DATABASE).unwrap();
            c.create_database("sales", DatabaseDef::default(), false)
                .await
                .unwrap();
            c.create_table("sales", "v", view("SELECT 1"), false)
                .await
                .unwrap();
            let err = c
                .create_table("sales", "v", view("SELECT 2"), false)
                .await
                .unwrap_err();
            assert!(err.message.contains("already exists"), "{err}");
        }
        let c = StoredCatalog::open_persistent(dir.path(), DEFAULT_DATABASE).unwrap();
        assert_eq!(
            c.list_databases().await.unwrap(),
            vec!["default_database", "sales"]
        );
        assert_eq!(
            c.get_table("sales", "v").await.unwrap(),
            Some(view("SELECT 1"))
        );
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");

        fs::write(dir.path().join(DOCUMENT), "{ not json").unwrap();
        let err = StoredCatalog::open_persistent(dir.path(), DEFAULT_DATABASE).unwrap_err();
        assert!(err.message.contains("corrupt"), "{err}");
    }

    #[tokio::test]
    async fn failed_change_leaves_catalog_unchanged() {
        let c = StoredCatalog::in_memory(DEFAULT_DATABASE);
        c.create_table(DEFAULT_DATABASE, "t", view("SELECT 1"), false)
            .await
            .unwrap();
        let err = c
            .drop_database(DEFAULT_DATABASE, false, false)
            .await
            .unwrap_err();
        assert!(err.message.contains("not empty"), "{err}");
        let err = c
            .drop_table(DEFAULT_DATABASE, "t", false, false)
            .await
            .unwrap_err();
        assert!(err.message.contains("is a view"), "{err}");
        assert!(c.get_table(DEFAULT_DATABASE, "t").await.unwrap().is_some());
        c.rename_table(DEFAULT_DATABASE, "t", "u").await.unwrap();
        assert!(c.get_table(DEFAULT_DATABASE, "t").await.unwrap().is_none());
        assert!(c.get_table(DEFAULT_DATABASE, "u").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_second_process_sees_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = StoredCatalog::open_persistent(dir.path(), DEFAULT_DATABASE).unwrap();
        let b = StoredCatalog::open_persistent(dir.path(), DEFAULT_DATABASE).unwrap();
        a.create_database("x", DatabaseDef::default(), false)
            .await
            .unwrap();
        // Make sure the modification time differs even on coarse file systems.
        std::thread::sleep(std::time::Duration::from_millis(20));
        b.create_database("y", DatabaseDef::default(), false)
            .await
            .unwrap();
        assert_eq!(
            a.list_databases().await.unwrap(),
            vec!["default_database", "x", "y"]
        );
    }
}
