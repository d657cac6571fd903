//! The whole comparison in one place: the design document's tables (protocols,
//! serialization, compression, scenario presets) with this run's measured figures beside
//! the document's claims and the official-crate baselines, as Markdown, JSON and an SVG
//! chart. Built only from the suites' results of the same run.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::measure::Report;

/// The design document's protocol table (10,000 spans): spans/s, latency, CPU %.
const DOC_PROTOCOLS: [(&str, f64, f64, f64); 3] = [
    ("gRPC", 50_000.0, 5.0, 15.0),
    ("HTTP/JSON", 15_000.0, 20.0, 35.0),
    ("WebSocket", 30_000.0, 10.0, 25.0),
];

/// The design document's serialization table (10,000 spans): MB, encode ms, decode ms.
const DOC_FORMATS: [(&str, f64, f64, f64); 4] = [
    ("Protobuf", 3.4, 10.0, 8.0),
    ("JSON", 12.5, 45.0, 60.0),
    ("MessagePack", 4.2, 15.0, 12.0),
    ("CBOR", 3.8, 12.0, 10.0),
];

/// Cores of the machine the figures are divided by for CPU %.
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

fn rows<'a>(reports: &'a [Report], suite: &str) -> Vec<&'a Value> {
    reports
        .iter()
        .find(|r| r.name == suite)
        .and_then(|r| r.json["rows"].as_array())
        .map(|rows| rows.iter().collect())
        .unwrap_or_default()
}

fn find<'a>(rows: &[&'a Value], batch: u64, key: &str, label: &str) -> Option<&'a Value> {
    rows.iter()
        .copied()
        .find(|r| r["batch"].as_u64() == Some(batch) && r[key].as_str() == Some(label))
}

fn number(row: &Value, key: &str) -> f64 {
    row[key].as_f64().unwrap_or(f64::NAN)
}

/// One line of the protocol table.
struct Protocol<'a> {
    name: &'static str,
    ours: &'a Value,
    baseline: Option<(&'static str, &'a Value)>,
    doc: Option<(f64, f64, f64)>,
}

fn protocols(reports: &[Report]) -> Vec<Protocol<'_>> {
    let grpc = rows(reports, "grpc");
    let http = rows(reports, "http");
    let websocket = rows(reports, "websocket");
    let doc = |name: &str| {
        DOC_PROTOCOLS
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|&(_, rate, latency, cpu)| (rate, latency, cpu))
    };
    let tonic = find(
        &grpc,
        512,
        "client_receiver",
        "tonic + opentelemetry-proto unary",
    )
    .map(|row| ("tonic + opentelemetry-proto", row));
    let http_row = |format: &str, label: &str| {
        http.iter().copied().find(|r| {
            r["batch"].as_u64() == Some(512)
                && r["format"].as_str() == Some(format)
                && r["sender_receiver"].as_str() == Some(label)
        })
    };
    let mut list: Vec<Protocol<'_>> = Vec::new();
    if let Some(ours) = find(
        &grpc,
        512,
        "client_receiver",
        "otlp-grpc unary (validating receiver)",
    ) {
        list.push(Protocol {
            name: "gRPC unary",
            ours,
            baseline: tonic,
            doc: doc("gRPC"),
        });
    }
    if let Some(ours) = find(&grpc, 512, "client_receiver", "otlp-grpc bidirectional") {
        list.push(Protocol {
            name: "gRPC bidirectional",
            ours,
            baseline: tonic,
            doc: doc("gRPC"),
        });
    }
    let hyper = |format| {
        http_row(
            format,
            "hyper client -> hyper + opentelemetry-proto receiver",
        )
        .map(|row| ("hyper + opentelemetry-proto", row))
    };
    if let Some(ours) = http_row("Protobuf", "hyper client -> otlp-http receiver") {
        list.push(Protocol {
            name: "HTTP/protobuf",
            ours,
            baseline: hyper("Protobuf"),
            doc: None,
        });
    }
    if let Some(ours) = http_row("Json", "hyper client -> otlp-http receiver") {
        list.push(Protocol {
            name: "HTTP/JSON",
            ours,
            baseline: hyper("Json"),
            doc: doc("HTTP/JSON"),
        });
    }
    if let Some(ours) = find(
        &websocket,
        512,
        "client_receiver",
        "otlp-websocket (protobuf, validating receiver)",
    ) {
        list.push(Protocol {
            name: "WebSocket",
            ours,
            baseline: tonic,
            doc: doc("WebSocket"),
        });
    }
    list
}

