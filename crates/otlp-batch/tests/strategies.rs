//! Adaptive and priority batching, and the whole-pipeline accounting property: every item
//! is delivered exactly once or counted as dropped with a reason, whatever the exporter does.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_batch::{
    Adaptive, AdaptiveConfig, Batch, BatchConfig, BatchLayerConfig, BatchPolicy, Prioritized,
};
use otlp_core::{ExportError, ExportOutcome, ExportRequest, GrpcCode, Traces};
use otlp_model::SignalRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_reliability::backoff::BackoffConfig;
use otlp_reliability::metrics::PipelineMetrics;
use otlp_reliability::retry::RetryLayer;
use proptest::prelude::*;
use tower::{Layer, ServiceExt, service_fn};

fn numbered(first: usize, count: usize) -> ExportTraceServiceRequest {
    let mut request = otlp_testkit::realistic::traces(count, first as u64);
    for (i, span) in request.resource_spans[0].scope_spans[0]
        .spans
        .iter_mut()
        .enumerate()
    {
        span.name = format!("{}", first + i);
        // Every seventh span is an error span.
        if (first + i).is_multiple_of(7) {
            span.status = Some(otlp_model::trace::Status {
                code: 2,
                message: "failed".into(),
            });
        }
    }
    request
}

fn names(batch: &ExportTraceServiceRequest) -> Vec<usize> {
    batch
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.name.parse().expect("numbered"))
        .collect()
}

#[test]
fn adaptive_batches_grow_under_load_and_shrink_when_quiet_within_bounds() {
    let config = AdaptiveConfig::default();
    let mut adaptive: Adaptive<ExportTraceServiceRequest> = Adaptive::new(config);
    let mut now = Duration::ZERO;
    let mut next = 0;
    let mut out = Vec::new();
    // Heavy: 100 spans every millisecond (100,000/s), exports taking 20 ms.
    for _ in 0..2000 {
        out.extend(adaptive.push(numbered(next, 100), now));
        adaptive.record_export(512, Duration::from_millis(20));
        next += 100;
        now += Duration::from_millis(1);
    }
    let heavy = adaptive.current();
    assert_eq!(heavy.max_items, config.max_items, "{heavy:?}");
    // Quiet: 10 spans every 100 ms (100/s).
    for _ in 0..200 {
        out.extend(adaptive.push(numbered(next, 10), now));
        out.extend(adaptive.expire(now));
        next += 10;
        now += Duration::from_millis(100);
    }
    let quiet = adaptive.current();
    assert_eq!(quiet.max_items, config.min_items, "{quiet:?}");
    assert!(quiet.linger < heavy.linger || heavy.linger == config.min_linger);
    assert!(quiet.linger >= config.min_linger && quiet.linger <= config.max_linger);
    out.extend(adaptive.flush_all());
    let mut all: Vec<usize> = out.iter().flat_map(names).collect();
    all.sort_unstable();
    assert_eq!(all, (0..next).collect::<Vec<_>>());
    assert!(out.iter().all(|b| b.item_count() <= config.max_items));
}

fn error_spans_first(max_items: usize) -> Prioritized<ExportTraceServiceRequest> {
    Prioritized::new(
        2,
        BatchConfig {
            max_items,
            ..Default::default()
        },
        250,
        |span: &otlp_model::trace::Span| {
            if span.status.as_ref().is_some_and(|s| s.code == 2) {
                0
            } else {
                1
            }
        },
    )
}

