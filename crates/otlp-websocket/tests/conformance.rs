//! The transport conformance suite (`otlp_testkit::conformance`) over OTLP/WebSocket
//! (our binding, protobuf encoding), on loopback.

use std::time::Duration;

use otlp_core::AnyExportRequest;
use otlp_testkit::conformance::{self, BoxFuture, BoxedService, ReceiverSettings, Stop, Transport};
use otlp_websocket::{IntakeConfig, WsExporter, WsExporterConfig, WsReceiver, WsReceiverConfig};

struct WebSocket;

impl Transport for WebSocket {
    fn name(&self) -> String {
        "websocket".to_string()
    }

    fn start_receiver(
        &self,
        service: BoxedService,
        settings: ReceiverSettings,
    ) -> BoxFuture<'_, Result<(String, Stop), String>> {
        Box::pin(async move {
            let defaults = WsReceiverConfig::default();
            let limit = settings.max_request_bytes;
            let mut intake = IntakeConfig {
                forward_headers: settings.forward_headers,
                ..IntakeConfig::default().with_max_request_bytes(limit)
            };
            if !settings.accept_compression {
                intake.compression = otlp_compression::CompressionSet::new();
            }
            let config = WsReceiverConfig {
                intake,
                max_frame_bytes: defaults.max_frame_bytes.min(limit),
                ..defaults
            };
            let mut receiver = WsReceiver::new(service).with_config(config);
            if let Some(token) = settings.bearer_token {
                receiver = receiver.with_auth(otlp_net::auth::BearerToken::new(token));
            }
            let running = receiver
                .bind(conformance::LOOPBACK)
                .await
                .map_err(|e| e.to_string())?;
            let endpoint = format!("ws://{}/v1/stream", running.local_addr());
            Ok(conformance::started(endpoint, running.shutdown()))
        })
    }

    fn resends_itself(&self) -> bool {
        true
    }

    fn exporter(&self, endpoint: &str, headers: &http::HeaderMap) -> Result<BoxedService, String> {
        let mut config = WsExporterConfig::new(endpoint.to_string());
        config.headers = headers.clone();
        Ok(over(config))
    }

    fn compressing_exporter(&self, endpoint: &str) -> Result<Option<BoxedService>, String> {
        let mut config = WsExporterConfig::new(endpoint.to_string());
        config.encoding = otlp_websocket::Encoding::compressed(otlp_compression::Gzip::default());
        Ok(Some(over(config)))
    }
}

/// The exporter of `config`.
fn over(mut config: WsExporterConfig) -> BoxedService {
    // A receiver that is gone should be reported soon, not after the default 10 s.
    config.call_timeout = Duration::from_secs(3);
    let exporter = WsExporter::new(config);
    BoxedService::new(tower::service_fn(move |request: AnyExportRequest| {
        let exporter = exporter.clone();
        async move { exporter.export(request).await }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_passes_the_conformance_suite() {
    conformance::run(&WebSocket).await.assert_passed();
}