fn cpu_ns_per_span(row: &Value) -> f64 {
    let direct = number(row, "cpu_ns_per_span");
    if direct.is_finite() {
        direct
    } else {
        number(row, "cpu_cores") * 1e9 / number(row, "spans_per_s")
    }
}

fn fmt_rate(rate: f64) -> String {
    if !rate.is_finite() {
        "-".into()
    } else if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else {
        format!("{:.0} K", rate / 1e3)
    }
}

/// Builds the summary report and writes the SVG chart beside it.
pub(crate) fn build(reports: &[Report], quick: bool, dir: &Path) -> std::io::Result<Report> {
    let cores = cores();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# otlp-transport: the whole comparison ({} run, {cores} cores)\n\n\
         Every figure below was measured in this run by `cargo xtask bench{}`; the design \
         document's claims stand beside them as the document states them. Baselines are the \
         official `opentelemetry-proto` types behind tonic (gRPC) or hyper (HTTP), measured \
         in the same run on the same requests.\n",
        if quick { "quick" } else { "full" },
        if quick { " --quick" } else { "" }
    );

    let protocols = protocols(reports);
    let mut protocol_json = Vec::new();
    if !protocols.is_empty() {
        let _ = writeln!(
            md,
            "## Protocols (batches of 512 realistic spans, 16 exports in flight, both ends in one process)\n\n\
             CPU % is of the whole machine for client and receiver together at the measured rate; \
             \"CPU % at the document's rate\" scales our CPU per span to the rate the document claims, \
             to compare like with like.\n\n\
             | protocol | ours spans/s | p50 | p99 | CPU % | CPU ns/span | baseline | baseline spans/s | ours / baseline | document: spans/s, latency, CPU % | ours / document rate | CPU % at the document's rate |\n\
             |---|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|"
        );
        for p in &protocols {
            let rate = number(p.ours, "spans_per_s");
            let ns = cpu_ns_per_span(p.ours);
            let cpu_percent = number(p.ours, "cpu_cores") / cores * 100.0;
            let (baseline_name, baseline_rate) = match p.baseline {
                Some((name, row)) => (name, number(row, "spans_per_s")),
                None => ("-", f64::NAN),
            };
            let (doc_text, doc_ratio, doc_cpu) = match p.doc {
                Some((doc_rate, latency, cpu)) => (
                    format!("{} / {latency} ms / {cpu}%", fmt_rate(doc_rate)),
                    format!("{:.0}x", rate / doc_rate),
                    format!("{:.2}%", ns * doc_rate / 1e9 / cores * 100.0),
                ),
                None => ("(not in the document)".into(), "-".into(), "-".into()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} ms | {:.2} ms | {:.0}% | {:.0} | {baseline_name} | {} | {:.2}x | {doc_text} | {doc_ratio} | {doc_cpu} |",
                p.name,
                fmt_rate(rate),
                number(p.ours, "p50_us") / 1e3,
                number(p.ours, "p99_us") / 1e3,
                cpu_percent,
                ns,
                fmt_rate(baseline_rate),
                rate / baseline_rate,
            );
            protocol_json.push(json!({
                "protocol": p.name,
                "spans_per_s": rate,
                "p50_us": number(p.ours, "p50_us"),
                "p99_us": number(p.ours, "p99_us"),
                "cpu_percent": cpu_percent,
                "cpu_ns_per_span": ns,
                "baseline": baseline_name,
                "baseline_spans_per_s": baseline_rate,
                "vs_baseline": rate / baseline_rate,
                "document": p.doc.map(|(r, l, c)| json!({"spans_per_s": r, "latency_ms": l, "cpu_percent": c})),
            }));
        }
        md.push('\n');
    }

    let codecs = rows(reports, "codecs");
    let mut format_json = Vec::new();
    if !codecs.is_empty() {
        let _ = writeln!(
            md,
            "## Serialization (10,000 realistic spans)\n\n\
             | format | size | encode | decode | opentelemetry-proto encode / decode | document: size, encode, decode |\n\
             |---|---:|---:|---:|---:|---|"
        );
        for row in &codecs {
            let format = row["format"].as_str().unwrap_or("?");
            let doc = DOC_FORMATS
                .iter()
                .find(|(name, ..)| format.starts_with(name))
                .map(|(_, mb, e, d)| format!("{mb} MB / {e} ms / {d} ms"))
                .unwrap_or_else(|| "-".into());
            let baseline = match (
                row["baseline_encode_ms"].as_f64(),
                row["baseline_decode_ms"].as_f64(),
            ) {
                (Some(e), Some(d)) => format!("{e:.1} ms / {d:.1} ms"),
                _ => "-".into(),
            };
            let _ = writeln!(
                md,
                "| {format} | {:.2} MB | {:.1} ms | {:.1} ms | {baseline} | {doc} |",
                number(row, "bytes") / 1e6,
                number(row, "encode_ms"),
                number(row, "decode_ms"),
            );
            format_json.push((*row).clone());
        }
        md.push('\n');
    }

    let compression = rows(reports, "compression");
    if !compression.is_empty() {
        let _ = writeln!(
            md,
            "## Compression (10,000 realistic spans as protobuf)\n\n\
             The document recommends gzip for throughput, reliability and browsers and none for \
             latency; it gives no figures.\n\n\
             | algorithm | ratio | compress | decompress |\n|---|---:|---:|---:|"
        );
        for row in &compression {
            let _ = writeln!(
                md,
                "| {} | {:.2}x | {:.0} MB/s | {:.0} MB/s |",
                row["algorithm"].as_str().unwrap_or("?"),
                number(row, "ratio"),
                number(row, "compress_mb_per_s"),
                number(row, "decompress_mb_per_s"),
            );
        }
        md.push('\n');
    }

    let scenarios = rows(reports, "scenarios");
    if !scenarios.is_empty() {
        let _ = writeln!(
            md,
            "## Scenario presets (the document's settings; whole client pipeline to our receiver)\n\n\
             | scenario | protocol | batch | timeout | compression | spans/s | export p50 | export p99 | CPU % | lost |\n\
             |---|---|---:|---:|---|---:|---:|---:|---:|---:|"
        );
        for row in &scenarios {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} ms | {} | {} | {:.2} ms | {:.2} ms | {:.0}% | {} |",
                row["scenario"].as_str().unwrap_or("?"),
                row["protocol"].as_str().unwrap_or("?"),
                row["batch"],
                number(row, "timeout_ms"),
                row["compression"].as_str().unwrap_or("?"),
                fmt_rate(number(row, "spans_per_s")),
                number(row, "export_p50_us") / 1e3,
                number(row, "export_p99_us") / 1e3,
                number(row, "cpu_cores") / cores * 100.0,
                row["lost"],
            );
        }
        md.push('\n');
    }

    let svg = chart(&protocol_json);
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.svg"), svg)?;
    let _ = writeln!(md, "Chart: `target/bench/summary.svg`.");
    Ok(Report {
        name: "summary",
        markdown: md,
        json: json!({
            "quick": quick,
            "cores": cores,
            "protocols": protocol_json,
            "formats": format_json,
            "compression": compression,
            "scenarios": scenarios,
        }),
    })
}

