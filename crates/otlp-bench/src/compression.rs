//! Compression: ratio, compress and decompress speed per algorithm and level, on the
//! protobuf encoding of 10,000 realistic spans.

use std::time::Duration;

use otlp_compression::{Compression, Gzip, Lz4, SnappyBlock, SnappyFramed, Zlib, Zstd};
use prost::Message;
use serde_json::json;

use crate::measure::{Report, keep, mb_per_s, median_time};

fn algorithms() -> Vec<(String, Box<dyn Compression>)> {
    let mut list: Vec<(String, Box<dyn Compression>)> = Vec::new();
    for level in [1, 6, 9] {
        list.push((format!("gzip -{level}"), Box::new(Gzip::new(level))));
    }
    for level in [1, 6, 9] {
        list.push((format!("deflate -{level}"), Box::new(Zlib::new(level))));
    }
    for level in [1, 3, 9, 19] {
        list.push((format!("zstd -{level}"), Box::new(Zstd::new(level))));
    }
    list.push(("snappy (block)".into(), Box::new(SnappyBlock)));
    list.push(("snappy (framed)".into(), Box::new(SnappyFramed)));
    list.push(("lz4 (frame)".into(), Box::new(Lz4)));
    list
}

pub(crate) fn run(quick: bool) -> Result<Report, String> {
    let spans = 10_000;
    let payload = otlp_testkit::realistic::traces(spans, 1).encode_to_vec();
    let budget = if quick {
        Duration::from_millis(150)
    } else {
        Duration::from_millis(800)
    };
    let min_runs = if quick { 2 } else { 5 };

    let mut markdown = format!(
        "## Compression: {spans} realistic spans, {:.2} MB of protobuf\n\n\
         | algorithm | compressed | ratio | compress MB/s | decompress MB/s |\n\
         |---|---:|---:|---:|---:|\n",
        payload.len() as f64 / 1e6
    );
    let mut rows = Vec::new();
    for (label, algorithm) in algorithms() {
        eprint!("compression: {label}...");
        let mut compressed = Vec::new();
        algorithm
            .compress(&payload, &mut compressed)
            .map_err(|e| e.to_string())?;
        let compress = median_time(budget, min_runs, || {
            let mut out = Vec::with_capacity(payload.len());
            let _ = algorithm.compress(keep(&payload), &mut out);
            keep(out);
        });
        let decompress = median_time(budget, min_runs, || {
            let mut out = Vec::new();
            let _ = algorithm.decompress(keep(&compressed), payload.len(), &mut out);
            keep(out);
        });
        let mut check = Vec::new();
        algorithm
            .decompress(&compressed, payload.len(), &mut check)
            .map_err(|e| format!("{label}: {e}"))?;
        if check != payload {
            return Err(format!("{label}: round trip differs"));
        }
        let ratio = payload.len() as f64 / compressed.len() as f64;
        let compress_mbs = mb_per_s(payload.len(), compress);
        let decompress_mbs = mb_per_s(payload.len(), decompress);
        eprintln!(" done");
        markdown.push_str(&format!(
            "| {label} | {} B | {ratio:.2}x | {compress_mbs:.0} | {decompress_mbs:.0} |\n",
            compressed.len()
        ));
        rows.push(json!({
            "algorithm": label,
            "compressed_bytes": compressed.len(),
            "ratio": ratio,
            "compress_mb_per_s": compress_mbs,
            "decompress_mb_per_s": decompress_mbs,
        }));
    }
    Ok(Report {
        name: "compression",
        markdown,
        json: json!({ "payload_bytes": payload.len(), "spans": spans, "quick": quick, "rows": rows }),
    })
}
