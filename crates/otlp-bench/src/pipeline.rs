//! Pipeline overhead: batching + retry + queue per span, with an exporter that does nothing,
//! so what is measured is the pipeline itself. Byte caps are measured separately: sizing a
//! decoded message (prost's `encoded_len`) walks all of it, and that walk, not the
//! pipeline's bookkeeping, is most of their cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use otlp_batch::{BatchConfig, BatchLayer, BatchLayerConfig};
use otlp_core::{ExportError, ExportOutcome, ExportRequest, Traces};
use otlp_reliability::backoff::BackoffConfig;
use otlp_reliability::metrics::PipelineMetrics;
use otlp_reliability::queue::{OverflowPolicy, Queue, QueueConfig};
use otlp_reliability::retry::RetryLayer;
use serde_json::json;
use tower::{Layer, ServiceExt, service_fn};

use crate::measure::Report;

/// Spans per request the producer hands over (an SDK's batch of a typical service).
const REQUEST_SPANS: usize = 100;

pub(crate) fn run(quick: bool) -> Result<Report, String> {
    let requests = if quick { 1_000 } else { 5_000 };
    let runtime = crate::measure::runtime()?;
    let mut rows = Vec::new();
    for (label, with_queue, byte_caps) in [
        ("batch(512 items) -> retry -> no-op", false, false),
        (
            "queue(items) -> batch(512 items) -> retry -> no-op",
            true,
            false,
        ),
        ("batch(512 items, 4 MiB) -> retry -> no-op", false, true),
        (
            "queue(items, 64 MiB) -> batch(512 items, 4 MiB) -> retry -> no-op",
            true,
            true,
        ),
    ] {
        eprint!(
            "pipeline: {label}: building {} spans...",
            requests * REQUEST_SPANS
        );
        // Distinct messages, owned by the pipeline, built before the clock starts (a shared
        // message would have to be copied by the batcher, and that copy is not the pipeline).
        let inputs: Vec<ExportRequest<Traces>> = (0..requests)
            .map(|i| ExportRequest::new(otlp_testkit::realistic::traces(REQUEST_SPANS, i as u64)))
            .collect();
        eprintln!(" measuring");
        // The exporter keeps what it receives, to be freed after the clock stops: freeing
        // telemetry is the consumer's cost, not the pipeline's.
        let delivered = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = delivered.clone();
        let (elapsed, sent) = runtime.block_on(async move {
            let metrics = Arc::new(PipelineMetrics::new());
            let exporter = service_fn(move |batch: ExportRequest<Traces>| {
                let items = batch.item_count();
                if let Ok(mut kept) = sink.lock() {
                    kept.push(batch);
                }
                async move { Ok::<_, ExportError>(ExportOutcome::success(items)) }
            });
            let retry = RetryLayer::new(BackoffConfig::default(), metrics.clone()).layer(exporter);
            let config = BatchLayerConfig {
                batch: BatchConfig {
                    max_items: 512,
                    max_bytes: if byte_caps { 4 << 20 } else { usize::MAX },
                    ..Default::default()
                },
                ..Default::default()
            };
            let batching = BatchLayer::new(config, metrics.clone()).layer(retry);
            let started = Instant::now();
            if with_queue {
                let queue = Queue::new(
                    batching.clone(),
                    QueueConfig {
                        policy: OverflowPolicy::Block,
                        workers: 1,
                        max_bytes: if byte_caps { 64 << 20 } else { usize::MAX },
                        ..Default::default()
                    },
                    metrics.clone(),
                );
                for request in inputs {
                    let _ = queue.clone().oneshot(request).await;
                }
                queue.shutdown(Duration::from_secs(60)).await;
            } else {
                for request in inputs {
                    let _ = batching.clone().oneshot(request).await;
                }
            }
            batching.shutdown(Duration::from_secs(60)).await;
            (started.elapsed(), metrics.snapshot().sent)
        });
        drop(delivered);
        let spans = (requests * REQUEST_SPANS) as u64;
        if sent != spans {
            return Err(format!("{label}: sent {sent} of {spans}"));
        }
        let ns_per_span = elapsed.as_nanos() as f64 / spans as f64;
        let spans_per_s = spans as f64 / elapsed.as_secs_f64();
        rows.push((label, spans, ns_per_span, spans_per_s));
    }
    let mut markdown = String::from(
        "## Pipeline overhead (no-op exporter, requests of 100 realistic spans)\n\n\
         | pipeline | spans | ns per span | spans/s |\n|---|---:|---:|---:|\n",
    );
    let mut json_rows = Vec::new();
    for (label, spans, ns, rate) in &rows {
        markdown.push_str(&format!("| {label} | {spans} | {ns:.0} | {rate:.0} |\n"));
        json_rows.push(
            json!({ "pipeline": label, "spans": spans, "ns_per_span": ns, "spans_per_s": rate }),
        );
    }
    Ok(Report {
        name: "pipeline",
        markdown,
        json: json!({ "quick": quick, "rows": json_rows }),
    })
}
