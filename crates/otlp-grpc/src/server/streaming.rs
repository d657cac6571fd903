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

use http::{HeaderMap, Response};
use hyper::body::Incoming;
use otlp_compression::Compression;
use otlp_core::{AnyExportService, ExportError};
use otlp_net::budget::Admission;
use otlp_stream::{completed, received};
use tokio::task::JoinSet;

use super::Shared;
use super::handler::{frame_message, grpc_response_with_body, read_message, refused};
use crate::body::{GrpcBody, next_frame};
use crate::framing::{FrameDecoder, frame_encoding};
use crate::status::{error_trailers, ok_trailers};

/// Frames of acknowledgements buffered ahead of the client reading them.
const ACK_BUFFER: usize = 64;

pub(super) fn bidirectional<Svc>(
    shared: Arc<Shared<Svc>>,
    parts: &http::request::Parts,
    mut body: Incoming,
    encoding: Option<Arc<dyn Compression>>,
) -> Response<GrpcBody>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let stalled = parts.extensions.get::<super::StalledPeer>().cloned();
    // The call's metadata goes with every batch of it.
    let metadata = Arc::new(shared.intake.metadata(&parts.headers));
    let (sender, response_body) = GrpcBody::channel(ACK_BUFFER);
    let response = grpc_response_with_body(&shared, response_body);
    tokio::spawn(async move {
        let _open = shared.intake.stats().streams.open_stream();
        let concurrency = shared.config.stream_concurrency.max(1);
        let mut decoder = FrameDecoder::new(shared.config.frame_limits());
        let mut trailers: Option<HeaderMap> = None;
        let mut in_flight = JoinSet::new();
        let mut reading = true;
        let mut ending: Result<(), ExportError> = Ok(());
        let mut shutdown = shared.shutdown.clone();
        let mut uncounted = Admission::default();
        let idle_timeout = shared.config.stream_idle_timeout;
        // Batches read and acknowledgements written are activity.
        let mut last_activity = tokio::time::Instant::now();
        loop {
            tokio::select! {
                // Each batch is counted when admitted (its frame is bounded by the
                // message limit, and the batches taken at once by the concurrency).
                frame = next_frame(&mut body, &mut decoder, &mut trailers, &mut uncounted),
                    if reading && in_flight.len() < concurrency => {
                    match frame {
                        // Decompression, validation and the export run in the batch's own
                        // task, so one stream's batches use every core.
                        Ok(Some(frame)) => {
                            last_activity = tokio::time::Instant::now();
                            let encoding = encoding.clone();
                            let metadata = metadata.clone();
                            let shared = shared.clone();
                            in_flight.spawn(async move {
                                let intake = &shared.intake;
                                let compression = frame_encoding(&frame, encoding.as_deref())
                                    .map_err(|e| refused(&shared, e))?;
                                let mut admission = intake.admission();
                                // The intake counts its own refusals.
                                let message =
                                    intake.decompress(frame.payload, compression, &mut admission)?;
                                match intake.stream_batch(message) {
                                    Ok(batch) => Ok(intake
                                        .deliver_batch(&shared.dedup, batch, admission, &metadata)
                                        .await),
                                    // A malformed batch whose number is readable: refused
                                    // alone, the stream goes on.
                                    Err((Some(sequence), error)) => {
                                        Ok(completed(sequence, &Err(error)))
                                    }
                                    Err((None, error)) => Err(error),
                                }
                            });
                        }
                        Ok(None) => reading = false,
                        Err(error) => {
                            ending = Err(refused(&shared, error));
                            reading = false;
                        }
                    }
                }
                () = tokio::time::sleep_until(last_activity.checked_add(idle_timeout).unwrap_or(last_activity)),
                    if reading && in_flight.is_empty() && last_activity.checked_add(idle_timeout).is_some() => {
                    shared.intake.stats().streams.idle.fetch_add(1, Ordering::Relaxed);
                    reading = false;
                    ending = Err(ExportError::unavailable(format!(
                        "no batch within the stream idle timeout ({idle_timeout:?})"
                    )));
                }
                () = super::stopped(&mut shutdown), if reading => {
                    // Batches not yet read stay with the client, which resends them to
                    // wherever it reconnects; those taken are finished and acknowledged.
                    reading = false;
                    ending = Err(ExportError::unavailable("the receiver is shutting down"));
                }
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    let ack = match done {
                        Ok(Ok(ack)) => ack,
                        Ok(Err(fatal)) => {
                            // No readable batch: the stream ends with its status once the
                            // batches already taken are acknowledged.
                            reading = false;
                            if ending.is_ok() {
                                ending = Err(fatal);
                            }
                            continue;
                        }
                        Err(_) => completed(0, &Err(ExportError::internal("batch processing panicked"))),
                    };
                    // A client that stops reading its acknowledgements cannot hold the
                    // stream (reset, or stalled: nobody is left to acknowledge).
                    if !write_within(&shared, stalled.as_ref(), sender.data(frame_message(&ack))).await {
                        return;
                    }
                    last_activity = tokio::time::Instant::now();
                }
                else => break,
            }
        }
        let trailers = match ending {
            Ok(()) => ok_trailers(),
            Err(error) => error_trailers(&error),
        };
        write_within(&shared, stalled.as_ref(), sender.trailers(trailers)).await;
    });
    response
}

/// Awaits one write of a response stream (`write` is `false` once the peer reset it)
/// within the request timeout. A peer that leaves no room for that long has stopped
/// reading: the stream is counted as stalled and its connection closed (HTTP/2 cannot even
/// end a stream that has no window).
async fn write_within<Svc>(
    shared: &Shared<Svc>,
    stalled: Option<&super::StalledPeer>,
    write: impl std::future::Future<Output = bool>,
) -> bool {
    match tokio::time::timeout(shared.config.request_timeout, write).await {
        Ok(written) => written,
        Err(_) => {
            shared
                .intake
                .stats()
                .streams
                .stalled
                .fetch_add(1, Ordering::Relaxed);
            if let Some(stalled) = stalled {
                stalled.close_connection();
            }
            false
        }
    }
}

pub(super) async fn server_stream<Svc>(
    shared: &Arc<Shared<Svc>>,
    parts: &http::request::Parts,
    mut body: Incoming,
    encoding: Option<Arc<dyn Compression>>,
) -> Result<Response<GrpcBody>, ExportError>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let (message, admission) = read_message(shared, &mut body, encoding.as_deref()).await?;
    let (sequence, id, request) = shared.intake.stream_batch(message).map_err(|(_, e)| e)?;
    let (sender, response_body) = GrpcBody::channel(2);
    let shared_task = shared.clone();
    let stalled = parts.extensions.get::<super::StalledPeer>().cloned();
    let metadata = shared.intake.metadata(&parts.headers);
    tokio::spawn(async move {
        let shared = &shared_task;
        let write = |frame| write_within(shared, stalled.as_ref(), sender.data(frame));
        if !write(frame_message(&received(sequence))).await {
            return;
        }
        let ack = shared
            .intake
            .deliver_batch(&shared.dedup, (sequence, id, request), admission, &metadata)
            .await;
        if write(frame_message(&ack)).await {
            write_within(shared, stalled.as_ref(), sender.trailers(ok_trailers())).await;
        }
    });
    Ok(grpc_response_with_body(shared, response_body))
}
