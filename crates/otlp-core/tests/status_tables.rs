//! The OTLP status tables, checked row by row against the specification's text, and the
//! receiver -> client round trip checked as a property.

use std::time::Duration;

use otlp_core::{ErrorKind, ExportError, GrpcCode, RetryClass, retry_info_of};
use proptest::prelude::*;

/// The OTLP/gRPC table, as written in the specification ("Only if the server can recover"
/// for RESOURCE_EXHAUSTED is checked separately).
const GRPC_TABLE: &[(GrpcCode, bool)] = &[
    (GrpcCode::Cancelled, true),
    (GrpcCode::Unknown, false),
    (GrpcCode::InvalidArgument, false),
    (GrpcCode::DeadlineExceeded, true),
    (GrpcCode::NotFound, false),
    (GrpcCode::AlreadyExists, false),
    (GrpcCode::PermissionDenied, false),
    (GrpcCode::Unauthenticated, false),
    (GrpcCode::FailedPrecondition, false),
    (GrpcCode::Aborted, true),
    (GrpcCode::OutOfRange, true),
    (GrpcCode::Unimplemented, false),
    (GrpcCode::Internal, false),
    (GrpcCode::Unavailable, true),
    (GrpcCode::DataLoss, true),
];

#[test]
fn grpc_codes_are_classified_as_the_specification_says() {
    for &(code, retryable) in GRPC_TABLE {
        let error = ExportError::from_grpc(code, "x", None);
        let expected = if retryable {
            RetryClass::Retryable
        } else {
            RetryClass::Permanent
        };
        assert_eq!(error.retry_class(), expected, "{code}");

        // RetryInfo turns a retryable code into a throttled one, and never makes a
        // permanent code retryable.
        let hinted = ExportError::from_grpc(code, "x", Some(Duration::from_secs(3)));
        let expected = if retryable {
            RetryClass::Throttled(Duration::from_secs(3))
        } else {
            RetryClass::Permanent
        };
        assert_eq!(hinted.retry_class(), expected, "{code} with RetryInfo");
    }
}

#[test]
fn resource_exhausted_is_retryable_only_with_retry_info() {
    let plain = ExportError::from_grpc(GrpcCode::ResourceExhausted, "too big", None);
    assert_eq!(plain.retry_class(), RetryClass::Permanent);
    assert_eq!(plain.kind(), ErrorKind::TooLarge);

    let hinted = ExportError::from_grpc(
        GrpcCode::ResourceExhausted,
        "slow down",
        Some(Duration::from_millis(1500)),
    );
    assert_eq!(
        hinted.retry_class(),
        RetryClass::Throttled(Duration::from_millis(1500))
    );
    assert_eq!(hinted.kind(), ErrorKind::Throttled);
}

#[test]
fn http_statuses_are_classified_as_the_specification_says() {
    for status in 400u16..=599 {
        let retryable = matches!(status, 429 | 502 | 503 | 504);
        let error = ExportError::from_http(status, None, "x");
        assert_eq!(error.is_retryable(), retryable, "HTTP {status}");
        let hinted = ExportError::from_http(status, Some(Duration::from_secs(7)), "x");
        let expected = if retryable {
            RetryClass::Throttled(Duration::from_secs(7))
        } else {
            RetryClass::Permanent
        };
        assert_eq!(
            hinted.retry_class(),
            expected,
            "HTTP {status} with Retry-After"
        );
    }
    assert_eq!(
        ExportError::from_http(400, None, "").kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        ExportError::from_http(413, None, "").kind(),
        ErrorKind::TooLarge
    );
    assert_eq!(
        ExportError::from_http(415, None, "").kind(),
        ErrorKind::UnsupportedMediaType
    );
}

