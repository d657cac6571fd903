//! gRPC length-prefixed framing as a receiver reads it: arbitrary bytes, cut into chunks
//! at arbitrary points, pushed into the decoder; every frame's message is taken (gzip
//! when the flag says compressed). Nothing may panic, and the decoder never buffers more
//! than its frame limit plus one chunk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_compression::Compression;
use otlp_grpc::framing::{FrameDecoder, FrameLimits};

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut).max(1);
    let limits = FrameLimits {
        max_message_bytes: LIMIT,
        max_frame_bytes: LIMIT,
    };
    let mut decoder = FrameDecoder::new(limits);
    let gzip = otlp_compression::Gzip::default();
    for piece in data.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let encoding: Option<&dyn Compression> = Some(&gzip);
                    if let Ok(message) = FrameDecoder::new(limits).message(frame, encoding) {
                        assert!(message.len() <= LIMIT);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(decoder.buffered() <= LIMIT + 5 + chunk);
    }
    let _ = decoder.finish();
});
