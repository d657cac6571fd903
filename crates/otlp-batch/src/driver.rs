//! The tokio side of batching: a tower service that hands requests to a background task,
//! which runs the [`Batcher`] on real (or virtual) time and exports complete batches
//! through the inner service, several at once.

use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use otlp_core::{ExportError, ExportOutcome, ExportRequest, ExportService, Holds, Signal};
use otlp_reliability::metrics::{DropReason, PipelineMetrics};
use otlp_reliability::queue::Drain;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tower_service::Service;

use crate::batcher::{BatchConfig, Batcher};
use crate::policy::BatchPolicy;
use crate::unit::BatchUnit;
use otlp_model::wire::Payload;

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
    /// Decode requests that arrived as validated protobuf into messages to batch them,
    /// instead of batching their bytes: the path before byte-level batching, kept so that
    /// benchmarks can compare the two in one run.
    pub decode: bool,
}

impl Default for BatchLayerConfig {
    fn default() -> Self {
        Self {
            batch: BatchConfig::default(),
            max_concurrent_exports: 4,
            channel_capacity: 1024,
            decode: false,
        }
    }
}

enum Command<S: Signal> {
    Export(ExportRequest<S>),
    Flush(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// Where the items handed to the batcher are, so that a shutdown that runs out of time can
/// count exactly what it leaves behind, whichever task is stuck.
#[derive(Debug, Default)]
struct Ledger {
    /// Handed to the batcher, not yet to an export.
    pending: usize,
    /// Handed to an export that has not finished.
    in_flight: usize,
    /// A shutdown gave up waiting: everything above was counted as dropped, and nothing
    /// more is exported.
    abandoned: bool,
}

type SharedLedger = Arc<std::sync::Mutex<Ledger>>;

fn lock(ledger: &SharedLedger) -> std::sync::MutexGuard<'_, Ledger> {
    // The critical sections are a few additions; a poisoned lock is still consistent.
    ledger
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The producer side: an export service whose calls return once the request is handed to
/// the batcher. Clone it freely; [`Batch::flush`] and [`Batch::shutdown`] act on the
/// shared batcher.
pub struct Batch<S: Signal> {
    commands: mpsc::Sender<Command<S>>,
    metrics: Arc<PipelineMetrics>,
    ledger: SharedLedger,
}

impl<S: Signal> Clone for Batch<S> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
            metrics: self.metrics.clone(),
            ledger: self.ledger.clone(),
        }
    }
}

impl<S: Signal> Batch<S> {
    /// Starts the batcher task (fixed-size and time-based batching by `config.batch`) on
    /// the current runtime in front of `inner`. Requests that arrived as validated
    /// protobuf are batched and split as bytes ([`Payload`]), without a decode.
    ///
    /// What `inner` sends and drops is `inner`'s to count: put a
    /// [`RetryLayer`](otlp_reliability::retry::RetryLayer) sharing `metrics` under the
    /// batcher, or failed exports go uncounted.
    pub fn new<Svc>(inner: Svc, config: BatchLayerConfig, metrics: Arc<PipelineMetrics>) -> Self
    where
        Svc: ExportService<S> + Clone + Send + 'static,
        Svc::Future: Send,
    {
        Self::start(inner, Self::fixed(config), config, metrics, None)
    }

    /// Starts the batcher task (as [`Batch::new`]) taking its requests from a queue's
    /// [`Drain`] as well as from calls: requests wait in the queue while a batch lingers,
    /// and the queue wakes the task only for the first item after a quiet spell, once a
    /// batch's worth is queued (at most half the queue's bounds) or when a request finds no
    /// room, not for every request; while requests keep coming, the task takes them on a
    /// tick of one linger. What the queue holds counts against the queue's bounds, not
    /// `config.channel_capacity`; the task serves the queue until it closes, even after
    /// every handle is dropped.
    pub fn draining<Svc>(
        drain: Drain<S>,
        inner: Svc,
        config: BatchLayerConfig,
        metrics: Arc<PipelineMetrics>,
    ) -> Self
    where
        Svc: ExportService<S> + Clone + Send + 'static,
        Svc::Future: Send,
    {
        Self::start(inner, Self::fixed(config), config, metrics, Some(drain))
    }

