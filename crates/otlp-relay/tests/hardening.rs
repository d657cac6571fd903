//! The relay binary against hostile clients and impatient operators: a record larger than
//! a batch's byte cap arrives intact; silent connections neither hold a stop nor a slot
//! for ever; a second signal stops at once with balanced books; bearer tokens guard every
//! receiver (the WebSocket path included); browser origins are refused unless allowed; and
//! the listeners bind to loopback unless told otherwise.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use otlp_core::{ExportRequest, Logs, Traces};
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::common::{AnyValue, any_value};
use otlp_model::logs::{LogRecord, ResourceLogs, ScopeLogs};
use otlp_testkit::realistic;

mod common;
use common::{read_lines, start_relay, stop, temp_file};

fn big_log(bytes: usize) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 42,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(
                            (0..bytes)
                                .map(|i| char::from(b'a' + (i % 26) as u8))
                                .collect(),
                        )),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The numbers in the relay's last line: items in, sent, dropped, and abandoned if a
/// second signal stopped it.
fn books(report: &str) -> (u64, u64, u64, u64) {
    let number_before = |label: &str| -> u64 {
        report
            .rfind(label)
            .and_then(|end| report[..end].rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    (
        number_before(" items in,"),
        number_before(" sent,"),
        number_before(" dropped,"),
        number_before(" items abandoned"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_record_of_5_mib_arrives_intact() {
    let output = temp_file("big-record.jsonl");
    let relay = start_relay(&["--output", &output.display().to_string()], &[]);
    let record = big_log(5 << 20);
    http_exporter(&relay)
        .export(&ExportRequest::<Logs>::new(record.clone()))
        .await
        .expect("accepted");
    // Another request behind it still goes through: the pipeline is not held.
    http_exporter(&relay)
        .export(&ExportRequest::<Traces>::new(realistic::traces(3, 1)))
        .await
        .expect("accepted");
    let report = stop(relay);
    let lines = read_lines(&output);
    assert_eq!(lines.logs, vec![record], "{report}");
    assert_eq!(lines.traces.len(), 1);
    let _ = std::fs::remove_file(&output);
}

/// An OTLP/HTTP protobuf exporter to the relay.
fn http_exporter(relay: &common::Relay) -> otlp_http::HttpExporter {
    otlp_http::HttpExporter::new(
        otlp_http::HttpExporterConfig::new(&relay.endpoint("http/protobuf")).expect("config"),
    )
    .expect("exporter")
}

/// Opens `count` TCP connections to `address` that never send a byte.
fn silent(address: &str, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| TcpStream::connect(address).expect("connect"))
        .collect()
}

/// Opens `count` connections to `address` that send the HTTP/2 client preface and then
/// nothing (not the SETTINGS frame that must follow it).
fn stalled_after_preface(address: &str, count: usize) -> Vec<TcpStream> {
    let mut streams = silent(address, count);
    for stream in &mut streams {
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .expect("preface");
    }
    streams
}

/// Whether the peer has closed `stream` (a read sees end of file or a reset).
fn closed(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_while_good_clients_are_served() {
    let relay = start_relay(
        &[
            "--exporter",
            "null",
            "--ws-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let ws = relay.banner_address("WebSocket ", 1);
    let admin = relay.banner_address("admin ", 0);
    let mut held = Vec::new();
    // 300 on each OTLP port (the admin listener serves 64 at a time by design).
    for address in [&relay.grpc, &relay.http, &ws] {
        held.extend(silent(address, 300));
    }
    held.extend(silent(&admin, 64));
    // And 50 on each HTTP/2 port that stall right after the preface.
    for address in [&relay.grpc, &relay.http] {
        held.extend(stalled_after_preface(address, 50));
    }
    let count = held.len();
    // Good clients are served meanwhile, on every transport.
    let started = Instant::now();
    otlp_grpc::GrpcExporter::new(
        otlp_grpc::ExporterConfig::new(&relay.endpoint("grpc")).expect("config"),
    )
    .expect("exporter")
    .export(&ExportRequest::<Traces>::new(realistic::traces(3, 1)))
    .await
    .expect("gRPC served beside silent connections");
    http_exporter(&relay)
        .export(&ExportRequest::<Traces>::new(realistic::traces(3, 1)))
        .await
        .expect("HTTP served beside silent connections");
    // Every silent connection is closed within 30 s.
    loop {
        held.retain_mut(|stream| !closed(stream));
        if held.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} silent connections still open after 30 s, to {:?}",
            held.len(),
            held.iter()
                .map(|s| s.peer_addr().map(|a| a.port()).unwrap_or(0))
                .collect::<std::collections::BTreeSet<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{count} silent connections closed within {:?}",
        started.elapsed()
    );
    // Each was counted, and the count is visible.
    let timeouts = metric(&admin, "otlp_relay_connections_opening_timeouts_total");
    assert!(timeouts >= count as u64, "{timeouts}");
    stop(relay);
}

/// The value of the unlabelled metric `name` in the relay's /metrics at `admin`.
fn metric(admin: &str, name: &str) -> u64 {
    let mut exposition = String::new();
    let mut admin_client = TcpStream::connect(admin).expect("admin");
    admin_client
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let _ = admin_client.read_to_string(&mut exposition);
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {exposition}"))
}

/// The stream receivers' de-duplication windows are part of the one memory budget: held
/// at their bound from the start, so what the budget reports covers them.
#[test]
fn the_dedup_windows_are_held_against_the_memory_budget() {
    let relay = start_relay(
        &[
            "--exporter",
            "null",
            "--ws-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let admin = relay.banner_address("admin ", 0);
    // gRPC, WebSocket on the HTTP port, standalone WebSocket: each window holds tens of
    // thousands of ids (up to 240 bytes each, as charged), and together at most a
    // sixteenth of the default 512 MiB budget.
    let held = metric(&admin, "otlp_relay_receiver_memory_bytes");
    assert!(
        (24 << 20..=32 << 20).contains(&held),
        "{held} bytes held at idle"
    );
    stop(relay);
}

#[test]
fn a_stop_with_silent_connections_open_finishes_within_the_drain_timeout() {
    let relay = start_relay(
        &[
            "--exporter",
            "null",
            "--ws-listen",
            "127.0.0.1:0",
            "--drain-timeout",
            "3s",
        ],
        &[],
    );
    let ws = relay.banner_address("WebSocket ", 1);
    let mut held = Vec::new();
    for address in [&relay.grpc, &relay.http, &ws] {
        held.extend(silent(address, 20));
        // And one that has started an HTTP/1.1 request it never finishes.
        let mut slow = TcpStream::connect(address).expect("connect");
        slow.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
            .expect("write");
        held.push(slow);
    }
    std::thread::sleep(Duration::from_millis(300));
    let stopping = Instant::now();
    let report = stop(relay);
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(3 + 2),
        "the stop took {took:?}: {report}"
    );
    let (received, sent, dropped, _) = books(&report);
    assert_eq!(received, sent + dropped, "{report}");
}

#[test]
fn a_second_signal_stops_at_once_and_the_books_balance() {
    // An upstream that accepts connections and never answers: the drain would wait for
    // the whole drain timeout.
    let hole = otlp_testkit::eavesdrop::BlackHole::start();
    let upstream = format!("http://{}", hole.address());
    let mut relay = start_relay(
        &[
            "--exporter",
            "otlp",
            "--otlp-protocol",
            "http/protobuf",
            "--otlp-endpoint",
            &upstream,
            "--drain-timeout",
            "60s",
        ],
        &[],
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        http_exporter(&relay)
            .export(&ExportRequest::<Traces>::new(realistic::traces(20, 1)))
            .await
            .expect("queued");
    });
    let pid = relay.child.id().to_string();
    let signal = || {
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
    };
    signal();
    std::thread::sleep(Duration::from_millis(500));
    let stopping = Instant::now();
    signal();
    let status = relay.child.wait().expect("exit");
    relay.guard.disarm();
    let took = stopping.elapsed();
    let mut report = String::new();
    let _ = relay.stderr.read_to_string(&mut report);
    assert!(took < Duration::from_secs(5), "took {took:?}: {report}");
    assert!(status.success(), "{status}: {report}");
    assert!(report.contains("second signal"), "{report}");
    let (received, sent, dropped, abandoned) = books(&report);
    assert_eq!(received, 20, "{report}");
    assert_eq!(received, sent + dropped + abandoned, "{report}");
}

/// The status line of an HTTP/1.1 request written by hand.
fn status_of(address: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.write_all(request.as_bytes()).expect("write");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).unwrap_or(0);
    String::from_utf8_lossy(&head[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: otlp-stream.v1.protobuf\r\n{extra}\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_guard_every_receiver_and_browser_origins_need_allowing() {
    let tokens = temp_file("tokens");
    std::fs::write(&tokens, "# rotated monthly\nsecond-token\n").expect("tokens");
    let config = temp_file("auth.toml");
    std::fs::write(
        &config,
        format!(
            "[receivers]\nbearer_tokens = [\"first-token\"]\nbearer_tokens_file = {:?}\n\
             allowed_origins = [\"https://app.example\"]\n",
            tokens.display().to_string()
        ),
    )
    .expect("config");
    let relay = start_relay(
        &[
            "--config",
            &config.display().to_string(),
            "--exporter",
            "null",
        ],
        &[],
    );
    let bearer = |token: &str| {
        (
            http::HeaderName::from_static("authorization"),
            http::HeaderValue::from_str(&format!("Bearer {token}")).expect("value"),
        )
    };
    let send = |endpoint: String, token: &str| {
        let mut config = otlp_http::HttpExporterConfig::new(&endpoint).expect("config");
        if !token.is_empty() {
            let (name, value) = bearer(token);
            config = config.with_header(name, value);
        }
        async move {
            otlp_http::HttpExporter::new(config)
                .expect("exporter")
                .export(&ExportRequest::<Traces>::new(realistic::traces(1, 1)))
                .await
        }
    };
    let refused = send(relay.endpoint("http/protobuf"), "")
        .await
        .expect_err("no token");
    assert_eq!(
        refused.kind(),
        otlp_core::ErrorKind::Unauthenticated,
        "{refused}"
    );
    send(relay.endpoint("http/protobuf"), "second-token")
        .await
        .expect("a token from the file");
    let grpc = |token: &str| {
        let mut config = otlp_grpc::ExporterConfig::new(&relay.endpoint("grpc")).expect("config");
        if !token.is_empty() {
            let (name, value) = bearer(token);
            config = config.with_header(name, value);
        }
        async move {
            otlp_grpc::GrpcExporter::new(config)
                .expect("exporter")
                .export(&ExportRequest::<Traces>::new(realistic::traces(1, 1)))
                .await
        }
    };
    assert!(grpc("").await.is_err(), "gRPC without a token");
    grpc("first-token").await.expect("gRPC with a token");
    // The WebSocket path on the HTTP port: no token, 401; with one, switched.
    assert!(
        status_of(&relay.http, &upgrade("/v1/stream", "")).contains(" 401"),
        "the WebSocket path is authenticated"
    );
    let authorized = "Authorization: Bearer first-token\r\n";
    assert!(status_of(&relay.http, &upgrade("/v1/stream", authorized)).contains(" 101"));
    // A browser page of another site is refused; the allowed one is switched.
    let foreign = format!("{authorized}Origin: https://evil.example\r\n");
    assert!(status_of(&relay.http, &upgrade("/v1/stream", &foreign)).contains(" 403"));
    let allowed = format!("{authorized}Origin: https://app.example\r\n");
    assert!(status_of(&relay.http, &upgrade("/v1/stream", &allowed)).contains(" 101"));
    stop(relay);
    let _ = std::fs::remove_file(&tokens);
    let _ = std::fs::remove_file(&config);
}

#[test]
fn listeners_bind_to_loopback_unless_configured() {
    let output = Command::new(env!("CARGO_BIN_EXE_otlp-relay"))
        .arg("--print-config")
        .output()
        .expect("print-config");
    let text = String::from_utf8_lossy(&output.stdout);
    for port in [4317, 4318, 13133] {
        assert!(
            text.contains(&format!("listen = \"127.0.0.1:{port}\"")),
            "{text}"
        );
    }
    assert!(!text.contains("0.0.0.0"), "{text}");
}

/// Sends with `send` until `until`, collecting every outcome.
fn flood<F, Fut>(
    transport: &'static str,
    until: Instant,
    mut send: F,
) -> tokio::task::JoinHandle<(&'static str, Vec<Result<(), otlp_core::ExportError>>)>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), otlp_core::ExportError>> + Send,
{
    tokio::spawn(async move {
        let mut results = Vec::new();
        while Instant::now() < until {
            results.push(send().await);
        }
        (transport, results)
    })
}

/// The relay's peak resident memory, from `/proc`.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_60_mib_requests_past_a_stalled_upstream_stays_within_the_budget() {
    const BUDGET: u64 = 512 << 20;
    // Stated in the relay's README: what the process may take beyond its budget (the
    // runtime, buffers not yet counted, allocator slack), as measured here.
    const OVERHEAD: u64 = 128 << 20;
    // An upstream that accepts connections and never reads or answers.
    let hole = otlp_testkit::eavesdrop::BlackHole::start();
    let upstream = format!("http://{}", hole.address());
    let relay = start_relay(
        &[
            "--exporter",
            "otlp",
            "--otlp-protocol",
            "http/protobuf",
            "--otlp-endpoint",
            &upstream,
            "--ws-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let pid = relay.child.id();
    let ws = relay.banner_address("WebSocket ", 1);
    // About 60 MiB of realistic spans, encoded once and sent as they are.
    let bytes = ExportRequest::<Traces>::new(realistic::traces(135_000, 1)).to_protobuf();
    assert!(
        bytes.len() > 58 << 20 && bytes.len() < 64 << 20,
        "{}",
        bytes.len()
    );
    let request = ExportRequest::<Traces>::from_encoded(bytes, 135_000);

    let until = Instant::now() + Duration::from_secs(8);
    let mut flooders = Vec::new();
    for _ in 0..2 {
        let grpc = otlp_grpc::GrpcExporter::new(
            otlp_grpc::ExporterConfig::new(&relay.endpoint("grpc"))
                .expect("config")
                .with_timeout(Duration::from_secs(20)),
        )
        .expect("exporter");
        let sent = request.clone();
        flooders.push(flood("grpc", until, move || {
            let (grpc, sent) = (grpc.clone(), sent.clone());
            async move { grpc.export(&sent).await.map(|_| ()) }
        }));
        let http = otlp_http::HttpExporter::new(
            otlp_http::HttpExporterConfig::new(&relay.endpoint("http/protobuf"))
                .expect("config")
                .with_timeout(Duration::from_secs(20)),
        )
        .expect("exporter");
        let sent = request.clone();
        flooders.push(flood("http", until, move || {
            let (http, sent) = (http.clone(), sent.clone());
            async move { http.export(&sent).await.map(|_| ()) }
        }));
        let mut config = otlp_websocket::WsExporterConfig::new(format!("ws://{ws}/v1/stream"));
        config.call_timeout = Duration::from_secs(20);
        let websocket = otlp_websocket::WsExporter::new(config);
        let sent = request.clone();
        flooders.push(flood("websocket", until, move || {
            let (websocket, sent) = (websocket.clone(), sent.clone());
            async move {
                let result = websocket.export(sent.into()).await.map(|_| ());
                if result.is_err() {
                    // The stream sender resends refused batches by itself; pace the loop.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                result
            }
        }));
    }
    let mut accepted = 0;
    let mut refused = 0;
    for flooder in flooders {
        let (transport, results) = flooder.await.expect("flooder");
        for result in results {
            match result {
                Ok(()) => accepted += 1,
                Err(error) => {
                    refused += 1;
                    assert!(
                        error.is_retryable(),
                        "{transport}: a refusal that is not retryable: {error}"
                    );
                }
            }
        }
    }
    let peak = peak_rss_bytes(pid);
    eprintln!(
        "flood of 60 MiB requests: {accepted} accepted, {refused} refused (all retryable); \
         peak RSS {} MiB for a budget of {} MiB",
        peak >> 20,
        BUDGET >> 20
    );
    assert!(refused > 0, "the flood was refused at some point");
    assert!(
        peak < BUDGET + OVERHEAD,
        "peak RSS {} MiB is over the budget ({} MiB) plus the stated overhead ({} MiB)",
        peak >> 20,
        BUDGET >> 20,
        OVERHEAD >> 20
    );
    // Stop at once: the upstream will never take what is queued.
    let mut relay = relay;
    for _ in 0..2 {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = relay.child.wait();
    relay.guard.disarm();
}

/// A stop that arrives as soon as the relay says it is listening is a stop like any
/// other: drained, reported, exit status 0 (the signals were listened for only after the
/// banner, and a SIGTERM in between killed the relay without its report).
#[test]
fn a_stop_right_after_the_start_is_drained_and_reported() {
    for _ in 0..20 {
        let relay = start_relay(&["--exporter", "null"], &[]);
        let report = stop(relay);
        assert!(report.contains("otlp-relay: stopped;"), "{report}");
    }
}
