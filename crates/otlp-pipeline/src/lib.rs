//! The export pipeline, assembled once.
//!
//! Per signal: a bounded [`Queue`] (the receivers' answer: accepted, or refused when full
//! under the chosen overflow policy) → [`Batch`] (items and bytes capped, linger timer) →
//! [`Retry`](otlp_reliability::retry::Retry) by the OTLP retry classes (honouring throttling
//! hints) → [`Timeout`](otlp_reliability::timeout::Timeout) per attempt → the exporter.
//!
//! The order is the one that counts right, and the builder is the only way to get it:
//! retry sits under batching (a batch is retried whole, and a split part alone), the queue
//! counts what the pipeline received and the layers under it count what they sent, retried
//! and dropped, in two sets of counters that [`PipelineCounters::snapshot`] merges so that
//! `received = sent + dropped + in flight` always reads off one snapshot. One
//! [`Pipeline::shutdown`] drains all three signals at once within one deadline.
//!
//! The crate README has an example.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod builder;

use std::sync::Arc;
use std::time::Duration;

pub use builder::{AsSignal, PipelineBuilder, SignalExporter};
use otlp_batch::Batch;
use otlp_core::{Logs, Metrics, PerSignal, Traces};
use otlp_reliability::metrics::{MetricsSnapshot, PipelineMetrics};
use otlp_reliability::queue::Queue;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;

/// What receivers call: each signal to its queue (a cheap clone per caller).
pub type Entry = PerSignal<Queue<Traces>, Queue<Metrics>, Queue<Logs>>;

/// Three per-signal pipelines, each queue → batch → retry → timeout → exporter, built by
/// [`Pipeline::builder`].
pub struct Pipeline {
    queues: (Queue<Traces>, Queue<Metrics>, Queue<Logs>),
    batches: (Batch<Traces>, Batch<Metrics>, Batch<Logs>),
    counters: PipelineCounters,
}

/// The counters of one [`Pipeline`], for every signal together.
#[derive(Debug, Clone, Default)]
pub struct PipelineCounters {
    /// The queues' counts: items received, queued, dropped on overflow or at shutdown
    /// while queued.
    pub queued: Arc<PipelineMetrics>,
    /// The counts under the queues (batching, retry, export): items sent, retried, and
    /// dropped after they left the queue.
    pub exported: Arc<PipelineMetrics>,
}

impl PipelineCounters {
    /// The pipeline's counts in one snapshot: received and queued from the queues; sent,
    /// retried and failed attempts from the layers under them; drops from both.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let queued = self.queued.snapshot();
        let exported = self.exported.snapshot();
        MetricsSnapshot {
            received: queued.received,
            sent: exported.sent,
            failed_attempts: exported.failed_attempts,
            retried: exported.retried,
            dropped: std::array::from_fn(|i| queued.dropped[i] + exported.dropped[i]),
            queue_items: queued.queue_items,
            queue_bytes: queued.queue_bytes,
        }
    }
}

impl Pipeline {
    /// A builder with the defaults of each stage (see [`PipelineBuilder`]).
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The service receivers hand requests to (`Service<AnyExportRequest>`).
    pub fn entry(&self) -> Entry {
        PerSignal::new(
            self.queues.0.clone(),
            self.queues.1.clone(),
            self.queues.2.clone(),
        )
    }

    /// The pipeline's counters.
    pub fn counters(&self) -> &PipelineCounters {
        &self.counters
    }

    /// Stops taking requests and drains the queues, then the batchers, every signal at
    /// once, all within `deadline`. Returns the items left behind (counted as dropped,
    /// reason `Shutdown`); nothing is exported after it returns.
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        let until = tokio::time::Instant::now() + deadline;
        let remaining = || until.saturating_duration_since(tokio::time::Instant::now());
        let (traces, metrics, logs) = tokio::join!(
            self.queues.0.shutdown(remaining()),
            self.queues.1.shutdown(remaining()),
            self.queues.2.shutdown(remaining()),
        );
        let queued = traces.dropped_items + metrics.dropped_items + logs.dropped_items;
        let (traces, metrics, logs) = tokio::join!(
            self.batches.0.shutdown(remaining()),
            self.batches.1.shutdown(remaining()),
            self.batches.2.shutdown(remaining()),
        );
        queued + traces + metrics + logs
    }
}
