//! The receiver: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` (paths configurable) on one
//! listener, HTTP/1.1 and HTTP/2 (h2c by prior knowledge, or ALPN over TLS), every request
//! handed to one [`AnyExportService`].

mod cors;
mod handler;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use otlp_codec::CodecSet;
use otlp_core::{AnyExportService, SignalKind};
use otlp_net::auth::Authenticate;
use otlp_net::intake::{Intake, IntakeConfig};
use otlp_net::listener::{ListenerLimits, stopped};
use otlp_net::server::ConnectionHandler;
use otlp_net::upgrade::UpgradeHandler;
use tokio::sync::watch;

pub use cors::Cors;

/// The request paths of the three signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPaths {
    /// Default `/v1/traces`.
    pub traces: String,
    /// Default `/v1/metrics`.
    pub metrics: String,
    /// Default `/v1/logs`.
    pub logs: String,
}

impl Default for HttpPaths {
    fn default() -> Self {
        Self {
            traces: SignalKind::Traces.http_path().to_string(),
            metrics: SignalKind::Metrics.http_path().to_string(),
            logs: SignalKind::Logs.http_path().to_string(),
        }
    }
}

impl HttpPaths {
    fn signal(&self, path: &str) -> Option<SignalKind> {
        if path == self.traces {
            Some(SignalKind::Traces)
        } else if path == self.metrics {
            Some(SignalKind::Metrics)
        } else if path == self.logs {
            Some(SignalKind::Logs)
        } else {
            None
        }
    }
}

/// How the receiver behaves; every field has a production default.
#[derive(Debug, Clone)]
pub struct HttpReceiverConfig {
    /// Request paths.
    pub paths: HttpPaths,
    /// Accepted `Content-Type`s (protobuf, JSON, MessagePack, CBOR by default).
    pub codecs: CodecSet,
    /// What every receiver shares: the size limits (the body as sent, 413 beyond, from
    /// the declared `Content-Length` before reading; and after decompression), accepted
    /// `Content-Encoding`s, validate or decode, forwarded headers, the memory budget.
    pub intake: IntakeConfig,
    /// Longest wait for a request's headers (HTTP/1.1): a slow client is disconnected.
    pub header_read_timeout: Duration,
    /// Longest wait for a request's body (408).
    pub body_read_timeout: Duration,
    /// Connections and TLS handshake deadline.
    pub listener: ListenerLimits,
    /// Streams one HTTP/2 connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Largest header block accepted (HTTP/2) or header buffer (HTTP/1.1).
    pub max_header_bytes: usize,
    /// Cross-origin access for browsers (none by default).
    pub cors: Cors,
}

impl Default for HttpReceiverConfig {
    fn default() -> Self {
        Self {
            paths: HttpPaths::default(),
            codecs: CodecSet::with_defaults(),
            intake: IntakeConfig::default(),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            listener: ListenerLimits::default(),
            max_concurrent_streams: 256,
            max_header_bytes: 16 * 1024,
            cors: Cors::default(),
        }
    }
}

/// Counters of a receiver, readable while it runs:
/// [`ReceiverStats`](otlp_net::intake::ReceiverStats), the shape every receiver shares (its
/// `streams` stay zero: a WebSocket path mounted beside it counts its own).
pub type HttpReceiverStats = otlp_net::intake::ReceiverStats;

/// An OTLP/HTTP receiver.
///
/// ```no_run
/// use otlp_core::{AnyExportRequest, ExportError, ExportOutcome};
/// use otlp_http::{Cors, HttpReceiver, HttpReceiverConfig};
///
/// # async fn run() -> std::io::Result<()> {
/// let service = tower::service_fn(|request: AnyExportRequest| async move {
///     Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
/// });
/// let config = HttpReceiverConfig {
///     cors: Cors::allow_origins(["https://app.example.com"]),
///     ..Default::default()
/// };
/// let running = HttpReceiver::new(service)
///     .with_config(config)
///     .bind("0.0.0.0:4318".parse().unwrap())
///     .await?;
/// running.shutdown().await;
/// # Ok(()) }
/// ```
pub struct HttpReceiver<Svc> {
    parts: otlp_net::server::ReceiverParts<Svc, HttpReceiverConfig>,
    upgrade: Option<(String, Arc<dyn UpgradeHandler>)>,
}

