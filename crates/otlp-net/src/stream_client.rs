//! The exporter half of the stream protocol over any binding, written once: the sans-IO
//! [`otlp_stream::Sender`] decides what to write, and one tokio driver runs it over a
//! [`StreamLink`] that a binding opens ([`StreamConnector`]). A binding (gRPC
//! bidirectional, WebSocket) writes only its framing: open a link, send a batch, flush,
//! receive an acknowledgement, finish.
//!
//! The driver connects on the first batch, keeps at most a window of batches
//! unacknowledged (further calls wait: backpressure), answers each call when its batch is
//! acknowledged or refused for good, and after a broken link reconnects with backoff and
//! writes exactly the unacknowledged batches again, with their numbers and batch ids, so a
//! receiver's de-duplication recognises them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use otlp_core::{AnyExportRequest, BoxExportFuture, ErrorKind, ExportError, ExportOutcome};
use otlp_model::stream::StreamAck;
use otlp_stream::envelope::{BatchIds, with_id};
use otlp_stream::{AckEvent, Sender, SenderConfig};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Longest a graceful end of a link (our half closed, the peer's end awaited) may take.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a link ended, or could not be opened.
#[derive(Debug)]
pub enum LinkEnd {
    /// The peer ended it cleanly (gRPC OK trailers, a WebSocket close after ours).
    Finished,
    /// Broken (a reset, a failed connection, a malformed acknowledgement): reconnect and
    /// write the unacknowledged batches again.
    Broken,
    /// Refused for a reason resending cannot fix (authentication, a malformed stream). At
    /// opening, every outstanding batch fails with it; later, the batches written on this
    /// link do.
    Refused(ExportError),
    /// The peer has no stream service: the connector's [`StreamConnector::fallback`] takes
    /// over, if it has one (otherwise this is [`LinkEnd::Broken`]).
    Unimplemented,
    /// The peer ended the link because a message exceeded its limit without saying which
    /// (WebSocket close 1009): the largest batch in flight fails as too large — permanent,
    /// so a retry layer splits it — and the others are written again.
    TooLarge,
}

/// Why a batch could not be written.
#[derive(Debug)]
pub enum SendError {
    /// This batch cannot be sent (over a limit, not encodable): it fails with the error,
    /// the link goes on.
    Batch(ExportError),
    /// The link broke.
    Broken,
}

/// One open stream of a binding. `receive` must be cancel-safe: the driver waits for it
/// beside new batches and timers.
pub trait StreamLink: Send {
    /// Writes (or buffers) batch `sequence`; returns the size of its message in bytes.
    fn send(
        &mut self,
        sequence: u64,
        batch: &AnyExportRequest,
    ) -> impl Future<Output = Result<usize, SendError>> + Send;

    /// Pushes what [`StreamLink::send`] buffered to the peer.
    fn flush(&mut self) -> impl Future<Output = Result<(), LinkEnd>> + Send;

    /// The next acknowledgement, or why the link ended.
    fn receive(&mut self) -> impl Future<Output = Result<StreamAck, LinkEnd>> + Send;

    /// Ends our half (everything is acknowledged and nothing more will come) and lets the
    /// peer end its own; bounded by the driver.
    fn finish(self) -> impl Future<Output = ()> + Send;
}

/// A unary call per batch, for peers without the stream service.
pub type UnaryFallback = Arc<dyn Fn(AnyExportRequest) -> BoxExportFuture + Send + Sync>;

/// Opens the links of one binding to one peer.
pub trait StreamConnector: Send + 'static {
    /// The link it opens.
    type Link: StreamLink;

    /// Opens a new link (connect, handshake).
    fn open(&mut self) -> impl Future<Output = Result<Self::Link, LinkEnd>> + Send;

    /// What to do when the peer has no stream service ([`LinkEnd::Unimplemented`]):
    /// `None` (the default) reconnects as for a broken link.
    fn fallback(&self) -> Option<UnaryFallback> {
        None
    }
}

