//! The receiver: WebSocket handshakes checked (path, origin, auth, subprotocol), then
//! batches read, processed a bounded number at a time, and acknowledged as they complete.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use http::{HeaderValue, StatusCode, header};
use otlp_core::AnyExportService;
use otlp_model::stream::StreamAck;
use otlp_net::auth::Authenticate;
use otlp_net::intake::{Intake, IntakeConfig};
use otlp_net::listener::{Connection, ListenerLimits};
use otlp_net::server::ConnectionHandler;
use otlp_net::stream_server::{ReceiveLink, StreamServerConfig, serve_stream};
use otlp_net::upgrade::{Refusal, UpgradeHandler, UpgradedIo};
use otlp_stream::{DedupWindow, Ending, SessionConfig, completed};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::wire::Encoding;

/// How the receiver behaves; every field has a production default.
#[derive(Debug, Clone)]
pub struct WsReceiverConfig {
    /// The handshake path (default `/v1/stream`).
    pub path: String,
    /// What every receiver shares: the size limits (a message as sent, close 1009
    /// beyond; a message after decompression, a too-large acknowledgement), compression
    /// algorithms offered through subprotocols, validate or decode, the memory budget.
    /// Forwarded headers are not used: a batch has no headers of its own.
    pub intake: IntakeConfig,
    /// Largest WebSocket frame as sent (close 1009 beyond).
    pub max_frame_bytes: usize,
    /// Ping interval.
    pub ping_interval: Duration,
    /// No batch received and no acknowledgement written for this long, with no batch in
    /// progress, closes the connection (4000, counted in `streams.idle`); pings and pongs
    /// do not count. Also the longest one write (an acknowledgement, a ping) may block.
    pub idle_timeout: Duration,
    /// Batches of one connection processed at once.
    pub concurrency: usize,
    /// Browser origins allowed to connect (`"*"`: any). A handshake that carries an
    /// `Origin` not listed is refused with 403, so the default (empty) admits no browser
    /// page; clients that send no `Origin` (SDKs, agents) are always admitted.
    pub allowed_origins: Vec<String>,
    /// Connections and TLS handshake deadline.
    pub listener: ListenerLimits,
    /// Batch ids remembered to recognise resends.
    pub dedup_capacity: usize,
}

impl Default for WsReceiverConfig {
    fn default() -> Self {
        Self {
            path: "/v1/stream".to_string(),
            intake: IntakeConfig::default(),
            max_frame_bytes: 16 << 20,
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            concurrency: 32,
            allowed_origins: Vec::new(),
            listener: ListenerLimits::default(),
            dedup_capacity: 65_536,
        }
    }
}

/// Counters of a WebSocket receiver: [`ReceiverStats`](otlp_net::intake::ReceiverStats),
/// the shape every receiver shares. A batch is a request; a connection is a stream
/// (`streams.refused_opens` counts refused handshakes).
pub type WsReceiverStats = otlp_net::intake::ReceiverStats;

/// An OTLP/WebSocket receiver.
pub struct WsReceiver<Svc> {
    parts: otlp_net::server::ReceiverParts<Svc, WsReceiverConfig>,
}

impl<Svc> std::fmt::Debug for WsReceiver<Svc> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WsReceiver").field(&self.parts).finish()
    }
}

struct Shared<Svc> {
    intake: Intake<Svc, WsReceiverStats>,
    config: WsReceiverConfig,
    auth: Option<Arc<dyn Authenticate>>,
    dedup: Mutex<DedupWindow>,
}

impl<Svc> Shared<Svc> {
    fn new(receiver: WsReceiver<Svc>, stats: Arc<WsReceiverStats>) -> Self {
        let parts = receiver.parts;
        Self {
            dedup: Mutex::new(DedupWindow::new(parts.config.dedup_capacity)),
            intake: Intake::new(parts.service, parts.config.intake.clone(), stats),
            config: parts.config,
            auth: parts.auth,
        }
    }

    fn stats(&self) -> &WsReceiverStats {
        self.intake.stats()
    }
}

