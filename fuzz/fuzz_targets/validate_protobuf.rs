//! The protobuf validator against prost's decoder on arbitrary bytes: for every signal the
//! validator must accept exactly what the decode accepts, and count the same items.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_codec::validate::validate_request;
use otlp_core::SignalKind;
use otlp_model::SignalRequest;
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    for signal in SignalKind::ALL {
        let decoded = match signal {
            SignalKind::Traces => ExportTraceServiceRequest::decode(data).ok().map(|m| m.item_count()),
            SignalKind::Metrics => ExportMetricsServiceRequest::decode(data).ok().map(|m| m.item_count()),
            SignalKind::Logs => ExportLogsServiceRequest::decode(data).ok().map(|m| m.item_count()),
        };
        assert_eq!(validate_request(signal, data).ok(), decoded, "{signal:?}");
    }
});