    /// Fixed-size and time-based batching of bytes, by `config.batch`.
    fn fixed(config: BatchLayerConfig) -> Batcher<Payload<S::Request>> {
        Batcher::new(config.batch)
    }

    /// Starts the batcher task with another strategy ([`Adaptive`](crate::Adaptive),
    /// [`Prioritized`](crate::Prioritized), or a user's own), over the unit it batches
    /// (bytes where they arrived as bytes, or owned messages); `config.batch` is unused.
    pub fn with_policy<Svc, P, U>(
        inner: Svc,
        policy: P,
        config: BatchLayerConfig,
        metrics: Arc<PipelineMetrics>,
    ) -> Self
    where
        Svc: ExportService<S> + Clone + Send + 'static,
        Svc::Future: Send,
        P: BatchPolicy<U>,
        U: BatchUnit<S>,
    {
        Self::start(inner, policy, config, metrics, None)
    }

    fn start<Svc, P, U>(
        inner: Svc,
        policy: P,
        config: BatchLayerConfig,
        metrics: Arc<PipelineMetrics>,
        drain: Option<Drain<S>>,
    ) -> Self
    where
        Svc: ExportService<S> + Clone + Send + 'static,
        Svc::Future: Send,
        P: BatchPolicy<U>,
        U: BatchUnit<S>,
    {
        let (commands, receiver) = mpsc::channel(config.channel_capacity.max(1));
        let ledger = SharedLedger::default();
        let driver = Driver {
            inner,
            exports: Arc::new(Semaphore::new(config.max_concurrent_exports.max(1))),
            permits: config.max_concurrent_exports.max(1) as u32,
            metrics: metrics.clone(),
            ledger: ledger.clone(),
            decode: config.decode,
        };
        tokio::spawn(run(receiver, drain, config.batch.linger, driver, policy));
        Self {
            commands,
            metrics,
            ledger,
        }
    }

    /// Sends the pending batch now and waits until it has been handed to an export.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Flushes, then waits up to `deadline` for every export to finish; returns the items
    /// that were not sent by then — still waiting, or in exports that had not finished —
    /// which are counted as dropped (reason `Shutdown`). Nothing is exported after it
    /// returns.
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        let drained = tokio::time::timeout(deadline, async {
            let (done, wait) = oneshot::channel();
            if self.commands.send(Command::Shutdown(done)).await.is_ok() {
                let _ = wait.await;
            }
        })
        .await
        .is_ok();
        let mut ledger = lock(&self.ledger);
        ledger.abandoned = true;
        let left = if drained {
            0
        } else {
            ledger.pending + ledger.in_flight
        };
        ledger.pending = 0;
        ledger.in_flight = 0;
        drop(ledger);
        self.metrics.add_dropped(DropReason::Shutdown, left);
        left
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
        let ledger = self.ledger.clone();
        Box::pin(async move {
            let items = request.item_count();
            metrics.add_received(items);
            {
                let mut ledger = lock(&ledger);
                if ledger.abandoned {
                    drop(ledger);
                    metrics.add_dropped(DropReason::Shutdown, items);
                    return Err(ExportError::unavailable("the batcher is shut down"));
                }
                ledger.pending += items;
            }
            match commands.send(Command::Export(request)).await {
                Ok(()) => Ok(ExportOutcome::success(items)),
                Err(_) => {
                    let counted = {
                        let mut ledger = lock(&ledger);
                        // A shutdown that gave up has counted these items already.
                        let counted = !ledger.abandoned;
                        if counted {
                            ledger.pending -= items;
                        }
                        counted
                    };
                    if counted {
                        metrics.add_dropped(DropReason::Shutdown, items);
                    }
                    Err(ExportError::unavailable("the batcher is shut down"))
                }
            }
        })
    }
}

