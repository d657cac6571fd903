//! The bounded queue under a producer ten times faster than the exporter, on virtual time.

use std::sync::Arc;
use std::time::Duration;

use otlp_core::{ExportError, ExportOutcome, ExportRequest, Traces};
use otlp_reliability::backoff::BackoffConfig;
use otlp_reliability::metrics::{DropReason, PipelineMetrics};
use otlp_reliability::queue::{OverflowPolicy, Queue, QueueConfig};
use otlp_reliability::retry::RetryLayer;
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

const BATCH: usize = 100;

struct Run {
    produced: u64,
    metrics: otlp_reliability::metrics::MetricsSnapshot,
    high_water: (usize, usize),
}

/// The exporter takes 10 ms per 100-span batch (10,000 spans/s); the producer offers a
/// batch every 1 ms (100,000 spans/s) for 10 s, then the queue is shut down and drained.
async fn run(policy: OverflowPolicy, config: QueueConfig) -> Run {
    let metrics = Arc::new(PipelineMetrics::new());
    let exporter = service_fn(|request: ExportRequest<Traces>| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
    });
    let retrying = RetryLayer::new(BackoffConfig::default(), metrics.clone()).layer(exporter);
    let queue = Queue::new(retrying, QueueConfig { policy, ..config }, metrics.clone());
    let request = ExportRequest::<Traces>::new(otlp_testkit::realistic::traces(BATCH, 1));

    let started = Instant::now();
    let mut produced = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while started.elapsed() < Duration::from_secs(10) {
        tick.tick().await;
        produced += BATCH as u64;
        // Refusals (drop-newest) are counted by the queue; the producer moves on.
        let _ = queue.clone().oneshot(request.clone()).await;
    }
    let report = queue.shutdown(Duration::from_secs(3600)).await;
    assert!(report.drained, "a generous deadline drains everything");
    assert_eq!(report.dropped_items, 0);
    Run {
        produced,
        metrics: metrics.snapshot(),
        high_water: queue.high_water(),
    }
}

fn config() -> QueueConfig {
    QueueConfig {
        max_items: 5_000,
        max_bytes: 1 << 20,
        policy: OverflowPolicy::Block,
        workers: 1,
    }
}

fn assert_bounded(run: &Run, config: QueueConfig) {
    let (items, bytes) = run.high_water;
    assert!(
        items <= config.max_items,
        "queued {items} items, bound {}",
        config.max_items
    );
    assert!(
        bytes <= config.max_bytes,
        "queued {bytes} bytes, bound {}",
        config.max_bytes
    );
    assert_eq!(run.metrics.queue_items, 0);
}

#[tokio::test(start_paused = true)]
async fn block_drops_nothing_and_stays_bounded() {
    let run = run(OverflowPolicy::Block, config()).await;
    assert_bounded(&run, config());
    assert_eq!(run.metrics.dropped_total(), 0);
    assert_eq!(run.metrics.received, run.produced);
    assert_eq!(run.metrics.sent, run.produced);
    println!("block: produced {} spans, {}", run.produced, run.metrics);
}

#[tokio::test(start_paused = true)]
async fn drop_newest_counts_exactly_the_shortfall() {
    let run = run(OverflowPolicy::DropNewest, config()).await;
    assert_bounded(&run, config());
    assert!(run.produced >= 1_000_000, "{}", run.produced);
    let dropped = run.metrics.dropped(DropReason::QueueFull);
    assert!(
        dropped > 800_000,
        "a 10x producer must lose most: {dropped}"
    );
    assert_eq!(run.metrics.sent + dropped, run.produced);
    assert_eq!(run.metrics.dropped_total(), dropped);
    println!("drop-newest: {}", run.metrics);
}

#[tokio::test(start_paused = true)]
async fn drop_oldest_counts_exactly_the_shortfall() {
    let run = run(OverflowPolicy::DropOldest, config()).await;
    assert_bounded(&run, config());
    assert!(run.produced >= 1_000_000, "{}", run.produced);
    let dropped = run.metrics.dropped(DropReason::QueueFull);
    assert!(dropped > 800_000, "{dropped}");
    assert_eq!(run.metrics.sent + dropped, run.produced);
    println!("drop-oldest: {}", run.metrics);
}

#[tokio::test(start_paused = true)]
async fn shutdown_counts_what_cannot_be_sent_by_the_deadline() {
    let metrics = Arc::new(PipelineMetrics::new());
    // An exporter that never answers within the deadline.
    let exporter = service_fn(|_: ExportRequest<Traces>| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, ExportError>(ExportOutcome::success(0))
    });
    let queue = Queue::new(exporter, config(), metrics.clone());
    let request = ExportRequest::<Traces>::new(otlp_testkit::realistic::traces(10, 1));
    for _ in 0..5 {
        queue
            .clone()
            .oneshot(request.clone())
            .await
            .expect("queued");
    }
    tokio::task::yield_now().await;
    let report = queue.shutdown(Duration::from_secs(5)).await;
    assert!(!report.drained);
    // One batch is in flight with the stuck exporter, the other four are still queued:
    // all 50 items are counted.
    assert_eq!(report.dropped_items, 50);
    assert_eq!(metrics.snapshot().dropped(DropReason::Shutdown), 50);
    // After shutdown, new requests are refused and counted.
    assert!(queue.clone().oneshot(request).await.is_err());
    assert_eq!(metrics.snapshot().dropped(DropReason::Shutdown), 60);
}

/// An exporter that can never become ready (its connection is gone for good).
#[derive(Clone)]
struct NeverReady;

impl tower::Service<ExportRequest<Traces>> for NeverReady {
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = std::future::Ready<Result<ExportOutcome, ExportError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ExportError>> {
        std::task::Poll::Ready(Err(ExportError::internal("closed")))
    }

    fn call(&mut self, _: ExportRequest<Traces>) -> Self::Future {
        std::future::ready(Err(ExportError::internal("closed")))
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_the_exporter_cannot_take_is_counted_not_lost() {
    let metrics = Arc::new(PipelineMetrics::new());
    let queue = Queue::new(NeverReady, config(), metrics.clone());
    let request = ExportRequest::<Traces>::new(otlp_testkit::realistic::traces(12, 1));
    queue.clone().oneshot(request).await.expect("queued");
    let report = queue.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained);
    assert_eq!(metrics.snapshot().dropped(DropReason::Permanent), 12);
    assert_eq!(metrics.snapshot().received, 12);
}
