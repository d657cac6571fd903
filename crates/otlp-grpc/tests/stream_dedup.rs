//! De-duplication on the bidirectional stream, over a real socket: a resend that arrives
//! while its original is still being processed is not acknowledged as delivered; an
//! original that fails leaves no entry, so its resend is processed; a panicking service is
//! answered for the batch's own sequence number. A client that never reads its
//! acknowledgements cannot hold its stream.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{RawClient, frame};
use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, GrpcCode};
use otlp_grpc::GrpcReceiver;
use otlp_grpc::protocol::EXPORT_BIDIRECTIONAL_PATH;
use otlp_model::stream::{StreamAck, StreamBatch, stream_batch::Payload};
use prost::Message;
use tokio::sync::oneshot;

/// What the service does with the next request it is handed.
enum Behaviour {
    Hold(oneshot::Receiver<Result<ExportOutcome, ExportError>>),
    Accept,
    Panic,
}

#[derive(Clone, Default)]
struct Scripted {
    script: Arc<Mutex<VecDeque<Behaviour>>>,
    calls: Arc<Mutex<usize>>,
}

impl Scripted {
    fn then(&self, behaviour: Behaviour) {
        self.script.lock().expect("lock").push_back(behaviour);
    }
    fn calls(&self) -> usize {
        *self.calls.lock().expect("lock")
    }
}

impl tower_service::Service<AnyExportRequest> for Scripted {
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = otlp_core::BoxExportFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ExportError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: AnyExportRequest) -> Self::Future {
        *self.calls.lock().expect("lock") += 1;
        let items = request.item_count();
        let next = self.script.lock().expect("lock").pop_front();
        Box::pin(async move {
            match next.unwrap_or(Behaviour::Accept) {
                Behaviour::Hold(verdict) => verdict
                    .await
                    .unwrap_or_else(|_| Err(ExportError::internal("verdict dropped"))),
                Behaviour::Accept => Ok(ExportOutcome::success(items)),
                Behaviour::Panic => panic!("the service panics on purpose"),
            }
        })
    }
}

fn batch(sequence: u64, id: &[u8]) -> bytes::Bytes {
    let message = StreamBatch {
        sequence,
        batch_id: bytes::Bytes::copy_from_slice(id),
        payload: Some(Payload::Traces(otlp_testkit::realistic::traces(
            3, sequence,
        ))),
    };
    frame(false, &message.encode_to_vec())
}

/// The acknowledgements in a stream's response data.
fn acks(mut data: &[u8]) -> Vec<StreamAck> {
    let mut out = Vec::new();
    while data.len() >= 5 {
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        out.push(StreamAck::decode(&data[5..5 + len]).expect("an acknowledgement"));
        data = &data[5 + len..];
    }
    out
}

