//! A bounded queue in front of an export service: producers hand requests over and return
//! at once; workers export them concurrently. The queue is bounded in items and in encoded
//! bytes, and when it is full the configured policy applies: block the producer (without
//! blocking a runtime thread), drop the newest request, or drop the oldest queued ones. Every
//! drop is counted.
//!
//! A queue can instead be drained by the stage under it ([`Queue::with_drain`]): a batcher
//! takes what is queued when it needs it, and tells the queue how much may pile up before a
//! producer wakes it ([`Drain::wake_at`]). Producers then wake nothing while a batch
//! lingers, which is what a quiet pipeline's CPU time goes on: each wake of another task in
//! the receiving task's turn makes the runtime wake a second worker thread.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use otlp_core::{ErrorKind, ExportError, ExportOutcome, ExportRequest, ExportService, Signal};
use tokio::sync::Notify;
use tower_service::Service;

use crate::metrics::{DropReason, PipelineMetrics};

/// What a full queue does with a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// The producer waits (asynchronously) for room. Nothing is dropped.
    Block,
    /// The new request is refused with a retryable `Unavailable` error and counted as
    /// dropped; what is queued is kept.
    DropNewest,
    /// The oldest queued requests are dropped (and counted) to make room.
    DropOldest,
}

/// Queue bounds and workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most items (spans, data points, log records) queued at once.
    pub max_items: usize,
    /// Most encoded bytes queued at once (`usize::MAX`: not capped, and requests are not
    /// sized, which saves a walk over each decoded message).
    pub max_bytes: usize,
    /// What happens when a request does not fit.
    pub policy: OverflowPolicy,
    /// Exports running concurrently.
    pub workers: usize,
}

impl Default for QueueConfig {
    /// The design document's bounded queue of 2048 batches, as items (2048 batches of 512)
    /// and at most 64 MiB; blocking; 4 concurrent exports.
    fn default() -> Self {
        Self {
            max_items: 2048 * 512,
            max_bytes: 64 * 1024 * 1024,
            policy: OverflowPolicy::Block,
            workers: 4,
        }
    }
}

struct Entry<S: Signal> {
    request: ExportRequest<S>,
    items: usize,
    bytes: usize,
}

struct State<S: Signal> {
    entries: VecDeque<Entry<S>>,
    items: usize,
    bytes: usize,
    closed: bool,
    /// Items taken by workers whose exports have not finished.
    in_flight_items: usize,
    /// Shutdown gave up waiting: what was queued or in flight has been counted as dropped.
    abandoned: bool,
    /// The most items ever queued at once, for checking the bound.
    high_water_items: usize,
    high_water_bytes: usize,
    /// A producer wakes the consumer once this many items, or bytes, are queued (workers:
    /// one item, every request).
    wake_items: usize,
    wake_bytes: usize,
    /// A producer found no room since the consumer last took: the consumer is wanted
    /// whatever its mark.
    starved: bool,
}

impl<S: Signal> State<S> {
    /// Empties the queue: its requests, oldest first, and the counts reset.
    fn empty(&mut self) -> VecDeque<Entry<S>> {
        self.items = 0;
        self.bytes = 0;
        self.starved = false;
        std::mem::take(&mut self.entries)
    }

    /// Whether what is queued calls for the consumer.
    fn wants_consumer(&self) -> bool {
        self.closed
            || (!self.entries.is_empty()
                && (self.starved || self.items >= self.wake_items || self.bytes >= self.wake_bytes))
    }
}

struct Shared<S: Signal> {
    state: Mutex<State<S>>,
    /// Signalled when room frees up.
    space: Notify,
    /// Signalled when a request is queued or the queue closes.
    work: Notify,
    /// Signalled when a worker finishes an export.
    progress: Notify,
    in_flight: AtomicUsize,
    config: QueueConfig,
    metrics: Arc<PipelineMetrics>,
}

