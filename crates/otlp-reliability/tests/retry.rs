//! The retry layer against mock exporters, on virtual time (`start_paused`): no sockets, no
//! real waiting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_core::{ExportError, ExportOutcome, ExportRequest, GrpcCode, Traces};
use otlp_reliability::backoff::{Backoff, BackoffConfig, Decision};
use otlp_reliability::metrics::{DropReason, PipelineMetrics};
use otlp_reliability::retry::{RetryBudget, RetryLayer};
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

fn spans(n: usize) -> ExportRequest<Traces> {
    ExportRequest::new(otlp_testkit::realistic::traces(n, n as u64))
}

/// An exporter that answers call number `i` with `answer(i, items)` and records when each
/// call happened.
fn scripted(
    answer: impl Fn(usize, usize) -> Result<ExportOutcome, ExportError> + Send + Sync + 'static,
) -> (
    impl tower::Service<
        ExportRequest<Traces>,
        Response = ExportOutcome,
        Error = ExportError,
        Future = impl Send,
    > + Clone
    + Send
    + 'static,
    Arc<Mutex<Vec<Instant>>>,
) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let recorded = calls.clone();
    let answer = Arc::new(answer);
    let service = service_fn(move |request: ExportRequest<Traces>| {
        let mut calls = recorded.lock().expect("lock");
        calls.push(Instant::now());
        let result = answer(calls.len() - 1, request.item_count());
        async move { result }
    });
    (service, calls)
}

