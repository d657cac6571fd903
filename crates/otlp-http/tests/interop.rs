//! Interop with HTTP peers no one here wrote: the official Rust `opentelemetry-otlp`
//! exporter (http-proto and http-json), the official Python exporter and the official Node
//! exporters (JSON and protobuf) send to our receiver; our exporter sends to a reference
//! server that decodes with the official `opentelemetry-proto` types (prost and serde).

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::{endpoint, start};
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_proto::tonic::collector::trace::v1 as reference;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use otlp_codec::Json;
use otlp_core::{ExportRequest, Traces};
use otlp_http::{HttpExporter, HttpExporterConfig, HttpReceiverConfig};
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
        span_kind: SpanKind::Client,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_rust_exporter_sends_protobuf_and_json() {
    let (record, running) = start(HttpReceiverConfig::default()).await;
    for protocol in [Protocol::HttpBinary, Protocol::HttpJson] {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(format!("{}/v1/traces", endpoint(&running)))
            .build()
            .expect("official exporter");
        exporter
            .export((0..50).map(sdk_span).collect())
            .await
            .unwrap_or_else(|e| panic!("{protocol:?}: {e:?}"));
    }
    {
        let received = record.lock().expect("lock");
        assert_eq!(received.traces.len(), 2);
        for request in &received.traces {
            let spans = &request.resource_spans[0].scope_spans[0].spans;
            assert_eq!(spans.len(), 50);
            assert_eq!(spans[9].name, "GET /item/9");
            assert_eq!(spans[9].span_id.as_ref(), &(0x1009u64).to_be_bytes());
        }
        // Both encodings carried the same spans.
        assert_eq!(received.traces[0], received.traces[1]);
    }
    running.shutdown().await;
}

const PYTHON_EXPORTER: &str = r#"
import sys
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

url, compression, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
memory = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "python-interop"}))
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("python-interop")
for i in range(count):
    with tracer.start_as_current_span(f"python-span-{i}") as span:
        span.set_attribute("i", i)
