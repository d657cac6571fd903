//! Hostile and broken input over real sockets: each gets the status the specification
//! names, nothing panics or hangs, and the receiver keeps serving other clients.

mod common;

use common::{RawClient, endpoint, frame, start_recording_receiver};
use otlp_compression::{Compression, Gzip};
use otlp_core::{ExportRequest, Traces};
use otlp_grpc::auth::BearerToken;
use otlp_grpc::{ExporterConfig, GrpcExporter, GrpcReceiver, ReceiverConfig};
use otlp_testkit::realistic;
use prost::Message;

const TRACES: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNIMPLEMENTED: i32 = 12;
const INTERNAL: i32 = 13;
const UNAUTHENTICATED: i32 = 16;

async fn still_serving(endpoint: &str) {
    let exporter =
        GrpcExporter::new(ExporterConfig::new(endpoint).expect("config")).expect("exporter");
    let outcome = exporter
        .export(&ExportRequest::<Traces>::new(realistic::traces(10, 9)))
        .await
        .expect("a well-behaved client is still served");
    assert_eq!(outcome.accepted(), 10);
}

#[tokio::test]
async fn each_kind_of_bad_input_gets_its_status_and_others_are_still_served() {
    let config = ReceiverConfig {
        intake: otlp_grpc::IntakeConfig::default().with_max_request_bytes(4 * 1024 * 1024),
        ..Default::default()
    };
    let (record, running) = start_recording_receiver(config).await;
    let mut raw = RawClient::connect(running.local_addr()).await;

    // A gzip bomb: about 250 KiB on the wire, 256 MiB inflated, limit 4 MiB.
    let mut bomb = Vec::new();
    {
        use std::io::Write;
        let mut encoder = flate2_writer(&mut bomb);
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            encoder.write_all(&zeros).expect("write");
        }
        encoder.finish().expect("finish");
    }
    assert!(bomb.len() < 2 * 1024 * 1024);
    let answer = raw
        .call(TRACES, &[("grpc-encoding", "gzip")], frame(true, &bomb))
        .await;
    assert_eq!(answer.grpc_status, Some(RESOURCE_EXHAUSTED), "{answer:?}");

    // A frame declaring more than the limit: refused from its header.
    let mut oversized = vec![0u8];
    oversized.extend_from_slice(&(64u32 << 20).to_be_bytes());
    oversized.extend_from_slice(&[0u8; 1024]);
    let answer = raw.call(TRACES, &[], oversized.into()).await;
    assert_eq!(answer.grpc_status, Some(RESOURCE_EXHAUSTED), "{answer:?}");

    // Garbage protobuf.
    let answer = raw
        .call(TRACES, &[], frame(false, &[0x0a, 0xff, 0xff, 0x01, 0x02]))
        .await;
    assert_eq!(answer.grpc_status, Some(INVALID_ARGUMENT), "{answer:?}");
    assert!(answer.grpc_message.contains("malformed"), "{answer:?}");

    // A compressed flag without grpc-encoding, an invalid flag, a truncated frame.
    let answer = raw.call(TRACES, &[], frame(true, b"abc")).await;
    assert_eq!(answer.grpc_status, Some(INTERNAL), "{answer:?}");
    let mut flag = frame(false, b"").to_vec();
    flag[0] = 7;
    let answer = raw.call(TRACES, &[], flag.into()).await;
    assert_eq!(answer.grpc_status, Some(INTERNAL), "{answer:?}");
    let truncated = frame(false, &[0u8; 100]).slice(..50);
    let answer = raw.call(TRACES, &[], truncated).await;
    assert_eq!(answer.grpc_status, Some(INTERNAL), "{answer:?}");

    // An encoding nobody knows: UNIMPLEMENTED, with what is accepted.
    let answer = raw
        .call(TRACES, &[("grpc-encoding", "brotli")], frame(true, b"x"))
        .await;
    assert_eq!(answer.grpc_status, Some(UNIMPLEMENTED), "{answer:?}");

    // An unknown method.
    let answer = raw
        .call("/nope.Service/Export", &[], frame(false, b""))
        .await;
    assert_eq!(answer.grpc_status, Some(UNIMPLEMENTED), "{answer:?}");

    // Not gRPC at all.
    let answer = raw
        .call(TRACES, &[("content-type", "application/json")], "{}".into())
        .await;
    assert_eq!(answer.http_status, 415, "{answer:?}");

    // Nothing of the above reached the service, and a good client is served.
    assert_eq!(record.lock().expect("lock").traces.len(), 0);
    let stats = running.stats();
    assert!(
        stats
            .refused_requests
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 6
    );
    still_serving(&endpoint(&running)).await;
    // And so is the connection that sent all of it.
    let good = ExportRequest::<Traces>::new(realistic::traces(3, 1)).to_protobuf();
    let answer = raw.call(TRACES, &[], frame(false, &good)).await;
    assert_eq!(answer.grpc_status, Some(0), "{answer:?}");
    running.shutdown().await;
}

