//! The bidirectional streaming exporter: one long-lived `ExportBidirectional` call carries
//! numbered batches; the sans-IO [`otlp_stream::Sender`] decides what to write, and after a
//! broken stream exactly the unacknowledged batches are written again on a new one. A
//! server without the streaming service (UNIMPLEMENTED) gets unary `Export` calls instead.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use otlp_core::{
    AnyExportRequest, BoxExportFuture, ErrorKind, ExportError, ExportOutcome, ExportRequest, Signal,
};
use otlp_model::stream::StreamAck;
use otlp_stream::envelope::{BatchIds, encode_batch, with_id};
use otlp_stream::{AckEvent, Sender, SenderConfig};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tower_service::Service;

use super::{GrpcExporter, error_of_headers, response_encoding};
use crate::body::{BodySender, GrpcBody, next_frame};
use crate::framing::{FrameDecoder, FrameLimits};
use crate::protocol::EXPORT_BIDIRECTIONAL_PATH;
use crate::status::error_from_trailers;

/// Settings of a [`StreamExporter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamExporterConfig {
    /// Window and resend policy of the stream protocol.
    pub sender: SenderConfig,
    /// First wait before reconnecting after a broken stream.
    pub reconnect_initial: Duration,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// Use unary `Export` calls when the server lacks the streaming service.
    pub fallback_to_unary: bool,
    /// Longest one call waits, for room in the window and then for its acknowledgement;
    /// past it the call fails as a retryable timeout (the batch may still be delivered
    /// and acknowledged later), so a silent upstream cannot hold every caller. `None`:
    /// unbounded (a batch survives any number of reconnects).
    pub call_timeout: Option<Duration>,
}

