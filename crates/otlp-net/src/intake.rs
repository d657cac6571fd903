//! The last steps every receiver takes with a request, written once: the request's memory
//! reservation is attached to it, the service's readiness is honoured (so tower's load
//! shedding and concurrency limits act on receivers), the service is called, and the
//! outcome is counted in the one stats shape all receivers share.

use std::sync::atomic::{AtomicU64, Ordering};

use otlp_core::{AnyExportRequest, AnyExportService, ExportError, ExportOutcome};

use crate::budget::Intake;

/// The counters every receiver keeps, in the same shape (each receiver's stats dereference
/// to them and add what is their own, such as connections or stream de-duplication).
#[derive(Debug, Default)]
pub struct IntakeStats {
    /// Export requests (unary calls, HTTP requests, stream batches) handed to the service.
    pub requests: AtomicU64,
    /// Items in them.
    pub items: AtomicU64,
    /// Items the service accepted.
    pub accepted_items: AtomicU64,
    /// Requests refused before reaching the service (bad input, authentication, limits,
    /// the memory budget, timeouts).
    pub refused_requests: AtomicU64,
    /// Requests the service answered with an error.
    pub failed_requests: AtomicU64,
}

impl IntakeStats {
    /// Counts `error` as a refusal before the service, and returns it.
    pub fn refused(&self, error: ExportError) -> ExportError {
        self.refused_requests.fetch_add(1, Ordering::Relaxed);
        error
    }

    fn count(&self, items: usize, result: &Result<ExportOutcome, ExportError>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items as u64, Ordering::Relaxed);
        match result {
            Ok(outcome) => {
                self.accepted_items
                    .fetch_add(outcome.accepted() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.failed_requests.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Hands one read and validated request to `service` and counts the outcome in `stats`.
///
/// The request's reservation (`intake`) grows to its decoded size and rides with it until
/// its data has left the process; a request the budget cannot hold is refused retryably
/// before the service sees it (counted as refused). The service's `poll_ready` is awaited
/// first.
///
/// ```
/// use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Traces};
/// use otlp_net::budget::{Intake, MemoryBudget};
/// use otlp_net::intake::{IntakeStats, deliver};
/// use std::sync::atomic::Ordering;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let service = tower::service_fn(|request: AnyExportRequest| async move {
///     Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
/// });
/// let stats = IntakeStats::default();
/// let budget = MemoryBudget::new(64 << 20);
/// let request = ExportRequest::<Traces>::new(otlp_testkit::realistic::traces(5, 1));
/// let outcome = deliver(&service, &stats, request.into(), Intake::new(Some(&budget))).await;
/// assert_eq!(outcome.unwrap().accepted(), 5);
/// assert_eq!(stats.accepted_items.load(Ordering::Relaxed), 5);
/// assert_eq!(budget.in_use(), 0); // released once the service dropped the request
/// # });
/// ```
pub async fn deliver<Svc>(
    service: &Svc,
    stats: &IntakeStats,
    request: AnyExportRequest,
    intake: Intake,
) -> Result<ExportOutcome, ExportError>
where
    Svc: AnyExportService + Clone,
{
    let items = request.item_count();
    // A request the budget cannot hold never reaches the service: a refusal.
    let request = intake.admit(request).map_err(|e| stats.refused(e))?;
    let mut service = service.clone();
    let result = async {
        std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
        service.call(request).await
    }
    .await;
    stats.count(items, &result);
    result
}
