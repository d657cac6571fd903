//! Zstandard, through the reference C library, with the decoder's window bounded by the
//! output limit so that a frame declaring a huge window is refused before allocation.

use std::io::Read;

use zstd::stream::raw::DParameter;

use crate::{Compression, CompressionError, DecompressError, read_capped};

/// The smallest window log zstd allows.
const MIN_WINDOW_LOG: u32 = 10;
/// The default largest window: 8 MiB, what zstd uses up to level 19 and what common encoders
/// (the zstd CLI without `--ultra`/`--long`, Go's klauspost encoder) produce.
const DEFAULT_MAX_WINDOW_LOG: u32 = 23;
/// zstd's own decoder ceiling (128 MiB).
const MAX_WINDOW_LOG: u32 = 27;

/// Zstandard (RFC 8878): better ratios than gzip at higher speed.
///
/// The decoder's window, its one large allocation, is bounded by
/// [`Zstd::with_max_window_log`] (8 MiB by default), independently of the output limit: an
/// encoder that does not know the content size (a stream, stdin) declares its level's full
/// window even for a small message. A frame that declares a larger window is refused with
/// `TooLarge` before the window is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zstd {
    level: i32,
    max_window_log: u32,
}

impl Zstd {
    /// zstd at `level` (1 = fastest ... 22 = smallest; negative levels are faster still).
    pub fn new(level: i32) -> Self {
        Self {
            level: level.clamp(-7, 22),
            max_window_log: DEFAULT_MAX_WINDOW_LOG,
        }
    }

    /// Accepts frames with windows up to `2^log` bytes (10..=27), for peers that compress
    /// with `--ultra` or `--long`. Memory per decompression grows accordingly.
    pub fn with_max_window_log(mut self, log: u32) -> Self {
        self.max_window_log = log.clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG);
        self
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }
}

impl Default for Zstd {
    /// Level 3, zstd's default.
    fn default() -> Self {
        Self::new(3)
    }
}

impl Compression for Zstd {
    fn name(&self) -> &str {
        "zstd"
    }

    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
        let compressed = zstd::bulk::compress(input, self.level).map_err(|e| CompressionError {
            algorithm: "zstd".into(),
            message: e.to_string(),
        })?;
        out.extend_from_slice(&compressed);
        Ok(())
    }

    fn decompress(
        &self,
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), DecompressError> {
        let mut decoder = zstd::stream::read::Decoder::with_buffer(input)
            .map_err(|e| DecompressError::corrupt("zstd", e))?;
        decoder
            .set_parameter(DParameter::WindowLogMax(self.max_window_log))
            .map_err(|e| DecompressError::corrupt("zstd", e))?;
        match read_capped(decoder.by_ref(), "zstd", limit, out) {
            // The decoder refuses a frame whose window exceeds WindowLogMax with this
            // message; that is a size refusal, not corruption.
            Err(DecompressError::Corrupt { message, .. })
                if message.contains("Frame requires too much memory") =>
            {
                Err(DecompressError::TooLarge { limit })
            }
            other => other,
        }
    }
}
