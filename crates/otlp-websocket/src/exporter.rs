//! The exporter: numbered batches on one WebSocket within a window of unacknowledged ones
//! (the sans-IO `otlp_stream::Sender`), reconnection with backoff, and exactly the
//! unacknowledged batches sent again after a broken connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, header};
use otlp_core::{
    AnyExportRequest, BoxExportFuture, ErrorKind, ExportError, ExportOutcome, ExportRequest,
    RetryClass, Signal,
};
use otlp_net::upgrade::UpgradedIo;
use otlp_stream::envelope::{BatchIds, with_id};
use otlp_stream::{AckEvent, Sender, SenderConfig};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tower_service::Service;

use crate::wire::Encoding;

/// How a WebSocket exporter connects and sends.
#[derive(Debug, Clone)]
pub struct WsExporterConfig {
    /// `ws://host:port/v1/stream`.
    pub url: String,
    /// The subprotocol: protobuf (optionally compressed) or JSON.
    pub encoding: Encoding,
    /// Headers of the handshake (for example `authorization`).
    pub headers: HeaderMap,
    /// Window and resend policy.
    pub sender: SenderConfig,
    /// First wait before reconnecting.
    pub reconnect_initial: Duration,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// Longest a connection attempt (TCP, TLS and handshake) may take.
    pub connect_timeout: Duration,
    /// Longest one call waits, for room in the window and then for its acknowledgement
    /// (past it the call fails as a retryable timeout; the batch may still be delivered
    /// later), and longest a write to the socket may block before the connection is
    /// taken for broken and reopened. A silent upstream cannot hold every caller.
    pub call_timeout: Duration,
    /// TLS settings for `wss://` URLs (trusted CAs, client certificate).
    #[cfg(feature = "tls")]
    pub tls: Option<otlp_net::tls::ClientTls>,
}

impl WsExporterConfig {
    /// Protobuf, window 64, reconnecting from 50 ms up to 5 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            encoding: Encoding::Protobuf(None),
            headers: HeaderMap::new(),
            sender: SenderConfig::default(),
            reconnect_initial: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Speaks `encoding`.
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Uses `tls` for `wss://` URLs.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: otlp_net::tls::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// Counters of a [`WsExporter`].
#[derive(Debug, Default)]
pub struct WsExporterStats {
    /// Batches written the first time.
    pub batches_sent: AtomicU64,
    /// Batches written again.
    pub batches_resent: AtomicU64,
    /// Batches acknowledged as delivered.
    pub batches_delivered: AtomicU64,
    /// Batches refused for good.
    pub batches_failed: AtomicU64,
    /// Connections opened after the first.
    pub reconnects: AtomicU64,
}

type Reply = oneshot::Sender<Result<ExportOutcome, ExportError>>;

/// An OTLP/WebSocket exporter, an [`ExportService`](otlp_core::ExportService) for every
/// signal: each call resolves when its batch is acknowledged or refused for good.
#[derive(Debug, Clone)]
pub struct WsExporter {
    commands: mpsc::Sender<(AnyExportRequest, Reply)>,
    stats: Arc<WsExporterStats>,
    call_timeout: Duration,
}

impl WsExporter {
    /// Starts the connection driver; it connects on the first batch.
    pub fn new(config: WsExporterConfig) -> Self {
        let (commands, receiver) = mpsc::channel(config.sender.window.max(1));
        let stats = Arc::new(WsExporterStats::default());
        let call_timeout = config.call_timeout;
        let driver = Driver {
            sender: Sender::new(config.sender),
            replies: HashMap::new(),
            config,
            stats: stats.clone(),
            commands: receiver,
            closed: false,
            sent_sizes: HashMap::new(),
            epoch: Instant::now(),
            ids: BatchIds::new(),
        };
        tokio::spawn(driver.run());
        Self {
            commands,
            stats,
            call_timeout,
        }
    }

    /// Its counters.
    pub fn stats(&self) -> &WsExporterStats {
        &self.stats
    }

    /// Sends one request and waits for its acknowledgement.
    pub async fn export(&self, request: AnyExportRequest) -> Result<ExportOutcome, ExportError> {
        let stopped = || ExportError::new(ErrorKind::Cancelled, "the WebSocket exporter stopped");
        let call = async {
            let (reply, answer) = oneshot::channel();
            self.commands
                .send((request, reply))
                .await
                .map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        };
        tokio::time::timeout(self.call_timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(ExportError::timeout(
                    "no acknowledgement over the WebSocket within the call timeout",
                ))
            })
    }
}

impl<S: Signal> Service<ExportRequest<S>> for WsExporter
where
    AnyExportRequest: From<ExportRequest<S>>,
{
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ExportRequest<S>) -> Self::Future {
        let exporter = self.clone();
        Box::pin(async move { exporter.export(request.into()).await })
    }
}

