//! OTLP/gRPC end to end on loopback: spans/s, latency and CPU of our exporter and receiver
//! against a baseline of tonic with the official `opentelemetry-proto` service, both ends
//! in this process on one 2-worker runtime.
//!
//! Both clients send the same pre-encoded requests (a relay's situation: it holds bytes),
//! so the comparison is of the transports and receivers. The baseline decodes every
//! request into owned types (tonic's prost codec) and counts its spans. Ours runs twice:
//! validating every request as strictly as a decode (the default: malformed input is
//! refused and spans are counted, without building the message) and decoding into owned
//! types, so both figures stand side by side.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1 as reference;
use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Traces};
use otlp_grpc::{
    DecodeMode, ExporterConfig, GrpcExporter, GrpcReceiver, ReceiverConfig, StreamExporter,
    StreamExporterConfig,
};
use prost::Message;
use serde_json::json;

use crate::measure::{Report, cpu_time, percentile};

/// Concurrent exports in flight in the throughput runs.
const CONCURRENCY: usize = 16;
/// Distinct requests cycled through per batch size.
const DISTINCT: usize = 32;
const WINDOW: (u32, u32) = (2 * 1024 * 1024, 8 * 1024 * 1024);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OursUnary,
    OursUnaryFullDecode,
    OursBidirectional,
    BaselineUnary,
    OursWebSocket,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::OursUnary => "otlp-grpc unary (validating receiver)",
            Kind::OursUnaryFullDecode => "otlp-grpc unary (receiver decoding into owned types)",
            Kind::OursBidirectional => "otlp-grpc bidirectional",
            Kind::BaselineUnary => "tonic + opentelemetry-proto unary",
            Kind::OursWebSocket => "otlp-websocket (protobuf, validating receiver)",
        }
    }
}

struct Row {
    kind: Kind,
    batch: usize,
    spans: u64,
    spans_per_s: f64,
    p50: Duration,
    p99: Duration,
    cpu_cores: f64,
    cpu_ns_per_span: f64,
}

pub(crate) fn run(quick: bool) -> Result<Report, String> {
    let kinds = [
        Kind::BaselineUnary,
        Kind::OursUnary,
        Kind::OursUnaryFullDecode,
        Kind::OursBidirectional,
    ];
    let single = [
        Kind::BaselineUnary,
        Kind::OursUnary,
        Kind::OursUnaryFullDecode,
    ];
    let title = "OTLP/gRPC on loopback";
    suite(quick, "grpc", title, &kinds, &single)
}

/// `cargo xtask bench websocket`: the WebSocket binding beside gRPC unary and
/// bidirectional, in the same run.
pub(crate) fn run_websocket(quick: bool) -> Result<Report, String> {
    let kinds = [
        Kind::OursUnary,
        Kind::OursBidirectional,
        Kind::OursWebSocket,
    ];
    let title = "OTLP over WebSocket beside gRPC, on loopback";
    suite(quick, "websocket", title, &kinds, &[Kind::OursWebSocket])
}

fn suite(
    quick: bool,
    name: &'static str,
    title: &str,
    kinds: &[Kind],
    single_kinds: &[Kind],
) -> Result<Report, String> {
    let budget = if quick {
        Duration::from_millis(1500)
    } else {
        Duration::from_secs(4)
    };
    let runtime = crate::measure::runtime()?;
    let mut rows = Vec::new();
    let mut single = Vec::new();
    for &batch in crate::measure::batch_sizes(quick) {
        let requests: Vec<Bytes> = (0..DISTINCT)
            .map(|i| Bytes::from(otlp_testkit::realistic::traces(batch, i as u64).encode_to_vec()))
            .collect();
        for &kind in kinds {
            eprintln!("{name}: {} at batch {batch}...", kind.label());
            let row = runtime.block_on(throughput(kind, batch, &requests, budget))?;
            rows.push(row);
        }
        if batch == 512 {
            for &kind in single_kinds {
                let latencies = runtime.block_on(sequential_latency(kind, batch, &requests))?;
                single.push((
                    kind,
                    percentile(&latencies, 0.5),
                    percentile(&latencies, 0.99),
                ));
            }
        }
    }
    Ok(report(quick, name, title, &rows, &single))
}

/// A running receiver and the count of spans it decoded.
pub(crate) struct Target {
    pub(crate) endpoint: String,
    pub(crate) decoded: Arc<AtomicU64>,
    pub(crate) stop: Box<dyn FnOnce() + Send>,
}

