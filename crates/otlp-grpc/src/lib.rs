//! OTLP over gRPC for otlp-transport.
//!
//! - [`GrpcReceiver`]: the OTLP gRPC services (unary `Export` for each signal, the
//!   bidirectional and server-streaming extension of `docs/grpc.md`, health checking) on
//!   hyper's HTTP/2, with limits, authentication, TLS and a memory budget.
//! - [`GrpcExporter`] (one unary call per export, over one multiplexed connection) and
//!   [`StreamExporter`] (batches on a bidirectional stream, resent until acknowledged).
//!
//! Under both, as plain logic without sockets:
//!
//! - [`framing`]: the gRPC message framing (compressed flag + length + payload) with every
//!   algorithm of otlp-compression usable as a `grpc-encoding`, limits checked before
//!   buffering and decompression bounded.
//! - [`status`]: `grpc-status` / `grpc-message` / `grpc-status-details-bin` (RetryInfo) in
//!   both directions, through the OTLP tables of otlp-core.
//!
//! ```
//! use bytes::BytesMut;
//! use otlp_compression::{CompressionSet, Gzip};
//! use otlp_grpc::framing::{FrameDecoder, FrameLimits, encode_frame};
//!
//! let mut wire = BytesMut::new();
//! encode_frame(b"an ExportTraceServiceRequest", Some(&Gzip::default()), &mut wire)?;
//!
//! let mut decoder = FrameDecoder::new(FrameLimits::default());
//! decoder.push(&wire[..3]); // bodies arrive in pieces
//! assert!(decoder.next_frame()?.is_none());
//! decoder.push(&wire[3..]);
//! let frame = decoder.next_frame()?.expect("complete");
//! let set = CompressionSet::with_defaults();
//! let message = decoder.message(frame, set.by_grpc_name("gzip").map(|c| c.as_ref()))?;
//! assert_eq!(&message[..], b"an ExportTraceServiceRequest");
//! # Ok::<(), otlp_core::ExportError>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod body;
mod client;
pub mod framing;
pub mod protocol;
mod server;
pub mod status;

pub use otlp_net::auth;
pub use otlp_net::intake::{IntakeConfig, IntakeStats, ReceiverStats};
pub use otlp_net::listener::ListenerLimits;
#[cfg(feature = "tls")]
pub use otlp_net::tls;

pub use client::{
    ClientHttp2Settings, ExporterConfig, GrpcExporter, StagedExport, StreamExporter,
    StreamExporterConfig, StreamStats,
};
pub use server::{
    DecodeMode, GrpcReceiver, Http2Settings, MAX_HEALTH_WATCHES, ReceiverConfig, RunningReceiver,
};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
