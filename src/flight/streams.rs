//! How results leave the Flight SQL server: a running query's record batches become a `DoGet`
//! stream of Flight data frames as the query produces them (never collected first), cut short
//! with `CANCELLED` when the query is cancelled; metadata answers are one ready batch; a
//! statement without rows sent as a query answers one row with its status message.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::ProstMessageExt;
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Response, Status};

use super::sessions::TakenQuery;
use super::status::to_status;
use crate::error::{Error, Result};
use crate::session::{RowsResult, StatusResult};

/// The stream type of `DoGet` answers.
pub type DoGetStream = Pin<Box<dyn Stream<Item = std::result::Result<FlightData, Status>> + Send>>;

/// An error of arrow-flight (builders, decoders) as ours.
pub fn from_flight(err: FlightError) -> Error {
    match err {
        FlightError::Arrow(e) => Error::from(e),
        FlightError::Tonic(status) => Error::invalid(status.message().to_string()),
        FlightError::DecodeError(e) | FlightError::ProtocolError(e) => {
            Error::invalid(format!("malformed Flight data: {e}"))
        }
        other => Error::internal(format!("Flight SQL encoding failed: {other}")),
    }
}

/// A ticket for a metadata command: the command itself.
pub fn metadata_info(
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

/// Streams a running query as Flight data. The stream ends with `CANCELLED` when the query's
/// token is cancelled; dropping it (the client went away) drops the query, which stops it and
/// frees its slot.
pub fn query_stream(query: TakenQuery) -> DoGetStream {
    let TakenQuery {
        rows,
        cancel,
        guard,
    } = query;
    let schema = Arc::clone(&rows.schema);
    let batches = rows
        .stream
        .map_err(|e| FlightError::Tonic(Box::new(to_status(&Error::from(e)))));
    let cancellable = futures::stream::unfold(
        (batches, cancel, Some(guard)),
        |(mut batches, cancel, guard)| async move {
            // After a cancellation the stream ends (and the guard with the query is dropped).
            let guard = guard?;
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    let status = Status::cancelled("the query was cancelled");
                    Some((Err(FlightError::Tonic(Box::new(status))), (batches, cancel, None)))
                }
                next = batches.next() => next.map(|item| (item, (batches, cancel, Some(guard)))),
            }
        },
    );
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(cancellable)
        .map_err(Status::from);
    Box::pin(encoded)
}

/// One ready batch as a Flight stream.
pub fn batch_stream(batch: RecordBatch) -> DoGetStream {
    let schema = batch.schema();
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Box::pin(encoded)
}

/// The one-row result of a statement without rows, when it was sent as a query.
pub fn status_rows(status: &StatusResult) -> Result<RowsResult> {
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

/// The rows a statement wrote, as `DoPutUpdateResult` wants them.
pub fn affected(status: &StatusResult) -> i64 {
    status
        .rows_affected
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