impl<S: Signal> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, State<S>> {
        // A panic while holding this lock cannot leave the queue inconsistent (every
        // critical section is a few field updates), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, state: &State<S>) {
        self.metrics.set_queue(state.items, state.bytes);
    }
}

/// The producer side of the queue: an export service whose calls return as soon as the
/// request is queued (an `ExportOutcome` for all its items) or refused. Clone it freely.
pub struct Queue<S: Signal> {
    shared: Arc<Shared<S>>,
}

impl<S: Signal> Clone for Queue<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

/// Figures from [`Queue::shutdown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Items still queued at the deadline, counted as dropped (reason `Shutdown`).
    pub dropped_items: usize,
    /// Whether everything was exported before the deadline.
    pub drained: bool,
}

impl<S: Signal> Queue<S> {
    /// A queue in front of `inner`, with `config.workers` worker tasks on the current tokio
    /// runtime, counting into `metrics`.
    ///
    /// What `inner` sends and drops is `inner`'s to count: put a
    /// [`RetryLayer`](crate::retry::RetryLayer) sharing `metrics` under the queue, or failed
    /// exports go uncounted.
    pub fn new<Svc>(inner: Svc, config: QueueConfig, metrics: Arc<PipelineMetrics>) -> Self
    where
        Svc: ExportService<S> + Clone + Send + 'static,
        Svc::Future: Send,
    {
        let shared = Self::shared(config, metrics);
        for _ in 0..config.workers.max(1) {
            tokio::spawn(worker(shared.clone(), inner.clone()));
        }
        Self { shared }
    }

    /// A queue without workers, drained by the stage under it through the [`Drain`]
    /// (`config.workers` is unused). Until the drain says otherwise
    /// ([`Drain::wake_at`]), every request wakes it.
    pub fn with_drain(config: QueueConfig, metrics: Arc<PipelineMetrics>) -> (Self, Drain<S>) {
        let shared = Self::shared(config, metrics);
        (
            Self {
                shared: shared.clone(),
            },
            Drain { shared },
        )
    }

    fn shared(config: QueueConfig, metrics: Arc<PipelineMetrics>) -> Arc<Shared<S>> {
        Arc::new(Shared {
            state: Mutex::new(State {
                entries: VecDeque::new(),
                items: 0,
                bytes: 0,
                closed: false,
                in_flight_items: 0,
                abandoned: false,
                high_water_items: 0,
                high_water_bytes: 0,
                wake_items: 1,
                wake_bytes: usize::MAX,
                starved: false,
            }),
            space: Notify::new(),
            work: Notify::new(),
            progress: Notify::new(),
            in_flight: AtomicUsize::new(0),
            config,
            metrics,
        })
    }

    /// The most items and bytes that were ever queued at once.
    pub fn high_water(&self) -> (usize, usize) {
        let state = self.shared.lock();
        (state.high_water_items, state.high_water_bytes)
    }

