//! An `https://` gRPC endpoint with no CA configured is reached over TLS with the system's
//! trust roots: the first bytes on the wire are a TLS hello, and the metadata never leaves
//! in plaintext.

use std::time::Duration;

use otlp_core::{ExportRequest, Traces};
use otlp_grpc::{ExporterConfig, GrpcExporter};
use otlp_testkit::eavesdrop::{first_bytes, looks_like_tls};
use otlp_testkit::realistic;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_gets_tls_with_the_system_roots() {
    let (address, recorded) = first_bytes(Duration::from_secs(1));
    let config = ExporterConfig::new(&format!("https://{address}"))
        .expect("config")
        .with_header(
            http::HeaderName::from_static("x-api-key"),
            http::HeaderValue::from_static("s3cret-value"),
        )
        .with_timeout(Duration::from_secs(2));
    let exporter = GrpcExporter::new(config).expect("https works without a configured CA");
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
    assert!(!seen.windows(12).any(|w| w == b"s3cret-value"));
}