#[test]
fn receivers_answer_with_the_statuses_the_specification_names() {
    let pushback = ExportError::unavailable("queue full").with_retry_after(Duration::from_secs(5));
    assert_eq!(pushback.http_status(), (503, Some(Duration::from_secs(5))));
    assert_eq!(
        pushback.grpc_code(),
        (GrpcCode::Unavailable, Some(Duration::from_secs(5)))
    );

    let rate = ExportError::throttled("over quota", Duration::from_secs(1));
    assert_eq!(rate.http_status(), (429, Some(Duration::from_secs(1))));

    let malformed = ExportError::invalid_argument("bad protobuf");
    assert_eq!(malformed.http_status(), (400, None));
    assert_eq!(malformed.grpc_code(), (GrpcCode::InvalidArgument, None));

    let too_large = ExportError::too_large("70 MiB after decompression");
    assert_eq!(too_large.http_status(), (413, None));
    // No RetryInfo: clients must not retry a size refusal.
    assert_eq!(too_large.grpc_code(), (GrpcCode::ResourceExhausted, None));
    assert!(too_large.to_rpc_status().details.is_empty());

    let unsupported = ExportError::new(ErrorKind::UnsupportedMediaType, "text/plain");
    assert_eq!(unsupported.http_status(), (415, None));

    // A hint never makes a permanent error retryable.
    let permanent = ExportError::invalid_argument("bad").with_retry_after(Duration::from_secs(1));
    assert_eq!(permanent.retry_class(), RetryClass::Permanent);
    assert_eq!(permanent.http_status(), (400, None));
}

#[test]
fn rpc_status_carries_retry_info() {
    let error = ExportError::unavailable("busy").with_retry_after(Duration::from_millis(2500));
    let status = error.to_rpc_status();
    assert_eq!(status.code, GrpcCode::Unavailable.as_i32());
    assert_eq!(retry_info_of(&status), Some(Duration::from_millis(2500)));
    assert!(status.message.contains("busy"));

    let read_back = ExportError::from_rpc_status(&status);
    assert_eq!(
        read_back.retry_class(),
        RetryClass::Throttled(Duration::from_millis(2500))
    );
}

#[test]
fn unknown_grpc_numbers_are_unknown() {
    assert_eq!(GrpcCode::from_i32(99), GrpcCode::Unknown);
    assert_eq!(GrpcCode::from_i32(-1), GrpcCode::Unknown);
    for code in GrpcCode::ALL {
        assert_eq!(GrpcCode::from_i32(code.as_i32()), code);
    }
}

fn any_kind() -> impl Strategy<Value = ErrorKind> {
    prop::sample::select(vec![
        ErrorKind::Unavailable,
        ErrorKind::Throttled,
        ErrorKind::Timeout,
        ErrorKind::Cancelled,
        ErrorKind::Aborted,
        ErrorKind::OutOfRange,
        ErrorKind::DataLoss,
        ErrorKind::InvalidArgument,
        ErrorKind::TooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::NotFound,
        ErrorKind::Unimplemented,
        ErrorKind::AlreadyExists,
        ErrorKind::FailedPrecondition,
        ErrorKind::Internal,
        ErrorKind::Codec,
        ErrorKind::Unknown,
    ])
}

/// Kinds a receiver sends over HTTP; gRPC-only kinds have no faithful HTTP status.
fn http_receiver_kind() -> impl Strategy<Value = ErrorKind> {
    prop::sample::select(vec![
        ErrorKind::Unavailable,
        ErrorKind::Throttled,
        ErrorKind::Timeout,
        ErrorKind::InvalidArgument,
        ErrorKind::TooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::NotFound,
        ErrorKind::Unimplemented,
        ErrorKind::Internal,
        ErrorKind::Codec,
    ])
}

proptest! {
    /// What a receiver of ours answers over gRPC, a client of ours reads back with the same
    /// retryability and the same delay.
    #[test]
    fn grpc_receiver_to_client_round_trip(kind in any_kind(), delay_ms in proptest::option::of(0u64..600_000)) {
        let mut error = ExportError::new(kind, "m");
        if let Some(ms) = delay_ms {
            error = error.with_retry_after(Duration::from_millis(ms));
        }
        let client = ExportError::from_rpc_status(&error.to_rpc_status());
        prop_assert_eq!(client.is_retryable(), error.is_retryable(), "{:?} -> {:?}", error, client);
        if error.grpc_code().0 != GrpcCode::ResourceExhausted {
            prop_assert_eq!(client.retry_class(), error.retry_class());
        }
    }

    /// The same over HTTP, for the kinds an HTTP receiver uses.
    #[test]
    fn http_receiver_to_client_round_trip(kind in http_receiver_kind(), delay_s in proptest::option::of(0u64..3600)) {
        let mut error = ExportError::new(kind, "m");
        if let Some(s) = delay_s {
            error = error.with_retry_after(Duration::from_secs(s));
        }
        let (status, retry_after) = error.http_status();
        let client = ExportError::from_http(status, retry_after, "m");
        prop_assert_eq!(client.retry_class(), error.retry_class());
    }
}