impl Default for StreamExporterConfig {
    fn default() -> Self {
        Self {
            sender: SenderConfig::default(),
            reconnect_initial: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(5),
            fallback_to_unary: true,
            call_timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// Counters of a [`StreamExporter`].
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Batches written (first sends).
    pub batches_sent: AtomicU64,
    /// Batches written again after a broken stream or a retryable refusal.
    pub batches_resent: AtomicU64,
    /// Batches acknowledged as delivered.
    pub batches_delivered: AtomicU64,
    /// Batches refused for good.
    pub batches_failed: AtomicU64,
    /// Streams opened after the first.
    pub reconnects: AtomicU64,
    /// Whether the exporter fell back to unary calls.
    pub fell_back_to_unary: AtomicBool,
}

type Reply = oneshot::Sender<Result<ExportOutcome, ExportError>>;

/// An exporter over the bidirectional streaming RPC, usable as an
/// [`ExportService`](otlp_core::ExportService) for every signal. Each call resolves when
/// its batch is acknowledged (or refused for good); at most `window` batches are
/// unacknowledged at once, and further calls wait (backpressure).
///
/// Calls are bounded by [`StreamExporterConfig::call_timeout`] (10 s by default).
#[derive(Debug, Clone)]
pub struct StreamExporter {
    commands: mpsc::Sender<(AnyExportRequest, Reply)>,
    stats: Arc<StreamStats>,
    call_timeout: Option<Duration>,
}

impl StreamExporter {
    /// Starts the stream driver for `exporter`'s endpoint. It connects on the first batch.
    pub fn new(exporter: GrpcExporter, config: StreamExporterConfig) -> Self {
        let (commands, receiver) = mpsc::channel(config.sender.window.max(1));
        let stats = Arc::new(StreamStats::default());
        let driver = Driver {
            sender: Sender::new(config.sender),
            replies: HashMap::new(),
            exporter,
            config,
            stats: stats.clone(),
            commands: receiver,
            epoch: Instant::now(),
            ids: BatchIds::new(),
            closed: false,
            on_stream: Vec::new(),
        };
        tokio::spawn(driver.run());
        Self {
            commands,
            stats,
            call_timeout: config.call_timeout,
        }
    }

    /// The exporter's counters.
    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// Sends one request and waits for its acknowledgement.
    pub async fn export(&self, request: AnyExportRequest) -> Result<ExportOutcome, ExportError> {
        let call = async {
            let (reply, answer) = oneshot::channel();
            self.commands.send((request, reply)).await.map_err(|_| {
                ExportError::new(ErrorKind::Cancelled, "the stream exporter stopped")
            })?;
            answer.await.map_err(|_| {
                ExportError::new(ErrorKind::Cancelled, "the stream exporter stopped")
            })?
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

impl<S: Signal> Service<ExportRequest<S>> for StreamExporter
where
    AnyExportRequest: From<ExportRequest<S>>,
{
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        // The window is waited for in the call (the command channel is as deep as it).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ExportRequest<S>) -> Self::Future {
        let exporter = self.clone();
        Box::pin(async move { exporter.export(request.into()).await })
    }
}

fn ended_by(error: ExportError) -> Ended {
    match (error.kind(), error.retry_class()) {
        (ErrorKind::Unimplemented, _) => Ended::Unimplemented,
        (_, otlp_core::RetryClass::Permanent) => Ended::Fatal(error),
        _ => Ended::Broken,
    }
}

struct Driver {
    sender: Sender<AnyExportRequest>,
    replies: HashMap<u64, Reply>,
    exporter: GrpcExporter,
    config: StreamExporterConfig,
    stats: Arc<StreamStats>,
    commands: mpsc::Receiver<(AnyExportRequest, Reply)>,
    epoch: Instant,
    ids: BatchIds,
    /// Every handle is gone: no more batches will come.
    closed: bool,
    /// Sequences written on the current stream.
    on_stream: Vec<u64>,
}

/// Why a stream ended.
enum Ended {
    /// No more batches will come and all are acknowledged.
    Done,
    /// Broken or refused: reconnect after a pause.
    Broken,
    /// The server has no streaming service.
    Unimplemented,
    /// Refused for a reason that resending cannot fix (authentication, a malformed
    /// stream): the batches written on this stream fail with it.
    Fatal(ExportError),
}

impl Driver {
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
            match self.stream().await {
                Ended::Done => return,
                Ended::Unimplemented if self.config.fallback_to_unary => {
                    return self.unary_fallback().await;
                }
                Ended::Fatal(error) => {
                    let written: Vec<u64> = std::mem::take(&mut self.on_stream);
                    for sequence in written {
                        let error = ExportError::new(error.kind(), error.message().to_string());
                        self.fail(sequence, error);
                    }
                    self.sender.handle_disconnect();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(self.config.reconnect_max);
                }
                Ended::Unimplemented | Ended::Broken => {
                    self.sender.handle_disconnect();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(self.config.reconnect_max);
                }
            }
            if self.sender.outstanding() == 0 {
                pause = self.config.reconnect_initial;
            }
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

    async fn write_due(&mut self, body: &BodySender) -> bool {
        while let Some(transmit) = self.sender.poll_transmit(self.now()) {
            let counter = if transmit.resend {
                &self.stats.batches_resent
            } else {
                &self.stats.batches_sent
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.on_stream.push(transmit.sequence);
            let (message, _) = encode_batch(transmit.sequence, &transmit.payload);
            let compression = self.exporter.inner.config.compression.clone();
            let Ok(frame) = self.exporter.frame(&message, compression.as_deref()) else {
                self.fail(
                    transmit.sequence,
                    ExportError::too_large("batch over the limit"),
                );
                continue;
            };
            if !body.data(frame).await {
                return false;
            }
        }
        true
    }

    fn fail(&mut self, sequence: u64, error: ExportError) {
        // Resolve through the state machine so the window frees up.
        let ack = otlp_stream::completed(sequence, &Err(error));
        let event = self.sender.handle_ack(&ack, self.now());
        self.apply(event);
    }

    fn apply(&mut self, event: AckEvent) {
        match event {
            AckEvent::Delivered { sequence, outcome } => {
                self.stats.batches_delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = self.replies.remove(&sequence) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            AckEvent::Failed {
                sequence, error, ..
            } => {
                self.stats.batches_failed.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = self.replies.remove(&sequence) {
                    let _ = reply.send(Err(error));
                }
            }
            AckEvent::WillResend { .. } | AckEvent::Progress { .. } | AckEvent::Unknown { .. } => {}
        }
    }

    async fn stream(&mut self) -> Ended {
        let exporter = self.exporter.clone();
        let config = &exporter.inner.config;
        let compression = config.compression.clone();
        let (body, request_body) = GrpcBody::channel(self.config.sender.window + 1);
        let request = self.exporter.request(
            EXPORT_BIDIRECTIONAL_PATH,
            compression.as_ref(),
            request_body,
        );
        self.sender.handle_connect();
        self.on_stream.clear();
        // The body channel holds a whole window, so these writes never wait for the peer.
        if !self.write_due(&body).await {
            return Ended::Broken;
        }
        let response = match self.exporter.channel().send(request).await {
            Ok(response) => response,
            Err(_) => return Ended::Broken,
        };
        if let Some(error) = error_of_headers(&response, compression.as_ref()) {
            return ended_by(error);
        }
        let Ok(encoding) = response_encoding(response.headers(), config) else {
            return Ended::Broken;
        };
        let mut acks = response.into_body();
        let mut decoder = FrameDecoder::new(FrameLimits {
            max_message_bytes: config.max_response_bytes,
            max_frame_bytes: config.max_response_bytes,
        });
        let mut trailers = None;
        let mut body = Some(body);
        loop {
            if body.is_some() && self.closed && self.sender.outstanding() == 0 {
                // Everything acknowledged and nothing more to come: end our half.
                body = None;
            }
            let wake = self
                .sender
                .poll_timeout()
                .map(|at| self.epoch + at)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let room = self.sender.has_room() && body.is_some();
            // Acknowledgements are not counted against a budget (there is none here).
            let mut uncounted = otlp_net::budget::Admission::default();
            tokio::select! {
                command = self.commands.recv(), if room && !self.closed => {
                    match command {
                        Some((request, reply)) => self.offer(request, reply),
                        None => self.closed = true,
                    }
                }
                frame = next_frame(&mut acks, &mut decoder, &mut trailers, &mut uncounted) => {
                    match frame {
                        Ok(Some(frame)) => {
                            let Ok(message) = decoder.message(frame, encoding.as_deref()) else {
                                return Ended::Broken;
                            };
                            let Ok(ack) = StreamAck::decode(message) else {
                                return Ended::Broken;
                            };
                            let event = self.sender.handle_ack(&ack, self.now());
                            self.apply(event);
                        }
                        Ok(None) => {
                            let trailers = trailers.take().unwrap_or_default();
                            if let Some(error) = error_from_trailers(&trailers) {
                                return ended_by(error);
                            }
                            let finished = self.sender.outstanding() == 0 && self.closed;
                            return if finished { Ended::Done } else { Ended::Broken };
                        }
                        Err(_) => return Ended::Broken,
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
            if let Some(writer) = &body
                && !self.write_due(writer).await
            {
                return Ended::Broken;
            }
        }
    }

    /// Unary calls from now on: outstanding batches first, then every new one.
    async fn unary_fallback(mut self) {
        self.stats.fell_back_to_unary.store(true, Ordering::Relaxed);
        self.sender.handle_disconnect();
        self.sender.handle_connect();
        let mut pending = Vec::new();
        while let Some(transmit) = self.sender.poll_transmit(Duration::MAX) {
            pending.push(transmit);
        }
        for transmit in pending {
            if let Some(reply) = self.replies.remove(&transmit.sequence) {
                self.spawn_unary(transmit.payload, reply);
            }
        }
        while let Some((request, reply)) = self.commands.recv().await {
            self.spawn_unary(request, reply);
        }
    }

    fn spawn_unary(&self, request: AnyExportRequest, reply: Reply) {
        let mut exporter = self.exporter.clone();
        tokio::spawn(async move {
            let result = exporter.call(request).await;
            let _ = reply.send(result);
        });
    }
}
