//! Codecs for OTLP: bytes in, message out, and back, for the requests and responses of all
//! three signals and our stream envelope. No I/O: framing, compression and limits on the
//! wire stay in the transports.
//!
//! | codec | content type | feature |
//! |---|---|---|
//! | [`Protobuf`] | `application/x-protobuf` | always |
//! | [`Json`] (OTLP/JSON, strict and lossless) | `application/json` | `json` (default) |
//! | [`MessagePack`] | `application/msgpack` (our extension) | `msgpack` |
//! | [`Cbor`] | `application/cbor` (our extension) | `cbor` |
//!
//! JSON, MessagePack and CBOR share one piece of code per message, generated from the
//! protos by `cargo xtask codegen` ([`schema`]); each format only implements a
//! [`schema::Writer`] and a [`schema::Reader`]. Every decoder enforces [`DecodeLimits`]
//! (input size, `AnyValue` nesting) with a typed [`CodecError`] that names the field, and
//! none recurses deeper than the nesting limit allows, whatever the input.
//!
//! ```
//! use otlp_codec::{CodecSet, CodecSignal};
//! use otlp_core::Logs;
//!
//! let codecs = CodecSet::with_defaults();
//! let request = otlp_testkit::realistic::logs(3, 1);
//! for codec in codecs.iter() {
//!     let mut bytes = Vec::new();
//!     Logs::encode_request(codec.as_ref(), &request, &mut bytes)?;
//!     let back = Logs::decode_request(codec.as_ref(), bytes.into())?;
//!     assert_eq!(back, request, "{}", codec.name());
//! }
//! # Ok::<(), otlp_codec::CodecError>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod codec;
mod error;
mod protobuf;
pub mod schema;

#[cfg(any(feature = "msgpack", feature = "cbor"))]
mod binary;
#[cfg(feature = "cbor")]
mod cbor;
#[cfg(feature = "json")]
mod json;
#[cfg(feature = "msgpack")]
mod msgpack;

#[allow(missing_docs, clippy::all)]
mod generated {
    include!("generated/schema.rs");
}

#[allow(missing_docs, clippy::all)]
mod generated_wire {
    include!("generated/wire.rs");
}

pub mod validate;

#[cfg(feature = "cbor")]
pub use cbor::Cbor;
pub use codec::{Codec, CodecSet, CodecSignal, DecodeLimits, OtlpCodec};
pub use error::{CodecError, CodecErrorKind};
#[cfg(feature = "json")]
pub use json::Json;
#[cfg(feature = "msgpack")]
pub use msgpack::MessagePack;
pub use protobuf::Protobuf;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
