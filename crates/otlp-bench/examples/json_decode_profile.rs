//! Decodes the 10,000-span OTLP/JSON payload in a loop, for profilers.
use bytes::Bytes;
use otlp_codec::{Codec, Json};
use otlp_model::collector::trace::ExportTraceServiceRequest;

fn main() {
    let message = otlp_testkit::realistic::traces(10_000, 1);
    let mut json = Vec::new();
    Json::default().encode(&message, &mut json).expect("encode");
    let json = Bytes::from(json);
    for _ in 0..50 {
        let decoded: ExportTraceServiceRequest =
            Json::default().decode(json.clone()).expect("decode");
        std::hint::black_box(decoded);
    }
}