/// Settings of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamClientConfig {
    /// Window and resend policy of the stream protocol.
    pub sender: SenderConfig,
    /// First wait before reconnecting after a broken link.
    pub reconnect_initial: Duration,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// Longest one call waits, for room in the window and then for its acknowledgement;
    /// past it the call fails as a retryable timeout (the batch may still be delivered and
    /// acknowledged later), so a silent peer cannot hold every caller. `None`: unbounded.
    pub call_timeout: Option<Duration>,
    /// Longest writing what is due may block before the link is taken for broken (a peer
    /// that stopped reading). `None` for a link whose writes never wait for the peer.
    pub write_timeout: Option<Duration>,
}

impl Default for StreamClientConfig {
    fn default() -> Self {
        Self {
            sender: SenderConfig::default(),
            reconnect_initial: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(5),
            call_timeout: Some(Duration::from_secs(10)),
            write_timeout: None,
        }
    }
}

/// Counters of a stream exporter, whatever its binding.
#[derive(Debug, Default)]
pub struct StreamClientStats {
    /// Batches written the first time.
    pub batches_sent: AtomicU64,
    /// Batches written again after a broken link or a retryable refusal.
    pub batches_resent: AtomicU64,
    /// Batches acknowledged as delivered.
    pub batches_delivered: AtomicU64,
    /// Batches refused for good.
    pub batches_failed: AtomicU64,
    /// Links opened after the first.
    pub reconnects: AtomicU64,
    /// Whether the exporter fell back to unary calls.
    pub fell_back_to_unary: AtomicBool,
}

type Reply = oneshot::Sender<Result<ExportOutcome, ExportError>>;

/// The handle of a running driver: each [`StreamClient::export`] resolves when its batch is
/// acknowledged or refused for good. Cloned handles share the driver; it stops when the
/// last is dropped and everything is answered.
#[derive(Debug, Clone)]
pub struct StreamClient {
    commands: mpsc::Sender<(AnyExportRequest, Reply)>,
    stats: Arc<StreamClientStats>,
    call_timeout: Option<Duration>,
}

impl StreamClient {
    /// Starts the driver over `connector`'s links (it connects on the first batch).
    pub fn spawn<C: StreamConnector>(connector: C, config: StreamClientConfig) -> Self {
        let (commands, receiver) = mpsc::channel(config.sender.window.max(1));
        let stats = Arc::new(StreamClientStats::default());
        let driver = Driver {
            connector,
            sender: Sender::new(config.sender),
            replies: HashMap::new(),
            config,
            stats: stats.clone(),
            commands: receiver,
            epoch: Instant::now(),
            ids: BatchIds::new(),
            closed: false,
            written: HashMap::new(),
        };
        tokio::spawn(driver.run());
        Self {
            commands,
            stats,
            call_timeout: config.call_timeout,
        }
    }

    /// The driver's counters.
    pub fn stats(&self) -> &StreamClientStats {
        &self.stats
    }

    /// Sends one request and waits for its acknowledgement (within the call timeout).
    pub async fn export(&self, request: AnyExportRequest) -> Result<ExportOutcome, ExportError> {
        let stopped = || ExportError::new(ErrorKind::Cancelled, "the stream exporter stopped");
        let call = async {
            let (reply, answer) = oneshot::channel();
            self.commands
                .send((request, reply))
                .await
                .map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        };
        match self.call_timeout {
            Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                Err(ExportError::timeout(
                    "no acknowledgement from the stream within the call timeout",
                ))
            }),
            None => call.await,
        }
    }
}

