//! The exporter: one HTTP/2 connection per endpoint, multiplexed across concurrent
//! exports, reconnected when it breaks; unary `Export` calls whose failures carry the
//! OTLP retry classes.

mod channel;
mod staged;
mod stream;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use hyper::body::Incoming;
use otlp_compression::{Compression, CompressionSet};
use otlp_core::{
    AnyExportRequest, BoxExportFuture, ErrorKind, ExportError, ExportOutcome, ExportRequest,
    GrpcCode, Signal,
};
use prost::Message;
use tower_service::Service;

use crate::body::{GrpcBody, next_frame};
use crate::framing::{FrameDecoder, FrameLimits, FramedMessage};
use crate::protocol::{format_grpc_timeout, grpc_code_of_http_status};
use crate::status::error_from_trailers;

pub(crate) use channel::Channel;
pub use channel::ClientHttp2Settings;
pub use staged::StagedExport;
pub use stream::{StreamExporter, StreamExporterConfig, StreamStats};

/// How an exporter connects and calls.
#[derive(Clone)]
pub struct ExporterConfig {
    /// `http://host:port` or `https://host:port` (https needs the `tls` feature; it
    /// trusts [`ExporterConfig::tls`]'s CAs, else the system's).
    pub endpoint: http::Uri,
    /// Metadata sent with every call (for example `authorization`).
    pub headers: HeaderMap,
    /// Deadline of each call, also sent as `grpc-timeout` (OTLP's default is 10 s).
    pub timeout: Duration,
    /// Longest wait for a connection to be established.
    pub connect_timeout: Duration,
    /// The `grpc-encoding` to compress requests with, `None` for none.
    pub compression: Option<Arc<dyn Compression>>,
    /// Encodings accepted in responses.
    pub accept: CompressionSet,
    /// Largest request this exporter will send (its own limit): a larger one fails with a
    /// permanent TooLarge error, which the retry layer answers by splitting.
    pub max_message_bytes: usize,
    /// Largest response message read (decompressed).
    pub max_response_bytes: usize,
    /// HTTP/2 settings of the connection.
    pub http2: ClientHttp2Settings,
    /// TLS settings for `https` endpoints; `None`: the system's trust roots.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::ClientTls>,
}

impl std::fmt::Debug for ExporterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExporterConfig")
            .field("endpoint", &self.endpoint)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field(
                "compression",
                &self.compression.as_ref().map(|c| grpc_name(c.as_ref())),
            )
            .field("max_message_bytes", &self.max_message_bytes)
            .finish_non_exhaustive()
    }
}

