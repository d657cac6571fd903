//! A real browser streaming OTLP/JSON over a WebSocket, and hostile clients: each gets the
//! documented close code or handshake refusal, and the receiver keeps serving others.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Traces};
use otlp_testkit::{interop, realistic};
use otlp_websocket::{
    RunningWsReceiver, WsExporter, WsExporterConfig, WsReceiver, WsReceiverConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Received = Arc<Mutex<Vec<AnyExportRequest>>>;

async fn start(config: WsReceiverConfig) -> (Received, RunningWsReceiver) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let service = tower::service_fn(move |request: AnyExportRequest| {
        let sink = sink.clone();
        async move {
            let items = request.item_count();
            sink.lock().expect("lock").push(request);
            Ok::<_, ExportError>(ExportOutcome::success(items))
        }
    });
    let running = WsReceiver::new(service)
        .with_config(config)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    (received, running)
}

fn url(running: &RunningWsReceiver) -> String {
    format!("ws://{}/v1/stream", running.local_addr())
}

async fn still_serving(running: &RunningWsReceiver) {
    let exporter = WsExporter::new(WsExporterConfig::new(url(running)));
    exporter
        .export(ExportRequest::<Traces>::new(realistic::traces(5, 9)).into())
        .await
        .expect("a well-behaved client is served");
}

