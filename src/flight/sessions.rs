//! Per-client state of the Flight SQL server.
//!
//! - [`Sessions`]: one [`Session`] per client, keyed by its bearer token (handed out by the
//!   handshake) or, for clients that never authenticate on a server without users, by the
//!   peer address of their connection. Each session sits behind a `tokio::sync::Mutex` (a
//!   `Session` is not `Sync`); sessions idle longer than the idle timeout are closed and their
//!   tokens stop working.
//! - [`Queries`]: queries between `GetFlightInfo` (which plans and starts them) and the end of
//!   their `DoGet` stream, by handle, each with a cancellation token (for `CancelFlightInfo`)
//!   and a permit of the concurrent-query limit. A result nobody fetches expires.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::session::{RowsResult, Session, SessionOptions};

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A bearer token from the handshake.
    Token(String),
    /// The peer address of an unauthenticated connection (`None` when the transport does not
    /// say; those requests share one session).
    Peer(Option<SocketAddr>),
}

/// The sessions of the connected clients.
pub struct Sessions {
    options: SessionOptions,
    /// The registry every session's streaming jobs go to (`None`: each session has its own).
    jobs: Option<crate::session::Jobs>,
    memory_limit: Option<usize>,
    max_sessions: usize,
    idle_timeout: Duration,
    inner: std::sync::Mutex<HashMap<ClientKey, SessionEntry>>,
}

struct SessionEntry {
    session: Arc<Mutex<Session>>,
    last_used: Instant,
}

