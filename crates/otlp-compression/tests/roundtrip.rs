//! Round trips for every algorithm and level, exact limits, and hostile input that must
//! produce an error, never a panic.
#![cfg(all(
    feature = "gzip",
    feature = "deflate",
    feature = "zstd",
    feature = "snappy",
    feature = "lz4"
))]

use std::sync::Arc;

use otlp_compression::{
    Compression, CompressionSet, DecompressError, Gzip, Lz4, SnappyBlock, SnappyFramed, Zlib, Zstd,
};
use proptest::prelude::*;
use prost::Message;

fn algorithm() -> impl Strategy<Value = Arc<dyn Compression>> {
    prop_oneof![
        (0u32..=9).prop_map(|l| Arc::new(Gzip::new(l)) as Arc<dyn Compression>),
        (0u32..=9).prop_map(|l| Arc::new(Zlib::new(l)) as Arc<dyn Compression>),
        (-5i32..=19).prop_map(|l| Arc::new(Zstd::new(l)) as Arc<dyn Compression>),
        Just(Arc::new(SnappyBlock) as Arc<dyn Compression>),
        Just(Arc::new(SnappyFramed) as Arc<dyn Compression>),
        Just(Arc::new(Lz4) as Arc<dyn Compression>),
    ]
}

/// Bytes that compress well sometimes (runs) and badly other times (noise).
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..4096),
        (any::<u8>(), 0usize..100_000).prop_map(|(b, n)| vec![b; n]),
        (0usize..200).prop_map(|n| otlp_testkit::realistic::traces(n, 3).encode_to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_algorithm_and_level_round_trips(algorithm in algorithm(), data in payload()) {
        let mut compressed = Vec::new();
        algorithm.compress(&data, &mut compressed)?;
        let mut out = vec![0xAA]; // decompress appends
        algorithm.decompress(&compressed, data.len(), &mut out)?;
        prop_assert_eq!(&out[1..], &data[..]);

        if !data.is_empty() {
            // One byte less than the output is too large.
            let mut out = Vec::new();
            prop_assert_eq!(
                algorithm.decompress(&compressed, data.len() - 1, &mut out),
                Err(DecompressError::TooLarge { limit: data.len() - 1 })
            );
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics(algorithm in algorithm(), data in payload(), garbage in proptest::collection::vec(any::<u8>(), 0..512), cut in any::<proptest::sample::Index>()) {
        let mut out = Vec::new();
        // Random bytes: any result but a panic; output never exceeds the limit.
        let _ = algorithm.decompress(&garbage, 1 << 16, &mut out);
        prop_assert!(out.len() <= 1 << 16);

        let mut compressed = Vec::new();
        algorithm.compress(&data, &mut compressed)?;
        if !compressed.is_empty() {
            let truncated = &compressed[..cut.index(compressed.len())];
            let mut out = Vec::new();
            let result = algorithm.decompress(truncated, data.len() + 1, &mut out);
            // A truncated stream may decode to a prefix for stream formats without an end
            // marker, but it must never produce more than the original.
            if result.is_ok() {
                prop_assert!(out.len() <= data.len());
            }
        }
    }

    #[test]
    fn every_name_in_the_default_set_resolves(token in prop::sample::select(vec!["gzip", "GZIP", "x-gzip", "deflate", "zlib", "zstd", "snappy", "x-snappy-framed", "lz4"])) {
        prop_assert!(CompressionSet::with_defaults().by_http_name(token).is_some());
    }
}

#[test]
fn a_flipped_checksum_byte_is_corrupt() {
    let data = otlp_testkit::realistic::logs(50, 1).encode_to_vec();
    for algorithm in [
        &Gzip::default() as &dyn Compression,
        &SnappyFramed,
        &Lz4,
        &Zlib::default(),
    ] {
        let mut compressed = Vec::new();
        algorithm
            .compress(&data, &mut compressed)
            .expect("compress");
        let last = compressed.len() - 2;
        compressed[last] ^= 0xff;
        let mut out = Vec::new();
        let result = algorithm.decompress(&compressed, 1 << 20, &mut out);
        assert!(
            matches!(result, Err(DecompressError::Corrupt { .. })),
            "{}: {result:?}",
            algorithm.name()
        );
    }
}

#[test]
fn protocol_names_and_negotiation() {
    let set = CompressionSet::with_defaults();
    assert_eq!(
        set.grpc_accept_encoding(),
        "zstd,gzip,deflate,lz4,snappy,identity"
    );
    assert_eq!(
        set.http_accept_encoding(),
        "zstd, gzip, deflate, lz4, x-snappy-framed, snappy, identity"
    );
    // gRPC's snappy is the framed format; HTTP's is the block format.
    assert_eq!(
        set.by_grpc_name("snappy").map(|c| c.name()),
        Some("x-snappy-framed")
    );
    assert_eq!(set.by_http_name("snappy").map(|c| c.name()), Some("snappy"));
    assert_eq!(set.by_http_name("zlib").map(|c| c.name()), Some("deflate"));
    assert!(set.by_http_name("br").is_none());

    let name = |c: Option<&Arc<dyn Compression>>| c.map(|c| c.name().to_string());
    assert_eq!(
        name(set.negotiate_http("gzip, zstd;q=0")),
        Some("gzip".into())
    );
    assert_eq!(name(set.negotiate_http("*")), Some("zstd".into()));
    assert_eq!(
        name(set.negotiate_http("*, zstd;q=0, gzip;q=0")),
        Some("deflate".into())
    );
    assert_eq!(name(set.negotiate_http("identity")), None);
    assert_eq!(name(set.negotiate_http("")), None);
    assert_eq!(name(set.negotiate_http("gzip;q=banana")), None);
    assert_eq!(
        name(set.negotiate_grpc("identity,deflate,gzip")),
        Some("gzip".into())
    );
    assert_eq!(
        name(set.negotiate_grpc("snappy")),
        Some("x-snappy-framed".into())
    );

    // A replacement keeps the algorithm's place in the preference order.
    let set = set.with(Gzip::new(1));
    assert_eq!(set.iter().position(|c| c.name() == "gzip"), Some(1));
}

#[test]
fn raw_deflate_is_accepted_under_the_deflate_name() {
    use std::io::Write;
    let data = b"raw deflate without the zlib wrapper".repeat(20);
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&data).expect("write");
    let raw = encoder.finish().expect("finish");
    let mut out = Vec::new();
    Zlib::default()
        .decompress(&raw, 1 << 20, &mut out)
        .expect("raw deflate");
    assert_eq!(out, data);
}

#[test]
fn zstd_window_bound_is_configurable() {
    use std::io::Write;
    use zstd::stream::raw::CParameter;
    // A frame declaring a 64 MiB window, as `zstd --long=26` writes.
    let data: Vec<u8> = (0..(1u32 << 20)).flat_map(|i| i.to_le_bytes()).collect();
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
    encoder
        .set_parameter(CParameter::WindowLog(26))
        .expect("window");
    encoder.write_all(&data).expect("write");
    let compressed = encoder.finish().expect("finish");

    let mut out = Vec::new();
    assert_eq!(
        Zstd::default().decompress(&compressed, 64 << 20, &mut out),
        Err(DecompressError::TooLarge { limit: 64 << 20 })
    );
    out.clear();
    Zstd::default()
        .with_max_window_log(26)
        .decompress(&compressed, 64 << 20, &mut out)
        .expect("allowed with a larger window bound");
    assert_eq!(out, data);
}