pub(crate) async fn start_ours(decode: DecodeMode) -> Result<Target, String> {
    let decoded = Arc::new(AtomicU64::new(0));
    let counter = decoded.clone();
    let service = tower::service_fn(move |request: AnyExportRequest| {
        let items = request.item_count() as u64;
        counter.fetch_add(items, Ordering::Relaxed);
        async move { Ok::<_, ExportError>(ExportOutcome::success(items as usize)) }
    });
    let running = GrpcReceiver::new(service)
        .with_config(ReceiverConfig {
            intake: otlp_grpc::IntakeConfig {
                decode,
                ..Default::default()
            },
            ..Default::default()
        })
        .bind("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Target {
        endpoint: format!("http://{}", running.local_addr()),
        decoded,
        stop: Box::new(move || drop(running)),
    })
}

#[derive(Clone)]
struct ReferenceTraces(Arc<AtomicU64>);

#[tonic::async_trait]
impl reference::trace_service_server::TraceService for ReferenceTraces {
    async fn export(
        &self,
        request: tonic::Request<reference::ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<reference::ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(
            reference::ExportTraceServiceResponse {
                partial_success: None,
            },
        ))
    }
}

async fn start_baseline() -> Result<Target, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let decoded = Arc::new(AtomicU64::new(0));
    let service =
        reference::trace_service_server::TraceServiceServer::new(ReferenceTraces(decoded.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .initial_stream_window_size(WINDOW.0)
            .initial_connection_window_size(WINDOW.1)
            .tcp_nodelay(true)
            .add_service(service)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    Ok(Target {
        endpoint: format!("http://{address}"),
        decoded,
        stop: Box::new(move || {
            let _ = stop.send(());
        }),
    })
}

async fn start_websocket() -> Result<Target, String> {
    let decoded = Arc::new(AtomicU64::new(0));
    let counter = decoded.clone();
    let service = tower::service_fn(move |request: AnyExportRequest| {
        let items = request.item_count() as u64;
        counter.fetch_add(items, Ordering::Relaxed);
        async move { Ok::<_, ExportError>(ExportOutcome::success(items as usize)) }
    });
    let running = otlp_websocket::WsReceiver::new(service)
        .bind("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Target {
        endpoint: format!("ws://{}/v1/stream", running.local_addr()),
        decoded,
        stop: Box::new(move || drop(running)),
    })
}

/// Sends pre-encoded request bytes through tonic as they are.
#[derive(Debug, Clone, Copy, Default)]
struct PreEncoded;

#[derive(Debug, Clone, Copy, Default)]
struct BytesEncoder;

#[derive(Debug, Clone, Copy, Default)]
struct ResponseDecoder;

