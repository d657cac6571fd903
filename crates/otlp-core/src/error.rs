//! The one error type of an export, and the retry class every value of it carries.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::status::GrpcCode;

/// What a retry policy may do with a failed export. Decided once, where the error is made
/// (from the transport's status, by the OTLP specification's tables), so that policies
/// never look at transport details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryClass {
    /// Transient: retry with exponential backoff.
    Retryable,
    /// The peer asked to wait at least this long before retrying (gRPC `RetryInfo`,
    /// HTTP `Retry-After`).
    Throttled(Duration),
    /// Retrying the same data cannot succeed: drop it and count the drop.
    Permanent,
}

impl RetryClass {
    /// Whether a retry is allowed at all.
    pub const fn is_retryable(self) -> bool {
        !matches!(self, RetryClass::Permanent)
    }

    /// The peer's requested delay, if it gave one.
    pub const fn delay_hint(self) -> Option<Duration> {
        match self {
            RetryClass::Throttled(delay) => Some(delay),
            _ => None,
        }
    }
}

/// What went wrong, independent of the transport that reported it.
///
/// `#[non_exhaustive]`: new kinds may be added; match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The peer could not be reached or is temporarily unable to serve (connection
    /// refused or reset, HTTP 502/503, gRPC UNAVAILABLE).
    Unavailable,
    /// The peer is overloaded or the caller is over its rate (HTTP 429, gRPC
    /// RESOURCE_EXHAUSTED with RetryInfo), or a pipeline stage pushes back.
    Throttled,
    /// A deadline passed (HTTP 504 or 408, gRPC DEADLINE_EXCEEDED, or a local timeout).
    Timeout,
    /// The call was cancelled (gRPC CANCELLED).
    Cancelled,
    /// The call was aborted by the peer, e.g. a concurrency conflict (gRPC ABORTED).
    Aborted,
    /// gRPC OUT_OF_RANGE.
    OutOfRange,
    /// Unrecoverable data loss on the peer (gRPC DATA_LOSS).
    DataLoss,
    /// The request is malformed or invalid (HTTP 400, gRPC INVALID_ARGUMENT).
    InvalidArgument,
    /// The request is larger than a limit, ours or the peer's (HTTP 413, gRPC
    /// RESOURCE_EXHAUSTED without RetryInfo, which is what gRPC reports for message size).
    TooLarge,
    /// The content type or encoding is not supported (HTTP 415; gRPC UNIMPLEMENTED for an
    /// unknown `grpc-encoding`).
    UnsupportedMediaType,
    /// Missing or invalid credentials (HTTP 401, gRPC UNAUTHENTICATED).
    Unauthenticated,
    /// Credentials lack permission (HTTP 403, gRPC PERMISSION_DENIED).
    PermissionDenied,
    /// The path or service does not exist (HTTP 404, gRPC NOT_FOUND).
    NotFound,
    /// The method is not implemented (HTTP 405/501, gRPC UNIMPLEMENTED).
    Unimplemented,
    /// gRPC ALREADY_EXISTS.
    AlreadyExists,
    /// gRPC FAILED_PRECONDITION.
    FailedPrecondition,
    /// An internal error on the peer or here (HTTP 500, gRPC INTERNAL).
    Internal,
    /// Encoding or decoding a message failed locally.
    Codec,
    /// Anything else (HTTP statuses without OTLP meaning, gRPC UNKNOWN).
    Unknown,
}

impl ErrorKind {
    /// A short stable name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Aborted => "aborted",
            ErrorKind::OutOfRange => "out_of_range",
            ErrorKind::DataLoss => "data_loss",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unimplemented => "unimplemented",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::Internal => "internal",
            ErrorKind::Codec => "codec",
            ErrorKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The status a peer actually answered with, kept for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerStatus {
    /// A gRPC status code.
    Grpc(GrpcCode),
    /// An HTTP status code.
    Http(u16),
}

impl fmt::Display for PeerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerStatus::Grpc(code) => write!(f, "gRPC {code}"),
            PeerStatus::Http(status) => write!(f, "HTTP {status}"),
        }
    }
}

