//! [`WeirFlightSql`]: the Flight SQL service. Each RPC authenticates its caller (see
//! [`WeirFlightSql::client`]), finds the client's [`Session`] and runs SQL on it:
//!
//! - `Handshake`: checks `Basic` credentials against the users file and answers a bearer token
//!   (response header `authorization: Bearer <token>` and the handshake payload).
//! - `CommandStatementQuery`: `GetFlightInfo` parses, plans and starts the statement and parks
//!   its result under a handle (the ticket); `DoGet` streams the batches as the query produces
//!   them. Statements without rows (DDL, `SET`) run in `GetFlightInfo` and answer one row with
//!   their status message (column `result`).
//! - `CommandStatementUpdate` (`DoPut`): DDL and DML; answers the rows written (0 for DDL).
//! - Prepared statements (see [`super::prepared`]): create, bind parameters (`DoPut`), execute
//!   as a query or an update, close.
//! - `CancelFlightInfo` (and the older `CancelQuery`): cancels a waiting or streaming query.
//! - Metadata commands go through SQL on the session (see [`super::metadata`]).
//!
//! Every failure is answered as a gRPC status (see [`super::status`]); the connection and the
//! session stay usable.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::SqlInfoData;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetSqlInfo,
    CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, BasicAuth, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus,
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::ServerConfig;
use super::auth::{Credentials, Users, parse_authorization};
use super::metadata::{self, TABLE, VIEW};
use super::prepared::{self, Prepared, PreparedStatements};
use super::sessions::{ClientKey, Queries, Sessions};
use super::status::to_status;
use super::streams::{
    affected, batch_stream, from_flight, metadata_info, query_stream, status_rows,
};
use crate::error::{Error, Result};
use crate::session::StatementResult;

/// How long a planned query waits for its `DoGet`.
const RESULT_TTL: Duration = Duration::from_secs(10 * 60);
/// The custom action answering the server's counters as JSON (running queries, sessions).
pub const STATS_ACTION: &str = "weir.stats";

type GrpcResult<T> = std::result::Result<T, Status>;
type HandshakeStream = Pin<Box<dyn Stream<Item = GrpcResult<HandshakeResponse>> + Send>>;

/// The Flight SQL service over Weir sessions, one per client.
pub struct WeirFlightSql {
    users: Users,
    sessions: Sessions,
    queries: Queries,
    prepared: PreparedStatements,
    sql_info: SqlInfoData,
}

impl WeirFlightSql {
    /// A service configured by `config` (sessions, users, limits).
    ///
    /// # Errors
    /// `Internal` if the static server information cannot be built.
    pub fn new(config: &ServerConfig) -> Result<Self> {
        Ok(Self {
            users: config.users.clone(),
            sessions: Sessions::new(
                config.session.clone(),
                config.memory_limit,
                config.max_sessions,
                config.idle_timeout,
            )
            .sharing_jobs(config.jobs.clone()),
            queries: Queries::new(RESULT_TTL, config.max_queries),
            prepared: PreparedStatements::default(),
            sql_info: metadata::sql_info()?,
        })
    }

    /// Who sent `request`: the session of its bearer token; without a token (only when no
    /// users are configured) the session of its connection.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` for missing, malformed, unknown or expired credentials.
    fn client<T>(&self, request: &Request<T>) -> GrpcResult<ClientKey> {
        let header = request.metadata().get("authorization");
        match header {
            Some(value) => {
                let value = value.to_str().map_err(|_| {
                    Status::unauthenticated("the authorization header is not ASCII")
                })?;
                match parse_authorization(value) {
                    Ok(Credentials::Bearer(token)) => {
                        if self.sessions.has_token(&token) {
                            Ok(ClientKey::Token(token))
                        } else {
                            Err(Status::unauthenticated(
                                "the session token is unknown or expired; authenticate again (Handshake)",
                            ))
                        }
                    }
                    Ok(Credentials::Basic { .. }) => Err(Status::unauthenticated(
                        "basic credentials are accepted by the Handshake call only; send the bearer token it answers",
                    )),
                    Err(e) => Err(Status::unauthenticated(e.message)),
                }
            }
            None if self.users.is_empty() => Ok(ClientKey::Peer(request.remote_addr())),
            None => Err(Status::unauthenticated(
                "authentication required: call Handshake with basic credentials (user and password)",
            )),
        }
    }

