//! The receiver: the three OTLP `Export` services, the streaming extension and gRPC health
//! checking on one HTTP/2 listener, every request handed to one [`AnyExportService`].

mod handler;
mod streaming;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use otlp_core::AnyExportService;
use otlp_net::intake::{Intake, IntakeConfig, ReceiverStats};
pub(crate) use otlp_net::listener::stopped;
use otlp_net::listener::{Connection, ListenerLimits};
use otlp_net::server::ConnectionHandler;
use otlp_stream::DedupWindow;
use tokio::sync::watch;

use crate::auth::Authenticate;
use crate::framing::FrameLimits;

/// HTTP/2 settings of the receiver, set explicitly rather than left to library defaults:
/// they bound what one peer can make the server hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Settings {
    /// Streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Largest header block (names + values) accepted.
    pub max_header_list_size: u32,
    /// Streams reset by the peer before the server accepted them, after which the
    /// connection is closed (the "rapid reset" flood).
    pub max_pending_accept_reset_streams: usize,
    /// Streams the server itself may reset for protocol errors before closing the
    /// connection.
    pub max_local_error_reset_streams: usize,
    /// Flow-control window per stream: how much a client can send before waiting.
    pub initial_stream_window: u32,
    /// Flow-control window for the whole connection.
    pub initial_connection_window: u32,
    /// Largest HTTP/2 frame payload accepted. Large enough for a usual request to arrive
    /// in one DATA frame (fewer frames to parse and read); the flow-control windows bound
    /// what a peer can make the connection buffer.
    pub max_frame_size: u32,
    /// Bytes buffered per stream for sending.
    pub max_send_buffer: usize,
    /// Interval of HTTP/2 pings on an idle connection, `None` for none.
    pub keep_alive_interval: Option<Duration>,
    /// A ping unanswered this long closes the connection.
    pub keep_alive_timeout: Duration,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 256,
            max_header_list_size: 16 * 1024,
            max_pending_accept_reset_streams: 50,
            max_local_error_reset_streams: 256,
            initial_stream_window: 2 * 1024 * 1024,
            initial_connection_window: 8 * 1024 * 1024,
            max_frame_size: 1024 * 1024,
            max_send_buffer: 1024 * 1024,
            keep_alive_interval: Some(Duration::from_secs(30)),
            keep_alive_timeout: Duration::from_secs(10),
        }
    }
}

pub use otlp_codec::validate::DecodeMode;

/// How the receiver behaves; every field has a production default.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// What every receiver shares: the size limits (a frame as sent, refused from its
    /// declared length before it is buffered; a message after decompression), accepted
    /// `grpc-encoding`s (all advertised in `grpc-accept-encoding`), validate or decode,
    /// forwarded headers, the memory budget.
    pub intake: IntakeConfig,
    /// Connections served at once, the TLS handshake deadline, and the deadline for the
    /// HTTP/2 preface and the SETTINGS frame header.
    pub listener: ListenerLimits,
    /// HTTP/2 limits.
    pub http2: Http2Settings,
    /// Longest a unary call may take (reading, processing) when the client sets no
    /// shorter `grpc-timeout`: a client that trickles its body cannot hold a stream forever.
    pub request_timeout: Duration,
    /// Batches of one bidirectional stream processed at once.
    pub stream_concurrency: usize,
    /// A bidirectional stream on which no batch arrives for this long, with nothing left
    /// to acknowledge, is ended with UNAVAILABLE (the client reopens one when it has data),
    /// so an idle peer that answers pings cannot hold a stream for ever.
    pub stream_idle_timeout: Duration,
    /// Batch ids remembered to recognise resent batches (across streams).
    pub dedup_capacity: usize,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            intake: IntakeConfig::default(),
            listener: ListenerLimits::default(),
            http2: Http2Settings::default(),
            request_timeout: Duration::from_secs(60),
            stream_concurrency: 32,
            stream_idle_timeout: Duration::from_secs(60),
            dedup_capacity: 65_536,
        }
    }
}

impl ReceiverConfig {
    /// The frame decoder's limits.
    pub(crate) fn frame_limits(&self) -> FrameLimits {
        FrameLimits {
            max_message_bytes: self.intake.max_request_bytes,
            max_frame_bytes: self.intake.max_sent_bytes,
        }
    }
}

/// An OTLP/gRPC receiver.
///
/// ```no_run
/// use otlp_core::{AnyExportRequest, ExportError, ExportOutcome};
/// use otlp_grpc::GrpcReceiver;
/// use otlp_grpc::auth::BearerToken;
///
/// # async fn run() -> std::io::Result<()> {
/// let service = tower::service_fn(|request: AnyExportRequest| async move {
///     Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
/// });
/// let running = GrpcReceiver::new(service)
///     .with_auth(BearerToken::new("s3cret"))
///     .bind("127.0.0.1:4317".parse().unwrap())
///     .await?;
/// println!("listening on {}", running.local_addr());
/// running.shutdown().await;
/// # Ok(()) }
/// ```
pub struct GrpcReceiver<Svc> {
    parts: otlp_net::server::ReceiverParts<Svc, ReceiverConfig>,
}

