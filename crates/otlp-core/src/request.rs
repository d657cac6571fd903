//! The request of the one export shape: a signal's export message (or its validated
//! protobuf encoding), its item count and the metadata that travels with it.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use otlp_model::SignalRequest;
use prost::Message;

use crate::error::ExportError;
use crate::signal::{Logs, Metrics, Signal, SignalKind, Traces};

/// A 16-byte idempotency key for a batch, stable across retries and hops, so that a
/// receiver can recognise a batch it has already accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(pub [u8; 16]);

/// One export: what an exporter sends and what a receiver hands to the service behind it.
///
/// Cloning is O(1): the payload is shared (an `Arc` around the message, or `Bytes`).
///
/// The payload is either the decoded message or its protobuf encoding. A receiver that has
/// validated the bytes it received can pass them on with [`ExportRequest::from_encoded`],
/// and an exporter that speaks protobuf then sends those same bytes without decoding or
/// re-encoding them ([`ExportRequest::to_protobuf`] is an O(1) clone in that case).
///
/// ```
/// use otlp_core::{ExportRequest, Traces};
/// use otlp_model::collector::trace::ExportTraceServiceRequest;
/// use otlp_model::trace::{ResourceSpans, ScopeSpans, Span};
///
/// let message = ExportTraceServiceRequest {
///     resource_spans: vec![ResourceSpans {
///         scope_spans: vec![ScopeSpans { spans: vec![Span::default(); 3], ..Default::default() }],
///         ..Default::default()
///     }],
/// };
/// let request = ExportRequest::<Traces>::new(message.clone());
/// assert_eq!(request.item_count(), 3);
///
/// // Through protobuf bytes and back.
/// let bytes = request.to_protobuf();
/// let received = ExportRequest::<Traces>::from_protobuf(bytes)?;
/// assert_eq!(received.into_message()?, message);
/// # Ok::<(), otlp_core::ExportError>(())
/// ```
pub struct ExportRequest<S: Signal> {
    payload: Payload<S>,
    items: usize,
    headers: http::HeaderMap,
    batch_id: Option<BatchId>,
    compression_allowed: bool,
    /// The protobuf size, computed at most once (sizing walks the whole message).
    encoded_len: OnceLock<usize>,
    /// What must live as long as the request does (memory reservations).
    holds: Holds,
}

/// Values kept alive with a request and its clones, and dropped with the last of them: a
/// receiver's memory reservation rides with the request through queue, batching and
/// retry, so the bytes stay counted until the data has left the process. Layers that
/// turn requests into new ones (batching, splitting) move the holds across.
#[derive(Clone, Default)]
pub struct Holds(Vec<Arc<dyn std::any::Any + Send + Sync>>);

impl Holds {
    /// Keeps `value` alive with these holds.
    pub fn push(&mut self, value: impl std::any::Any + Send + Sync) {
        self.0.push(Arc::new(value));
    }

    /// Takes over every value of `other`.
    pub fn append(&mut self, other: Holds) {
        self.0.extend(other.0);
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Holds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Holds({})", self.0.len())
    }
}

enum Payload<S: Signal> {
    /// Shared, so that cloning a request (as a retry layer must, once per attempt) is O(1).
    Message(Arc<S::Request>),
    Protobuf(Bytes),
    /// Protobuf bytes held as consecutive pieces (batched requests), joined only for a
    /// consumer that needs them in one buffer.
    Pieces {
        pieces: Arc<[Bytes]>,
        len: usize,
    },
}

impl<S: Signal> Clone for Payload<S> {
    fn clone(&self) -> Self {
        match self {
            Payload::Message(m) => Payload::Message(m.clone()),
            Payload::Protobuf(b) => Payload::Protobuf(b.clone()),
            Payload::Pieces { pieces, len } => Payload::Pieces {
                pieces: pieces.clone(),
                len: *len,
            },
        }
    }
}

