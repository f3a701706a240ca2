//! `weir serve`: the Arrow Flight SQL front door. Clients (JDBC/ADBC drivers, pyarrow, the Rust
//! `FlightSqlServiceClient`) send SQL over gRPC; each client connection gets its own
//! [`crate::Session`] (the same engine as the shell) and results stream back as Arrow record
//! batches while the query runs.
//!
//! ```text
//! gRPC (tonic) ─ service::WeirFlightSql (FlightSqlService) ─ sessions (one Session per client)
//!   └─ Session::execute ─ RecordBatch stream ─ Flight data frames
//! ```
//!
//! Layer rule: this module uses only `session` and `error`. It serves bounded and streaming
//! queries, DDL and DML, prepared statements, cancellation and catalog metadata, with optional
//! authentication (a users file, bearer tokens) and TLS. Transactions, Substrait plans and bulk
//! ingestion are not supported yet. See `docs/flight-sql.md`.

pub mod auth;
pub mod metadata;
pub mod prepared;
pub mod service;
pub mod sessions;
pub mod status;
pub mod streams;

use std::future::Future;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

pub use auth::{Users, hash_password};
pub use service::WeirFlightSql;

use crate::error::{Error, Result};
use crate::session::SessionOptions;

/// How `weir serve` runs: what sessions open with, who may connect, TLS, and the limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Options of every client's session (e.g. the shared data directory).
    pub session: SessionOptions,
    /// Who may connect; empty: no authentication.
    pub users: Users,
    /// PEM certificate chain and private key: serve TLS.
    pub tls: Option<TlsConfig>,
    /// Queries running (or waiting for their `DoGet`) at a time; more are refused.
    pub max_queries: usize,
    /// Memory each batch query may use (DataFusion memory pool); `None`: unlimited.
    pub memory_limit: Option<usize>,
    /// A session unused this long is closed (its token stops working).
    pub idle_timeout: Duration,
    /// Sessions open at a time; beyond it the least recently used is closed.
    pub max_sessions: usize,
    /// The server's streaming jobs, shared by every session: a job runs until it ends or is
    /// stopped, whichever client started it and whether or not that client is still connected.
    pub jobs: crate::session::Jobs,
}

/// A server certificate and key, PEM-encoded.
#[derive(Clone)]
pub struct TlsConfig {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret.
        f.write_str("TlsConfig { .. }")
    }
}

impl ServerConfig {
    /// A configuration without users or TLS, with default limits.
    pub fn new(session: SessionOptions) -> Self {
        Self {
            session,
            users: Users::none(),
            tls: None,
            max_queries: 64,
            memory_limit: None,
            idle_timeout: Duration::from_secs(30 * 60),
            max_sessions: 256,
            jobs: crate::session::Jobs::default(),
        }
    }
}

/// The gRPC service to mount: Flight SQL over Weir sessions configured by `config`.
///
/// # Errors
/// `Internal` if the service cannot be built.
pub fn flight_service(config: &ServerConfig) -> Result<FlightServiceServer<WeirFlightSql>> {
    Ok(FlightServiceServer::new(WeirFlightSql::new(config)?))
}

/// Serves Flight SQL on an already bound listener until `shutdown` completes.
///
/// # Errors
/// `Invalid` for an unusable TLS certificate or key; `External` when the gRPC server fails
/// (e.g. the listener breaks).
pub async fn serve_on(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let local = listener.local_addr().ok();
    let service = flight_service(&config)?;
    // Jobs that were running when the server last died resume in a session of their own, which
    // lives as long as the server.
    let _resumed = match config.session.data_dir {
        Some(_) => {
            let mut session = crate::session::Session::open(config.session.clone()).await?;
            session.share_jobs(config.jobs.clone());
            let ids = session.resume_jobs().await;
            if !ids.is_empty() {
                tracing::info!(jobs = ?ids, "resumed streaming jobs from their checkpoints");
            }
            Some(session)
        }
        None => None,
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| Error::invalid(format!("cannot use the TLS certificate and key: {e}")))?;
    }
    tracing::info!(
        ?local,
        tls = config.tls.is_some(),
        "Weir Flight SQL server listening"
    );
    builder
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| Error::external(format!("Flight SQL server failed: {e}")))
}

/// Binds `host:port` (port 0: any free port).
///
/// # Errors
/// `External` when the address cannot be resolved or bound.
pub async fn bind(host: &str, port: u16) -> Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| Error::io(format!("cannot listen on {host}:{port}"), e))
}

/// Whether `host` names only the loopback interface (so unauthenticated serving is local).
pub fn is_loopback(host: &str) -> bool {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("::1"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("0.0.0.0"));
        assert!(!is_loopback("10.1.2.3"));
    }

    #[tokio::test]
    async fn bind_reports_errors() {
        let listener = bind("127.0.0.1", 0).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // The port is taken now.
        let err = bind("127.0.0.1", port).await.err().map(|e| e.kind);
        assert_eq!(err, Some(crate::ErrorKind::External));
    }
}
