//! OTLP over WebSocket mounted on an OTLP/HTTP port: upgraded connections leave the HTTP
//! listener's count, so the WebSocket receiver keeps its own connection limit there.

use std::time::Duration;

use otlp_core::{AnyExportRequest, ExportRequest, Traces};
use otlp_testkit::realistic;
use otlp_testkit::recording::{accept_all, recording};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn handshake_status(address: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(
            b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Protocol: otlp-stream.v1.protobuf\r\n\r\n",
        )
        .await
        .expect("write");
    let mut head = vec![0u8; 12];
    stream.read_exact(&mut head).await.expect("status line");
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_connection_limit_holds_on_the_http_port() {
    let (record, service) = recording(accept_all);
    let ws_config = otlp_websocket::WsReceiverConfig {
        listener: otlp_net::listener::ListenerLimits {
            max_connections: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let (handler, stats) = otlp_websocket::WsReceiver::new(service.clone())
        .with_config(ws_config)
        .into_upgrade_handler();
    let running = otlp_http::HttpReceiver::new(service)
        .with_upgrade("/v1/stream", handler)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let address = running.local_addr();

    // One connection, kept open by its exporter.
    let exporter = otlp_websocket::WsExporter::new(otlp_websocket::WsExporterConfig::new(format!(
        "ws://{address}/v1/stream"
    )));
    exporter
        .export(AnyExportRequest::from(ExportRequest::<Traces>::new(
            realistic::traces(5, 1),
        )))
        .await
        .expect("first connection");
    assert_eq!(record.lock().expect("lock").spans(), 5);
    assert!(handshake_status(address).await.ends_with("503"));

    // Once it closes, the next handshake is answered.
    drop(exporter);
    let mut waited = Duration::ZERO;
    while stats
        .streams
        .open
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
    {
        assert!(
            waited < Duration::from_secs(5),
            "the connection never closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    assert!(handshake_status(address).await.ends_with("101"));
    running.shutdown().await;
}
