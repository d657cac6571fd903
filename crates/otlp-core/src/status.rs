//! The OTLP specification's status tables, in both directions, for gRPC and HTTP.
//!
//! Exporters turn what a peer answered into an [`ExportError`] with
//! [`ExportError::from_grpc`], [`ExportError::from_http`] or
//! [`ExportError::from_rpc_status`]; receivers turn an [`ExportError`] into what they answer
//! with [`ExportError::grpc_code`], [`ExportError::http_status`] and
//! [`ExportError::to_rpc_status`].

use std::fmt;
use std::time::Duration;

use otlp_model::rpc::{self, RETRY_INFO_TYPE_URL, RetryInfo};
use prost::Message;

use crate::error::{ErrorKind, ExportError, PeerStatus, RetryClass};

/// The gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // the names are the gRPC specification's
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl GrpcCode {
    /// Every code, in numeric order.
    pub const ALL: [GrpcCode; 17] = [
        GrpcCode::Ok,
        GrpcCode::Cancelled,
        GrpcCode::Unknown,
        GrpcCode::InvalidArgument,
        GrpcCode::DeadlineExceeded,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unimplemented,
        GrpcCode::Internal,
        GrpcCode::Unavailable,
        GrpcCode::DataLoss,
        GrpcCode::Unauthenticated,
    ];

    /// The code for a number; unknown numbers are `Unknown`, as gRPC specifies.
    pub fn from_i32(code: i32) -> GrpcCode {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or(GrpcCode::Unknown)
    }

    /// The code's number.
    pub const fn as_i32(self) -> i32 {
        self as i32
    }

    /// The canonical upper-case name, e.g. `RESOURCE_EXHAUSTED`.
    pub const fn name(self) -> &'static str {
        match self {
            GrpcCode::Ok => "OK",
            GrpcCode::Cancelled => "CANCELLED",
            GrpcCode::Unknown => "UNKNOWN",
            GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
            GrpcCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            GrpcCode::NotFound => "NOT_FOUND",
            GrpcCode::AlreadyExists => "ALREADY_EXISTS",
            GrpcCode::PermissionDenied => "PERMISSION_DENIED",
            GrpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            GrpcCode::FailedPrecondition => "FAILED_PRECONDITION",
            GrpcCode::Aborted => "ABORTED",
            GrpcCode::OutOfRange => "OUT_OF_RANGE",
            GrpcCode::Unimplemented => "UNIMPLEMENTED",
            GrpcCode::Internal => "INTERNAL",
            GrpcCode::Unavailable => "UNAVAILABLE",
            GrpcCode::DataLoss => "DATA_LOSS",
            GrpcCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The OTLP/gRPC retry table: whether a client may retry after this code. For
    /// `RESOURCE_EXHAUSTED` the answer depends on RetryInfo, so `has_retry_info` is asked.
    pub const fn is_retryable(self, has_retry_info: bool) -> bool {
        match self {
            GrpcCode::Cancelled
            | GrpcCode::DeadlineExceeded
            | GrpcCode::Aborted
            | GrpcCode::OutOfRange
            | GrpcCode::Unavailable
            | GrpcCode::DataLoss => true,
            GrpcCode::ResourceExhausted => has_retry_info,
            GrpcCode::Ok
            | GrpcCode::Unknown
            | GrpcCode::InvalidArgument
            | GrpcCode::NotFound
            | GrpcCode::AlreadyExists
            | GrpcCode::PermissionDenied
            | GrpcCode::FailedPrecondition
            | GrpcCode::Unimplemented
            | GrpcCode::Internal
            | GrpcCode::Unauthenticated => false,
        }
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The OTLP/HTTP retry table: 429, 502, 503 and 504 may be retried; every other 4xx and
/// 5xx must not be.
pub const fn http_status_is_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

impl ExportError {
    /// The error a client records for a gRPC status, classified by the OTLP/gRPC table.
    ///
    /// `retry_info` is the delay of a `google.rpc.RetryInfo` detail, if the status had one.
    /// A retryable code with RetryInfo is throttled; `RESOURCE_EXHAUSTED` is retryable only
    /// with RetryInfo. `OK` is not an error; it maps to `Unknown`, permanent.
    pub fn from_grpc(
        code: GrpcCode,
        message: impl Into<std::borrow::Cow<'static, str>>,
        retry_info: Option<Duration>,
    ) -> ExportError {
        let kind = match code {
            GrpcCode::Cancelled => ErrorKind::Cancelled,
            GrpcCode::InvalidArgument => ErrorKind::InvalidArgument,
            GrpcCode::DeadlineExceeded => ErrorKind::Timeout,
            GrpcCode::NotFound => ErrorKind::NotFound,
            GrpcCode::AlreadyExists => ErrorKind::AlreadyExists,
            GrpcCode::PermissionDenied => ErrorKind::PermissionDenied,
            GrpcCode::ResourceExhausted if retry_info.is_some() => ErrorKind::Throttled,
            GrpcCode::ResourceExhausted => ErrorKind::TooLarge,
            GrpcCode::FailedPrecondition => ErrorKind::FailedPrecondition,
            GrpcCode::Aborted => ErrorKind::Aborted,
            GrpcCode::OutOfRange => ErrorKind::OutOfRange,
            GrpcCode::Unimplemented => ErrorKind::Unimplemented,
            GrpcCode::Internal => ErrorKind::Internal,
            GrpcCode::Unavailable => ErrorKind::Unavailable,
            GrpcCode::DataLoss => ErrorKind::DataLoss,
            GrpcCode::Unauthenticated => ErrorKind::Unauthenticated,
            GrpcCode::Ok | GrpcCode::Unknown => ErrorKind::Unknown,
        };
        let retry = match (code.is_retryable(retry_info.is_some()), retry_info) {
            (false, _) => RetryClass::Permanent,
            (true, Some(delay)) => RetryClass::Throttled(delay),
            (true, None) => RetryClass::Retryable,
        };
        ExportError::new(kind, message)
            .with_retry_class(retry)
            .with_peer_status(PeerStatus::Grpc(code))
    }

    /// The error a client records for an HTTP error status, classified by the OTLP/HTTP
    /// table. `retry_after` is the parsed `Retry-After` header; it makes a retryable status
    /// throttled and is ignored on the others.
    pub fn from_http(
        status: u16,
        retry_after: Option<Duration>,
        message: impl Into<std::borrow::Cow<'static, str>>,
    ) -> ExportError {
        let kind = match status {
            400 => ErrorKind::InvalidArgument,
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            405 | 501 => ErrorKind::Unimplemented,
            408 | 504 => ErrorKind::Timeout,
            413 => ErrorKind::TooLarge,
            415 => ErrorKind::UnsupportedMediaType,
            429 => ErrorKind::Throttled,
            500 => ErrorKind::Internal,
            502 | 503 => ErrorKind::Unavailable,
            _ => ErrorKind::Unknown,
        };
        let retry = match (http_status_is_retryable(status), retry_after) {
            (false, _) => RetryClass::Permanent,
            (true, Some(delay)) => RetryClass::Throttled(delay),
            (true, None) => RetryClass::Retryable,
        };
        ExportError::new(kind, message)
            .with_retry_class(retry)
            .with_peer_status(PeerStatus::Http(status))
    }

    /// The error a client records for a `google.rpc.Status` (the body of an OTLP/HTTP
    /// error, or the details of a gRPC status), reading its RetryInfo detail if present.
    /// Over HTTP the status code decides retryability, so use
    /// [`ExportError::from_http`] there with [`retry_info_of`] for the delay.
    pub fn from_rpc_status(status: &rpc::Status) -> ExportError {
        ExportError::from_grpc(
            GrpcCode::from_i32(status.code),
            status.message.clone(),
            retry_info_of(status),
        )
    }

    /// The gRPC code a receiver answers with, and the RetryInfo delay to attach.
    ///
    /// Pushback (`Unavailable` or `Throttled` that is retryable) is `UNAVAILABLE` with
    /// RetryInfo when a delay is known, as the OTLP/gRPC throttling section says; a size
    /// refusal is `RESOURCE_EXHAUSTED` without RetryInfo, so clients do not retry it.
    pub fn grpc_code(&self) -> (GrpcCode, Option<Duration>) {
        let code = match self.kind() {
            ErrorKind::Unavailable | ErrorKind::Throttled => GrpcCode::Unavailable,
            ErrorKind::Timeout => GrpcCode::DeadlineExceeded,
            ErrorKind::Cancelled => GrpcCode::Cancelled,
            ErrorKind::Aborted => GrpcCode::Aborted,
            ErrorKind::OutOfRange => GrpcCode::OutOfRange,
            ErrorKind::DataLoss => GrpcCode::DataLoss,
            ErrorKind::InvalidArgument | ErrorKind::Codec => GrpcCode::InvalidArgument,
            ErrorKind::TooLarge => GrpcCode::ResourceExhausted,
            ErrorKind::UnsupportedMediaType | ErrorKind::Unimplemented => GrpcCode::Unimplemented,
            ErrorKind::Unauthenticated => GrpcCode::Unauthenticated,
            ErrorKind::PermissionDenied => GrpcCode::PermissionDenied,
            ErrorKind::NotFound => GrpcCode::NotFound,
            ErrorKind::AlreadyExists => GrpcCode::AlreadyExists,
            ErrorKind::FailedPrecondition => GrpcCode::FailedPrecondition,
            ErrorKind::Internal => GrpcCode::Internal,
            ErrorKind::Unknown => GrpcCode::Unknown,
        };
        // RetryInfo on RESOURCE_EXHAUSTED would tell clients to retry a size refusal.
        let delay = match code {
            GrpcCode::ResourceExhausted => None,
            _ => self.retry_class().delay_hint(),
        };
        (code, delay)
    }

    /// The HTTP status a receiver answers with, and the `Retry-After` delay to send.
    ///
    /// Pushback is 503 (or 429 when the kind is `Throttled`) with `Retry-After` when a
    /// delay is known; malformed data is 400; too large is 413; an unsupported content
    /// type or encoding is 415.
    pub fn http_status(&self) -> (u16, Option<Duration>) {
        let status = match self.kind() {
            ErrorKind::Unavailable => 503,
            ErrorKind::Throttled => 429,
            ErrorKind::Timeout => 504,
            ErrorKind::InvalidArgument | ErrorKind::Codec | ErrorKind::OutOfRange => 400,
            ErrorKind::TooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Unimplemented => 501,
            ErrorKind::AlreadyExists | ErrorKind::Aborted => 409,
            ErrorKind::FailedPrecondition => 412,
            // 499 is the de-facto "client closed request"; not retryable over HTTP, which
            // is right: the client went away.
            ErrorKind::Cancelled => 499,
            ErrorKind::DataLoss | ErrorKind::Internal | ErrorKind::Unknown => 500,
        };
        let delay = if http_status_is_retryable(status) {
            self.retry_class().delay_hint()
        } else {
            None
        };
        (status, delay)
    }

    /// The `google.rpc.Status` a receiver sends: the gRPC code of
    /// [`ExportError::grpc_code`], the message, and RetryInfo when there is a delay.
    pub fn to_rpc_status(&self) -> rpc::Status {
        let (code, delay) = self.grpc_code();
        let details = delay
            .map(|delay| rpc::Any {
                type_url: RETRY_INFO_TYPE_URL.to_string(),
                value: RetryInfo {
                    retry_delay: Some(duration_to_proto(delay)),
                }
                .encode_to_vec(),
            })
            .into_iter()
            .collect();
        rpc::Status {
            code: code.as_i32(),
            message: self.to_string(),
            details,
        }
    }
}

/// The delay of the first `google.rpc.RetryInfo` in a status's details, if any. A
/// malformed or negative delay counts as absent.
pub fn retry_info_of(status: &rpc::Status) -> Option<Duration> {
    status
        .details
        .iter()
        .filter(|any| any.type_url == RETRY_INFO_TYPE_URL)
        .find_map(|any| RetryInfo::decode(any.value.as_slice()).ok())
        .and_then(|info| info.retry_delay)
        .and_then(duration_from_proto)
}

/// Converts a protobuf duration; `None` when negative or out of range.
pub fn duration_from_proto(duration: rpc::Duration) -> Option<Duration> {
    let seconds = u64::try_from(duration.seconds).ok()?;
    let nanos = u32::try_from(duration.nanos).ok()?;
    (nanos < 1_000_000_000).then(|| Duration::new(seconds, nanos))
}

/// Converts to a protobuf duration, saturating at `i64::MAX` seconds.
pub fn duration_to_proto(duration: Duration) -> rpc::Duration {
    rpc::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}
