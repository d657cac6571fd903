//! The one shape of an export: a `tower::Service` from a request to its outcome.

use tower_service::Service;

use crate::error::ExportError;
use crate::outcome::ExportOutcome;
use crate::request::ExportRequest;
use crate::signal::Signal;

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
