//! Test support for otlp-transport.
//!
//! - [`strategies`]: proptest strategies for every OTLP message, covering every metric kind,
//!   every `AnyValue` variant (with nested arrays and key/value lists), events, links and
//!   exemplars. Used by the wire-compatibility, codec and splitter property tests.
//! - [`interop`]: running reference tools and official SDKs from tests (required in CI).
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

pub mod interop;
pub mod memory;
pub mod realistic;
pub mod recording;
pub mod strategies;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
