//! OTLP over WebSocket for otlp-transport: our binding (`docs/websocket.md`), for real-time
//! export and browsers.
//!
//! One connection carries numbered `StreamBatch`es of all three signals and the server's
//! `StreamAck`s, in protobuf (binary messages, optionally compressed with any algorithm of
//! otlp-compression, chosen by subprotocol) or OTLP/JSON (text messages).
//!
//! - [`WsReceiver`]: the handshake checked (path, origin, the authentication hook,
//!   subprotocol), batches processed a bounded number at a time per connection and
//!   acknowledged as they complete, duplicates recognised by batch id, size limits (close
//!   1009), ping keepalive and an idle timeout, a connection limit.
//! - [`WsExporter`]: a bounded window of unacknowledged batches, reconnection with backoff
//!   and exactly the unacknowledged batches resent — the sans-IO `otlp_stream::Sender`
//!   shared with the gRPC streaming exporter.
//!
//! ```
//! use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Metrics};
//! use otlp_websocket::{Encoding, WsExporter, WsExporterConfig, WsReceiver};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let service = tower::service_fn(|request: AnyExportRequest| async move {
//!     Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
//! });
//! let receiver = WsReceiver::new(service).bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
//! let url = format!("ws://{}/v1/stream", receiver.local_addr());
//! let exporter = WsExporter::new(
//!     WsExporterConfig::new(url).with_encoding(Encoding::compressed(otlp_compression::Zstd::default())),
//! );
//! let request = ExportRequest::<Metrics>::new(otlp_testkit::realistic::metrics(20, 1));
//! let outcome = exporter.export(request.into()).await?;
//! assert_eq!(outcome.accepted(), 20);
//! receiver.shutdown().await;
//! # Ok::<(), ExportError>(())
//! # }).unwrap();
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod exporter;
mod receiver;
pub mod wire;

pub use exporter::{WsExporter, WsExporterConfig, WsExporterStats};
pub use otlp_net::intake::{IntakeConfig, IntakeStats, ReceiverStats};
pub use otlp_net::listener::ListenerLimits;
/// TLS settings of both ends (`wss://`), re-exported from `otlp-net`.
#[cfg(feature = "tls")]
pub use otlp_net::tls;
pub use receiver::{RunningWsReceiver, WsReceiver, WsReceiverConfig, WsReceiverStats};
pub use wire::Encoding;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
