//! `otlp-bench <suite> [--quick]`: the benchmarks behind `cargo xtask bench`.
//!
//! Each suite prints a Markdown table and writes it, with the raw figures as JSON, under
//! `target/bench/`. Nothing here is typed by hand: every number is measured in the run.

use std::path::PathBuf;
use std::process::ExitCode;

mod codecs;
mod compression;
mod floor;
mod grpc;
mod http;
mod measure;
mod pipeline;
mod progress;
mod relay;
mod scenarios;
mod summary;

const USAGE: &str = "usage: otlp-bench <suite> [--quick]\n\nsuites:\n  codecs        size, encode and decode per format on 10,000 realistic spans, vs opentelemetry-proto\n  pipeline      batching + retry + queue overhead per span with a no-op exporter\n  compression   ratio and speed per algorithm and level on 10,000 realistic spans\n  grpc          OTLP/gRPC spans/s, latency and CPU at batch 64/512/1024, vs tonic + opentelemetry-proto\n  http          OTLP/HTTP protobuf and JSON spans/s, latency and CPU, vs hyper + opentelemetry-proto\n  websocket     OTLP over WebSocket spans/s and latency beside gRPC unary and bidirectional\n  scenarios     the design document's scenario presets as whole client pipelines over their transports\n\nWith no suite (or `all`), every suite runs and summary.{md,json,svg} puts the design document's\ntables beside the measured figures.\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(floor::SERVE_FLAG) {
        return floor::serve();
    }
    let quick = args.iter().any(|a| a == "--quick");
    let suites: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let everything = suites.is_empty() || suites == ["all"];
    let suites = if everything {
        vec![
            "codecs",
            "compression",
            "pipeline",
            "grpc",
            "http",
            "websocket",
            "scenarios",
            "relay",
        ]
    } else {
        suites
    };
    let dir = output_dir();
    let mut reports = Vec::new();
    for (index, suite) in suites.iter().enumerate() {
        progress::suite(index, suites.len(), suite);
        let result = match *suite {
            "compression" => compression::run(quick),
            "grpc" => grpc::run(quick),
            "http" => http::run(quick),
            "websocket" => grpc::run_websocket(quick),
            "codecs" => codecs::run(quick),
            "pipeline" => pipeline::run(quick),
            "scenarios" => scenarios::run(quick),
            "relay" => relay::run(quick),
            other => Err(format!("unknown suite `{other}`\n\n{USAGE}")),
        };
        match result {
            Ok(report) => {
                if let Err(e) = report.write(&dir) {
                    eprintln!("otlp-bench: writing results: {e}");
                    return ExitCode::FAILURE;
                }
                reports.push(report);
            }
            Err(e) => {
                eprintln!("otlp-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if everything {
        let written = summary::build(&reports, quick, &dir).and_then(|s| s.write(&dir));
        if let Err(e) = written {
            eprintln!("otlp-bench: writing the summary: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// `target/bench` of the workspace.
fn output_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(|crates| crates.parent())
        .map(|root| root.join("target/bench"))
        .unwrap_or_else(|| PathBuf::from("target/bench"))
}
