//! Our WebSocket exporter against our receiver on 127.0.0.1: every signal in every
//! encoding; a connection dropped in the middle of 100,000 spans; refused handshakes and
//! oversized messages.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_compression::CompressionSet;
use otlp_core::{
    AnyExportRequest, ErrorKind, ExportError, ExportOutcome, ExportRequest, Logs, Metrics, Traces,
};
use otlp_net::auth::BearerToken;
use otlp_testkit::realistic;
use otlp_websocket::{
    Encoding, RunningWsReceiver, WsExporter, WsExporterConfig, WsReceiver, WsReceiverConfig,
};

#[derive(Default)]
struct Seen {
    requests: Vec<AnyExportRequest>,
    spans: HashMap<Vec<u8>, u32>,
}

type Shared = Arc<Mutex<Seen>>;

async fn start(address: SocketAddr, seen: Shared, config: WsReceiverConfig) -> RunningWsReceiver {
    let service = tower::service_fn(move |request: AnyExportRequest| {
        let seen = seen.clone();
        async move {
            let items = request.item_count();
            let mut seen = seen.lock().expect("lock");
            if let AnyExportRequest::Traces(r) = &request {
                for span in r
                    .message()?
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                {
                    *seen.spans.entry(span.span_id.to_vec()).or_default() += 1;
                }
            }
            seen.requests.push(request);
            Ok::<_, ExportError>(ExportOutcome::success(items))
        }
    });
    for _ in 0..50 {
        if let Ok(running) = WsReceiver::new(service.clone())
            .with_config(config.clone())
            .bind(address)
            .await
        {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("cannot bind {address}");
}

fn url(running: &RunningWsReceiver) -> String {
    format!("ws://{}/v1/stream", running.local_addr())
}

fn encodings() -> Vec<Encoding> {
    let mut all = vec![Encoding::Json, Encoding::Protobuf(None)];
    all.extend(
        CompressionSet::with_defaults()
            .iter()
            .filter(|c| c.http_name().is_some())
            .map(|c| Encoding::Protobuf(Some(c.clone()))),
    );
    all
}

#[tokio::test]
async fn every_signal_in_every_encoding_arrives_exactly() {
    let seen: Shared = Arc::default();
    let running = start(
        "127.0.0.1:0".parse().expect("address"),
        seen.clone(),
        WsReceiverConfig::default(),
    )
    .await;
    for (i, encoding) in encodings().into_iter().enumerate() {
        let label = encoding.subprotocol();
        let exporter =
            WsExporter::new(WsExporterConfig::new(url(&running)).with_encoding(encoding));
        let seed = i as u64;
        let traces = realistic::traces(40, seed);
        let metrics = realistic::metrics(30, seed);
        let logs = realistic::logs(20, seed);
        for request in [
            AnyExportRequest::from(ExportRequest::<Traces>::new(traces.clone())),
            ExportRequest::<Metrics>::new(metrics.clone()).into(),
            ExportRequest::<Logs>::new(logs.clone()).into(),
        ] {
            let items = request.item_count();
            let outcome = exporter
                .export(request)
                .await
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(outcome.accepted(), items, "{label}");
        }
        let received = std::mem::take(&mut seen.lock().expect("lock").requests);
        assert_eq!(received.len(), 3, "{label}");
        for request in received {
            match request {
                AnyExportRequest::Traces(r) => {
                    assert_eq!(r.into_message().expect("valid"), traces, "{label}")
                }
                AnyExportRequest::Metrics(r) => {
                    assert_eq!(r.into_message().expect("valid"), metrics, "{label}")
                }
                AnyExportRequest::Logs(r) => {
                    assert_eq!(r.into_message().expect("valid"), logs, "{label}")
                }
            }
        }
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_mid_stream_loses_nothing() {
    const BATCHES: u64 = 1000;
    const SPANS: usize = 100;
    let seen: Shared = Arc::default();
    let first = start(
        "127.0.0.1:0".parse().expect("address"),
        seen.clone(),
        WsReceiverConfig::default(),
    )
    .await;
    let address = first.local_addr();
    let mut config = WsExporterConfig::new(url(&first));
    config.reconnect_initial = Duration::from_millis(20);
    let exporter = WsExporter::new(config);
    let lanes: Vec<_> = (0..8u64)
        .map(|lane| {
            let exporter = exporter.clone();
            tokio::spawn(async move {
                let mut accepted = 0;
                for batch in (lane..BATCHES).step_by(8) {
                    let request = ExportRequest::<Traces>::new(realistic::traces(SPANS, batch));
                    accepted += exporter.export(request.into()).await?.accepted();
                }
                Ok::<_, ExportError>(accepted)
            })
        })
        .collect();
    while seen.lock().expect("lock").spans.len() < 30_000 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.abort().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = start(address, seen.clone(), WsReceiverConfig::default()).await;
    let mut accepted = 0;
    for lane in lanes {
        accepted += lane.await.expect("task").expect("every batch acknowledged");
    }
    assert_eq!(accepted, BATCHES as usize * SPANS);
    let stats = exporter.stats();
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(
            seen.spans.len(),
            BATCHES as usize * SPANS,
            "every span arrived at least once"
        );
        let duplicates: u64 = seen.spans.values().map(|&n| u64::from(n - 1)).sum();
        println!(
            "connection dropped mid-stream: {} spans delivered, {duplicates} duplicate spans, {} batches resent, {} reconnects",
            seen.spans.len(),
            stats.batches_resent.load(Ordering::Relaxed),
            stats.reconnects.load(Ordering::Relaxed)
        );
    }
    assert!(stats.reconnects.load(Ordering::Relaxed) >= 1);
    second.shutdown().await;
}

#[tokio::test]
async fn refused_handshakes_fail_batches_with_their_class() {
    let seen: Shared = Arc::default();
    let config = WsReceiverConfig {
        allowed_origins: vec!["https://ok.example".into()],
        ..Default::default()
    };
    let service_seen = seen.clone();
    let service = tower::service_fn(move |request: AnyExportRequest| {
        let seen = service_seen.clone();
        async move {
            let items = request.item_count();
            seen.lock().expect("lock").requests.push(request);
            Ok::<_, ExportError>(ExportOutcome::success(items))
        }
    });
    let running = WsReceiver::new(service)
        .with_config(config)
        .with_auth(BearerToken::new("s3cret"))
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let request = || AnyExportRequest::from(ExportRequest::<Logs>::new(realistic::logs(3, 1)));

    let anonymous = WsExporter::new(WsExporterConfig::new(url(&running)));
    let error = anonymous.export(request()).await.expect_err("no token");
    assert_eq!(error.kind(), ErrorKind::Unauthenticated, "{error}");

    let mut config = WsExporterConfig::new(url(&running));
    config
        .headers
        .insert("authorization", "Bearer s3cret".parse().expect("value"));
    config
        .headers
        .insert("origin", "https://evil.example".parse().expect("value"));
    let wrong_origin = WsExporter::new(config.clone());
    let error = wrong_origin
        .export(request())
        .await
        .expect_err("origin refused");
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");

    config
        .headers
        .insert("origin", "https://ok.example".parse().expect("value"));
    let allowed = WsExporter::new(config);
    allowed
        .export(request())
        .await
        .expect("authenticated, allowed origin");
    assert_eq!(seen.lock().expect("lock").requests.len(), 1);
    running.shutdown().await;
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009_and_the_exporter_reports_it() {
    let seen: Shared = Arc::default();
    let config = WsReceiverConfig {
        intake: otlp_websocket::IntakeConfig::default().with_max_request_bytes(64 * 1024),
        max_frame_bytes: 64 * 1024,
        ..Default::default()
    };
    let running = start(
        "127.0.0.1:0".parse().expect("address"),
        seen.clone(),
        config,
    )
    .await;
    let small = WsExporter::new(WsExporterConfig::new(url(&running)));
    small
        .export(ExportRequest::<Traces>::new(realistic::traces(10, 1)).into())
        .await
        .expect("a small batch passes");
    // A raw client sends a message over the limit: the server closes with 1009.
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut handshake = url(&running).into_client_request().expect("request");
    handshake.headers_mut().insert(
        "sec-websocket-protocol",
        "otlp-stream.v1.protobuf".parse().expect("value"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(handshake)
        .await
        .expect("connect");
    let big = ExportRequest::<Traces>::new(realistic::traces(1000, 2)).to_protobuf();
    let _ = socket.send(Message::Binary(big)).await;
    let mut code = None;
    while let Some(message) = socket.next().await {
        if let Ok(Message::Close(Some(frame))) = message {
            code = Some(u16::from(frame.code));
            break;
        }
    }
    assert_eq!(code, Some(1009));
    // The receiver keeps serving.
    small
        .export(ExportRequest::<Traces>::new(realistic::traces(10, 3)).into())
        .await
        .expect("still served");
    running.shutdown().await;
}
