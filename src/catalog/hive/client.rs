//! The Thrift connection to a Hive Metastore: every call is bounded by the catalog's timeout
//! (connect + request + response), metastore exceptions become Weir errors by kind, and a short-
//! lived cache keeps what one statement (or a burst of them) fetched, so planning does not ask
//! the metastore the same question twice. Our own DDL invalidates the cache.
//!
//! Data path: `catalog::hive` (Catalog calls, partition listing for the Hive connector) →
//! [`Metastore::call`] → `hive_metastore` (volo-thrift, unframed binary protocol, buffered
//! codec, which is what Hive 2.3's server speaks) → the metastore.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hive_metastore::{
    Database, Table, ThriftHiveMetastoreClient, ThriftHiveMetastoreClientBuilder,
};
use volo_thrift::MaybeException;

use super::conf::HiveConfig;
use crate::error::{Error, ErrorCode, Result};

/// How long fetched metadata is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// A metastore client plus the metadata cache.
pub struct Metastore {
    pub config: HiveConfig,
    client: Mutex<Option<ThriftHiveMetastoreClient>>,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    databases: Option<(Instant, Vec<String>)>,
    database: HashMap<String, (Instant, Option<Database>)>,
    table_names: HashMap<String, (Instant, Vec<String>)>,
    tables: HashMap<(String, String), (Instant, Option<Table>)>,
}

fn fresh<T: Clone>(entry: Option<&(Instant, T)>) -> Option<T> {
    entry
        .filter(|(at, _)| at.elapsed() < CACHE_TTL)
        .map(|(_, v)| v.clone())
}

impl Debug for Metastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metastore")
            .field("uri", &self.uri())
            .finish_non_exhaustive()
    }
}

impl Metastore {
    pub fn new(config: HiveConfig) -> Self {
        Self {
            config,
            client: Mutex::new(None),
            cache: Mutex::new(Cache::default()),
        }
    }

    /// `thrift://host:port`, for messages.
    pub fn uri(&self) -> String {
        format!("thrift://{}:{}", self.config.host, self.config.port)
    }

    async fn client(&self) -> Result<ThriftHiveMetastoreClient> {
        if let Some(c) = self.client.lock().map_err(poisoned)?.as_ref() {
            return Ok(c.clone());
        }
        let addr = self.config.address().await?;
        // volo's own timeouts are a little longer than ours: the outer `tokio::time::timeout`
        // in `call` ends a slow call first, with a clear message.
        let timeout = Some(self.config.timeout + Duration::from_secs(1));
        let client = ThriftHiveMetastoreClientBuilder::new("hive-metastore")
            .address(addr)
            .make_codec(volo_thrift::codec::default::DefaultMakeCodec::buffered())
            .connect_timeout(timeout)
            .read_write_timeout(timeout)
            .rpc_timeout(timeout)
            .build();
        *self.client.lock().map_err(poisoned)? = Some(client.clone());
        Ok(client)
    }

    /// Runs one metastore call under the timeout. `what` describes the call for messages
    /// (e.g. "get table `db`.`t`").
    ///
    /// # Errors
    /// `External` when the metastore cannot be reached, does not answer in time, or fails;
    /// `NotFound` / `AlreadyExists` / `Invalid` for the metastore's `NoSuchObjectException`,
    /// `AlreadyExistsException` and `InvalidObjectException`/`InvalidOperationException`.
    pub async fn call<T, E, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        E: Debug,
        F: FnOnce(ThriftHiveMetastoreClient) -> Fut,
        Fut: Future<Output = Result<MaybeException<T, E>, volo_thrift::ClientError>>,
    {
        let client = self.client().await?;
        let outcome = tokio::time::timeout(self.config.timeout, f(client)).await;
        match outcome {
            Err(_) => {
                self.reset();
                Err(Error::external(format!(
                    "Hive Metastore {} did not answer within {:?} ({what}); is it running?",
                    self.uri(),
                    self.config.timeout
                )))
            }
            Ok(Err(e)) => {
                self.reset();
                // volo appends its whole call context after ", rpcinfo:"; keep the cause.
                let text = e.to_string();
                let cause = text.split(", rpcinfo:").next().unwrap_or(&text);
                Err(Error::external(format!(
                    "cannot reach the Hive Metastore at {} ({what}): {cause}",
                    self.uri()
                )))
            }
            Ok(Ok(MaybeException::Ok(v))) => Ok(v),
            Ok(Ok(MaybeException::Exception(e))) => Err(exception_error(what, &e)),
        }
    }

    /// Forgets the connection (after a transport failure the next call reconnects).
    fn reset(&self) {
        if let Ok(mut c) = self.client.lock() {
            *c = None;
        }
    }

