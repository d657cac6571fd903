//! Our HTTP exporter against our receiver on 127.0.0.1: every signal x every codec x every
//! compression, asserting the exact messages that arrive; partial success, throttling,
//! TLS with HTTP/2 by ALPN, h2c, authentication.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{accept_all, endpoint, recording, start};
use otlp_codec::{CodecSet, OtlpCodec};
use otlp_compression::{Compression, CompressionSet};
use otlp_core::{
    ErrorKind, ExportError, ExportOutcome, ExportRequest, Logs, Metrics, RetryClass, Traces,
};
use otlp_http::auth::BearerToken;
use otlp_http::{HttpExporter, HttpExporterConfig, HttpReceiver, HttpReceiverConfig};
use otlp_testkit::realistic;

fn exporter(
    endpoint: &str,
    codec: Arc<dyn OtlpCodec>,
    compression: Option<Arc<dyn Compression>>,
) -> HttpExporter {
    let mut config = HttpExporterConfig::new(endpoint).expect("config");
    config.codec = codec;
    config.compression = compression;
    HttpExporter::new(config).expect("exporter")
}

#[tokio::test]
async fn every_signal_codec_and_compression_arrives_exactly() {
    let (record, running) = start(HttpReceiverConfig::default()).await;
    let codecs: Vec<_> = CodecSet::with_defaults().iter().cloned().collect();
    assert_eq!(codecs.len(), 4, "protobuf, JSON, MessagePack, CBOR");
    let mut algorithms: Vec<Option<Arc<dyn Compression>>> = vec![None];
    algorithms.extend(
        CompressionSet::with_defaults()
            .iter()
            .filter(|c| c.http_name().is_some())
            .cloned()
            .map(Some),
    );
    assert!(algorithms.len() >= 7, "{}", algorithms.len());
    let mut seed = 0;
    for codec in &codecs {
        for compression in &algorithms {
            seed += 1;
            let label = format!(
                "{} {:?}",
                codec.name(),
                compression.as_ref().map(|c| c.name().to_string())
            );
            let exporter = exporter(&endpoint(&running), codec.clone(), compression.clone());
            let traces = realistic::traces(30, seed);
            let metrics = realistic::metrics(20, seed);
            let logs = realistic::logs(25, seed);
            let outcome = exporter
                .export(&ExportRequest::<Traces>::new(traces.clone()))
                .await
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(outcome.accepted(), 30, "{label}");
            exporter
                .export(&ExportRequest::<Metrics>::new(metrics.clone()))
                .await
                .expect("metrics");
            exporter
                .export(&ExportRequest::<Logs>::new(logs.clone()))
                .await
                .expect("logs");
            let received = record.lock().expect("lock");
            assert_eq!(received.traces.last(), Some(&traces), "{label}");
            assert_eq!(received.metrics.last(), Some(&metrics), "{label}");
            assert_eq!(received.logs.last(), Some(&logs), "{label}");
        }
    }
    running.shutdown().await;
}

