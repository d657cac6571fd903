//! The tokio side of batching: a tower service that hands requests to a background task,
//! which runs the [`Batcher`] on real (or virtual) time and exports complete batches
//! through the inner service, several at once.

use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use otlp_core::{ExportError, ExportOutcome, ExportRequest, Signal};
use otlp_reliability::metrics::{DropReason, PipelineMetrics};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tower_service::Service;

use crate::batcher::{BatchConfig, Batcher};
use crate::policy::BatchPolicy;

/// Batching plus how many batches may be exported at once, and how many requests may wait
/// for the batcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLayerConfig {
    /// When batches close.
    pub batch: BatchConfig,
    /// Batches exported concurrently.
    pub max_concurrent_exports: usize,
    /// Requests waiting to be batched; producers wait (asynchronously) beyond this.
    pub channel_capacity: usize,
}

impl Default for BatchLayerConfig {
    fn default() -> Self {
        Self {
            batch: BatchConfig::default(),
            max_concurrent_exports: 4,
            channel_capacity: 1024,
        }
    }
}

enum Command<S: Signal> {
    Export(ExportRequest<S>),
    Flush(oneshot::Sender<()>),
    Shutdown(Duration, oneshot::Sender<usize>),
}

/// The producer side: an export service whose calls return once the request is handed to
/// the batcher. Clone it freely; [`Batch::flush`] and [`Batch::shutdown`] act on the
/// shared batcher.
pub struct Batch<S: Signal> {
    commands: mpsc::Sender<Command<S>>,
    metrics: Arc<PipelineMetrics>,
}

impl<S: Signal> Clone for Batch<S> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<S: Signal> Batch<S> {
    /// Starts the batcher task (fixed-size and time-based batching by `config.batch`) on
    /// the current runtime in front of `inner`.
    ///
    /// What `inner` sends and drops is `inner`'s to count: put a
    /// [`RetryLayer`](otlp_reliability::retry::RetryLayer) sharing `metrics` under the
    /// batcher, or failed exports go uncounted.
    pub fn new<Svc>(inner: Svc, config: BatchLayerConfig, metrics: Arc<PipelineMetrics>) -> Self
    where
        Svc: Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError>
            + Clone
            + Send
            + 'static,
        Svc::Future: Send,
    {
        Self::with_policy(inner, Batcher::new(config.batch), config, metrics)
    }

    /// Starts the batcher task with another strategy ([`Adaptive`](crate::Adaptive),
    /// [`Prioritized`](crate::Prioritized), or a user's own); `config.batch` is unused.
    pub fn with_policy<Svc, P>(
        inner: Svc,
        policy: P,
        config: BatchLayerConfig,
        metrics: Arc<PipelineMetrics>,
    ) -> Self
    where
        Svc: Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError>
            + Clone
            + Send
            + 'static,
        Svc::Future: Send,
        P: BatchPolicy<S::Request>,
    {
        let (commands, receiver) = mpsc::channel(config.channel_capacity.max(1));
        tokio::spawn(run(receiver, inner, policy, config, metrics.clone()));
        Self { commands, metrics }
    }

    /// Sends the pending batch now and waits until it has been handed to an export.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Flushes, then waits up to `deadline` for every export to finish; returns the items
    /// that could not be sent by then, which are counted as dropped (reason `Shutdown`).
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        let (done, wait) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown(deadline, done))
            .await
            .is_err()
        {
            return 0;
        }
        wait.await.unwrap_or(0)
    }
}

impl<S: Signal> Service<ExportRequest<S>> for Batch<S> {
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = Pin<Box<dyn Future<Output = Result<ExportOutcome, ExportError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ExportRequest<S>) -> Self::Future {
        let commands = self.commands.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let items = request.item_count();
            metrics.add_received(items);
            match commands.send(Command::Export(request)).await {
                Ok(()) => Ok(ExportOutcome::success(items)),
                Err(_) => {
                    metrics.add_dropped(DropReason::Shutdown, items);
                    Err(ExportError::unavailable("the batcher is shut down"))
                }
            }
        })
    }
}

