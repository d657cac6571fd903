//! Interoperability with implementations no one here wrote, in both directions: the
//! `gzip`, `zstd` and `lz4` command-line tools, and Python's `zlib`, `zstandard`, `lz4` and
//! `cramjam` (snappy block and framed) modules.
//!
//! `cargo xtask ci` installs the tools and a Python environment and sets
//! `OTLP_INTEROP_REQUIRED=1`, which turns a missing tool into a failure; a plain
//! `cargo test` skips what is missing and says so.
#![cfg(all(
    feature = "gzip",
    feature = "deflate",
    feature = "zstd",
    feature = "snappy",
    feature = "lz4"
))]

use otlp_compression::{Compression, Gzip, Lz4, SnappyBlock, SnappyFramed, Zlib, Zstd};
use prost::Message;

use otlp_testkit::interop::{python, run};

fn payload() -> Vec<u8> {
    otlp_testkit::realistic::traces(2_000, 11).encode_to_vec()
}

fn ours_to_theirs_and_back(
    algorithm: &dyn Compression,
    decompress: (&str, &[&str]),
    compress: (&str, &[&str]),
) {
    let data = payload();
    let mut compressed = Vec::new();
    algorithm
        .compress(&data, &mut compressed)
        .expect("compress");
    let Some(theirs) = run(decompress.0, decompress.1, &compressed) else {
        return;
    };
    assert_eq!(
        theirs,
        data,
        "{} {:?} decoded our {} differently",
        decompress.0,
        decompress.1,
        algorithm.name()
    );

    let Some(their_compressed) = run(compress.0, compress.1, &data) else {
        return;
    };
    let mut out = Vec::new();
    algorithm
        .decompress(&their_compressed, data.len(), &mut out)
        .unwrap_or_else(|e| panic!("we cannot read {} {:?}: {e}", compress.0, compress.1));
    assert_eq!(out, data);
}

#[test]
fn gzip_command_line_tool() {
    ours_to_theirs_and_back(
        &Gzip::default(),
        ("gzip", &["-dc"]),
        ("gzip", &["-c", "-9"]),
    );
}

#[test]
fn zstd_command_line_tool() {
    ours_to_theirs_and_back(&Zstd::new(19), ("zstd", &["-dc"]), ("zstd", &["-c", "-19"]));
}

#[test]
fn lz4_command_line_tool() {
    ours_to_theirs_and_back(&Lz4, ("lz4", &["-dc"]), ("lz4", &["-c", "-9"]));
}

/// A Python filter: `mode` is `compress` or `decompress`, `codec` one of the names below.
const PYTHON_FILTER: &str = r#"
import sys
mode, codec = sys.argv[1], sys.argv[2]
data = sys.stdin.buffer.read()
if codec == "zlib":
    import zlib
    out = zlib.compress(data, 9) if mode == "compress" else zlib.decompress(data)
elif codec == "zstd":
    import zstandard
    out = zstandard.ZstdCompressor(level=10).compress(data) if mode == "compress" else zstandard.ZstdDecompressor().decompressobj().decompress(data)
elif codec == "lz4":
    import lz4.frame
    out = lz4.frame.compress(data) if mode == "compress" else lz4.frame.decompress(data)
elif codec == "snappy-block":
    import cramjam
    out = bytes(cramjam.snappy.compress_raw(data) if mode == "compress" else cramjam.snappy.decompress_raw(data))
elif codec == "snappy-framed":
    import cramjam
    out = bytes(cramjam.snappy.compress(data) if mode == "compress" else cramjam.snappy.decompress(data))
else:
    raise SystemExit("unknown codec " + codec)
sys.stdout.buffer.write(out)
"#;

fn python_round_trip(algorithm: &dyn Compression, codec: &str) {
    let python = python();
    ours_to_theirs_and_back(
        algorithm,
        (&python, &["-c", PYTHON_FILTER, "decompress", codec]),
        (&python, &["-c", PYTHON_FILTER, "compress", codec]),
    );
}

#[test]
fn python_zlib() {
    python_round_trip(&Zlib::new(9), "zlib");
}

#[test]
fn python_zstandard() {
    python_round_trip(&Zstd::default(), "zstd");
}

#[test]
fn python_lz4_frame() {
    python_round_trip(&Lz4, "lz4");
}

#[test]
fn python_snappy_block() {
    python_round_trip(&SnappyBlock, "snappy-block");
}

#[test]
fn python_snappy_framed() {
    python_round_trip(&SnappyFramed, "snappy-framed");
}
