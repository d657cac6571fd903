//! Serialization: the design document's table for 10,000 realistic spans — size, encode
//! and decode time per format — beside the official `opentelemetry-proto` types (prost,
//! and its serde JSON) measured in the same run.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as Official;
use otlp_codec::{Cbor, Codec, Json, MessagePack, Protobuf};
use otlp_model::collector::trace::ExportTraceServiceRequest;
use prost::Message;
use serde_json::json;

use crate::measure::{Report, keep, median_time, paired};

/// The design document's claims for 10,000 spans: (size MB, encode ms, decode ms).
const CLAIMS: [(&str, f64, f64, f64); 4] = [
    ("Protobuf", 3.4, 10.0, 8.0),
    ("JSON", 12.5, 45.0, 60.0),
    ("MessagePack", 4.2, 15.0, 12.0),
    ("CBOR", 3.8, 12.0, 10.0),
];

struct Row {
    format: &'static str,
    size: usize,
    encode: Duration,
    decode: Duration,
}

fn measure(
    format: &'static str,
    codec: &dyn Codec<ExportTraceServiceRequest>,
    message: &ExportTraceServiceRequest,
    budget: Duration,
    min_runs: usize,
) -> Result<Row, String> {
    let mut encoded = Vec::new();
    codec
        .encode(message, &mut encoded)
        .map_err(|e| format!("{format}: {e}"))?;
    let encoded = Bytes::from(encoded);
    let back = codec
        .decode(encoded.clone())
        .map_err(|e| format!("{format}: {e}"))?;
    if &back != message {
        return Err(format!("{format}: round trip differs"));
    }
    let encode = median_time(budget, min_runs, || {
        let mut out = Vec::with_capacity(encoded.len());
        let _ = codec.encode(keep(message), &mut out);
        keep(out);
    });
    let decode = median_time(budget, min_runs, || {
        codec.decode(keep(encoded.clone())).ok()
    });
    Ok(Row {
        format,
        size: encoded.len(),
        encode,
        decode,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn run(quick: bool) -> Result<Report, String> {
    let spans = 10_000;
    let message = otlp_testkit::realistic::traces(spans, 1);
    let budget = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(2)
    };
    let min_runs = if quick { 3 } else { 10 };

    let mut rows = Vec::new();
    for (format, codec) in [
        (
            "Protobuf",
            &Protobuf::default() as &dyn Codec<ExportTraceServiceRequest>,
        ),
        ("JSON", &Json::default()),
        ("MessagePack", &MessagePack::default()),
        ("CBOR", &Cbor::default()),
    ] {
        eprint!("codecs: {format}...");
        rows.push(measure(format, codec, &message, budget, min_runs)?);
        eprintln!(" done");
    }

    // Baseline: the official crate's types, prost and serde JSON, each timed in alternation
    // with ours on the same input.
    eprint!("codecs: opentelemetry-proto baseline...");
    let protobuf = Bytes::from(message.encode_to_vec());
    let official = Official::decode(protobuf.as_ref()).map_err(|e| e.to_string())?;
    let official_json = Bytes::from(serde_json::to_vec(&official).map_err(|e| e.to_string())?);
    let mut our_json = Vec::new();
    Codec::<ExportTraceServiceRequest>::encode(&Json::default(), &message, &mut our_json)
        .map_err(|e| e.to_string())?;
    let our_json = Bytes::from(our_json);
    let pb_encode = paired(
        budget,
        min_runs,
        || {
            let mut out = Vec::with_capacity(protobuf.len());
            let _ = Codec::<ExportTraceServiceRequest>::encode(
                &Protobuf::default(),
                keep(&message),
                &mut out,
            );
            out
        },
        || keep(&official).encode_to_vec(),
    );
    let pb_decode = paired(
        budget,
        min_runs,
        || {
            Codec::<ExportTraceServiceRequest>::decode(&Protobuf::default(), keep(protobuf.clone()))
                .ok()
        },
        || Official::decode(keep(protobuf.as_ref())).ok(),
    );
    let json_encode = paired(
        budget,
        min_runs,
        || {
            let mut out = Vec::with_capacity(our_json.len());
            let _ = Codec::<ExportTraceServiceRequest>::encode(
                &Json::default(),
                keep(&message),
                &mut out,
            );
            out
        },
        || serde_json::to_vec(keep(&official)).ok(),
    );
    // Each decoder on its own writer's document, and both on the official document.
    let json_decode = paired(
        budget,
        min_runs,
        || {
            Codec::<ExportTraceServiceRequest>::decode(&Json::default(), keep(our_json.clone()))
                .ok()
        },
        || serde_json::from_slice::<Official>(keep(&official_json)).ok(),
    );
    let json_decode_same_input = paired(
        budget,
        min_runs,
        || {
            Codec::<ExportTraceServiceRequest>::decode(
                &Json::default(),
                keep(official_json.clone()),
            )
            .ok()
        },
        || serde_json::from_slice::<Official>(keep(&official_json)).ok(),
    );
    // What a forwarding receiver does instead of decoding: validate and count the items.
    let validate = paired(
        budget,
        min_runs,
        || {
            otlp_codec::validate::validate_request(otlp_core::SignalKind::Traces, keep(&protobuf))
                .ok()
        },
        || {
            Codec::<ExportTraceServiceRequest>::decode(&Protobuf::default(), keep(protobuf.clone()))
                .ok()
        },
    );
    eprintln!(" done");
    let (base_pb_encode, base_pb_decode) = (pb_encode.1, pb_decode.1);
    let (base_json_encode, base_json_decode) = (json_encode.1, json_decode.1);
    let speedups = |format: &str| match format {
        "Protobuf" => Some((pb_encode.2, pb_decode.2)),
        "JSON" => Some((json_encode.2, json_decode.2)),
        _ => None,
    };

    let protobuf_size = rows[0].size as f64;
    let mut markdown = format!(
        "## Serialization: {spans} realistic spans\n\n\
         | format | size | encode | decode | design doc claim (size / enc / dec) | vs opentelemetry-proto (enc / dec speed-up) |\n\
         |---|---:|---:|---:|---|---|\n"
    );
    let mut json_rows = Vec::new();
    for row in &rows {
        let claim = CLAIMS
            .iter()
            .find(|c| c.0 == row.format)
            .map_or(String::new(), |c| {
                format!("{:.1} MB / {:.0} ms / {:.0} ms", c.1, c.2, c.3)
            });
        let baseline = match row.format {
            "Protobuf" => Some((base_pb_encode, base_pb_decode)),
            "JSON" => Some((base_json_encode, base_json_decode)),
            _ => None,
        };
        let versus = match (baseline, speedups(row.format)) {
            (Some((e, d)), Some((es, ds))) => format!(
                "{es:.2}x / {ds:.2}x (theirs: {:.1} ms / {:.1} ms)",
                ms(e),
                ms(d)
            ),
            _ => "n/a (no official implementation)".to_string(),
        };
        markdown.push_str(&format!(
            "| {} | {:.2} MB ({:.2}x protobuf) | {:.2} ms | {:.2} ms | {claim} | {versus} |\n",
            row.format,
            row.size as f64 / 1e6,
            row.size as f64 / protobuf_size,
            ms(row.encode),
            ms(row.decode)
        ));
        json_rows.push(json!({
            "format": row.format,
            "bytes": row.size,
            "size_vs_protobuf": row.size as f64 / protobuf_size,
            "encode_ms": ms(row.encode),
            "decode_ms": ms(row.decode),
            "baseline_encode_ms": baseline.map(|b| ms(b.0)),
            "baseline_decode_ms": baseline.map(|b| ms(b.1)),
        }));
    }
    markdown.push_str(&format!(
        "\nopentelemetry-proto serde JSON size: {:.2} MB; decoding that same document takes ours {:.2} ms, theirs {:.2} ms ({:.2}x). \
         Speed-ups are medians of per-pair ratios, ours and theirs timed alternately on the same input; times are medians.\n",
        official_json.len() as f64 / 1e6,
        ms(json_decode_same_input.0),
        ms(json_decode_same_input.1),
        json_decode_same_input.2
    ));
    let validate_ns_per_byte = validate.0.as_secs_f64() * 1e9 / protobuf.len() as f64;
    markdown.push_str(&format!(
        "\nValidating the same protobuf without decoding it (what a forwarding receiver does: \
         every check prost makes, and the item count) takes {:.2} ms ({validate_ns_per_byte:.2} ns/byte), \
         {:.2}x faster than our decode ({:.2} ms) timed alternately with it.\n",
        ms(validate.0),
        validate.2,
        ms(validate.1),
    ));
    Ok(Report {
        name: "codecs",
        markdown,
        json: json!({
            "spans": spans,
            "quick": quick,
            "rows": json_rows,
            "validate_ms": ms(validate.0),
            "validate_ns_per_byte": validate_ns_per_byte,
            "validate_vs_decode_speedup": validate.2,
        }),
    })
}
