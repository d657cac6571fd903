//! The relay binary end to end: started on loopback ports, fed over gRPC, HTTP (JSON) and
//! WebSocket by our exporters, stopped with SIGTERM; the output file holds exactly what was
//! sent, one OTLP/JSON request per line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use otlp_codec::{Codec, Json};
use otlp_core::{ExportRequest, Logs, Metrics, Traces};
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_testkit::realistic;

fn address_after<'a>(line: &'a str, label: &str) -> &'a str {
    let start = line
        .find(label)
        .map(|i| i + label.len())
        .expect("label in the banner");
    line[start..]
        .split([',', ';', '/'])
        .next()
        .expect("an address")
        .trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_writes_what_it_receives_as_otlp_json_lines() {
    let output = std::env::temp_dir().join(format!("otlp-relay-test-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&output);
    let mut relay = Command::new(env!("CARGO_BIN_EXE_otlp-relay"))
        .args([
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--ws-listen",
            "127.0.0.1:0",
            "--quiet",
            "--output",
        ])
        .arg(&output)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the relay");
    let mut stderr = BufReader::new(relay.stderr.take().expect("stderr"));
    let mut banner = String::new();
    stderr.read_line(&mut banner).expect("banner");
    let grpc = address_after(&banner, "gRPC ").to_string();
    let http = address_after(&banner, "HTTP ").to_string();
    let ws = address_after(&banner, "WebSocket ").to_string();

    let traces = realistic::traces(50, 1);
    let metrics = realistic::metrics(30, 2);
    let logs = realistic::logs(20, 3);
    otlp_grpc::GrpcExporter::new(
        otlp_grpc::ExporterConfig::new(&format!("http://{grpc}")).expect("config"),
    )
    .expect("exporter")
    .export(&ExportRequest::<Traces>::new(traces.clone()))
    .await
    .expect("gRPC");
    otlp_http::HttpExporter::new(
        otlp_http::HttpExporterConfig::new(&format!("http://{http}"))
            .expect("config")
            .with_codec(Json::default()),
    )
    .expect("exporter")
    .export(&ExportRequest::<Metrics>::new(metrics.clone()))
    .await
    .expect("HTTP");
    otlp_websocket::WsExporter::new(otlp_websocket::WsExporterConfig::new(format!(
        "ws://{ws}/v1/stream"
    )))
    .export(ExportRequest::<Logs>::new(logs.clone()).into())
    .await
    .expect("WebSocket");

    let stopped = Command::new("kill")
        .args(["-TERM", &relay.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = relay.wait().expect("the relay exits");
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(
        rest.contains(
            "received 50 spans, 30 data points, 20 log records; 3 requests written, 0 failed"
        ),
        "{rest}"
    );

    let text = std::fs::read_to_string(&output).expect("output");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let json = Json::default();
    let decoded_traces: ExportTraceServiceRequest = json
        .decode(lines[0].as_bytes().to_vec().into())
        .expect("traces line");
    let decoded_metrics: ExportMetricsServiceRequest = json
        .decode(lines[1].as_bytes().to_vec().into())
        .expect("metrics line");
    let decoded_logs: ExportLogsServiceRequest = json
        .decode(lines[2].as_bytes().to_vec().into())
        .expect("logs line");
    assert_eq!(decoded_traces, traces);
    assert_eq!(decoded_metrics, metrics);
    assert_eq!(decoded_logs, logs);
    let _ = std::fs::remove_file(&output);
}