impl Sessions {
    /// Sessions opened with `options` (each query limited to `memory_limit` bytes, if set);
    /// beyond `max_sessions` the least recently used is closed, and sessions idle for
    /// `idle_timeout` are closed.
    pub fn new(
        options: SessionOptions,
        memory_limit: Option<usize>,
        max_sessions: usize,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            options,
            jobs: None,
            memory_limit,
            max_sessions: max_sessions.max(1),
            idle_timeout,
            inner: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Every session opened from now on registers its jobs in `jobs`.
    pub fn sharing_jobs(mut self, jobs: crate::session::Jobs) -> Self {
        self.jobs = Some(jobs);
        self
    }

    async fn open_session(&self) -> Result<Arc<Mutex<Session>>> {
        let mut session = Session::open(self.options.clone()).await?;
        if let Some(jobs) = &self.jobs {
            session.share_jobs(jobs.clone());
        }
        session.set_memory_limit(self.memory_limit)?;
        Ok(Arc::new(Mutex::new(session)))
    }

    /// Opens a session for a new token (after a successful handshake) and returns the token.
    ///
    /// # Errors
    /// `External` when the session cannot open its data directory.
    pub async fn open_token(&self) -> Result<String> {
        let session = self.open_session().await?;
        let token = super::auth::new_token();
        let mut map = self.lock()?;
        self.make_room(&mut map);
        map.insert(
            ClientKey::Token(token.clone()),
            SessionEntry {
                session,
                last_used: Instant::now(),
            },
        );
        Ok(token)
    }

    /// Whether `token` names an open session (and marks it used).
    pub fn has_token(&self, token: &str) -> bool {
        let Ok(mut map) = self.lock() else {
            return false;
        };
        self.expire(&mut map);
        match map.get_mut(&ClientKey::Token(token.to_string())) {
            Some(entry) => {
                entry.last_used = Instant::now();
                true
            }
            None => false,
        }
    }

    /// The session of `client`. Peer sessions open on first use; token sessions exist only
    /// after their handshake.
    ///
    /// # Errors
    /// `NotFound` for an unknown or expired token; `External` when a new session cannot open
    /// its data directory.
    pub async fn get(&self, client: &ClientKey) -> Result<Arc<Mutex<Session>>> {
        {
            let mut map = self.lock()?;
            self.expire(&mut map);
            if let Some(entry) = map.get_mut(client) {
                entry.last_used = Instant::now();
                return Ok(Arc::clone(&entry.session));
            }
        }
        if let ClientKey::Token(_) = client {
            return Err(Error::not_found(
                "the session token is unknown or expired; authenticate again",
            ));
        }
        // Opening may do I/O: not under the map's lock.
        let session = self.open_session().await?;
        let mut map = self.lock()?;
        if let Some(entry) = map.get_mut(client) {
            // Another request of the same client won the race.
            entry.last_used = Instant::now();
            return Ok(Arc::clone(&entry.session));
        }
        self.make_room(&mut map);
        map.insert(
            client.clone(),
            SessionEntry {
                session: Arc::clone(&session),
                last_used: Instant::now(),
            },
        );
        tracing::debug!(?client, "opened a Flight SQL session");
        Ok(session)
    }

    /// Whether `client` has an open session (without marking it used).
    pub fn contains(&self, client: &ClientKey) -> bool {
        self.lock().is_ok_and(|m| m.contains_key(client))
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expire(&self, map: &mut HashMap<ClientKey, SessionEntry>) {
        let now = Instant::now();
        map.retain(|key, e| {
            let keep = now.duration_since(e.last_used) < self.idle_timeout;
            if !keep {
                tracing::debug!(?key, "closing an idle Flight SQL session");
            }
            keep
        });
    }

    fn make_room(&self, map: &mut HashMap<ClientKey, SessionEntry>) {
        self.expire(map);
        while map.len() >= self.max_sessions {
            let oldest = map
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(key) => {
                    tracing::debug!(?key, "closing the least recently used Flight SQL session");
                    map.remove(&key);
                }
                None => break,
            }
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<ClientKey, SessionEntry>>> {
        self.inner
            .lock()
            .map_err(|_| Error::internal("Flight SQL session map poisoned by an earlier panic"))
    }
}

/// Queries from `GetFlightInfo` to the end of their stream, by handle.
pub struct Queries {
    ttl: Duration,
    permits: Arc<Semaphore>,
    max_queries: usize,
    inner: Arc<std::sync::Mutex<HashMap<String, QueryEntry>>>,
}

struct QueryEntry {
    /// `Some` until `DoGet` takes the rows.
    pending: Option<Pending>,
    cancel: CancellationToken,
}

struct Pending {
    rows: RowsResult,
    permit: OwnedSemaphorePermit,
    created: Instant,
}

/// A query's rows with what must live as long as its stream: the cancellation token, the
/// concurrency permit, and a guard that forgets the handle when the stream is dropped.
pub struct TakenQuery {
    pub rows: RowsResult,
    pub cancel: CancellationToken,
    pub guard: QueryGuard,
}

/// Holds a query's permit; forgets its handle when dropped (the stream ended or the client
/// went away).
pub struct QueryGuard {
    handle: String,
    inner: Arc<std::sync::Mutex<HashMap<String, QueryEntry>>>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(&self.handle);
        }
    }
}

impl Queries {
    /// At most `max_queries` queries run (or wait for their `DoGet`) at a time; a result not
    /// fetched within `ttl` is dropped, which cancels its query.
    pub fn new(ttl: Duration, max_queries: usize) -> Self {
        let max_queries = max_queries.max(1);
        Self {
            ttl,
            permits: Arc::new(Semaphore::new(max_queries)),
            max_queries,
            inner: Arc::new(std::sync::Mutex::new(HashMap::new())),
        }
    }

    /// A slot for one more query.
    ///
    /// # Errors
    /// `Invalid` when `max_queries` queries are already running (the client may retry).
    pub fn permit(&self) -> Result<OwnedSemaphorePermit> {
        if let Ok(mut map) = self.lock() {
            self.expire(&mut map);
        }
        Arc::clone(&self.permits).try_acquire_owned().map_err(|_| {
            Error::invalid(format!(
                "the server already runs its maximum of {} concurrent queries; retry later or read/cancel running results",
                self.max_queries
            ))
        })
    }

