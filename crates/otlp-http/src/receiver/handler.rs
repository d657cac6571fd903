//! One request: CORS, method and path, then the checks made from the headers alone (auth,
//! content type, encoding, declared length), the bounded body read, decompression,
//! decoding, the service, and the answer in the request's own encoding.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body as _;
use http_body_util::Full;
use hyper::body::Incoming;
use otlp_codec::{CodecSignal, OtlpCodec};
use otlp_compression::Compression;
use otlp_core::{
    AnyExportRequest, AnyExportService, ErrorKind, ExportError, ExportRequest, Logs, Metrics,
    SignalKind, Traces,
};

use otlp_net::upgrade::UpgradeHandler;

use super::Shared;
use crate::status_body::{JSON, PROTOBUF, encode_status, format_retry_after};

type HttpResponse = Response<Full<Bytes>>;

pub(crate) async fn handle<Svc>(
    shared: &Arc<Shared<Svc>>,
    request: Request<Incoming>,
) -> HttpResponse
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    if let Some((path, handler)) = &shared.upgrade
        && request.uri().path() == path
    {
        return upgrade(shared, handler.clone(), request);
    }
    let cors = &shared.config.cors;
    if request.method() == http::Method::OPTIONS {
        return cors.preflight(request.headers());
    }
    let origin = cors.allow(request.headers());
    let mut response = route(shared, request).await;
    if let Some(origin) = origin {
        cors.decorate(origin, &mut response);
    }
    response
}

