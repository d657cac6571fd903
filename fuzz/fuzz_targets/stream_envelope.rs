//! The stream envelope (`StreamBatch`) as both streaming bindings read it: validated and
//! fully decoded. Nothing may panic; both modes agree on what is valid, on the sequence,
//! the id and the item count; the cheap peek (used to refuse a malformed batch under its
//! own number) never panics. It reads only a leading sequence field, so it may differ from
//! the decode when the field is absent or repeated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_codec::validate::DecodeMode;
use otlp_stream::envelope::{decode_batch, peek_sequence};

fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    let validated = decode_batch(DecodeMode::Validate, bytes.clone());
    let decoded = decode_batch(DecodeMode::Full, bytes);
    assert_eq!(validated.is_ok(), decoded.is_ok());
    let _ = peek_sequence(data);
    if let Ok((sequence, id, request)) = &validated {
        if let Ok((full_sequence, full_id, full_request)) = &decoded {
            assert_eq!(sequence, full_sequence);
            assert_eq!(id, full_id);
            assert_eq!(request.item_count(), full_request.item_count());
        }
    }
});