async fn close_code_after(
    running: &RunningWsReceiver,
    subprotocol: &str,
    messages: Vec<Message>,
) -> Option<u16> {
    let mut request = url(running).into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        subprotocol.parse().expect("value"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    for message in messages {
        let _ = socket.send(message).await;
    }
    while let Some(message) = socket.next().await {
        match message {
            Ok(Message::Close(Some(frame))) => return Some(u16::from(frame.code)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[tokio::test]
async fn non_envelope_frames_get_their_close_codes() {
    let (received, running) = start(WsReceiverConfig::default()).await;
    // Garbage in a binary message: not a StreamBatch, no sequence to refuse alone.
    let code = close_code_after(
        &running,
        "otlp-stream.v1.protobuf",
        vec![Message::Binary(vec![0xff, 0x01, 0x02].into())],
    )
    .await;
    assert_eq!(code, Some(1007));
    // Text on the binary subprotocol.
    let code = close_code_after(
        &running,
        "otlp-stream.v1.protobuf",
        vec![Message::text("{}")],
    )
    .await;
    assert_eq!(code, Some(1003));
    // Garbage compressed stream on a compressed subprotocol.
    let code = close_code_after(
        &running,
        "otlp-stream.v1.protobuf+gzip",
        vec![Message::Binary(vec![1, 2, 3, 4].into())],
    )
    .await;
    assert_eq!(code, Some(1007));
    // A batch with a readable sequence but a malformed payload is refused alone: an ack
    // with INVALID_ARGUMENT, and the connection stays open.
    let mut request = url(&running).into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "otlp-stream.v1.protobuf".parse().expect("value"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    socket
        .send(Message::Binary(
            vec![0x08, 0x07, 0x12, 0x03, 0x0a, 0xff, 0xff].into(),
        ))
        .await
        .expect("send");
    let ack = loop {
        match socket.next().await.expect("a message").expect("ok") {
            Message::Binary(bytes) => break bytes,
            _ => continue,
        }
    };
    let ack = <otlp_model::stream::StreamAck as prost::Message>::decode(ack).expect("ack");
    assert_eq!((ack.sequence, ack.code), (7, 3));
    // Frames after our close are not processed.
    socket.send(Message::Close(None)).await.expect("close");
    let _ = socket
        .send(Message::Binary(
            ExportRequest::<Traces>::new(realistic::traces(1, 1)).to_protobuf(),
        ))
        .await;
    drop(socket);
    assert!(received.lock().expect("lock").is_empty());
    still_serving(&running).await;
    running.shutdown().await;
}

#[tokio::test]
async fn a_huge_handshake_header_is_refused_and_others_are_served() {
    let (_, running) = start(WsReceiverConfig::default()).await;
    let mut stream = tokio::net::TcpStream::connect(running.local_addr())
        .await
        .expect("connect");
    let padding = "a".repeat(1 << 20);
    let handshake = format!(
        "GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: otlp-stream.v1.protobuf\r\nX-Padding: {padding}\r\n\r\n"
    );
    let _ = stream.write_all(handshake.as_bytes()).await;
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await;
    let text = match read {
        Ok(Ok(n)) => String::from_utf8_lossy(&answer[..n]).to_string(),
        _ => String::new(),
    };
    assert!(
        !text.starts_with("HTTP/1.1 101"),
        "no upgrade for a 1 MB header: {text}"
    );
    still_serving(&running).await;
    running.shutdown().await;
}

const PAGE: &str = r#"<!doctype html>
<html><body><pre id="result">pending</pre><script>
const socket = new WebSocket("RECEIVER", ["otlp-stream.v1.json"]);
const acks = [];
socket.onopen = () => {
  for (let batch = 1; batch <= 3; batch++) {
    const spans = [0, 1].map(i => ({
      traceId: "5b8efff798038103d269b633813fc60c",
      spanId: "eee19b7ec3c1b1" + batch + i,
      name: "ws-browser-span-" + batch + "-" + i
    }));
    socket.send(JSON.stringify({
      sequence: String(batch),
      traces: { resourceSpans: [{ scopeSpans: [{ spans }] }] }
    }));
  }
};
socket.onmessage = (event) => {
  const ack = JSON.parse(event.data);
  acks.push(ack.sequence + ":" + (ack.code || 0));
  if (acks.length === 3) {
    acks.sort();
    document.getElementById("result").textContent = "acks " + acks.join(",");
    fetch("/report", { method: "POST", body: "acks " + acks.join(",") });
    socket.close(1000);
  }
};
socket.onerror = () => { document.getElementById("result").textContent = "error"; };
</script></body></html>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_streams_otlp_json_over_a_websocket() {
    let page = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!(
        "http://127.0.0.1:{}",
        page.local_addr().expect("address").port()
    );
    let config = WsReceiverConfig {
        allowed_origins: vec![origin.clone()],
        ..Default::default()
    };
    let (received, running) = start(config).await;
    let html = PAGE.replace("RECEIVER", &url(&running));
    // The page reports what it saw with a POST to its own origin.
    let (report_tx, mut report_rx) = tokio::sync::mpsc::channel::<String>(1);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = page.accept().await else {
                return;
            };
            let html = html.clone();
            let report_tx = report_tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let html = html.clone();
                        let report_tx = report_tx.clone();
                        async move {
                            use http_body_util::BodyExt;
                            if request.uri().path() == "/report" {
                                let body = request
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let _ = report_tx
                                    .send(String::from_utf8_lossy(&body).to_string())
                                    .await;
                            }
                            let mut response = http::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(html),
                            ));
                            response.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static("text/html"),
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
    let profile = std::env::temp_dir().join(format!("otlp-chromium-ws-{}", std::process::id()));
    // A real-time browser (no virtual time: it would skip ahead while the socket is idle),
    // stopped once the page has reported or the wait is over.
    let browser = std::process::Command::new(interop::chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
            &format!("{origin}/"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut browser = match browser {
        Ok(browser) => browser,
        Err(error) => {
            assert!(
                !interop::required(),
                "chromium is required but cannot run: {error}"
            );
            eprintln!("SKIPPED: chromium is not available ({error})");
            return;
        }
    };
    let report = tokio::time::timeout(Duration::from_secs(30), report_rx.recv()).await;
    let _ = browser.kill();
    let _ = browser.wait();
    let _ = std::fs::remove_dir_all(&profile);
    let report = report.ok().flatten().unwrap_or_default();
    assert_eq!(
        report, "acks 1:0,2:0,3:0",
        "the page saw one OK ack per batch"
    );
    {
        let received = received.lock().expect("lock");
        let mut names: Vec<String> = received
            .iter()
            .filter_map(|r| match r {
                AnyExportRequest::Traces(t) => Some(t.message().expect("valid").into_owned()),
                _ => None,
            })
            .flat_map(|m| m.resource_spans)
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .map(|s| s.name)
            .collect();
        names.sort();
        assert_eq!(names.len(), 6, "{names:?}");
        assert_eq!(names[0], "ws-browser-span-1-0");
        assert_eq!(names[5], "ws-browser-span-3-1");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn a_silent_peer_is_closed_after_the_idle_timeout() {
    let config = WsReceiverConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let (_, running) = start(config).await;
    let mut request = url(&running).into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "otlp-stream.v1.protobuf".parse().expect("value"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    // Not reading means not answering pings: the peer is silent. Its frames are then read
    // raw, since a WebSocket client would try to answer the pings on a closed connection.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = socket.get_mut() else {
        panic!("plain TCP expected");
    };
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut raw)).await;
    let mut code = None;
    let mut at = 0;
    while at + 2 <= raw.len() {
        let (opcode, len) = (raw[at] & 0x0f, usize::from(raw[at + 1] & 0x7f));
        if opcode == 8 && len >= 2 && at + 4 <= raw.len() {
            code = Some(u16::from_be_bytes([raw[at + 2], raw[at + 3]]));
            break;
        }
        at += 2 + len;
    }
    assert_eq!(code, Some(4000));
    still_serving(&running).await;
    running.shutdown().await;
}

/// A peer whose WebSocket library answers every ping, and that sends nothing else, is
/// idle: pongs do not reset the idle timer (they did, and such a peer held its connection
/// for ever).
#[tokio::test]
async fn a_peer_that_only_answers_pings_is_closed_after_the_idle_timeout() {
    let config = WsReceiverConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let (_, running) = start(config).await;
    let mut request = url(&running).into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "otlp-stream.v1.protobuf".parse().expect("value"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    // Reading answers each ping with a pong, as every WebSocket client does.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Close(Some(frame))) = message {
                return Some(u16::from(frame.code));
            }
        }
        None
    })
    .await;
    assert_eq!(closed, Ok(Some(4000)), "closed as idle despite its pongs");
    running.shutdown().await;
}

/// Against an upstream that accepts connections and never answers, a call ends within
/// the call timeout as a retryable timeout, instead of holding its caller for ever.
#[tokio::test]
async fn a_call_to_a_silent_upstream_ends_within_the_call_timeout() {
    let hole = otlp_testkit::eavesdrop::BlackHole::start();
    let address = hole.address();
    let mut config = WsExporterConfig::new(format!("ws://{address}/v1/stream"));
    config.call_timeout = Duration::from_millis(700);
    let exporter = WsExporter::new(config);
    let started = std::time::Instant::now();
    let result = exporter
        .export(ExportRequest::<Traces>::new(realistic::traces(2, 1)).into())
        .await;
    let error = result.expect_err("no answer");
    assert!(error.is_retryable(), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(hole.connections() > 0, "the exporter did connect");
}

/// A peer that sends batches and never reads their acknowledgements fills the socket;
/// the receiver's blocked acknowledgement write then ends within the idle timeout and the
/// connection closes, instead of holding its task and slot for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_its_acknowledgements_is_closed() {
    let config = WsReceiverConfig {
        idle_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    // Every batch is refused with a long message, so that each acknowledgement is large
    // and a few hundred fill the path even on a loaded machine.
    let service = tower::service_fn(|_: AnyExportRequest| async {
        Err::<ExportOutcome, _>(ExportError::invalid_argument("refused ".repeat(1024)))
    });
    let running = WsReceiver::new(service)
        .with_config(config)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    // A small receive buffer too.
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(4096).expect("buffer");
    let tcp = tcp.connect(running.local_addr()).await.expect("connect");
    let mut request = url(&running).into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "otlp-stream.v1.protobuf".parse().expect("value"),
    );
    let (socket, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("handshake");
    let (mut sink, _never_read) = socket.split();
    let request: AnyExportRequest = ExportRequest::<Traces>::new(realistic::traces(1, 1)).into();
    let sending = tokio::spawn(async move {
        for sequence in 1..=1_000_000u64 {
            let (bytes, _) = otlp_stream::envelope::encode_batch(sequence, &request);
            if sink.send(Message::Binary(bytes)).await.is_err() {
                return sequence;
            }
        }
        u64::MAX
    });
    let stats = running.stats();
    let started = std::time::Instant::now();
    while stats
        .streams
        .opened
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while stats
        .streams
        .open
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the connection is still open after {:?}, {} batches taken",
            started.elapsed(),
            stats.requests.load(std::sync::atomic::Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "closed after {:?} and {} batches",
        started.elapsed(),
        stats.requests.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(
        stats
            .streams
            .stalled
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    sending.abort();
    // Another client is served (and gets the same refusal).
    let served = WsExporter::new(WsExporterConfig::new(url(&running)))
        .export(ExportRequest::<Traces>::new(realistic::traces(5, 9)).into())
        .await;
    assert!(
        matches!(&served, Err(e) if e.kind() == otlp_core::ErrorKind::InvalidArgument),
        "{served:?}"
    );
    running.shutdown().await;
}