impl<Svc> std::fmt::Debug for HttpReceiver<Svc> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpReceiver")
            .field("parts", &self.parts)
            .field("upgrade", &self.upgrade.as_ref().map(|(path, _)| path))
            .finish()
    }
}

pub(crate) struct Shared<Svc> {
    pub(crate) intake: Intake<Svc, HttpReceiverStats>,
    pub(crate) config: HttpReceiverConfig,
    pub(crate) auth: Option<Arc<dyn Authenticate>>,
    pub(crate) upgrade: Option<(String, Arc<dyn UpgradeHandler>)>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl<Svc> Shared<Svc> {
    fn new(
        receiver: HttpReceiver<Svc>,
        stats: Arc<HttpReceiverStats>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let parts = receiver.parts;
        Self {
            intake: Intake::new(parts.service, parts.config.intake.clone(), stats),
            config: parts.config,
            auth: parts.auth,
            upgrade: receiver.upgrade,
            shutdown,
        }
    }
}

impl<Svc> HttpReceiver<Svc>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    /// A receiver handing every request to `service`, with the default configuration.
    pub fn new(service: Svc) -> Self {
        Self {
            parts: otlp_net::server::ReceiverParts::new(service),
            upgrade: None,
        }
    }

    otlp_net::receiver_builder_methods!(HttpReceiverConfig, RunningHttpReceiver);

    /// Hands HTTP/1.1 `Upgrade` requests for `path` to `handler` (OTLP over WebSocket on the
    /// OTLP/HTTP port). Requests for the path that do not ask for the handler's protocol
    /// get 426 Upgrade Required.
    pub fn with_upgrade(
        mut self,
        path: impl Into<String>,
        handler: Arc<dyn UpgradeHandler>,
    ) -> Self {
        self.upgrade = Some((path.into(), handler));
        self
    }

    /// Serves one connection over `io`, any byte stream (an in-memory pipe, a connection
    /// accepted elsewhere), until it closes: the same request handling as a bound
    /// receiver, without a listener. For embedding, tests and fuzzing.
    pub async fn serve_io<Io>(self, io: Io)
    where
        Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        // The sender stays alive for the connection's life: this connection is only
        // stopped by its peer.
        let (_never, shutdown) = watch::channel(false);
        let stats = Arc::new(HttpReceiverStats::default());
        let shared = Arc::new(Shared::new(self, stats, shutdown.clone()));
        serve_connection(shared, io, shutdown).await;
    }
}

impl<Svc> otlp_net::server::Receiver for HttpReceiver<Svc>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    type Stats = HttpReceiverStats;
    const ALPN: &'static [&'static [u8]] = &[b"h2", b"http/1.1"];

    otlp_net::receiver_settings!();

    fn into_handler(
        self,
        stats: Arc<HttpReceiverStats>,
        shutdown: watch::Receiver<bool>,
    ) -> ConnectionHandler {
        let shared = Arc::new(Shared::new(self, stats, shutdown.clone()));
        ConnectionHandler::new(move |connection| {
            serve_connection(shared.clone(), connection, shutdown.clone())
        })
    }
}

async fn serve_connection<Svc, Io>(
    shared: Arc<Shared<Svc>>,
    io: Io,
    mut shutdown: watch::Receiver<bool>,
) where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(50)
        .max_local_error_reset_streams(256)
        .initial_stream_window_size(2 * 1024 * 1024)
        .initial_connection_window_size(8 * 1024 * 1024)
        .max_frame_size(64 * 1024)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    let handler = shared.clone();
    let upgraded = handler::UpgradedConnection::default();
    let slot = upgraded.clone();
    let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
        let shared = handler.clone();
        request.extensions_mut().insert(slot.clone());
        async move { Ok::<_, Infallible>(handler::handle(&shared, request).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stopped(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
    // An upgraded connection goes on in this task, so the listener's stop waits for it
    // (within its deadline) and drops it with the rest when that passes.
    if let Some(serving) = upgraded.take() {
        serving.await;
    }
}

/// A receiver serving in the background (see [`otlp_net::server::Running`]).
pub type RunningHttpReceiver = otlp_net::server::Running<HttpReceiverStats>;