async fn route<Svc>(shared: &Arc<Shared<Svc>>, request: Request<Incoming>) -> HttpResponse
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let Some(signal) = shared.config.paths.signal(request.uri().path()) else {
        return plain(StatusCode::NOT_FOUND);
    };
    if request.method() != http::Method::POST {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        return response;
    }
    let http1 = request.version() <= http::Version::HTTP_11;
    let (parts, body) = request.into_parts();
    // Errors before the content type is known are answered in protobuf, or in JSON when
    // the request said it was JSON.
    let json_errors = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    let result = match signal {
        SignalKind::Traces => export::<Traces, _>(shared, parts, body).await,
        SignalKind::Metrics => export::<Metrics, _>(shared, parts, body).await,
        SignalKind::Logs => export::<Logs, _>(shared, parts, body).await,
    };
    match result {
        Ok(response) => response,
        Err(failure) => {
            if failure.before_service {
                shared
                    .intake
                    .stats()
                    .refused_requests
                    .fetch_add(1, Ordering::Relaxed);
            }
            let json = failure.codec.map_or(json_errors, |c| c.name() == "json");
            let mut response = error_response(&failure.error, json);
            if let Some(status) = failure.status {
                *response.status_mut() = status;
            }
            if failure.before_service && http1 {
                // The body was left unread, so the connection cannot carry another
                // request: say so, or the client's pool sends its next request into a
                // connection the server is closing.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

/// Why a request failed, and how to answer.
struct Failure {
    error: ExportError,
    /// The request's codec, if known: errors are answered in its format.
    codec: Option<Arc<dyn OtlpCodec>>,
    /// Refused here, before reaching the intake, with the body not read to its end
    /// (counted as refused when answered; the intake counts its own refusals).
    before_service: bool,
    /// A status other than the error's own (408 for a body that never finished).
    status: Option<StatusCode>,
}

impl Failure {
    fn refused(error: ExportError, codec: Option<Arc<dyn OtlpCodec>>) -> Self {
        Self {
            error,
            codec,
            before_service: true,
            status: None,
        }
    }
}

async fn export<S, Svc>(
    shared: &Arc<Shared<Svc>>,
    parts: http::request::Parts,
    body: Incoming,
) -> Result<HttpResponse, Failure>
where
    S: CodecSignal,
    AnyExportRequest: From<ExportRequest<S>>,
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let config = &shared.config;
    let refuse = |error: ExportError| Failure::refused(error, None);
    if let Some(auth) = &shared.auth {
        auth.authenticate(&parts).map_err(refuse)?;
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let codec = config
        .codecs
        .by_content_type(content_type)
        .cloned()
        .ok_or_else(|| {
            refuse(ExportError::new(
                ErrorKind::UnsupportedMediaType,
                format!("unsupported content type {content_type:?}"),
            ))
        })?;
    let with_codec = |error: ExportError| Failure::refused(error, Some(codec.clone()));
    let encoding = content_encoding(&shared.config.intake, &parts.headers).map_err(with_codec)?;
    let intake = &shared.intake;
    let max_sent = intake.config().max_sent_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_sent as u64) {
        return Err(with_codec(too_large(max_sent)));
    }
    // Counted against the memory budget from the first byte read.
    let mut admission = intake.admission();
    let raw = tokio::time::timeout(
        config.body_read_timeout,
        read_body(body, max_sent, &mut admission),
    )
    .await
    .map_err(|_| Failure {
        status: Some(StatusCode::REQUEST_TIMEOUT),
        ..with_codec(ExportError::timeout(format!(
            "the body did not arrive within {:?}",
            config.body_read_timeout
        )))
    })?
    .map_err(with_codec)?;
    // The intake counts its own refusals.
    let counted = |error: ExportError| Failure {
        before_service: false,
        ..Failure::refused(error, Some(codec.clone()))
    };
    let bytes = intake
        .decompress(raw, encoding.as_deref(), &mut admission)
        .map_err(counted)?;
    let request = intake
        .request::<S>(bytes, codec.as_ref(), &parts.headers)
        .map_err(counted)?;
    let outcome = intake
        .deliver(request.into(), admission)
        .await
        .map_err(counted)?;
    let mut out = Vec::new();
    S::encode_response(codec.as_ref(), &outcome.to_response(), &mut out).map_err(|e| Failure {
        before_service: false,
        ..Failure::refused(ExportError::internal(e.to_string()), Some(codec.clone()))
    })?;
    let mut response = Response::new(Full::new(Bytes::from(out)));
    if let Ok(value) = HeaderValue::from_str(codec.content_type()) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(response)
}

fn too_large(limit: usize) -> ExportError {
    ExportError::too_large(format!("the request exceeds the limit of {limit} bytes"))
}

fn content_encoding(
    config: &otlp_net::intake::IntakeConfig,
    headers: &http::HeaderMap,
) -> Result<Option<Arc<dyn Compression>>, ExportError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(None);
    };
    let name = value.to_str().unwrap_or("").trim();
    if name.is_empty() || name.eq_ignore_ascii_case("identity") {
        return Ok(None);
    }
    config
        .compression
        .by_http_name(name)
        .cloned()
        .map(Some)
        .ok_or_else(|| {
            ExportError::new(
                ErrorKind::UnsupportedMediaType,
                format!("unsupported content encoding {name:?}"),
            )
        })
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes.
async fn read_body(
    mut body: Incoming,
    limit: usize,
    admission: &mut otlp_net::budget::Admission,
) -> Result<Bytes, ExportError> {
    // The declared length sizes the buffer only up to 1 MiB: a client that declares a large
    // body and sends nothing must not hold the whole allocation until the body timeout.
    let hint = body
        .size_hint()
        .exact()
        .unwrap_or(0)
        .min(limit.min(1 << 20) as u64) as usize;
    let mut out = BytesMut::with_capacity(hint);
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| {
            ExportError::invalid_argument(format!("the body could not be read: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            admission.cover(out.len() + data.len())?;
            out.extend_from_slice(&data);
            // What the buffer really took, growth slack included.
            admission.cover(out.capacity())?;
        }
    }
    Ok(out.freeze())
}

/// Where the upgrade path leaves the protocol that takes a connection over, for the
/// connection's own task to run once hyper hands the connection back.
#[derive(Clone, Default)]
pub(crate) struct UpgradedConnection(Arc<std::sync::Mutex<Option<Serving>>>);

/// What an upgrade handler runs on the connection it took over.
pub(crate) type Serving = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl UpgradedConnection {
    fn put(&self, serving: Serving) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(serving);
        }
    }

    /// The upgraded protocol's future, if a request upgraded the connection.
    pub(crate) fn take(&self) -> Option<Serving> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// A request for the upgrade path: refused with the handler's answer, or switched over to
/// the handler once hyper hands the connection back.
fn upgrade<Svc>(
    shared: &Arc<Shared<Svc>>,
    handler: Arc<dyn UpgradeHandler>,
    mut request: Request<Incoming>,
) -> HttpResponse {
    if request.method() != http::Method::GET
        || request.version() != http::Version::HTTP_11
        || !otlp_net::upgrade::asks_for(request.headers(), handler.protocol())
    {
        shared
            .intake
            .stats()
            .refused_requests
            .fetch_add(1, Ordering::Relaxed);
        let mut response = text(
            StatusCode::UPGRADE_REQUIRED,
            "this path is OTLP over WebSocket: send an HTTP/1.1 GET with Upgrade",
        );
        if let Ok(value) = HeaderValue::from_str(handler.protocol()) {
            response.headers_mut().insert(header::UPGRADE, value);
        }
        return response;
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    let slot = request.extensions_mut().remove::<UpgradedConnection>();
    let (parts, _) = request.into_parts();
    // The receiver's authentication covers the upgrade path too: a protocol on this port
    // is not a way around it.
    if let Some(auth) = &shared.auth
        && let Err(error) = auth.authenticate(&parts)
    {
        shared
            .intake
            .stats()
            .refused_requests
            .fetch_add(1, Ordering::Relaxed);
        let status =
            StatusCode::from_u16(error.http_status().0).unwrap_or(StatusCode::UNAUTHORIZED);
        return text(status, error.message());
    }
    let headers = match handler.accept(&parts) {
        Ok(headers) => headers,
        Err(refusal) => {
            shared
                .intake
                .stats()
                .refused_requests
                .fetch_add(1, Ordering::Relaxed);
            return text(refusal.status, &refusal.message);
        }
    };
    let shutdown = shared.shutdown.clone();
    let serving = Box::pin(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let io = hyper_util::rt::TokioIo::new(upgraded);
            handler.serve(Box::new(io), parts, shutdown).await;
        }
    });
    match slot {
        Some(slot) => slot.put(serving),
        None => {
            tokio::spawn(serving);
        }
    }
    let mut response = plain(StatusCode::SWITCHING_PROTOCOLS);
    *response.headers_mut() = headers;
    response
}

fn text(status: StatusCode, message: &str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response
}

fn plain(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The answer to `error`: the status the OTLP table names, `Retry-After` when there is a
/// delay, and a `google.rpc.Status` body in JSON or protobuf.
pub(crate) fn error_response(error: &ExportError, json: bool) -> HttpResponse {
    let (status, delay) = error.http_status();
    let mut response = Response::new(Full::new(encode_status(error, json)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if json { JSON } else { PROTOBUF }),
    );
    if let Some(delay) = delay
        && let Ok(value) = HeaderValue::from_str(&format_retry_after(delay))
    {
        headers.insert(header::RETRY_AFTER, value);
    }
    response
}