#[test]
fn priority_sends_the_important_class_first_and_drops_the_least_important_first() {
    let mut prioritized = error_spans_first(100);
    let ready = prioritized.push(numbered(0, 70), Duration::ZERO);
    assert!(ready.is_empty());
    assert_eq!(prioritized.pending(), vec![10, 60]);
    let flushed = prioritized.flush_all();
    assert!(
        names(&flushed[0]).iter().all(|n| n % 7 == 0),
        "errors first"
    );
    assert!(names(&flushed[1]).iter().all(|n| n % 7 != 0));

    // Pressure: with large batches, 280 pending spans exceed the bound of 250; the low
    // class's pending batch is dropped (and counted), the error spans are kept.
    let mut prioritized = error_spans_first(1000);
    let ready = prioritized.push(numbered(1001, 280), Duration::ZERO);
    assert!(ready.is_empty());
    let dropped = prioritized.take_dropped();
    assert_eq!(prioritized.pending(), vec![40, 0]);
    assert_eq!(dropped, 240);
    assert_eq!(prioritized.take_dropped(), 0, "counted once");
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Accept,
    Unavailable,
    Throttled,
    Permanent,
    Partial,
    TooLarge,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        4 => Just(Answer::Accept),
        2 => Just(Answer::Unavailable),
        1 => Just(Answer::Throttled),
        1 => Just(Answer::Permanent),
        1 => Just(Answer::Partial),
        1 => Just(Answer::TooLarge),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_item_is_delivered_once_or_counted_as_dropped(
        sizes in proptest::collection::vec(1usize..700, 1..12),
        answers in proptest::collection::vec(answer(), 1..40),
        flush_every in 1usize..5,
        max_items in 1usize..600,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
        runtime.block_on(async move {
            let metrics = Arc::new(PipelineMetrics::new());
            let delivered = Arc::new(Mutex::new(Vec::<usize>::new()));
            let calls = Arc::new(Mutex::new(0usize));
            let (record, count) = (delivered.clone(), calls.clone());
            let answers = Arc::new(answers);
            let exporter = service_fn(move |batch: ExportRequest<Traces>| {
                let mut n = count.lock().expect("lock");
                let answer = answers[*n % answers.len()];
                *n += 1;
                let message = batch.message().expect("decoded").into_owned();
                let items = batch.item_count();
                let result = match answer {
                    Answer::Accept => {
                        record.lock().expect("lock").extend(names(&message));
                        Ok(ExportOutcome::success(items))
                    }
                    Answer::Partial => {
                        // The peer keeps all but the first item.
                        record.lock().expect("lock").extend(names(&message).into_iter().skip(1));
                        Ok(ExportOutcome::partial(items, 1, "first item rejected"))
                    }
                    Answer::Unavailable => Err(ExportError::from_grpc(GrpcCode::Unavailable, "down", None)),
                    Answer::Throttled => Err(ExportError::from_http(429, Some(Duration::from_secs(2)), "slow down")),
                    Answer::Permanent => Err(ExportError::from_http(400, None, "bad")),
                    Answer::TooLarge => Err(ExportError::from_http(413, None, "too large")),
                };
                async move { result }
            });
            let retry = RetryLayer::new(BackoffConfig { max_elapsed: Duration::from_secs(60), ..Default::default() }, metrics.clone());
            let batching = Batch::new(retry.layer(exporter), BatchLayerConfig { batch: BatchConfig { max_items, ..Default::default() }, ..Default::default() }, metrics.clone());
            let mut next = 0;
            for (i, size) in sizes.iter().enumerate() {
                batching.clone().oneshot(ExportRequest::new(numbered(next, *size))).await.expect("handed over");
                next += size;
                if i % flush_every == 0 {
                    batching.flush().await;
                }
            }
            let undelivered = batching.shutdown(Duration::from_secs(3600)).await;
            prop_assert_eq!(undelivered, 0);
            let snapshot = metrics.snapshot();
            let delivered = delivered.lock().expect("lock").clone();
            let unique: HashSet<usize> = delivered.iter().copied().collect();
            prop_assert_eq!(unique.len(), delivered.len(), "an item was delivered twice");
            prop_assert_eq!(snapshot.received, next as u64);
            prop_assert_eq!(snapshot.sent, delivered.len() as u64);
            prop_assert_eq!(snapshot.sent + snapshot.dropped_total(), snapshot.received, "{}", snapshot);
            Ok(())
        })?;
    }
}
