//! The exporter: pooled connections (HTTP/1.1, or HTTP/2 by ALPN or prior knowledge), any
//! codec and compression, and answers read into the OTLP retry classes.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use otlp_codec::{CodecSet, CodecSignal, OtlpCodec};
use otlp_compression::Compression;
use otlp_core::{
    AnyExportRequest, BoxExportFuture, ErrorKind, ExportError, ExportOutcome, ExportRequest, Logs,
    Metrics, SignalKind, Traces,
};
use tower_service::Service;

use crate::status_body::{decode_status, parse_retry_after};

/// How an exporter connects and sends.
#[derive(Clone)]
pub struct HttpExporterConfig {
    /// Base URL (`http://host:4318`); each signal's path (`v1/traces`, ...) is appended, as
    /// the specification says for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: http::Uri,
    /// Full URLs per signal, overriding the base (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    pub signal_urls: [Option<http::Uri>; 3],
    /// The body format (protobuf by default; JSON, MessagePack, CBOR).
    pub codec: Arc<dyn OtlpCodec>,
    /// Formats accepted in responses (by their content type).
    pub response_codecs: CodecSet,
    /// `Content-Encoding` of requests, `None` for none.
    pub compression: Option<Arc<dyn Compression>>,
    /// Headers sent with every request.
    pub headers: HeaderMap,
    /// Deadline of each request (OTLP's default is 10 s).
    pub timeout: Duration,
    /// Largest response body read.
    pub max_response_bytes: usize,
    /// Speak HTTP/2 without TLS (h2c by prior knowledge) instead of HTTP/1.1.
    pub http2_prior_knowledge: bool,
    /// Idle pooled connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// TLS settings for `https` endpoints; `None`: the system's trust roots.
    #[cfg(feature = "tls")]
    pub tls: Option<otlp_net::tls::ClientTls>,
}

impl std::fmt::Debug for HttpExporterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExporterConfig")
            .field("endpoint", &self.endpoint)
            .field("codec", &self.codec.name())
            .field(
                "compression",
                &self.compression.as_ref().map(|c| c.name().to_string()),
            )
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn config_error(message: String) -> ExportError {
    ExportError::new(ErrorKind::FailedPrecondition, message)
}

