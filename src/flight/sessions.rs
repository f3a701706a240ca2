//! Per-client state of the Flight SQL server: one [`Session`] per client connection (keyed by the
//! peer's address, since this slice has no authentication or session tokens), each behind a
//! `tokio::sync::Mutex` because a `Session` is not `Sync`; and the results of queries that were
//! planned in `GetFlightInfo` and wait for the client's `DoGet`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::session::{RowsResult, Session, SessionOptions};

/// Who a request comes from: the peer address of its connection (`None` when the transport does
/// not say; those requests share one session).
pub type ClientKey = Option<SocketAddr>;

/// The sessions of the connected clients, opened on first use.
pub struct Sessions {
    options: SessionOptions,
    max_sessions: usize,
    inner: std::sync::Mutex<HashMap<ClientKey, SessionEntry>>,
}

struct SessionEntry {
    session: Arc<Mutex<Session>>,
    last_used: Instant,
}

impl Sessions {
    /// Sessions opened with `options`; beyond `max_sessions` the least recently used is closed.
    pub fn new(options: SessionOptions, max_sessions: usize) -> Self {
        Self {
            options,
            max_sessions: max_sessions.max(1),
            inner: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The session of `client`, opening it if this is the client's first request.
    ///
    /// # Errors
    /// `External` when a new session cannot open its data directory.
    pub async fn get(&self, client: ClientKey) -> Result<Arc<Mutex<Session>>> {
        if let Some(entry) = self.lock()?.get_mut(&client) {
            entry.last_used = Instant::now();
            return Ok(Arc::clone(&entry.session));
        }
        // Opening may do I/O: not under the map's lock.
        let session = Arc::new(Mutex::new(Session::open(self.options.clone()).await?));
        let mut map = self.lock()?;
        if let Some(entry) = map.get_mut(&client) {
            // Another request of the same client won the race.
            entry.last_used = Instant::now();
            return Ok(Arc::clone(&entry.session));
        }
        while map.len() >= self.max_sessions {
            let oldest = map.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| *k);
            match oldest {
                Some(key) => {
                    tracing::debug!(?key, "closing the least recently used Flight SQL session");
                    map.remove(&key);
                }
                None => break,
            }
        }
        map.insert(
            client,
            SessionEntry {
                session: Arc::clone(&session),
                last_used: Instant::now(),
            },
        );
        tracing::debug!(?client, "opened a Flight SQL session");
        Ok(session)
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<ClientKey, SessionEntry>>> {
        self.inner
            .lock()
            .map_err(|_| Error::internal("Flight SQL session map poisoned by an earlier panic"))
    }
}

/// Query results between `GetFlightInfo` (which plans and starts them) and `DoGet` (which streams
/// them), by handle. Results nobody fetches expire.
pub struct PendingResults {
    ttl: Duration,
    max_pending: usize,
    inner: std::sync::Mutex<HashMap<String, Pending>>,
}

struct Pending {
    rows: RowsResult,
    created: Instant,
}

impl PendingResults {
    /// Results expire `ttl` after they were planned; at most `max_pending` wait at a time (the
    /// oldest is dropped, which cancels its query).
    pub fn new(ttl: Duration, max_pending: usize) -> Self {
        Self {
            ttl,
            max_pending: max_pending.max(1),
            inner: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Parks a result and returns its handle (a random UUID).
    pub fn insert(&self, rows: RowsResult) -> Result<String> {
        let handle = uuid::Uuid::new_v4().to_string();
        let mut map = self.lock()?;
        let now = Instant::now();
        map.retain(|_, p| now.duration_since(p.created) < self.ttl);
        while map.len() >= self.max_pending {
            let oldest = map
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(key) => {
                    map.remove(&key);
                }
                None => break,
            }
        }
        map.insert(handle.clone(), Pending { rows, created: now });
        Ok(handle)
    }

    /// Takes the result of `handle` out (a result is streamed once).
    ///
    /// # Errors
    /// `NotFound` when the handle is unknown, was already fetched, or expired.
    pub fn take(&self, handle: &str) -> Result<RowsResult> {
        let mut map = self.lock()?;
        match map.remove(handle) {
            Some(p) if p.created.elapsed() < self.ttl => Ok(p.rows),
            _ => Err(Error::not_found(format!(
                "statement handle {handle} is unknown, was already fetched, or expired; run the query again"
            ))),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Pending>>> {
        self.inner
            .lock()
            .map_err(|_| Error::internal("Flight SQL result map poisoned by an earlier panic"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::session::StatementResult;

    async fn rows(session: &mut Session) -> RowsResult {
        let mut results = session.execute_sql("SELECT 1 AS x").await.unwrap();
        match results.pop() {
            Some(StatementResult::Rows(r)) => r,
            _ => panic!("expected rows"),
        }
    }

    #[tokio::test]
    async fn one_session_per_client() {
        let sessions = Sessions::new(SessionOptions::default(), 8);
        let a: ClientKey = Some("127.0.0.1:1000".parse().unwrap());
        let b: ClientKey = Some("127.0.0.1:1001".parse().unwrap());
        let a1 = sessions.get(a).await.unwrap();
        let a2 = sessions.get(a).await.unwrap();
        let b1 = sessions.get(b).await.unwrap();
        assert!(Arc::ptr_eq(&a1, &a2));
        assert!(!Arc::ptr_eq(&a1, &b1));
        assert_eq!(sessions.len(), 2);
    }

    #[tokio::test]
    async fn least_recently_used_session_is_closed() {
        let sessions = Sessions::new(SessionOptions::default(), 2);
        let keys: Vec<ClientKey> = (0..3)
            .map(|i| Some(format!("127.0.0.1:{}", 2000 + i).parse().unwrap()))
            .collect();
        let first = sessions.get(keys[0]).await.unwrap();
        sessions.get(keys[1]).await.unwrap();
        sessions.get(keys[2]).await.unwrap();
        assert_eq!(sessions.len(), 2);
        // The first client gets a fresh session.
        let again = sessions.get(keys[0]).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
    }

    #[tokio::test]
    async fn pending_result_is_taken_once() {
        let mut session = Session::open(SessionOptions::default()).await.unwrap();
        let pending = PendingResults::new(Duration::from_secs(60), 4);
        let handle = pending.insert(rows(&mut session).await).unwrap();
        let taken = pending.take(&handle).unwrap();
        assert_eq!(taken.schema.field(0).name(), "x");
        let again = pending.take(&handle).err().map(|e| e.code);
        assert_eq!(again, Some(ErrorCode::NotFound));
    }

    #[tokio::test]
    async fn pending_results_expire_and_are_bounded() {
        let mut session = Session::open(SessionOptions::default()).await.unwrap();
        let expired = PendingResults::new(Duration::ZERO, 4);
        let handle = expired.insert(rows(&mut session).await).unwrap();
        assert!(expired.take(&handle).is_err());

        let bounded = PendingResults::new(Duration::from_secs(60), 1);
        let first = bounded.insert(rows(&mut session).await).unwrap();
        let second = bounded.insert(rows(&mut session).await).unwrap();
        assert!(bounded.take(&first).is_err());
        assert!(bounded.take(&second).is_ok());
    }
}
