//! What every decoder target checks: arbitrary bytes decode to an error or to a message
//! that re-encodes and decodes to the same message.

use bytes::Bytes;
use otlp_codec::Codec;
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

/// Runs the check for the three signals' requests and a response.
pub fn check_all<C>(codec: &C, data: &[u8])
where
    C: Codec<trace::ExportTraceServiceRequest>
        + Codec<metrics::ExportMetricsServiceRequest>
        + Codec<logs::ExportLogsServiceRequest>
        + Codec<trace::ExportTraceServiceResponse>,
{
    check::<trace::ExportTraceServiceRequest>(codec, data);
    check::<metrics::ExportMetricsServiceRequest>(codec, data);
    check::<logs::ExportLogsServiceRequest>(codec, data);
    check::<trace::ExportTraceServiceResponse>(codec, data);
}