/// A failed export (or a refused receive), with everything a policy needs to decide what
/// to do next: its [`ErrorKind`], its [`RetryClass`], the peer's status if there was one,
/// a message and an optional source error.
///
/// ```
/// use std::time::Duration;
/// use otlp_core::{ErrorKind, ExportError, GrpcCode, RetryClass};
///
/// // An exporter maps what the peer said, once, by the OTLP tables...
/// let error = ExportError::from_grpc(GrpcCode::Unavailable, "overloaded", Some(Duration::from_secs(5)));
/// // ...and a retry policy only ever looks at the class.
/// assert_eq!(error.retry_class(), RetryClass::Throttled(Duration::from_secs(5)));
/// assert_eq!(error.kind(), ErrorKind::Unavailable);
///
/// let error = ExportError::from_http(400, None, "bad protobuf");
/// assert_eq!(error.retry_class(), RetryClass::Permanent);
/// ```
pub struct ExportError {
    kind: ErrorKind,
    retry: RetryClass,
    peer: Option<PeerStatus>,
    message: Cow<'static, str>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl ExportError {
    /// An error of `kind` with the retry class the kind implies when no peer status is
    /// involved (see [`ExportError::default_retry_class`]).
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            retry: Self::default_retry_class(kind),
            peer: None,
            message: message.into(),
            source: None,
        }
    }

    /// The retry class of a locally made error of `kind`: transient conditions
    /// (unavailable, throttled, timeout, cancelled, aborted, and the other codes the OTLP/gRPC
    /// table calls retryable: out of range, data loss) are retryable; everything else,
    /// including our own size limits and codec failures, is permanent, because sending the
    /// same bytes again cannot succeed.
    pub const fn default_retry_class(kind: ErrorKind) -> RetryClass {
        match kind {
            ErrorKind::Unavailable
            | ErrorKind::Throttled
            | ErrorKind::Timeout
            | ErrorKind::Cancelled
            | ErrorKind::Aborted
            | ErrorKind::OutOfRange
            | ErrorKind::DataLoss => RetryClass::Retryable,
            _ => RetryClass::Permanent,
        }
    }

    /// The peer is unreachable or temporarily unable to serve: retryable.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// A pipeline stage or peer pushes back and asks to wait `delay`.
    pub fn throttled(message: impl Into<Cow<'static, str>>, delay: Duration) -> Self {
        Self::new(ErrorKind::Throttled, message).with_retry_class(RetryClass::Throttled(delay))
    }

    /// A deadline passed: retryable.
    pub fn timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// The request is malformed: permanent.
    pub fn invalid_argument(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// The request exceeds a size limit: permanent (splitting, not resending, can help).
    pub fn too_large(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::TooLarge, message)
    }

    /// Encoding or decoding failed locally: permanent.
    pub fn codec(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Codec, message)
    }

    /// An internal failure: permanent.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Replaces the retry class (for example, a throttling hint learnt later).
    pub fn with_retry_class(mut self, retry: RetryClass) -> Self {
        self.retry = retry;
        self
    }

    /// Makes the error throttled with `delay`, keeping its kind. On a permanent error this
    /// does nothing: a hint does not make a permanent failure retryable.
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        if self.retry != RetryClass::Permanent {
            self.retry = RetryClass::Throttled(delay);
        }
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Records the status the peer answered with.
    pub fn with_peer_status(mut self, peer: PeerStatus) -> Self {
        self.peer = Some(peer);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What a retry policy may do.
    pub fn retry_class(&self) -> RetryClass {
        self.retry
    }

    /// Whether a retry is allowed.
    pub fn is_retryable(&self) -> bool {
        self.retry.is_retryable()
    }

    /// The status the peer answered with, if the error came from a peer.
    pub fn peer_status(&self) -> Option<PeerStatus> {
        self.peer
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ExportError");
        debug
            .field("kind", &self.kind)
            .field("retry", &self.retry)
            .field("peer", &self.peer)
            .field("message", &self.message);
        if let Some(source) = &self.source {
            debug.field("source", source);
        }
        debug.finish()
    }
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(peer) = self.peer {
            write!(f, " ({peer})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for ExportError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}
