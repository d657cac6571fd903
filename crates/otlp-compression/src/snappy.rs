//! Snappy, in both of its formats: the raw block format (HTTP `snappy`, as the Collector
//! sends it) and the framing format (HTTP `x-snappy-framed`; gRPC `snappy`).

use crate::{Compression, CompressionError, DecompressError, read_capped};

/// Snappy's raw block format: a varint of the uncompressed length, then the block. The
/// declared length is checked against the limit before anything is allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnappyBlock;

impl Compression for SnappyBlock {
    fn name(&self) -> &str {
        "snappy"
    }

    /// The block format is not a gRPC encoding; gRPC's `snappy` is the framed format.
    fn grpc_name(&self) -> Option<&str> {
        None
    }

    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
        let start = out.len();
        out.resize(start + snap::raw::max_compress_len(input.len()), 0);
        let written = snap::raw::Encoder::new()
            .compress(input, &mut out[start..])
            .map_err(|e| CompressionError {
                algorithm: "snappy".into(),
                message: e.to_string(),
            })?;
        out.truncate(start + written);
        Ok(())
    }

    fn decompress(
        &self,
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), DecompressError> {
        // Read the length prefix ourselves: any claim, even one past what the snappy
        // library itself accepts, must come out as "too large", not as corruption.
        let declared = declared_len(input)?;
        if declared > limit as u64 {
            return Err(DecompressError::TooLarge { limit });
        }
        let declared = declared as usize;
        // The format lets a short input claim any length; refuse claims the input cannot
        // possibly fill, so that the allocation below is bounded by the input as well.
        if declared > max_expansion(input.len()) {
            return Err(DecompressError::corrupt(
                "snappy",
                format!(
                    "declared length {declared} is impossible for {} input bytes",
                    input.len()
                ),
            ));
        }
        let start = out.len();
        out.resize(start + declared, 0);
        match snap::raw::Decoder::new().decompress(input, &mut out[start..]) {
            Ok(written) => {
                out.truncate(start + written);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(DecompressError::corrupt("snappy", e))
            }
        }
    }
}

/// The uncompressed length a snappy block declares: a little-endian base-128 varint.
fn declared_len(input: &[u8]) -> Result<u64, DecompressError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecompressError::corrupt(
        "snappy",
        "missing or overlong length prefix",
    ))
}

/// An upper bound on what a snappy block of `input_len` bytes can expand to. The densest
/// element is a 3-byte copy of 64 bytes (about 21x); 32x leaves a margin.
fn max_expansion(input_len: usize) -> usize {
    input_len.saturating_mul(32)
}

/// Snappy's framing format: checksummed chunks of at most 64 KiB, streamed, so the output
/// limit is enforced chunk by chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnappyFramed;

impl Compression for SnappyFramed {
    fn name(&self) -> &str {
        "x-snappy-framed"
    }

    /// gRPC implementations (grpc-go's `snappy` encoding, used by the Collector) frame.
    fn grpc_name(&self) -> Option<&str> {
        Some("snappy")
    }

    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
        use std::io::Write;
        let fail = |e: std::io::Error| CompressionError {
            algorithm: "x-snappy-framed".into(),
            message: e.to_string(),
        };
        let mut writer = snap::write::FrameEncoder::new(out);
        writer.write_all(input).map_err(fail)?;
        writer.flush().map_err(fail)?;
        Ok(())
    }

    fn decompress(
        &self,
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), DecompressError> {
        read_capped(
            snap::read::FrameDecoder::new(input),
            "x-snappy-framed",
            limit,
            out,
        )
    }
}
