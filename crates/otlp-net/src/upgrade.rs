//! Protocols that take over an HTTP/1.1 connection after an `Upgrade` (OTLP over WebSocket
//! on the OTLP/HTTP port): the HTTP receiver routes the request, the upgrade handler decides
//! the answer and then owns the byte stream. The two transports meet only through this
//! trait, so neither depends on the other.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// A byte stream in both directions (the connection after the upgrade).
pub trait UpgradedIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> UpgradedIo for T {}

/// Why an upgrade request is refused: the HTTP status and a message for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The status of the answer (404, 400, 401, 403, ...).
    pub status: http::StatusCode,
    /// Said in the answer's body.
    pub message: String,
}

/// A protocol reached by an HTTP/1.1 `Upgrade` request.
pub trait UpgradeHandler: Send + Sync + 'static {
    /// The `Upgrade` token it answers (`websocket`), compared case-insensitively.
    fn protocol(&self) -> &str;

    /// Checks the request and returns the headers of the `101 Switching Protocols` answer,
    /// or the refusal. Nothing has been read beyond the request head.
    fn accept(&self, request: &http::request::Parts) -> Result<http::HeaderMap, Refusal>;

    /// Serves the upgraded connection of a request `accept` agreed to, until the peer
    /// leaves or `shutdown` turns true.
    fn serve(
        &self,
        io: Box<dyn UpgradedIo>,
        request: http::request::Parts,
        shutdown: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Whether `headers` ask to upgrade to `protocol` (`Connection: upgrade` and
/// `Upgrade: <protocol>`, tokens compared case-insensitively).
pub fn asks_for(headers: &http::HeaderMap, protocol: &str) -> bool {
    let has_token = |name: http::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|text| {
                text.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    has_token(http::header::CONNECTION, "upgrade") && has_token(http::header::UPGRADE, protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_requests_are_recognised_by_both_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "connection",
            http::HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(!asks_for(&headers, "websocket"));
        headers.insert("upgrade", http::HeaderValue::from_static("WebSocket"));
        assert!(asks_for(&headers, "websocket"));
        assert!(!asks_for(&headers, "h2c"));
        headers.remove("connection");
        assert!(!asks_for(&headers, "websocket"));
    }
}
