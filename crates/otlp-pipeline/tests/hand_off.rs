//! How requests get from the queue to the batcher, on virtual time: the batcher takes what
//! the queue holds when it needs it rather than being woken for every request, and that
//! must not change when anything is sent. A request that finds the pipeline idle gets the
//! whole linger; requests that arrive while a batch lingers leave with it; while requests
//! keep coming, none waits more than a linger; a batch's worth leaves at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_batch::{BatchConfig, BatchLayerConfig};
use otlp_core::{AnyExportRequest, ExportOutcome, ExportRequest, Traces};
use otlp_pipeline::Pipeline;
use otlp_testkit::realistic;
use tokio::time::Instant;
use tower::{ServiceExt, service_fn};

const LINGER: Duration = Duration::from_millis(100);

/// What the exporter saw: when each batch arrived (since `start`) and its items.
type Exports = Arc<Mutex<Vec<(Duration, usize)>>>;

fn pipeline(max_items: usize, linger: Duration, start: Instant) -> (Pipeline, Exports) {
    let exports = Exports::default();
    let seen = exports.clone();
    let exporter = service_fn(move |batch: AnyExportRequest| {
        let items = batch.item_count();
        if let Ok(mut seen) = seen.lock() {
            seen.push((start.elapsed(), items));
        }
        async move { Ok(ExportOutcome::success(items)) }
    });
    let pipeline = Pipeline::builder()
        .batch(BatchLayerConfig {
            batch: BatchConfig {
                max_items,
                linger,
                ..BatchConfig::default()
            },
            ..BatchLayerConfig::default()
        })
        .build(exporter);
    (pipeline, exports)
}

async fn send(pipeline: &Pipeline, items: usize, seed: u64) {
    let request = ExportRequest::<Traces>::new(realistic::traces(items, seed));
    pipeline
        .entry()
        .oneshot(request.into())
        .await
        .expect("queued");
}