impl<Svc> WsReceiver<Svc>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    /// A receiver handing every batch to `service`.
    pub fn new(service: Svc) -> Self {
        Self {
            parts: otlp_net::server::ReceiverParts::new(service),
        }
    }

    otlp_net::receiver_builder_methods!(WsReceiverConfig, RunningWsReceiver);
}

impl<Svc> otlp_net::server::Receiver for WsReceiver<Svc>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    type Stats = WsReceiverStats;
    const ALPN: &'static [&'static [u8]] = &[b"http/1.1"];

    otlp_net::receiver_settings!();

    fn into_handler(
        self,
        stats: Arc<WsReceiverStats>,
        shutdown: watch::Receiver<bool>,
    ) -> ConnectionHandler {
        let shared = Arc::new(Shared::new(self, stats));
        ConnectionHandler::new(move |connection| {
            serve_connection(shared.clone(), connection, shutdown.clone())
        })
    }
}

impl<Svc> WsReceiver<Svc>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    /// The receiver as the handler of an HTTP receiver's upgrade path, so OTLP over
    /// WebSocket shares the OTLP/HTTP port (`otlp_http::HttpReceiver::with_upgrade`); with
    /// its counters. The configured `path` should be the path it is mounted on. The HTTP
    /// receiver's listener limits and shutdown then apply.
    pub fn into_upgrade_handler(self) -> (Arc<dyn UpgradeHandler>, Arc<WsReceiverStats>) {
        let stats = Arc::new(WsReceiverStats::default());
        let shared = Arc::new(Shared::new(self, stats.clone()));
        (Arc::new(WsUpgrade { shared }), stats)
    }
}

struct WsUpgrade<Svc> {
    shared: Arc<Shared<Svc>>,
}

impl<Svc> UpgradeHandler for WsUpgrade<Svc>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    fn protocol(&self) -> &str {
        "websocket"
    }

    fn accept(&self, parts: &http::request::Parts) -> Result<http::HeaderMap, Refusal> {
        let refused = |status: StatusCode, message: String| {
            self.shared
                .stats()
                .streams
                .refused_opens
                .fetch_add(1, Ordering::Relaxed);
            Refusal { status, message }
        };
        // Upgraded connections leave the HTTP listener's count, so the connection limit is
        // kept here (handshakes in flight may pass it by their number).
        let open = self.shared.stats().streams.open.load(Ordering::Relaxed);
        if open >= self.shared.config.listener.max_connections as u64 {
            return Err(refused(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{open} WebSocket connections are open, the most this receiver serves"),
            ));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13"))
        {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Version must be 13".into(),
            ));
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Key is missing".into(),
            ));
        };
        let mut request = Request::new(());
        *request.uri_mut() = parts.uri.clone();
        *request.headers_mut() = parts.headers.clone();
        let (response, _) =
            check_handshake(&self.shared, &request, Response::new(())).map_err(|refusal| {
                refused(refusal.status(), refusal.body().clone().unwrap_or_default())
            })?;
        let mut headers = response.into_parts().0.headers;
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        Ok(headers)
    }

    fn serve(
        &self,
        io: Box<dyn UpgradedIo>,
        parts: http::request::Parts,
        shutdown: watch::Receiver<bool>,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            let offered = parts
                .headers
                .get(header::SEC_WEBSOCKET_PROTOCOL)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // `accept` chose from the same header, so this finds the same encoding.
            let Some(encoding) = Encoding::choose(offered, &shared.config.intake.compression)
            else {
                return;
            };
            let ws_config = WebSocketConfig::default()
                .max_message_size(Some(shared.config.intake.max_sent_bytes))
                .max_frame_size(Some(shared.config.max_frame_bytes));
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                io,
                Role::Server,
                Some(ws_config),
            )
            .await;
            let metadata = shared.intake.metadata(&parts.headers);
            serve_socket(shared, ws, (encoding, metadata), shutdown).await;
        })
    }
}

fn refusal(status: StatusCode, message: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(message.to_string()));
    *response.status_mut() = status;
    response
}