async fn send(address: std::net::SocketAddr, sequence: u64, id: &[u8]) -> StreamAck {
    let mut client = RawClient::connect(address).await;
    let answer = client
        .call(EXPORT_BIDIRECTIONAL_PATH, &[], batch(sequence, id))
        .await;
    assert_eq!(answer.grpc_status, Some(0), "{answer:?}");
    let mut acks = acks(&answer.data);
    assert_eq!(acks.len(), 1, "{acks:?}");
    acks.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_of_a_batch_in_flight_is_not_acknowledged_until_the_original_succeeds() {
    let service = Scripted::default();
    let running = GrpcReceiver::new(service.clone())
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let address = running.local_addr();
    let id = b"0123456789abcdef";
    let (verdict, held) = oneshot::channel();
    service.then(Behaviour::Hold(held));
    let original = tokio::spawn(async move { send(address, 1, id).await });
    while service.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // While the original is held: the resend is refused with a retryable code and a hint.
    let resend = send(address, 1, id).await;
    assert_eq!(resend.code, GrpcCode::Unavailable.as_i32(), "{resend:?}");
    assert!(resend.retry_after_millis > 0);
    assert_eq!(service.calls(), 1, "the resend was not processed");
    // The original fails: its resend must be processed, not answered from memory.
    verdict
        .send(Err(ExportError::unavailable("downstream down")))
        .expect("verdict");
    let first = original.await.expect("task");
    assert_eq!(first.code, GrpcCode::Unavailable.as_i32());
    let again = send(address, 1, id).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        service.calls(),
        2,
        "the resend after a failure was processed"
    );
    // Accepted now: one more resend is a duplicate, acknowledged without processing.
    let duplicate = send(address, 1, id).await;
    assert_eq!(duplicate.code, 0);
    assert_eq!(service.calls(), 2);
    assert_eq!(
        running
            .stats()
            .streams
            .duplicate_batches
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_service_is_answered_for_the_batch_sequence() {
    let service = Scripted::default();
    service.then(Behaviour::Panic);
    let running = GrpcReceiver::new(service.clone())
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let ack = send(running.local_addr(), 7, b"panics").await;
    assert_eq!(ack.sequence, 7, "{ack:?}");
    assert_eq!(ack.code, GrpcCode::Internal.as_i32());
    // The id was not remembered: the resend is processed.
    let ack = send(running.local_addr(), 7, b"panics").await;
    assert_eq!((ack.sequence, ack.code), (7, 0));
    assert_eq!(service.calls(), 2);
    running.shutdown().await;
}

/// Against an upstream that accepts connections and never answers (not even the HTTP/2
/// handshake), a stream export ends within the call timeout as a retryable timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_call_to_a_silent_upstream_ends_within_the_call_timeout() {
    let hole = otlp_testkit::eavesdrop::BlackHole::start();
    let address = hole.address();
    let exporter = otlp_grpc::GrpcExporter::new(
        otlp_grpc::ExporterConfig::new(&format!("http://{address}")).expect("config"),
    )
    .expect("exporter");
    let stream = otlp_grpc::StreamExporter::new(
        exporter,
        otlp_grpc::StreamExporterConfig {
            call_timeout: Some(Duration::from_millis(700)),
            ..Default::default()
        },
    );
    let started = std::time::Instant::now();
    let error = stream
        .export(
            otlp_core::ExportRequest::<otlp_core::Traces>::new(otlp_testkit::realistic::traces(
                2, 1,
            ))
            .into(),
        )
        .await
        .expect_err("no answer");
    assert!(error.is_retryable(), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(hole.connections() > 0, "the exporter did connect");
}

/// Health `Watch` streams are capped: past the cap a new one is refused with UNAVAILABLE
/// while the open ones stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_watch_streams_are_capped() {
    let running = GrpcReceiver::new(Scripted::default())
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let address = running.local_addr();
    let mut open = Vec::new();
    let mut senders = Vec::new();
    // A few connections, each under the HTTP/2 stream limit.
    for _ in 0..4 {
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let (sender, connection) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .expect("handshake");
        tokio::spawn(connection);
        senders.push(sender);
    }
    let watch = |sender: &mut hyper::client::conn::http2::SendRequest<
        otlp_grpc::body::GrpcBody,
    >| {
        let request = http::Request::post(format!("http://{address}/grpc.health.v1.Health/Watch"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(otlp_grpc::body::GrpcBody::once(
                Some(frame(false, &[])),
                None,
            ))
            .expect("request");
        sender.send_request(request)
    };
    for n in 0..otlp_grpc::MAX_HEALTH_WATCHES {
        let sender = &mut senders[n % 4];
        sender.ready().await.expect("ready");
        let response = watch(sender).await.expect("response");
        assert!(
            response.headers().get("grpc-status").is_none(),
            "watch {n} refused"
        );
        open.push(response);
    }
    let sender = &mut senders[0];
    sender.ready().await.expect("ready");
    let refused = watch(sender).await.expect("response");
    assert_eq!(
        refused.headers().get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"14"[..]),
        "{:?}",
        refused.headers()
    );
    drop(open);
    running.abort().await;
}

/// A client that sends batches and never reads their acknowledgements fills its stream's
/// window; the receiver's blocked write then ends within the request timeout, the stream's
/// task ends and is counted, and other clients are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_acknowledgements_cannot_hold_the_stream() {
    let service = Scripted::default();
    let running = GrpcReceiver::new(service.clone())
        .with_config(otlp_grpc::ReceiverConfig {
            request_timeout: Duration::from_secs(1),
            ..Default::default()
        })
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let mut client = RawClient::connect_with_window(running.local_addr(), Some(1024)).await;
    let (body, _unread) = client.open_stream(EXPORT_BIDIRECTIONAL_PATH).await;
    let sending = tokio::spawn(async move {
        for sequence in 1..=1_000_000u64 {
            if !body.data(batch(sequence, b"")).await {
                return;
            }
        }
    });
    let stats = running.stats();
    let started = std::time::Instant::now();
    while stats.streams.open.load(Ordering::Relaxed) == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "never opened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while stats.streams.open.load(Ordering::Relaxed) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the stream is still served after {:?}, {} batches taken",
            started.elapsed(),
            service.calls()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "stream ended after {:?} and {} batches",
        started.elapsed(),
        service.calls()
    );
    assert_eq!(stats.streams.stalled.load(Ordering::Relaxed), 1);
    sending.abort();
    let ack = send(running.local_addr(), 1, b"after").await;
    assert_eq!(ack.code, 0, "{ack:?}");
    running.shutdown().await;
}

/// A stream on which nothing arrives for the idle timeout, with nothing left to
/// acknowledge, ends with UNAVAILABLE (the client reopens one when it has data) after
/// acknowledging what it took; it is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_ends_with_unavailable_after_its_acknowledgements() {
    use http_body_util::BodyExt;
    let service = Scripted::default();
    let running = GrpcReceiver::new(service.clone())
        .with_config(otlp_grpc::ReceiverConfig {
            stream_idle_timeout: Duration::from_millis(300),
            ..Default::default()
        })
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let mut client = RawClient::connect(running.local_addr()).await;
    let (body, response) = client.open_stream(EXPORT_BIDIRECTIONAL_PATH).await;
    assert!(body.data(batch(1, b"before-idle")).await);
    let collected = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("the idle stream ended")
        .expect("body");
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map(|v| v.as_bytes().to_vec());
    assert_eq!(status.as_deref(), Some(&b"14"[..]));
    let acks = acks(&collected.to_bytes());
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!((acks[0].sequence, acks[0].code), (1, 0));
    assert_eq!(running.stats().streams.idle.load(Ordering::Relaxed), 1);
    drop(body);
    running.shutdown().await;
}