    /// Stops accepting requests and waits up to `deadline` for the queue to drain and the
    /// exports in flight to finish. What is still queued then, and what is in exports that
    /// have not finished, is counted as dropped (reason `Shutdown`).
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        {
            let mut state = self.shared.lock();
            state.closed = true;
        }
        self.shared.work.notify_waiters();
        self.shared.space.notify_waiters();
        let drained = tokio::time::timeout(deadline, async {
            loop {
                let progress = self.shared.progress.notified();
                tokio::pin!(progress);
                progress.as_mut().enable();
                let idle = self.shared.lock().entries.is_empty()
                    && self.shared.in_flight.load(Ordering::SeqCst) == 0;
                if idle {
                    return;
                }
                progress.await;
            }
        })
        .await
        .is_ok();
        let mut state = self.shared.lock();
        let dropped_items = state.items + if drained { 0 } else { state.in_flight_items };
        state.abandoned = !drained;
        state.in_flight_items = 0;
        state.empty();
        self.shared.publish(&state);
        drop(state);
        self.shared
            .metrics
            .add_dropped(DropReason::Shutdown, dropped_items);
        ShutdownReport {
            dropped_items,
            drained,
        }
    }

    async fn enqueue(
        shared: Arc<Shared<S>>,
        request: ExportRequest<S>,
    ) -> Result<ExportOutcome, ExportError> {
        let items = request.item_count();
        let config = shared.config;
        // Sizing a decoded message walks all of it; skip that when bytes are not capped.
        let bytes = if config.max_bytes == usize::MAX {
            0
        } else {
            request.encoded_len()
        };
        shared.metrics.add_received(items);
        loop {
            let space = shared.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let mut state = shared.lock();
                if state.closed {
                    drop(state);
                    shared.metrics.add_dropped(DropReason::Shutdown, items);
                    return Err(ExportError::unavailable("the export queue is shut down"));
                }
                // A request larger than the whole queue is admitted into an empty queue,
                // so it can never wait for ever; memory stays within max(bound, request).
                let fits = |s: &State<S>| {
                    s.entries.is_empty()
                        || (s.items + items <= config.max_items
                            && s.bytes + bytes <= config.max_bytes)
                };
                if !fits(&state) {
                    // A drain holding off for its mark is wanted now: producers are waiting
                    // for room, or about to lose data.
                    if !state.starved && !state.entries.is_empty() {
                        state.starved = true;
                        shared.work.notify_one();
                    }
                    match config.policy {
                        OverflowPolicy::Block => {}
                        OverflowPolicy::DropNewest => {
                            drop(state);
                            shared.metrics.add_dropped(DropReason::QueueFull, items);
                            return Err(ExportError::new(
                                ErrorKind::Unavailable,
                                "the export queue is full",
                            ));
                        }
                        OverflowPolicy::DropOldest => {
                            while !fits(&state) {
                                let Some(oldest) = state.entries.pop_front() else {
                                    break;
                                };
                                state.items -= oldest.items;
                                state.bytes -= oldest.bytes;
                                shared
                                    .metrics
                                    .add_dropped(DropReason::QueueFull, oldest.items);
                            }
                        }
                    }
                }
                if fits(&state) {
                    state.entries.push_back(Entry {
                        request,
                        items,
                        bytes,
                    });
                    state.items += items;
                    state.bytes += bytes;
                    state.high_water_items = state.high_water_items.max(state.items);
                    state.high_water_bytes = state.high_water_bytes.max(state.bytes);
                    shared.publish(&state);
                    let wake = state.wants_consumer();
                    drop(state);
                    if wake {
                        shared.work.notify_one();
                    }
                    return Ok(ExportOutcome::success(items));
                }
            }
            // Block: wait for a worker to make room.
            space.await;
        }
    }
}

impl<S: Signal> Service<ExportRequest<S>> for Queue<S> {
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = Pin<Box<dyn Future<Output = Result<ExportOutcome, ExportError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ExportRequest<S>) -> Self::Future {
        Box::pin(Self::enqueue(self.shared.clone(), request))
    }
}

async fn worker<S, Svc>(shared: Arc<Shared<S>>, mut inner: Svc)
where
    S: Signal,
    Svc: ExportService<S> + Send,
    Svc::Future: Send,
{
    loop {
        let work = shared.work.notified();
        tokio::pin!(work);
        work.as_mut().enable();
        let next = {
            let mut state = shared.lock();
            match state.entries.pop_front() {
                Some(entry) => {
                    state.items -= entry.items;
                    state.bytes -= entry.bytes;
                    state.in_flight_items += entry.items;
                    shared.in_flight.fetch_add(1, Ordering::SeqCst);
                    shared.publish(&state);
                    Some(entry)
                }
                None if state.closed => return,
                None => None,
            }
        };
        let Some(entry) = next else {
            work.await;
            continue;
        };
        shared.space.notify_waiters();
        // Errors are the inner service's to count (the retry layer counts every drop); a
        // service that cannot even become ready drops the request here.
        match poll_fn(|cx| inner.poll_ready(cx)).await {
            Ok(()) => {
                let _ = inner.call(entry.request).await;
            }
            Err(_) => shared
                .metrics
                .add_dropped(DropReason::Permanent, entry.items),
        }
        {
            let mut state = shared.lock();
            if !state.abandoned {
                state.in_flight_items -= entry.items;
            }
        }
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        shared.progress.notify_waiters();
    }
}