impl HttpExporterConfig {
    /// Defaults for the base URL `endpoint`: protobuf, no compression, 10 s deadline.
    pub fn new(endpoint: &str) -> Result<Self, ExportError> {
        let endpoint: http::Uri = endpoint
            .parse()
            .map_err(|e| config_error(format!("invalid endpoint {endpoint:?}: {e}")))?;
        if endpoint.host().is_none() {
            return Err(config_error("the endpoint has no host".into()));
        }
        Ok(Self {
            endpoint,
            signal_urls: [None, None, None],
            codec: Arc::new(otlp_codec::Protobuf::default()),
            response_codecs: CodecSet::with_defaults(),
            compression: None,
            headers: HeaderMap::new(),
            timeout: Duration::from_secs(10),
            max_response_bytes: 4 * 1024 * 1024,
            http2_prior_knowledge: false,
            pool_max_idle_per_host: 32,
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// Sends bodies in `codec`'s format.
    pub fn with_codec(mut self, codec: impl OtlpCodec) -> Self {
        self.codec = Arc::new(codec);
        self
    }

    /// Compresses bodies with `algorithm`.
    pub fn with_compression(mut self, algorithm: impl Compression) -> Self {
        self.compression = Some(Arc::new(algorithm));
        self
    }

    /// Adds a header sent with every request.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the per-request deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Uses TLS with these settings.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: otlp_net::tls::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The URL a signal is posted to.
    pub fn url(&self, signal: SignalKind) -> http::Uri {
        let index = SignalKind::ALL
            .iter()
            .position(|s| *s == signal)
            .unwrap_or(0);
        if let Some(url) = &self.signal_urls[index] {
            return url.clone();
        }
        let base = self.endpoint.to_string();
        let joined = format!(
            "{}/{}",
            base.trim_end_matches('/'),
            signal.http_path().trim_start_matches('/')
        );
        joined.parse().unwrap_or_else(|_| self.endpoint.clone())
    }
}

#[derive(Clone)]
enum HttpClient {
    Plain(Client<HttpConnector, Full<Bytes>>),
    #[cfg(feature = "tls")]
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
}

/// An OTLP/HTTP exporter: an [`ExportService`](otlp_core::ExportService) for every signal
/// (and for [`AnyExportRequest`]). Clones share the connection pool.
#[derive(Clone)]
pub struct HttpExporter {
    client: HttpClient,
    config: Arc<HttpExporterConfig>,
}

impl std::fmt::Debug for HttpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExporter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpExporter {
    /// An exporter for `config`; connections are opened on demand and pooled.
    pub fn new(config: HttpExporterConfig) -> Result<Self, ExportError> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .http2_only(config.http2_prior_knowledge)
            .http2_initial_stream_window_size(2 * 1024 * 1024)
            .http2_initial_connection_window_size(8 * 1024 * 1024);
        // An https URL, the base or any signal's, is only ever reached over TLS: with the
        // configured CA, else the system's trust roots. The plain client below is built
        // only when no URL is https, so headers never leave in plaintext for one.
        let any_https = std::iter::once(&config.endpoint)
            .chain(config.signal_urls.iter().flatten())
            .any(|url| url.scheme_str() == Some("https"));
        #[cfg(feature = "tls")]
        let system_roots = match (&config.tls, any_https) {
            (None, true) => Some(otlp_net::tls::ClientTls::system_roots()?),
            _ => None,
        };
        #[cfg(feature = "tls")]
        if let Some(tls) = config.tls.as_ref().or(system_roots.as_ref()) {
            // hyper-rustls sets ALPN itself (h2, http/1.1) from the enabled versions.
            let rustls = tls.rustls_config(&[])?;
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*rustls).clone())
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .wrap_connector(connector);
            return Ok(Self {
                client: HttpClient::Tls(builder.build(https)),
                config: Arc::new(config),
            });
        }
        if any_https {
            return Err(config_error(
                "an https endpoint needs the `tls` feature of otlp-http".into(),
            ));
        }
        Ok(Self {
            client: HttpClient::Plain(builder.build(connector)),
            config: Arc::new(config),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HttpExporterConfig {
        &self.config
    }

    /// Sends one request.
    pub async fn export<S: CodecSignal>(
        &self,
        request: &ExportRequest<S>,
    ) -> Result<ExportOutcome, ExportError> {
        let config = &self.config;
        let items = request.item_count();
        let body = if config.codec.is_protobuf() {
            request.to_protobuf()
        } else {
            let message = request.message()?;
            let mut out = Vec::new();
            S::encode_request(config.codec.as_ref(), &message, &mut out)
                .map_err(|e| ExportError::codec(e.to_string()))?;
            Bytes::from(out)
        };
        let compression = config
            .compression
            .as_ref()
            .filter(|_| request.compression_allowed());
        let body = match compression {
            Some(algorithm) => {
                let mut out = Vec::with_capacity(body.len() / 4);
                algorithm.compress(&body, &mut out)?;
                Bytes::from(out)
            }
            None => body,
        };
        let mut http_request = Request::new(Full::new(body));
        *http_request.method_mut() = http::Method::POST;
        *http_request.uri_mut() = config.url(S::KIND);
        let headers = http_request.headers_mut();
        headers.clone_from(&config.headers);
        if let Ok(value) = HeaderValue::from_str(config.codec.content_type()) {
            headers.insert(header::CONTENT_TYPE, value);
        }
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("otlp-transport/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some(algorithm) = compression
            && let Some(name) = algorithm.http_name()
            && let Ok(value) = HeaderValue::from_str(name)
        {
            headers.insert(header::CONTENT_ENCODING, value);
        }
        let deadline = config.timeout;
        match tokio::time::timeout(deadline, self.send::<S>(http_request, items)).await {
            Ok(result) => result,
            Err(_) => Err(ExportError::timeout(format!(
                "no answer within the deadline of {deadline:?}"
            ))),
        }
    }

    async fn send<S: CodecSignal>(
        &self,
        request: Request<Full<Bytes>>,
        items: usize,
    ) -> Result<ExportOutcome, ExportError> {
        let response = match &self.client {
            HttpClient::Plain(client) => client.request(request).await,
            #[cfg(feature = "tls")]
            HttpClient::Tls(client) => client.request(request).await,
        }
        .map_err(|e| ExportError::unavailable(format!("the request failed: {e}")).with_source(e))?;
        let (parts, body) = response.into_parts();
        let limit = self.config.max_response_bytes;
        let body = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| ExportError::unavailable(format!("the response could not be read: {e}")))?
            .to_bytes();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let status = parts.status.as_u16();
        if parts.status.is_success() {
            if body.is_empty() {
                return Ok(ExportOutcome::success(items));
            }
            let codec = content_type
                .and_then(|t| self.config.response_codecs.by_content_type(t))
                .unwrap_or(&self.config.codec);
            // The data was accepted; an unreadable answer loses only the partial-success
            // detail, so it is reported as full success rather than as a failure to resend.
            return Ok(match S::decode_response(codec.as_ref(), body) {
                Ok(response) => ExportOutcome::from_response(items, &response),
                Err(_) => ExportOutcome::success(items),
            });
        }
        let retry_after = parts
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let (message, detail_delay) = decode_status(&body, content_type)
            .unwrap_or_else(|| (format!("HTTP status {status}"), None));
        Err(ExportError::from_http(
            status,
            retry_after.or(detail_delay),
            message,
        ))
    }
}

impl<S: CodecSignal> Service<ExportRequest<S>> for HttpExporter {
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ExportRequest<S>) -> Self::Future {
        let exporter = self.clone();
        Box::pin(async move { exporter.export(&request).await })
    }
}

impl Service<AnyExportRequest> for HttpExporter {
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: AnyExportRequest) -> Self::Future {
        let exporter = self.clone();
        Box::pin(async move {
            match request {
                AnyExportRequest::Traces(r) => exporter.export::<Traces>(&r).await,
                AnyExportRequest::Metrics(r) => exporter.export::<Metrics>(&r).await,
                AnyExportRequest::Logs(r) => exporter.export::<Logs>(&r).await,
            }
        })
    }
}
