//! LZ4 in its frame format (what the Collector's `lz4` encoding is), pure Rust.

use std::io::Write;

use crate::{Compression, CompressionError, DecompressError, read_capped};

/// LZ4 frames: very fast, modest ratio. lz4_flex has no compression levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lz4;

impl Compression for Lz4 {
    fn name(&self) -> &str {
        "lz4"
    }

    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
        let fail = |e: &dyn std::fmt::Display| CompressionError {
            algorithm: "lz4".into(),
            message: e.to_string(),
        };
        let mut encoder = lz4_flex::frame::FrameEncoder::new(out);
        encoder.write_all(input).map_err(|e| fail(&e))?;
        encoder.finish().map_err(|e| fail(&e))?;
        Ok(())
    }

    fn decompress(
        &self,
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), DecompressError> {
        read_capped(lz4_flex::frame::FrameDecoder::new(input), "lz4", limit, out)
    }
}