impl<Svc> std::fmt::Debug for GrpcReceiver<Svc> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GrpcReceiver").field(&self.parts).finish()
    }
}

impl<Svc> GrpcReceiver<Svc>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    /// A receiver handing every request to `service`, with the default configuration.
    pub fn new(service: Svc) -> Self {
        Self {
            parts: otlp_net::server::ReceiverParts::new(service),
        }
    }

    otlp_net::receiver_builder_methods!(ReceiverConfig, RunningReceiver);
}

impl<Svc> otlp_net::server::Receiver for GrpcReceiver<Svc>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    type Stats = ReceiverStats;
    const ALPN: &'static [&'static [u8]] = &[b"h2"];

    otlp_net::receiver_settings!();

    fn into_handler(
        self,
        stats: Arc<ReceiverStats>,
        shutdown: watch::Receiver<bool>,
    ) -> ConnectionHandler {
        let parts = self.parts;
        let accept_encoding = parts.config.intake.compression.grpc_accept_encoding();
        let shared = Arc::new(Shared {
            dedup: std::sync::Mutex::new(DedupWindow::new(parts.config.dedup_capacity)),
            health_watches: Arc::new(tokio::sync::Semaphore::new(MAX_HEALTH_WATCHES)),
            accept_encoding: HeaderValue::from_str(&accept_encoding)
                .unwrap_or(HeaderValue::from_static("identity")),
            intake: Intake::new(parts.service, parts.config.intake.clone(), stats),
            config: parts.config,
            auth: parts.auth,
            shutdown,
        });
        ConnectionHandler::new(move |connection| serve_connection(shared.clone(), connection))
    }
}

/// State shared by every connection and call of one receiver.
pub(crate) struct Shared<Svc> {
    pub(crate) intake: Intake<Svc, ReceiverStats>,
    pub(crate) config: ReceiverConfig,
    pub(crate) auth: Option<Arc<dyn Authenticate>>,
    pub(crate) accept_encoding: HeaderValue,
    pub(crate) dedup: std::sync::Mutex<DedupWindow>,
    /// Health `Watch` streams open at once, across connections (each holds a task).
    pub(crate) health_watches: Arc<tokio::sync::Semaphore>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

async fn serve_connection<Svc>(shared: Arc<Shared<Svc>>, io: Connection)
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let settings = shared.config.http2;
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(settings.max_header_list_size)
        .max_pending_accept_reset_streams(settings.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(settings.max_local_error_reset_streams)
        .initial_stream_window_size(settings.initial_stream_window)
        .initial_connection_window_size(settings.initial_connection_window)
        .max_frame_size(settings.max_frame_size)
        .max_send_buf_size(settings.max_send_buffer)
        .keep_alive_interval(settings.keep_alive_interval)
        .keep_alive_timeout(settings.keep_alive_timeout);
    let mut shutdown = shared.shutdown.clone();
    let handler = shared.clone();
    let stalled = StalledPeer::default();
    let marker = stalled.clone();
    let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
        let shared = handler.clone();
        request.extensions_mut().insert(marker.clone());
        async move { Ok::<_, Infallible>(handler::handle(shared, request).await) }
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    // A peer that stopped reading is dropped with its connection: a stream whose
    // acknowledgements cannot be written would otherwise stay open (HTTP/2 sends nothing,
    // not even the stream's end, without window) and hold even a graceful stop.
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stalled.0.notified() => {}
        () = stopped(&mut shutdown) => {
            // GOAWAY: open calls finish, new ones go elsewhere.
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = connection => {}
                () = stalled.0.notified() => {}
            }
        }
    }
}

/// Set by a stream whose peer took no acknowledgement within the request timeout: the
/// connection is then closed.
#[derive(Clone, Default)]
pub(crate) struct StalledPeer(Arc<tokio::sync::Notify>);

impl StalledPeer {
    /// Closes the connection this request came on.
    pub(crate) fn close_connection(&self) {
        self.0.notify_one();
    }
}

/// Health `Watch` streams a receiver keeps open at once; more are refused with
/// UNAVAILABLE (the checker may retry once one has closed).
pub const MAX_HEALTH_WATCHES: usize = 256;

/// A receiver serving in the background (see [`otlp_net::server::Running`]).
pub type RunningReceiver = otlp_net::server::Running<ReceiverStats>;
