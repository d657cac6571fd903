//! The batcher as a property (random pushes, ticks and flushes), and its driver on virtual
//! time in front of the retry layer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_batch::{BatchConfig, BatchLayer, BatchLayerConfig, Batcher};
use otlp_core::{ExportError, ExportOutcome, ExportRequest, GrpcCode, Traces};
use otlp_model::SignalRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_model::wire::{Encoded, Payload};
use otlp_reliability::backoff::BackoffConfig;
use otlp_reliability::metrics::{DropReason, PipelineMetrics};
use otlp_reliability::retry::RetryLayer;
use proptest::prelude::*;
use prost::Message;
use tower::{Layer, ServiceExt, service_fn};

/// `count` spans named with consecutive sequence numbers from `first`, under one of two
/// resources, so that batches mix groups.
fn numbered(first: usize, count: usize) -> ExportTraceServiceRequest {
    let mut request = otlp_testkit::realistic::traces(count, first as u64);
    for (i, span) in request.resource_spans[0].scope_spans[0]
        .spans
        .iter_mut()
        .enumerate()
    {
        span.name = format!("{}", first + i);
    }
    if first % 2 == 1 {
        request.resource_spans[0].schema_url = "odd".into();
    }
    request
}

/// (resource group, sequence number) of every span, in batch order.
fn names(batch: &ExportTraceServiceRequest) -> Vec<(String, usize)> {
    batch
        .resource_spans
        .iter()
        .flat_map(|r| {
            r.scope_spans
                .iter()
                .flat_map(|s| &s.spans)
                .map(move |s| (r.schema_url.clone(), s.name.parse().expect("numbered")))
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Tick(u64),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..300).prop_map(Op::Push),
        2 => (0u64..3000).prop_map(Op::Tick),
        1 => Just(Op::Flush),
    ]
}