fn flate2_writer(out: &mut Vec<u8>) -> GzipWriter<'_> {
    GzipWriter {
        out,
        input: Vec::new(),
    }
}

/// Collects input and gzips it on finish with the compression crate's own algorithm.
struct GzipWriter<'a> {
    out: &'a mut Vec<u8>,
    input: Vec<u8>,
}

impl std::io::Write for GzipWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.input.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl GzipWriter<'_> {
    fn finish(self) -> std::io::Result<()> {
        Gzip::new(9)
            .compress(&self.input, self.out)
            .map_err(std::io::Error::other)
    }
}

#[tokio::test]
async fn unauthenticated_calls_are_refused_before_the_body_is_read() {
    let (_, service) = common::recording(common::accept_all);
    let running = GrpcReceiver::new(service)
        .with_auth(BearerToken::new("right"))
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let mut raw = RawClient::connect(running.local_addr()).await;
    // The body is garbage and would be INVALID_ARGUMENT if it were read.
    let answer = raw
        .call(
            TRACES,
            &[("authorization", "Bearer wrong")],
            frame(false, &[0xff; 10]),
        )
        .await;
    assert_eq!(answer.grpc_status, Some(UNAUTHENTICATED), "{answer:?}");
    let answer = raw.call(TRACES, &[], frame(false, &[0xff; 10])).await;
    assert_eq!(answer.grpc_status, Some(UNAUTHENTICATED), "{answer:?}");
    let good = ExportRequest::<Traces>::new(realistic::traces(2, 1)).to_protobuf();
    let answer = raw
        .call(
            TRACES,
            &[("authorization", "Bearer right")],
            frame(false, &good),
        )
        .await;
    assert_eq!(answer.grpc_status, Some(0), "{answer:?}");
    running.shutdown().await;
}

#[tokio::test]
async fn health_checking_answers_for_the_otlp_services() {
    let (_, running) = start_recording_receiver(ReceiverConfig::default()).await;
    let mut raw = RawClient::connect(running.local_addr()).await;
    #[derive(Clone, PartialEq, prost::Message)]
    struct HealthCheckRequest {
        #[prost(string, tag = "1")]
        service: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct HealthCheckResponse {
        #[prost(int32, tag = "1")]
        status: i32,
    }
    for service in ["", "opentelemetry.proto.collector.trace.v1.TraceService"] {
        let request = HealthCheckRequest {
            service: service.into(),
        }
        .encode_to_vec();
        let answer = raw
            .call("/grpc.health.v1.Health/Check", &[], frame(false, &request))
            .await;
        assert_eq!(answer.grpc_status, Some(0), "{answer:?}");
        let response = HealthCheckResponse::decode(&answer.data[5..]).expect("response");
        assert_eq!(response.status, 1, "SERVING");
    }
    let request = HealthCheckRequest {
        service: "unknown.Service".into(),
    }
    .encode_to_vec();
    let answer = raw
        .call("/grpc.health.v1.Health/Check", &[], frame(false, &request))
        .await;
    assert_eq!(answer.grpc_status, Some(5), "NOT_FOUND: {answer:?}");
    running.shutdown().await;
}
