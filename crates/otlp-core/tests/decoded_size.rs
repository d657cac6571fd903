//! The decoded-size estimate that receivers reserve against the memory budget is never
//! below what decoding the request really takes on the heap (measured with a counting
//! allocator), for realistic data of every signal and for the degenerate shapes: millions
//! of empty items, one huge item. The estimate is what keeps "two million empty spans in
//! 4 MB" from passing as a 4 MB request.

use otlp_core::{ExportRequest, Logs, Metrics, Signal, Traces};
use otlp_model::SignalRequest;
use otlp_model::trace::{ResourceSpans, ScopeSpans, Span};
use otlp_testkit::memory::{CountingAllocator, PeakWindow, heap_in_use};
use otlp_testkit::realistic;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// (estimate, heap the decoded message holds) for `message` sent as protobuf bytes.
fn measure<S: Signal>(message: S::Request) -> (usize, usize) {
    let bytes = ExportRequest::<S>::new(message).to_protobuf();
    let items = S::Request::decode(bytes.clone()).map_or(0, |m| m.item_count());
    let request = ExportRequest::<S>::from_encoded(bytes, items);
    let estimate = request.decoded_size_estimate();
    let before = heap_in_use();
    let window = PeakWindow::start();
    // What batching does: the bytes are dropped once decoded (prost keeps `bytes` fields
    // as slices of them, so they may stay alive with the message).
    let decoded = request.into_message().expect("valid");
    let held = heap_in_use().saturating_sub(before);
    let peak = window.heap_growth();
    drop(decoded);
    (estimate, held.max(peak))
}

use prost::Message as _;

#[test]
fn the_estimate_covers_the_decoded_heap_of_every_shape() {
    let empty_spans = otlp_model::collector::trace::ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); 200_000],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let cases = [
        (
            "realistic spans",
            measure::<Traces>(realistic::traces(20_000, 1)),
        ),
        (
            "realistic metrics",
            measure::<Metrics>(realistic::metrics(20_000, 1)),
        ),
        (
            "realistic logs",
            measure::<Logs>(realistic::logs(20_000, 1)),
        ),
        ("empty spans", measure::<Traces>(empty_spans)),
    ];
    for (name, (estimate, heap)) in cases {
        eprintln!("{name}: estimate {estimate} bytes, decoded heap {heap} bytes");
        assert!(
            estimate >= heap,
            "{name}: estimate {estimate} < heap {heap}"
        );
    }
}
