//! Between the receivers and the exporter, per signal: a bounded queue, batching, and retry
//! by the OTLP classes, all counting into one `PipelineMetrics`; and the exporters the relay
//! can end in.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use otlp_batch::{Batch, BatchConfig, BatchLayerConfig};
use otlp_codec::CodecSignal;
use otlp_core::{
    AnyExportRequest, BoxExportFuture, ExportError, ExportOutcome, ExportRequest, Logs, Metrics,
    PerSignal, Traces,
};
use otlp_reliability::backoff::BackoffConfig;
use otlp_reliability::metrics::PipelineMetrics;
use otlp_reliability::queue::{OverflowPolicy, Queue, QueueConfig};

use crate::config::Overflow;
use otlp_reliability::retry::RetryLayer;
use tower::Layer;
use tower_service::Service;

/// Where the relay sends what it receives.
#[derive(Clone)]
pub enum Exporter {
    /// OTLP/JSON lines to a file or standard output.
    File(crate::sink::JsonLines),
    /// OTLP over gRPC upstream, one unary call per batch.
    Grpc(otlp_grpc::GrpcExporter),
    /// OTLP over a bidirectional gRPC stream upstream.
    GrpcStream(otlp_grpc::StreamExporter),
    /// OTLP over HTTP upstream (boxed: the connection pool is large, and the exporter is
    /// cloned into every pipeline).
    Http(Box<otlp_http::HttpExporter>),
    /// OTLP over WebSocket upstream.
    WebSocket(otlp_websocket::WsExporter),
    /// Accept and discard (for measuring the receivers).
    Null,
}

impl<S: CodecSignal> Service<ExportRequest<S>> for Exporter
where
    AnyExportRequest: From<ExportRequest<S>>,
{
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ExportRequest<S>) -> Self::Future {
        match self {
            Exporter::File(sink) => sink.call(AnyExportRequest::from(request)),
            Exporter::Grpc(exporter) => exporter.call(request),
            Exporter::GrpcStream(exporter) => exporter.call(request),
            Exporter::Http(exporter) => exporter.call(request),
            Exporter::WebSocket(exporter) => exporter.call(request),
            Exporter::Null => {
                let items = request.item_count();
                Box::pin(async move { Ok(ExportOutcome::success(items)) })
            }
        }
    }
}

impl Service<AnyExportRequest> for Exporter {
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: AnyExportRequest) -> Self::Future {
        match request {
            AnyExportRequest::Traces(r) => Service::<ExportRequest<Traces>>::call(self, r),
            AnyExportRequest::Metrics(r) => Service::<ExportRequest<Metrics>>::call(self, r),
            AnyExportRequest::Logs(r) => Service::<ExportRequest<Logs>>::call(self, r),
        }
    }
}

/// The three per-signal pipelines in front of one exporter.
pub struct Pipelines {
    queues: (Queue<Traces>, Queue<Metrics>, Queue<Logs>),
    batches: (Batch<Traces>, Batch<Metrics>, Batch<Logs>),
    /// The queues' counts: items received, queued, dropped on overflow or shutdown.
    pub queued: Arc<PipelineMetrics>,
    /// Batching and retry's counts: items sent, retried, dropped after the queue.
    pub exported: Arc<PipelineMetrics>,
}

/// What the receivers are handed: each signal to its queue.
pub type Entry = PerSignal<Queue<Traces>, Queue<Metrics>, Queue<Logs>>;

fn chain<S>(
    exporter: Exporter,
    settings: &crate::config::Pipeline,
    queued: &Arc<PipelineMetrics>,
    metrics: &Arc<PipelineMetrics>,
) -> (Queue<S>, Batch<S>)
where
    S: CodecSignal,
    AnyExportRequest: From<ExportRequest<S>>,
{
    let retry = RetryLayer::new(BackoffConfig::default(), metrics.clone()).layer(exporter);
    let batch_config = BatchLayerConfig {
        batch: BatchConfig {
            max_items: settings.batch_items,
            linger: settings.linger.0,
            ..BatchConfig::default()
        },
        max_concurrent_exports: settings.concurrent_exports,
        ..BatchLayerConfig::default()
    };
    let batch = Batch::new(retry, batch_config, metrics.clone());
    let queue_config = QueueConfig {
        max_items: settings.queue_items,
        policy: match settings.overflow {
            Overflow::Block => OverflowPolicy::Block,
            Overflow::DropNewest => OverflowPolicy::DropNewest,
            Overflow::DropOldest => OverflowPolicy::DropOldest,
        },
        ..QueueConfig::default()
    };
    // The queue counts into its own metrics: every layer counts what it receives, and an
    // item must be received once.
    let queue = Queue::new(batch.clone(), queue_config, queued.clone());
    (queue, batch)
}

impl Pipelines {
    /// Queue -> batch -> retry -> the signal's exporter, per signal.
    pub fn new(exporters: [Exporter; 3], settings: &crate::config::Pipeline) -> Self {
        let queued = Arc::new(PipelineMetrics::new());
        let exported = Arc::new(PipelineMetrics::new());
        let [traces_exporter, metrics_exporter, logs_exporter] = exporters;
        let (traces, traces_batch) = chain::<Traces>(traces_exporter, settings, &queued, &exported);
        let (metrics_queue, metrics_batch) =
            chain::<Metrics>(metrics_exporter, settings, &queued, &exported);
        let (logs, logs_batch) = chain::<Logs>(logs_exporter, settings, &queued, &exported);
        Self {
            queues: (traces, metrics_queue, logs),
            batches: (traces_batch, metrics_batch, logs_batch),
            queued,
            exported,
        }
    }

    /// The service the receivers call.
    pub fn entry(&self) -> Entry {
        PerSignal::new(
            self.queues.0.clone(),
            self.queues.1.clone(),
            self.queues.2.clone(),
        )
    }

    /// Drains queues then batches, every signal at once, all within `deadline`; returns the
    /// items left behind (counted as dropped in the metrics).
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
