//! One call: routing, the checks made from the headers (method, content type, auth,
//! encoding, deadline), the unary `Export` methods and gRPC health checking.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use otlp_compression::Compression;
use otlp_core::{
    AnyExportRequest, AnyExportService, ErrorKind, ExportError, ExportRequest, Logs, Metrics,
    Signal, Traces,
};
use prost::Message;

use super::{Shared, streaming};
use crate::body::{GrpcBody, read_unary, read_unary_frame};
use crate::framing::{FrameDecoder, encode_frame, frame_encoding};
use crate::protocol::{
    EXPORT_BIDIRECTIONAL_PATH, EXPORT_STREAM_PATH, HEALTH_CHECK_PATH, HEALTH_WATCH_PATH,
    STREAM_SERVICE, parse_grpc_timeout,
};
use crate::status::{error_trailers, ok_trailers};

const GRPC_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/grpc");

pub(crate) async fn handle<Svc>(
    shared: Arc<Shared<Svc>>,
    request: Request<Incoming>,
) -> Response<GrpcBody>
where
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let (parts, body) = request.into_parts();
    if parts.method != http::Method::POST {
        return plain_http(StatusCode::METHOD_NOT_ALLOWED);
    }
    if !is_grpc_content_type(&parts.headers) {
        return plain_http(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let path = parts.uri.path();
    // Health is for load balancers and orchestrators, which carry no credentials.
    if path == HEALTH_CHECK_PATH || path == HEALTH_WATCH_PATH {
        return health(&shared, path == HEALTH_WATCH_PATH, body).await;
    }
    let prepared = prepare(&shared, &parts);
    let (encoding, deadline) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return refuse(&shared, &error),
    };
    let call = async {
        match path {
            Traces::GRPC_EXPORT_PATH => unary::<Traces, _>(&shared, &parts, body, encoding).await,
            Metrics::GRPC_EXPORT_PATH => unary::<Metrics, _>(&shared, &parts, body, encoding).await,
            Logs::GRPC_EXPORT_PATH => unary::<Logs, _>(&shared, &parts, body, encoding).await,
            EXPORT_STREAM_PATH => streaming::server_stream(&shared, &parts, body, encoding).await,
            EXPORT_BIDIRECTIONAL_PATH => Ok(streaming::bidirectional(
                shared.clone(),
                &parts,
                body,
                encoding,
            )),
            _ => Err(ExportError::new(
                ErrorKind::Unimplemented,
                format!("unknown method {path}"),
            )),
        }
    };
    let result = match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) => Err(ExportError::timeout(format!(
            "the call did not complete within {deadline:?}"
        ))),
    };
    match result {
        Ok(response) => response,
        Err(error) => refuse(&shared, &error),
    }
}

/// The checks made before any of the body is read: authentication, the encoding and the
/// deadline.
fn prepare<Svc>(
    shared: &Shared<Svc>,
    parts: &http::request::Parts,
) -> Result<(Option<Arc<dyn Compression>>, Duration), ExportError> {
    if let Some(auth) = &shared.auth {
        auth.authenticate(parts)?;
    }
    let encoding = match parts.headers.get("grpc-encoding").map(|v| v.to_str()) {
        None => None,
        Some(Ok(name)) if name.eq_ignore_ascii_case("identity") => None,
        Some(Ok(name)) => match shared.config.intake.compression.by_grpc_name(name) {
            Some(algorithm) => Some(algorithm.clone()),
            None => {
                return Err(ExportError::new(
                    ErrorKind::Unimplemented,
                    format!("grpc-encoding {name:?} is not supported"),
                ));
            }
        },
        Some(Err(_)) => {
            return Err(ExportError::new(
                ErrorKind::Unimplemented,
                "grpc-encoding is not valid text",
            ));
        }
    };
    let deadline = parts
        .headers
        .get("grpc-timeout")
        .and_then(|v| parse_grpc_timeout(v.as_bytes()))
        .map_or(shared.config.request_timeout, |d| {
            d.min(shared.config.request_timeout)
        });
    Ok((encoding, deadline))
}

async fn unary<S, Svc>(
    shared: &Shared<Svc>,
    parts: &http::request::Parts,
    mut body: Incoming,
    encoding: Option<Arc<dyn Compression>>,
) -> Result<Response<GrpcBody>, ExportError>
where
    S: otlp_codec::CodecSignal,
    AnyExportRequest: From<ExportRequest<S>>,
    Svc: AnyExportService + Clone + Send + Sync + 'static,
    Svc::Future: Send,
{
    let intake = &shared.intake;
    let (message, admission) = read_message(shared, &mut body, encoding.as_deref()).await?;
    let request = intake.request::<S>(message, &otlp_codec::Protobuf::default(), &parts.headers)?;
    let outcome = intake.deliver(request.into(), admission).await?;
    let response: S::Response = outcome.to_response();
    Ok(grpc_response(
        shared,
        Some(frame_message(&response)),
        Some(ok_trailers()),
    ))
}

