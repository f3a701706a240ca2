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
//! Layer rule: this module uses only `session` and `error`. This first slice serves bounded
//! (batch) queries, DDL and DML, and catalog metadata; there is no authentication yet, so the
//! binary binds to loopback unless told otherwise. Prepared statements, transactions, bulk
//! ingestion and cancellation actions are not supported yet.

pub mod metadata;
pub mod service;
pub mod sessions;
pub mod status;

use std::future::Future;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

pub use service::WeirFlightSql;

use crate::error::{Error, Result};
use crate::session::SessionOptions;

/// The gRPC service to mount: Flight SQL over Weir sessions opened with `options`.
///
/// # Errors
/// `Internal` if the service cannot be built.
pub fn flight_service(options: SessionOptions) -> Result<FlightServiceServer<WeirFlightSql>> {
    Ok(FlightServiceServer::new(WeirFlightSql::new(options)?))
}

/// Serves Flight SQL on an already bound listener until `shutdown` completes.
///
/// # Errors
/// `External` when the gRPC server fails (e.g. the listener breaks).
pub async fn serve_on(
    listener: TcpListener,
    options: SessionOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let local = listener.local_addr().ok();
    let service = flight_service(options)?;
    tracing::info!(?local, "Weir Flight SQL server listening");
    tonic::transport::Server::builder()
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