/// What the batcher task needs to hand batches to exports.
struct Driver<Svc> {
    inner: Svc,
    exports: Arc<Semaphore>,
    permits: u32,
    metrics: Arc<PipelineMetrics>,
    ledger: SharedLedger,
    decode: bool,
}

impl<Svc> Driver<Svc> {
    /// Items that left the batcher without being exported (dropped by the strategy, or
    /// malformed): no longer pending, counted under `reason`.
    fn discard(&self, reason: DropReason, items: usize) {
        if items == 0 {
            return;
        }
        let mut ledger = lock(&self.ledger);
        if ledger.abandoned {
            return;
        }
        ledger.pending = ledger.pending.saturating_sub(items);
        drop(ledger);
        self.metrics.add_dropped(reason, items);
    }

    /// Exports one batch on its own task once a concurrency permit is free. The future
    /// owns what it needs (nothing borrowed from the driver), so the service need not be
    /// `Sync`.
    fn dispatch<S, U>(
        &self,
        batch: U,
        holds: Holds,
        feedback: &mpsc::UnboundedSender<(usize, Duration)>,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: Signal,
        Svc: ExportService<S> + Clone + Send + 'static,
        Svc::Future: Send,
        U: BatchUnit<S>,
    {
        let exports = self.exports.clone();
        let mut inner = self.inner.clone();
        let (feedback, metrics, ledger) =
            (feedback.clone(), self.metrics.clone(), self.ledger.clone());
        async move {
            let items = batch.item_count();
            let Ok(permit) = exports.acquire_owned().await else {
                return;
            };
            {
                let mut ledger = lock(&ledger);
                if ledger.abandoned {
                    // Counted as dropped by the shutdown that gave up.
                    return;
                }
                ledger.pending = ledger.pending.saturating_sub(items);
                ledger.in_flight += items;
            }
            tokio::spawn(async move {
                let started = Instant::now();
                // The inner service (the retry layer) counts what it sends and drops; a
                // service that cannot even become ready drops the batch here.
                match poll_fn(|cx| inner.poll_ready(cx)).await {
                    Ok(()) => {
                        let request = batch.into_request().with_holds(holds);
                        let _ = inner.call(request).await;
                    }
                    Err(_) => metrics.add_dropped(DropReason::Permanent, items),
                }
                {
                    let mut ledger = lock(&ledger);
                    if !ledger.abandoned {
                        ledger.in_flight = ledger.in_flight.saturating_sub(items);
                    }
                }
                let _ = feedback.send((items, started.elapsed()));
                drop(permit);
            });
        }
    }

    /// Takes a request from the queue's drain into the ledger, as a call would: received,
    /// and pending. `false`: a shutdown gave up, and the request is dropped (counted).
    fn admit_drained(&self, items: usize) -> bool {
        self.metrics.add_received(items);
        let mut ledger = lock(&self.ledger);
        if ledger.abandoned {
            drop(ledger);
            self.metrics.add_dropped(DropReason::Shutdown, items);
            return false;
        }
        ledger.pending += items;
        true
    }

    /// The strategy's unit of a request; a malformed one is counted and skipped.
    fn unit<S: Signal, U: BatchUnit<S>>(&self, request: ExportRequest<S>) -> Option<U> {
        let items = request.item_count();
        let unit = if self.decode && request.is_encoded() {
            request
                .into_message()
                .and_then(|message| U::from_request(ExportRequest::new(message)))
        } else {
            U::from_request(request)
        };
        match unit {
            Ok(unit) => Some(unit),
            // Encoded bytes a receiver vouched for turned out malformed.
            Err(_) => {
                self.discard(DropReason::Permanent, items);
                None
            }
        }
    }
}

async fn run<S, Svc, P, U>(
    mut commands: mpsc::Receiver<Command<S>>,
    mut drain: Option<Drain<S>>,
    tick_every: Duration,
    driver: Driver<Svc>,
    mut batcher: P,
) where
    S: Signal,
    Svc: ExportService<S> + Clone + Send + 'static,
    Svc::Future: Send,
    P: BatchPolicy<U>,
    U: BatchUnit<S>,
{
    let epoch = Instant::now();
    // Export latencies come back to the strategy (adaptive batching uses them).
    let (feedback, mut latencies) = mpsc::unbounded_channel::<(usize, Duration)>();
    // The holds (memory reservations) of the requests taken since the strategy last had
    // nothing pending. Every batch sent meanwhile carries a copy and the driver keeps one
    // until nothing is pending, so a reservation is released only once every item of its
    // request has left the batcher and every export carrying them has finished: never
    // early, at worst a linger late.
    let mut held = Held::default();
    macro_rules! send_all {
        ($batches:expr) => {
            for batch in $batches {
                driver
                    .dispatch::<S, U>(batch, held.snapshot(), &feedback)
                    .await;
            }
            if batcher.deadline().is_none() {
                held = Held::default();
            }
        };
    }
    macro_rules! accept {
        ($request:expr) => {{
            let mut request = $request;
            held.add(request.take_holds());
            // A size computed upstream (the queue's) is reused, not recomputed.
            let bytes = if batcher.sizes_matter() {
                request.encoded_len()
            } else {
                0
            };
            if let Some(message) = driver.unit::<S, U>(request) {
                send_all!(batcher.push_sized(message, bytes, epoch.elapsed()));
                driver.discard(DropReason::QueueFull, batcher.take_dropped());
            }
        }};
    }
    // Everything `queue` holds, into the batcher: how many requests, and whether the
    // queue is closed.
    macro_rules! take_from {
        ($queue:expr) => {{
            let taken = $queue.take();
            let count = taken.requests.len();
            // All of them into the ledger before any is pushed: pushing can wait for an
            // export permit, and a shutdown that gives up meanwhile must count them all.
            let items = taken.requests.iter().map(ExportRequest::item_count).sum();
            if driver.admit_drained(items) {
                for request in taken.requests {
                    accept!(request);
                }
            }
            (count, taken.closed)
        }};
    }
    // A closed queue is let go of: it has nothing more to give.
    macro_rules! take_drained {
        () => {{
            let mut took = 0;
            if let Some(queue) = &drain {
                let (count, closed) = take_from!(queue);
                took = count;
                if closed {
                    drain = None;
                }
            }
            took
        }};
    }
    // While requests keep coming from a drained queue, the driver takes them on a tick of
    // one linger rather than being woken for the first item of each batch: what waited has
    // waited at most a linger, so it is sent at the tick. A tick that finds nothing stops
    // the ticking, and the next request wakes the driver again.
    let mut tick: Option<Duration> = None;
    // With every handle gone the driver still serves its queue, whose producers may live on
    // (a pipeline dropped without a stop), until the queue closes.
    let mut commands_open = true;
    // Sends everything pending and waits for every export to finish.
    macro_rules! finish {
        () => {
            // The last batches carry every hold; the driver lets go of its copy.
            let holds = std::mem::take(&mut held).snapshot();
            for batch in batcher.flush_all() {
                driver
                    .dispatch::<S, U>(batch, holds.clone(), &feedback)
                    .await;
            }
            drop(holds);
            // Every export has finished once every permit is free again. A caller waiting
            // for the shutdown bounds this wait with its deadline.
            let _ = driver.exports.acquire_many(driver.permits).await;
        };
    }
    loop {
        if !commands_open && drain.is_none() {
            finish!();
            return;
        }
        let deadline = batcher.deadline();
        if let Some(queue) = &drain {
            // While a batch lingers or the tick runs, the queue holds what would not yet
            // fill a batch.
            let (items, bytes) = match (deadline.or(tick), batcher.room()) {
                (Some(_), Some(room)) => room,
                _ => (1, 1),
            };
            queue.wake_at(items, bytes);
        }
        let wake = match (deadline, tick) {
            (Some(deadline), Some(tick)) => Some(deadline.min(tick)),
            (deadline, tick) => deadline.or(tick),
        };
        let command = tokio::select! {
            command = commands.recv(), if commands_open => command,
            () = wanted(drain.as_ref()) => {
                take_drained!();
                continue;
            }
            Some((items, latency)) = latencies.recv() => {
                batcher.record_export(items, latency);
                continue;
            }
            () = sleep_until_deadline(epoch, wake) => {
                // What waited in the queue arrived before now: it goes too.
                let took = take_drained!();
                let now = epoch.elapsed();
                let ticked = tick.is_some_and(|tick| tick <= now);
                if ticked || took > 0 {
                    // What was taken may have waited up to a linger already: it all goes.
                    send_all!(batcher.flush_all());
                } else {
                    send_all!(batcher.expire(now));
                }
                if ticked {
                    tick = (took > 0).then_some(now + tick_every);
                } else if drain.is_some() && batcher.deadline().is_none() && !tick_every.is_zero() {
                    tick = Some(now + tick_every);
                }
                continue;
            }
        };
        match command {
            Some(Command::Export(request)) => accept!(request),
            Some(Command::Flush(done)) => {
                let _ = take_drained!();
                send_all!(batcher.flush_all());
                let _ = done.send(());
            }
            Some(Command::Shutdown(done)) => {
                if let Some(queue) = drain.take() {
                    let _ = take_from!(queue);
                }
                commands.close();
                // Requests already in the channel are part of the drain.
                while let Ok(Command::Export(request)) = commands.try_recv() {
                    accept!(request);
                }
                finish!();
                let _ = done.send(());
                return;
            }
            None if drain.is_some() => commands_open = false,
            None => return,
        }
    }
}

/// The holds the driver keeps for the requests it has taken since nothing was pending, as a
/// chain of generations: a batch carries one `Arc` to the newest generation, which keeps
/// every earlier one alive, so handing holds to a batch costs O(1) however many requests
/// are pending (a copy of every hold per batch was quadratic under many small requests).
#[derive(Default)]
struct Held {
    newest: Option<Arc<Generation>>,
    fresh: Holds,
}

/// Holds taken together, and the generation before them.
struct Generation {
    earlier: Option<Arc<Generation>>,
    // Kept only to be dropped with the generation.
    _holds: Holds,
}

impl Drop for Generation {
    /// Drops the chain iteratively: a long one would otherwise recurse once per link.
    fn drop(&mut self) {
        let mut next = self.earlier.take();
        while let Some(link) = next {
            next = match Arc::try_unwrap(link) {
                Ok(mut generation) => generation.earlier.take(),
                // Still carried by a batch in flight: that batch drops it later.
                Err(_) => None,
            };
        }
    }
}

impl Held {
    fn add(&mut self, holds: Holds) {
        if !holds.is_empty() {
            self.fresh.append(holds);
        }
    }

    /// What one batch carries: the newest generation (the fresh holds become one).
    fn snapshot(&mut self) -> Holds {
        if !self.fresh.is_empty() {
            let generation = Generation {
                earlier: self.newest.take(),
                _holds: std::mem::take(&mut self.fresh),
            };
            self.newest = Some(Arc::new(generation));
        }
        let mut holds = Holds::default();
        if let Some(newest) = &self.newest {
            holds.push(newest.clone());
        }
        holds
    }
}

/// Waits until the queue wants its drain to take what it holds, or for ever without one.
async fn wanted<S: Signal>(drain: Option<&Drain<S>>) {
    match drain {
        Some(drain) => drain.wanted().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until the strategy's deadline, or for ever if it has none.
async fn sleep_until_deadline(epoch: Instant, deadline: Option<Duration>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(epoch + deadline).await,
        None => std::future::pending().await,
    }
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
    Svc: ExportService<S> + Clone + Send + 'static,
    Svc::Future: Send,
{
    type Service = Batch<S>;

    fn layer(&self, inner: Svc) -> Batch<S> {
        Batch::new(inner, self.config, self.metrics.clone())
    }
}