fn exports(exports: &Exports) -> Vec<(Duration, usize)> {
    exports.lock().map(|e| e.clone()).unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn requests_that_arrive_while_a_batch_lingers_leave_with_it_at_the_linger() {
    let start = Instant::now();
    let (pipeline, exported) = pipeline(1000, LINGER, start);
    for seed in 0..3 {
        send(&pipeline, 10, seed).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(exports(&exported), vec![(LINGER, 30)]);
    assert_eq!(pipeline.shutdown(Duration::from_secs(1)).await, 0);
}

#[tokio::test(start_paused = true)]
async fn while_requests_keep_coming_none_waits_more_than_a_linger() {
    let start = Instant::now();
    let (pipeline, exported) = pipeline(1000, LINGER, start);
    let every = Duration::from_millis(30);
    let mut sent_at = Vec::new();
    for seed in 0..40 {
        sent_at.push(start.elapsed());
        send(&pipeline, 10, seed).await;
        tokio::time::sleep(every).await;
    }
    // Quiet long enough for the batcher to go idle; then one more request gets the whole
    // linger to itself.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let last = start.elapsed();
    sent_at.push(last);
    send(&pipeline, 10, 40).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let exports = exports(&exported);
    let total: usize = exports.iter().map(|(_, items)| items).sum();
    assert_eq!(total, 410, "{exports:?}");
    // Items keep their order, so the running totals say which export carried request k.
    let mut carried = 0;
    let mut export = exports.iter();
    let mut current = export.next().copied();
    for (k, sent) in sent_at.iter().enumerate() {
        while let Some((_, items)) = current {
            if carried + items > k * 10 {
                break;
            }
            carried += items;
            current = export.next().copied();
        }
        let (at, _) = current.expect("every request was exported");
        assert!(
            at >= *sent && at <= *sent + LINGER,
            "request {k} sent at {sent:?} left at {at:?}: {exports:?}"
        );
    }
    assert_eq!(
        exports.last().map(|(at, _)| *at),
        Some(last + LINGER),
        "after the batcher went idle, a request gets the whole linger: {exports:?}"
    );
    assert_eq!(pipeline.shutdown(Duration::from_secs(1)).await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_batch_s_worth_leaves_at_once_without_waiting_for_the_linger() {
    let start = Instant::now();
    let linger = Duration::from_secs(10);
    let (pipeline, exported) = pipeline(20, linger, start);
    for seed in 0..3 {
        send(&pipeline, 10, seed).await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(exports(&exported), vec![(Duration::ZERO, 20)]);
    tokio::time::sleep(linger).await;
    assert_eq!(exports(&exported), vec![(Duration::ZERO, 20), (linger, 10)]);
    assert_eq!(pipeline.shutdown(Duration::from_secs(1)).await, 0);
}

/// A pipeline whose queue holds `queue_items` at most, under `policy`, exporting through
/// `exporter` in batches of `batch_items` after `linger`.
fn small_queue<E>(
    queue_items: usize,
    policy: otlp_reliability::queue::OverflowPolicy,
    batch_items: usize,
    linger: Duration,
    exporter: E,
) -> Pipeline
where
    E: tower::Service<AnyExportRequest, Response = ExportOutcome, Error = otlp_core::ExportError>
        + Clone
        + Send
        + 'static,
    E::Future: Send + 'static,
{
    Pipeline::builder()
        .queue(otlp_reliability::queue::QueueConfig {
            max_items: queue_items,
            policy,
            ..otlp_reliability::queue::QueueConfig::default()
        })
        .batch(BatchLayerConfig {
            batch: BatchConfig {
                max_items: batch_items,
                linger,
                ..BatchConfig::default()
            },
            max_concurrent_exports: 1,
            ..BatchLayerConfig::default()
        })
        .no_attempt_timeout()
        .build(exporter)
}

fn accept_all() -> impl tower::Service<
    AnyExportRequest,
    Response = ExportOutcome,
    Error = otlp_core::ExportError,
    Future = impl Send + 'static,
> + Clone
+ Send
+ 'static {
    service_fn(
        |batch: AnyExportRequest| async move { Ok(ExportOutcome::success(batch.item_count())) },
    )
}

#[tokio::test(start_paused = true)]
async fn a_queue_smaller_than_a_batch_is_taken_before_it_fills_and_drops_nothing() {
    use otlp_reliability::queue::OverflowPolicy;
    let linger = Duration::from_secs(10);
    for policy in [
        OverflowPolicy::Block,
        OverflowPolicy::DropNewest,
        OverflowPolicy::DropOldest,
    ] {
        let start = Instant::now();
        let pipeline = small_queue(100, policy, 512, linger, accept_all());
        for seed in 0..30 {
            send(&pipeline, 10, seed).await;
            // A producer that yields, as one serving requests does.
            tokio::task::yield_now().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(1),
            "{policy:?}: a producer waited {:?} for a batch that lingers",
            start.elapsed()
        );
        assert_eq!(
            pipeline.shutdown(Duration::from_secs(1)).await,
            0,
            "{policy:?}"
        );
        let counts = pipeline.counters().snapshot();
        assert_eq!((counts.received, counts.sent), (300, 300), "{policy:?}");
        assert_eq!(counts.dropped.iter().sum::<u64>(), 0, "{policy:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_stop_against_a_stuck_exporter_counts_every_item_it_leaves() {
    let stuck = service_fn(|_: AnyExportRequest| async {
        std::future::pending::<Result<ExportOutcome, otlp_core::ExportError>>().await
    });
    let pipeline = small_queue(
        10_000,
        otlp_reliability::queue::OverflowPolicy::Block,
        10,
        Duration::from_millis(10),
        stuck,
    );
    // Queued without a pause, so the batcher takes them all at once and then waits for the
    // stuck export's permit with most of them in hand.
    for seed in 0..10 {
        send(&pipeline, 10, seed).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pipeline.shutdown(Duration::from_secs(1)).await, 100);
    let counts = pipeline.counters().snapshot();
    assert_eq!((counts.received, counts.sent), (100, 0));
    assert_eq!(counts.dropped.iter().sum::<u64>(), 100, "{counts:?}");
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_dropped_without_a_stop_still_delivers_what_its_entry_takes() {
    let start = Instant::now();
    let (pipeline, exported) = pipeline(1000, LINGER, start);
    let entry = pipeline.entry();
    drop(pipeline);
    let request = ExportRequest::<Traces>::new(realistic::traces(10, 1));
    entry.oneshot(request.into()).await.expect("queued");
    tokio::time::sleep(LINGER * 3).await;
    assert_eq!(exports(&exported), vec![(LINGER, 10)]);
}
