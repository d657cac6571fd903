//! One memory budget shared by the three receivers, as the relay runs them: while a slow
//! service holds a gRPC request, an HTTP request and a WebSocket batch that do not fit are
//! refused with a retry hint (nothing is taken that cannot be held; the stream sender
//! resends by itself), and all fit once the first is answered; the budget returns to zero.

use std::time::Duration;

use otlp_core::{AnyExportRequest, ErrorKind, ExportRequest, RetryClass, Traces};
use otlp_net::budget::MemoryBudget;
use otlp_net::intake::IntakeConfig;
use otlp_testkit::realistic;
use otlp_testkit::recording::Gate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_shared_budget_wait_their_turn_on_every_transport() {
    let request = ExportRequest::<Traces>::new(realistic::traces(200, 1));
    // What one request reserves: its decoded size, estimated.
    let size = request.decoded_size_estimate();
    let budget = MemoryBudget::new(size * 3 / 2);
    let gate = Gate::default();
    let loopback = "127.0.0.1:0".parse().expect("address");
    let grpc = otlp_grpc::GrpcReceiver::new(gate.clone())
        .with_config(otlp_grpc::ReceiverConfig {
            intake: IntakeConfig {
                memory_budget: Some(budget.clone()),
                ..Default::default()
            },
            ..Default::default()
        })
        .bind(loopback)
        .await
        .expect("bind gRPC");
    let http = otlp_http::HttpReceiver::new(gate.clone())
        .with_config(otlp_http::HttpReceiverConfig {
            intake: IntakeConfig {
                memory_budget: Some(budget.clone()),
                ..Default::default()
            },
            ..Default::default()
        })
        .bind(loopback)
        .await
        .expect("bind HTTP");
    let ws = otlp_websocket::WsReceiver::new(gate.clone())
        .with_config(otlp_websocket::WsReceiverConfig {
            intake: IntakeConfig {
                memory_budget: Some(budget.clone()),
                ..Default::default()
            },
            ..Default::default()
        })
        .bind(loopback)
        .await
        .expect("bind WebSocket");
    let grpc_exporter = otlp_grpc::GrpcExporter::new(
        otlp_grpc::ExporterConfig::new(&format!("http://{}", grpc.local_addr())).expect("config"),
    )
    .expect("gRPC exporter");
    let http_exporter = otlp_http::HttpExporter::new(
        otlp_http::HttpExporterConfig::new(&format!("http://{}", http.local_addr()))
            .expect("config"),
    )
    .expect("HTTP exporter");
    let ws_exporter = otlp_websocket::WsExporter::new(otlp_websocket::WsExporterConfig::new(
        format!("ws://{}/v1/stream", ws.local_addr()),
    ));

    let held = tokio::spawn({
        let (exporter, request) = (grpc_exporter.clone(), request.clone());
        async move { exporter.export(&request).await }
    });
    while gate.entered() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(budget.in_use(), size);
    let throttled = RetryClass::Throttled(Duration::from_secs(1));
    let refused = http_exporter
        .export(&request)
        .await
        .expect_err("HTTP over budget");
    assert_eq!(
        (refused.kind(), refused.retry_class()),
        (ErrorKind::Unavailable, throttled),
        "{refused}"
    );
    // The stream sender resends a batch refused with a retry hint by itself: the export
    // waits, and completes once the budget has room.
    let streamed = tokio::spawn({
        let (exporter, request) = (ws_exporter.clone(), request.clone());
        async move { exporter.export(AnyExportRequest::from(request)).await }
    });
    while budget.refused() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = grpc_exporter
        .export(&request)
        .await
        .expect_err("gRPC over budget");
    assert_eq!(
        (refused.kind(), refused.retry_class()),
        (ErrorKind::Unavailable, throttled),
        "{refused}"
    );
    assert!(budget.refused() >= 3);
    assert_eq!(gate.entered(), 1, "nothing refused reached the service");

    gate.open();
    assert_eq!(held.await.expect("task").expect("first").accepted(), 200);
    assert_eq!(
        http_exporter
            .export(&request)
            .await
            .expect("HTTP fits")
            .accepted(),
        200
    );
    let outcome = streamed
        .await
        .expect("task")
        .expect("WebSocket resent and accepted");
    assert_eq!(outcome.accepted(), 200);
    assert_eq!(budget.in_use(), 0);
    assert!(budget.peak() <= budget.limit());
    grpc.shutdown().await;
    http.shutdown().await;
    ws.shutdown().await;
}
