//! The product end to end, with the real binaries: `otlp-loadgen` -> relay -> relay ->
//! file over every transport on each hop with compression, checked item by item against
//! what the load generator recorded; and a relay stopped by SIGTERM in the middle of load,
//! whose books must balance.

use std::time::{Duration, Instant};

mod common;
use common::{item_sets, loadgen, read_lines, start_relay, stop, temp_file};

/// (first hop, its compression, second hop, its compression): every transport appears
/// once on each hop, and so does every codec of HTTP and WebSocket.
const CHAINS: [(&str, &str, &str, &str); 7] = [
    ("grpc", "gzip", "websocket", "zstd"),
    ("grpc-stream", "zstd", "http/json", "gzip"),
    ("http/protobuf", "gzip", "grpc", "zstd"),
    ("http/json", "zstd", "grpc-stream", "gzip"),
    ("websocket", "gzip", "http/protobuf", "lz4"),
    ("http/msgpack", "gzip", "websocket/json", "none"),
    ("websocket/json", "none", "http/cbor", "zstd"),
];

#[test]
fn loadgen_to_relay_to_relay_to_file_carries_exactly_what_was_sent() {
    for (index, (first_hop, first_compression, second_hop, second_compression)) in
        CHAINS.into_iter().enumerate()
    {
        let chain = format!("{first_hop}+{first_compression} -> {second_hop}+{second_compression}");
        let output = temp_file(&format!("chain-{index}.jsonl"));
        let record = temp_file(&format!("chain-{index}-sent.jsonl"));
        let last = start_relay(&["--output", &output.display().to_string()], &[]);
        let upstream = last.endpoint(second_hop);
        let first = start_relay(
            &[
                "--exporter",
                "otlp",
                "--otlp-protocol",
                second_hop,
                "--otlp-endpoint",
                &upstream,
            ],
            &[("OTEL_EXPORTER_OTLP_COMPRESSION", second_compression)],
        );
        let report = loadgen(&[
            "--protocol",
            first_hop,
            "--endpoint",
            &first.endpoint(first_hop),
            "--compression",
            first_compression,
            "--signals",
            "traces,metrics,logs",
            "--count",
            "300",
            "--batch",
            "50",
            "--concurrency",
            "3",
            "--record",
            &record.display().to_string(),
        ]);
        assert_eq!(
            report.matches("\"items_accepted\":300,").count(),
            3,
            "{chain}: {report}"
        );
        let first_report = stop(first);
        assert!(
            first_report.contains("900 items in, 900 sent, 0 retried, 0 dropped"),
            "{chain}: {first_report}"
        );
        let last_report = stop(last);
        assert!(
            last_report.contains("900 items in, 900 sent, 0 retried, 0 dropped"),
            "{chain}: {last_report}"
        );
        let sent = item_sets(read_lines(&record));
        let written = item_sets(read_lines(&output));
        for (signal, (sent, written)) in ["traces", "metrics", "logs"]
            .into_iter()
            .zip(sent.iter().zip(&written))
        {
            assert_eq!(sent.len(), 300, "{chain} {signal}");
            assert!(
                sent == written,
                "{chain}: the {signal} written differ from those sent"
            );
        }
        let _ = std::fs::remove_file(&output);
        let _ = std::fs::remove_file(&record);
    }
}

/// The numbers in the relay's last line: items in, and dropped.
fn books(report: &str) -> (u64, u64) {
    let number_before = |label: &str| -> u64 {
        let end = report
            .rfind(label)
            .unwrap_or_else(|| panic!("{label:?} in {report}"));
        report[..end]
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a number before {label:?} in {report}"))
    };
    (number_before(" items in,"), number_before(" dropped,"))
}

#[test]
fn sigterm_during_load_drains_within_the_deadline_and_the_books_balance() {
    let output = temp_file("sigterm.jsonl");
    let relay = start_relay(
        &[
            "--output",
            &output.display().to_string(),
            "--drain-timeout",
            "3s",
        ],
        &[],
    );
    let endpoint = relay.endpoint("grpc");
    let mut load = std::process::Command::new(env!("CARGO_BIN_EXE_otlp-loadgen"))
        .args([
            "--protocol",
            "grpc",
            "--endpoint",
            &endpoint,
            "--signals",
            "traces,metrics,logs",
            "--batch",
            "200",
            "--duration",
            "30s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start otlp-loadgen");
    let mut load_guard = common::KillOnDrop(Some(load.id()));
    std::thread::sleep(Duration::from_millis(1500));
    let stopping = Instant::now();
    let report = stop(relay);
    let took = stopping.elapsed();
    // The drain deadline, plus the time open requests take to finish and the process to
    // exit on a loaded 2-core machine.
    assert!(took < Duration::from_secs(3 + 5), "the stop took {took:?}");
    let _ = load.kill();
    let _ = load.wait();
    load_guard.disarm();

    let (received, dropped) = books(&report);
    let lines = read_lines(&output);
    let written: usize = lines
        .traces
        .iter()
        .map(otlp_model::SignalRequest::item_count)
        .chain(
            lines
                .metrics
                .iter()
                .map(otlp_model::SignalRequest::item_count),
        )
        .chain(lines.logs.iter().map(otlp_model::SignalRequest::item_count))
        .sum();
    assert!(received > 0, "{report}");
    assert_eq!(
        received,
        written as u64 + dropped,
        "received = written + dropped; {report}"
    );
    eprintln!(
        "SIGTERM under load: {received} received, {written} written, {dropped} dropped, stop took {took:?}"
    );
    let _ = std::fs::remove_file(&output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_reach_the_upstream_by_the_deadline_is_reported_dropped() {
    // An upstream that refuses connections: every export fails and is retried until the
    // stop gives up on it at the drain deadline.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = format!("http://{}", refused.local_addr().expect("address"));
    drop(refused);
    let relay = start_relay(
        &[
            "--exporter",
            "otlp",
            "--otlp-protocol",
            "grpc",
            "--otlp-endpoint",
            &upstream,
            "--drain-timeout",
            "1s",
        ],
        &[],
    );
    let exporter = otlp_grpc::GrpcExporter::new(
        otlp_grpc::ExporterConfig::new(&relay.endpoint("grpc")).expect("config"),
    )
    .expect("exporter");
    for seed in 0..3 {
        exporter
            .export(&otlp_core::ExportRequest::<otlp_core::Traces>::new(
                otlp_testkit::realistic::traces(100, seed),
            ))
            .await
            .expect("accepted by the relay's queue");
    }
    let stopping = Instant::now();
    let report = stop(relay);
    assert!(stopping.elapsed() < Duration::from_secs(1 + 5), "{report}");
    let (received, dropped) = books(&report);
    assert_eq!((received, dropped), (300, 300), "{report}");
    assert!(report.contains(" 0 sent,"), "{report}");
}
