//! The intake: everything a receiver does with a request once its transport has read the
//! bytes, written once. A receiver hands it one message (an HTTP body, a gRPC message, a
//! stream batch) and its headers; the intake then
//!
//! 1. decompresses it within [`IntakeConfig::max_request_bytes`], holding both copies
//!    against the memory budget while they coexist;
//! 2. validates it (protobuf, the default: no decode) or decodes it ([`DecodeMode`]);
//! 3. applies the metadata policy (the configured headers travel with the request);
//! 4. attaches the request's memory reservation, grown to its decoded size;
//! 5. honours the service's readiness (`poll_ready`), so tower's load shedding and
//!    concurrency limits act on receivers, then calls it;
//! 6. counts what happened in [`IntakeStats`], the one shape every receiver reports.
//!
//! What stays in a transport is its framing, its own limits on the bytes as sent, and how
//! it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use otlp_codec::validate::DecodeMode;
use otlp_codec::{CodecSignal, OtlpCodec};
use otlp_compression::{Compression, CompressionSet};
use otlp_core::{
    AnyExportRequest, AnyExportService, ExportError, ExportOutcome, ExportRequest, Signal,
};
use otlp_model::stream::StreamAck;
use otlp_stream::envelope::Batch;

use crate::budget::{Admission, MemoryBudget};

/// The settings every receiver shares, in one shape (each receiver's configuration has
/// one, as `intake`); every field has a production default.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Largest message as sent, compressed or not: the transport refuses a larger one
    /// while reading it (from its declared length when it has one), before buffering it.
    /// Default 64 MiB.
    pub max_sent_bytes: usize,
    /// Largest message after decompression (too large beyond: 413, RESOURCE_EXHAUSTED, a
    /// too-large stream acknowledgement). Default 64 MiB, the OTLP recommendation.
    pub max_request_bytes: usize,
    /// Accepted compression algorithms (all advertised where the protocol advertises).
    pub compression: CompressionSet,
    /// Validate protobuf only (the default) or decode fully.
    pub decode: DecodeMode,
    /// Request headers copied into each `ExportRequest` for the service (tenant ids and
    /// the like; see [`crate::forward_metadata`]). Empty (the default): none. Batching
    /// merges requests and does not carry headers on.
    pub forward_headers: Vec<http::HeaderName>,
    /// The memory budget requests are admitted against, shared with other receivers and
    /// with the pipeline behind them: each request reserves its decoded-size estimate,
    /// and the reservation travels with it (queue, batching, retry) until its data has
    /// left the process. `None`: bounded only by the per-request and connection limits.
    /// A request that does not fit now is refused retryably with a hint (UNAVAILABLE +
    /// RetryInfo, 503 + Retry-After, a retryable stream acknowledgement); one larger than
    /// the whole budget as too large.
    pub memory_budget: Option<MemoryBudget>,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            max_sent_bytes: otlp_compression::DEFAULT_DECOMPRESSED_LIMIT,
            max_request_bytes: otlp_compression::DEFAULT_DECOMPRESSED_LIMIT,
            compression: CompressionSet::with_defaults(),
            decode: DecodeMode::Validate,
            forward_headers: Vec::new(),
            memory_budget: None,
        }
    }
}

impl IntakeConfig {
    /// Both size limits set to `bytes` (as sent and after decompression).
    pub fn with_max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_sent_bytes = bytes;
        self.max_request_bytes = bytes;
        self
    }
}

/// What every receiver counts, in one shape: its requests ([`IntakeStats`], reached through
/// this type too) and its streams ([`StreamStats`], zero on a receiver that has none).
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Requests (unary calls, HTTP requests, stream batches), items, refusals and failures.
    pub intake: IntakeStats,
    /// Streams: gRPC bidirectional calls, WebSocket connections.
    pub streams: StreamStats,
}

impl AsRef<IntakeStats> for ReceiverStats {
    fn as_ref(&self) -> &IntakeStats {
        &self.intake
    }
}

impl std::ops::Deref for ReceiverStats {
    type Target = IntakeStats;

    fn deref(&self) -> &IntakeStats {
        &self.intake
    }
}

