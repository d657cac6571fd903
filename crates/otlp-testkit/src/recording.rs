//! A service for transport tests: it records every request it is handed (decoded, by
//! signal) and answers as the test says, so that a test can assert exactly what arrived.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use otlp_core::{AnyExportRequest, BoxExportFuture, ExportError, ExportOutcome};
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use tower_service::Service;

/// Everything a [`Recorder`] accepted, by signal, decoded.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Trace requests, in arrival order.
    pub traces: Vec<ExportTraceServiceRequest>,
    /// Metrics requests, in arrival order.
    pub metrics: Vec<ExportMetricsServiceRequest>,
    /// Logs requests, in arrival order.
    pub logs: Vec<ExportLogsServiceRequest>,
    /// The headers that came with each trace request.
    pub headers: Vec<http::HeaderMap>,
}

impl Received {
    /// Spans in all the trace requests.
    pub fn spans(&self) -> usize {
        self.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }
}

/// What a [`Recorder`] has accepted, shared with the test.
pub type Record = Arc<Mutex<Received>>;

/// The recording service; see [`recording`].
#[derive(Clone)]
pub struct Recorder<F> {
    record: Record,
    answer: F,
}

impl<F> std::fmt::Debug for Recorder<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

/// A service answering each request with `answer(item count)` and recording the requests
/// it answers with success.
///
/// ```
/// use otlp_core::{AnyExportRequest, ExportRequest, Traces};
/// use otlp_testkit::recording::{accept_all, recording};
/// use tower_service::Service;
///
/// let (record, mut service) = recording(accept_all);
/// let request = ExportRequest::<Traces>::new(otlp_testkit::realistic::traces(3, 1));
/// let _ = service.call(AnyExportRequest::from(request));
/// assert_eq!(record.lock().unwrap().spans(), 3);
/// ```
pub fn recording<F>(answer: F) -> (Record, Recorder<F>)
where
    F: Fn(usize) -> Result<ExportOutcome, ExportError> + Clone + Send + Sync + 'static,
{
    let record = Record::default();
    (record.clone(), Recorder { record, answer })
}

/// Accepts every item.
pub fn accept_all(items: usize) -> Result<ExportOutcome, ExportError> {
    Ok(ExportOutcome::success(items))
}

impl<F> Recorder<F>
where
    F: Fn(usize) -> Result<ExportOutcome, ExportError>,
{
    fn handle(&self, request: AnyExportRequest) -> Result<ExportOutcome, ExportError> {
        let result = (self.answer)(request.item_count());
        if result.is_ok() {
            let mut record = self
                .record
                .lock()
                .map_err(|_| ExportError::internal("the record's lock is poisoned"))?;
            match request {
                AnyExportRequest::Traces(r) => {
                    record.headers.push(r.headers().clone());
                    record.traces.push(r.into_message()?);
                }
                AnyExportRequest::Metrics(r) => record.metrics.push(r.into_message()?),
                AnyExportRequest::Logs(r) => record.logs.push(r.into_message()?),
            }
        }
        result
    }
}

impl<F> Service<AnyExportRequest> for Recorder<F>
where
    F: Fn(usize) -> Result<ExportOutcome, ExportError> + Clone + Send + Sync + 'static,
{
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: AnyExportRequest) -> Self::Future {
        let result = self.handle(request);
        Box::pin(std::future::ready(result))
    }
}

/// A service that holds every request it is handed until the test opens the gate (a
/// downstream that is slow to answer), then accepts them all.
///
/// ```
/// use otlp_testkit::recording::Gate;
/// let gate = Gate::default();
/// assert_eq!(gate.entered(), 0);
/// gate.open();
/// ```
#[derive(Debug, Clone, Default)]
pub struct Gate {
    state: Arc<Mutex<GateState>>,
}

#[derive(Debug, Default)]
struct GateState {
    open: bool,
    entered: usize,
    waiting: Vec<std::task::Waker>,
}

impl Gate {
    /// Lets every held and future request through.
    pub fn open(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.open = true;
            for waker in state.waiting.drain(..) {
                waker.wake();
            }
        }
    }

    /// Requests handed to the service so far.
    pub fn entered(&self) -> usize {
        self.state.lock().map(|s| s.entered).unwrap_or(0)
    }
}

impl Service<AnyExportRequest> for Gate {
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: AnyExportRequest) -> Self::Future {
        let items = request.item_count();
        if let Ok(mut state) = self.state.lock() {
            state.entered += 1;
        }
        let state = self.state.clone();
        // The request is held until the gate opens, as a downstream still working on it
        // would (and with it whatever it holds, such as a memory reservation).
        let held = request;
        Box::pin(std::future::poll_fn(move |cx| {
            let _ = &held;
            let Ok(mut state) = state.lock() else {
                return Poll::Ready(Err(ExportError::internal("gate poisoned")));
            };
            if state.open {
                Poll::Ready(Ok(ExportOutcome::success(items)))
            } else {
                state.waiting.push(cx.waker().clone());
                Poll::Pending
            }
        }))
    }
}
