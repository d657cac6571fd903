//! The exporters the relay can end in, and the pipeline (`otlp-pipeline`) in front of
//! them as the relay's settings shape it.

use std::task::{Context, Poll};
use std::time::Duration;

use otlp_batch::{BatchConfig, BatchLayerConfig};
use otlp_codec::CodecSignal;
use otlp_core::{
    AnyExportRequest, BoxExportFuture, ExportError, ExportOutcome, ExportRequest, Logs, Metrics,
    Traces,
};
use otlp_pipeline::Pipeline;
use otlp_reliability::queue::{OverflowPolicy, QueueConfig};
use tower_service::Service;

use crate::config::Overflow;

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
    /// An exporter of another transport, from a registered factory
    /// ([`factories::boxed`](crate::factories::boxed)).
    Other(tower::util::BoxCloneService<AnyExportRequest, ExportOutcome, ExportError>),
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
            Exporter::Other(exporter) => exporter.call(AnyExportRequest::from(request)),
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

/// The relay's pipeline: `otlp-pipeline`'s queue → batch → retry → attempt timeout per
/// signal, in front of each signal's exporter, set from the `[pipeline]` settings.
/// `attempt_timeout` is a backstop behind the exporters' own deadlines; `None` for the
/// file and null exporters, whose writes must not be cut short.
pub fn build(
    exporters: [Exporter; 3],
    settings: &crate::config::Pipeline,
    attempt_timeout: Option<Duration>,
) -> Pipeline {
    let [traces, metrics, logs] = exporters;
    let builder = Pipeline::builder()
        .queue(QueueConfig {
            max_items: settings.queue_items,
            policy: match settings.overflow {
                Overflow::Block => OverflowPolicy::Block,
                Overflow::DropNewest => OverflowPolicy::DropNewest,
                Overflow::DropOldest => OverflowPolicy::DropOldest,
            },
            ..QueueConfig::default()
        })
        .batch(BatchLayerConfig {
            batch: BatchConfig {
                max_items: settings.batch_items,
                max_bytes: usize::try_from(settings.batch_bytes).unwrap_or(usize::MAX),
                linger: settings.linger.0,
            },
            max_concurrent_exports: settings.concurrent_exports,
            decode: settings.decode_to_batch,
            ..BatchLayerConfig::default()
        });
    let builder = match attempt_timeout {
        Some(timeout) => builder.attempt_timeout(timeout),
        None => builder.no_attempt_timeout(),
    };
    builder.build_per_signal(traces, metrics, logs)
}