    /// Runs one statement on the client's session.
    async fn execute(&self, client: &ClientKey, sql: &str) -> Result<StatementResult> {
        let session = self.sessions.get(client).await?;
        let mut session = session.lock().await;
        metadata::run(&mut session, sql).await
    }

    /// Starts a statement sent as a query and answers its FlightInfo (one endpoint, whose
    /// ticket is the handle of the parked result).
    async fn start_query(
        &self,
        client: &ClientKey,
        sql: &str,
        descriptor: FlightDescriptor,
    ) -> GrpcResult<Response<FlightInfo>> {
        let permit = self.queries.permit()?;
        let rows = match self.execute(client, sql).await? {
            StatementResult::Rows(rows) => rows,
            StatementResult::Status(status) => status_rows(&status)?,
        };
        let schema = Arc::clone(&rows.schema);
        let handle = self.queries.insert(rows, permit)?;
        let ticket = TicketStatementQuery {
            statement_handle: handle.into_bytes().into(),
        };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| to_status(&Error::from(e)))?
            .with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())),
            )
            .with_descriptor(descriptor)
            .with_ordered(true);
        Ok(Response::new(info))
    }

    /// Runs a statement sent as an update; answers the rows it wrote.
    async fn run_update(&self, client: &ClientKey, sql: &str) -> Result<i64> {
        match self.execute(client, sql).await? {
            StatementResult::Status(status) => Ok(affected(&status)),
            // Dropping the rows unread cancels the query.
            StatementResult::Rows(_) => Err(Error::invalid(
                "the statement returns rows; run it as a query (CommandStatementQuery)",
            )),
        }
    }

    async fn catalog_names(&self, client: &ClientKey, only: Option<&str>) -> Result<Vec<String>> {
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
        client: &ClientKey,
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
        client: &ClientKey,
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

    async fn primary_keys_batch(
        &self,
        client: &ClientKey,
        query: &CommandGetPrimaryKeys,
    ) -> Result<RecordBatch> {
        let session = self.sessions.get(client).await?;
        let mut session = session.lock().await;
        let (current_catalog, current_db) = {
            let (c, d) = session.current();
            (c.to_string(), d.to_string())
        };
        let catalog = query.catalog.clone().unwrap_or(current_catalog);
        let db = query.db_schema.clone().unwrap_or(current_db);
        let columns = metadata::primary_key(&mut session, &catalog, &db, &query.table).await?;
        metadata::primary_keys_batch(&catalog, &db, &query.table, &columns)
    }

    /// Cancels the queries of a FlightInfo's tickets; whether any was running.
    fn cancel_info(&self, info: &FlightInfo) -> bool {
        let mut any = false;
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let handle = Any::decode(ticket.ticket.clone())
                .ok()
                .and_then(|any| any.unpack::<TicketStatementQuery>().ok().flatten());
            if let Some(t) = handle
                && let Ok(handle) = std::str::from_utf8(&t.statement_handle)
            {
                any |= self.queries.cancel(handle);
            }
        }
        any
    }

    /// Reads the parameter batch a client sends with `DoPut` (possibly none).
    async fn read_parameters(
        request: Request<PeekableFlightDataStream>,
    ) -> Result<Option<RecordBatch>> {
        let stream = request
            .into_inner()
            .map_err(|status| arrow_flight::error::FlightError::Tonic(Box::new(status)));
        let mut decoded = FlightRecordBatchStream::new_from_flight_data(stream);
        let mut batches = Vec::new();
        while let Some(batch) = decoded.next().await {
            batches.push(batch.map_err(from_flight)?);
        }
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        let schema = first.schema();
        Ok(Some(prepared::concat(schema, &batches)?))
    }
}

fn no_transactions(transaction_id: Option<&[u8]>) -> Result<()> {
    match transaction_id {
        Some(_) => Err(Error::not_supported("transactions are not supported yet")),
        None => Ok(()),
    }
}

