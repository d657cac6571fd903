//! Decodes arbitrary bytes as every OTLP message with the Cbor codec: any outcome but a
//! panic, a hang or unbounded memory is fine. A successful decode must re-encode and decode
//! to the same message.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use otlp_codec::{Cbor, Codec};
use otlp_model::collector::{logs, metrics, trace};

fn check<M: PartialEq + std::fmt::Debug>(codec: &dyn Codec<M>, data: &[u8]) {
    if let Ok(message) = codec.decode(Bytes::copy_from_slice(data)) {
        let mut again = Vec::new();
        codec
            .encode(&message, &mut again)
            .expect("a decoded message encodes");
        let back = codec
            .decode(Bytes::from(again))
            .expect("our own encoding decodes");
        // NaN compares unequal to itself; compare the Debug forms, which are exact.
        assert_eq!(format!("{back:?}"), format!("{message:?}"));
    }
}

fuzz_target!(|data: &[u8]| {
    let codec = Cbor::default();
    check::<trace::ExportTraceServiceRequest>(&codec, data);
    check::<metrics::ExportMetricsServiceRequest>(&codec, data);
    check::<logs::ExportLogsServiceRequest>(&codec, data);
    check::<trace::ExportTraceServiceResponse>(&codec, data);
});