/// The handshake checks, in order: path, origin, authentication, subprotocol.
// The error type is tungstenite's handshake refusal, which the callback must return.
#[allow(clippy::result_large_err)]
fn check_handshake<Svc>(
    shared: &Shared<Svc>,
    request: &Request,
    mut response: Response,
) -> Result<(Response, Encoding), ErrorResponse> {
    let config = &shared.config;
    if request.uri().path() != config.path {
        return Err(refusal(StatusCode::NOT_FOUND, "no WebSocket endpoint here"));
    }
    // A browser always sends its page's origin; a page of any site could otherwise make
    // its visitors' browsers send telemetry here (cross-site WebSocket hijacking). Clients
    // that are not browsers send no Origin and are not affected.
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !config.allowed_origins.iter().any(|allowed| {
            allowed == "*" || origin.as_bytes().eq_ignore_ascii_case(allowed.as_bytes())
        })
    {
        return Err(refusal(StatusCode::FORBIDDEN, "origin not allowed"));
    }
    if let Some(auth) = &shared.auth {
        let mut parts = http::Request::new(());
        *parts.uri_mut() = request.uri().clone();
        *parts.headers_mut() = request.headers().clone();
        let (parts, ()) = parts.into_parts();
        if let Err(error) = auth.authenticate(&parts) {
            let status =
                StatusCode::from_u16(error.http_status().0).unwrap_or(StatusCode::UNAUTHORIZED);
            return Err(refusal(status, error.message()));
        }
    }
    let offered = request
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(encoding) = Encoding::choose(offered, &config.intake.compression) else {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "no supported subprotocol offered",
        ));
    };
    if let Ok(value) = HeaderValue::from_str(&encoding.subprotocol()) {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    Ok((response, encoding))
}

fn close(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }))
}

// The handshake callback returns tungstenite's (large) refusal type.
#[allow(clippy::result_large_err)]
async fn serve_connection<Svc>(
    shared: Arc<Shared<Svc>>,
    io: Connection,
    shutdown: watch::Receiver<bool>,
) where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let config = &shared.config;
    // The encoding the handshake chose, and the metadata it carried for every batch.
    let chosen: Arc<Mutex<Option<(Encoding, http::HeaderMap)>>> = Arc::default();
    let slot = chosen.clone();
    let checker = shared.clone();
    let callback = move |request: &Request, response: Response| {
        let (response, encoding) = check_handshake(&checker, request, response)?;
        if let Ok(mut slot) = slot.lock() {
            *slot = Some((encoding, checker.intake.metadata(request.headers())));
        }
        Ok(response)
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.intake.max_sent_bytes))
        .max_frame_size(Some(config.max_frame_bytes));
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(io, callback, Some(ws_config));
    let Ok(Ok(ws)) = tokio::time::timeout(config.listener.handshake_timeout, handshake).await
    else {
        shared
            .stats()
            .streams
            .refused_opens
            .fetch_add(1, Ordering::Relaxed);
        return;
    };
    let Some(stream) = chosen.lock().ok().and_then(|mut c| c.take()) else {
        return;
    };
    serve_socket(shared, ws, stream, shutdown).await;
}

/// Longest the closing handshake may take before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves an open WebSocket with the one stream driver: batches read and processed a
/// bounded number at a time, each answered with its acknowledgement, pings at the ping
/// interval, and a close code that says why it ended.
async fn serve_socket<Svc, Io>(
    shared: Arc<Shared<Svc>>,
    ws: tokio_tungstenite::WebSocketStream<Io>,
    (encoding, metadata): (Encoding, http::HeaderMap),
    shutdown: watch::Receiver<bool>,
) where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    use futures_util::StreamExt;
    let config = &shared.config;
    let (sink, stream) = ws.split();
    let link = SocketLink {
        sink,
        stream,
        encoding: encoding.clone(),
    };
    let driver = StreamServerConfig {
        session: SessionConfig {
            concurrency: config.concurrency,
            idle_timeout: Some(config.idle_timeout),
            keepalive: Some(config.ping_interval),
        },
        // A peer that stops reading its acknowledgements cannot hold the connection.
        write_timeout: config.idle_timeout,
    };
    let metadata = Arc::new(metadata);
    let process = |message| receive(shared.clone(), encoding.clone(), metadata.clone(), message);
    serve_stream(link, driver, &shared.stats().streams, shutdown, process).await;
}

