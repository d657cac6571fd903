//! Interop with gRPC peers no one here wrote: the official Rust `opentelemetry-otlp`
//! exporter (tonic) and the official Python exporter send to our receiver; our exporter
//! sends to a server built from tonic and the official `opentelemetry-proto` service
//! definitions, which also lacks our streaming service, so the stream exporter falls back
//! to unary calls there.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{endpoint, start_recording_receiver};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_proto::tonic::collector::trace::v1 as reference;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use otlp_compression::{Gzip, Zstd};
use otlp_core::{ErrorKind, ExportRequest, Traces};
use otlp_grpc::{
    ExporterConfig, GrpcExporter, ReceiverConfig, StreamExporter, StreamExporterConfig,
};
use otlp_testkit::{interop, realistic};
use prost::Message;

fn sdk_span(i: u64) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10_u128 + u128::from(i)),
            SpanId::from(0x1000 + i),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Server,
        name: format!("GET /item/{i}").into(),
        start_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        end_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_001),
        attributes: vec![KeyValue::new("http.response.status_code", 200)],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Ok,
        instrumentation_scope: InstrumentationScope::builder("interop").build(),
    }
}

#[tokio::test]
async fn the_official_rust_exporter_sends_to_our_receiver() {
    let (record, running) = start_recording_receiver(ReceiverConfig::default()).await;
    for compression in [None, Some(opentelemetry_otlp::Compression::Gzip)] {
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint(&running));
        if let Some(compression) = compression {
            builder = builder.with_compression(compression);
        }
        let exporter = builder.build().expect("official exporter");
        let spans: Vec<SpanData> = (0..50).map(sdk_span).collect();
        exporter
            .export(spans)
            .await
            .unwrap_or_else(|e| panic!("{compression:?}: {e:?}"));
    }
    {
        let received = record.lock().expect("lock");
        assert_eq!(received.traces.len(), 2);
        for request in &received.traces {
            let spans = &request.resource_spans[0].scope_spans[0].spans;
            assert_eq!(spans.len(), 50);
            assert_eq!(spans[7].name, "GET /item/7");
            assert_eq!(spans[7].span_id.as_ref(), &(0x1007u64).to_be_bytes());
            assert_eq!(
                request.resource_spans[0].scope_spans[0]
                    .scope
                    .as_ref()
                    .map(|s| s.name.as_str()),
                Some("interop")
            );
        }
    }
    running.shutdown().await;
}

const PYTHON_EXPORTER: &str = r#"
import sys
import grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

endpoint, compression, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
memory = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "python-interop"}))
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("python-interop")
for i in range(count):
    with tracer.start_as_current_span(f"python-span-{i}") as span:
        span.set_attribute("i", i)
exporter = OTLPSpanExporter(
    endpoint=endpoint,
    insecure=True,
    headers=(("x-sender", "python"),),
    compression=grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression,
)
result = exporter.export(memory.get_finished_spans())
exporter.shutdown()
print(result.name)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_exporter_sends_to_our_receiver() {
    let (record, running) = start_recording_receiver(ReceiverConfig {
        // The metadata the client sends is forwarded when listed.
        intake: otlp_grpc::IntakeConfig {
            forward_headers: vec![http::HeaderName::from_static("x-sender")],
            ..Default::default()
        },
        ..ReceiverConfig::default()
    })
    .await;
    let address = running.local_addr().to_string();
    for compression in ["none", "gzip"] {
        let address = address.clone();
        let output = tokio::task::spawn_blocking(move || {
            interop::run(
                &interop::python(),
                &["-c", PYTHON_EXPORTER, &address, compression, "40"],
                b"",
            )
        })
        .await
        .expect("python task");
        let Some(output) = output else { return };
        assert_eq!(
            String::from_utf8_lossy(&output).trim(),
            "SUCCESS",
            "{compression}"
        );
    }
    {
        let received = record.lock().expect("lock");
        assert_eq!(received.spans(), 80);
        let first = &received.traces[0].resource_spans[0];
        assert!(
            first.scope_spans[0]
                .spans
                .iter()
                .any(|s| s.name == "python-span-39")
        );
        assert_eq!(received.headers[0]["x-sender"], "python");
    }
    running.shutdown().await;
}

/// The reference server: tonic with the official generated service, accepting gzip only.
#[derive(Clone, Default)]
struct ReferenceTraces(Arc<Mutex<Vec<reference::ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl reference::trace_service_server::TraceService for ReferenceTraces {
    async fn export(
        &self,
        request: tonic::Request<reference::ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<reference::ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().expect("lock").push(request.into_inner());
        Ok(tonic::Response::new(
            reference::ExportTraceServiceResponse {
                partial_success: None,
            },
        ))
    }
}

async fn start_reference_server() -> (ReferenceTraces, String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let traces = ReferenceTraces::default();
    let service = reference::trace_service_server::TraceServiceServer::new(traces.clone())
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    (traces, format!("http://{address}"), stop)
}

fn as_ours(
    message: &reference::ExportTraceServiceRequest,
) -> otlp_model::collector::trace::ExportTraceServiceRequest {
    Message::decode(message.encode_to_vec().as_slice()).expect("same schema")
}

#[tokio::test]
async fn our_exporter_sends_to_the_reference_tonic_server() {
    let (received, url, stop) = start_reference_server().await;
    let plain = GrpcExporter::new(ExporterConfig::new(&url).expect("config")).expect("exporter");
    let gzip = GrpcExporter::new(
        ExporterConfig::new(&url)
            .expect("config")
            .with_compression(Gzip::default()),
    )
    .expect("exporter");
    let first = realistic::traces(200, 1);
    let second = realistic::traces(300, 2);
    plain
        .export(&ExportRequest::<Traces>::new(first.clone()))
        .await
        .expect("plain");
    gzip.export(&ExportRequest::<Traces>::new(second.clone()))
        .await
        .expect("gzip");

    // zstd is not among what this server accepts: reported as a refused encoding.
    let zstd = GrpcExporter::new(
        ExporterConfig::new(&url)
            .expect("config")
            .with_compression(Zstd::default()),
    )
    .expect("exporter");
    let error = zstd
        .export(&ExportRequest::<Traces>::new(first.clone()))
        .await
        .expect_err("zstd refused");
    assert_eq!(error.kind(), ErrorKind::UnsupportedMediaType, "{error}");

    // The stream exporter finds no streaming service and falls back to unary calls.
    let stream = StreamExporter::new(plain.clone(), StreamExporterConfig::default());
    let third = realistic::traces(100, 3);
    let outcome = stream
        .export(ExportRequest::<Traces>::new(third.clone()).into())
        .await
        .expect("fallback");
    assert_eq!(outcome.accepted(), 100);
    assert!(
        stream
            .stats()
            .fell_back_to_unary
            .load(std::sync::atomic::Ordering::Relaxed)
    );

    let received: Vec<_> = received
        .0
        .lock()
        .expect("lock")
        .iter()
        .map(as_ours)
        .collect();
    assert_eq!(received, vec![first, second, third]);
    let _ = stop.send(());
}
