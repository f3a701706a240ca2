//! [`WeirFlightSql`]: the Flight SQL service. Each RPC finds the client's [`Session`] and runs
//! SQL on it:
//!
//! - `CommandStatementQuery`: `GetFlightInfo` parses, plans and starts the statement and parks
//!   its result under a handle (the ticket); `DoGet` streams the batches as the query produces
//!   them. Statements without rows (DDL, `SET`) run in `GetFlightInfo` and answer one row with
//!   their status message (column `result`).
//! - `CommandStatementUpdate` (`DoPut`): DDL and DML; answers the rows written (0 for DDL).
//! - Metadata commands go through SQL on the session (see [`super::metadata`]).
//!
//! Every failure is answered as a gRPC status (see [`super::status`]); the connection and the
//! session stay usable.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::SqlInfoData;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandStatementQuery, CommandStatementUpdate, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status};

use super::metadata::{self, TABLE, VIEW};
use super::sessions::{ClientKey, PendingResults, Sessions};
use super::status::to_status;
use crate::error::{Error, Result};
use crate::session::{RowsResult, SessionOptions, StatementResult, StatusResult};

/// How long a planned query waits for its `DoGet`.
const RESULT_TTL: Duration = Duration::from_secs(10 * 60);
/// How many planned queries may wait for their `DoGet` at a time.
const MAX_PENDING: usize = 1024;
/// How many client sessions stay open at a time.
const MAX_SESSIONS: usize = 256;

type DoGetStream = Pin<Box<dyn Stream<Item = std::result::Result<FlightData, Status>> + Send>>;

/// The Flight SQL service over Weir sessions, one per client connection.
pub struct WeirFlightSql {
    sessions: Sessions,
    pending: PendingResults,
    sql_info: SqlInfoData,
}

impl WeirFlightSql {
    /// A service whose sessions open with `options` (e.g. the data directory).
    ///
    /// # Errors
    /// `Internal` if the static server information cannot be built.
    pub fn new(options: SessionOptions) -> Result<Self> {
        Ok(Self {
            sessions: Sessions::new(options, MAX_SESSIONS),
            pending: PendingResults::new(RESULT_TTL, MAX_PENDING),
            sql_info: metadata::sql_info()?,
        })
    }

    /// Runs one statement on the client's session.
    async fn execute(&self, client: ClientKey, sql: &str) -> Result<StatementResult> {
        let session = self.sessions.get(client).await?;
        let mut session = session.lock().await;
        metadata::run(&mut session, sql).await
    }

    async fn catalog_names(&self, client: ClientKey, only: Option<&str>) -> Result<Vec<String>> {
        let session = self.sessions.get(client).await?;
        let mut session = session.lock().await;
        let mut names = metadata::catalogs(&mut session).await?;
        if let Some(only) = only {
            names.retain(|n| n == only);
        }
        Ok(names)
    }

    /// `(catalog, database)` pairs matching the filters.
    async fn database_names(
        &self,
        client: ClientKey,
        catalog: Option<&str>,
        pattern: Option<&str>,
    ) -> Result<Vec<(String, String)>> {
        let catalogs = self.catalog_names(client, catalog).await?;
        let session = self.sessions.get(client).await?;
        let mut session = session.lock().await;
        let mut out = Vec::new();
        for catalog in catalogs {
            for db in metadata::databases(&mut session, &catalog).await? {
                if pattern.is_none_or(|p| metadata::like_matches(p, &db)) {
                    out.push((catalog.clone(), db));
                }
            }
        }
        Ok(out)
    }

    async fn tables_batch(
        &self,
        client: ClientKey,
        query: CommandGetTables,
    ) -> Result<RecordBatch> {
        let databases = self
            .database_names(
                client,
                query.catalog.as_deref(),
                query.db_schema_filter_pattern.as_deref(),
            )
            .await?;
        let table_pattern = query.table_name_filter_pattern.clone();
        let types = query.table_types.clone();
        let include_schema = query.include_schema;
        let mut builder = query.into_builder();
        let session = self.sessions.get(client).await?;
        let mut session = session.lock().await;
        let empty = Schema::empty();
        for (catalog, db) in databases {
            for (table, kind) in metadata::tables(&mut session, &catalog, &db).await? {
                if !table_pattern
                    .as_deref()
                    .is_none_or(|p| metadata::like_matches(p, &table))
                    || !(types.is_empty() || types.iter().any(|t| t == kind))
                {
                    continue;
                }
                let schema = if include_schema {
                    match metadata::table_schema(&mut session, &catalog, &db, &table).await {
                        Ok(schema) => schema,
                        Err(e) => {
                            // One unreadable table must not hide the others.
                            tracing::warn!(%catalog, %db, %table, error = %e, "cannot plan table for GetTables");
                            Arc::new(empty.clone())
                        }
                    }
                } else {
                    Arc::new(empty.clone())
                };
                builder
                    .append(&catalog, &db, &table, kind, &schema)
                    .map_err(from_flight)?;
            }
        }
        builder.build().map_err(from_flight)
    }
}