impl<S: Signal> Clone for ExportRequest<S> {
    fn clone(&self) -> Self {
        Self {
            payload: self.payload.clone(),
            items: self.items,
            headers: self.headers.clone(),
            batch_id: self.batch_id,
            compression_allowed: self.compression_allowed,
            encoded_len: self.encoded_len.clone(),
            holds: self.holds.clone(),
        }
    }
}

impl<S: Signal> fmt::Debug for ExportRequest<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let payload = match &self.payload {
            Payload::Message(_) => "message",
            Payload::Protobuf(_) => "protobuf",
            Payload::Pieces { .. } => "protobuf pieces",
        };
        f.debug_struct("ExportRequest")
            .field("signal", &S::KIND)
            .field("items", &self.items)
            .field("payload", &payload)
            .field("headers", &self.headers)
            .field("batch_id", &self.batch_id)
            .field("compression_allowed", &self.compression_allowed)
            .finish()
    }
}

impl<S: Signal> ExportRequest<S> {
    /// Wraps a decoded message, counting its items.
    pub fn new(message: S::Request) -> Self {
        Self {
            items: message.item_count(),
            payload: Payload::Message(Arc::new(message)),
            headers: http::HeaderMap::new(),
            batch_id: None,
            compression_allowed: true,
            encoded_len: OnceLock::new(),
            holds: Holds::default(),
        }
    }

