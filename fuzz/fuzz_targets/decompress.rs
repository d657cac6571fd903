//! Decompresses arbitrary bytes with every algorithm under a 1 MiB limit: errors are fine,
//! panics, hangs and output past the limit are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_compression::CompressionSet;

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    for algorithm in CompressionSet::with_defaults().iter() {
        let mut out = Vec::new();
        let _ = algorithm.decompress(data, LIMIT, &mut out);
        assert!(
            out.len() <= LIMIT,
            "{} produced {} bytes",
            algorithm.name(),
            out.len()
        );
    }
});