/// An error of arrow-flight's metadata builders as ours.
fn from_flight(err: FlightError) -> Error {
    match err {
        FlightError::Arrow(e) => Error::from(e),
        FlightError::Tonic(status) => Error::external(status.message().to_string()),
        other => Error::internal(format!(
            "cannot build a Flight SQL metadata result: {other}"
        )),
    }
}

/// A ticket for a metadata command: the command itself.
fn metadata_info(
    command: impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> std::result::Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| to_status(&Error::from(e)))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// Streams record batches as Flight data, mapping errors met while reading to gRPC statuses.
fn flight_stream(rows: RowsResult) -> DoGetStream {
    let batches = rows
        .stream
        .map_err(|e| FlightError::Tonic(Box::new(to_status(&Error::from(e)))));
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(rows.schema)
        .build(batches)
        .map_err(Status::from);
    Box::pin(encoded)
}

/// One ready batch as a Flight stream.
fn batch_stream(batch: RecordBatch) -> DoGetStream {
    let schema = batch.schema();
    flight_stream(RowsResult {
        schema: Arc::clone(&schema),
        stream: Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(async { Ok(batch) }),
        )),
        progress: None,
        changelog: false,
    })
}

/// The one-row result of a statement without rows, when it was sent as a query.
fn status_rows(status: &StatusResult) -> Result<RowsResult> {
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new(
        "result",
        DataType::Utf8,
        false,
    )]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(StringArray::from(vec![status.message.clone()]))],
    )?;
    Ok(RowsResult {
        schema: Arc::clone(&schema),
        stream: Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(async { Ok(batch) }),
        )),
        progress: None,
        changelog: false,
    })
}

fn no_transactions(transaction_id: Option<&[u8]>) -> Result<()> {
    match transaction_id {
        Some(_) => Err(Error::not_supported("transactions are not supported yet")),
        None => Ok(()),
    }
}

#[tonic::async_trait]
impl FlightSqlService for WeirFlightSql {
    type FlightService = WeirFlightSql;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        no_transactions(query.transaction_id.as_deref())?;
        let client = request.remote_addr();
        let rows = match self.execute(client, &query.query).await? {
            StatementResult::Rows(rows) => rows,
            StatementResult::Status(status) => status_rows(&status)?,
        };
        let schema = Arc::clone(&rows.schema);
        let handle = self.pending.insert(rows)?;
        let ticket = TicketStatementQuery {
            statement_handle: handle.into_bytes().into(),
        };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| to_status(&Error::from(e)))?
            .with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())),
            )
            .with_descriptor(request.into_inner())
            .with_ordered(true);
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let handle = std::str::from_utf8(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("the statement handle is not valid UTF-8"))?;
        let rows = self.pending.take(handle)?;
        Ok(Response::new(flight_stream(rows)))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> std::result::Result<i64, Status> {
        no_transactions(command.transaction_id.as_deref())?;
        let client = request.remote_addr();
        match self.execute(client, &command.query).await? {
            StatementResult::Status(status) => Ok(status
                .rows_affected
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
                .unwrap_or(0)),
            // Dropping the rows unread cancels the query.
            StatementResult::Rows(_) => Err(to_status(&Error::invalid(
                "the statement returns rows; run it as a query (CommandStatementQuery)",
            ))),
        }
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let names = self.catalog_names(request.remote_addr(), None).await?;
        let mut builder = query.into_builder();
        for name in names {
            builder.append(name);
        }
        let batch = builder.build().map_err(from_flight)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let databases = self
            .database_names(
                request.remote_addr(),
                query.catalog.as_deref(),
                query.db_schema_filter_pattern.as_deref(),
            )
            .await?;
        let mut builder = query.into_builder();
        for (catalog, db) in databases {
            builder.append(catalog, db);
        }
        let batch = builder.build().map_err(from_flight)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = self.tables_batch(request.remote_addr(), query).await?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(TABLE);
        builder.append(VIEW);
        let batch = builder.build().map_err(from_flight)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(from_flight)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
