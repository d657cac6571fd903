//! Our exporter against our receiver over real sockets on 127.0.0.1: every signal with
//! every compression algorithm, unary and bidirectional, asserting the exact messages that
//! arrive; partial success, throttling, refused encodings, TLS, mTLS and authentication.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{accept_all, endpoint, recording, start_recording_receiver};
use otlp_compression::{Compression, CompressionSet, Gzip, Lz4};
use otlp_core::{
    AnyExportRequest, ErrorKind, ExportError, ExportOutcome, ExportRequest, Logs, Metrics,
    RetryClass, Traces,
};
use otlp_grpc::auth::BearerToken;
use otlp_grpc::{
    ExporterConfig, GrpcExporter, GrpcReceiver, ReceiverConfig, StreamExporter,
    StreamExporterConfig,
};
use otlp_testkit::realistic;
use tower::ServiceExt;

fn algorithms() -> Vec<Option<Arc<dyn Compression>>> {
    let mut all: Vec<Option<Arc<dyn Compression>>> = vec![None];
    // Snappy's block format has no gRPC name (gRPC's "snappy" is the framed format).
    all.extend(
        CompressionSet::with_defaults()
            .iter()
            .filter(|c| c.grpc_name().is_some())
            .cloned()
            .map(Some),
    );
    assert!(
        all.len() >= 6,
        "every gRPC algorithm is compiled in: {}",
        all.len()
    );
    all
}

fn exporter_for(endpoint: &str, compression: Option<Arc<dyn Compression>>) -> GrpcExporter {
    let mut config = ExporterConfig::new(endpoint).expect("config");
    config.compression = compression;
    GrpcExporter::new(config).expect("exporter")
}

#[tokio::test]
async fn unary_export_delivers_every_signal_with_every_algorithm() {
    let (record, running) = start_recording_receiver(ReceiverConfig::default()).await;
    let algorithms = algorithms();
    for (i, compression) in algorithms.iter().enumerate() {
        let exporter = exporter_for(&endpoint(&running), compression.clone());
        let seed = i as u64;
        let traces = realistic::traces(300, seed);
        let metrics = realistic::metrics(200, seed);
        let logs = realistic::logs(250, seed);
        let name = compression.as_ref().map_or("none", |c| c.name());
        let outcome = exporter
            .clone()
            .oneshot(ExportRequest::<Traces>::new(traces.clone()))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((outcome.items(), outcome.rejected()), (300, 0), "{name}");
        let outcome = exporter
            .clone()
            .oneshot(ExportRequest::<Metrics>::new(metrics.clone()))
            .await
            .expect("metrics");
        assert_eq!(outcome.accepted(), 200, "{name}");
        exporter
            .clone()
            .oneshot(ExportRequest::<Logs>::new(logs.clone()))
            .await
            .expect("logs");
        let received = record.lock().expect("lock");
        assert_eq!(received.traces.last(), Some(&traces), "{name}");
        assert_eq!(received.metrics.last(), Some(&metrics), "{name}");
        assert_eq!(received.logs.last(), Some(&logs), "{name}");
    }
    assert_eq!(record.lock().expect("lock").traces.len(), algorithms.len());
    running.shutdown().await;
}