/// A horizontal bar chart of spans/s per protocol, ours beside the baseline.
fn chart(protocols: &[Value]) -> String {
    let bar_height = 18.0;
    let gap = 14.0;
    let left = 150.0;
    let width = 520.0;
    let max = protocols
        .iter()
        .flat_map(|p| [number(p, "spans_per_s"), number(p, "baseline_spans_per_s")])
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max);
    let height = 50.0 + protocols.len() as f64 * (2.0 * bar_height + gap);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">Spans/s at batch 512 on loopback: otlp-transport (blue) and the official baseline (grey)</text>\n",
        left + width + 110.0
    );
    let mut y = 40.0;
    for p in protocols {
        let name = p["protocol"].as_str().unwrap_or("?");
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{:.0}\">{name}</text>",
            y + bar_height
        );
        for (key, colour) in [
            ("spans_per_s", "#2b6cb0"),
            ("baseline_spans_per_s", "#a0aec0"),
        ] {
            let value = number(p, key);
            if value.is_finite() {
                let w = value / max * width;
                let _ = writeln!(
                    svg,
                    "<rect x=\"{left}\" y=\"{y:.0}\" width=\"{w:.1}\" height=\"{bar_height}\" fill=\"{colour}\"/>\
                     <text x=\"{:.1}\" y=\"{:.0}\">{}</text>",
                    left + w + 4.0,
                    y + bar_height - 4.0,
                    fmt_rate(value)
                );
            }
            y += bar_height;
        }
        y += gap;
    }
    svg.push_str("</svg>\n");
    svg
}
