//! The streaming extension's server side (`otlp_transport.v1.StreamService`):
//!
//! - `ExportBidirectional`: batches are read as they arrive and up to
//!   `stream_concurrency` of them processed at once; each gets one COMPLETED
//!   acknowledgement when the service has finished with it, in completion order. A batch
//!   whose id was accepted before (a resend after a reconnect) is acknowledged without
//!   being processed again. The stream ends with OK trailers once the client has finished
//!   sending and every batch is acknowledged; a malformed or oversized message ends it
//!   with that error's status after the batches already taken are acknowledged.
//! - `ExportStream`: one batch; a RECEIVED acknowledgement as soon as it is decoded (the
//!   client may release its copy from a retry buffer once it knows the server holds it),
//!   then COMPLETED when the service has finished.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderMap, Response};
use hyper::body::Incoming;
use otlp_compression::Compression;
use otlp_core::{
    AnyExportRequest, AnyExportService, BatchId, ExportError, ExportOutcome, ExportRequest,
};
use otlp_model::stream::stream_batch::Payload;
use otlp_model::stream::{StreamAck, StreamBatch};
use otlp_stream::{Admission, completed, received};
use prost::Message;
use tokio::task::JoinSet;

use super::handler::{frame_message, grpc_response_with_body, refused};
use super::{DecodeMode, Shared};
use crate::body::{GrpcBody, next_frame, read_unary};
use crate::framing::FrameDecoder;
use crate::status::{error_trailers, ok_trailers};

/// Frames of acknowledgements buffered ahead of the client reading them.
const ACK_BUFFER: usize = 64;

type Batch = (u64, Option<Vec<u8>>, AnyExportRequest);

fn decode_batch(mode: DecodeMode, message: Bytes) -> Result<Batch, ExportError> {
    match mode {
        DecodeMode::Full => decode_batch_fully(message),
        DecodeMode::Validate => {
            let items = otlp_codec::validate::validate_stream_batch(&message).map_err(|e| {
                ExportError::invalid_argument(format!("malformed StreamBatch: {e}"))
            })?;
            split_batch(message, items)
        }
    }
}

/// The fields of a validated `StreamBatch`, the payload kept as bytes. Protobuf merges a
/// repeated message field by concatenation, and a oneof keeps its last member, so the
/// payload is the concatenation of the last member's occurrences since the member changed.
fn split_batch(message: Bytes, items: usize) -> Result<Batch, ExportError> {
    use prost::encoding::decode_varint;
    let malformed = || ExportError::invalid_argument("malformed StreamBatch");
    let mut rest = message.clone();
    let mut sequence = 0;
    let mut payload: Option<(u64, Vec<Bytes>)> = None;
    let mut batch_id = Bytes::new();
    while !rest.is_empty() {
        let key = decode_varint(&mut rest).map_err(|_| malformed())?;
        let (number, wire) = (key >> 3, key & 7);
        match (number, wire) {
            (1, 0) => sequence = decode_varint(&mut rest).map_err(|_| malformed())?,
            (_, 2) => {
                let len = usize::try_from(decode_varint(&mut rest).map_err(|_| malformed())?)
                    .map_err(|_| malformed())?;
                if len > rest.len() {
                    return Err(malformed());
                }
                let value = rest.split_to(len);
                match number {
                    2..=4 => match &mut payload {
                        Some((member, parts)) if *member == number => parts.push(value),
                        _ => payload = Some((number, vec![value])),
                    },
                    5 => batch_id = value,
                    _ => {}
                }
            }
            // Unknown fields of other wire types: the validator accepted them; skip.
            (_, 0) => {
                decode_varint(&mut rest).map_err(|_| malformed())?;
            }
            (_, 1) if rest.len() >= 8 => drop(rest.split_to(8)),
            (_, 5) if rest.len() >= 4 => drop(rest.split_to(4)),
            // A group in an unknown field (valid, and never written by anyone today).
            (_, 3) => return decode_batch_fully(message),
            _ => return Err(malformed()),
        }
    }
    let Some((member, parts)) = payload else {
        return Err(ExportError::invalid_argument(format!(
            "batch {sequence} carries no payload"
        )));
    };
    let bytes = if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        Bytes::from(parts.concat())
    };
    let request = match member {
        2 => AnyExportRequest::Traces(ExportRequest::from_encoded(bytes, items)),
        3 => AnyExportRequest::Metrics(ExportRequest::from_encoded(bytes, items)),
        _ => AnyExportRequest::Logs(ExportRequest::from_encoded(bytes, items)),
    };
    let id = (!batch_id.is_empty()).then(|| batch_id.to_vec());
    let request = match <[u8; 16]>::try_from(batch_id.as_ref()) {
        Ok(id) => with_batch_id(request, BatchId(id)),
        Err(_) => request,
    };
    Ok((sequence, id, request))
}

