//! Compression for OTLP transports, safe against compression bombs by construction.
//!
//! - [`Compression`] is an open trait: an algorithm the workspace does not ship is a type
//!   that implements it, registered in a [`CompressionSet`] beside the built-in ones.
//! - Built-in algorithms, each behind its feature: [`Gzip`] (`gzip`), [`Zlib`]
//!   (`deflate`: HTTP's `deflate`, also known as `zlib`), [`Zstd`] (`zstd`),
//!   [`SnappyBlock`] and [`SnappyFramed`] (`snappy`: the Collector's `snappy` and
//!   `x-snappy-framed`), [`Lz4`] (`lz4`, frame format). `all` enables every one.
//! - Decompression always takes an output limit and stops with
//!   [`DecompressError::TooLarge`] as soon as the output would exceed it; no buffer is ever
//!   sized from a length a peer declares. Transports map that error to HTTP 413 / gRPC
//!   RESOURCE_EXHAUSTED through [`otlp_core::ExportError`] (`From` is implemented).
//! - [`CompressionSet`] names algorithms the way each protocol does (`grpc-encoding`,
//!   `Content-Encoding`), lists them for `grpc-accept-encoding` / `Accept-Encoding`, and
//!   negotiates from a peer's list.
//!
//! ```
//! use otlp_compression::{Compression, CompressionSet, DecompressError, Gzip};
//!
//! let payload = vec![b'x'; 100_000];
//! let mut compressed = Vec::new();
//! Gzip::default().compress(&payload, &mut compressed)?;
//!
//! // A receiver looks the algorithm up by the request's Content-Encoding...
//! let set = CompressionSet::with_defaults();
//! let gzip = set.by_http_name("gzip").expect("gzip is built in");
//! // ...and decompresses with a limit.
//! let mut out = Vec::new();
//! gzip.decompress(&compressed, 1 << 20, &mut out)?;
//! assert_eq!(out, payload);
//!
//! let mut out = Vec::new();
//! let error = gzip.decompress(&compressed, 1000, &mut out).unwrap_err();
//! assert_eq!(error, DecompressError::TooLarge { limit: 1000 });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::fmt;

mod capped;
mod set;

#[cfg(any(feature = "gzip", feature = "deflate"))]
mod deflate;
#[cfg(feature = "lz4")]
mod lz4;
#[cfg(feature = "snappy")]
mod snappy;
#[cfg(feature = "zstd")]
mod zstd;

pub use capped::read_capped;
#[cfg(feature = "gzip")]
pub use deflate::Gzip;
#[cfg(feature = "deflate")]
pub use deflate::Zlib;
#[cfg(feature = "lz4")]
pub use lz4::Lz4;
pub use set::{CompressionSet, parse_accept_list};
#[cfg(feature = "snappy")]
pub use snappy::{SnappyBlock, SnappyFramed};
#[cfg(feature = "zstd")]
pub use zstd::Zstd;

/// The OTLP specification's recommended limit on a decompressed request: 64 MiB.
pub const DEFAULT_DECOMPRESSED_LIMIT: usize = 64 * 1024 * 1024;