/// The consumer side of a queue made by [`Queue::with_drain`]: the stage under the queue
/// takes what is queued itself.
pub struct Drain<S: Signal> {
    shared: Arc<Shared<S>>,
}

/// What [`Drain::take`] took.
pub struct Taken<S: Signal> {
    /// The queued requests, oldest first.
    pub requests: Vec<ExportRequest<S>>,
    /// The queue is shut down: nothing more will come.
    pub closed: bool,
}

impl<S: Signal> Drain<S> {
    /// From now on, producers wake the drain only once `items` items or `bytes` bytes are
    /// queued (at least one request either way; bytes count only when the queue caps
    /// them), or when a request finds no room. A consumer that takes requests at its own
    /// deadline asks for what would fill its pending batch, and for one item when nothing
    /// is pending. The marks are held to half the queue's bounds, so that producers find
    /// room while the consumer waits.
    pub fn wake_at(&self, items: usize, bytes: usize) {
        let config = self.shared.config;
        let mut state = self.shared.lock();
        state.wake_items = items.clamp(1, (config.max_items / 2).max(1));
        state.wake_bytes = bytes.clamp(1, (config.max_bytes / 2).max(1));
        if state.wants_consumer() {
            drop(state);
            self.shared.work.notify_one();
        }
    }

    /// Waits until what is queued reaches the [`Drain::wake_at`] mark, or the queue shuts
    /// down.
    pub async fn wanted(&self) {
        loop {
            let work = self.shared.work.notified();
            tokio::pin!(work);
            work.as_mut().enable();
            if self.shared.lock().wants_consumer() {
                return;
            }
            work.await;
        }
    }

    /// Takes everything queued, freeing its room for blocked producers.
    pub fn take(&self) -> Taken<S> {
        let mut state = self.shared.lock();
        let requests = state
            .empty()
            .into_iter()
            .map(|entry| entry.request)
            .collect();
        self.shared.publish(&state);
        let closed = state.closed;
        drop(state);
        self.shared.space.notify_waiters();
        self.shared.progress.notify_waiters();
        Taken { requests, closed }
    }
}

impl<S: Signal> Drop for Drain<S> {
    /// With its consumer gone the queue is closed: producers are refused, and what it
    /// still holds is counted as dropped (reason `Shutdown`) rather than kept for no one.
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        let left = state.items;
        state.empty();
        self.shared.publish(&state);
        drop(state);
        self.shared.metrics.add_dropped(DropReason::Shutdown, left);
        self.shared.space.notify_waiters();
        self.shared.progress.notify_waiters();
    }
}

/// Wraps an export service with a [`Queue`] (spawning its workers on the current runtime).
#[derive(Debug, Clone)]
pub struct QueueLayer<S> {
    config: QueueConfig,
    metrics: Arc<PipelineMetrics>,
    signal: PhantomData<fn() -> S>,
}

impl<S> QueueLayer<S> {
    /// A queue layer with `config`, counting into `metrics`.
    pub fn new(config: QueueConfig, metrics: Arc<PipelineMetrics>) -> Self {
        Self {
            config,
            metrics,
            signal: PhantomData,
        }
    }
}

impl<S, Svc> tower_layer::Layer<Svc> for QueueLayer<S>
where
    S: Signal,
    Svc: ExportService<S> + Clone + Send + 'static,
    Svc::Future: Send,
{
    type Service = Queue<S>;

    fn layer(&self, inner: Svc) -> Queue<S> {
        Queue::new(inner, self.config, self.metrics.clone())
    }
}
