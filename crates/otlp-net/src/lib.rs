//! What every network transport of otlp-transport shares, so that gRPC, HTTP and WebSocket
//! receivers and exporters are configured the same way:
//!
//! - [`auth`]: the authentication hook ([`auth::Authenticate`]), run on a request's method,
//!   path and headers before any of its body is read or decompressed, with bearer tokens
//!   provided ([`auth::BearerToken`]).
//! - [`tls`] (feature `tls`): server and client TLS settings, mutual TLS included, as
//!   rustls configurations ([`tls::ServerTls`], [`tls::ClientTls`]).
//! - [`listener`]: the accept loop every receiver runs (connection limit, TLS handshake
//!   deadline, graceful shutdown).
//! - [`server`]: the lifecycle every receiver shares (bind or serve a given listener,
//!   TLS, the running receiver's address and counters, shutdown with a deadline).
//! - [`stream_client`]: the exporter half of the stream protocol, one tokio driver over
//!   any binding's [`stream_client::StreamLink`] (gRPC bidirectional and WebSocket write
//!   only their framing).
//! - [`stream_server`]: the receiver half, one tokio driver over any binding's
//!   [`stream_server::ReceiveLink`], running the sans-IO [`otlp_stream::ReceiverSession`].
//!
//! ```
//! use otlp_net::auth::{Authenticate, BearerToken};
//!
//! let auth = BearerToken::new("s3cret");
//! let request = http::Request::post("/v1/traces")
//!     .header("authorization", "Bearer s3cret")
//!     .body(())?;
//! assert!(auth.authenticate(&request.into_parts().0).is_ok());
//! # Ok::<(), http::Error>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod budget;
pub mod intake;
pub mod listener;
pub mod server;
pub mod stream_client;
pub mod stream_server;
#[cfg(feature = "tls")]
pub mod tls;
pub mod upgrade;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;

/// Decodes `%XX` escapes (gRPC status messages, `OTEL_EXPORTER_OTLP_HEADERS` values);
/// a malformed escape is kept as it is, and invalid UTF-8 is replaced, never refused.
///
/// ```
/// assert_eq!(otlp_net::percent_decode("a%20b%zz%E2%9C%93"), "a b%zz\u{2713}");
/// ```
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Copies the request headers named in `keys` (tenant ids, routing metadata an operator
/// chose) into `to`; nothing else travels with a request. The protocols' own headers and
/// credentials are never copied, even when listed. Receivers forward no header unless
/// configured to: headers would otherwise ride in every queued request, unseen by the
/// memory accounting, and batching merges requests without them.
///
/// ```
/// use http::{HeaderMap, HeaderName, HeaderValue};
/// let mut from = HeaderMap::new();
/// from.insert("authorization", HeaderValue::from_static("Bearer secret"));
/// from.insert("x-tenant", HeaderValue::from_static("acme"));
/// from.insert("x-debug", HeaderValue::from_static("1"));
/// let keys = [HeaderName::from_static("x-tenant"), HeaderName::from_static("authorization")];
/// let mut to = HeaderMap::new();
/// otlp_net::forward_metadata(&from, &keys, &mut to);
/// assert_eq!(to.len(), 1);
/// assert_eq!(to["x-tenant"], "acme");
/// ```
pub fn forward_metadata(
    from: &http::HeaderMap,
    keys: &[http::HeaderName],
    to: &mut http::HeaderMap,
) {
    for key in keys {
        if is_reserved(key.as_str()) {
            continue;
        }
        for value in from.get_all(key) {
            to.append(key.clone(), value.clone());
        }
    }
}

/// Headers that belong to the protocols or carry credentials: never forwarded.
fn is_reserved(name: &str) -> bool {
    name.starts_with("grpc-")
        || name.starts_with("access-control-")
        || name.starts_with("sec-")
        || matches!(
            name,
            "content-type"
                | "content-length"
                | "content-encoding"
                | "transfer-encoding"
                | "te"
                | "host"
                | "connection"
                | "keep-alive"
                | "upgrade"
                | "user-agent"
                | "accept"
                | "accept-encoding"
                | "origin"
                | "referer"
                | "authorization"
                | "proxy-authorization"
                | "cookie"
        )
}