/// The counters of a receiver's long-lived streams, whatever carries them.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Streams opened (a gRPC bidirectional call; a WebSocket connection that completed its
    /// handshake).
    pub opened: AtomicU64,
    /// Streams open now.
    pub open: AtomicU64,
    /// Stream openings refused (WebSocket handshakes refused for their path, origin,
    /// authentication or subprotocol).
    pub refused_opens: AtomicU64,
    /// Batches recognised as resends of accepted ones, acknowledged without processing.
    pub duplicate_batches: AtomicU64,
    /// Streams ended because no batch arrived within the stream idle timeout.
    pub idle: AtomicU64,
    /// Streams ended because the peer took no acknowledgement (or ping) within its timeout:
    /// it stopped reading. Its unacknowledged batches are its to resend.
    pub stalled: AtomicU64,
}

impl StreamStats {
    /// Counts a stream as opened and open until the returned guard is dropped.
    pub fn open_stream(&self) -> OpenStream<'_> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenStream(self)
    }
}

/// A stream counted as open in [`StreamStats::open`] while this lives.
#[derive(Debug)]
pub struct OpenStream<'a>(&'a StreamStats);

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The request counters every receiver keeps (see [`ReceiverStats`]).
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

impl AsRef<IntakeStats> for IntakeStats {
    fn as_ref(&self) -> &IntakeStats {
        self
    }
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

/// A receiver's service, its [`IntakeConfig`] and its stats (`St`: the receiver's own
/// stats type, which holds an [`IntakeStats`]).
///
/// ```
/// use otlp_codec::Protobuf;
/// use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, Traces};
/// use otlp_net::budget::MemoryBudget;
/// use otlp_net::intake::{Intake, IntakeConfig, IntakeStats};
/// use prost::Message;
/// use std::sync::{Arc, atomic::Ordering};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let service = tower::service_fn(|request: AnyExportRequest| async move {
///     Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
/// });
/// let budget = MemoryBudget::new(64 << 20);
/// let config = IntakeConfig { memory_budget: Some(budget.clone()), ..Default::default() };
/// let intake = Intake::new(service, config, Arc::new(IntakeStats::default()));
///
/// let body = otlp_testkit::realistic::traces(5, 1).encode_to_vec();
/// let mut admission = intake.admission();
/// let bytes = intake.decompress(body.into(), None, &mut admission)?;
/// let request = intake.request::<Traces>(bytes, &Protobuf::default(), &http::HeaderMap::new())?;
/// let outcome = intake.deliver(request.into(), admission).await?;
/// assert_eq!(outcome.accepted(), 5);
/// assert_eq!(intake.stats().accepted_items.load(Ordering::Relaxed), 5);
/// assert_eq!(budget.in_use(), 0); // released once the service dropped the request
///
/// let refused = intake.request::<Traces>(vec![0xff].into(), &Protobuf::default(), &http::HeaderMap::new());
/// assert!(refused.is_err());
/// assert_eq!(intake.stats().refused_requests.load(Ordering::Relaxed), 1);
/// # Ok::<(), ExportError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Intake<Svc, St = IntakeStats> {
    service: Svc,
    config: IntakeConfig,
    stats: Arc<St>,
}

