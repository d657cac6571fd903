//! The stream envelope (`StreamBatch`) as both streaming bindings read it: validated and
//! fully decoded. Nothing may panic; both modes agree on what is valid, and a readable
//! batch's sequence is what the cheap peek reports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_codec::validate::DecodeMode;
use otlp_stream::envelope::{decode_batch, peek_sequence};

fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    let validated = decode_batch(DecodeMode::Validate, bytes.clone());
    let decoded = decode_batch(DecodeMode::Full, bytes);
    assert_eq!(validated.is_ok(), decoded.is_ok());
    if let Ok((sequence, id, request)) = &validated {
        assert_eq!(peek_sequence(data), Some(*sequence));
        if let Ok((full_sequence, full_id, full_request)) = &decoded {
            assert_eq!(sequence, full_sequence);
            assert_eq!(id, full_id);
            assert_eq!(request.item_count(), full_request.item_count());
        }
    }
});