async fn run<S, Svc, P>(
    mut commands: mpsc::Receiver<Command<S>>,
    inner: Svc,
    mut batcher: P,
    config: BatchLayerConfig,
    metrics: Arc<PipelineMetrics>,
) where
    S: Signal,
    Svc: Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError>
        + Clone
        + Send
        + 'static,
    Svc::Future: Send,
    P: BatchPolicy<S::Request>,
{
    let epoch = Instant::now();
    let exports = Arc::new(Semaphore::new(config.max_concurrent_exports.max(1)));
    // Export latencies come back to the strategy (adaptive batching uses them).
    let (feedback, mut latencies) = mpsc::unbounded_channel::<(usize, Duration)>();
    loop {
        let deadline = batcher.deadline();
        let command = tokio::select! {
            command = commands.recv() => command,
            Some((items, latency)) = latencies.recv() => {
                batcher.record_export(items, latency);
                continue;
            }
            () = sleep_until_deadline(epoch, deadline) => {
                for batch in batcher.expire(epoch.elapsed()) {
                    dispatch(&exports, inner.clone(), batch, &feedback, &metrics).await;
                }
                continue;
            }
        };
        match command {
            Some(Command::Export(request)) => {
                // A size computed upstream (the queue's) is reused, not recomputed.
                let bytes = if batcher.sizes_matter() {
                    request.encoded_len()
                } else {
                    0
                };
                let items = request.item_count();
                let message = match request.into_message() {
                    Ok(message) => message,
                    // Encoded bytes a receiver vouched for turned out malformed: the items
                    // cannot be sent, and are counted.
                    Err(_) => {
                        metrics.add_dropped(DropReason::Permanent, items);
                        continue;
                    }
                };
                for batch in batcher.push_sized(message, bytes, epoch.elapsed()) {
                    dispatch(&exports, inner.clone(), batch, &feedback, &metrics).await;
                }
                metrics.add_dropped(DropReason::QueueFull, batcher.take_dropped());
            }
            Some(Command::Flush(done)) => {
                for batch in batcher.flush_all() {
                    dispatch(&exports, inner.clone(), batch, &feedback, &metrics).await;
                }
                let _ = done.send(());
            }
            Some(Command::Shutdown(deadline, done)) => {
                commands.close();
                // Requests already in the channel are part of the drain.
                while let Ok(Command::Export(request)) = commands.try_recv() {
                    let items = request.item_count();
                    match request.into_message() {
                        Ok(message) => {
                            for batch in batcher.push(message, epoch.elapsed()) {
                                dispatch(&exports, inner.clone(), batch, &feedback, &metrics).await;
                            }
                        }
                        Err(_) => metrics.add_dropped(DropReason::Permanent, items),
                    }
                }
                metrics.add_dropped(DropReason::QueueFull, batcher.take_dropped());
                let last = batcher.flush_all();
                let items: usize = last.iter().map(otlp_model::SignalRequest::item_count).sum();
                let permits = config.max_concurrent_exports.max(1) as u32;
                let sender = inner.clone();
                let (all_exports, all_feedback, all_metrics) =
                    (exports.clone(), feedback.clone(), metrics.clone());
                let all = tokio::time::timeout(deadline, async move {
                    for batch in last {
                        dispatch(
                            &all_exports,
                            sender.clone(),
                            batch,
                            &all_feedback,
                            &all_metrics,
                        )
                        .await;
                    }
                    all_exports.acquire_many(permits).await.map(drop)
                })
                .await;
                // Batches already handed to exports are the retry layer's to count; what
                // could not even be handed over by the deadline is counted here.
                let undelivered = if all.is_err() { items } else { 0 };
                metrics.add_dropped(DropReason::Shutdown, undelivered);
                let _ = done.send(undelivered);
                return;
            }
            None => return,
        }
    }
}

/// Sleeps until the strategy's deadline, or for ever if it has none.
async fn sleep_until_deadline(epoch: Instant, deadline: Option<Duration>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(epoch + deadline).await,
        None => std::future::pending().await,
    }
}

/// Exports one batch on its own task once a concurrency permit is free.
async fn dispatch<S, Svc>(
    exports: &Arc<Semaphore>,
    mut inner: Svc,
    batch: S::Request,
    feedback: &mpsc::UnboundedSender<(usize, Duration)>,
    metrics: &Arc<PipelineMetrics>,
) where
    S: Signal,
    Svc: Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError> + Send + 'static,
    Svc::Future: Send,
{
    let items = otlp_model::SignalRequest::item_count(&batch);
    let Ok(permit) = exports.clone().acquire_owned().await else {
        metrics.add_dropped(DropReason::Shutdown, items);
        return;
    };
    let feedback = feedback.clone();
    let metrics = metrics.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        // The inner service (the retry layer) counts what it sends and drops; a service
        // that cannot even become ready drops the batch here.
        match poll_fn(|cx| inner.poll_ready(cx)).await {
            Ok(()) => {
                let _ = inner.call(ExportRequest::new(batch)).await;
            }
            Err(_) => metrics.add_dropped(DropReason::Permanent, items),
        }
        let _ = feedback.send((items, started.elapsed()));
        drop(permit);
    });
}

/// Wraps an export service with a [`Batch`] (spawning its task on the current runtime).
#[derive(Debug, Clone)]
pub struct BatchLayer<S> {
    config: BatchLayerConfig,
    metrics: Arc<PipelineMetrics>,
    signal: PhantomData<fn() -> S>,
}

impl<S> BatchLayer<S> {
    /// Batching with `config`, counting into `metrics`.
    pub fn new(config: BatchLayerConfig, metrics: Arc<PipelineMetrics>) -> Self {
        Self {
            config,
            metrics,
            signal: PhantomData,
        }
    }
}

impl<S, Svc> tower_layer::Layer<Svc> for BatchLayer<S>
where
    S: Signal,
    Svc: Service<ExportRequest<S>, Response = ExportOutcome, Error = ExportError>
        + Clone
        + Send
        + 'static,
    Svc::Future: Send,
{
    type Service = Batch<S>;

    fn layer(&self, inner: Svc) -> Batch<S> {
        Batch::new(inner, self.config, self.metrics.clone())
    }
}
