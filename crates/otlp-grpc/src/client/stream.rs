//! The bidirectional streaming exporter: one long-lived `ExportBidirectional` call carries
//! numbered batches. The driver is `otlp-net`'s ([`otlp_net::stream_client`], shared with
//! the WebSocket exporter); this module is the gRPC link under it — the call, its framing
//! and its trailers. A server without the streaming service (UNIMPLEMENTED) gets unary
//! `Export` calls instead; one that refuses the call's `grpc-encoding` gets the batches
//! again on an uncompressed call, and every later call is uncompressed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{HeaderMap, Response};
use hyper::body::Incoming;
use otlp_compression::Compression;
use otlp_core::{AnyExportRequest, ErrorKind, ExportError};
use otlp_model::stream::StreamAck;
use otlp_net::stream_client::{
    LinkEnd, SendError, StreamClient, StreamClientConfig, StreamConnector, StreamLink,
    UnaryFallback,
};
use otlp_stream::SenderConfig;
use otlp_stream::envelope::encode_batch;
use prost::Message;
use tower_service::Service;

use super::{GrpcExporter, error_of_headers, response_encoding};
use crate::body::{BodySender, GrpcBody, next_frame};
use crate::framing::{FrameDecoder, FrameLimits};
use crate::protocol::EXPORT_BIDIRECTIONAL_PATH;
use crate::status::error_from_trailers;

/// Settings of a [`StreamExporter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamExporterConfig {
    /// Window and resend policy of the stream protocol.
    pub sender: SenderConfig,
    /// First wait before reconnecting after a broken stream.
    pub reconnect_initial: Duration,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// Use unary `Export` calls when the server lacks the streaming service.
    pub fallback_to_unary: bool,
    /// Longest one call waits, for room in the window and then for its acknowledgement;
    /// past it the call fails as a retryable timeout (the batch may still be delivered
    /// and acknowledged later), so a silent upstream cannot hold every caller. `None`:
    /// unbounded (a batch survives any number of reconnects).
    pub call_timeout: Option<Duration>,
}