impl tonic::codec::Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = reference::ExportTraceServiceResponse;
    type Encoder = BytesEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl tonic::codec::Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for ResponseDecoder {
    type Item = reference::ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        reference::ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

/// One client's way to send a request and wait for the answer.
#[derive(Clone)]
enum Client {
    Ours(GrpcExporter),
    Stream(StreamExporter),
    Baseline(tonic::client::Grpc<tonic::transport::Channel>),
    WebSocket(otlp_websocket::WsExporter),
}

impl Client {
    async fn connect(kind: Kind, endpoint: &str) -> Result<Self, String> {
        Ok(match kind {
            Kind::OursWebSocket => Client::WebSocket(otlp_websocket::WsExporter::new(
                otlp_websocket::WsExporterConfig::new(endpoint),
            )),
            Kind::OursUnary | Kind::OursUnaryFullDecode | Kind::OursBidirectional => {
                let exporter =
                    GrpcExporter::new(ExporterConfig::new(endpoint).map_err(|e| e.to_string())?)
                        .map_err(|e| e.to_string())?;
                if kind != Kind::OursBidirectional {
                    Client::Ours(exporter)
                } else {
                    Client::Stream(StreamExporter::new(
                        exporter,
                        StreamExporterConfig::default(),
                    ))
                }
            }
            Kind::BaselineUnary => {
                let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
                    .map_err(|e| e.to_string())?
                    .initial_stream_window_size(WINDOW.0)
                    .initial_connection_window_size(WINDOW.1)
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                Client::Baseline(tonic::client::Grpc::new(channel))
            }
        })
    }

    async fn send(&mut self, bytes: &Bytes, spans: usize) -> Result<(), String> {
        match self {
            Client::Ours(exporter) => {
                let request = ExportRequest::<Traces>::from_encoded(bytes.clone(), spans);
                exporter
                    .export(&request)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Client::Stream(stream) => {
                let request = ExportRequest::<Traces>::from_encoded(bytes.clone(), spans);
                stream
                    .export(request.into())
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Client::WebSocket(ws) => {
                let request = ExportRequest::<Traces>::from_encoded(bytes.clone(), spans);
                ws.export(request.into())
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Client::Baseline(grpc) => {
                grpc.ready().await.map_err(|e| e.to_string())?;
                let path = http::uri::PathAndQuery::from_static(
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                );
                grpc.unary(tonic::Request::new(bytes.clone()), path, PreEncoded)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

async fn start(kind: Kind) -> Result<Target, String> {
    match kind {
        Kind::BaselineUnary => start_baseline().await,
        Kind::OursUnary | Kind::OursBidirectional => start_ours(DecodeMode::Validate).await,
        Kind::OursWebSocket => start_websocket().await,
        Kind::OursUnaryFullDecode => start_ours(DecodeMode::Full).await,
    }
}

async fn throughput(
    kind: Kind,
    batch: usize,
    requests: &[Bytes],
    budget: Duration,
) -> Result<Row, String> {
    let target = start(kind).await?;
    let client = Client::connect(kind, &target.endpoint).await?;
    // Warm up: connection, buffers, allocator.
    for bytes in requests.iter().take(4) {
        client.clone().send(bytes, batch).await?;
    }
    let before = target.decoded.load(Ordering::Relaxed);
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut lanes = Vec::new();
    for lane in 0..CONCURRENCY {
        let mut client = client.clone();
        let requests = requests.to_vec();
        lanes.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = lane;
            while started.elapsed() < budget {
                let t = Instant::now();
                client.send(&requests[i % requests.len()], batch).await?;
                latencies.push(t.elapsed());
                i += CONCURRENCY;
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for lane in lanes {
        latencies.extend(lane.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let decoded = target.decoded.load(Ordering::Relaxed) - before;
    (target.stop)();
    let sent = (latencies.len() * batch) as u64;
    if decoded != sent {
        return Err(format!(
            "{}: the receiver decoded {decoded} spans of {sent} sent",
            kind.label()
        ));
    }
    latencies.sort();
    Ok(Row {
        kind,
        batch,
        spans: sent,
        spans_per_s: sent as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        cpu_cores: cpu.as_secs_f64() / elapsed.as_secs_f64(),
        cpu_ns_per_span: cpu.as_nanos() as f64 / sent.max(1) as f64,
    })
}

/// One export at a time: the latency of a single request with nothing else in flight.
async fn sequential_latency(
    kind: Kind,
    batch: usize,
    requests: &[Bytes],
) -> Result<Vec<Duration>, String> {
    let target = start(kind).await?;
    let mut client = Client::connect(kind, &target.endpoint).await?;
    let mut latencies = Vec::new();
    for i in 0..1000 {
        let t = Instant::now();
        client.send(&requests[i % requests.len()], batch).await?;
        if i >= 50 {
            latencies.push(t.elapsed());
        }
    }
    (target.stop)();
    latencies.sort();
    Ok(latencies)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(
    quick: bool,
    name: &'static str,
    title: &str,
    rows: &[Row],
    single: &[(Kind, Duration, Duration)],
) -> Report {
    let baseline_kind = rows.first().map_or(Kind::BaselineUnary, |r| r.kind);
    let mut markdown = format!(
        "## {title} ({CONCURRENCY} exports in flight, realistic spans, \
         every request checked and its spans counted by the receiver)\n\n\
         Baseline (\"vs baseline\"): {}.\n\n\
         | client -> receiver | batch | spans | spans/s | vs baseline | p50 µs | p99 µs | CPU cores | CPU ns/span |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        baseline_kind.label()
    );
    let mut json_rows = Vec::new();
    for row in rows {
        let baseline = rows
            .iter()
            .find(|r| r.kind == baseline_kind && r.batch == row.batch)
            .map_or(f64::NAN, |b| row.spans_per_s / b.spans_per_s);
        markdown.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.2}x | {:.0} | {:.0} | {:.2} | {:.0} |\n",
            row.kind.label(),
            row.batch,
            row.spans,
            row.spans_per_s,
            baseline,
            micros(row.p50),
            micros(row.p99),
            row.cpu_cores,
            row.cpu_ns_per_span,
        ));
        json_rows.push(json!({
            "client_receiver": row.kind.label(),
            "batch": row.batch,
            "spans": row.spans,
            "spans_per_s": row.spans_per_s,
            "vs_baseline": baseline,
            "p50_us": micros(row.p50),
            "p99_us": micros(row.p99),
            "cpu_cores": row.cpu_cores,
            "cpu_ns_per_span": row.cpu_ns_per_span,
        }));
    }
    markdown.push_str("\n### One 512-span export at a time (950 sequential calls)\n\n| client -> receiver | p50 µs | p99 µs |\n|---|---:|---:|\n");
    let mut json_single = Vec::new();
    for (kind, p50, p99) in single {
        markdown.push_str(&format!(
            "| {} | {:.0} | {:.0} |\n",
            kind.label(),
            micros(*p50),
            micros(*p99)
        ));
        json_single.push(json!({ "client_receiver": kind.label(), "p50_us": micros(*p50), "p99_us": micros(*p99) }));
    }
    Report {
        name,
        markdown,
        json: json!({ "quick": quick, "concurrency": CONCURRENCY, "rows": json_rows, "single_512": json_single }),
    }
}
