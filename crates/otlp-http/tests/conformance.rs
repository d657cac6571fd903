//! The transport conformance suite (`otlp_testkit::conformance`) over OTLP/HTTP, with the
//! protobuf and the JSON encodings, on loopback.

use otlp_http::{HttpExporter, HttpExporterConfig, HttpReceiver, HttpReceiverConfig};
use otlp_testkit::conformance::{self, BoxFuture, BoxedService, ReceiverSettings, Stop, Transport};

struct Http {
    json: bool,
}

impl Transport for Http {
    fn name(&self) -> String {
        if self.json {
            "http/json"
        } else {
            "http/protobuf"
        }
        .to_string()
    }

    fn start_receiver(
        &self,
        service: BoxedService,
        settings: ReceiverSettings,
    ) -> BoxFuture<'_, Result<(String, Stop), String>> {
        Box::pin(async move {
            let mut intake = otlp_http::IntakeConfig {
                forward_headers: settings.forward_headers,
                ..otlp_http::IntakeConfig::default()
                    .with_max_request_bytes(settings.max_request_bytes)
            };
            if !settings.accept_compression {
                intake.compression = otlp_compression::CompressionSet::new();
            }
            let config = HttpReceiverConfig {
                intake,
                ..HttpReceiverConfig::default()
            };
            let mut receiver = HttpReceiver::new(service).with_config(config);
            if let Some(token) = settings.bearer_token {
                receiver = receiver.with_auth(otlp_http::auth::BearerToken::new(token));
            }
            let running = receiver
                .bind(conformance::LOOPBACK)
                .await
                .map_err(|e| e.to_string())?;
            let endpoint = format!("http://{}", running.local_addr());
            Ok(conformance::started(endpoint, running.shutdown()))
        })
    }

    fn exporter(&self, endpoint: &str, headers: &http::HeaderMap) -> Result<BoxedService, String> {
        let mut config = HttpExporterConfig::new(endpoint).map_err(|e| e.to_string())?;
        config.headers = headers.clone();
        self.over(config)
    }

    fn compressing_exporter(&self, endpoint: &str) -> Result<Option<BoxedService>, String> {
        let mut config = HttpExporterConfig::new(endpoint).map_err(|e| e.to_string())?;
        config.compression = Some(std::sync::Arc::new(otlp_compression::Gzip::default()));
        self.over(config).map(Some)
    }
}

impl Http {
    /// The exporter of `config`, in this variant's encoding.
    fn over(&self, mut config: HttpExporterConfig) -> Result<BoxedService, String> {
        if self.json {
            config = config.with_codec(otlp_codec::Json::default());
        }
        let exporter = HttpExporter::new(config).map_err(|e| e.to_string())?;
        Ok(BoxedService::new(exporter))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_passes_the_conformance_suite() {
    conformance::run(&Http { json: false })
        .await
        .assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_passes_the_conformance_suite() {
    conformance::run(&Http { json: true }).await.assert_passed();
}