/// The one message of a unary-request call, read within the frame limits and decompressed
/// by the intake, with its reservation (counted from the first byte read). Refusals are
/// counted.
pub(crate) async fn read_message<Svc>(
    shared: &Shared<Svc>,
    body: &mut Incoming,
    encoding: Option<&dyn Compression>,
) -> Result<(Bytes, otlp_net::budget::Admission), ExportError> {
    let intake = &shared.intake;
    let mut decoder = FrameDecoder::new(shared.config.frame_limits());
    let mut trailers = None;
    let mut admission = intake.admission();
    let (compression, frame) = read_unary_frame(body, &mut decoder, &mut trailers, &mut admission)
        .await
        .and_then(|frame| frame.ok_or_else(|| ExportError::internal("the call carried no message")))
        .and_then(|frame| Ok((frame_encoding(&frame, encoding)?, frame)))
        .map_err(|e| refused(shared, e))?;
    // The intake counts its own refusals.
    let message = intake.decompress(frame.payload, compression, &mut admission)?;
    Ok((message, admission))
}

pub(crate) fn refused<Svc>(shared: &Shared<Svc>, error: ExportError) -> ExportError {
    shared.intake.refused(error)
}

pub(crate) fn frame_message(message: &impl Message) -> Bytes {
    let mut out = BytesMut::with_capacity(message.encoded_len() + crate::framing::HEADER_LEN);
    // Uncompressed: responses are small, and identity needs no negotiation.
    let encoded = message.encode_to_vec();
    if encode_frame(&encoded, None, &mut out).is_err() {
        return Bytes::new();
    }
    out.freeze()
}

/// A gRPC response: headers, optional data, optional trailers.
pub(crate) fn grpc_response<Svc>(
    shared: &Shared<Svc>,
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
) -> Response<GrpcBody> {
    grpc_response_with_body(shared, GrpcBody::once(data, trailers))
}

pub(crate) fn grpc_response_with_body<Svc>(
    shared: &Shared<Svc>,
    body: GrpcBody,
) -> Response<GrpcBody> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, GRPC_CONTENT_TYPE);
    headers.insert("grpc-accept-encoding", shared.accept_encoding.clone());
    response
}

/// A trailers-only response carrying `error`.
pub(crate) fn refuse<Svc>(shared: &Shared<Svc>, error: &ExportError) -> Response<GrpcBody> {
    let mut response = grpc_response(shared, None, None);
    response.headers_mut().extend(error_trailers(error));
    response
}

fn plain_http(status: StatusCode) -> Response<GrpcBody> {
    let mut response = Response::new(GrpcBody::empty());
    *response.status_mut() = status;
    response
}

fn is_grpc_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v == "application/grpc"
                || v.starts_with("application/grpc+proto")
                || v.starts_with("application/grpc;")
        })
}

#[derive(Clone, PartialEq, Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

fn health_of<Svc>(shared: &Shared<Svc>, service: &str) -> Option<i32> {
    let known = service.is_empty()
        || service == Traces::GRPC_SERVICE
        || service == Metrics::GRPC_SERVICE
        || service == Logs::GRPC_SERVICE
        || service == STREAM_SERVICE;
    known.then(|| {
        if *shared.shutdown.borrow() {
            NOT_SERVING
        } else {
            SERVING
        }
    })
}

async fn health<Svc>(
    shared: &Arc<Shared<Svc>>,
    watch: bool,
    mut body: Incoming,
) -> Response<GrpcBody>
where
    Svc: Send + Sync + 'static,
{
    let mut decoder = FrameDecoder::new(crate::framing::FrameLimits {
        max_message_bytes: 4096,
        max_frame_bytes: 4096,
    });
    let mut trailers = None;
    let mut intake = otlp_net::budget::Admission::default();
    let request = match read_unary(&mut body, &mut decoder, None, &mut trailers, &mut intake).await
    {
        Ok(Some(bytes)) => HealthCheckRequest::decode(bytes),
        Ok(None) => Ok(HealthCheckRequest::default()),
        Err(error) => return refuse(shared, &error),
    };
    let Ok(request) = request else {
        return refuse(
            shared,
            &ExportError::invalid_argument("malformed HealthCheckRequest"),
        );
    };
    let status = health_of(shared, &request.service);
    if !watch {
        return match status {
            Some(status) => grpc_response(
                shared,
                Some(frame_message(&HealthCheckResponse { status })),
                Some(ok_trailers()),
            ),
            None => refuse(
                shared,
                &ExportError::new(ErrorKind::NotFound, "unknown service"),
            ),
        };
    }
    // Watch: the current status now, NOT_SERVING when the receiver begins to shut down,
    // then the end of the stream.
    const SERVICE_UNKNOWN: i32 = 3;
    let Ok(permit) = shared.health_watches.clone().try_acquire_owned() else {
        return refuse(
            shared,
            &ExportError::unavailable("too many health Watch streams are open"),
        );
    };
    let (sender, response_body) = GrpcBody::channel(2);
    let mut shutdown = shared.shutdown.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let first = status.unwrap_or(SERVICE_UNKNOWN);
        if !sender
            .data(frame_message(&HealthCheckResponse { status: first }))
            .await
        {
            return;
        }
        if first == SERVING {
            tokio::select! {
                () = super::stopped(&mut shutdown) => {}
                () = wait_closed(&sender) => return,
            }
            let update = HealthCheckResponse {
                status: NOT_SERVING,
            };
            if !sender.data(frame_message(&update)).await {
                return;
            }
        }
        sender.trailers(ok_trailers()).await;
    });
    grpc_response_with_body(shared, response_body)
}

async fn wait_closed(sender: &crate::body::BodySender) {
    while !sender.is_closed() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
