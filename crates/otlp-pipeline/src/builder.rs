//! The one way to assemble a [`Pipeline`]: each stage's settings, then the exporter (one
//! for every signal, or one per signal).

use std::time::Duration;

use otlp_batch::{Batch, BatchLayerConfig};
use otlp_core::{
    AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Logs, Metrics, Signal, Traces,
};
use otlp_reliability::backoff::BackoffConfig;
use otlp_reliability::queue::{Queue, QueueConfig};
use otlp_reliability::retry::RetryLayer;
use otlp_reliability::timeout::TimeoutLayer;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Pipeline, PipelineCounters};

/// Settings of each stage of a [`Pipeline`]; every one has a default.
#[derive(Debug, Clone)]
pub struct PipelineBuilder {
    queue: QueueConfig,
    batch: BatchLayerConfig,
    retry: BackoffConfig,
    attempt_timeout: Option<Duration>,
}

impl Default for PipelineBuilder {
    /// The stages' own defaults, and the OTLP exporters' default timeout (10 s) per
    /// attempt.
    fn default() -> Self {
        Self {
            queue: QueueConfig::default(),
            batch: BatchLayerConfig::default(),
            retry: BackoffConfig::default(),
            attempt_timeout: Some(Duration::from_secs(10)),
        }
    }
}

impl PipelineBuilder {
    /// The queue in front of each signal: its bounds and overflow policy. The batcher takes
    /// from the queue itself, so `workers` is unused: exports run at the batch stage's
    /// concurrency.
    pub fn queue(mut self, queue: QueueConfig) -> Self {
        self.queue = queue;
        self
    }

    /// Batching: caps by items and bytes, linger, concurrent exports.
    pub fn batch(mut self, batch: BatchLayerConfig) -> Self {
        self.batch = batch;
        self
    }

    /// Retry of retryable failures: backoff, its jitter, the total time allowed and the
    /// longest throttling hint honoured.
    pub fn retry(mut self, retry: BackoffConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The longest one export attempt may take; past it the attempt fails as a retryable
    /// timeout.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// No deadline per attempt, for exporters whose attempts must not be cut short: a
    /// file writer cancelled halfway through a write would leave a partial line behind,
    /// and the retry would write it again.
    pub fn no_attempt_timeout(mut self) -> Self {
        self.attempt_timeout = None;
        self
    }

    /// The pipeline in front of one exporter for every signal. Starts the stages' tasks on
    /// the current tokio runtime.
    pub fn build<E>(self, exporter: E) -> Pipeline
    where
        E: Service<AnyExportRequest, Response = ExportOutcome, Error = ExportError>
            + Clone
            + Send
            + 'static,
        E::Future: Send + 'static,
    {
        self.build_per_signal(
            AsSignal(exporter.clone()),
            AsSignal(exporter.clone()),
            AsSignal(exporter),
        )
    }

    /// The pipeline with an exporter per signal (per-signal routing). Starts the stages'
    /// tasks on the current tokio runtime.
    pub fn build_per_signal<T, M, L>(self, traces: T, metrics: M, logs: L) -> Pipeline
    where
        T: SignalExporter<Traces>,
        T::Future: Send + 'static,
        M: SignalExporter<Metrics>,
        M::Future: Send + 'static,
        L: SignalExporter<Logs>,
        L::Future: Send + 'static,
    {
        let counters = PipelineCounters::default();
        let (traces_queue, traces_batch) = self.stages(traces, &counters);
        let (metrics_queue, metrics_batch) = self.stages(metrics, &counters);
        let (logs_queue, logs_batch) = self.stages(logs, &counters);
        Pipeline {
            queues: (traces_queue, metrics_queue, logs_queue),
            batches: (traces_batch, metrics_batch, logs_batch),
            counters,
        }
    }

    fn stages<S, E>(&self, exporter: E, counters: &PipelineCounters) -> (Queue<S>, Batch<S>)
    where
        S: Signal,
        E: SignalExporter<S>,
        E::Future: Send + 'static,
    {
        // Without a deadline, the timer is one that never fires (tokio takes a duration
        // past the end of time as "never").
        let deadline = self.attempt_timeout.unwrap_or(Duration::MAX);
        let timed = TimeoutLayer::new(deadline).layer(exporter);
        let retried = RetryLayer::new(self.retry, counters.exported.clone()).layer(timed);
        // The queue counts into its own counters: every layer counts what it receives,
        // and an item is received once. The batcher drains the queue itself, so a request
        // wakes no task while a batch lingers.
        let (queue, drain) = Queue::with_drain(self.queue, counters.queued.clone());
        let batch = Batch::draining(drain, retried, self.batch, counters.exported.clone());
        (queue, batch)
    }
}

/// An exporter of one signal's requests, as a pipeline's last stage.
pub trait SignalExporter<S: Signal>:
    Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError> + Clone + Send + 'static
{
}

impl<S, T> SignalExporter<S> for T
where
    S: Signal,
    T: Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError>
        + Clone
        + Send
        + 'static,
{
}

/// An exporter of any signal used for one: requests are wrapped as [`AnyExportRequest`].
#[derive(Debug, Clone)]
pub struct AsSignal<E>(pub E);

impl<S, E> Service<ExportRequest<S>> for AsSignal<E>
where
    S: Signal,
    AnyExportRequest: From<ExportRequest<S>>,
    E: Service<AnyExportRequest, Response = ExportOutcome, Error = ExportError>,
{
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = E::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ExportError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: ExportRequest<S>) -> Self::Future {
        self.0.call(AnyExportRequest::from(request))
    }
}
