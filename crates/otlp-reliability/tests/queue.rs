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

/// Whether the drain's consumer would be woken now.
async fn wanted_now(drain: &otlp_reliability::queue::Drain<Traces>) -> bool {
    tokio::time::timeout(Duration::ZERO, drain.wanted())
        .await
        .is_ok()
}

/// One step of a drained queue's life.
#[derive(Debug, Clone)]
enum Step {
    /// A producer queues a request of this many spans.
    Push(usize),
    /// The consumer asks to be woken at this many items.
    WakeAt(usize),
    /// The consumer takes everything.
    Take,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (1usize..20).prop_map(Step::Push),
        1 => (1usize..60).prop_map(Step::WakeAt),
        1 => Just(Step::Take),
    ]
}

proptest::proptest! {
    /// A drained queue wakes its consumer exactly when what is queued reaches the mark the
    /// consumer set (one item until it sets one; at most half the queue's bound), or once a
    /// request found no room, and hands over every request it took, once, in order.
    #[test]
    fn a_drain_is_woken_at_its_mark_and_takes_everything_in_order(
        steps in proptest::collection::vec(step(), 1..60),
        bound in 20usize..200,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let metrics = Arc::new(PipelineMetrics::new());
            // Refused rather than waited for, so that one task can play every part.
            let config = QueueConfig {
                max_items: bound,
                max_bytes: usize::MAX,
                policy: OverflowPolicy::DropNewest,
                ..config()
            };
            let (queue, drain) = Queue::<Traces>::with_drain(config, metrics);
            let (mut mark, mut queued, mut starved) = (1, 0, false);
            let (mut pushed, mut taken) = (Vec::new(), Vec::new());
            for (seed, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Push(spans) => {
                        let request = otlp_testkit::realistic::traces(spans, seed as u64);
                        let fits = queued == 0 || queued + spans <= bound;
                        let outcome = queue.clone().oneshot(ExportRequest::new(request.clone())).await;
                        proptest::prop_assert_eq!(outcome.is_ok(), fits);
                        if fits {
                            pushed.push(request);
                            queued += spans;
                        } else {
                            starved = true;
                        }
                    }
                    Step::WakeAt(items) => {
                        drain.wake_at(items, usize::MAX);
                        mark = items.clamp(1, bound / 2);
                    }
                    Step::Take => {
                        let took = drain.take();
                        proptest::prop_assert!(!took.closed);
                        taken.extend(took.requests);
                        (queued, starved) = (0, false);
                    }
                }
                proptest::prop_assert_eq!(
                    wanted_now(&drain).await,
                    queued > 0 && (starved || queued >= mark),
                    "{} items queued, mark {}, starved {}", queued, mark, starved
                );
            }
            queue.shutdown(Duration::ZERO).await;
            proptest::prop_assert!(wanted_now(&drain).await, "a shut queue wakes its drain");
            let rest = drain.take();
            proptest::prop_assert!(rest.closed);
            taken.extend(rest.requests);
            let taken: Vec<_> = taken
                .into_iter()
                .map(|request| request.into_message().expect("a message"))
                .collect();
            // What shutdown found still queued it counted as dropped; the rest was taken.
            proptest::prop_assert!(pushed.starts_with(&taken));
            Ok(())
        })?;
    }
}
