//! gzip and zlib ("deflate" in HTTP), through flate2 with the zlib-rs backend.

use flate2::Compression as Level;

use crate::{Compression, CompressionError, DecompressError, read_capped};

fn level(level: u32) -> Level {
    Level::new(level.min(9))
}

fn compress_with<W: std::io::Write>(
    algorithm: &str,
    mut writer: W,
    finish: impl FnOnce(W) -> std::io::Result<()>,
    input: &[u8],
) -> Result<(), CompressionError> {
    let fail = |e: std::io::Error| CompressionError {
        algorithm: algorithm.to_string(),
        message: e.to_string(),
    };
    writer.write_all(input).map_err(fail)?;
    finish(writer).map_err(fail)
}

/// A deflate-family algorithm: a level from 0 (stored) to 9 (smallest), 6 by default.
macro_rules! leveled {
    ($(#[$doc:meta])* $name:ident, $feature:literal) => {
        $(#[$doc])*
        #[cfg(feature = $feature)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            level: u32,
        }

        #[cfg(feature = $feature)]
        impl $name {
            /// At `level` (0 = stored ... 9 = smallest; values above 9 are taken as 9).
            pub fn new(level: u32) -> Self {
                Self { level: level.min(9) }
            }

            /// The compression level.
            pub fn level(&self) -> u32 {
                self.level
            }
        }

        #[cfg(feature = $feature)]
        impl Default for $name {
            /// Level 6, zlib's default.
            fn default() -> Self {
                Self::new(6)
            }
        }
    };
}

leveled!(
    /// gzip (RFC 1952), the OTLP default. Decompression accepts concatenated members, as
    /// HTTP clients may send them.
    Gzip,
    "gzip"
);

leveled!(
    /// zlib (RFC 1950): what HTTP calls `deflate` and gRPC calls `deflate`. Decompression
    /// also accepts raw deflate (RFC 1951) without the zlib wrapper, which some HTTP clients
    /// send under the `deflate` name.
    Zlib,
    "deflate"
);

#[cfg(feature = "gzip")]
impl Compression for Gzip {
    fn name(&self) -> &str {
        "gzip"
    }

    fn http_aliases(&self) -> &[&str] {
        &["x-gzip"]
    }

    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
        compress_with(
            "gzip",
            flate2::write::GzEncoder::new(out, level(self.level)),
            |w| w.finish().map(drop),
            input,
        )
    }

    fn decompress(
        &self,
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), DecompressError> {
        read_capped(
            flate2::bufread::MultiGzDecoder::new(input),
            "gzip",
            limit,
            out,
        )
    }
}

/// Whether `input` starts with a valid zlib header (RFC 1950 section 2.2).
#[cfg(feature = "deflate")]
fn has_zlib_header(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

#[cfg(feature = "deflate")]
impl Compression for Zlib {
    fn name(&self) -> &str {
        "deflate"
    }

    fn http_aliases(&self) -> &[&str] {
        &["zlib"]
    }

    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
        compress_with(
            "deflate",
            flate2::write::ZlibEncoder::new(out, level(self.level)),
            |w| w.finish().map(drop),
            input,
        )
    }

    fn decompress(
        &self,
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), DecompressError> {
        if has_zlib_header(input) {
            read_capped(
                flate2::bufread::ZlibDecoder::new(input),
                "deflate",
                limit,
                out,
            )
        } else {
            read_capped(
                flate2::bufread::DeflateDecoder::new(input),
                "deflate",
                limit,
                out,
            )
        }
    }
}
