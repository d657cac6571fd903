//! One WebSocket message as the receiver reads it, under each subprotocol: protobuf,
//! protobuf with zstd, and JSON (text). Nothing may panic, and decompression stays within
//! its limit.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use otlp_codec::validate::DecodeMode;
use otlp_compression::CompressionSet;
use otlp_net::intake::{Intake, IntakeConfig, IntakeStats};
use otlp_websocket::Encoding;
use tokio_tungstenite::tungstenite::Message;

fuzz_target!(|data: &[u8]| {
    let algorithms = CompressionSet::with_defaults();
    let intake = |decode| {
        let config = IntakeConfig {
            decode,
            ..IntakeConfig::default()
        }
        .with_max_request_bytes(1 << 16);
        Intake::new((), config, Arc::new(IntakeStats::default()))
    };
    let binary = || Message::Binary(bytes::Bytes::copy_from_slice(data));
    for name in ["otlp-stream.v1.protobuf", "otlp-stream.v1.protobuf+zstd"] {
        if let Some(encoding) = Encoding::parse(name, &algorithms) {
            let intake = intake(DecodeMode::Validate);
            let _ = encoding.read_batch(binary(), &intake, &mut intake.admission());
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let intake = intake(DecodeMode::Full);
        let message = Message::Text(text.into());
        let _ = Encoding::Json.read_batch(message, &intake, &mut intake.admission());
    }
});