#[tokio::test]
async fn partial_success_and_throttling_reach_the_exporter_in_every_codec() {
    let (_, service) = recording(|items: usize| {
        if items == 7 {
            Err(ExportError::unavailable("queue full").with_retry_after(Duration::from_secs(3)))
        } else {
            Ok(ExportOutcome::partial(items, 2, "two spans had no name"))
        }
    });
    let running = HttpReceiver::new(service)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    for codec in CodecSet::with_defaults().iter() {
        let exporter = exporter(&endpoint(&running), codec.clone(), None);
        let outcome = exporter
            .export(&ExportRequest::<Traces>::new(realistic::traces(10, 1)))
            .await
            .expect("partial success is success");
        assert_eq!(
            (outcome.accepted(), outcome.rejected()),
            (8, 2),
            "{}",
            codec.name()
        );
        assert_eq!(outcome.message(), "two spans had no name");
        let error = exporter
            .export(&ExportRequest::<Traces>::new(realistic::traces(7, 1)))
            .await
            .expect_err("throttled");
        assert_eq!(
            error.retry_class(),
            RetryClass::Throttled(Duration::from_secs(3)),
            "{}",
            codec.name()
        );
        assert!(error.message().contains("queue full"), "{error}");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn bearer_tokens_are_checked_and_metadata_forwarded() {
    let (record, service) = recording(accept_all);
    // The operator lists the metadata to forward; credentials never travel, even listed.
    let running = HttpReceiver::new(service)
        .with_config(otlp_http::HttpReceiverConfig {
            intake: otlp_http::IntakeConfig {
                forward_headers: vec![
                    http::HeaderName::from_static("x-tenant"),
                    http::header::AUTHORIZATION,
                ],
                ..Default::default()
            },
            ..Default::default()
        })
        .with_auth(BearerToken::new("s3cret"))
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let request = ExportRequest::<Traces>::new(realistic::traces(3, 3));
    let anonymous =
        HttpExporter::new(HttpExporterConfig::new(&endpoint(&running)).expect("config"))
            .expect("exporter");
    let error = anonymous.export(&request).await.expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::Unauthenticated, "{error}");
    let config = HttpExporterConfig::new(&endpoint(&running))
        .expect("config")
        .with_header(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer s3cret"),
        )
        .with_header(
            http::HeaderName::from_static("x-tenant"),
            http::HeaderValue::from_static("acme"),
        );
    HttpExporter::new(config)
        .expect("exporter")
        .export(&request)
        .await
        .expect("authenticated");
    {
        let received = record.lock().expect("lock");
        assert_eq!(received.traces.len(), 1);
        assert_eq!(received.headers[0]["x-tenant"], "acme");
        assert!(received.headers[0].get("authorization").is_none());
    }
    running.shutdown().await;
}

#[tokio::test]
async fn tls_with_http2_by_alpn_mutual_tls_and_h2c() {
    let pki = otlp_testkit::pki::TestPki::generate();
    let (server_cert, server_key) = (pki.server.cert_pem, pki.server.key_pem);
    let (client_cert, client_key) = (pki.client.cert_pem, pki.client.key_pem);
    let ca_pem = pki.ca_pem;
    let tls = otlp_http::tls::ServerTls::from_pem(server_cert.as_bytes(), server_key.as_bytes())
        .expect("tls")
        .require_client_certificates(ca_pem.as_bytes())
        .expect("ca");
    let (record, service) = recording(accept_all);
    let running = HttpReceiver::new(service)
        .with_tls(tls)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let url = format!("https://localhost:{}", running.local_addr().port());
    let request = ExportRequest::<Logs>::new(realistic::logs(4, 4));
    let client_tls = otlp_http::tls::ClientTls::with_ca_pem(ca_pem.as_bytes()).expect("ca");
    let without_identity = HttpExporter::new(
        HttpExporterConfig::new(&url)
            .expect("config")
            .with_tls(client_tls.clone()),
    )
    .expect("exporter");
    assert!(
        without_identity.export(&request).await.is_err(),
        "mTLS requires a client certificate"
    );
    let client_tls = client_tls
        .with_client_certificate(client_cert.as_bytes(), client_key.as_bytes())
        .expect("identity");
    let exporter = HttpExporter::new(
        HttpExporterConfig::new(&url)
            .expect("config")
            .with_tls(client_tls),
    )
    .expect("exporter");
    exporter.export(&request).await.expect("mutual TLS");
    assert_eq!(record.lock().expect("lock").logs.len(), 1);
    running.shutdown().await;

    // h2c: HTTP/2 by prior knowledge on a plain connection.
    let (record, running) = start(HttpReceiverConfig::default()).await;
    let mut config = HttpExporterConfig::new(&endpoint(&running)).expect("config");
    config.http2_prior_knowledge = true;
    HttpExporter::new(config)
        .expect("exporter")
        .export(&request)
        .await
        .expect("h2c");
    assert_eq!(record.lock().expect("lock").logs.len(), 1);
    running.shutdown().await;
}

#[tokio::test]
async fn custom_paths_are_served_and_others_are_not_found() {
    let config = HttpReceiverConfig {
        paths: otlp_http::HttpPaths {
            traces: "/otlp/spans".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let (record, running) = start(config).await;
    let mut exporter_config = HttpExporterConfig::new(&endpoint(&running)).expect("config");
    let request = ExportRequest::<Traces>::new(realistic::traces(2, 2));
    let error = HttpExporter::new(exporter_config.clone())
        .expect("exporter")
        .export(&request)
        .await
        .expect_err("404");
    assert_eq!(error.peer_status(), Some(otlp_core::PeerStatus::Http(404)));
    exporter_config.signal_urls[0] = Some(
        format!("{}/otlp/spans", endpoint(&running))
            .parse()
            .expect("url"),
    );
    HttpExporter::new(exporter_config)
        .expect("exporter")
        .export(&request)
        .await
        .expect("custom path");
    assert_eq!(record.lock().expect("lock").spans(), 2);
    running.shutdown().await;
}