/// Writes what a binding's exporter handle (a newtype over [`StreamClient`]) offers, the
/// same for every binding: `stats`, `export`, and `tower_service::Service` for every
/// signal (the calling crate depends on `tower-service`). Used at the crate root of a
/// module with `$handle(StreamClient)` and `$stats` an alias of [`StreamClientStats`].
#[macro_export]
macro_rules! stream_exporter_handle {
    ($handle:ident, $stats:ty) => {
        impl $handle {
            /// Its counters.
            pub fn stats(&self) -> &$stats {
                self.0.stats()
            }

            /// Sends one request and waits for its acknowledgement (or its refusal for
            /// good, or the call timeout).
            pub async fn export(
                &self,
                request: ::otlp_core::AnyExportRequest,
            ) -> ::std::result::Result<::otlp_core::ExportOutcome, ::otlp_core::ExportError> {
                self.0.export(request).await
            }
        }

        impl<S: ::otlp_core::Signal> ::tower_service::Service<::otlp_core::ExportRequest<S>>
            for $handle
        where
            ::otlp_core::AnyExportRequest: From<::otlp_core::ExportRequest<S>>,
        {
            type Response = ::otlp_core::ExportOutcome;
            type Error = ::otlp_core::ExportError;
            type Future = ::otlp_core::BoxExportFuture;

            fn poll_ready(
                &mut self,
                _: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::result::Result<(), ::otlp_core::ExportError>> {
                // The window is waited for in the call (the command channel is as deep
                // as it).
                ::std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, request: ::otlp_core::ExportRequest<S>) -> Self::Future {
                let client = self.0.clone();
                Box::pin(async move { client.export(request.into()).await })
            }
        }
    };
}

struct Driver<C> {
    connector: C,
    sender: Sender<AnyExportRequest>,
    replies: HashMap<u64, Reply>,
    config: StreamClientConfig,
    stats: Arc<StreamClientStats>,
    commands: mpsc::Receiver<(AnyExportRequest, Reply)>,
    epoch: Instant,
    ids: BatchIds,
    /// Every handle is gone: no more batches will come.
    closed: bool,
    /// The message size of each batch written on the current link and not yet answered.
    written: HashMap<u64, usize>,
}

impl<C: StreamConnector> Driver<C> {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    async fn run(mut self) {
        let mut pause = self.config.reconnect_initial;
        let mut first = true;
        loop {
            // Connect only when there is something to send.
            if self.sender.outstanding() == 0 && !self.take_command().await {
                return;
            }
            if !first {
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            match self.link().await {
                LinkEnd::Finished if self.closed && self.sender.outstanding() == 0 => return,
                LinkEnd::Unimplemented => {
                    if let Some(fallback) = self.connector.fallback() {
                        return self.unary(fallback).await;
                    }
                }
                LinkEnd::Refused(error) => self.fail_written(&error),
                LinkEnd::TooLarge => self.fail_largest_written(),
                LinkEnd::Finished | LinkEnd::Broken => {}
            }
            self.sender.handle_disconnect();
            tokio::time::sleep(pause).await;
            pause = if self.sender.outstanding() == 0 {
                self.config.reconnect_initial
            } else {
                (pause * 2).min(self.config.reconnect_max)
            };
        }
    }

    /// Waits for one command and offers it; `false` when every handle is gone.
    async fn take_command(&mut self) -> bool {
        match self.commands.recv().await {
            Some((request, reply)) => {
                self.offer(request, reply);
                true
            }
            None => {
                self.closed = true;
                false
            }
        }
    }

    fn offer(&mut self, request: AnyExportRequest, reply: Reply) {
        let request = with_id(request, self.ids.next());
        let items = request.item_count();
        match self.sender.offer(request, items) {
            Ok(sequence) => {
                self.replies.insert(sequence, reply);
            }
            Err(_) => {
                // Only offered when there is room; kept as a clear error all the same.
                let _ = reply.send(Err(ExportError::unavailable("stream window full")));
            }
        }
    }

    /// One link, from opening to its end.
    async fn link(&mut self) -> LinkEnd {
        let mut link = match self.connector.open().await {
            Ok(link) => link,
            Err(LinkEnd::Refused(error)) => {
                self.fail_outstanding(&error);
                return LinkEnd::Broken;
            }
            Err(end) => return end,
        };
        self.sender.handle_connect();
        self.written.clear();
        if let Err(end) = self.write_due(&mut link).await {
            return end;
        }
        loop {
            if self.closed && self.sender.outstanding() == 0 {
                let _ = tokio::time::timeout(FINISH_TIMEOUT, link.finish()).await;
                return LinkEnd::Finished;
            }
            let wake = self.sender.poll_timeout().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                |at| self.epoch + at,
            );
            let room = self.sender.has_room() && !self.closed;
            tokio::select! {
                command = self.commands.recv(), if room => match command {
                    Some((request, reply)) => self.offer(request, reply),
                    None => self.closed = true,
                },
                ack = link.receive() => match ack {
                    Ok(ack) => {
                        let event = self.sender.handle_ack(&ack, self.now());
                        self.apply(event);
                    }
                    Err(end) => return end,
                },
                () = tokio::time::sleep_until(wake) => {}
            }
            if let Err(end) = self.write_due(&mut link).await {
                return end;
            }
        }
    }

    /// Writes what the sender has due, then flushes, within the write timeout.
    async fn write_due(&mut self, link: &mut C::Link) -> Result<(), LinkEnd> {
        let limit = self.config.write_timeout;
        let writing = async {
            while let Some(transmit) = self.sender.poll_transmit(self.now()) {
                let counter = if transmit.resend {
                    &self.stats.batches_resent
                } else {
                    &self.stats.batches_sent
                };
                counter.fetch_add(1, Ordering::Relaxed);
                match link.send(transmit.sequence, &transmit.payload).await {
                    Ok(bytes) => {
                        self.written.insert(transmit.sequence, bytes);
                    }
                    Err(SendError::Batch(error)) => self.fail(transmit.sequence, error),
                    Err(SendError::Broken) => return Err(LinkEnd::Broken),
                }
            }
            link.flush().await
        };
        match limit {
            Some(limit) => tokio::time::timeout(limit, writing)
                .await
                .unwrap_or(Err(LinkEnd::Broken)),
            None => writing.await,
        }
    }

    /// Resolves `sequence` (in flight) through the state machine, so the window frees up.
    fn fail(&mut self, sequence: u64, error: ExportError) {
        let ack = otlp_stream::completed(sequence, &Err(error));
        let event = self.sender.handle_ack(&ack, self.now());
        self.apply(event);
    }

    /// The batches written on the link that ended fail with `error`.
    fn fail_written(&mut self, error: &ExportError) {
        let mut written: Vec<u64> = self.written.keys().copied().collect();
        written.sort_unstable();
        for sequence in written {
            self.fail(sequence, copy_of(error));
        }
    }

    /// Every outstanding batch fails with `error` (the peer refuses us for good).
    fn fail_outstanding(&mut self, error: &ExportError) {
        self.sender.handle_disconnect();
        self.sender.handle_connect();
        while let Some(transmit) = self.sender.poll_transmit(Duration::MAX) {
            self.fail(transmit.sequence, copy_of(error));
        }
    }

    /// The peer could not say which message was too big: the largest in flight is refused
    /// as too large. Were the guess wrong, the refused batch is split and delivered all the
    /// same, and the next refusal names the next.
    fn fail_largest_written(&mut self) {
        let Some((&sequence, &size)) = self.written.iter().max_by_key(|(_, size)| **size) else {
            return;
        };
        self.fail(
            sequence,
            ExportError::too_large(format!(
                "the peer ended the stream for a message too big; the largest batch in \
                 flight, of {size} bytes, is refused as too large"
            )),
        );
    }

    fn apply(&mut self, event: AckEvent) {
        let (sequence, result, counter) = match event {
            AckEvent::Delivered { sequence, outcome } => {
                (sequence, Ok(outcome), &self.stats.batches_delivered)
            }
            AckEvent::Failed {
                sequence, error, ..
            } => (sequence, Err(error), &self.stats.batches_failed),
            AckEvent::WillResend { .. } | AckEvent::Progress { .. } | AckEvent::Unknown { .. } => {
                return;
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.written.remove(&sequence);
        if let Some(reply) = self.replies.remove(&sequence) {
            let _ = reply.send(result);
        }
    }

    /// Unary calls from now on: the outstanding batches first, then every new one.
    async fn unary(mut self, fallback: UnaryFallback) {
        self.stats.fell_back_to_unary.store(true, Ordering::Relaxed);
        self.sender.handle_disconnect();
        self.sender.handle_connect();
        let mut pending = Vec::new();
        while let Some(transmit) = self.sender.poll_transmit(Duration::MAX) {
            pending.push(transmit);
        }
        for transmit in pending {
            if let Some(reply) = self.replies.remove(&transmit.sequence) {
                spawn_unary(&fallback, transmit.payload, reply);
            }
        }
        while let Some((request, reply)) = self.commands.recv().await {
            spawn_unary(&fallback, request, reply);
        }
    }
}

fn spawn_unary(fallback: &UnaryFallback, request: AnyExportRequest, reply: Reply) {
    let call = fallback(request);
    tokio::spawn(async move {
        let _ = reply.send(call.await);
    });
}

/// The same error again, for each batch it fails (errors are not `Clone`: their sources
/// are not).
fn copy_of(error: &ExportError) -> ExportError {
    ExportError::new(error.kind(), error.message().to_string())
}
