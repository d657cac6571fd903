//! OTLP over HTTP for otlp-transport: a receiver and an exporter on hyper.
//!
//! - [`HttpReceiver`]: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` (configurable) on one
//!   listener, HTTP/1.1 and HTTP/2 (h2c, or ALPN over TLS); protobuf, JSON, MessagePack and
//!   CBOR bodies, answered in the request's own format; every `Content-Encoding` of
//!   otlp-compression; errors exactly as the OTLP specification says (a `google.rpc.Status`
//!   body; 400 malformed, 413 too large — from `Content-Length` before reading, while
//!   reading and after decompression —, 415 unknown content type or encoding, 429/503
//!   with `Retry-After` when the service pushes back, partial success in the 200 answer);
//!   header and body read timeouts, a connection limit, CORS, TLS/mTLS and the
//!   authentication hook before any body is read.
//! - [`HttpExporter`]: per-signal URLs, any codec and compression, headers, deadline,
//!   pooled connections, TLS; `Retry-After` (seconds or HTTP-date) and `google.rpc.Status`
//!   bodies read into the shared retry classes; response bodies capped.
//!
//! ```
//! use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Logs};
//! use otlp_http::{HttpExporter, HttpExporterConfig, HttpReceiver};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let service = tower::service_fn(|request: AnyExportRequest| async move {
//!     Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
//! });
//! let receiver = HttpReceiver::new(service).bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
//! let config = HttpExporterConfig::new(&format!("http://{}", receiver.local_addr()))?
//!     .with_codec(otlp_codec::Json::default());
//! let exporter = HttpExporter::new(config)?;
//! let outcome = exporter.export(&ExportRequest::<Logs>::new(otlp_testkit::realistic::logs(5, 1))).await?;
//! assert_eq!(outcome.accepted(), 5);
//! receiver.shutdown().await;
//! # Ok::<(), ExportError>(())
//! # }).unwrap();
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod exporter;
mod receiver;
pub mod status_body;

pub use exporter::{HttpExporter, HttpExporterConfig};
pub use otlp_codec::validate::DecodeMode;
pub use otlp_net::auth;
pub use otlp_net::intake::{IntakeConfig, IntakeStats, ReceiverStats};
pub use otlp_net::listener::ListenerLimits;
#[cfg(feature = "tls")]
pub use otlp_net::tls;
pub use receiver::{
    Cors, HttpPaths, HttpReceiver, HttpReceiverConfig, HttpReceiverStats, RunningHttpReceiver,
};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
