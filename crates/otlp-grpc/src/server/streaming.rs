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
use otlp_model::stream::StreamAck;
use otlp_net::budget::Admission;
use otlp_net::stream_server::{ReceiveLink, StreamServerConfig, serve_stream};
use otlp_stream::{Ending, SessionConfig, completed, received};

use super::Shared;
use super::handler::{frame_message, grpc_response_with_body, read_message, refused};
use crate::body::{BodySender, GrpcBody, next_frame};
use crate::framing::{Frame, FrameDecoder, frame_encoding};
use crate::status::{error_trailers, ok_trailers};

/// Frames of acknowledgements buffered ahead of the client reading them.
const ACK_BUFFER: usize = 64;

pub(super) fn bidirectional<Svc>(
    shared: Arc<Shared<Svc>>,
    parts: &http::request::Parts,
    body: Incoming,
    encoding: Option<Arc<dyn Compression>>,
) -> Response<GrpcBody>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    // The call's metadata goes with every batch of it.
    let metadata = Arc::new(shared.intake.metadata(&parts.headers));
    let (sender, response_body) = GrpcBody::channel(ACK_BUFFER);
    let response = grpc_response_with_body(&shared, response_body);
    let link = BidirectionalLink {
        decoder: FrameDecoder::new(shared.config.frame_limits()),
        shared: shared.clone(),
        body,
        trailers: None,
        uncounted: Admission::default(),
        sender,
        stalled: parts.extensions.get::<super::StalledPeer>().cloned(),
    };
    let config = StreamServerConfig {
        session: SessionConfig {
            concurrency: shared.config.stream_concurrency,
            idle_timeout: Some(shared.config.stream_idle_timeout),
            keepalive: None,
        },
        write_timeout: shared.config.request_timeout,
    };
    tokio::spawn(async move {
        let process = |frame: Frame| {
            let encoding = encoding.clone();
            let metadata = metadata.clone();
            let shared = shared.clone();
            async move {
                let intake = &shared.intake;
                let compression =
                    frame_encoding(&frame, encoding.as_deref()).map_err(|e| refused(&shared, e))?;
                let mut admission = intake.admission();
                // The intake counts its own refusals.
                let message = intake.decompress(frame.payload, compression, &mut admission)?;
                match intake.stream_batch(message) {
                    Ok(batch) => Ok(intake
                        .deliver_batch(&shared.dedup, batch, admission, &metadata)
                        .await),
                    // A malformed batch whose number is readable: refused alone, the
                    // stream goes on.
                    Err((Some(sequence), error)) => Ok(completed(sequence, &Err(error))),
                    Err((None, error)) => Err(error),
                }
            }
        };
        let stats = &shared.intake.stats().streams;
        serve_stream(link, config, stats, shared.shutdown.clone(), process).await;
    });
    response
}

/// A bidirectional call as a [`ReceiveLink`]: gRPC frames in, acknowledgement frames out,
/// trailers at the end.
struct BidirectionalLink<Svc> {
    shared: Arc<Shared<Svc>>,
    body: Incoming,
    decoder: FrameDecoder,
    trailers: Option<HeaderMap>,
    // Each batch is counted when admitted (its frame is bounded by the message limit, and
    // the batches taken at once by the concurrency).
    uncounted: Admission,
    sender: BodySender,
    stalled: Option<super::StalledPeer>,
}

impl<Svc> ReceiveLink for BidirectionalLink<Svc>
where
    Svc: Send + Sync + 'static,
{
    type Message = Frame;
    type Fatal = ExportError;

    async fn receive(&mut self) -> Result<Option<Frame>, ExportError> {
        next_frame(
            &mut self.body,
            &mut self.decoder,
            &mut self.trailers,
            &mut self.uncounted,
        )
        .await
        .map_err(|error| refused(&self.shared, error))
    }

    async fn send_ack(&mut self, ack: &StreamAck) -> bool {
        self.sender.data(frame_message(ack)).await
    }

    fn stalled(&mut self) {
        // HTTP/2 cannot even end a stream that has no window: the connection goes.
        if let Some(stalled) = &self.stalled {
            stalled.close_connection();
        }
    }

    async fn finish(&mut self, ending: Ending<ExportError>) -> bool {
        let trailers = match ending {
            Ending::Finished => ok_trailers(),
            Ending::Idle(timeout) => error_trailers(&ExportError::unavailable(format!(
                "no batch within the stream idle timeout ({timeout:?})"
            ))),
            Ending::ShuttingDown => {
                error_trailers(&ExportError::unavailable("the receiver is shutting down"))
            }
            Ending::Failed(error) => error_trailers(&error),
        };
        self.sender.clone().trailers(trailers).await
    }

    fn internal_error(reason: &'static str) -> ExportError {
        ExportError::internal(reason)
    }
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