type Socket = WebSocketStream<Box<dyn UpgradedIo>>;

struct Driver {
    sender: Sender<AnyExportRequest>,
    replies: HashMap<u64, Reply>,
    config: WsExporterConfig,
    stats: Arc<WsExporterStats>,
    commands: mpsc::Receiver<(AnyExportRequest, Reply)>,
    closed: bool,
    epoch: Instant,
    ids: BatchIds,
    /// The message size of each batch written and not yet answered, so that a close for a
    /// message too big (1009) can be pinned on the largest of them.
    sent_sizes: HashMap<u64, usize>,
}

/// How a connection ended.
enum Outcome {
    Finished,
    Broken,
    /// The server refused the handshake for a reason a retry cannot fix.
    Refused(ExportError),
    /// The server closed the stream because a message exceeded its limit (1009).
    TooLarge,
}

impl Driver {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    async fn run(mut self) {
        let mut pause = self.config.reconnect_initial;
        let mut first = true;
        loop {
            if self.sender.outstanding() == 0 {
                match self.commands.recv().await {
                    Some((request, reply)) => self.offer(request, reply),
                    None => return,
                }
            }
            if !first {
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            match self.connection().await {
                Outcome::Finished => return,
                Outcome::Refused(error) => self.fail_all(&error),
                Outcome::TooLarge => self.fail_largest_sent(),
                Outcome::Broken => {}
            }
            self.sender.handle_disconnect();
            tokio::time::sleep(pause).await;
            pause = if self.sender.outstanding() == 0 {
                self.config.reconnect_initial
            } else {
                (pause * 2).min(self.config.reconnect_max)
            };
        }
    }

    fn offer(&mut self, request: AnyExportRequest, reply: Reply) {
        let request = with_id(request, self.ids.next());
        let items = request.item_count();
        match self.sender.offer(request, items) {
            Ok(sequence) => {
                self.replies.insert(sequence, reply);
            }
            Err(_) => {
                let _ = reply.send(Err(ExportError::unavailable("window full")));
            }
        }
    }

    /// Every outstanding batch fails with `error` (the server refuses us for good).
    fn fail_all(&mut self, error: &ExportError) {
        self.sender.handle_disconnect();
        self.sender.handle_connect();
        while let Some(transmit) = self.sender.poll_transmit(Duration::MAX) {
            let ack = otlp_stream::completed(
                transmit.sequence,
                &Err(ExportError::new(error.kind(), error.message().to_string())),
            );
            let event = self.sender.handle_ack(&ack, Duration::MAX);
            self.apply(event);
        }
    }

    /// The peer closed with 1009 without saying which message was too big (it could not
    /// read it): the largest batch in flight is failed as too large — permanent as it is, so
    /// a retry layer splits it — and the others are resent. Were the guess wrong, the
    /// refused batch is split and delivered all the same, and the next 1009 names the next.
    fn fail_largest_sent(&mut self) {
        let Some((&sequence, &size)) = self.sent_sizes.iter().max_by_key(|(_, size)| **size) else {
            return;
        };
        let error = ExportError::too_large(format!(
            "the peer closed the stream for a message too big (1009); the largest batch in \
             flight, of {size} bytes, is refused as too large"
        ));
        let ack = otlp_stream::completed(sequence, &Err(error));
        let event = self.sender.handle_ack(&ack, self.now());
        self.apply(event);
    }

    fn apply(&mut self, event: AckEvent) {
        let (sequence, result, counter) = match event {
            AckEvent::Delivered { sequence, outcome } => {
                (sequence, Ok(outcome), &self.stats.batches_delivered)
            }
            AckEvent::Failed {
                sequence, error, ..
            } => (sequence, Err(error), &self.stats.batches_failed),
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.sent_sizes.remove(&sequence);
        if let Some(reply) = self.replies.remove(&sequence) {
            let _ = reply.send(result);
        }
    }

    async fn connect(&self) -> Result<Socket, Outcome> {
        let mut request = self
            .config
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| {
                Outcome::Refused(ExportError::new(
                    ErrorKind::FailedPrecondition,
                    e.to_string(),
                ))
            })?;
        request.headers_mut().extend(self.config.headers.clone());
        if let Ok(value) = HeaderValue::from_str(&self.config.encoding.subprotocol()) {
            request
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        let connecting = async {
            let stream = self.open_stream(request.uri()).await?;
            tokio_tungstenite::client_async(request, stream)
                .await
                .map_err(handshake_outcome)
        };
        match tokio::time::timeout(self.config.connect_timeout, connecting).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(outcome)) => Err(outcome),
            Err(_) => Err(Outcome::Broken),
        }
    }

