//! Reading a decoder's output into a buffer without ever holding more than the limit.

use std::io::{ErrorKind, Read};

use crate::DecompressError;

/// The first read is this big at most; the buffer then doubles, so a small message costs a
/// small buffer and a larger one O(log n) reallocations.
const FIRST_CHUNK: usize = 16 * 1024;

/// Output size from which the buffer is reserved up to the limit in one step.
const JUMP_AT: usize = 4 * 1024 * 1024;

/// The most handed to one `read` call.
const READ_CHUNK: usize = 256 * 1024;

/// Reads all of `reader` into `out`, failing with [`DecompressError::TooLarge`] as soon as
/// more than `limit` bytes arrive. The buffer's capacity never exceeds what was already
/// there plus `limit + 1` bytes, whatever the reader would produce.
///
/// `algorithm` names the decoder in [`DecompressError::Corrupt`] errors.
pub fn read_capped(
    mut reader: impl Read,
    algorithm: &str,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    let start = out.len();
    // One byte past the limit is how an overflow is detected.
    let hard_end = start.saturating_add(limit).saturating_add(1);
    loop {
        if out.len() == out.capacity() {
            let produced = out.len() - start;
            let room_left = hard_end - out.len();
            // Small outputs double. Past JUMP_AT, reserve everything up to the limit at once:
            // the reservation is virtual until written, and it means the only block a
            // reallocation may ever copy is smaller than JUMP_AT, so peak memory stays
            // below limit + 2 * JUMP_AT whatever the allocator does.
            let grow = if produced < JUMP_AT {
                produced.max(FIRST_CHUNK).min(room_left)
            } else {
                room_left
            };
            out.reserve_exact(grow);
        }
        let filled = out.len();
        // Hand the reader a bounded slice: it must be zeroed first, and a reader that
        // returns little at a time must not make us zero the whole spare capacity each time.
        let chunk = (out.capacity().min(hard_end) - filled).min(READ_CHUNK);
        out.resize(filled + chunk, 0);
        let read = match reader.read(&mut out[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => 0,
            Err(e) => {
                out.truncate(filled);
                return Err(DecompressError::corrupt(algorithm, e));
            }
        };
        out.truncate(filled + read);
        if out.len() - start > limit {
            out.truncate(start + limit);
            return Err(DecompressError::TooLarge { limit });
        }
        // `chunk` is never 0 (there is always room up to `hard_end`), so 0 means the end.
        if read == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that produces `remaining` zero bytes, in small pieces.
    struct Zeros {
        remaining: usize,
    }

    impl Read for Zeros {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.remaining).min(3000);
            buf[..n].fill(0);
            self.remaining -= n;
            Ok(n)
        }
    }

    #[test]
    fn reads_everything_up_to_the_limit() {
        let mut out = vec![1, 2, 3];
        read_capped(Zeros { remaining: 100_000 }, "test", 100_000, &mut out).expect("fits");
        assert_eq!(out.len(), 100_003);
        assert_eq!(&out[..3], &[1, 2, 3]);
    }

    #[test]
    fn stops_one_byte_past_the_limit_without_growing_further() {
        let mut out = Vec::new();
        let error = read_capped(
            Zeros {
                remaining: usize::MAX,
            },
            "test",
            1_000_000,
            &mut out,
        )
        .expect_err("too large");
        assert_eq!(error, DecompressError::TooLarge { limit: 1_000_000 });
        assert!(out.capacity() <= 1_000_001, "capacity {}", out.capacity());
    }

    #[test]
    fn an_empty_stream_is_fine() {
        let mut out = Vec::new();
        read_capped(Zeros { remaining: 0 }, "test", 10, &mut out).expect("empty");
        assert!(out.is_empty());
        // A limit of zero still accepts empty output.
        read_capped(Zeros { remaining: 0 }, "test", 0, &mut out).expect("empty");
        let error = read_capped(Zeros { remaining: 1 }, "test", 0, &mut out).expect_err("over");
        assert_eq!(error, DecompressError::TooLarge { limit: 0 });
    }
}
