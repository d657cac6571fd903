//! Decodes arbitrary bytes as every OTLP message with the Json codec: any outcome but a
//! panic, a hang or unbounded memory is fine; a successful decode must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::check_all(&otlp_codec::Json::default(), data);
});
