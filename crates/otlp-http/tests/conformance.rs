//! The transport conformance suite (`otlp_testkit::conformance`) over OTLP/HTTP, with the
//! protobuf and the JSON encodings, on loopback.

use otlp_http::{HttpExporter, HttpExporterConfig, HttpReceiver, HttpReceiverConfig};
use otlp_testkit::conformance::{self, BoxFuture, BoxedService, Stop, Transport};

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
        max_request_bytes: usize,
    ) -> BoxFuture<'_, Result<(String, Stop), String>> {
        Box::pin(async move {
            let config = HttpReceiverConfig {
                intake: otlp_http::IntakeConfig::default()
                    .with_max_request_bytes(max_request_bytes),
                ..HttpReceiverConfig::default()
            };
            let running = HttpReceiver::new(service)
                .with_config(config)
                .bind(conformance::LOOPBACK)
                .await
                .map_err(|e| e.to_string())?;
            let endpoint = format!("http://{}", running.local_addr());
            Ok(conformance::started(endpoint, running.shutdown()))
        })
    }

    fn exporter(&self, endpoint: &str) -> Result<BoxedService, String> {
        let mut config = HttpExporterConfig::new(endpoint).map_err(|e| e.to_string())?;
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
