//! The OTLP v1 data model for otlp-transport.
//!
//! The message types are generated from `proto/` by `cargo xtask codegen` (prost, with
//! `bytes::Bytes` for every `bytes` field so that decoding from a `Bytes` buffer slices
//! instead of copying) and re-exported here under short paths. On top of them this crate
//! provides what every other crate of the workspace needs:
//!
//! - [`SignalRequest`]: the operations shared by the three request types — item counts
//!   ([`SignalRequest::item_count`]), splitting into requests of at most N items that keep
//!   their resource and scope ([`SignalRequest::split`]), merging ([`SignalRequest::merge`]),
//!   and the matching response type with its partial success ([`SignalResponse`]).
//! - [`TraceId`] and [`SpanId`], with hex conversion.
//!
//! ```
//! use otlp_model::collector::trace::ExportTraceServiceRequest;
//! use otlp_model::trace::{ResourceSpans, ScopeSpans, Span};
//! use otlp_model::SignalRequest;
//!
//! let spans = (0..5).map(|i| Span { name: format!("op-{i}"), ..Default::default() }).collect();
//! let request = ExportTraceServiceRequest {
//!     resource_spans: vec![ResourceSpans {
//!         scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
//!         ..Default::default()
//!     }],
//! };
//! assert_eq!(request.item_count(), 5);
//!
//! let parts = request.clone().split(2);
//! assert_eq!(parts.iter().map(|p| p.item_count()).collect::<Vec<_>>(), [2, 2, 1]);
//!
//! let mut merged = ExportTraceServiceRequest::default();
//! for part in parts {
//!     merged.merge(part);
//! }
//! assert_eq!(merged, request);
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod ids;
mod request;
mod split;
pub mod wire;

pub use ids::{HexError, IdError, SpanId, TraceId, decode_hex, encode_hex};
pub use request::{SignalRequest, SignalResponse};

/// The raw generated module tree, one module per protobuf package.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod generated {
    include!("generated/mod.rs");
}

/// `opentelemetry.proto.common.v1`: attribute values and instrumentation scope.
pub mod common {
    pub use crate::generated::opentelemetry::proto::common::v1::*;
}

/// `opentelemetry.proto.resource.v1`: the entity that produced the telemetry.
pub mod resource {
    pub use crate::generated::opentelemetry::proto::resource::v1::*;
}

/// `opentelemetry.proto.trace.v1`: spans.
pub mod trace {
    pub use crate::generated::opentelemetry::proto::trace::v1::*;
}

/// `opentelemetry.proto.metrics.v1`: metrics and their data points.
pub mod metrics {
    pub use crate::generated::opentelemetry::proto::metrics::v1::*;
}

/// `opentelemetry.proto.logs.v1`: log records.
pub mod logs {
    pub use crate::generated::opentelemetry::proto::logs::v1::*;
}

/// `opentelemetry.proto.collector.*.v1`: the export service requests and responses.
pub mod collector {
    /// The trace export service messages.
    pub mod trace {
        pub use crate::generated::opentelemetry::proto::collector::trace::v1::*;
    }
    /// The metrics export service messages.
    pub mod metrics {
        pub use crate::generated::opentelemetry::proto::collector::metrics::v1::*;
    }
    /// The logs export service messages.
    pub mod logs {
        pub use crate::generated::opentelemetry::proto::collector::logs::v1::*;
    }
}

/// `google.rpc`: `Status` (OTLP/HTTP error bodies, gRPC status details) and `RetryInfo`.
pub mod rpc {
    pub use crate::generated::google::rpc::*;
    pub use prost_types::{Any, Duration};

    /// The type URL under which [`RetryInfo`] travels in [`Status::details`].
    pub const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";
}

/// `otlp_transport.v1`: our streaming extension (envelope and acknowledgement).
pub mod stream {
    pub use crate::generated::otlp_transport::v1::*;
}

pub use prost;
pub use prost::bytes;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