    /// Decodes protobuf bytes into a request; malformed input is an
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) error.
    pub fn from_protobuf(bytes: Bytes) -> Result<Self, ExportError> {
        let message = S::Request::decode(bytes).map_err(|e| {
            ExportError::invalid_argument(format!("malformed {} request", S::KIND)).with_source(e)
        })?;
        Ok(Self::new(message))
    }

    /// Wraps protobuf bytes that the caller has already validated as a well-formed request
    /// of `items` items, without decoding them. If the bytes turn out to be malformed after
    /// all, [`ExportRequest::message`] reports it.
    pub fn from_encoded(bytes: Bytes, items: usize) -> Self {
        Self {
            payload: Payload::Protobuf(bytes),
            items,
            headers: http::HeaderMap::new(),
            batch_id: None,
            compression_allowed: true,
            encoded_len: OnceLock::new(),
            holds: Holds::default(),
        }
    }

    /// [`ExportRequest::from_encoded`] for bytes held as consecutive pieces (batched
    /// requests, joined as written): a transport that can write them one after the other
    /// takes them with [`ExportRequest::protobuf_pieces`], without joining them.
    pub fn from_encoded_pieces(pieces: Vec<Bytes>, items: usize) -> Self {
        let mut request = Self::from_encoded(Bytes::new(), items);
        match <[Bytes; 1]>::try_from(pieces) {
            Ok([bytes]) => request.payload = Payload::Protobuf(bytes),
            Err(pieces) => {
                let len = pieces.iter().map(Bytes::len).sum();
                request.payload = Payload::Pieces {
                    pieces: pieces.into(),
                    len,
                };
            }
        }
        request
    }

    /// Spans, data points or log records in the request.
    pub fn item_count(&self) -> usize {
        self.items
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The signal.
    pub fn signal(&self) -> SignalKind {
        S::KIND
    }

    /// The decoded message, decoding the protobuf payload if that is what the request holds.
    pub fn message(&self) -> Result<Cow<'_, S::Request>, ExportError> {
        match &self.payload {
            Payload::Message(m) => Ok(Cow::Borrowed(m.as_ref())),
            Payload::Protobuf(bytes) => decode::<S>(bytes.clone()).map(Cow::Owned),
            Payload::Pieces { .. } => decode::<S>(self.to_protobuf()).map(Cow::Owned),
        }
    }

    /// The decoded message, by value (a copy only if clones of this request are alive).
    pub fn into_message(self) -> Result<S::Request, ExportError> {
        match self.payload {
            Payload::Message(m) => {
                Ok(Arc::try_unwrap(m).unwrap_or_else(|shared| (*shared).clone()))
            }
            Payload::Protobuf(bytes) => decode::<S>(bytes),
            Payload::Pieces { ref pieces, .. } => decode::<S>(Bytes::from(pieces.concat())),
        }
    }

    /// The protobuf encoding: the held bytes (an O(1) clone), or a fresh encoding, or the
    /// held pieces joined (see [`ExportRequest::protobuf_pieces`]).
    pub fn to_protobuf(&self) -> Bytes {
        match &self.payload {
            Payload::Message(m) => {
                // The size is known (and remembered), so the buffer is allocated once.
                let mut buffer = Vec::with_capacity(self.encoded_len());
                m.encode_raw(&mut buffer);
                Bytes::from(buffer)
            }
            Payload::Protobuf(bytes) => bytes.clone(),
            Payload::Pieces { pieces, .. } => Bytes::from(pieces.concat()),
        }
    }

    /// The protobuf encoding as consecutive pieces, none of them copied: one for a request
    /// held whole or as a message, several for one built from batched requests.
    pub fn protobuf_pieces(&self) -> Vec<Bytes> {
        match &self.payload {
            Payload::Pieces { pieces, .. } => pieces.to_vec(),
            _ => vec![self.to_protobuf()],
        }
    }

    /// The size of the protobuf encoding in bytes (computed once, then remembered).
    pub fn encoded_len(&self) -> usize {
        match &self.payload {
            Payload::Message(m) => *self.encoded_len.get_or_init(|| m.encoded_len()),
            Payload::Protobuf(bytes) => bytes.len(),
            Payload::Pieces { len, .. } => *len,
        }
    }

    /// Whether the payload is held encoded (not yet decoded).
    pub fn is_encoded(&self) -> bool {
        matches!(self.payload, Payload::Protobuf(_) | Payload::Pieces { .. })
    }

    /// Headers (HTTP headers or gRPC metadata) that travel with the request, for example
    /// those a relay forwards upstream.
    pub fn headers(&self) -> &http::HeaderMap {
        &self.headers
    }

    /// Mutable access to the headers.
    pub fn headers_mut(&mut self) -> &mut http::HeaderMap {
        &mut self.headers
    }

    /// The batch's idempotency key, if it has one.
    pub fn batch_id(&self) -> Option<BatchId> {
        self.batch_id
    }

    /// Sets the batch's idempotency key.
    pub fn with_batch_id(mut self, id: BatchId) -> Self {
        self.batch_id = Some(id);
        self
    }

    /// Whether the exporter may compress this request. Exporters must honour `false` by
    /// sending it uncompressed: the retry layer sets it after a peer refused the encoding
    /// (HTTP 415, gRPC UNIMPLEMENTED), and keeps setting it for later requests.
    pub fn compression_allowed(&self) -> bool {
        self.compression_allowed
    }

    /// Keeps `value` alive as long as this request or a clone of it (see [`Holds`]).
    pub fn hold(mut self, value: impl std::any::Any + Send + Sync) -> Self {
        self.holds.push(value);
        self
    }

    /// Takes the request's holds (to move them to the requests made from it).
    pub fn take_holds(&mut self) -> Holds {
        std::mem::take(&mut self.holds)
    }

    /// Adds `holds` to the request's.
    pub fn with_holds(mut self, holds: Holds) -> Self {
        self.holds.append(holds);
        self
    }

    /// An estimate of the memory the request takes once decoded, which is what a layer
    /// that decodes it (batching) will hold: four times the encoding (owned strings,
    /// attribute vectors and their headers, the encoded bytes that `bytes` fields keep
    /// alive) plus twice the fixed size of each item's struct (a vector decoded item by
    /// item grows to up to twice its length). Measured with a counting
    /// allocator (`otlp-core/tests/decoded_size.rs`), realistic spans take about 4.2 times
    /// their encoding once decoded; two million empty spans are a 4 MB encoding and
    /// hundreds of MiB decoded, and this says so.
    pub fn decoded_size_estimate(&self) -> usize {
        self.encoded_len()
            .saturating_mul(4)
            .saturating_add(self.items.saturating_mul(2 * S::ITEM_BYTES))
    }

    /// Marks the request to be sent uncompressed.
    pub fn without_compression(mut self) -> Self {
        self.compression_allowed = false;
        self
    }

    /// Splits into requests of at most `max_items` items (decoding if needed). Each part
    /// keeps the headers; parts get no batch id, since they are new batches.
    pub fn split(self, max_items: usize) -> Result<Vec<Self>, ExportError> {
        if self.items <= max_items.max(1) {
            return Ok(vec![self]);
        }
        let headers = self.headers.clone();
        let compression_allowed = self.compression_allowed;
        let holds = self.holds.clone();
        let parts = self.into_message()?.split(max_items);
        Ok(parts
            .into_iter()
            .map(|part| {
                let mut request = Self::new(part);
                request.headers = headers.clone();
                request.compression_allowed = compression_allowed;
                request.holds = holds.clone();
                request
            })
            .collect())
    }
}

