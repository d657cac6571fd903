//! gRPC status in headers and trailers: `grpc-status`, `grpc-message` (percent-encoded) and
//! `grpc-status-details-bin` (a base64 `google.rpc.Status`, which carries RetryInfo).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use http::{HeaderMap, HeaderValue};
use otlp_core::{ExportError, GrpcCode, retry_info_of};
use otlp_model::rpc;
use prost::Message;

/// The status header names.
pub const GRPC_STATUS: &str = "grpc-status";
/// The message header name.
pub const GRPC_MESSAGE: &str = "grpc-message";
/// The details header name.
pub const GRPC_STATUS_DETAILS: &str = "grpc-status-details-bin";

/// Percent-encodes a status message as gRPC requires (printable ASCII except `%` as is).
pub fn encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &byte in message.as_bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded status message; malformed escapes are kept as they are, as the
/// gRPC specification asks of receivers.
pub fn decode_message(encoded: &str) -> String {
    otlp_net::percent_decode(encoded)
}

/// The trailers a server sends for `error`: the OTLP code for it, its message, and the
/// `google.rpc.Status` details (with RetryInfo when the error carries a delay).
pub fn error_trailers(error: &ExportError) -> HeaderMap {
    let status = error.to_rpc_status();
    let mut headers = HeaderMap::new();
    headers.insert(GRPC_STATUS, HeaderValue::from(status.code));
    if let Ok(message) = HeaderValue::from_str(&encode_message(&status.message)) {
        headers.insert(GRPC_MESSAGE, message);
    }
    if !status.details.is_empty()
        && let Ok(details) = HeaderValue::from_str(&STANDARD_NO_PAD.encode(status.encode_to_vec()))
    {
        headers.insert(GRPC_STATUS_DETAILS, details);
    }
    headers
}

/// The trailers of a successful call.
pub fn ok_trailers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(GRPC_STATUS, HeaderValue::from(0));
    headers
}

/// The error a client records from a response's trailers (or trailers-only headers): `None`
/// for status 0, an error classified by the OTLP table otherwise (RetryInfo read from the
/// details). A missing or unparsable `grpc-status` is UNKNOWN, as gRPC specifies.
pub fn error_from_trailers(headers: &HeaderMap) -> Option<ExportError> {
    let code = headers
        .get(GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i32>().ok())
        .map_or(GrpcCode::Unknown, GrpcCode::from_i32);
    if code == GrpcCode::Ok {
        return None;
    }
    let message = headers
        .get(GRPC_MESSAGE)
        .and_then(|v| v.to_str().ok())
        .map(decode_message)
        .unwrap_or_default();
    let retry = headers
        .get(GRPC_STATUS_DETAILS)
        .and_then(|v| {
            let text = v.as_bytes();
            STANDARD_NO_PAD
                .decode(text)
                .or_else(|_| STANDARD.decode(text))
                .ok()
        })
        .and_then(|bytes| rpc::Status::decode(bytes.as_slice()).ok())
        .and_then(|status| retry_info_of(&status));
    Some(ExportError::from_grpc(code, message, retry))
}