/// Runs `ops` through a batcher of `R` (requests made by `into`, batches read back by
/// `back`) and checks that every span comes out exactly once, in order, that no batch
/// exceeds its caps, and that a batch leaves no later than its linger time after its first
/// span arrived.
fn check_batching<R: otlp_model::wire::Batchable>(
    ops: Vec<Op>,
    config: BatchConfig,
    into: impl Fn(ExportTraceServiceRequest) -> R,
    back: impl Fn(R) -> ExportTraceServiceRequest,
) -> Result<(), TestCaseError> {
    let mut batcher = Batcher::new(config);
    let mut now = Duration::ZERO;
    let mut next = 0usize;
    let mut out: Vec<R> = Vec::new();
    for op in ops {
        match op {
            Op::Push(n) => {
                out.extend(batcher.push(into(numbered(next, n)), now));
                next += n;
            }
            Op::Tick(ms) => {
                now += Duration::from_millis(ms);
                if let Some(deadline) = batcher.deadline() {
                    prop_assert!(deadline <= now + config.linger);
                }
                out.extend(batcher.expire(now));
                if let Some(deadline) = batcher.deadline() {
                    prop_assert!(deadline > now, "an expired batch was kept");
                }
            }
            Op::Flush => out.extend(batcher.flush()),
        }
    }
    out.extend(batcher.flush());
    for batch in &out {
        prop_assert!(batch.item_count() <= config.max_items);
        prop_assert!(
            batch.item_count() == 1 || batch.encoded_len() <= config.max_bytes,
            "{} bytes",
            batch.encoded_len()
        );
    }
    let out: Vec<ExportTraceServiceRequest> = out.into_iter().map(back).collect();
    let emitted: Vec<(String, usize)> = out.iter().flat_map(names).collect();
    // Exactly once each...
    let mut all: Vec<usize> = emitted.iter().map(|(_, n)| *n).collect();
    all.sort_unstable();
    prop_assert_eq!(all, (0..next).collect::<Vec<_>>());
    // ...and in order within each resource group (merging coalesces a batch's groups,
    // so spans of different resources may interleave differently).
    for group in ["", "odd"] {
        let sequence: Vec<usize> = emitted
            .iter()
            .filter(|(g, _)| g == group)
            .map(|(_, n)| *n)
            .collect();
        prop_assert!(
            sequence.windows(2).all(|w| w[0] < w[1]),
            "{group}: {sequence:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_span_once_in_order_within_caps(ops in proptest::collection::vec(op(), 1..40), max_items in 1usize..600, max_kib in 8usize..256) {
        let config = BatchConfig { max_items, max_bytes: max_kib * 1024, linger: Duration::from_secs(2) };
        check_batching(ops, config, |request| request, |batch| batch)?;
    }

    /// The same, for requests that arrived as protobuf bytes and are batched as bytes.
    #[test]
    fn every_span_once_in_order_within_caps_as_bytes(ops in proptest::collection::vec(op(), 1..40), max_items in 1usize..600, max_kib in 8usize..256) {
        let config = BatchConfig { max_items, max_bytes: max_kib * 1024, linger: Duration::from_secs(2) };
        check_batching(
            ops,
            config,
            |request| Payload::Encoded(Encoded::from_message(&request)),
            |batch| match batch {
                Payload::Encoded(bytes) => bytes.decode().expect("batches of bytes decode"),
                Payload::Message(_) => panic!("bytes batched as messages"),
            },
        )?;
    }
}

/// Requests that arrive as validated protobuf leave the batcher as protobuf: nothing is
/// decoded on the way, and the exporter gets bytes that decode to every span in order.
#[tokio::test(start_paused = true)]
async fn encoded_requests_are_batched_and_exported_as_bytes() {
    let metrics = Arc::new(PipelineMetrics::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let exporter = service_fn(move |batch: ExportRequest<Traces>| {
        let items = batch.item_count();
        record
            .lock()
            .expect("lock")
            .push((batch.is_encoded(), batch.into_message()));
        async move { Ok::<_, ExportError>(ExportOutcome::success(items)) }
    });
    let config = BatchLayerConfig {
        batch: BatchConfig {
            max_items: 300,
            linger: Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    };
    let batching = BatchLayer::new(config, metrics.clone()).layer(exporter);
    for first in (0..1000).step_by(100) {
        let bytes = numbered(first, 100).encode_to_vec();
        let request = ExportRequest::<Traces>::from_encoded(bytes.into(), 100);
        batching
            .clone()
            .oneshot(request)
            .await
            .expect("handed over");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert_eq!(seen.len(), 4, "300 + 300 + 300 + 100");
    let mut spans = Vec::new();
    for (encoded, message) in seen {
        assert!(encoded, "a batch of bytes is exported as bytes");
        spans.extend(
            names(&message.expect("valid protobuf"))
                .into_iter()
                .map(|(_, n)| n),
        );
    }
    assert_eq!(spans, (0..1000).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn the_linger_timer_sends_a_partial_batch() {
    let metrics = Arc::new(PipelineMetrics::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let exporter = service_fn(move |batch: ExportRequest<Traces>| {
        record
            .lock()
            .expect("lock")
            .push((tokio::time::Instant::now(), batch.item_count()));
        async move { Ok::<_, ExportError>(ExportOutcome::success(batch.item_count())) }
    });
    let config = BatchLayerConfig {
        batch: BatchConfig {
            max_items: 512,
            linger: Duration::from_secs(5),
            ..Default::default()
        },
        ..Default::default()
    };
    let batching = BatchLayer::new(config, metrics.clone()).layer(exporter);
    let started = tokio::time::Instant::now();
    batching
        .clone()
        .oneshot(ExportRequest::new(numbered(0, 100)))
        .await
        .expect("handed over");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        seen.lock().expect("lock").is_empty(),
        "not before the linger time"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1, 100);
    assert_eq!(seen[0].0 - started, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn batching_then_retry_delivers_everything_from_a_flaky_exporter() {
    let metrics = Arc::new(PipelineMetrics::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let exporter = service_fn(move |batch: ExportRequest<Traces>| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        async move {
            assert!(batch.item_count() <= 512);
            if n % 10 < 7 {
                Err(ExportError::from_grpc(GrpcCode::Unavailable, "flaky", None))
            } else {
                Ok(ExportOutcome::success(batch.item_count()))
            }
        }
    });
    let retry = RetryLayer::new(
        BackoffConfig {
            max_elapsed: Duration::from_secs(3600),
            ..Default::default()
        },
        metrics.clone(),
    );
    let batching =
        BatchLayer::new(BatchLayerConfig::default(), metrics.clone()).layer(retry.layer(exporter));
    let mut next = 0;
    for size in [1, 7, 300, 511, 512, 513, 2000, 64, 3] {
        batching
            .clone()
            .oneshot(ExportRequest::new(numbered(next, size)))
            .await
            .expect("handed over");
        next += size;
    }
    let undelivered = batching.shutdown(Duration::from_secs(3600)).await;
    assert_eq!(undelivered, 0);
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.received, next as u64);
    assert_eq!(snapshot.sent, next as u64);
    assert_eq!(snapshot.dropped_total(), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_counts_what_it_could_not_send() {
    let metrics = Arc::new(PipelineMetrics::new());
    let exporter = service_fn(|_: ExportRequest<Traces>| async {
        std::future::pending::<()>().await;
        Ok::<_, ExportError>(ExportOutcome::success(0))
    });
    let batching = BatchLayer::new(BatchLayerConfig::default(), metrics.clone()).layer(exporter);
    batching
        .clone()
        .oneshot(ExportRequest::new(numbered(0, 100)))
        .await
        .expect("handed over");
    let undelivered = batching.shutdown(Duration::from_secs(2)).await;
    assert_eq!(undelivered, 100);
    assert_eq!(metrics.snapshot().dropped(DropReason::Shutdown), 100);
    assert!(
        batching
            .clone()
            .oneshot(ExportRequest::new(numbered(100, 1)))
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_keeps_its_deadline_when_every_export_is_stuck() {
    let metrics = Arc::new(PipelineMetrics::new());
    let exporter = service_fn(|_: ExportRequest<Traces>| async {
        std::future::pending::<()>().await;
        Ok::<_, ExportError>(ExportOutcome::success(0))
    });
    // One export at a time, batches of 10: after the first batch the driver waits for a
    // permit that never comes.
    let config = BatchLayerConfig {
        batch: BatchConfig {
            max_items: 10,
            ..Default::default()
        },
        max_concurrent_exports: 1,
        channel_capacity: 4,
        ..Default::default()
    };
    let batching = BatchLayer::new(config, metrics.clone()).layer(exporter);
    batching
        .clone()
        .oneshot(ExportRequest::new(numbered(0, 50)))
        .await
        .expect("handed over");
    batching
        .clone()
        .oneshot(ExportRequest::new(numbered(50, 7)))
        .await
        .expect("handed over");
    let started = tokio::time::Instant::now();
    let undelivered = batching.shutdown(Duration::from_secs(2)).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "the deadline holds"
    );
    assert_eq!(
        undelivered, 57,
        "in flight, waiting for a permit, and still in the channel"
    );
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.dropped(DropReason::Shutdown), 57);
    assert_eq!(snapshot.received, 57);
    // Later requests are refused and counted.
    assert!(
        batching
            .clone()
            .oneshot(ExportRequest::new(numbered(57, 3)))
            .await
            .is_err()
    );
    assert_eq!(metrics.snapshot().dropped(DropReason::Shutdown), 60);
}

/// Log records numbered by `time_unix_nano` from `first`, with bodies of the given sizes,
/// under one resource and scope.
fn sized_logs(
    first: u64,
    sizes: &[usize],
) -> otlp_model::collector::logs::ExportLogsServiceRequest {
    use otlp_model::common::{AnyValue, any_value};
    use otlp_model::logs::{LogRecord, ResourceLogs, ScopeLogs};
    let log_records = sizes
        .iter()
        .zip(first..)
        .map(|(&size, n)| LogRecord {
            time_unix_nano: n,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("x".repeat(size))),
            }),
            ..Default::default()
        })
        .collect();
    otlp_model::collector::logs::ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Items from empty to several times the byte cap: the batcher never loops or loses
    /// one; an item larger than the cap leaves alone, every other batch keeps both caps.
    #[test]
    fn items_of_any_size_pass_once_in_order(
        requests in proptest::collection::vec(proptest::collection::vec(0usize..4096, 1..12), 1..12),
        max_items in 1usize..16,
        max_bytes in 64usize..1024,
    ) {
        let config = BatchConfig { max_items, max_bytes, linger: Duration::from_secs(1) };
        let mut batcher = Batcher::new(config);
        let mut out = Vec::new();
        let mut next = 0u64;
        for sizes in &requests {
            out.extend(batcher.push(sized_logs(next, sizes), Duration::ZERO));
            next += sizes.len() as u64;
        }
        out.extend(batcher.flush());
        let order: Vec<u64> = out
            .iter()
            .flat_map(|batch| batch.resource_logs.iter().flat_map(|r| &r.scope_logs).flat_map(|s| &s.log_records))
            .map(|record| record.time_unix_nano)
            .collect();
        prop_assert_eq!(order, (0..next).collect::<Vec<_>>());
        for batch in &out {
            prop_assert!(batch.item_count() <= max_items);
            prop_assert!(
                batch.item_count() == 1 || batch.encoded_len() <= max_bytes,
                "{} items in {} bytes", batch.item_count(), batch.encoded_len()
            );
        }
    }
}

/// A record bigger than the byte cap behind a pending batch: both leave, the big one alone
/// (this recursed until the stack overflowed).
#[test]
fn an_item_over_the_byte_cap_is_sent_alone() {
    let mut batcher = Batcher::new(BatchConfig {
        max_items: 512,
        max_bytes: 1024,
        linger: Duration::from_secs(5),
    });
    assert!(
        batcher
            .push(sized_logs(0, &[10]), Duration::ZERO)
            .is_empty()
    );
    let out = batcher.push(sized_logs(1, &[5 << 20]), Duration::ZERO);
    let counts: Vec<usize> = out.iter().map(SignalRequest::item_count).collect();
    assert_eq!(counts, [1, 1]);
    assert!(out[1].encoded_len() > 5 << 20);
    assert!(batcher.flush().is_none());
}

/// Two million empty spans in one request: cut into full batches in one pass (this took
/// minutes when every cut copied the rest of the request).
#[test]
fn two_million_tiny_items_are_cut_in_one_pass() {
    use otlp_model::trace::{ResourceSpans, ScopeSpans, Span};
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); 2_000_000],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut batcher = Batcher::new(BatchConfig::default());
    assert!(batcher.push(numbered(0, 100), Duration::ZERO).is_empty());
    let out = batcher.push(request, Duration::ZERO);
    assert!(out.iter().all(|batch| batch.item_count() == 512));
    let sent: usize = out.iter().map(SignalRequest::item_count).sum();
    assert_eq!(sent + batcher.pending_items(), 2_000_100);
}

/// One metric with a million points is cut into full batches of points in one pass.
#[test]
fn a_metric_with_a_million_points_is_cut_in_one_pass() {
    use otlp_model::metrics::metric::Data;
    let request = otlp_testkit::realistic::one_gauge("m", 1_000_000);
    let parts = request.split(1000);
    assert_eq!(parts.len(), 1000);
    let mut next = 0u64;
    for part in &parts {
        let metric = &part.resource_metrics[0].scope_metrics[0].metrics[0];
        assert_eq!(metric.name, "m");
        let Some(Data::Gauge(gauge)) = &metric.data else {
            panic!("a gauge");
        };
        for point in &gauge.data_points {
            assert_eq!(point.time_unix_nano, next);
            next += 1;
        }
    }
    assert_eq!(next, 1_000_000);
}

/// Counts live guards; a request's hold is one.
struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A request's holds (its memory reservation) outlive it inside the batcher: they are
/// released only after every batch carrying its items has been exported.
#[tokio::test(start_paused = true)]
async fn holds_live_until_the_batches_carrying_the_items_are_exported() {
    let metrics = Arc::new(PipelineMetrics::new());
    let live = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let exporter = service_fn(move |batch: ExportRequest<Traces>| {
        let mut released = released.clone();
        async move {
            let _ = released.wait_for(|go| *go).await;
            Ok::<_, ExportError>(ExportOutcome::success(batch.item_count()))
        }
    });
    let config = BatchLayerConfig {
        batch: BatchConfig {
            max_items: 100,
            linger: Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    };
    let batching = BatchLayer::new(config, metrics.clone()).layer(exporter);
    for first in [0, 250] {
        live.fetch_add(1, Ordering::SeqCst);
        let request = ExportRequest::new(numbered(first, 250)).hold(Guard(live.clone()));
        batching
            .clone()
            .oneshot(request)
            .await
            .expect("handed over");
    }
    // Past the linger: every batch is out, but the exports are held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(live.load(Ordering::SeqCst), 2, "released before export");
    release.send(true).expect("release");
    let undelivered = batching.shutdown(Duration::from_secs(60)).await;
    assert_eq!(undelivered, 0);
    assert_eq!(live.load(Ordering::SeqCst), 0, "kept after export");
    assert_eq!(metrics.snapshot().received, 500);
}

/// Bytes whose framing reads but whose metric does not decode (a name that is not UTF-8)
/// cannot be cut: they leave the batcher once, whole, for the peer to refuse. Before, the
/// byte splitter recursed on them until the stack overflowed.
#[test]
fn bytes_that_cannot_be_cut_leave_the_batcher_once() {
    use otlp_model::collector::metrics::ExportMetricsServiceRequest;
    let mut bytes = vec![0x0a, 0x0d, 0x12, 0x0b, 0x12, 0x09];
    bytes.extend([0x0a, 0x01, 0xff, 0x2a, 0x04, 0x0a, 0x00, 0x0a, 0x00]);
    let encoded = Encoded::<ExportMetricsServiceRequest>::new(bytes.into()).expect("framing reads");
    let config = BatchConfig {
        max_items: 1,
        max_bytes: 4,
        linger: Duration::from_secs(1),
    };
    let mut batcher = Batcher::new(config);
    let mut out = batcher.push(Payload::Encoded(encoded), Duration::ZERO);
    out.extend(batcher.flush());
    let items: Vec<usize> = out
        .iter()
        .map(|part| match part {
            Payload::Encoded(bytes) => bytes.item_count(),
            Payload::Message(_) => 0,
        })
        .collect();
    assert_eq!(items, [2]);
}