fn decode<S: Signal>(bytes: Bytes) -> Result<S::Request, ExportError> {
    S::Request::decode(bytes).map_err(|e| {
        ExportError::invalid_argument(format!("malformed {} request", S::KIND)).with_source(e)
    })
}

/// An export request of any signal, for receivers that route all three through one service.
#[derive(Debug, Clone)]
pub enum AnyExportRequest {
    /// A trace export.
    Traces(ExportRequest<Traces>),
    /// A metrics export.
    Metrics(ExportRequest<Metrics>),
    /// A logs export.
    Logs(ExportRequest<Logs>),
}

impl AnyExportRequest {
    /// The signal.
    pub fn signal(&self) -> SignalKind {
        match self {
            AnyExportRequest::Traces(_) => SignalKind::Traces,
            AnyExportRequest::Metrics(_) => SignalKind::Metrics,
            AnyExportRequest::Logs(_) => SignalKind::Logs,
        }
    }

    /// Items in the request.
    pub fn item_count(&self) -> usize {
        match self {
            AnyExportRequest::Traces(r) => r.item_count(),
            AnyExportRequest::Metrics(r) => r.item_count(),
            AnyExportRequest::Logs(r) => r.item_count(),
        }
    }

    /// The size of the protobuf encoding in bytes (see [`ExportRequest::encoded_len`]).
    pub fn encoded_len(&self) -> usize {
        match self {
            AnyExportRequest::Traces(r) => r.encoded_len(),
            AnyExportRequest::Metrics(r) => r.encoded_len(),
            AnyExportRequest::Logs(r) => r.encoded_len(),
        }
    }

    /// See [`ExportRequest::decoded_size_estimate`].
    pub fn decoded_size_estimate(&self) -> usize {
        match self {
            AnyExportRequest::Traces(r) => r.decoded_size_estimate(),
            AnyExportRequest::Metrics(r) => r.decoded_size_estimate(),
            AnyExportRequest::Logs(r) => r.decoded_size_estimate(),
        }
    }

    /// See [`ExportRequest::hold`].
    pub fn hold(self, value: impl std::any::Any + Send + Sync) -> Self {
        match self {
            AnyExportRequest::Traces(r) => AnyExportRequest::Traces(r.hold(value)),
            AnyExportRequest::Metrics(r) => AnyExportRequest::Metrics(r.hold(value)),
            AnyExportRequest::Logs(r) => AnyExportRequest::Logs(r.hold(value)),
        }
    }
}

impl From<ExportRequest<Traces>> for AnyExportRequest {
    fn from(request: ExportRequest<Traces>) -> Self {
        AnyExportRequest::Traces(request)
    }
}

impl From<ExportRequest<Metrics>> for AnyExportRequest {
    fn from(request: ExportRequest<Metrics>) -> Self {
        AnyExportRequest::Metrics(request)
    }
}

impl From<ExportRequest<Logs>> for AnyExportRequest {
    fn from(request: ExportRequest<Logs>) -> Self {
        AnyExportRequest::Logs(request)
    }
}
