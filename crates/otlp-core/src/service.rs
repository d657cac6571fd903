//! The one shape of an export: a `tower::Service` from a request to its outcome.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::error::ExportError;
use crate::outcome::ExportOutcome;
use crate::request::{AnyExportRequest, ExportRequest};
use crate::signal::{Logs, Metrics, Signal, Traces};

/// A service that exports requests of signal `S`: the shape every exporter implements,
/// every receiver calls, and every layer (batching, retry, timeout, queue) wraps.
///
/// It is an alias: any `tower::Service<ExportRequest<S>, Response = ExportOutcome,
/// Error = ExportError>` is one, so tower's combinators and `service_fn` work as they are.
///
/// ```
/// use otlp_core::{ExportError, ExportOutcome, ExportRequest, ExportService, Traces};
/// use tower::{service_fn, ServiceExt};
///
/// // An exporter that accepts everything: the smallest ExportService.
/// let exporter = service_fn(|request: ExportRequest<Traces>| async move {
///     Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
/// });
///
/// fn takes_any_exporter(_: impl ExportService<Traces>) {}
/// takes_any_exporter(exporter.clone());
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let request = ExportRequest::<Traces>::new(otlp_testkit_free_request());
/// let outcome = exporter.oneshot(request).await?;
/// assert!(outcome.is_full_success());
/// # Ok::<(), ExportError>(())
/// # }).unwrap();
/// # fn otlp_testkit_free_request() -> otlp_model::collector::trace::ExportTraceServiceRequest {
/// #     Default::default()
/// # }
/// ```
pub trait ExportService<S: Signal>:
    Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError>
{
}

impl<S, T> ExportService<S> for T
where
    S: Signal,
    T: Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError>,
{
}

/// A service for requests of every signal: what a receiver serving all three on one
/// listener is driven by. Any `tower::Service<AnyExportRequest, Response = ExportOutcome,
/// Error = ExportError>` is one; [`PerSignal`] builds one from three per-signal services.
pub trait AnyExportService:
    Service<AnyExportRequest, Response = ExportOutcome, Error = ExportError>
{
}

impl<T> AnyExportService for T where
    T: Service<AnyExportRequest, Response = ExportOutcome, Error = ExportError>
{
}

/// Routes each request of an [`AnyExportRequest`] stream to the service of its signal.
///
/// The three services are cloned per request (as tower's `Steer`-style routers do), so each
/// call waits only for its own signal's service to be ready: a full trace pipeline does not
/// hold up logs.
///
/// ```
/// use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, PerSignal};
/// use otlp_core::{Logs, Metrics, Traces};
/// use tower::{service_fn, ServiceExt};
///
/// let accept = |n: usize| Ok::<_, ExportError>(ExportOutcome::success(n));
/// let router = PerSignal::new(
///     service_fn(move |r: ExportRequest<Traces>| async move { accept(r.item_count()) }),
///     service_fn(move |r: ExportRequest<Metrics>| async move { accept(r.item_count()) }),
///     service_fn(|_: ExportRequest<Logs>| async { Err(ExportError::unavailable("no logs")) }),
/// );
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let logs = AnyExportRequest::Logs(ExportRequest::new(Default::default()));
/// assert!(router.clone().oneshot(logs).await.is_err());
/// let traces = AnyExportRequest::Traces(ExportRequest::new(Default::default()));
/// assert!(router.oneshot(traces).await.is_ok());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct PerSignal<T, M, L> {
    traces: T,
    metrics: M,
    logs: L,
}

impl<T, M, L> PerSignal<T, M, L> {
    /// Routes traces to `traces`, metrics to `metrics` and logs to `logs`.
    pub fn new(traces: T, metrics: M, logs: L) -> Self {
        Self {
            traces,
            metrics,
            logs,
        }
    }
}

/// The future of [`PerSignal`].
pub type BoxExportFuture = Pin<Box<dyn Future<Output = Result<ExportOutcome, ExportError>> + Send>>;

async fn ready_then_call<S, Svc>(
    mut service: Svc,
    request: ExportRequest<S>,
) -> Result<ExportOutcome, ExportError>
where
    S: Signal,
    Svc: ExportService<S>,
{
    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(request).await
}

impl<T, M, L> Service<AnyExportRequest> for PerSignal<T, M, L>
where
    T: ExportService<Traces> + Clone + Send + 'static,
    T::Future: Send,
    M: ExportService<Metrics> + Clone + Send + 'static,
    M::Future: Send,
    L: ExportService<Logs> + Clone + Send + 'static,
    L::Future: Send,
{
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        // Readiness is per signal and checked in the call, on the clone that serves it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: AnyExportRequest) -> Self::Future {
        match request {
            AnyExportRequest::Traces(r) => Box::pin(ready_then_call(self.traces.clone(), r)),
            AnyExportRequest::Metrics(r) => Box::pin(ready_then_call(self.metrics.clone(), r)),
            AnyExportRequest::Logs(r) => Box::pin(ready_then_call(self.logs.clone(), r)),
        }
    }
}
