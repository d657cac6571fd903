//! Test support for otlp-transport.
//!
//! - [`strategies`]: proptest strategies for every OTLP message, covering every metric kind,
//!   every `AnyValue` variant (with nested arrays and key/value lists), events, links and
//!   exemplars. Used by the wire-compatibility, codec and splitter property tests.
//! - [`conformance`]: the behavioural suite every transport runs (a [`conformance::Transport`]
//!   tells it how to start the transport's receiver and build its exporter), and the
//!   smallest transport that passes it, over an in-process channel.
//! - [`interop`]: running reference tools and official SDKs from tests (required in CI).
//! - [`pki`]: a fresh CA with server and client certificates, for TLS and mutual-TLS tests.
//! - [`memory`]: a counting global allocator and peak-RSS windows, for memory-bound tests.
//! - [`realistic`]: the benchmark workload, the same in every benchmark so figures compare:
//!   an HTTP server span with ten attributes under one resource and one scope (about 465
//!   bytes in protobuf), and matching metrics and logs.
//!
//! ```
//! use otlp_model::SignalRequest;
//! let request = otlp_testkit::realistic::traces(100, 0);
//! assert_eq!(request.item_count(), 100);
//! ```

pub mod conformance;
pub mod eavesdrop;
pub mod interop;
pub mod memory;
pub mod pki;
pub mod realistic;
pub mod recording;
pub mod strategies;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;

/// Every item of `requests` as its own one-item request (resource and scope kept), encoded
/// and sorted: two collections of requests carry the same telemetry, however it was
/// batched, split or merged on the way, exactly when their `items` are equal.
pub fn items<R: otlp_model::SignalRequest>(requests: impl IntoIterator<Item = R>) -> Vec<Vec<u8>> {
    let mut items: Vec<Vec<u8>> = requests
        .into_iter()
        .flat_map(|request| request.split(1))
        .map(|one| prost::Message::encode_to_vec(&one))
        .collect();
    items.sort_unstable();
    items
}