#[tokio::test]
async fn bidirectional_stream_delivers_every_signal_with_every_algorithm() {
    let (record, running) = start_recording_receiver(ReceiverConfig::default()).await;
    for compression in algorithms() {
        let name = compression
            .as_ref()
            .map_or("none", |c| c.name())
            .to_string();
        let stream = StreamExporter::new(
            exporter_for(&endpoint(&running), compression),
            StreamExporterConfig::default(),
        );
        let mut calls = Vec::new();
        for seed in 0..20u64 {
            let stream = stream.clone();
            calls.push(tokio::spawn(async move {
                let traces = realistic::traces(64, seed);
                let outcome = stream
                    .export(ExportRequest::<Traces>::new(traces).into())
                    .await?;
                let metrics = realistic::metrics(10, seed);
                stream
                    .export(ExportRequest::<Metrics>::new(metrics).into())
                    .await?;
                let logs = realistic::logs(7, seed);
                stream
                    .export(ExportRequest::<Logs>::new(logs).into())
                    .await?;
                Ok::<_, ExportError>(outcome)
            }));
        }
        for call in calls {
            let outcome = call
                .await
                .expect("task")
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(outcome.accepted(), 64);
        }
        let stats = stream.stats();
        assert_eq!(
            stats
                .batches_delivered
                .load(std::sync::atomic::Ordering::Relaxed),
            60
        );
        assert!(
            !stats
                .fell_back_to_unary
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        let mut received = record.lock().expect("lock");
        let mut expected: Vec<_> = (0..20).map(|seed| realistic::traces(64, seed)).collect();
        let mut got = std::mem::take(&mut received.traces);
        let key = |r: &otlp_model::collector::trace::ExportTraceServiceRequest| {
            r.resource_spans[0].scope_spans[0].spans[0].span_id.clone()
        };
        expected.sort_by_key(key);
        got.sort_by_key(key);
        assert_eq!(got, expected, "{name}");
        assert_eq!(std::mem::take(&mut received.metrics).len(), 20, "{name}");
        assert_eq!(std::mem::take(&mut received.logs).len(), 20, "{name}");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn partial_success_and_throttling_reach_the_exporter() {
    let (_, service) = recording(|items: usize| {
        if items == 7 {
            Err(ExportError::unavailable("queue full").with_retry_after(Duration::from_secs(3)))
        } else {
            Ok(ExportOutcome::partial(items, 2, "two spans had no name"))
        }
    });
    let running = GrpcReceiver::new(service)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let exporter = exporter_for(&endpoint(&running), None);
    let outcome = exporter
        .export(&ExportRequest::<Traces>::new(realistic::traces(10, 1)))
        .await
        .expect("partial success is success");
    assert_eq!((outcome.accepted(), outcome.rejected()), (8, 2));
    assert_eq!(outcome.message(), "two spans had no name");

    let error = exporter
        .export(&ExportRequest::<Traces>::new(realistic::traces(7, 1)))
        .await
        .expect_err("throttled");
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert_eq!(
        error.retry_class(),
        RetryClass::Throttled(Duration::from_secs(3))
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_refused_encoding_is_reported_as_such_and_identity_still_works() {
    let config = ReceiverConfig {
        intake: otlp_grpc::IntakeConfig {
            compression: CompressionSet::new().with(Gzip::default()),
            ..Default::default()
        },
        ..Default::default()
    };
    let (record, running) = start_recording_receiver(config).await;
    let exporter = GrpcExporter::new(
        ExporterConfig::new(&endpoint(&running))
            .expect("config")
            .with_compression(Lz4),
    )
    .expect("exporter");
    let request = ExportRequest::<Traces>::new(realistic::traces(5, 2));
    let error = exporter.export(&request).await.expect_err("lz4 refused");
    assert_eq!(error.kind(), ErrorKind::UnsupportedMediaType, "{error}");
    // What the retry layer then does: the same request, uncompressed.
    let outcome = exporter
        .export(&request.clone().without_compression())
        .await
        .expect("identity accepted");
    assert_eq!(outcome.accepted(), 5);
    assert_eq!(record.lock().expect("lock").traces.len(), 1);
    running.shutdown().await;
}

#[tokio::test]
async fn bearer_tokens_guard_the_receiver_and_metadata_is_forwarded() {
    let (record, service) = recording(accept_all);
    // The operator lists the metadata to forward; credentials never travel, even listed.
    let running = GrpcReceiver::new(service)
        .with_config(otlp_grpc::ReceiverConfig {
            intake: otlp_grpc::IntakeConfig {
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
    let anonymous = exporter_for(&endpoint(&running), None);
    let error = anonymous.export(&request).await.expect_err("no token");
    assert_eq!(error.kind(), ErrorKind::Unauthenticated);
    assert_eq!(error.retry_class(), RetryClass::Permanent);

    let config = ExporterConfig::new(&endpoint(&running))
        .expect("config")
        .with_header(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer s3cret"),
        )
        .with_header(
            http::HeaderName::from_static("x-tenant"),
            http::HeaderValue::from_static("acme"),
        );
    let exporter = GrpcExporter::new(config).expect("exporter");
    exporter.export(&request).await.expect("authenticated");
    {
        let received = record.lock().expect("lock");
        assert_eq!(received.traces.len(), 1);
        assert_eq!(received.headers[0]["x-tenant"], "acme");
        assert!(received.headers[0].get("authorization").is_none());
    }
    running.shutdown().await;
}

#[tokio::test]
async fn tls_and_mutual_tls() {
    let pki = otlp_testkit::pki::TestPki::generate();
    let (server_cert, server_key) = (pki.server.cert_pem, pki.server.key_pem);
    let (client_cert, client_key) = (pki.client.cert_pem, pki.client.key_pem);
    let ca_pem = pki.ca_pem;

    let server_tls =
        otlp_grpc::tls::ServerTls::from_pem(server_cert.as_bytes(), server_key.as_bytes())
            .expect("server tls")
            .require_client_certificates(ca_pem.as_bytes())
            .expect("client ca");
    let (record, service) = recording(accept_all);
    let running = GrpcReceiver::new(service)
        .with_tls(server_tls)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let url = format!("https://localhost:{}", running.local_addr().port());
    let request = ExportRequest::<Traces>::new(realistic::traces(4, 4));

    // Without a client certificate the handshake is refused.
    let tls = otlp_grpc::tls::ClientTls::with_ca_pem(ca_pem.as_bytes()).expect("ca");
    let config = ExporterConfig::new(&url)
        .expect("config")
        .with_tls(tls.clone());
    let error = GrpcExporter::new(config)
        .expect("exporter")
        .export(&request)
        .await
        .expect_err("no client certificate");
    assert!(error.is_retryable(), "{error}");

    let tls = tls
        .with_client_certificate(client_cert.as_bytes(), client_key.as_bytes())
        .expect("identity");
    let config = ExporterConfig::new(&url).expect("config").with_tls(tls);
    let exporter = GrpcExporter::new(config).expect("exporter");
    exporter.export(&request).await.expect("mutual TLS");
    assert_eq!(record.lock().expect("lock").spans(), 4);
    running.shutdown().await;
}

#[tokio::test]
async fn one_connection_carries_concurrent_exports() {
    let (record, running) = start_recording_receiver(ReceiverConfig::default()).await;
    let exporter = exporter_for(&endpoint(&running), None);
    let calls: Vec<_> = (0..64)
        .map(|seed| {
            let exporter = exporter.clone();
            tokio::spawn(async move {
                let request = AnyExportRequest::from(ExportRequest::<Traces>::new(
                    realistic::traces(16, seed),
                ));
                exporter.oneshot(request).await
            })
        })
        .collect();
    for call in calls {
        call.await.expect("task").expect("export");
    }
    assert_eq!(record.lock().expect("lock").spans(), 64 * 16);
    running.shutdown().await;
}

#[tokio::test]
async fn export_stream_acknowledges_receipt_then_completion() {
    use otlp_model::stream::stream_ack::Stage;
    let (record, running) = start_recording_receiver(ReceiverConfig::default()).await;
    let exporter = exporter_for(&endpoint(&running), None);
    let request = AnyExportRequest::from(ExportRequest::<Logs>::new(realistic::logs(12, 5)));
    let mut staged = exporter.export_staged(&request, 7).await.expect("call");
    let received = staged.next_ack().await.expect("an ack").expect("ok");
    assert_eq!(
        (received.sequence, received.stage),
        (7, Stage::Received as i32)
    );
    let completed = staged.next_ack().await.expect("an ack").expect("ok");
    assert_eq!(
        (completed.sequence, completed.stage, completed.code),
        (7, Stage::Completed as i32, 0)
    );
    assert!(staged.next_ack().await.is_none(), "ends with OK");
    assert_eq!(
        record.lock().expect("lock").logs,
        vec![realistic::logs(12, 5)]
    );
    running.shutdown().await;
}

#[tokio::test]
async fn full_decode_mode_delivers_the_same() {
    let config = ReceiverConfig {
        intake: otlp_grpc::IntakeConfig {
            decode: otlp_grpc::DecodeMode::Full,
            ..Default::default()
        },
        ..Default::default()
    };
    let (record, running) = start_recording_receiver(config).await;
    let exporter = exporter_for(&endpoint(&running), None);
    let traces = realistic::traces(40, 8);
    exporter
        .export(&ExportRequest::<Traces>::new(traces.clone()))
        .await
        .expect("unary");
    let stream = StreamExporter::new(exporter, StreamExporterConfig::default());
    stream
        .export(ExportRequest::<Traces>::new(traces.clone()).into())
        .await
        .expect("stream");
    assert_eq!(
        record.lock().expect("lock").traces,
        vec![traces.clone(), traces]
    );
    running.shutdown().await;
}