fn decode_batch_fully(message: Bytes) -> Result<Batch, ExportError> {
    let batch = StreamBatch::decode(message)
        .map_err(|e| ExportError::invalid_argument("malformed StreamBatch").with_source(e))?;
    let request: AnyExportRequest = match batch.payload {
        Some(Payload::Traces(r)) => AnyExportRequest::Traces(ExportRequest::new(r)),
        Some(Payload::Metrics(r)) => AnyExportRequest::Metrics(ExportRequest::new(r)),
        Some(Payload::Logs(r)) => AnyExportRequest::Logs(ExportRequest::new(r)),
        None => {
            return Err(ExportError::invalid_argument(format!(
                "batch {} carries no payload",
                batch.sequence
            )));
        }
    };
    let id = (!batch.batch_id.is_empty()).then(|| batch.batch_id.to_vec());
    let request = match <[u8; 16]>::try_from(batch.batch_id.as_ref()) {
        Ok(id) => with_batch_id(request, BatchId(id)),
        Err(_) => request,
    };
    Ok((batch.sequence, id, request))
}

fn with_batch_id(request: AnyExportRequest, id: BatchId) -> AnyExportRequest {
    match request {
        AnyExportRequest::Traces(r) => r.with_batch_id(id).into(),
        AnyExportRequest::Metrics(r) => r.with_batch_id(id).into(),
        AnyExportRequest::Logs(r) => r.with_batch_id(id).into(),
    }
}

/// The `sequence` of a batch that may be malformed elsewhere: its first field, if that is
/// field 1 as a varint (how every encoder writes it).
fn peek_sequence(message: &[u8]) -> Option<u64> {
    let mut rest = message;
    let key = prost::encoding::decode_varint(&mut rest).ok()?;
    (key == 1 << 3)
        .then(|| prost::encoding::decode_varint(&mut rest).ok())
        .flatten()
}

/// Processes one batch, at most once per batch id while the id is remembered.
async fn process<Svc>(
    shared: Arc<Shared<Svc>>,
    sequence: u64,
    id: Option<Vec<u8>>,
    request: AnyExportRequest,
) -> StreamAck
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let items = request.item_count();
    if let Some(id) = &id {
        let admission = shared
            .dedup
            .lock()
            .map(|mut window| window.admit(id))
            .unwrap_or(Admission::Fresh);
        if admission == Admission::Duplicate {
            shared
                .stats
                .duplicate_batches
                .fetch_add(1, Ordering::Relaxed);
            return completed(sequence, &Ok(ExportOutcome::success(items)));
        }
    }
    let result = shared.export(request).await;
    if result.is_err()
        && let Some(id) = &id
        && let Ok(mut window) = shared.dedup.lock()
    {
        // Not accepted, so a resend must be processed.
        window.forget(id);
    }
    completed(sequence, &result)
}

