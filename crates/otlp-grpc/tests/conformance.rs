//! The transport conformance suite (`otlp_testkit::conformance`) over OTLP/gRPC, unary
//! and on the bidirectional stream, on loopback.

use otlp_core::AnyExportRequest;
use std::time::Duration;

use otlp_grpc::{
    ExporterConfig, GrpcExporter, GrpcReceiver, ReceiverConfig, StreamExporter,
    StreamExporterConfig,
};
use otlp_testkit::conformance::{self, BoxFuture, BoxedService, ReceiverSettings, Stop, Transport};

struct Grpc {
    stream: bool,
}

impl Transport for Grpc {
    fn name(&self) -> String {
        if self.stream { "grpc-stream" } else { "grpc" }.to_string()
    }

    fn start_receiver(
        &self,
        service: BoxedService,
        settings: ReceiverSettings,
    ) -> BoxFuture<'_, Result<(String, Stop), String>> {
        Box::pin(async move {
            let mut intake = otlp_grpc::IntakeConfig {
                forward_headers: settings.forward_headers,
                ..otlp_grpc::IntakeConfig::default()
                    .with_max_request_bytes(settings.max_request_bytes)
            };
            if !settings.accept_compression {
                intake.compression = otlp_compression::CompressionSet::new();
            }
            let config = ReceiverConfig {
                intake,
                ..ReceiverConfig::default()
            };
            let mut receiver = GrpcReceiver::new(service).with_config(config);
            if let Some(token) = settings.bearer_token {
                receiver = receiver.with_auth(otlp_grpc::auth::BearerToken::new(token));
            }
            let running = receiver
                .bind(conformance::LOOPBACK)
                .await
                .map_err(|e| e.to_string())?;
            let endpoint = format!("http://{}", running.local_addr());
            Ok(conformance::started(endpoint, running.shutdown()))
        })
    }

    fn resends_itself(&self) -> bool {
        self.stream
    }

    fn exporter(&self, endpoint: &str, headers: &http::HeaderMap) -> Result<BoxedService, String> {
        let mut config = ExporterConfig::new(endpoint).map_err(|e| e.to_string())?;
        config.headers = headers.clone();
        self.over(config)
    }

    fn compressing_exporter(&self, endpoint: &str) -> Result<Option<BoxedService>, String> {
        let mut config = ExporterConfig::new(endpoint).map_err(|e| e.to_string())?;
        config.compression = Some(std::sync::Arc::new(otlp_compression::Gzip::default()));
        self.over(config).map(Some)
    }
}

impl Grpc {
    /// The exporter of `config`, unary or on the bidirectional stream.
    fn over(&self, config: ExporterConfig) -> Result<BoxedService, String> {
        let exporter = GrpcExporter::new(config).map_err(|e| e.to_string())?;
        if !self.stream {
            return Ok(BoxedService::new(exporter));
        }
        // Calls end within 3 s, so that a refusal the stream resends by itself ends soon.
        let config = StreamExporterConfig {
            call_timeout: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        let stream = StreamExporter::new(exporter, config);
        Ok(BoxedService::new(tower::service_fn(
            move |request: AnyExportRequest| {
                let stream = stream.clone();
                async move { stream.export(request).await }
            },
        )))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_grpc_passes_the_conformance_suite() {
    conformance::run(&Grpc { stream: false })
        .await
        .assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bidirectional_stream_passes_the_conformance_suite() {
    conformance::run(&Grpc { stream: true })
        .await
        .assert_passed();
}
