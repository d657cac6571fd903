//! A tour of the foundation on the benchmark workload: build 10,000 realistic spans,
//! measure them, split them into export batches, check that the official
//! `opentelemetry-proto` crate reads our bytes, and classify a few peer answers.
//!
//! `cargo run --release -p otlp-conformance --example tour`

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1 as official;
use otlp_core::{ExportError, ExportRequest, GrpcCode, Traces};
use otlp_model::SignalRequest;
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spans = 10_000;
    let started = Instant::now();
    let message = otlp_testkit::realistic::traces(spans, 1);
    let built = started.elapsed();

    let started = Instant::now();
    let bytes = message.encode_to_vec();
    let encoded = started.elapsed();
    println!(
        "{spans} realistic spans: {} bytes of protobuf ({:.0} bytes/span); built in {built:.1?}, encoded in {encoded:.1?}",
        bytes.len(),
        bytes.len() as f64 / spans as f64
    );

    let request = ExportRequest::<Traces>::from_protobuf(bytes.clone().into())?;
    let started = Instant::now();
    let batches = request.split(512)?;
    println!(
        "split into {} batches of at most 512 spans in {:.1?} (last: {} spans)",
        batches.len(),
        started.elapsed(),
        batches.last().map_or(0, ExportRequest::item_count)
    );

    let theirs = official::ExportTraceServiceRequest::decode(bytes.as_slice())?;
    let same = theirs.encode_to_vec() == bytes;
    println!(
        "opentelemetry-proto decodes our bytes: {} resource group(s), re-encoding identical: {same}",
        theirs.resource_spans.len()
    );
    let round_trip = otlp_model::collector::trace::ExportTraceServiceRequest::decode(
        theirs.encode_to_vec().as_slice(),
    )?;
    println!(
        "and we decode theirs back to {} spans",
        round_trip.item_count()
    );

    for (what, error) in [
        (
            "HTTP 503 + Retry-After: 5",
            ExportError::from_http(503, Some(Duration::from_secs(5)), ""),
        ),
        ("HTTP 400", ExportError::from_http(400, None, "")),
        (
            "gRPC RESOURCE_EXHAUSTED",
            ExportError::from_grpc(GrpcCode::ResourceExhausted, "", None),
        ),
        (
            "gRPC UNAVAILABLE",
            ExportError::from_grpc(GrpcCode::Unavailable, "", None),
        ),
    ] {
        println!("{what:>28} -> {:?}", error.retry_class());
    }
    if !same {
        return Err("wire incompatibility".into());
    }
    Ok(())
}