    /// Drops every cached entry (after DDL through this catalog).
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = Cache::default();
        }
    }

    pub async fn all_databases(&self) -> Result<Vec<String>> {
        if let Some(v) = fresh(self.cache.lock().map_err(poisoned)?.databases.as_ref()) {
            return Ok(v);
        }
        let mut names: Vec<String> = self
            .call(
                "list databases",
                |c| async move { c.get_all_databases().await },
            )
            .await?
            .into_iter()
            .map(|s| s.to_string())
            .collect();
        names.sort();
        self.cache.lock().map_err(poisoned)?.databases = Some((Instant::now(), names.clone()));
        Ok(names)
    }

    pub async fn database(&self, name: &str) -> Result<Option<Database>> {
        if let Some(v) = fresh(self.cache.lock().map_err(poisoned)?.database.get(name)) {
            return Ok(v);
        }
        let n = name.to_string();
        let db = not_found_as_none(
            self.call(&format!("get database `{name}`"), |c| async move {
                c.get_database(n.into()).await
            })
            .await,
        )?;
        self.cache
            .lock()
            .map_err(poisoned)?
            .database
            .insert(name.to_string(), (Instant::now(), db.clone()));
        Ok(db)
    }

    pub async fn table_names(&self, database: &str) -> Result<Vec<String>> {
        if let Some(v) = fresh(
            self.cache
                .lock()
                .map_err(poisoned)?
                .table_names
                .get(database),
        ) {
            return Ok(v);
        }
        let d = database.to_string();
        let mut names: Vec<String> = self
            .call(&format!("list tables of `{database}`"), |c| async move {
                c.get_all_tables(d.into()).await
            })
            .await?
            .into_iter()
            .map(|s| s.to_string())
            .collect();
        names.sort();
        self.cache
            .lock()
            .map_err(poisoned)?
            .table_names
            .insert(database.to_string(), (Instant::now(), names.clone()));
        Ok(names)
    }

    pub async fn table(&self, database: &str, name: &str) -> Result<Option<Table>> {
        let key = (database.to_string(), name.to_string());
        if let Some(v) = fresh(self.cache.lock().map_err(poisoned)?.tables.get(&key)) {
            return Ok(v);
        }
        let (d, n) = key.clone();
        let table = not_found_as_none(
            self.call(
                &format!("get table `{database}`.`{name}`"),
                |c| async move { c.get_table(d.into(), n.into()).await },
            )
            .await,
        )?;
        self.cache
            .lock()
            .map_err(poisoned)?
            .tables
            .insert(key, (Instant::now(), table.clone()));
        Ok(table)
    }

    /// Several tables in one call (for SHOW TABLES / list_tables).
    pub async fn tables(&self, database: &str, names: Vec<String>) -> Result<Vec<Table>> {
        let d = database.to_string();
        let tables = self
            .call(&format!("get tables of `{database}`"), |c| async move {
                c.get_table_objects_by_name(d.into(), names.into_iter().map(Into::into).collect())
                    .await
            })
            .await?;
        let mut cache = self.cache.lock().map_err(poisoned)?;
        for t in &tables {
            if let Some(name) = &t.table_name {
                cache.tables.insert(
                    (database.to_string(), name.to_string()),
                    (Instant::now(), Some(t.clone())),
                );
            }
        }
        Ok(tables)
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> Error {
    Error::internal("the Hive catalog's lock is poisoned (an earlier call panicked)")
}

/// `NotFound` becomes `None`.
pub fn not_found_as_none<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A metastore exception (one of the generated `O1(..)`/`O2(..)` variants) as a Weir error: the
/// exception's type picks the kind, its `message` field the text.
fn exception_error(what: &str, e: &impl Debug) -> Error {
    let debug = format!("{e:?}");
    let message = exception_message(&debug).unwrap_or_else(|| debug.clone());
    let text = format!("Hive Metastore: {what}: {message}");
    if debug.contains("NoSuchObjectException")
        || debug.contains("UnknownDBException")
        || debug.contains("UnknownTableException")
    {
        Error::not_found(text)
    } else if debug.contains("AlreadyExistsException") {
        Error::already_exists(text)
    } else if debug.contains("InvalidObjectException")
        || debug.contains("InvalidOperationException")
        || debug.contains("InvalidInputException")
    {
        Error::invalid(text)
    } else {
        Error::external(text)
    }
}

/// The `message: Some("...")` part of a generated exception's debug text.
fn exception_message(debug: &str) -> Option<String> {
    let start = debug.find("message: Some(\"")? + "message: Some(\"".len();
    let rest = &debug[start..];
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => break,
            },
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)]
    struct NoSuchObjectException {
        message: Option<String>,
    }
    #[derive(Debug)]
    #[allow(dead_code)]
    enum Exc {
        O1(NoSuchObjectException),
    }

    #[test]
    fn exceptions_map_to_kinds_with_their_message() {
        let e = exception_error(
            "get table `d`.`t`",
            &Exc::O1(NoSuchObjectException {
                message: Some("d.t table \"not\" found".into()),
            }),
        );
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(
            e.message,
            "Hive Metastore: get table `d`.`t`: d.t table \"not\" found"
        );
    }
}