/// An open WebSocket as a [`ReceiveLink`]: data messages in (pings are answered by the
/// library and, like pongs, are not batches), acknowledgements and pings out, a close
/// frame at the end.
struct SocketLink<Io> {
    sink: SplitSink<tokio_tungstenite::WebSocketStream<Io>, Message>,
    stream: SplitStream<tokio_tungstenite::WebSocketStream<Io>>,
    encoding: Encoding,
}

impl<Io> ReceiveLink for SocketLink<Io>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    type Message = Message;
    type Fatal = Message;

    async fn receive(&mut self) -> Result<Option<Message>, Message> {
        use futures_util::StreamExt;
        loop {
            match self.stream.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                    return Err(close(CloseCode::Size, "message too big"));
                }
                Some(Err(_)) => return Err(close(CloseCode::Protocol, "protocol error")),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(message)) => return Ok(Some(message)),
            }
        }
    }

    async fn send_ack(&mut self, ack: &StreamAck) -> bool {
        use futures_util::SinkExt;
        self.sink.send(self.encoding.ack_message(ack)).await.is_ok()
    }

    async fn send_keepalive(&mut self) -> bool {
        use futures_util::SinkExt;
        self.sink
            .send(Message::Ping(Default::default()))
            .await
            .is_ok()
    }

    async fn finish(&mut self, ending: Ending<Message>) -> bool {
        use futures_util::SinkExt;
        let message = match ending {
            Ending::Finished => close(CloseCode::Normal, "done"),
            Ending::Idle(_) => close(CloseCode::from(4000), "idle"),
            Ending::ShuttingDown => close(CloseCode::Away, "the receiver is shutting down"),
            Ending::Failed(message) => message,
        };
        let closing = async {
            let _ = self.sink.send(message).await;
            let _ = self.sink.close().await;
        };
        // The closing handshake is a courtesy: a peer that does not finish it is dropped.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
        true
    }

    fn internal_error(reason: &'static str) -> Message {
        close(CloseCode::Error, reason)
    }
}

/// The batch number of a protobuf message, when it can be read without decoding it (JSON
/// messages are not looked into before they fit).
fn peek_message_sequence(message: &Message) -> Option<u64> {
    match message {
        Message::Binary(bytes) => otlp_stream::envelope::peek_sequence(bytes),
        _ => None,
    }
}

/// One received message: its acknowledgement, or the close message that ends the
/// connection when the message names no batch to refuse.
async fn receive<Svc>(
    shared: Arc<Shared<Svc>>,
    encoding: Encoding,
    metadata: Arc<http::HeaderMap>,
    message: Message,
) -> Result<StreamAck, Message>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let intake = &shared.intake;
    // The message is counted against the memory budget as soon as it is read (the
    // WebSocket library holds at most one per connection while reading it); a batch that
    // does not fit is refused retryably, under its own number when it can be read.
    let mut admission = intake.admission();
    if let Err(error) = admission.cover(message.len()) {
        let error = intake.refused(error);
        return match peek_message_sequence(&message) {
            Some(sequence) => Ok(completed(sequence, &Err(error))),
            None => Err(close(CloseCode::Again, error.message())),
        };
    }
    // The intake counts its refusals.
    match encoding.read_batch(message, intake, &mut admission) {
        Ok(batch) => Ok(intake
            .deliver_batch(&shared.dedup, batch, admission, &metadata)
            .await),
        Err((Some(sequence), error)) => Ok(completed(sequence, &Err(error))),
        Err((None, error)) => {
            let code = match error.kind() {
                otlp_core::ErrorKind::TooLarge => CloseCode::Size,
                otlp_core::ErrorKind::UnsupportedMediaType => CloseCode::Unsupported,
                _ => CloseCode::Invalid,
            };
            Err(close(code, error.message()))
        }
    }
}

/// A receiver serving in the background (see [`otlp_net::server::Running`]).
pub type RunningWsReceiver = otlp_net::server::Running<WsReceiverStats>;
