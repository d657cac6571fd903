//! The parts of a resource group cut by a byte-level split share its header: splitting a
//! request with a large resource into many parts costs pointers per part, not copies of
//! the resource. (A test binary of its own: it counts the process's heap.)

use bytes::Bytes;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_model::common::{AnyValue, KeyValue, any_value::Value};
use otlp_model::resource::Resource;
use otlp_model::trace::{ResourceSpans, ScopeSpans, Span};
use otlp_model::wire::Encoded;
use otlp_testkit::memory::{CountingAllocator, PeakWindow};
use prost::Message;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn a_large_resource_cut_into_many_parts_is_not_copied_into_each() {
    let big = KeyValue {
        key: "k8s.pod.annotations".into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue("x".repeat(256 << 10))),
        }),
        key_strindex: 0,
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![big],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); 10_000],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let bytes = Bytes::from(request.encode_to_vec());
    let encoded = Encoded::<ExportTraceServiceRequest>::new(bytes).expect("reads");
    let window = PeakWindow::start();
    let parts = encoded.split(10);
    let growth = window.heap_growth();
    assert_eq!(parts.len(), 1000);
    // A copy of the resource per part would be 1000 x 256 KiB = 250 MiB.
    assert!(growth < 4 << 20, "{growth} bytes for 1000 parts");
    // Each part, once joined to be sent, still carries the resource.
    assert!(parts[999].to_bytes().len() > 256 << 10);
}
