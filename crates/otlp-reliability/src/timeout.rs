//! A deadline on each export attempt. (The total deadline across retries is the retry
//! layer's `max_elapsed`.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use otlp_core::{ExportError, ExportOutcome, ExportRequest, Signal};
use tower_service::Service;

/// Wraps an export service with [`Timeout`].
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    /// Fails an attempt that takes longer than `timeout` with a retryable
    /// [`ErrorKind::Timeout`](otlp_core::ErrorKind::Timeout).
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<Svc> tower_layer::Layer<Svc> for TimeoutLayer {
    type Service = Timeout<Svc>;

    fn layer(&self, inner: Svc) -> Timeout<Svc> {
        Timeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// An export service whose calls fail with a timeout error after a deadline.
#[derive(Debug, Clone)]
pub struct Timeout<Svc> {
    inner: Svc,
    timeout: Duration,
}

impl<S, Svc> Service<ExportRequest<S>> for Timeout<Svc>
where
    S: Signal,
    Svc: Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError>,
    Svc::Future: Send + 'static,
{
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = Pin<Box<dyn Future<Output = Result<ExportOutcome, ExportError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ExportRequest<S>) -> Self::Future {
        let timeout = self.timeout;
        let attempt = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(timeout, attempt).await {
                Ok(result) => result,
                Err(_) => Err(ExportError::timeout(format!(
                    "export attempt timed out after {timeout:?}"
                ))),
            }
        })
    }
}