    /// Parks a started query and returns its handle (a random UUID).
    pub fn insert(&self, rows: RowsResult, permit: OwnedSemaphorePermit) -> Result<String> {
        let handle = uuid::Uuid::new_v4().to_string();
        let mut map = self.lock()?;
        map.insert(
            handle.clone(),
            QueryEntry {
                pending: Some(Pending {
                    rows,
                    permit,
                    created: Instant::now(),
                }),
                cancel: CancellationToken::new(),
            },
        );
        Ok(handle)
    }

    /// Takes the rows of `handle` out to stream them (a result is streamed once).
    ///
    /// # Errors
    /// `NotFound` when the handle is unknown, was already fetched, expired or was cancelled.
    pub fn take(&self, handle: &str) -> Result<TakenQuery> {
        let mut map = self.lock()?;
        self.expire(&mut map);
        let entry = map.get_mut(handle).and_then(|e| {
            let pending = e.pending.take()?;
            Some((pending, e.cancel.clone()))
        });
        match entry {
            Some((pending, cancel)) => Ok(TakenQuery {
                rows: pending.rows,
                cancel,
                guard: QueryGuard {
                    handle: handle.to_string(),
                    inner: Arc::clone(&self.inner),
                    _permit: pending.permit,
                },
            }),
            None => Err(Error::not_found(format!(
                "statement handle {handle} is unknown, was already fetched, expired or was cancelled; run the query again"
            ))),
        }
    }

    /// Cancels a query: a waiting one is dropped, a streaming one ends with `CANCELLED`.
    /// Returns whether the handle was known.
    pub fn cancel(&self, handle: &str) -> bool {
        let Ok(mut map) = self.lock() else {
            return false;
        };
        match map.get_mut(handle) {
            Some(entry) => {
                entry.cancel.cancel();
                if entry.pending.is_some() {
                    map.remove(handle);
                }
                true
            }
            None => false,
        }
    }

