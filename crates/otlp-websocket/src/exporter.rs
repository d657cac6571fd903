//! The exporter: numbered batches on one WebSocket within a window of unacknowledged ones,
//! reconnection with backoff, and exactly the unacknowledged batches sent again after a
//! broken connection. The driver is `otlp-net`'s ([`otlp_net::stream_client`], shared with
//! the gRPC stream exporter); this module is the WebSocket link under it — connecting
//! (TCP, TLS, the handshake), the subprotocol's messages, and the close codes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, header};
use otlp_core::{AnyExportRequest, ErrorKind, ExportError, RetryClass};
use otlp_model::stream::StreamAck;
use otlp_net::stream_client::{
    LinkEnd, SendError, StreamClient, StreamClientConfig, StreamConnector, StreamLink,
};
use otlp_net::upgrade::UpgradedIo;
use otlp_stream::SenderConfig;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::wire::Encoding;

/// How a WebSocket exporter connects and sends.
#[derive(Debug, Clone)]
pub struct WsExporterConfig {
    /// `ws://host:port/v1/stream`.
    pub url: String,
    /// The subprotocol: protobuf (optionally compressed) or JSON. A compressed one is
    /// offered with plain protobuf after it, which a receiver without the algorithm
    /// chooses, and the exporter then sends uncompressed.
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

/// Counters of a [`WsExporter`]: the stream driver's, the same for every binding
/// (`fell_back_to_unary` stays false: WebSocket has no unary form).
pub type WsExporterStats = otlp_net::stream_client::StreamClientStats;

/// An OTLP/WebSocket exporter, an [`ExportService`](otlp_core::ExportService) for every
/// signal: each call resolves when its batch is acknowledged or refused for good.
#[derive(Debug, Clone)]
pub struct WsExporter(StreamClient);

impl WsExporter {
    /// Starts the connection driver; it connects on the first batch.
    pub fn new(config: WsExporterConfig) -> Self {
        let driver = StreamClientConfig {
            sender: config.sender,
            reconnect_initial: config.reconnect_initial,
            reconnect_max: config.reconnect_max,
            call_timeout: Some(config.call_timeout),
            // A peer that stops reading blocks our writes: past this the connection is
            // taken for broken and reopened.
            write_timeout: Some(config.call_timeout),
        };
        Self(StreamClient::spawn(WsConnector { config }, driver))
    }
}

otlp_net::stream_exporter_handle!(WsExporter, WsExporterStats);

type Socket = WebSocketStream<Box<dyn UpgradedIo>>;

/// Opens one WebSocket per link.
struct WsConnector {
    config: WsExporterConfig,
}

/// One open WebSocket.
struct WsLink {
    socket: Socket,
    encoding: Encoding,
}

impl StreamConnector for WsConnector {
    type Link = WsLink;

    async fn open(&mut self) -> Result<WsLink, LinkEnd> {
        let mut request = self
            .config
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| {
                LinkEnd::Refused(ExportError::new(
                    ErrorKind::FailedPrecondition,
                    e.to_string(),
                ))
            })?;
        request.headers_mut().extend(self.config.headers.clone());
        if let Ok(value) = HeaderValue::from_str(&self.config.encoding.offered()) {
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
            Ok(Ok((socket, response))) => {
                // A receiver without our algorithm chose plain protobuf.
                let chosen = response
                    .headers()
                    .get(header::SEC_WEBSOCKET_PROTOCOL)
                    .and_then(|v| v.to_str().ok());
                Ok(WsLink {
                    socket,
                    encoding: self.config.encoding.as_chosen(chosen),
                })
            }
            Ok(Err(end)) => Err(end),
            Err(_) => Err(LinkEnd::Broken),
        }
    }
}

impl WsConnector {
    /// TCP to the URL's host, then TLS for `wss://`. A connection that fails is retried
    /// (`Broken`); TLS settings that cannot work are refused for good.
    async fn open_stream(&self, uri: &http::Uri) -> Result<Box<dyn UpgradedIo>, LinkEnd> {
        let secure = uri.scheme_str() == Some("wss");
        let host = uri.host().unwrap_or("localhost");
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        // Brackets of an IPv6 literal are not part of the address.
        let address = (host.trim_start_matches('[').trim_end_matches(']'), port);
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|_| LinkEnd::Broken)?;
        let _ = tcp.set_nodelay(true);
        if !secure {
            return Ok(Box::new(tcp));
        }
        #[cfg(feature = "tls")]
        {
            // No CA configured: the system's trust roots.
            let tls = match self.config.tls.clone() {
                Some(tls) => tls,
                None => otlp_net::tls::ClientTls::system_roots().map_err(LinkEnd::Refused)?,
            };
            let config = tls
                .rustls_config(&[b"http/1.1"])
                .map_err(LinkEnd::Refused)?;
            let name = tls.server_name(host).map_err(LinkEnd::Refused)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|_| LinkEnd::Broken)?;
            Ok(Box::new(stream))
        }
        #[cfg(not(feature = "tls"))]
        Err(LinkEnd::Refused(ExportError::new(
            ErrorKind::FailedPrecondition,
            "wss:// needs the `tls` feature of otlp-websocket",
        )))
    }
}

impl StreamLink for WsLink {
    async fn send(&mut self, sequence: u64, batch: &AnyExportRequest) -> Result<usize, SendError> {
        let message = self
            .encoding
            .batch_message(sequence, batch)
            .map_err(SendError::Batch)?;
        let size = message.len();
        self.socket
            .feed(message)
            .await
            .map_err(|_| SendError::Broken)?;
        Ok(size)
    }

    async fn flush(&mut self) -> Result<(), LinkEnd> {
        self.socket.flush().await.map_err(|_| LinkEnd::Broken)
    }

    async fn receive(&mut self) -> Result<StreamAck, LinkEnd> {
        loop {
            match self.socket.next().await {
                Some(Ok(message @ (Message::Binary(_) | Message::Text(_)))) => {
                    return self.encoding.read_ack(message).map_err(|_| LinkEnd::Broken);
                }
                Some(Ok(Message::Close(Some(frame)))) if frame.code == CloseCode::Size => {
                    return Err(LinkEnd::TooLarge);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Err(LinkEnd::Broken),
                // Pings and pongs: the library answers pings itself.
                Some(Ok(_)) => {}
            }
        }
    }

    async fn finish(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// What a failed handshake means for the batches: a permanent refusal fails them, anything
/// else is retried on a new connection.
fn handshake_outcome(error: tokio_tungstenite::tungstenite::Error) -> LinkEnd {
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let error = ExportError::from_http(status, None, "the handshake was refused");
            if error.retry_class() == RetryClass::Permanent {
                LinkEnd::Refused(error)
            } else {
                LinkEnd::Broken
            }
        }
        _ => LinkEnd::Broken,
    }
}
