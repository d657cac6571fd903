//! Names and header formats of gRPC and of our streaming extension, shared by both ends.

use std::time::Duration;

/// gRPC path of the health service's `Check`.
pub const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// gRPC path of the health service's `Watch`.
pub const HEALTH_WATCH_PATH: &str = "/grpc.health.v1.Health/Watch";
/// Fully qualified name of the streaming extension's service.
pub const STREAM_SERVICE: &str = "otlp_transport.v1.StreamService";
/// gRPC path of the server-streaming extension (one batch; RECEIVED then COMPLETED).
pub const EXPORT_STREAM_PATH: &str = "/otlp_transport.v1.StreamService/ExportStream";
/// gRPC path of the bidirectional extension.
pub const EXPORT_BIDIRECTIONAL_PATH: &str = "/otlp_transport.v1.StreamService/ExportBidirectional";

/// Parses `grpc-timeout`: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
///
/// ```
/// use std::time::Duration;
/// use otlp_grpc::protocol::{format_grpc_timeout, parse_grpc_timeout};
/// assert_eq!(parse_grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_timeout(b"123456789S"), None); // nine digits
/// assert_eq!(format_grpc_timeout(Duration::from_secs(10)), "10000000u");
/// ```
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount.checked_mul(3600)?),
        b'M' => Duration::from_secs(amount.checked_mul(60)?),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Formats `timeout` for `grpc-timeout` in the finest unit that fits in 8 digits.
pub fn format_grpc_timeout(timeout: Duration) -> String {
    if timeout.as_micros() < 100_000_000 {
        format!("{}u", timeout.as_micros())
    } else if timeout.as_millis() < 100_000_000 {
        format!("{}m", timeout.as_millis())
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    }
}

/// The gRPC code a client records for a non-200 HTTP status, as gRPC's "HTTP to gRPC
/// status code mapping" says (a proxy answered, not a gRPC server).
pub fn grpc_code_of_http_status(status: u16) -> otlp_core::GrpcCode {
    use otlp_core::GrpcCode;
    match status {
        400 => GrpcCode::Internal,
        401 => GrpcCode::Unauthenticated,
        403 => GrpcCode::PermissionDenied,
        404 => GrpcCode::Unimplemented,
        429 | 502..=504 => GrpcCode::Unavailable,
        _ => GrpcCode::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_and_format() {
        assert_eq!(parse_grpc_timeout(b"5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout(b"7n"), Some(Duration::from_nanos(7)));
        for bad in [&b""[..], b"S", b"123456789S", b"5s", b"-1S", b"1.5S", b"5"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
        for d in [
            Duration::from_micros(1),
            Duration::from_millis(1500),
            Duration::from_secs(1000),
            Duration::from_secs(10_000_000),
        ] {
            let text = format_grpc_timeout(d);
            let parsed = parse_grpc_timeout(text.as_bytes()).expect("parses");
            assert!(
                parsed <= d && d - parsed < Duration::from_secs(1),
                "{d:?} {text}"
            );
        }
    }
}
