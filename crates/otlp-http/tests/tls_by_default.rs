//! An `https://` URL is never contacted in plaintext: not the base endpoint, not a
//! per-signal one under a plain base. With no CA configured, the system's trust roots
//! are used, so the first bytes on the wire are a TLS hello and the configured headers
//! never leave unencrypted.

use std::time::Duration;

use otlp_core::{ExportRequest, Traces};
use otlp_http::{HttpExporter, HttpExporterConfig};
use otlp_testkit::eavesdrop::{first_bytes, looks_like_tls};
use otlp_testkit::realistic;

fn with_secret(config: HttpExporterConfig) -> HttpExporterConfig {
    config
        .with_header(
            http::HeaderName::from_static("x-api-key"),
            http::HeaderValue::from_static("s3cret-value"),
        )
        .with_timeout(Duration::from_secs(2))
}

async fn assert_tls_only(config: HttpExporterConfig, recorded: std::thread::JoinHandle<Vec<u8>>) {
    let exporter = HttpExporter::new(config).expect("https works without a configured CA");
    let result = exporter
        .export(&ExportRequest::<Traces>::new(realistic::traces(1, 1)))
        .await;
    assert!(result.is_err(), "the eavesdropper answers nothing");
    let seen = recorded.join().expect("recorder");
    assert!(
        looks_like_tls(&seen),
        "not a TLS hello: {:?}",
        &seen[..seen.len().min(64)]
    );
    assert!(
        !seen.windows(12).any(|w| w == b"s3cret-value"),
        "the header left in plaintext"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_gets_tls_with_the_system_roots() {
    let (address, recorded) = first_bytes(Duration::from_secs(1));
    let config = HttpExporterConfig::new(&format!("https://{address}")).expect("config");
    assert_tls_only(with_secret(config), recorded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_signal_url_under_a_plain_base_gets_tls() {
    let (address, recorded) = first_bytes(Duration::from_secs(1));
    let mut config = HttpExporterConfig::new("http://127.0.0.1:9").expect("config");
    config.signal_urls[0] = Some(format!("https://{address}/v1/traces").parse().expect("url"));
    assert_tls_only(with_secret(config), recorded).await;
}
