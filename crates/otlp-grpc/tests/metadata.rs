//! Request metadata over a real socket: by default nothing a client sends as metadata is
//! copied into the request the service gets; keys an operator lists are, credentials and
//! protocol headers never.

use std::sync::{Arc, Mutex};

use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Traces};
use otlp_grpc::{ExporterConfig, GrpcExporter, GrpcReceiver, ReceiverConfig};
use otlp_testkit::realistic;

async fn headers_seen(config: ReceiverConfig) -> http::HeaderMap {
    let seen = Arc::new(Mutex::new(http::HeaderMap::new()));
    let record = seen.clone();
    let service = tower::service_fn(move |request: AnyExportRequest| {
        let items = request.item_count();
        let headers = match &request {
            AnyExportRequest::Traces(r) => r.headers().clone(),
            AnyExportRequest::Metrics(r) => r.headers().clone(),
            AnyExportRequest::Logs(r) => r.headers().clone(),
        };
        *record.lock().expect("lock") = headers;
        async move { Ok::<_, ExportError>(ExportOutcome::success(items)) }
    });
    let running = GrpcReceiver::new(service)
        .with_config(config)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let client = ExporterConfig::new(&format!("http://{}", running.local_addr()))
        .expect("config")
        .with_header(
            http::HeaderName::from_static("x-tenant"),
            http::HeaderValue::from_static("blue"),
        )
        .with_header(
            http::HeaderName::from_static("x-debug"),
            http::HeaderValue::from_static("1"),
        )
        .with_header(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer secret"),
        );
    GrpcExporter::new(client)
        .expect("exporter")
        .export(&ExportRequest::<Traces>::new(realistic::traces(2, 1)))
        .await
        .expect("accepted");
    running.shutdown().await;
    seen.lock().expect("lock").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metadata_is_copied_unless_listed_and_credentials_never() {
    let none = headers_seen(ReceiverConfig::default()).await;
    assert!(none.is_empty(), "{none:?}");
    let listed = headers_seen(ReceiverConfig {
        intake: otlp_grpc::IntakeConfig {
            forward_headers: vec![
                http::HeaderName::from_static("x-tenant"),
                http::header::AUTHORIZATION,
            ],
            ..Default::default()
        },
        ..ReceiverConfig::default()
    })
    .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed["x-tenant"], "blue");
}