pub(super) fn bidirectional<Svc>(
    shared: Arc<Shared<Svc>>,
    _parts: &http::request::Parts,
    mut body: Incoming,
    encoding: Option<Arc<dyn Compression>>,
) -> Response<GrpcBody>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let (sender, response_body) = GrpcBody::channel(ACK_BUFFER);
    let response = grpc_response_with_body(&shared, response_body);
    tokio::spawn(async move {
        let concurrency = shared.config.stream_concurrency.max(1);
        let mut decoder = FrameDecoder::new(shared.config.limits);
        let mut trailers: Option<HeaderMap> = None;
        let mut in_flight = JoinSet::new();
        let mut reading = true;
        let mut ending: Result<(), ExportError> = Ok(());
        let mut shutdown = shared.shutdown.clone();
        loop {
            tokio::select! {
                frame = next_frame(&mut body, &mut decoder, &mut trailers),
                    if reading && in_flight.len() < concurrency => {
                    let batch = frame.and_then(|frame| match frame {
                        None => Ok(None),
                        Some(frame) => {
                            decoder.message(frame, encoding.as_deref()).and_then(|message| {
                                let sequence = peek_sequence(&message);
                                match (decode_batch(shared.config.decode, message), sequence) {
                                    (Ok(batch), _) => Ok(Some(Ok(batch))),
                                    (Err(error), Some(sequence)) => Ok(Some(Err((sequence, error)))),
                                    (Err(error), None) => Err(error),
                                }
                            })
                        }
                    });
                    match batch {
                        Ok(Some(Ok((sequence, id, request)))) => {
                            in_flight.spawn(process(shared.clone(), sequence, id, request));
                        }
                        Ok(Some(Err((sequence, error)))) => {
                            // A malformed batch whose number is readable: refused alone,
                            // the stream goes on.
                            let error = refused(&shared, error);
                            in_flight.spawn(async move { completed(sequence, &Err(error)) });
                        }
                        Ok(None) => reading = false,
                        Err(error) => {
                            ending = Err(refused(&shared, error));
                            reading = false;
                        }
                    }
                }
                () = super::stopped(&mut shutdown), if reading => {
                    // Batches not yet read stay with the client, which resends them to
                    // wherever it reconnects; those taken are finished and acknowledged.
                    reading = false;
                    ending = Err(ExportError::unavailable("the receiver is shutting down"));
                }
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    let ack = done.unwrap_or_else(|_| {
                        completed(0, &Err(ExportError::internal("batch processing panicked")))
                    });
                    if !sender.data(frame_message(&ack)).await {
                        // The client reset the stream: nobody is left to acknowledge.
                        return;
                    }
                }
                else => break,
            }
        }
        let trailers = match ending {
            Ok(()) => ok_trailers(),
            Err(error) => error_trailers(&error),
        };
        sender.trailers(trailers).await;
    });
    response
}

pub(super) async fn server_stream<Svc>(
    shared: &Arc<Shared<Svc>>,
    _parts: &http::request::Parts,
    mut body: Incoming,
    encoding: Option<Arc<dyn Compression>>,
) -> Result<Response<GrpcBody>, ExportError>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let mut decoder = FrameDecoder::new(shared.config.limits);
    let mut trailers = None;
    let message = read_unary(&mut body, &mut decoder, encoding.as_deref(), &mut trailers)
        .await
        .map_err(|e| refused(shared, e))?
        .ok_or_else(|| refused(shared, ExportError::internal("the call carried no message")))?;
    let (sequence, id, request) =
        decode_batch(shared.config.decode, message).map_err(|e| refused(shared, e))?;
    let (sender, response_body) = GrpcBody::channel(2);
    let shared_task = shared.clone();
    tokio::spawn(async move {
        if !sender.data(frame_message(&received(sequence))).await {
            return;
        }
        let ack = process(shared_task, sequence, id, request).await;
        if sender.data(frame_message(&ack)).await {
            sender.trailers(ok_trailers()).await;
        }
    });
    Ok(grpc_response_with_body(shared, response_body))
}
