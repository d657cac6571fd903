//! The assembled pipeline through its public API, with scripted exporters: retries and
//! attempt timeouts happen under batching, each signal reaches its own exporter, a stop
//! keeps its deadline against a stalled exporter, and the books always balance.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_batch::{BatchConfig, BatchLayerConfig};
use otlp_core::{
    AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Logs, Metrics, SignalKind, Traces,
};
use otlp_pipeline::Pipeline;
use otlp_reliability::backoff::BackoffConfig;
use otlp_reliability::metrics::DropReason;
use otlp_testkit::realistic;
use proptest::prelude::*;
use tower::{ServiceExt, service_fn};

fn quick_retries() -> BackoffConfig {
    BackoffConfig {
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(50),
        max_elapsed: Duration::from_secs(2),
        ..BackoffConfig::default()
    }
}

fn small_batches() -> BatchLayerConfig {
    BatchLayerConfig {
        batch: BatchConfig {
            max_items: 50,
            linger: Duration::from_millis(20),
            ..BatchConfig::default()
        },
        ..BatchLayerConfig::default()
    }
}

#[tokio::test]
async fn a_failed_attempt_is_retried_under_batching_and_counted_once() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let exporter = service_fn(move |batch: AnyExportRequest| {
        let attempt = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if attempt == 0 {
                Err(ExportError::unavailable("the first attempt fails"))
            } else {
                Ok(ExportOutcome::success(batch.item_count()))
            }
        }
    });
    let pipeline = Pipeline::builder()
        .retry(quick_retries())
        .batch(small_batches())
        .build(exporter);
    let request = ExportRequest::<Traces>::new(realistic::traces(30, 1));
    pipeline
        .entry()
        .oneshot(request.into())
        .await
        .expect("queued");
    assert_eq!(pipeline.shutdown(Duration::from_secs(5)).await, 0);
    let counts = pipeline.counters().snapshot();
    assert_eq!((counts.received, counts.sent, counts.retried), (30, 30, 30));
    assert_eq!(counts.failed_attempts, 1);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_past_the_timeout_fails_retryably_and_is_retried() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let exporter = service_fn(move |batch: AnyExportRequest| {
        let attempt = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if attempt == 0 {
                // Hangs far past the attempt timeout.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Ok::<_, ExportError>(ExportOutcome::success(batch.item_count()))
        }
    });
    let pipeline = Pipeline::builder()
        .retry(quick_retries())
        .batch(small_batches())
        .attempt_timeout(Duration::from_millis(500))
        .build(exporter);
    let request = ExportRequest::<Logs>::new(realistic::logs(10, 1));
    pipeline
        .entry()
        .oneshot(request.into())
        .await
        .expect("queued");
    assert_eq!(pipeline.shutdown(Duration::from_secs(10)).await, 0);
    let counts = pipeline.counters().snapshot();
    assert_eq!((counts.sent, counts.failed_attempts), (10, 1));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn each_signal_reaches_its_own_exporter() {
    let seen: Arc<Mutex<Vec<(&'static str, SignalKind)>>> = Arc::default();
    let exporter = |name: &'static str| {
        let seen = seen.clone();
        service_fn(move |batch: AnyExportRequest| {
            seen.lock().expect("lock").push((name, batch.signal()));
            let items = batch.item_count();
            async move { Ok::<_, ExportError>(ExportOutcome::success(items)) }
        })
    };
    let pipeline = Pipeline::builder().batch(small_batches()).build_per_signal(
        otlp_pipeline::AsSignal(exporter("traces")),
        otlp_pipeline::AsSignal(exporter("metrics")),
        otlp_pipeline::AsSignal(exporter("logs")),
    );
    let entry = pipeline.entry();
    for request in [
        AnyExportRequest::from(ExportRequest::<Traces>::new(realistic::traces(5, 1))),
        AnyExportRequest::from(ExportRequest::<Metrics>::new(realistic::metrics(5, 1))),
        AnyExportRequest::from(ExportRequest::<Logs>::new(realistic::logs(5, 1))),
    ] {
        entry.clone().oneshot(request).await.expect("queued");
    }
    assert_eq!(pipeline.shutdown(Duration::from_secs(5)).await, 0);
    let mut seen = seen.lock().expect("lock").clone();
    seen.sort_by_key(|(name, _)| *name);
    assert_eq!(
        seen,
        [
            ("logs", SignalKind::Logs),
            ("metrics", SignalKind::Metrics),
            ("traces", SignalKind::Traces)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_keeps_its_deadline_against_a_stalled_exporter_and_counts_what_it_left() {
    let exporter = service_fn(|_: AnyExportRequest| async {
        std::future::pending::<Result<ExportOutcome, ExportError>>().await
    });
    let pipeline = Pipeline::builder()
        .batch(small_batches())
        .attempt_timeout(Duration::from_secs(3600))
        .build(exporter);
    for seed in 0..4 {
        let request = ExportRequest::<Traces>::new(realistic::traces(25, seed));
        pipeline
            .entry()
            .oneshot(request.into())
            .await
            .expect("queued");
    }
    let started = tokio::time::Instant::now();
    let left = pipeline.shutdown(Duration::from_secs(2)).await;
    assert!(
        started.elapsed() <= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(left, 100);
    let counts = pipeline.counters().snapshot();
    assert_eq!(counts.sent, 0);
    assert_eq!(counts.dropped(DropReason::Shutdown), 100);
    assert_eq!(counts.received, counts.sent + counts.dropped_total());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the requests and whichever attempts fail (retryably or permanently), after
    /// a stop every item received was sent or dropped for a counted reason, exactly once.
    #[test]
    fn the_books_balance(
        sizes in proptest::collection::vec(0usize..120, 1..12),
        failures in proptest::collection::vec(0u8..4, 1..16),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let script = Arc::new(Mutex::new(failures.into_iter()));
            let exporter = service_fn(move |batch: AnyExportRequest| {
                let next = script.lock().expect("lock").next();
                let items = batch.item_count();
                async move {
                    match next {
                        Some(1) => Err(ExportError::unavailable("retry me")),
                        Some(2) => Err(ExportError::invalid_argument("never")),
                        Some(3) => Ok(ExportOutcome::partial(items, items / 2, "half")),
                        _ => Ok(ExportOutcome::success(items)),
                    }
                }
            });
            let pipeline = Pipeline::builder()
                .retry(quick_retries())
                .batch(small_batches())
                .build(exporter);
            let mut total = 0;
            for (seed, size) in sizes.iter().enumerate() {
                total += size;
                let request = ExportRequest::<Traces>::new(realistic::traces(*size, seed as u64));
                pipeline.entry().oneshot(request.into()).await.expect("queued");
            }
            let left = pipeline.shutdown(Duration::from_secs(30)).await;
            let counts = pipeline.counters().snapshot();
            prop_assert_eq!(left, 0);
            prop_assert_eq!(counts.received, total as u64);
            prop_assert_eq!(counts.received, counts.sent + counts.dropped_total());
            Ok(())
        })?;
    }
}