impl Default for StreamExporterConfig {
    fn default() -> Self {
        Self {
            sender: SenderConfig::default(),
            reconnect_initial: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(5),
            fallback_to_unary: true,
            call_timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// Counters of a [`StreamExporter`]: the stream driver's, the same for every binding.
pub type StreamStats = otlp_net::stream_client::StreamClientStats;

/// An exporter over the bidirectional streaming RPC, usable as an
/// [`ExportService`](otlp_core::ExportService) for every signal. Each call resolves when
/// its batch is acknowledged (or refused for good); at most `window` batches are
/// unacknowledged at once, and further calls wait (backpressure).
///
/// Calls are bounded by [`StreamExporterConfig::call_timeout`] (10 s by default).
#[derive(Debug, Clone)]
pub struct StreamExporter(StreamClient);

impl StreamExporter {
    /// Starts the stream driver for `exporter`'s endpoint. It connects on the first batch.
    pub fn new(exporter: GrpcExporter, config: StreamExporterConfig) -> Self {
        let connector = GrpcConnector {
            exporter,
            window: config.sender.window.max(1),
            fallback_to_unary: config.fallback_to_unary,
            compression_refused: Arc::default(),
        };
        Self(StreamClient::spawn(
            connector,
            StreamClientConfig {
                sender: config.sender,
                reconnect_initial: config.reconnect_initial,
                reconnect_max: config.reconnect_max,
                call_timeout: config.call_timeout,
                // The request body holds a whole window: writes never wait for the peer.
                write_timeout: None,
            },
        ))
    }
}

otlp_net::stream_exporter_handle!(StreamExporter, StreamStats);

/// What a status ending the call means for the stream.
fn ended_by(error: ExportError) -> LinkEnd {
    match (error.kind(), error.retry_class()) {
        (ErrorKind::Unimplemented, _) => LinkEnd::Unimplemented,
        (_, otlp_core::RetryClass::Permanent) => LinkEnd::Refused(error),
        _ => LinkEnd::Broken,
    }
}

/// Opens one `ExportBidirectional` call per link.
struct GrpcConnector {
    exporter: GrpcExporter,
    window: usize,
    fallback_to_unary: bool,
    /// The server refused our `grpc-encoding`: later calls are uncompressed.
    compression_refused: Arc<AtomicBool>,
}

type PendingResponse =
    Pin<Box<dyn Future<Output = Result<Response<Incoming>, ExportError>> + Send>>;

/// One call: its request body (batches), and its response (acknowledgements) once the
/// server's headers have come.
struct GrpcLink {
    exporter: GrpcExporter,
    compression: Option<Arc<dyn Compression>>,
    compression_refused: Arc<AtomicBool>,
    /// The request body; `None` once our half is ended.
    body: Option<BodySender>,
    /// The response before its headers arrive. Batches are written before it: a server
    /// may send its headers only with its first acknowledgement.
    pending: Option<PendingResponse>,
    acks: Option<Acks>,
    trailers: Option<HeaderMap>,
}

struct Acks {
    body: Incoming,
    decoder: FrameDecoder,
    encoding: Option<Arc<dyn Compression>>,
}

impl StreamConnector for GrpcConnector {
    type Link = GrpcLink;

    async fn open(&mut self) -> Result<GrpcLink, LinkEnd> {
        let compression = if self.compression_refused.load(Ordering::Relaxed) {
            None
        } else {
            self.exporter.inner.config.compression.clone()
        };
        let (body, request_body) = GrpcBody::channel(self.window + 1);
        let request = self.exporter.request(
            EXPORT_BIDIRECTIONAL_PATH,
            compression.as_ref(),
            request_body,
        );
        let exporter = self.exporter.clone();
        let pending: PendingResponse =
            Box::pin(async move { exporter.channel().send(request).await });
        Ok(GrpcLink {
            exporter: self.exporter.clone(),
            compression,
            compression_refused: self.compression_refused.clone(),
            body: Some(body),
            pending: Some(pending),
            acks: None,
            trailers: None,
        })
    }

    fn fallback(&self) -> Option<UnaryFallback> {
        let exporter = self.exporter.clone();
        self.fallback_to_unary.then(|| -> UnaryFallback {
            Arc::new(move |request| {
                let mut exporter = exporter.clone();
                Box::pin(async move { exporter.call(request).await })
            })
        })
    }
}

impl GrpcLink {
    /// Waits for the response headers, and checks that they accept the call.
    async fn accepted(&mut self) -> Result<(), LinkEnd> {
        if let Some(pending) = &mut self.pending {
            let response = pending.await;
            // Finished either way: a finished future must not be polled again.
            self.pending = None;
            let response = response.map_err(|_| LinkEnd::Broken)?;
            if let Some(error) = error_of_headers(&response, self.compression.as_ref()) {
                if error.kind() == ErrorKind::UnsupportedMediaType {
                    // Our encoding is refused: the batches go again on an uncompressed
                    // call, as the retry layer resends a unary request.
                    self.compression_refused.store(true, Ordering::Relaxed);
                    return Err(LinkEnd::Broken);
                }
                return Err(ended_by(error));
            }
            let config = &self.exporter.inner.config;
            let encoding =
                response_encoding(response.headers(), config).map_err(|_| LinkEnd::Broken)?;
            self.acks = Some(Acks {
                body: response.into_body(),
                decoder: FrameDecoder::new(FrameLimits {
                    max_message_bytes: config.max_response_bytes,
                    max_frame_bytes: config.max_response_bytes,
                }),
                encoding,
            });
        }
        Ok(())
    }
}

impl StreamLink for GrpcLink {
    async fn send(&mut self, sequence: u64, batch: &AnyExportRequest) -> Result<usize, SendError> {
        let (message, _) = encode_batch(sequence, batch);
        let frame = self
            .exporter
            .frame(vec![message], self.compression.as_deref())
            .map_err(|_| SendError::Batch(ExportError::too_large("batch over the limit")))?;
        let size = frame.len();
        let Some(body) = &self.body else {
            return Err(SendError::Broken);
        };
        // One write per frame: a link dropped between two would leave half a frame.
        if body.data(frame.into_bytes()).await {
            Ok(size)
        } else {
            Err(SendError::Broken)
        }
    }

    async fn flush(&mut self) -> Result<(), LinkEnd> {
        Ok(())
    }

    async fn receive(&mut self) -> Result<StreamAck, LinkEnd> {
        self.accepted().await?;
        let Some(acks) = &mut self.acks else {
            return Err(LinkEnd::Broken);
        };
        // Acknowledgements are not counted against a budget (there is none here).
        let mut uncounted = otlp_net::budget::Admission::default();
        let frame = next_frame(
            &mut acks.body,
            &mut acks.decoder,
            &mut self.trailers,
            &mut uncounted,
        )
        .await;
        match frame {
            Ok(Some(frame)) => {
                let message = acks
                    .decoder
                    .message(frame, acks.encoding.as_deref())
                    .map_err(|_| LinkEnd::Broken)?;
                StreamAck::decode(message).map_err(|_| LinkEnd::Broken)
            }
            Ok(None) => match error_from_trailers(&self.trailers.take().unwrap_or_default()) {
                Some(error) => Err(ended_by(error)),
                None => Err(LinkEnd::Finished),
            },
            Err(_) => Err(LinkEnd::Broken),
        }
    }

    async fn finish(mut self) {
        // Ending the request body ends our half; the server then ends the call.
        self.body = None;
        while self.receive().await.is_ok() {}
    }
}