impl ExporterConfig {
    /// Defaults for `endpoint`: no compression, 10 s deadline, 64 MiB messages.
    pub fn new(endpoint: &str) -> Result<Self, ExportError> {
        let endpoint: http::Uri = endpoint.parse().map_err(|e| {
            ExportError::new(
                ErrorKind::FailedPrecondition,
                format!("invalid endpoint {endpoint:?}: {e}"),
            )
        })?;
        if endpoint.host().is_none() {
            return Err(ExportError::new(
                ErrorKind::FailedPrecondition,
                "the endpoint has no host",
            ));
        }
        Ok(Self {
            endpoint,
            headers: HeaderMap::new(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            compression: None,
            accept: CompressionSet::with_defaults(),
            max_message_bytes: otlp_compression::DEFAULT_DECOMPRESSED_LIMIT,
            max_response_bytes: 4 * 1024 * 1024,
            http2: ClientHttp2Settings::default(),
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// Compresses requests with `algorithm`.
    pub fn with_compression(mut self, algorithm: impl Compression) -> Self {
        self.compression = Some(Arc::new(algorithm));
        self
    }

    /// Adds metadata sent with every call.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the per-call deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Uses TLS with these settings.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: crate::tls::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// An OTLP/gRPC exporter: an [`ExportService`](otlp_core::ExportService) for every signal
/// (and for [`AnyExportRequest`]). Clones share one connection.
///
/// ```no_run
/// use otlp_compression::Gzip;
/// use otlp_core::{ExportRequest, Traces};
/// use otlp_grpc::{ExporterConfig, GrpcExporter};
/// use tower::ServiceExt;
///
/// # async fn run() -> Result<(), otlp_core::ExportError> {
/// let exporter = GrpcExporter::new(
///     ExporterConfig::new("http://127.0.0.1:4317")?.with_compression(Gzip::default()),
/// )?;
/// let request = ExportRequest::<Traces>::new(Default::default());
/// let outcome = exporter.oneshot(request).await?;
/// assert!(outcome.is_full_success());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct GrpcExporter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ExporterConfig,
    channel: Channel,
}

impl GrpcExporter {
    /// An exporter for `config`; it connects on first use.
    pub fn new(config: ExporterConfig) -> Result<Self, ExportError> {
        if let Some(algorithm) = &config.compression
            && algorithm.grpc_name().is_none()
        {
            return Err(ExportError::new(
                ErrorKind::FailedPrecondition,
                format!("{} has no gRPC encoding name", algorithm.name()),
            ));
        }
        let channel = Channel::new(&config)?;
        Ok(Self {
            inner: Arc::new(Inner { config, channel }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ExporterConfig {
        &self.inner.config
    }

    /// Sends one request with a unary `Export` call.
    pub async fn export<S: Signal>(
        &self,
        request: &ExportRequest<S>,
    ) -> Result<ExportOutcome, ExportError> {
        let inner = &self.inner;
        let items = request.item_count();
        let message = request.protobuf_pieces();
        let compression = inner
            .config
            .compression
            .as_ref()
            .filter(|_| request.compression_allowed());
        let body = self.frame(message, compression.map(|c| c.as_ref()))?;
        let http_request = self.request(S::GRPC_EXPORT_PATH, compression, GrpcBody::framed(body));
        let deadline = inner.config.timeout;
        let call = async {
            let response = inner.channel.send(http_request).await?;
            let message = read_unary_response(response, &inner.config, compression).await?;
            let response = S::Response::decode(message).map_err(|e| {
                ExportError::new(ErrorKind::Internal, "malformed export response").with_source(e)
            })?;
            Ok(ExportOutcome::from_response(items, &response))
        };
        match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(ExportError::timeout(format!(
                "no answer within the deadline of {deadline:?}"
            ))),
        }
    }

    /// Frames `message`, refusing one over our own size limit (permanently: the same
    /// bytes can never pass it).
    pub(crate) fn frame(
        &self,
        message: Vec<Bytes>,
        compression: Option<&dyn Compression>,
    ) -> Result<FramedMessage, ExportError> {
        let limit = self.inner.config.max_message_bytes;
        let len = message.iter().map(Bytes::len).sum::<usize>();
        if len > limit {
            return Err(ExportError::too_large(format!(
                "request of {len} bytes exceeds the exporter's limit of {limit} bytes"
            )));
        }
        FramedMessage::new(message, compression)
    }

    /// The HTTP/2 request of a call to `path`.
    pub(crate) fn request(
        &self,
        path: &str,
        compression: Option<&Arc<dyn Compression>>,
        body: GrpcBody,
    ) -> Request<GrpcBody> {
        let config = &self.inner.config;
        let mut request = Request::new(body);
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.inner.channel.uri(path);
        let headers = request.headers_mut();
        headers.clone_from(&config.headers);
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("otlp-transport/", env!("CARGO_PKG_VERSION"))),
        );
        if let Ok(timeout) = HeaderValue::from_str(&format_grpc_timeout(config.timeout)) {
            headers.insert("grpc-timeout", timeout);
        }
        if let Some(algorithm) = compression
            && let Ok(name) = HeaderValue::from_str(grpc_name(algorithm.as_ref()))
        {
            headers.insert("grpc-encoding", name);
        }
        if let Ok(accept) = HeaderValue::from_str(&config.accept.grpc_accept_encoding()) {
            headers.insert("grpc-accept-encoding", accept);
        }
        request
    }

    pub(crate) fn channel(&self) -> &Channel {
        &self.inner.channel
    }
}

/// The `grpc-encoding` token of an algorithm.
pub(crate) fn grpc_name(algorithm: &dyn Compression) -> &str {
    algorithm.grpc_name().unwrap_or_else(|| algorithm.name())
}

/// The error a response's status and headers report before its body is read: a non-200
/// HTTP status, or a trailers-only response with a non-OK `grpc-status`.
pub(crate) fn error_of_headers(
    response: &Response<Incoming>,
    sent: Option<&Arc<dyn Compression>>,
) -> Option<ExportError> {
    let status = response.status().as_u16();
    if status != 200 {
        let code = grpc_code_of_http_status(status);
        return Some(ExportError::from_grpc(
            code,
            format!("HTTP status {status} instead of a gRPC response"),
            None,
        ));
    }
    if response.headers().contains_key("grpc-status") {
        let error = error_from_trailers(response.headers())?;
        return Some(refused_encoding(error, response.headers(), sent));
    }
    None
}

/// UNIMPLEMENTED from a server whose `grpc-accept-encoding` lacks the encoding we used is
/// a refused encoding: reported as such so that the retry layer resends uncompressed.
fn refused_encoding(
    error: ExportError,
    headers: &HeaderMap,
    sent: Option<&Arc<dyn Compression>>,
) -> ExportError {
    let Some(algorithm) = sent else { return error };
    if error.peer_status().is_none() || error.kind() != ErrorKind::Unimplemented {
        return error;
    }
    let accepted = headers
        .get("grpc-accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|list| {
            list.split(',').any(|name| {
                name.trim()
                    .eq_ignore_ascii_case(grpc_name(algorithm.as_ref()))
            })
        });
    if accepted {
        return error;
    }
    ExportError::new(
        ErrorKind::UnsupportedMediaType,
        format!(
            "the server does not accept grpc-encoding {}: {}",
            grpc_name(algorithm.as_ref()),
            error.message()
        ),
    )
}

/// Reads the one message of a unary response and its trailers.
async fn read_unary_response(
    response: Response<Incoming>,
    config: &ExporterConfig,
    sent: Option<&Arc<dyn Compression>>,
) -> Result<Bytes, ExportError> {
    if let Some(error) = error_of_headers(&response, sent) {
        return Err(error);
    }
    if response.headers().contains_key("grpc-status") {
        // Trailers-only OK: an empty response message.
        return Ok(Bytes::new());
    }
    let encoding = response_encoding(response.headers(), config)?;
    let mut body = response.into_body();
    let mut decoder = FrameDecoder::new(FrameLimits {
        max_message_bytes: config.max_response_bytes,
        max_frame_bytes: config.max_response_bytes,
    });
    let mut trailers = None;
    let mut message = None;
    while let Some(frame) = next_frame(
        &mut body,
        &mut decoder,
        &mut trailers,
        &mut otlp_net::budget::Admission::default(),
    )
    .await?
    {
        if message.is_some() {
            return Err(ExportError::internal(
                "a unary response carried two messages",
            ));
        }
        message = Some(decoder.message(frame, encoding.as_deref())?);
    }
    let trailers = trailers.unwrap_or_default();
    if let Some(error) = error_from_trailers(&trailers) {
        return Err(error);
    }
    message.ok_or_else(|| {
        ExportError::from_grpc(GrpcCode::Internal, "an OK response without a message", None)
    })
}

pub(crate) fn response_encoding(
    headers: &HeaderMap,
    config: &ExporterConfig,
) -> Result<Option<Arc<dyn Compression>>, ExportError> {
    match headers.get("grpc-encoding").and_then(|v| v.to_str().ok()) {
        None => Ok(None),
        Some(name) if name.eq_ignore_ascii_case("identity") => Ok(None),
        Some(name) => config
            .accept
            .by_grpc_name(name)
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                ExportError::internal(format!("the server answered with grpc-encoding {name}"))
            }),
    }
}

impl<S: Signal> Service<ExportRequest<S>> for GrpcExporter {
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        // HTTP/2 multiplexes: the connection's stream limit is waited for per call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ExportRequest<S>) -> Self::Future {
        let exporter = self.clone();
        Box::pin(async move { exporter.export(&request).await })
    }
}

impl Service<AnyExportRequest> for GrpcExporter {
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
                AnyExportRequest::Traces(r) => exporter.export(&r).await,
                AnyExportRequest::Metrics(r) => exporter.export(&r).await,
                AnyExportRequest::Logs(r) => exporter.export(&r).await,
            }
        })
    }
}
