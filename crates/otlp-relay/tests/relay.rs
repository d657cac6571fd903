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

mod common;
use common::{KillOnDrop, address_after, start_relay, stop};

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
            "--admin-listen",
            "127.0.0.1:0",
            "--quiet",
            "--output",
        ])
        .arg(&output)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the relay");
    let mut guard = KillOnDrop(Some(relay.id()));
    let mut stderr = BufReader::new(relay.stderr.take().expect("stderr"));
    let mut banner = String::new();
    stderr.read_line(&mut banner).expect("banner");
    let grpc = address_after(&banner, "gRPC ").to_string();
    let http = address_after(&banner, "HTTP ").to_string();
    let ws = address_after(&banner, "WebSocket ").to_string();
    let admin = address_after(&banner, "admin ").to_string();

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

    // The admin endpoints: healthy, and the counters in Prometheus text (the queue has
    // taken all 100 items; what was sent by now depends on the batch linger).
    assert!(get(&admin, "/health").starts_with("HTTP/1.1 200"));
    let exposition = get(&admin, "/metrics");
    assert!(
        exposition.contains("otlp_relay_items_received_total 100"),
        "{exposition}"
    );
    assert!(
        exposition.contains("otlp_relay_items_dropped_total{reason=\"queue_full\"} 0"),
        "{exposition}"
    );
    assert!(
        exposition.contains("otlp_relay_receiver_memory_limit_bytes 536870912"),
        "{exposition}"
    );
    assert!(
        exposition.contains("otlp_relay_receiver_memory_refusals_total 0"),
        "{exposition}"
    );

    let stopped = Command::new("kill")
        .args(["-TERM", &relay.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = relay.wait().expect("the relay exits");
    guard.disarm();
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(
        rest.contains(
            "pipeline: 100 items in, 100 sent, 0 retried, 0 dropped, 0 queued; file: 3 requests written, 0 failed"
        ),
        "{rest}"
    );
    assert!(
        rest.contains("0 items not sent by the drain deadline"),
        "{rest}"
    );

    let text = std::fs::read_to_string(&output).expect("output");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // The three signals have their own pipelines, so their lines come in any order.
    let json = Json::default();
    let line = |key: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{{\"{key}\"")))
            .unwrap_or_else(|| panic!("a {key} line in {text}"))
            .as_bytes()
            .to_vec()
    };
    let decoded_traces: ExportTraceServiceRequest =
        json.decode(line("resourceSpans").into()).expect("traces");
    let decoded_metrics: ExportMetricsServiceRequest = json
        .decode(line("resourceMetrics").into())
        .expect("metrics");
    let decoded_logs: ExportLogsServiceRequest =
        json.decode(line("resourceLogs").into()).expect("logs");
    assert_eq!(decoded_traces, traces);
    assert_eq!(decoded_metrics, metrics);
    assert_eq!(decoded_logs, logs);
    let _ = std::fs::remove_file(&output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_forwards_upstream_to_another_relay_over_grpc() {
    let output =
        std::env::temp_dir().join(format!("otlp-relay-chain-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&output);
    let output_arg = output.display().to_string();
    let last = start_relay(&["--output", &output_arg], &[]);
    // The first relay takes its upstream from the standard environment variables.
    let endpoint = format!("http://{}", last.grpc);
    let first = start_relay(
        &["--exporter", "otlp"],
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-hop=first%20relay"),
        ],
    );
    let traces = realistic::traces(200, 5);
    otlp_http::HttpExporter::new(
        otlp_http::HttpExporterConfig::new(&format!("http://{}", first.http)).expect("config"),
    )
    .expect("exporter")
    .export(&ExportRequest::<Traces>::new(traces.clone()))
    .await
    .expect("into the first relay");
    let first_report = stop(first);
    assert!(
        first_report.contains("200 items in, 200 sent"),
        "{first_report}"
    );
    let last_report = stop(last);
    assert!(
        last_report.contains("file: 1 requests written"),
        "{last_report}"
    );
    let text = std::fs::read_to_string(&output).expect("output");
    let decoded: ExportTraceServiceRequest = Json::default()
        .decode(text.trim_end().as_bytes().to_vec().into())
        .expect("one traces line");
    assert_eq!(decoded, traces);
    let _ = std::fs::remove_file(&output);
}

/// A plain HTTP/1.1 GET, answered in full.
fn get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    answer
}

#[test]
fn a_bad_configuration_file_names_the_line_and_nothing_starts() {
    let config = common::temp_file("bad.toml");
    std::fs::write(
        &config,
        "[receivers.grpc]\nlisten = \"127.0.0.1:0\"\n\n[pipeline]\nlinger = \"soon\"\n",
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_otlp-relay"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:5:", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("soon"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
    let _ = std::fs::remove_file(&config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_exporter_rotates_by_size_and_keeps_the_configured_number() {
    let output = common::temp_file("rotated.jsonl");
    let config = common::temp_file("rotate.toml");
    std::fs::write(
        &config,
        format!(
            "[exporter.file]\npath = {:?}\nrotate_bytes = 40000\nkeep = 2\n\n[pipeline]\nbatch_items = 20\nlinger = \"1ms\"\n",
            output.display().to_string()
        ),
    )
    .expect("write");
    let relay = start_relay(&["--config", &config.display().to_string()], &[]);
    let exporter = otlp_grpc::GrpcExporter::new(
        otlp_grpc::ExporterConfig::new(&relay.endpoint("grpc")).expect("config"),
    )
    .expect("exporter");
    for seed in 0..30 {
        exporter
            .export(&ExportRequest::<Traces>::new(realistic::traces(20, seed)))
            .await
            .expect("export");
    }
    let report = stop(relay);
    assert!(report.contains("600 items in, 600 sent"), "{report}");
    let numbered = |n: u32| std::path::PathBuf::from(format!("{}.{n}", output.display()));
    for path in [output.clone(), numbered(1), numbered(2)] {
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert!(size <= 40_000, "{} is {size} bytes", path.display());
        // Every file holds whole lines.
        let _ = common::read_lines(&path);
    }
    assert!(!numbered(3).exists(), "only 2 rotated files are kept");
    for path in [numbered(1), numbered(2), output, config] {
        let _ = std::fs::remove_file(path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_request_limit_applies_to_every_receiver() {
    let config = common::temp_file("limits.toml");
    std::fs::write(
        &config,
        "[receivers]\nmemory_budget_bytes = 1048576\nmax_request_bytes = 65536\n\n[exporter]\nkind = \"null\"\n",
    )
    .expect("write");
    let relay = start_relay(&["--config", &config.display().to_string()], &[]);
    let small = ExportRequest::<Traces>::new(realistic::traces(20, 1));
    let large = ExportRequest::<Traces>::new(realistic::traces(400, 2));
    assert!(small.encoded_len() < 65536 && large.encoded_len() > 65536);
    let http = otlp_http::HttpExporter::new(
        otlp_http::HttpExporterConfig::new(&relay.endpoint("http/protobuf")).expect("config"),
    )
    .expect("exporter");
    let grpc = otlp_grpc::GrpcExporter::new(
        otlp_grpc::ExporterConfig::new(&relay.endpoint("grpc")).expect("config"),
    )
    .expect("exporter");
    http.export(&small).await.expect("small over HTTP");
    grpc.export(&small).await.expect("small over gRPC");
    for (transport, error) in [
        (
            "HTTP",
            http.export(&large).await.expect_err("large over HTTP"),
        ),
        (
            "gRPC",
            grpc.export(&large).await.expect_err("large over gRPC"),
        ),
    ] {
        assert_eq!(
            error.kind(),
            otlp_core::ErrorKind::TooLarge,
            "{transport}: {error}"
        );
    }
    let report = stop(relay);
    assert!(report.contains("40 items in"), "{report}");
    let _ = std::fs::remove_file(config);
}

/// `[runtime] workers` sets the relay's worker threads (tokio names them
/// `tokio-rt-worker`; the relay runs no other threads of its own but the main one), and a
/// relay on one worker still relays.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_worker_count_is_the_runtime_s() {
    let workers_of = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("threads")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim_end() == "tokio-rt-worker")
            .count()
    };
    for workers in [1, 3] {
        let config = common::temp_file(&format!("workers-{workers}.toml"));
        std::fs::write(&config, format!("[runtime]\nworkers = {workers}\n")).expect("write");
        let config_arg = config.display().to_string();
        let relay = start_relay(&["--config", &config_arg, "--exporter", "null"], &[]);
        // A worker names its thread once it runs, which may be after the banner.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while workers_of(relay.child.id()) < workers && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(workers_of(relay.child.id()), workers, "{}", relay.banner);
        otlp_grpc::GrpcExporter::new(
            otlp_grpc::ExporterConfig::new(&relay.endpoint("grpc")).expect("config"),
        )
        .expect("exporter")
        .export(&ExportRequest::<Traces>::new(realistic::traces(50, 1)))
        .await
        .expect("relayed");
        let report = stop(relay);
        assert!(report.contains("50 items in, 50 sent"), "{report}");
        let _ = std::fs::remove_file(&config);
    }
}
