//! Hostile and broken HTTP input: each gets the status and body the specification names,
//! memory stays bounded, nothing hangs, and other clients keep being served.

mod common;

use std::time::Duration;

use common::{post_head, raw, read_response, start};
use otlp_codec::{Json, Protobuf};
use otlp_compression::CompressionSet;
use otlp_core::otlp_model::rpc;
use otlp_core::{ExportRequest, Traces};
use otlp_http::{Cors, HttpExporter, HttpExporterConfig, HttpReceiverConfig};
use otlp_testkit::realistic;
use prost::Message;
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(10);

fn protobuf_body() -> Vec<u8> {
    ExportRequest::<Traces>::new(realistic::traces(5, 1))
        .to_protobuf()
        .to_vec()
}

async fn still_serving(endpoint: &str) {
    for codec in [true, false] {
        let mut config = HttpExporterConfig::new(endpoint).expect("config");
        if codec {
            config = config.with_codec(Json::default());
        } else {
            config = config.with_codec(Protobuf::default());
        }
        let outcome = HttpExporter::new(config)
            .expect("exporter")
            .export(&ExportRequest::<Traces>::new(realistic::traces(4, 2)))
            .await
            .expect("a well-behaved client is served");
        assert_eq!(outcome.accepted(), 4);
    }
}

fn status_of(body: &[u8]) -> rpc::Status {
    rpc::Status::decode(body).expect("a google.rpc.Status body")
}

#[tokio::test]
async fn malformed_and_unsupported_requests_get_their_status_and_body() {
    let (record, running) = start(HttpReceiverConfig::default()).await;
    let address = running.local_addr();

    // Unknown content type: 415 with a protobuf Status.
    let body = protobuf_body();
    let head = post_head("/v1/traces", "text/plain", &[], Some(body.len()));
    let answer = raw(address, &head, &body, WAIT).await.expect("answer");
    assert_eq!(answer.status, 415);
    assert!(
        status_of(&answer.body).message.contains("content type"),
        "{answer:?}"
    );

    // Unknown encoding: 415.
    let head = post_head(
        "/v1/traces",
        "application/x-protobuf",
        &[("Content-Encoding", "br")],
        Some(body.len()),
    );
    assert_eq!(
        raw(address, &head, &body, WAIT)
            .await
            .expect("answer")
            .status,
        415
    );

    // Invalid JSON: 400 with a JSON Status naming the problem.
    let bad = br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 12}]}]}]}"#;
    let head = post_head("/v1/traces", "application/json", &[], Some(bad.len()));
    let answer = raw(address, &head, bad, WAIT).await.expect("answer");
    assert_eq!(answer.status, 400);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON Status");
    assert_eq!(json["code"], 3, "{json}");
    assert!(
        json["message"].as_str().unwrap_or("").contains("traceId"),
        "{json}"
    );

    // Protobuf sent as JSON: 400.
    let head = post_head("/v1/traces", "application/json", &[], Some(body.len()));
    assert_eq!(
        raw(address, &head, &body, WAIT)
            .await
            .expect("answer")
            .status,
        400
    );

    // Garbage protobuf: 400 with a protobuf Status.
    let garbage = [0x0a, 0xff, 0xff, 0x01];
    let head = post_head(
        "/v1/traces",
        "application/x-protobuf",
        &[],
        Some(garbage.len()),
    );
    let answer = raw(address, &head, &garbage, WAIT).await.expect("answer");
    assert_eq!(answer.status, 400);
    assert_eq!(status_of(&answer.body).code, 3);

    // Wrong method and unknown path.
    let answer = raw(
        address,
        "GET /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n",
        b"",
        WAIT,
    )
    .await
    .expect("answer");
    assert_eq!(answer.status, 405);
    let head = post_head("/v1/nothing", "application/x-protobuf", &[], Some(0));
    assert_eq!(
        raw(address, &head, b"", WAIT).await.expect("answer").status,
        404
    );

    assert!(
        record.lock().expect("lock").traces.is_empty(),
        "nothing bad reached the service"
    );
    still_serving(&common::endpoint(&running)).await;
    running.shutdown().await;
}