    /// How many queries are waiting or streaming.
    pub fn len(&self) -> usize {
        self.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no query is waiting or streaming.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expire(&self, map: &mut HashMap<String, QueryEntry>) {
        let now = Instant::now();
        map.retain(|_, e| match &e.pending {
            Some(p) => now.duration_since(p.created) < self.ttl,
            None => true,
        });
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, QueryEntry>>> {
        self.inner
            .lock()
            .map_err(|_| Error::internal("Flight SQL query map poisoned by an earlier panic"))
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

    fn sessions(max: usize, idle: Duration) -> Sessions {
        Sessions::new(SessionOptions::default(), None, max, idle)
    }

    fn peer(port: u16) -> ClientKey {
        ClientKey::Peer(Some(format!("127.0.0.1:{port}").parse().unwrap()))
    }

    #[tokio::test]
    async fn one_session_per_client() {
        let sessions = sessions(8, Duration::from_secs(60));
        let a1 = sessions.get(&peer(1000)).await.unwrap();
        let a2 = sessions.get(&peer(1000)).await.unwrap();
        let b1 = sessions.get(&peer(1001)).await.unwrap();
        assert!(Arc::ptr_eq(&a1, &a2));
        assert!(!Arc::ptr_eq(&a1, &b1));
        assert_eq!(sessions.len(), 2);
    }

    #[tokio::test]
    async fn tokens_open_sessions_and_unknown_tokens_fail() {
        let sessions = sessions(8, Duration::from_secs(60));
        let token = sessions.open_token().await.unwrap();
        assert!(sessions.has_token(&token));
        let key = ClientKey::Token(token);
        let s1 = sessions.get(&key).await.unwrap();
        let s2 = sessions.get(&key).await.unwrap();
        assert!(Arc::ptr_eq(&s1, &s2));
        let unknown = ClientKey::Token("nope".into());
        assert!(!sessions.has_token("nope"));
        let err = sessions.get(&unknown).await.err().map(|e| e.code);
        assert_eq!(err, Some(ErrorCode::NotFound));
    }

    #[tokio::test]
    async fn sessions_get_the_memory_limit_and_keep_it_after_set() {
        use datafusion::execution::memory_pool::MemoryLimit;
        let sessions = Sessions::new(
            SessionOptions::default(),
            Some(64 << 20),
            8,
            Duration::from_secs(60),
        );
        let session = sessions.get(&peer(7)).await.unwrap();
        let mut session = session.lock().await;
        let before = match session.state().runtime_env().memory_pool.memory_limit() {
            MemoryLimit::Finite(n) => Some(n),
            _ => None,
        };
        assert_eq!(before, Some(64 << 20));
        session
            .execute_sql("SET 'parallelism.default' = '2'")
            .await
            .unwrap();
        let after = match session.state().runtime_env().memory_pool.memory_limit() {
            MemoryLimit::Finite(n) => Some(n),
            _ => None,
        };
        assert_eq!(after, Some(64 << 20));
        // Queries still run under the limit.
        let rows = session.execute_sql("SELECT 1").await.unwrap();
        assert_eq!(rows.len(), 1);
    }

    #[tokio::test]
    async fn idle_sessions_expire() {
        let sessions = sessions(8, Duration::from_millis(50));
        let token = sessions.open_token().await.unwrap();
        sessions.get(&peer(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(!sessions.has_token(&token));
        assert_eq!(sessions.len(), 0);
    }

    #[tokio::test]
    async fn least_recently_used_session_is_closed() {
        let sessions = sessions(2, Duration::from_secs(60));
        let first = sessions.get(&peer(2000)).await.unwrap();
        sessions.get(&peer(2001)).await.unwrap();
        sessions.get(&peer(2002)).await.unwrap();
        assert_eq!(sessions.len(), 2);
        let again = sessions.get(&peer(2000)).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
    }

    #[tokio::test]
    async fn query_is_taken_once_and_frees_its_permit() {
        let mut session = Session::open(SessionOptions::default()).await.unwrap();
        let queries = Queries::new(Duration::from_secs(60), 1);
        let permit = queries.permit().unwrap();
        let handle = queries.insert(rows(&mut session).await, permit).unwrap();
        // The only slot is taken.
        assert!(queries.permit().is_err());
        let taken = queries.take(&handle).unwrap();
        assert_eq!(taken.rows.schema.field(0).name(), "x");
        let again = queries.take(&handle).err().map(|e| e.code);
        assert_eq!(again, Some(ErrorCode::NotFound));
        assert_eq!(queries.len(), 1);
        drop(taken);
        assert_eq!(queries.len(), 0);
        assert!(queries.permit().is_ok());
    }

    #[tokio::test]
    async fn cancel_pending_and_running_queries() {
        let mut session = Session::open(SessionOptions::default()).await.unwrap();
        let queries = Queries::new(Duration::from_secs(60), 4);
        let pending = queries
            .insert(rows(&mut session).await, queries.permit().unwrap())
            .unwrap();
        assert!(queries.cancel(&pending));
        assert!(queries.take(&pending).is_err());

        let running = queries
            .insert(rows(&mut session).await, queries.permit().unwrap())
            .unwrap();
        let taken = queries.take(&running).unwrap();
        assert!(!taken.cancel.is_cancelled());
        assert!(queries.cancel(&running));
        assert!(taken.cancel.is_cancelled());
        assert!(!queries.cancel("unknown"));
    }

    #[tokio::test]
    async fn unfetched_results_expire() {
        let mut session = Session::open(SessionOptions::default()).await.unwrap();
        let queries = Queries::new(Duration::ZERO, 1);
        let handle = queries
            .insert(rows(&mut session).await, queries.permit().unwrap())
            .unwrap();
        // Expiry drops the result and frees its slot.
        assert!(queries.permit().is_ok());
        assert!(queries.take(&handle).is_err());
    }
}