exporter = OTLPSpanExporter(
    endpoint=url,
    headers={"x-sender": "python"},
    compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
)
print(exporter.export(memory.get_finished_spans()).name)
exporter.shutdown()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_exporter_sends_to_our_receiver() {
    let (record, running) = start(HttpReceiverConfig {
        // The metadata the client sends is forwarded when listed.
        intake: otlp_http::IntakeConfig {
            forward_headers: vec![http::HeaderName::from_static("x-sender")],
            ..Default::default()
        },
        ..HttpReceiverConfig::default()
    })
    .await;
    let url = format!("{}/v1/traces", endpoint(&running));
    for compression in ["none", "gzip"] {
        let url = url.clone();
        let output = tokio::task::spawn_blocking(move || {
            interop::run(
                &interop::python(),
                &["-c", PYTHON_EXPORTER, &url, compression, "30"],
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
        assert_eq!(received.spans(), 60);
        assert_eq!(received.headers[1]["x-sender"], "python");
    }
    running.shutdown().await;
}

const NODE_EXPORTER: &str = r#"
const { TracerProvider, SimpleSpanProcessor, InMemorySpanExporter } = require('@opentelemetry/sdk-trace');
const [url, format, count] = process.argv.slice(1);
const { OTLPTraceExporter } = format === 'proto'
  ? require('@opentelemetry/exporter-trace-otlp-proto')
  : require('@opentelemetry/exporter-trace-otlp-http');
const memory = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
const tracer = provider.getTracer('node-interop');
for (let i = 0; i < Number(count); i++) {
  const span = tracer.startSpan(`node-span-${i}`);
  span.setAttribute('i', i);
  span.end();
}
const exporter = new OTLPTraceExporter({ url, headers: { 'x-sender': 'node-' + format } });
provider.forceFlush().then(() => {
  const spans = memory.getFinishedSpans();
  if (spans.length !== Number(count)) {
    console.log(`FAILED only ${spans.length} spans finished`);
    process.exit(0);
  }
  exporter.export(spans, (result) => {
    console.log(result.code === 0 ? 'SUCCESS' : `FAILED ${result.error}`);
    exporter.shutdown().then(() => process.exit(0));
  });
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_node_exporters_send_json_and_protobuf() {
    let Some(modules) = interop::node_modules() else {
        assert!(
            !interop::required(),
            "OTLP_INTEROP_NODE_MODULES is required"
        );
        eprintln!("SKIPPED: no OTLP_INTEROP_NODE_MODULES; `cargo xtask ci` installs the exporters");
        return;
    };
    let (record, running) = start(HttpReceiverConfig {
        // The metadata the client sends is forwarded when listed.
        intake: otlp_http::IntakeConfig {
            forward_headers: vec![http::HeaderName::from_static("x-sender")],
            ..Default::default()
        },
        ..HttpReceiverConfig::default()
    })
    .await;
    let url = format!("{}/v1/traces", endpoint(&running));
    for format in ["json", "proto"] {
        let url = url.clone();
        let modules = modules.clone();
        let output = tokio::task::spawn_blocking(move || {
            interop::run_with_env(
                "node",
                &["-e", NODE_EXPORTER, &url, format, "25"],
                &[("NODE_PATH", modules.as_os_str())],
                b"",
            )
        })
        .await
        .expect("node task");
        let Some(output) = output else { return };
        assert_eq!(
            String::from_utf8_lossy(&output).trim(),
            "SUCCESS",
            "{format}"
        );
    }
    {
        let received = record.lock().expect("lock");
        assert_eq!(received.spans(), 50);
        let senders: Vec<_> = received
            .headers
            .iter()
            .map(|h| h["x-sender"].clone())
            .collect();
        assert_eq!(senders, ["node-json", "node-proto"]);
        let names: Vec<_> = received.traces[0].resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert!(names.contains(&"node-span-24".to_string()), "{names:?}");
    }
    running.shutdown().await;
}

/// A reference OTLP/HTTP server: hyper, decoding with the official types (prost for
/// protobuf, serde for JSON).
async fn start_reference() -> (
    Arc<Mutex<Vec<reference::ExportTraceServiceRequest>>>,
    String,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let received: Arc<Mutex<Vec<reference::ExportTraceServiceRequest>>> = Arc::default();
    let sink = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let sink = sink.clone();
                        async move {
                            let json = request.headers()["content-type"]
                                .to_str()
                                .unwrap_or("")
                                .contains("json");
                            let body = request
                                .into_body()
                                .collect()
                                .await
                                .expect("body")
                                .to_bytes();
                            let message: reference::ExportTraceServiceRequest = if json {
                                serde_json::from_slice(&body)
                                    .expect("official serde decodes our JSON")
                            } else {
                                Message::decode(body).expect("official prost decodes our protobuf")
                            };
                            sink.lock().expect("lock").push(message);
                            let answer = reference::ExportTraceServiceResponse {
                                partial_success: None,
                            };
                            let (bytes, content_type) = if json {
                                (
                                    serde_json::to_vec(&answer).expect("json"),
                                    "application/json",
                                )
                            } else {
                                (answer.encode_to_vec(), "application/x-protobuf")
                            };
                            let mut response = http::Response::new(Full::new(Bytes::from(bytes)));
                            response.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static(content_type),
                            );
                            Ok::<_, Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (received, format!("http://{address}"))
}

#[tokio::test]
async fn our_exporter_sends_to_a_server_on_the_official_types() {
    let (received, url) = start_reference().await;
    let first = realistic::traces(120, 1);
    let second = realistic::traces(80, 2);
    HttpExporter::new(HttpExporterConfig::new(&url).expect("config"))
        .expect("exporter")
        .export(&ExportRequest::<Traces>::new(first.clone()))
        .await
        .expect("protobuf");
    HttpExporter::new(
        HttpExporterConfig::new(&url)
            .expect("config")
            .with_codec(Json::default()),
    )
    .expect("exporter")
    .export(&ExportRequest::<Traces>::new(second.clone()))
    .await
    .expect("json");
    let received: Vec<otlp_model::collector::trace::ExportTraceServiceRequest> = received
        .lock()
        .expect("lock")
        .iter()
        .map(|m| Message::decode(m.encode_to_vec().as_slice()).expect("same schema"))
        .collect();
    assert_eq!(received, vec![first, second]);
}
