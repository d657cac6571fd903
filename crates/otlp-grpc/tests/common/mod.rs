//! Shared by the loopback tests: a receiver whose service records what arrives.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use otlp_core::{AnyExportRequest, ExportError, ExportOutcome};
use otlp_grpc::{GrpcReceiver, ReceiverConfig, RunningReceiver};
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use tower::service_fn;

/// Everything the service was handed, by signal, decoded.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    pub headers: Vec<http::HeaderMap>,
}

impl Received {
    pub fn spans(&self) -> usize {
        self.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }
}

pub type Record = Arc<Mutex<Received>>;

/// A service that records every request and answers with `answer(items)`.
pub fn recording(
    answer: impl Fn(usize) -> Result<ExportOutcome, ExportError> + Send + Sync + Clone + 'static,
) -> (
    Record,
    impl tower::Service<
        AnyExportRequest,
        Response = ExportOutcome,
        Error = ExportError,
        Future = impl Send,
    > + Clone
    + Send
    + Sync
    + 'static,
) {
    let record: Record = Arc::default();
    let sink = record.clone();
    let service = service_fn(move |request: AnyExportRequest| {
        let sink = sink.clone();
        let answer = answer.clone();
        async move {
            let items = request.item_count();
            let result = answer(items);
            if result.is_ok() {
                let mut sink = sink.lock().expect("lock");
                match request {
                    AnyExportRequest::Traces(r) => {
                        sink.headers.push(r.headers().clone());
                        sink.traces.push(r.into_message()?);
                    }
                    AnyExportRequest::Metrics(r) => sink.metrics.push(r.into_message()?),
                    AnyExportRequest::Logs(r) => sink.logs.push(r.into_message()?),
                }
            }
            result
        }
    });
    (record, service)
}

pub fn accept_all(items: usize) -> Result<ExportOutcome, ExportError> {
    Ok(ExportOutcome::success(items))
}

pub async fn start_recording_receiver(config: ReceiverConfig) -> (Record, RunningReceiver) {
    let (record, service) = recording(accept_all);
    let running = GrpcReceiver::new(service)
        .with_config(config)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    (record, running)
}

pub fn endpoint(running: &RunningReceiver) -> String {
    format!("http://{}", running.local_addr())
}

/// A bare HTTP/2 client for sending what no well-behaved exporter would.
pub struct RawClient {
    sender: hyper::client::conn::http2::SendRequest<otlp_grpc::body::GrpcBody>,
    authority: String,
}

/// What a raw call got back: HTTP status, gRPC status (from headers or trailers), and the
/// response's data.
#[derive(Debug)]
pub struct RawAnswer {
    pub http_status: u16,
    pub grpc_status: Option<i32>,
    pub grpc_message: String,
    pub data: bytes::Bytes,
}

impl RawClient {
    pub async fn connect(address: std::net::SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let (sender, connection) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(connection);
        Self {
            sender,
            authority: address.to_string(),
        }
    }

    pub async fn call(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: bytes::Bytes,
    ) -> RawAnswer {
        use http_body_util::BodyExt;
        let request = http::Request::post(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        let mut request = request
            .body(otlp_grpc::body::GrpcBody::once(Some(body), None))
            .expect("request");
        for (name, value) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                http::HeaderValue::from_str(value).expect("value"),
            );
        }
        self.sender.ready().await.expect("ready");
        let response = self.sender.send_request(request).await.expect("response");
        let http_status = response.status().as_u16();
        let mut status_headers = response.headers().clone();
        let collected = response.into_body().collect().await.expect("body");
        if let Some(trailers) = collected.trailers() {
            status_headers.extend(trailers.clone());
        }
        RawAnswer {
            http_status,
            grpc_status: status_headers
                .get("grpc-status")
                .and_then(|v| v.to_str().ok()?.parse().ok()),
            grpc_message: status_headers
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .map(otlp_grpc::status::decode_message)
                .unwrap_or_default(),
            data: collected.to_bytes(),
        }
    }
}

/// A gRPC frame around `payload` with the given compressed flag.
pub fn frame(compressed: bool, payload: &[u8]) -> bytes::Bytes {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(u8::from(compressed));
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.into()
}
