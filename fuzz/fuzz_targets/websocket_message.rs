//! One WebSocket message as the receiver reads it, under each subprotocol: protobuf,
//! protobuf with zstd, and JSON (text). Nothing may panic, and decompression stays within
//! its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_codec::validate::DecodeMode;
use otlp_compression::CompressionSet;
use otlp_websocket::Encoding;
use tokio_tungstenite::tungstenite::Message;

fuzz_target!(|data: &[u8]| {
    let algorithms = CompressionSet::with_defaults();
    let binary = || Message::Binary(bytes::Bytes::copy_from_slice(data));
    for name in ["otlp-stream.v1.protobuf", "otlp-stream.v1.protobuf+zstd"] {
        if let Some(encoding) = Encoding::parse(name, &algorithms) {
            let _ = encoding.read_batch(binary(), DecodeMode::Validate, 1 << 16);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Encoding::Json.read_batch(Message::Text(text.into()), DecodeMode::Full, 1 << 16);
    }
});
