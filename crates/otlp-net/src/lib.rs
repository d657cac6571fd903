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

pub mod auth;
pub mod listener;
#[cfg(feature = "tls")]
pub mod tls;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