impl<Svc, St> Intake<Svc, St>
where
    St: AsRef<IntakeStats>,
{
    /// An intake handing requests to `service`, counting in `stats`.
    pub fn new(service: Svc, config: IntakeConfig, stats: Arc<St>) -> Self {
        Self {
            service,
            config,
            stats,
        }
    }

    /// The settings.
    pub fn config(&self) -> &IntakeConfig {
        &self.config
    }

    /// The receiver's stats.
    pub fn stats(&self) -> &Arc<St> {
        &self.stats
    }

    fn counters(&self) -> &IntakeStats {
        (*self.stats).as_ref()
    }

    /// A request's reservation against the memory budget, to open before its first byte
    /// is read (the transport covers what it buffers, [`Admission::cover`]).
    pub fn admission(&self) -> Admission {
        Admission::new(self.config.memory_budget.as_ref())
    }

    /// Counts `error` as a refusal before the service, and returns it.
    pub fn refused(&self, error: ExportError) -> ExportError {
        self.counters().refused(error)
    }

    /// `raw` decompressed with `compression` (none: as it is) within the request limit;
    /// while both copies exist both are held against the budget.
    pub fn decompress(
        &self,
        raw: Bytes,
        compression: Option<&dyn Compression>,
        admission: &mut Admission,
    ) -> Result<Bytes, ExportError> {
        let raw_len = raw.len();
        let bytes =
            otlp_compression::decompress_received(raw, compression, self.config.max_request_bytes)
                .map_err(|e| self.refused(e.into()))?;
        if compression.is_some() {
            admission
                .cover(raw_len.saturating_add(bytes.len()))
                .map_err(|e| self.refused(e))?;
        }
        Ok(bytes)
    }

    /// The export request of signal `S` in `bytes` (decompressed), encoded with `codec`:
    /// protobuf validated or decoded as [`IntakeConfig::decode`] says, other codecs
    /// decoded; the configured `headers` copied into it. Malformed input is refused with
    /// INVALID_ARGUMENT (counted).
    pub fn request<S>(
        &self,
        bytes: Bytes,
        codec: &dyn OtlpCodec,
        headers: &http::HeaderMap,
    ) -> Result<ExportRequest<S>, ExportError>
    where
        S: CodecSignal,
    {
        let mut request = if codec.is_protobuf() {
            otlp_codec::validate::protobuf_request::<S>(self.config.decode, bytes)
                .map_err(|e| self.refused(e))?
        } else {
            let message = S::decode_request(codec, bytes).map_err(|e| {
                self.refused(ExportError::invalid_argument(format!(
                    "malformed {} request: {e}",
                    <S as Signal>::KIND
                )))
            })?;
            ExportRequest::new(message)
        };
        crate::forward_metadata(headers, &self.config.forward_headers, request.headers_mut());
        Ok(request)
    }

    /// The headers of `headers` the receiver forwards to the service
    /// ([`IntakeConfig::forward_headers`]): what a stream binding keeps of its handshake or
    /// call, for every batch of the stream ([`Intake::deliver_batch`]).
    pub fn metadata(&self, headers: &http::HeaderMap) -> http::HeaderMap {
        let mut metadata = http::HeaderMap::new();
        crate::forward_metadata(headers, &self.config.forward_headers, &mut metadata);
        metadata
    }

    /// The batch in a protobuf `StreamBatch` message (decompressed), validated or decoded
    /// as [`IntakeConfig::decode`] says. A failure names the batch's sequence when it can
    /// be read, so that the batch alone can be refused (counted).
    pub fn stream_batch(&self, bytes: Bytes) -> Result<Batch, (Option<u64>, ExportError)> {
        let sequence = otlp_stream::envelope::peek_sequence(&bytes);
        otlp_stream::envelope::decode_batch(self.config.decode, bytes)
            .map_err(|e| (sequence, self.refused(e)))
    }

    /// Hands one read and validated request to the service and counts the outcome.
    ///
    /// The request's reservation (`admission`) grows to its decoded size and rides with
    /// it until its data has left the process; a request the budget cannot hold is
    /// refused retryably before the service sees it (counted as refused). The service's
    /// `poll_ready` is awaited first.
    pub async fn deliver(
        &self,
        request: AnyExportRequest,
        admission: Admission,
    ) -> Result<ExportOutcome, ExportError>
    where
        Svc: AnyExportService + Clone,
    {
        let items = request.item_count();
        // A request the budget cannot hold never reaches the service: a refusal.
        let request = admission.admit(request).map_err(|e| self.refused(e))?;
        let mut service = self.service.clone();
        let result = async {
            std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
            service.call(request).await
        }
        .await;
        self.counters().count(items, &result);
        result
    }
}

impl<Svc> Intake<Svc, ReceiverStats>
where
    Svc: AnyExportService + Clone,
{
    /// Delivers one stream batch at most once per batch id while `dedup` remembers it
    /// ([`otlp_stream::acknowledge`]), with the stream's `metadata` ([`Intake::metadata`]
    /// of its handshake or call) attached, and returns its acknowledgement; a resend of an
    /// accepted batch is acknowledged without reaching the service, and counted in
    /// [`StreamStats::duplicate_batches`].
    pub async fn deliver_batch(
        &self,
        dedup: &std::sync::Mutex<otlp_stream::DedupWindow>,
        batch: Batch,
        admission: Admission,
        metadata: &http::HeaderMap,
    ) -> StreamAck {
        let (sequence, id, mut request) = batch;
        if !metadata.is_empty() {
            let headers = match &mut request {
                AnyExportRequest::Traces(r) => r.headers_mut(),
                AnyExportRequest::Metrics(r) => r.headers_mut(),
                AnyExportRequest::Logs(r) => r.headers_mut(),
            };
            headers.extend(metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let items = request.item_count();
        let export = self.deliver(request, admission);
        let (ack, duplicate) =
            otlp_stream::acknowledge(dedup, sequence, id.as_deref(), items, export).await;
        if duplicate {
            self.stats
                .streams
                .duplicate_batches
                .fetch_add(1, Ordering::Relaxed);
        }
        ack
    }
}