#[tokio::test(start_paused = true)]
async fn the_schedule_follows_the_backoff_within_jitter() {
    let metrics = Arc::new(PipelineMetrics::new());
    let (exporter, calls) = scripted(|i, items| {
        if i < 5 {
            Err(ExportError::from_grpc(GrpcCode::Unavailable, "down", None))
        } else {
            Ok(ExportOutcome::success(items))
        }
    });
    let config = BackoffConfig::default();
    let outcome = RetryLayer::new(config, metrics.clone())
        .layer(exporter)
        .oneshot(spans(10))
        .await
        .expect("delivered");
    assert_eq!(outcome.accepted(), 10);
    let calls = calls.lock().expect("lock");
    assert_eq!(calls.len(), 6);
    for (n, pair) in calls.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let base = config
            .initial_interval
            .mul_f64(config.multiplier.powi(n as i32))
            .min(config.max_interval);
        assert!(
            gap >= base.mul_f64(1.0 - config.jitter) && gap <= base.mul_f64(1.0 + config.jitter),
            "retry {n}: waited {gap:?}, base {base:?}"
        );
    }
    let snapshot = metrics.snapshot();
    assert_eq!(
        (
            snapshot.sent,
            snapshot.retried,
            snapshot.failed_attempts,
            snapshot.dropped_total()
        ),
        (10, 50, 5, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_seven_seconds_waits_at_least_seven_seconds() {
    let metrics = Arc::new(PipelineMetrics::new());
    let (exporter, calls) = scripted(|i, items| {
        if i == 0 {
            Err(ExportError::from_http(
                503,
                Some(Duration::from_secs(7)),
                "busy",
            ))
        } else {
            Ok(ExportOutcome::success(items))
        }
    });
    RetryLayer::new(BackoffConfig::default(), metrics)
        .layer(exporter)
        .oneshot(spans(1))
        .await
        .expect("delivered");
    let calls = calls.lock().expect("lock");
    assert!(
        calls[1] - calls[0] >= Duration::from_secs(7),
        "{:?}",
        calls[1] - calls[0]
    );
    assert!(calls[1] - calls[0] < Duration::from_secs(8));
}

#[tokio::test(start_paused = true)]
async fn an_absurd_hint_is_capped_and_ends_in_a_counted_drop_at_max_elapsed() {
    let metrics = Arc::new(PipelineMetrics::new());
    let (exporter, calls) = scripted(|_, _| {
        Err(ExportError::from_http(
            429,
            Some(Duration::from_secs(365 * 24 * 3600)),
            "go away",
        ))
    });
    let config = BackoffConfig::default();
    let started = Instant::now();
    let error = RetryLayer::new(config, metrics.clone())
        .layer(exporter)
        .oneshot(spans(4))
        .await
        .expect_err("dropped");
    assert!(error.is_retryable());
    let elapsed = started.elapsed();
    let calls = calls.lock().expect("lock");
    // Capped at max_throttle (60 s): attempts at 0, 60, ..., 300 s; a seventh would start
    // past max elapsed (5 min).
    assert_eq!(calls.len(), 6, "{calls:?}");
    for pair in calls.windows(2) {
        assert_eq!(pair[1] - pair[0], config.max_throttle);
    }
    assert!(elapsed <= config.max_elapsed, "{elapsed:?}");
    assert_eq!(metrics.snapshot().dropped(DropReason::RetriesExhausted), 4);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_drops_exactly_the_items_without_retry() {
    let metrics = Arc::new(PipelineMetrics::new());
    let (exporter, calls) = scripted(|_, _| {
        Err(ExportError::from_grpc(
            GrpcCode::InvalidArgument,
            "bad",
            None,
        ))
    });
    RetryLayer::new(BackoffConfig::default(), metrics.clone())
        .layer(exporter)
        .oneshot(spans(17))
        .await
        .expect_err("permanent");
    assert_eq!(calls.lock().expect("lock").len(), 1);
    let snapshot = metrics.snapshot();
    assert_eq!(
        (
            snapshot.dropped(DropReason::Permanent),
            snapshot.retried,
            snapshot.sent
        ),
        (17, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn partial_success_is_counted_not_retried() {
    let metrics = Arc::new(PipelineMetrics::new());
    let (exporter, calls) =
        scripted(|_, items| Ok(ExportOutcome::partial(items, 3, "3 spans had bad ids")));
    let outcome = RetryLayer::new(BackoffConfig::default(), metrics.clone())
        .layer(exporter)
        .oneshot(spans(10))
        .await
        .expect("ok");
    assert_eq!((outcome.accepted(), outcome.rejected()), (7, 3));
    assert_eq!(calls.lock().expect("lock").len(), 1);
    assert_eq!(metrics.snapshot().dropped(DropReason::RejectedByPeer), 3);
    assert_eq!(metrics.snapshot().sent, 7);
}

#[tokio::test(start_paused = true)]
async fn a_batch_refused_as_too_large_is_split_and_sent() {
    let metrics = Arc::new(PipelineMetrics::new());
    let (exporter, _) = scripted(|_, items| {
        if items > 50 {
            Err(ExportError::from_http(413, None, "too large"))
        } else {
            Ok(ExportOutcome::success(items))
        }
    });
    let outcome = RetryLayer::new(BackoffConfig::default(), metrics.clone())
        .layer(exporter)
        .oneshot(spans(200))
        .await
        .expect("split");
    assert_eq!(outcome.accepted(), 200);
    let snapshot = metrics.snapshot();
    assert_eq!((snapshot.sent, snapshot.dropped_total()), (200, 0));
}

#[tokio::test(start_paused = true)]
async fn a_flaky_exporter_loses_nothing() {
    // 70% of calls fail with UNAVAILABLE (a fixed pseudo-random pattern); 100,000 spans in
    // 1,000 exports of 100, all concurrent.
    let metrics = Arc::new(PipelineMetrics::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let exporter = service_fn(move |request: ExportRequest<Traces>| {
        let n = counter.fetch_add(1, Ordering::Relaxed) as u64;
        let fails = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32 & 1023 < 717;
        async move {
            if fails {
                Err(ExportError::from_grpc(GrpcCode::Unavailable, "flaky", None))
            } else {
                Ok(ExportOutcome::success(request.item_count()))
            }
        }
    });
    // With 5 minutes of retries (about 15 attempts) a 70% failure rate would still lose
    // about 0.7^15 = 0.5% of exports; "none lost" needs a budget of time that makes
    // fifteen-odd more attempts possible: an hour (virtual) gives about 130.
    let config = BackoffConfig {
        max_elapsed: Duration::from_secs(3600),
        ..BackoffConfig::default()
    };
    let retrying = RetryLayer::new(config, metrics.clone()).layer(exporter);
    let request = spans(100);
    let tasks: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(retrying.clone().oneshot(request.clone())))
        .collect();
    for task in tasks {
        task.await.expect("join").expect("delivered");
    }
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.sent, 100_000);
    assert_eq!(snapshot.dropped_total(), 0);
    let total = calls.load(Ordering::Relaxed);
    assert!(total > 2500, "about 1000 / 0.3 calls expected, got {total}");
    println!("flaky exporter: 100000 spans delivered in {total} calls; {snapshot}");
}

#[tokio::test(start_paused = true)]
async fn a_retry_budget_bounds_retries_during_an_outage() {
    let metrics = Arc::new(PipelineMetrics::new());
    let (exporter, calls) = scripted(|_, _| Err(ExportError::unavailable("outage")));
    let budget = Arc::new(RetryBudget::new(0.2, 10));
    let retrying = RetryLayer::new(BackoffConfig::default(), metrics.clone())
        .with_budget(budget)
        .layer(exporter);
    for _ in 0..100 {
        let _ = retrying.clone().oneshot(spans(1)).await;
    }
    let total = calls.lock().expect("lock").len();
    // 100 first attempts, and at most 10 + 0.2 * 100 retries.
    assert!(total <= 100 + 10 + 20, "{total} calls");
    assert_eq!(
        metrics.snapshot().dropped(DropReason::RetriesExhausted),
        100
    );
}

proptest! {
    /// The sans-IO schedule: every delay lies within the jitter band of its base, bases
    /// grow by the multiplier up to the cap, and nothing is scheduled past max elapsed.
    #[test]
    fn backoff_delays_stay_in_bounds(randoms in proptest::collection::vec(0.0f64..1.0, 1..40), jitter in 0.0f64..1.0) {
        let config = BackoffConfig { jitter, ..BackoffConfig::default() };
        let mut backoff = Backoff::new(config);
        let mut elapsed = Duration::ZERO;
        let mut base = config.initial_interval;
        for random in randoms {
            match backoff.next(elapsed, otlp_core::RetryClass::Retryable, random) {
                Decision::RetryAfter(delay) => {
                    prop_assert!(delay >= base.mul_f64(1.0 - jitter).saturating_sub(Duration::from_nanos(1)));
                    prop_assert!(delay <= base.mul_f64(1.0 + jitter) + Duration::from_nanos(1));
                    prop_assert!(elapsed + delay <= config.max_elapsed);
                    elapsed += delay;
                    base = base.mul_f64(config.multiplier).min(config.max_interval);
                }
                Decision::GiveUpExhausted => {
                    // Only when even the largest delay of this step would overrun.
                    prop_assert!(elapsed + base.mul_f64(1.0 + jitter) + Duration::from_nanos(1) > config.max_elapsed);
                    break;
                }
                Decision::GiveUpPermanent => prop_assert!(false, "retryable is never permanent"),
            }
        }
    }

    #[test]
    fn permanent_is_never_retried(elapsed_ms in 0u64..1_000_000, random in 0.0f64..1.0) {
        let mut backoff = Backoff::new(BackoffConfig::default());
        prop_assert_eq!(backoff.next(Duration::from_millis(elapsed_ms), otlp_core::RetryClass::Permanent, random), Decision::GiveUpPermanent);
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_compression_is_retried_uncompressed_and_remembered() {
    let metrics = Arc::new(PipelineMetrics::new());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let record = calls.clone();
    let exporter = service_fn(move |request: ExportRequest<Traces>| {
        let compressed = request.compression_allowed();
        record.lock().expect("lock").push(compressed);
        async move {
            if compressed {
                Err(ExportError::from_http(
                    415,
                    None,
                    "unsupported Content-Encoding: zstd",
                ))
            } else {
                Ok(ExportOutcome::success(request.item_count()))
            }
        }
    });
    let retrying = RetryLayer::new(BackoffConfig::default(), metrics.clone()).layer(exporter);
    retrying
        .clone()
        .oneshot(spans(3))
        .await
        .expect("sent uncompressed");
    retrying
        .clone()
        .oneshot(spans(4))
        .await
        .expect("sent uncompressed");
    // First request: refused compressed, then sent plain; second: plain from the start.
    assert_eq!(*calls.lock().expect("lock"), vec![true, false, false]);
    assert_eq!(metrics.snapshot().sent, 7);
    assert_eq!(metrics.snapshot().dropped_total(), 0);
}