/// A compression algorithm.
///
/// Implementations see whole messages: framing and size limits on the compressed bytes stay
/// in the transport; the limit on the *decompressed* size is passed in and must be enforced
/// while decompressing, never by trusting a size the input declares.
///
/// ```
/// use otlp_compression::{Compression, CompressionError, CompressionSet, DecompressError};
///
/// /// A toy algorithm: the identity, under a name of our own.
/// #[derive(Debug)]
/// struct Stored;
///
/// impl Compression for Stored {
///     fn name(&self) -> &str { "x-stored" }
///     fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
///         out.extend_from_slice(input);
///         Ok(())
///     }
///     fn decompress(&self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
///         if input.len() > limit {
///             return Err(DecompressError::TooLarge { limit });
///         }
///         out.extend_from_slice(input);
///         Ok(())
///     }
/// }
///
/// let set = CompressionSet::with_defaults().with(Stored);
/// assert!(set.by_grpc_name("x-stored").is_some());
/// assert!(set.grpc_accept_encoding().contains("x-stored"));
/// ```
pub trait Compression: fmt::Debug + Send + Sync + 'static {
    /// The canonical name, used in configuration (`gzip`, `zstd`, ...).
    fn name(&self) -> &str;

    /// The `Content-Encoding` token for HTTP and WebSocket, or `None` if the algorithm has
    /// no HTTP name. Defaults to [`Compression::name`].
    fn http_name(&self) -> Option<&str> {
        Some(self.name())
    }

    /// Other `Content-Encoding` tokens accepted for this algorithm (e.g. `zlib` for
    /// `deflate`).
    fn http_aliases(&self) -> &[&str] {
        &[]
    }

    /// The `grpc-encoding` token, or `None` if the algorithm is not offered over gRPC.
    /// Defaults to [`Compression::name`].
    fn grpc_name(&self) -> Option<&str> {
        Some(self.name())
    }

    /// Appends the compressed form of `input` to `out`.
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError>;

    /// Appends the decompressed form of `input` to `out`, failing with
    /// [`DecompressError::TooLarge`] as soon as more than `limit` bytes would be produced.
    /// Memory used stays within `limit` plus the algorithm's bounded working state.
    fn decompress(
        &self,
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), DecompressError>;
}

/// Compressing failed (only possible for algorithms with hard input limits, or a bug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{algorithm} compression failed: {message}")]
pub struct CompressionError {
    /// The algorithm's name.
    pub algorithm: String,
    /// What went wrong.
    pub message: String,
}

/// Decompressing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// The output would exceed the limit (HTTP 413, gRPC RESOURCE_EXHAUSTED).
    #[error("the message exceeds the limit of {limit} bytes (after decompression)")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The input is not valid for the algorithm (HTTP 400, gRPC INVALID_ARGUMENT).
    #[error("{algorithm} data is corrupt: {message}")]
    Corrupt {
        /// The algorithm's name.
        algorithm: String,
        /// What the decoder reported.
        message: String,
    },
}

/// A received body as the service behind a receiver sees it: decompressed with `encoding`
/// when the peer declared one, and no larger than `limit` bytes either way. The one bounded
/// decompression step of every receiver (a gRPC message, an HTTP body, a WebSocket
/// message), so that all refuse the same sizes with the same error.
///
/// ```
/// use bytes::Bytes;
/// use otlp_compression::{Compression, DecompressError, Gzip, decompress_received};
///
/// let mut packed = Vec::new();
/// Gzip::default().compress(&[7u8; 1000], &mut packed)?;
/// let body = decompress_received(Bytes::from(packed), Some(&Gzip::default()), 4096)?;
/// assert_eq!(body.len(), 1000);
/// let refused = decompress_received(Bytes::from(vec![0u8; 5000]), None, 4096);
/// assert_eq!(refused, Err(DecompressError::TooLarge { limit: 4096 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decompress_received(
    body: bytes::Bytes,
    encoding: Option<&dyn Compression>,
    limit: usize,
) -> Result<bytes::Bytes, DecompressError> {
    match encoding {
        None if body.len() > limit => Err(DecompressError::TooLarge { limit }),
        None => Ok(body),
        Some(algorithm) => {
            let mut out = Vec::new();
            algorithm.decompress(&body, limit, &mut out)?;
            Ok(bytes::Bytes::from(out))
        }
    }
}

impl DecompressError {
    /// A [`DecompressError::Corrupt`] for `algorithm`.
    pub fn corrupt(algorithm: &str, message: impl fmt::Display) -> Self {
        DecompressError::Corrupt {
            algorithm: algorithm.to_string(),
            message: message.to_string(),
        }
    }
}

impl From<DecompressError> for otlp_core::ExportError {
    fn from(error: DecompressError) -> Self {
        let message = error.to_string();
        match error {
            DecompressError::TooLarge { .. } => otlp_core::ExportError::too_large(message),
            DecompressError::Corrupt { .. } => otlp_core::ExportError::invalid_argument(message),
        }
    }
}

impl From<CompressionError> for otlp_core::ExportError {
    fn from(error: CompressionError) -> Self {
        otlp_core::ExportError::internal(error.to_string())
    }
}

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
