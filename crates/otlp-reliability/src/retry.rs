//! Retry: resends an export after a retryable failure, on the backoff schedule, honouring
//! throttling hints, never retrying what the OTLP specification says not to retry; splits
//! a batch the peer refused as too large and sends the halves instead of dropping it; and
//! when the peer refuses our compression (`UnsupportedMediaType`: HTTP 415, or gRPC
//! UNIMPLEMENTED for the encoding), resends uncompressed and sends every later request
//! uncompressed too (exporters honour `ExportRequest::compression_allowed`).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};

use otlp_core::{ErrorKind, ExportError, ExportOutcome, ExportRequest, Signal};
use tokio::time::Instant;
use tower_service::Service;

use crate::backoff::{Backoff, BackoffConfig, Decision, Jitter};
use crate::metrics::{DropReason, PipelineMetrics};

/// A limit on retries relative to first attempts, so that an outage cannot multiply the
/// load on a peer: each new export deposits `ratio` of a retry, each retry withdraws one,
/// and `floor` retries are always available.
#[derive(Debug)]
pub struct RetryBudget {
    /// In thousandths of a retry.
    balance: AtomicI64,
    deposit: i64,
    cap: i64,
}

impl RetryBudget {
    /// Allows retries up to `ratio` of exports (e.g. 0.2) beyond a reserve of `floor`.
    pub fn new(ratio: f64, floor: u32) -> Self {
        let floor = i64::from(floor) * 1000;
        Self {
            balance: AtomicI64::new(floor),
            deposit: (ratio.max(0.0) * 1000.0) as i64,
            cap: floor.max(1000) * 10,
        }
    }

    fn deposit(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((b + self.deposit).min(self.cap))
            });
    }

    fn withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b >= 1000).then_some(b - 1000)
            })
            .is_ok()
    }
}

/// Wraps an export service with [`Retry`].
#[derive(Debug, Clone)]
pub struct RetryLayer {
    config: BackoffConfig,
    metrics: Arc<PipelineMetrics>,
    budget: Option<Arc<RetryBudget>>,
    /// Set once the peer has refused our compression: later requests go uncompressed.
    compression_refused: Arc<AtomicBool>,
}

impl RetryLayer {
    /// Retries on `config`'s schedule, counting into `metrics`.
    pub fn new(config: BackoffConfig, metrics: Arc<PipelineMetrics>) -> Self {
        Self {
            config,
            metrics,
            budget: None,
            compression_refused: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Limits retries with a shared budget.
    pub fn with_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }
}

impl<Svc> tower_layer::Layer<Svc> for RetryLayer {
    type Service = Retry<Svc>;

    fn layer(&self, inner: Svc) -> Retry<Svc> {
        Retry {
            inner,
            layer: self.clone(),
        }
    }
}

/// The retrying service: see the module documentation. The inner service must be `Clone`
/// (each export's retries run on a clone), as tower's own retry requires.
#[derive(Debug, Clone)]
pub struct Retry<Svc> {
    inner: Svc,
    layer: RetryLayer,
}

static SEEDS: AtomicU64 = AtomicU64::new(0x5EED);

impl<S, Svc> Service<ExportRequest<S>> for Retry<Svc>
where
    S: Signal,
    Svc: Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError>
        + Clone
        + Send
        + 'static,
    Svc::Future: Send,
{
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = Pin<Box<dyn Future<Output = Result<ExportOutcome, ExportError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: ExportRequest<S>) -> Self::Future {
        if self.layer.compression_refused.load(Ordering::Relaxed) {
            request = request.without_compression();
        }
        // The ready service handles this export; `self` keeps a fresh clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        if let Some(budget) = &self.layer.budget {
            budget.deposit();
        }
        Box::pin(export_with_retries(
            inner,
            request,
            self.layer.clone(),
            true,
        ))
    }
}

fn export_with_retries<S, Svc>(
    mut inner: Svc,
    request: ExportRequest<S>,
    layer: RetryLayer,
    first_ready: bool,
) -> Pin<Box<dyn Future<Output = Result<ExportOutcome, ExportError>> + Send>>
where
    S: Signal,
    Svc: Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError>
        + Clone
        + Send
        + 'static,
    Svc::Future: Send,
{
    Box::pin(async move {
        let mut request = request;
        let started = Instant::now();
        let mut backoff = Backoff::new(layer.config);
        let mut jitter = Jitter::new(SEEDS.fetch_add(0x9E37_79B9, Ordering::Relaxed));
        let items = request.item_count();
        let metrics = &layer.metrics;
        let mut ready = first_ready;
        loop {
            if !ready {
                poll_fn(|cx| inner.poll_ready(cx)).await?;
            }
            ready = false;
            let error = match inner.call(request.clone()).await {
                Ok(outcome) => {
                    metrics.add_sent(outcome.accepted());
                    if outcome.rejected() > 0 {
                        // Partial success is final: counted, never retried.
                        metrics.add_dropped(DropReason::RejectedByPeer, outcome.rejected());
                    }
                    return Ok(outcome);
                }
                Err(error) => error,
            };
            metrics.add_failed_attempt();
            if error.kind() == ErrorKind::UnsupportedMediaType && request.compression_allowed() {
                // The peer refuses our encoding: resend uncompressed at once, and remember.
                layer.compression_refused.store(true, Ordering::Relaxed);
                request = request.without_compression();
                metrics.add_retried(items);
                ready = false;
                continue;
            }
            if error.kind() == ErrorKind::TooLarge && items > 1 {
                return split_and_resend(inner, request, layer.clone()).await;
            }
            match backoff.next(started.elapsed(), error.retry_class(), jitter.next()) {
                Decision::RetryAfter(delay) => {
                    if let Some(budget) = &layer.budget
                        && !budget.withdraw()
                    {
                        metrics.add_dropped(DropReason::RetriesExhausted, items);
                        return Err(error);
                    }
                    metrics.add_retried(items);
                    tokio::time::sleep(delay).await;
                }
                Decision::GiveUpPermanent => {
                    metrics.add_dropped(DropReason::Permanent, items);
                    return Err(error);
                }
                Decision::GiveUpExhausted => {
                    metrics.add_dropped(DropReason::RetriesExhausted, items);
                    return Err(error);
                }
            }
        }
    })
}

/// Sends the two halves of a batch the peer found too large, each with its own retries
/// (and further splits), and reports them as one outcome.
async fn split_and_resend<S, Svc>(
    inner: Svc,
    request: ExportRequest<S>,
    layer: RetryLayer,
) -> Result<ExportOutcome, ExportError>
where
    S: Signal,
    Svc: Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError>
        + Clone
        + Send
        + 'static,
    Svc::Future: Send,
{
    let items = request.item_count();
    let halves = match request.split(items.div_ceil(2)) {
        Ok(halves) => halves,
        Err(error) => {
            layer.metrics.add_dropped(DropReason::Permanent, items);
            return Err(error);
        }
    };
    let mut rejected = 0;
    let mut messages = Vec::new();
    let mut first_error = None;
    for half in halves {
        let half_items = half.item_count();
        match export_with_retries(inner.clone(), half, layer.clone(), false).await {
            Ok(outcome) => {
                rejected += outcome.rejected();
                if !outcome.message().is_empty() {
                    messages.push(outcome.message().to_string());
                }
            }
            // The half's drop is already counted by its own retries.
            Err(error) => {
                rejected += half_items;
                messages.push(error.to_string());
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) if rejected == items => Err(error),
        _ => Ok(ExportOutcome::partial(items, rejected, messages.join("; "))),
    }
}
