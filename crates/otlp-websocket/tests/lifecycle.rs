//! The standalone WebSocket receiver has the lifecycle every receiver has: `wss://` with
//! mutual TLS, and serving on a listener it is given until a stop future completes.

use std::time::Duration;

use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Logs};
use otlp_testkit::realistic;
use otlp_websocket::tls::{ClientTls, ServerTls};
use otlp_websocket::{WsExporter, WsExporterConfig, WsReceiver};

fn accept_all() -> impl tower::Service<
    AnyExportRequest,
    Response = ExportOutcome,
    Error = ExportError,
    Future = impl Future<Output = Result<ExportOutcome, ExportError>> + Send,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|request: AnyExportRequest| async move {
        Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
    })
}

#[tokio::test]
async fn the_standalone_receiver_serves_wss_with_mutual_tls() {
    let pki = otlp_testkit::pki::TestPki::generate();
    let ca = pki.ca_pem;
    let (server_cert, server_key) = (pki.server.cert_pem, pki.server.key_pem);
    let (client_cert, client_key) = (pki.client.cert_pem, pki.client.key_pem);
    let tls = ServerTls::from_pem(server_cert.as_bytes(), server_key.as_bytes())
        .expect("tls")
        .require_client_certificates(ca.as_bytes())
        .expect("ca");
    let running = WsReceiver::new(accept_all())
        .with_tls(tls)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let url = format!("wss://localhost:{}/v1/stream", running.local_addr().port());
    let request = || AnyExportRequest::from(ExportRequest::<Logs>::new(realistic::logs(4, 4)));
    let trusting = ClientTls::with_ca_pem(ca.as_bytes()).expect("ca");

    let mut anonymous = WsExporterConfig::new(&url).with_tls(trusting.clone());
    anonymous.call_timeout = Duration::from_secs(2);
    anonymous.connect_timeout = Duration::from_secs(2);
    let refused = WsExporter::new(anonymous).export(request()).await;
    assert!(refused.is_err(), "mutual TLS requires a client certificate");

    let identified = trusting
        .with_client_certificate(client_cert.as_bytes(), client_key.as_bytes())
        .expect("identity");
    let exporter = WsExporter::new(WsExporterConfig::new(&url).with_tls(identified));
    let outcome = exporter.export(request()).await.expect("over wss");
    assert_eq!(outcome.accepted(), 4);
    assert_eq!(
        running
            .stats()
            .accepted_items
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    assert!(running.shutdown_within(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn the_standalone_receiver_serves_a_given_listener_until_told_to_stop() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(WsReceiver::new(accept_all()).serve(listener, async move {
        let _ = stopped.await;
    }));
    let exporter = WsExporter::new(WsExporterConfig::new(format!("ws://{address}/v1/stream")));
    let request = AnyExportRequest::from(ExportRequest::<Logs>::new(realistic::logs(2, 3)));
    let outcome = exporter.export(request).await.expect("served");
    assert_eq!(outcome.accepted(), 2);

    stop.send(()).expect("still serving");
    let ended = tokio::time::timeout(Duration::from_secs(10), serving).await;
    ended
        .expect("serve returns once stopped")
        .expect("task")
        .expect("io");
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "the listener is closed once serving ends"
    );
}