    /// TCP to the URL's host, then TLS for `wss://`. A connection that fails is retried
    /// (`Broken`); TLS settings that cannot work are refused for good.
    async fn open_stream(&self, uri: &http::Uri) -> Result<Box<dyn UpgradedIo>, Outcome> {
        let secure = uri.scheme_str() == Some("wss");
        let host = uri.host().unwrap_or("localhost");
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        // Brackets of an IPv6 literal are not part of the address.
        let address = (host.trim_start_matches('[').trim_end_matches(']'), port);
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|_| Outcome::Broken)?;
        let _ = tcp.set_nodelay(true);
        if !secure {
            return Ok(Box::new(tcp));
        }
        #[cfg(feature = "tls")]
        {
            // No CA configured: the system's trust roots.
            let tls = match self.config.tls.clone() {
                Some(tls) => tls,
                None => otlp_net::tls::ClientTls::system_roots().map_err(Outcome::Refused)?,
            };
            let config = tls
                .rustls_config(&[b"http/1.1"])
                .map_err(Outcome::Refused)?;
            let name = tls.server_name(host).map_err(Outcome::Refused)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|_| Outcome::Broken)?;
            Ok(Box::new(stream))
        }
        #[cfg(not(feature = "tls"))]
        Err(Outcome::Refused(ExportError::new(
            ErrorKind::FailedPrecondition,
            "wss:// needs the `tls` feature of otlp-websocket",
        )))
    }
}

/// What a failed handshake means for the batches: a permanent refusal fails them, anything
/// else is retried on a new connection.
fn handshake_outcome(error: tokio_tungstenite::tungstenite::Error) -> Outcome {
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let error = ExportError::from_http(status, None, "the handshake was refused");
            if error.retry_class() == RetryClass::Permanent {
                Outcome::Refused(error)
            } else {
                Outcome::Broken
            }
        }
        _ => Outcome::Broken,
    }
}

impl Driver {
    /// Writes what the sender has due; false when the connection broke or a write blocked
    /// for longer than the call timeout (a peer that stopped reading).
    async fn write_due(&mut self, socket: &mut Socket) -> bool {
        let limit = self.config.call_timeout;
        tokio::time::timeout(limit, self.write_due_now(socket))
            .await
            .unwrap_or(false)
    }

    async fn write_due_now(&mut self, socket: &mut Socket) -> bool {
        while let Some(transmit) = self.sender.poll_transmit(self.now()) {
            let counter = if transmit.resend {
                &self.stats.batches_resent
            } else {
                &self.stats.batches_sent
            };
            counter.fetch_add(1, Ordering::Relaxed);
            match self
                .config
                .encoding
                .batch_message(transmit.sequence, &transmit.payload)
            {
                Ok(message) => {
                    self.sent_sizes.insert(transmit.sequence, message.len());
                    if socket.feed(message).await.is_err() {
                        return false;
                    }
                }
                Err(error) => {
                    let ack = otlp_stream::completed(transmit.sequence, &Err(error));
                    let event = self.sender.handle_ack(&ack, self.now());
                    self.apply(event);
                }
            }
        }
        socket.flush().await.is_ok()
    }

    async fn connection(&mut self) -> Outcome {
        let mut socket = match self.connect().await {
            Ok(socket) => socket,
            Err(outcome) => return outcome,
        };
        self.sender.handle_connect();
        if !self.write_due(&mut socket).await {
            return Outcome::Broken;
        }
        loop {
            if self.closed && self.sender.outstanding() == 0 {
                let _ = socket.close(None).await;
                return Outcome::Finished;
            }
            let wake = self.sender.poll_timeout().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                |at| self.epoch + at,
            );
            let room = self.sender.has_room() && !self.closed;
            tokio::select! {
                command = self.commands.recv(), if room => match command {
                    Some((request, reply)) => self.offer(request, reply),
                    None => self.closed = true,
                },
                message = socket.next() => match message {
                    Some(Ok(message @ (Message::Binary(_) | Message::Text(_)))) => {
                        let Ok(ack) = self.config.encoding.read_ack(message) else {
                            return Outcome::Broken;
                        };
                        let event = self.sender.handle_ack(&ack, self.now());
                        self.apply(event);
                    }
                    Some(Ok(Message::Close(Some(frame)))) if frame.code == CloseCode::Size => {
                        return Outcome::TooLarge;
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Outcome::Broken,
                    Some(Ok(_)) => {}
                },
                () = tokio::time::sleep_until(wake) => {}
            }
            if !self.write_due(&mut socket).await {
                return Outcome::Broken;
            }
        }
    }
}
