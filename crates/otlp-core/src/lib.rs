//! The shared traits of otlp-transport: what every codec, policy and transport crate
//! agrees on.
//!
//! - [`Signal`] ([`Traces`], [`Metrics`], [`Logs`]): a signal's request and response types,
//!   its OTLP/HTTP path and its gRPC method, so that code is written once for all three.
//! - The one export shape, [`ExportService`]: a `tower::Service` from an [`ExportRequest`]
//!   to an [`ExportOutcome`] (accepted items, and rejected items with a message: OTLP
//!   partial success) or an [`ExportError`]. An exporter implements it; a receiver is
//!   driven by one; batching, retry, timeout and queue layers wrap it.
//! - [`ExportError`], whose every value carries its [`RetryClass`] (retryable, throttled
//!   with a delay, permanent), decided once from the transport's status by the OTLP
//!   specification's tables ([`ExportError::from_grpc`], [`ExportError::from_http`]), so
//!   that retry policies never look at transport details; and the reverse mapping a
//!   receiver answers with ([`ExportError::grpc_code`], [`ExportError::http_status`],
//!   [`ExportError::to_rpc_status`]).
//!
//! ```
//! use otlp_core::{ExportError, ExportOutcome, ExportRequest, Signal, Traces};
//! use tower::{service_fn, ServiceExt};
//!
//! // A receiver hands each request to a service; this one refuses work when "full".
//! let full = true;
//! let service = service_fn(move |request: ExportRequest<Traces>| async move {
//!     if full {
//!         Err(ExportError::unavailable("queue full")
//!             .with_retry_after(std::time::Duration::from_secs(2)))
//!     } else {
//!         Ok(ExportOutcome::success(request.item_count()))
//!     }
//! });
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let error = service.oneshot(ExportRequest::new(Default::default())).await.unwrap_err();
//! // What an OTLP/HTTP receiver answers, and what an OTLP/gRPC one answers:
//! assert_eq!(error.http_status(), (503, Some(std::time::Duration::from_secs(2))));
//! assert_eq!(error.grpc_code().0, otlp_core::GrpcCode::Unavailable);
//! assert_eq!(Traces::HTTP_PATH, "/v1/traces");
//! # });
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod outcome;
mod request;
mod service;
mod signal;
mod status;

pub use error::{ErrorKind, ExportError, PeerStatus, RetryClass};
pub use outcome::ExportOutcome;
pub use request::{AnyExportRequest, BatchId, ExportRequest, Holds};
pub use service::{AnyExportService, BoxExportFuture, ExportService, PerSignal};
pub use signal::{Logs, Metrics, Signal, SignalKind, Traces};
pub use status::{
    GrpcCode, duration_from_proto, duration_to_proto, http_status_is_retryable, retry_info_of,
};

pub use otlp_model;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
