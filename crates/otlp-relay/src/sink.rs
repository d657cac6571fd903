//! The file exporter: one `Export*ServiceRequest` per line in OTLP/JSON, the format of the
//! OpenTelemetry Collector's file exporter, written to a file or standard output.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use otlp_codec::{CodecSignal, Json};
use otlp_core::{
    AnyExportRequest, BoxExportFuture, ExportError, ExportOutcome, ExportRequest, Logs, Metrics,
    Traces,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;
use tower_service::Service;

/// What the relay has received and written, for the live summary.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Spans received.
    pub(crate) spans: AtomicU64,
    /// Metric data points received.
    pub(crate) points: AtomicU64,
    /// Log records received.
    pub(crate) records: AtomicU64,
    /// Requests written.
    pub(crate) written: AtomicU64,
    /// Requests that could not be written (counted, and refused to the sender).
    pub(crate) failed: AtomicU64,
}

/// Writes requests as OTLP/JSON lines.
#[derive(Clone)]
pub(crate) struct JsonLines {
    out: Arc<Mutex<Box<dyn AsyncWrite + Send + Unpin>>>,
    counters: Arc<Counters>,
}

impl JsonLines {
    /// Lines written to `out`.
    pub(crate) fn new(out: Box<dyn AsyncWrite + Send + Unpin>, counters: Arc<Counters>) -> Self {
        Self {
            out: Arc::new(Mutex::new(out)),
            counters,
        }
    }

    async fn write<S: CodecSignal>(
        &self,
        request: ExportRequest<S>,
    ) -> Result<ExportOutcome, ExportError> {
        let items = request.item_count();
        let counter = match S::KIND {
            otlp_core::SignalKind::Traces => &self.counters.spans,
            otlp_core::SignalKind::Metrics => &self.counters.points,
            otlp_core::SignalKind::Logs => &self.counters.records,
        };
        counter.fetch_add(items as u64, Ordering::Relaxed);
        let result = async {
            let message = request.message()?;
            let mut line = Vec::new();
            S::encode_request(&Json::default(), &message, &mut line)
                .map_err(|e| ExportError::codec(e.to_string()))?;
            line.push(b'\n');
            let mut out = self.out.lock().await;
            out.write_all(&line)
                .await
                .map_err(|e| ExportError::unavailable(format!("writing the output: {e}")))?;
            out.flush()
                .await
                .map_err(|e| ExportError::unavailable(format!("flushing the output: {e}")))?;
            Ok(ExportOutcome::success(items))
        }
        .await;
        let counter = if result.is_ok() {
            &self.counters.written
        } else {
            &self.counters.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }
}

impl Service<AnyExportRequest> for JsonLines {
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: AnyExportRequest) -> Self::Future {
        let sink = self.clone();
        Box::pin(async move {
            match request {
                AnyExportRequest::Traces(r) => sink.write::<Traces>(r).await,
                AnyExportRequest::Metrics(r) => sink.write::<Metrics>(r).await,
                AnyExportRequest::Logs(r) => sink.write::<Logs>(r).await,
            }
        })
    }
}