#[tokio::test]
async fn oversized_requests_and_bombs_get_413() {
    let config = HttpReceiverConfig {
        intake: otlp_http::IntakeConfig {
            max_sent_bytes: 1 << 20,
            max_request_bytes: 4 << 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let (_, running) = start(config).await;
    let address = running.local_addr();

    // A 10 GiB Content-Length: refused from the header, before any body.
    let head = post_head("/v1/traces", "application/x-protobuf", &[], Some(10 << 30));
    let answer = raw(address, &head, b"", WAIT).await.expect("answer");
    assert_eq!(answer.status, 413);
    // The body is left unread, so the connection is closed, and the answer says so: a
    // client's pool would otherwise send its next request into it (the conformance kit's
    // split-and-resend check found such a request failing).
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");

    // A chunked body that grows past the limit: refused while reading.
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..40 {
        let _ = stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await;
        let _ = stream.write_all(&chunk).await;
        let _ = stream.write_all(b"\r\n").await;
    }
    let answer = read_response(&mut stream, WAIT).await.expect("answer");
    assert_eq!(answer.status, 413);

    // A bomb for every algorithm: 64 MiB of zeros, limit 4 MiB after decompression.
    let zeros = vec![0u8; 64 << 20];
    for algorithm in CompressionSet::with_defaults().iter() {
        let Some(name) = algorithm.http_name() else {
            continue;
        };
        let mut bomb = Vec::new();
        algorithm.compress(&zeros, &mut bomb).expect("compress");
        if bomb.len() > 1 << 20 {
            // Snappy cannot compress zeros below 1/20; what it sends is refused as too long.
            let head = post_head(
                "/v1/traces",
                "application/x-protobuf",
                &[("Content-Encoding", name)],
                Some(bomb.len()),
            );
            let answer = raw(address, &head, &bomb, WAIT).await.expect("answer");
            assert_eq!(answer.status, 413, "{name}");
            continue;
        }
        let head = post_head(
            "/v1/traces",
            "application/x-protobuf",
            &[("Content-Encoding", name)],
            Some(bomb.len()),
        );
        let answer = raw(address, &head, &bomb, WAIT).await.expect("answer");
        assert_eq!(answer.status, 413, "{name}: {answer:?}");
        assert_eq!(
            status_of(&answer.body).code,
            8,
            "{name}: RESOURCE_EXHAUSTED"
        );
    }
    still_serving(&common::endpoint(&running)).await;
    running.shutdown().await;
}

#[tokio::test]
async fn slow_and_stalled_clients_are_cut_off() {
    let config = HttpReceiverConfig {
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let (_, running) = start(config).await;
    let address = running.local_addr();

    // Headers that never finish: the connection is closed.
    let mut slow = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    slow.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial head");
    let started = std::time::Instant::now();
    let answer = read_response(&mut slow, WAIT).await;
    assert!(
        answer.as_ref().is_none_or(|a| a.status == 408),
        "{answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after the header timeout"
    );

    // A chunked body that never ends: 408.
    let mut stalled = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    stalled.write_all(head.as_bytes()).await.expect("head");
    let answer = read_response(&mut stalled, WAIT).await.expect("answer");
    assert_eq!(answer.status, 408);

    still_serving(&common::endpoint(&running)).await;
    running.shutdown().await;
}

#[tokio::test]
async fn cors_preflight_and_responses() {
    let config = HttpReceiverConfig {
        cors: Cors::allow_origins(["http://page.example"]),
        ..Default::default()
    };
    let (record, running) = start(config).await;
    let address = running.local_addr();
    let preflight = "OPTIONS /v1/traces HTTP/1.1\r\nHost: x\r\nOrigin: http://page.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n";
    let answer = raw(address, preflight, b"", WAIT).await.expect("answer");
    assert_eq!(answer.status, 204);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("http://page.example")
    );
    assert!(
        answer
            .header("access-control-allow-headers")
            .unwrap_or("")
            .contains("content-type")
    );
    let other = preflight.replace("page.example", "evil.example");
    assert_eq!(
        raw(address, &other, b"", WAIT)
            .await
            .expect("answer")
            .status,
        403
    );

    let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"browser"}]}]}]}"#;
    let head = post_head(
        "/v1/traces",
        "application/json",
        &[("Origin", "http://page.example")],
        Some(json.len()),
    );
    let answer = raw(address, &head, json, WAIT).await.expect("answer");
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("http://page.example")
    );
    assert_eq!(record.lock().expect("lock").spans(), 1);
    running.shutdown().await;
}
