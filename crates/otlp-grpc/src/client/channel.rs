//! One HTTP/2 connection to the endpoint, shared by every call and replaced when it breaks.

use std::sync::Mutex;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use otlp_core::{ErrorKind, ExportError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::ExporterConfig;
use crate::body::GrpcBody;

/// HTTP/2 settings of the exporter's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHttp2Settings {
    /// Flow-control window per stream (how much of a response arrives before waiting).
    pub initial_stream_window: u32,
    /// Flow-control window of the connection.
    pub initial_connection_window: u32,
    /// Largest HTTP/2 frame payload accepted.
    pub max_frame_size: u32,
    /// Interval of HTTP/2 pings, `None` for none; a dead peer is noticed this way.
    pub keep_alive_interval: Option<Duration>,
    /// A ping unanswered this long closes the connection.
    pub keep_alive_timeout: Duration,
}

impl Default for ClientHttp2Settings {
    fn default() -> Self {
        Self {
            initial_stream_window: 2 * 1024 * 1024,
            initial_connection_window: 8 * 1024 * 1024,
            max_frame_size: 64 * 1024,
            keep_alive_interval: Some(Duration::from_secs(30)),
            keep_alive_timeout: Duration::from_secs(10),
        }
    }
}

type Sender = http2::SendRequest<GrpcBody>;

/// The connection of one exporter.
pub(crate) struct Channel {
    host: String,
    port: u16,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    settings: ClientHttp2Settings,
    connect_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    current: Mutex<Option<Sender>>,
    /// Held while connecting, so that concurrent calls wait for one connection instead of
    /// each opening their own.
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("authority", &self.authority)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

fn config_error(message: impl Into<String>) -> ExportError {
    ExportError::new(ErrorKind::FailedPrecondition, message.into())
}

impl Channel {
    pub(crate) fn new(config: &ExporterConfig) -> Result<Self, ExportError> {
        let endpoint = &config.endpoint;
        let secure = endpoint.scheme_str() == Some("https");
        let host = endpoint
            .host()
            .ok_or_else(|| config_error("the endpoint has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = endpoint
            .port_u16()
            .unwrap_or(if secure { 443 } else { 4317 });
        let authority = endpoint
            .authority()
            .cloned()
            .ok_or_else(|| config_error("the endpoint has no authority"))?;
        #[cfg(feature = "tls")]
        let tls = match (secure, &config.tls) {
            (false, _) => None,
            (true, Some(tls)) => Some((
                tokio_rustls::TlsConnector::from(tls.rustls_config(&[b"h2"])?),
                tls.server_name(&host)?,
            )),
            // No CA configured: the system's trust roots, never plaintext.
            (true, None) => {
                let tls = crate::tls::ClientTls::system_roots()?;
                Some((
                    tokio_rustls::TlsConnector::from(tls.rustls_config(&[b"h2"])?),
                    tls.server_name(&host)?,
                ))
            }
        };
        #[cfg(not(feature = "tls"))]
        if secure {
            return Err(config_error("https needs the `tls` feature of otlp-grpc"));
        }
        Ok(Self {
            host,
            port,
            scheme: if secure {
                http::uri::Scheme::HTTPS
            } else {
                http::uri::Scheme::HTTP
            },
            authority,
            settings: config.http2,
            connect_timeout: config.connect_timeout,
            #[cfg(feature = "tls")]
            tls,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// The absolute URI of `path` on this endpoint.
    pub(crate) fn uri(&self, path: &str) -> http::Uri {
        http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .unwrap_or_default()
    }

    /// Sends a request on the shared connection, connecting first if there is none.
    pub(crate) async fn send(
        &self,
        request: Request<GrpcBody>,
    ) -> Result<Response<Incoming>, ExportError> {
        let mut sender = self.sender().await?;
        std::future::poll_fn(|cx| sender.poll_ready(cx))
            .await
            .map_err(|e| self.broken(e))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| self.broken(e))
    }

    fn broken(&self, error: hyper::Error) -> ExportError {
        if let Ok(mut current) = self.current.lock()
            && current.as_ref().is_some_and(http2::SendRequest::is_closed)
        {
            *current = None;
        }
        ExportError::unavailable(format!("the connection failed: {error}")).with_source(error)
    }

    fn cached(&self) -> Option<Sender> {
        let current = self.current.lock().ok()?;
        current.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    async fn sender(&self) -> Result<Sender, ExportError> {
        if let Some(sender) = self.cached() {
            return Ok(sender);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(sender) = self.cached() {
            return Ok(sender);
        }
        let sender = tokio::time::timeout(self.connect_timeout, self.connect())
            .await
            .map_err(|_| {
                ExportError::unavailable(format!(
                    "no connection to {} within {:?}",
                    self.authority, self.connect_timeout
                ))
            })??;
        if let Ok(mut current) = self.current.lock() {
            *current = Some(sender.clone());
        }
        Ok(sender)
    }

    async fn connect(&self) -> Result<Sender, ExportError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                ExportError::unavailable(format!("cannot connect to {}: {e}", self.authority))
                    .with_source(e)
            })?;
        let _ = stream.set_nodelay(true);
        #[cfg(feature = "tls")]
        if let Some((connector, name)) = &self.tls {
            let stream = connector.connect(name.clone(), stream).await.map_err(|e| {
                ExportError::unavailable(format!("TLS with {} failed: {e}", self.authority))
                    .with_source(e)
            })?;
            return self.handshake(stream).await;
        }
        self.handshake(stream).await
    }

    async fn handshake<Io>(&self, io: Io) -> Result<Sender, ExportError>
    where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let settings = self.settings;
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .initial_stream_window_size(settings.initial_stream_window)
            .initial_connection_window_size(settings.initial_connection_window)
            .max_frame_size(settings.max_frame_size)
            .keep_alive_interval(settings.keep_alive_interval)
            .keep_alive_timeout(settings.keep_alive_timeout)
            .keep_alive_while_idle(true);
        let (sender, connection) = builder.handshake(TokioIo::new(io)).await.map_err(|e| {
            ExportError::unavailable(format!(
                "HTTP/2 handshake with {} failed: {e}",
                self.authority
            ))
            .with_source(e)
        })?;
        tokio::spawn(async move {
            // Ends when the connection closes; callers see that as failed sends.
            let _ = connection.await;
        });
        Ok(sender)
    }
}
