//! Compression bombs: for every algorithm, an input that expands to 1 GiB or more is refused
//! with `TooLarge`, and memory grows by less than the limit plus 16 MiB while refusing it.
//!
//! Memory is measured twice: by a counting global allocator (every Rust allocation, exact)
//! and by the process's peak RSS (`VmHWM`, reset through `/proc/self/clear_refs`), which also
//! sees the zstd C library's own allocations. Everything runs in one test so nothing else
//! allocates meanwhile.
#![cfg(all(
    feature = "gzip",
    feature = "deflate",
    feature = "zstd",
    feature = "snappy",
    feature = "lz4"
))]

use std::io::Write;

use otlp_compression::{
    Compression, DEFAULT_DECOMPRESSED_LIMIT, DecompressError, Gzip, Lz4, SnappyBlock, SnappyFramed,
    Zlib, Zstd,
};
use otlp_testkit::memory::{CountingAllocator, PeakWindow};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const GIB: usize = 1 << 30;
const MIB: usize = 1 << 20;

/// Repeats `unit` until the whole expands to at least 1 GiB, for formats that concatenate.
fn repeat(unit: &[u8], unit_expands_to: usize) -> Vec<u8> {
    unit.repeat(GIB.div_ceil(unit_expands_to))
}

fn compress_zeros(algorithm: &dyn Compression, size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    algorithm
        .compress(&vec![0u8; size], &mut out)
        .expect("compress");
    out
}

struct Bomb {
    name: &'static str,
    algorithm: Box<dyn Compression>,
    input: Vec<u8>,
}

fn bombs() -> Vec<Bomb> {
    let mut bombs = Vec::new();

    // gzip: concatenated members are one valid gzip stream.
    let member = compress_zeros(&Gzip::new(9), 16 * MIB);
    bombs.push(Bomb {
        name: "gzip",
        algorithm: Box::new(Gzip::default()),
        input: repeat(&member, 16 * MIB),
    });

    // zlib: one stream, written 1 GiB of zeros in pieces.
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 16 * MIB];
    for _ in 0..(GIB / zeros.len()) {
        encoder.write_all(&zeros).expect("zlib write");
    }
    bombs.push(Bomb {
        name: "deflate",
        algorithm: Box::new(Zlib::default()),
        input: encoder.finish().expect("zlib"),
    });

    // zstd: concatenated frames are one valid zstd stream.
    let frame = compress_zeros(&Zstd::new(19), 64 * MIB);
    bombs.push(Bomb {
        name: "zstd",
        algorithm: Box::new(Zstd::default()),
        input: repeat(&frame, 64 * MIB),
    });

    // snappy framed: the stream identifier, then one 64 KiB data chunk repeated.
    let one_chunk = compress_zeros(&SnappyFramed, 64 * 1024);
    let (identifier, chunk) = one_chunk.split_at(10);
    let mut framed = identifier.to_vec();
    framed.extend(repeat(chunk, 64 * 1024));
    bombs.push(Bomb {
        name: "x-snappy-framed",
        algorithm: Box::new(SnappyFramed),
        input: framed,
    });

    // snappy block: a genuine 1 GiB block, refused from its length prefix alone.
    bombs.push(Bomb {
        name: "snappy",
        algorithm: Box::new(SnappyBlock),
        input: compress_zeros(&SnappyBlock, GIB),
    });

    // lz4: one frame of 1 GiB of zeros.
    let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
    for _ in 0..(GIB / zeros.len()) {
        encoder.write_all(&zeros).expect("lz4 write");
    }
    bombs.push(Bomb {
        name: "lz4",
        algorithm: Box::new(Lz4),
        input: encoder.finish().expect("lz4"),
    });
    bombs
}

#[test]
fn every_algorithm_refuses_a_gigabyte_bomb_within_bounded_memory() {
    let limit = DEFAULT_DECOMPRESSED_LIMIT;
    let allowance = limit + 16 * MIB;
    let mut report = Vec::new();

    for bomb in bombs() {
        let input_kib = bomb.input.len() / 1024;
        let window = PeakWindow::start();
        let mut out = Vec::new();
        let result = bomb.algorithm.decompress(&bomb.input, limit, &mut out);
        let heap_growth = window.heap_growth();
        let rss_growth = window.rss_growth();
        drop(out);

        assert_eq!(
            result,
            Err(DecompressError::TooLarge { limit }),
            "{}",
            bomb.name
        );
        assert!(
            heap_growth < allowance,
            "{}: heap grew {} MiB",
            bomb.name,
            heap_growth / MIB
        );
        if let Some(rss_growth) = rss_growth {
            assert!(
                rss_growth < allowance,
                "{}: RSS grew {} MiB",
                bomb.name,
                rss_growth / MIB
            );
        }
        report.push(format!(
            "{:>16}: {:>7} KiB in, heap +{:>3} MiB, peak RSS +{:>3} MiB",
            bomb.name,
            input_kib,
            heap_growth / MIB,
            rss_growth.map_or("n/a".to_string(), |g| (g / MIB).to_string())
        ));
    }
    println!(
        "limit {} MiB, allowance {} MiB\n{}",
        limit / MIB,
        allowance / MIB,
        report.join("\n")
    );
}

#[test]
fn headers_that_claim_huge_sizes_are_refused_before_allocating() {
    // A snappy block whose varint prefix claims 4 GiB, followed by a few bytes.
    let mut claim = Vec::new();
    let mut n: u64 = 4 * GIB as u64;
    while n >= 0x80 {
        claim.push((n as u8) | 0x80);
        n >>= 7;
    }
    claim.push(n as u8);
    claim.extend_from_slice(&[0, 0, 0, 0]);
    let mut out = Vec::new();
    let result = SnappyBlock.decompress(&claim, DEFAULT_DECOMPRESSED_LIMIT, &mut out);
    assert_eq!(
        result,
        Err(DecompressError::TooLarge {
            limit: DEFAULT_DECOMPRESSED_LIMIT
        })
    );
    assert_eq!(out.capacity(), 0, "nothing allocated for the claim");

    // A claim under the limit that the input cannot possibly fill is corrupt, not allocated.
    let mut claim = vec![0x80, 0x80, 0x80, 0x10]; // 32 MiB
    claim.extend_from_slice(&[0; 8]);
    let result = SnappyBlock.decompress(&claim, DEFAULT_DECOMPRESSED_LIMIT, &mut out);
    assert!(
        matches!(result, Err(DecompressError::Corrupt { .. })),
        "{result:?}"
    );
    assert_eq!(out.capacity(), 0);

    // A zstd frame whose header declares a 2 GiB window (window log 31): magic, frame
    // header descriptor 0x00 (no content size, no checksum, not single-segment), window
    // descriptor with exponent 21 (log 10 + 21 = 31), then an empty last raw block.
    let frame = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 21 << 3, 0x01, 0x00, 0x00];
    let mut out = Vec::new();
    let result = Zstd::default().decompress(&frame, DEFAULT_DECOMPRESSED_LIMIT, &mut out);
    assert_eq!(
        result,
        Err(DecompressError::TooLarge {
            limit: DEFAULT_DECOMPRESSED_LIMIT
        })
    );
    assert!(
        out.capacity() <= 16 * 1024,
        "only the first read buffer: {}",
        out.capacity()
    );
}
