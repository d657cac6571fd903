//! The bodies and headers of OTLP/HTTP errors: `google.rpc.Status` in protobuf or in
//! JSON (as the specification asks: the request's encoding), and `Retry-After`.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use otlp_core::otlp_model::rpc;
use otlp_core::{ExportError, retry_info_of};
use prost::Message;

/// Content type of protobuf bodies.
pub const PROTOBUF: &str = "application/x-protobuf";
/// Content type of JSON bodies.
pub const JSON: &str = "application/json";

/// The `google.rpc.Status` body for `error`, in JSON when `json`, in protobuf otherwise.
pub fn encode_status(error: &ExportError, json: bool) -> Bytes {
    let status = error.to_rpc_status();
    if !json {
        return Bytes::from(status.encode_to_vec());
    }
    let details: Vec<serde_json::Value> = retry_info_of(&status)
        .map(|delay| {
            serde_json::json!({
                "@type": rpc::RETRY_INFO_TYPE_URL,
                "retryDelay": format!("{}.{:09}s", delay.as_secs(), delay.subsec_nanos()),
            })
        })
        .into_iter()
        .collect();
    let mut body = serde_json::json!({ "code": status.code, "message": status.message });
    if !details.is_empty() {
        body["details"] = serde_json::Value::Array(details);
    }
    Bytes::from(body.to_string())
}

/// The message and RetryInfo delay of an error body, read by its content type; `None`
/// when the body is empty or not a Status (a proxy's HTML page, say).
pub fn decode_status(
    body: &[u8],
    content_type: Option<&str>,
) -> Option<(String, Option<Duration>)> {
    if body.is_empty() {
        return None;
    }
    let json = content_type.is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    if json {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let message = value
            .get("message")?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let delay = value
            .get("details")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
            .filter(|d| d.get("@type").and_then(|t| t.as_str()) == Some(rpc::RETRY_INFO_TYPE_URL))
            .find_map(|d| d.get("retryDelay")?.as_str().and_then(parse_json_duration));
        return Some((message, delay));
    }
    let status = rpc::Status::decode(body).ok()?;
    let delay = retry_info_of(&status);
    Some((status.message, delay))
}

/// A protobuf JSON `Duration` ("1.5s").
fn parse_json_duration(text: &str) -> Option<Duration> {
    let seconds = text.strip_suffix('s')?;
    let value: f64 = seconds.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value))
}

/// `Retry-After`: delay-seconds or an HTTP-date (relative to `now`); a date in the past is
/// no delay.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` value for `delay`: whole seconds, rounded up so the client never comes
/// back early.
pub fn format_retry_after(delay: Duration) -> String {
    let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    seconds.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(format_retry_after(Duration::from_millis(1500)), "2");
        assert_eq!(format_retry_after(Duration::from_secs(3)), "3");
    }

    #[test]
    fn status_bodies_round_trip_in_both_encodings() {
        let error = ExportError::unavailable("queue full").with_retry_after(Duration::from_secs(4));
        for json in [false, true] {
            let body = encode_status(&error, json);
            let content_type = if json { JSON } else { PROTOBUF };
            let (message, delay) = decode_status(&body, Some(content_type)).expect("a status");
            assert!(message.contains("queue full"), "{message}");
            assert_eq!(delay, Some(Duration::from_secs(4)));
        }
        assert_eq!(decode_status(b"<html>", Some("text/html")), None);
    }
}