/// The `Basic` credentials of a handshake: from the `authorization` header, else from a
/// `BasicAuth` message in the first handshake payload.
async fn handshake_credentials(
    request: Request<Streaming<HandshakeRequest>>,
) -> GrpcResult<Option<(String, String)>> {
    if let Some(value) = request.metadata().get("authorization") {
        let value = value
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not ASCII"))?;
        return match parse_authorization(value) {
            Ok(Credentials::Basic { user, password }) => Ok(Some((user, password))),
            Ok(Credentials::Bearer(_)) => Err(Status::unauthenticated(
                "the handshake takes basic credentials (user and password), not a bearer token",
            )),
            Err(e) => Err(Status::unauthenticated(e.message)),
        };
    }
    let mut stream = request.into_inner();
    match stream.message().await? {
        Some(first) if !first.payload.is_empty() => match BasicAuth::decode(first.payload) {
            Ok(auth) if !auth.username.is_empty() => Ok(Some((auth.username, auth.password))),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

#[tonic::async_trait]
impl FlightSqlService for WeirFlightSql {
    type FlightService = WeirFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> GrpcResult<Response<HandshakeStream>> {
        let credentials = handshake_credentials(request).await?;
        if !self.users.is_empty() {
            let Some((user, password)) = credentials else {
                return Err(Status::unauthenticated(
                    "authentication required: send basic credentials (user and password)",
                ));
            };
            if !self.users.verify(&user, &password) {
                tracing::warn!(%user, "Flight SQL authentication failed");
                return Err(Status::unauthenticated("invalid user name or password"));
            }
            tracing::info!(%user, "Flight SQL client authenticated");
        }
        let token = self.sessions.open_token().await?;
        let header = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("the session token is not a valid header value"))?;
        let answer = HandshakeResponse {
            protocol_version: 0,
            payload: token.into_bytes().into(),
        };
        let stream: HandshakeStream = Box::pin(futures::stream::iter([Ok(answer)]));
        let mut response = Response::new(stream);
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> GrpcResult<Response<FlightInfo>> {
        let client = self.client(&request)?;
        no_transactions(query.transaction_id.as_deref())?;
        self.start_query(&client, &query.query, request.into_inner())
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> GrpcResult<Response<<Self as FlightService>::DoGetStream>> {
        self.client(&request)?;
        let handle = std::str::from_utf8(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("the statement handle is not valid UTF-8"))?;
        let query = self.queries.take(handle)?;
        Ok(Response::new(query_stream(query)))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> GrpcResult<i64> {
        let client = self.client(&request)?;
        no_transactions(command.transaction_id.as_deref())?;
        Ok(self.run_update(&client, &command.query).await?)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> GrpcResult<ActionCreatePreparedStatementResult> {
        let client = self.client(&request)?;
        no_transactions(query.transaction_id.as_deref())?;
        let count = prepared::placeholders(&query.query).len();
        // The text must parse as one statement once values stand in the placeholders.
        let probe = prepared::bind(&query.query, &prepared::null_row(count)?, 0)?;
        {
            let session = self.sessions.get(&client).await?;
            let session = session.lock().await;
            let statements = session.parse(&probe)?;
            if statements.len() != 1 {
                return Err(to_status(&Error::invalid(
                    "a prepared statement holds exactly one statement",
                )));
            }
        }
        // Statements of sessions that expired go with them.
        self.prepared
            .retain_owners(|owner| self.sessions.contains(owner));
        let parameter_schema = if count == 0 {
            // No parameters: no schema (an IPC schema without fields confuses some drivers).
            Default::default()
        } else {
            let schema = prepared::parameter_schema(count);
            let options = IpcWriteOptions::default();
            let ipc: arrow_flight::IpcMessage = arrow_flight::SchemaAsIpc::new(&schema, &options)
                .try_into()
                .map_err(|e| to_status(&Error::from(e)))?;
            ipc.0
        };
        let handle = self.prepared.insert(Prepared {
            owner: client,
            sql: query.query,
            parameters: count,
            bound: None,
        })?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: Default::default(),
            parameter_schema,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> GrpcResult<()> {
        let client = self.client(&request)?;
        self.prepared
            .close(&client, &query.prepared_statement_handle)?;
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> GrpcResult<DoPutPreparedStatementResult> {
        let client = self.client(&request)?;
        let params = Self::read_parameters(request).await?;
        self.prepared
            .with(&client, &query.prepared_statement_handle, |p| {
                if let Some(batch) = &params {
                    // Check the binding now, so a bad one fails here, not at execution.
                    p.texts(Some(batch))?;
                }
                p.bound = params;
                Ok(())
            })?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> GrpcResult<Response<FlightInfo>> {
        let client = self.client(&request)?;
        let texts = self
            .prepared
            .with(&client, &cmd.prepared_statement_handle, |p| p.texts(None))?;
        let sql = match texts.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(to_status(&Error::invalid(
                    "the bound parameter batch has no rows",
                )));
            }
            _ => {
                return Err(to_status(&Error::not_supported(
                    "a query with several bound parameter rows is not supported yet; bind one row",
                )));
            }
        };
        self.start_query(&client, &sql, request.into_inner()).await
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> GrpcResult<i64> {
        let client = self.client(&request)?;
        let params = Self::read_parameters(request).await?;
        let texts = self
            .prepared
            .with(&client, &query.prepared_statement_handle, |p| {
                p.texts(params.as_ref())
            })?;
        let mut total = 0i64;
        for sql in texts {
            total = total.saturating_add(self.run_update(&client, &sql).await?);
        }
        Ok(total)
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> GrpcResult<ActionCancelQueryResult> {
        self.client(&request)?;
        let info = FlightInfo::decode(query.info)
            .map_err(|e| Status::invalid_argument(format!("malformed FlightInfo: {e}")))?;
        // CancelResult (not re-exported by arrow-flight): 1 = CANCELLED, 3 = NOT_CANCELLABLE.
        let result = if self.cancel_info(&info) { 1 } else { 3 };
        Ok(ActionCancelQueryResult { result })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> GrpcResult<Response<<Self as FlightService>::DoActionStream>> {
        self.client(&request)?;
        let action = request.into_inner();
        let body = match action.r#type.as_str() {
            "CancelFlightInfo" => {
                let cancel = CancelFlightInfoRequest::decode(action.body).map_err(|e| {
                    Status::invalid_argument(format!("malformed CancelFlightInfoRequest: {e}"))
                })?;
                let info = cancel.info.ok_or_else(|| {
                    Status::invalid_argument("CancelFlightInfoRequest without a FlightInfo")
                })?;
                let status = if self.cancel_info(&info) {
                    CancelStatus::Cancelled
                } else {
                    CancelStatus::NotCancellable
                };
                CancelFlightInfoResult {
                    status: status as i32,
                }
                .encode_to_vec()
            }
            STATS_ACTION => format!(
                "{{\"running_queries\": {}, \"sessions\": {}}}",
                self.queries.len(),
                self.sessions.len()
            )
            .into_bytes(),
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown action `{other}`"
                )));
            }
        };
        let result = arrow_flight::Result { body: body.into() };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(result)]))))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> GrpcResult<Response<FlightInfo>> {
        self.client(&request)?;
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> GrpcResult<Response<<Self as FlightService>::DoGetStream>> {
        let client = self.client(&request)?;
        let mut builder = query.into_builder();
        for name in self.catalog_names(&client, None).await? {
            builder.append(name);
        }
        let batch = builder.build().map_err(from_flight)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> GrpcResult<Response<FlightInfo>> {
        self.client(&request)?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> GrpcResult<Response<<Self as FlightService>::DoGetStream>> {
        let client = self.client(&request)?;
        let databases = self
            .database_names(
                &client,
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
    ) -> GrpcResult<Response<FlightInfo>> {
        self.client(&request)?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> GrpcResult<Response<<Self as FlightService>::DoGetStream>> {
        let client = self.client(&request)?;
        let batch = self.tables_batch(&client, query).await?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> GrpcResult<Response<FlightInfo>> {
        self.client(&request)?;
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> GrpcResult<Response<<Self as FlightService>::DoGetStream>> {
        self.client(&request)?;
        let mut builder = query.into_builder();
        builder.append(TABLE);
        builder.append(VIEW);
        let batch = builder.build().map_err(from_flight)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> GrpcResult<Response<FlightInfo>> {
        self.client(&request)?;
        metadata_info(
            query,
            &metadata::primary_keys_schema(),
            request.into_inner(),
        )
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> GrpcResult<Response<<Self as FlightService>::DoGetStream>> {
        let client = self.client(&request)?;
        let batch = self.primary_keys_batch(&client, &query).await?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> GrpcResult<Response<FlightInfo>> {
        self.client(&request)?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> GrpcResult<Response<<Self as FlightService>::DoGetStream>> {
        self.client(&request)?;
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(from_flight)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
