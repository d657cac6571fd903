//! Frames and status headers: round trips, limits, hostile input.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use otlp_compression::{Compression, CompressionSet, Gzip};
use otlp_core::{ErrorKind, ExportError, RetryClass};
use otlp_grpc::framing::{FrameDecoder, FrameLimits, FramedMessage, HEADER_LEN, encode_frame};
use otlp_grpc::status::{
    decode_message, encode_message, error_from_trailers, error_trailers, ok_trailers,
};
use proptest::prelude::*;

fn algorithms() -> Vec<Option<Arc<dyn Compression>>> {
    let mut all: Vec<Option<Arc<dyn Compression>>> = vec![None];
    all.extend(
        CompressionSet::with_defaults()
            .iter()
            .filter(|c| c.grpc_name().is_some())
            .cloned()
            .map(Some),
    );
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Several messages, each with any gRPC encoding, cut into arbitrary chunks, come back
    /// whole and in order.
    #[test]
    fn frames_survive_any_chunking(messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..5), which in 0usize..8, cuts in proptest::collection::vec(1usize..700, 1..50)) {
        let algorithms = algorithms();
        let algorithm = algorithms[which % algorithms.len()].clone();
        let mut wire = BytesMut::new();
        for message in &messages {
            encode_frame(message, algorithm.as_deref(), &mut wire)?;
        }
        let mut decoder = FrameDecoder::new(FrameLimits::default());
        let mut decoded = Vec::new();
        let mut rest = &wire[..];
        let mut cuts = cuts.into_iter().cycle();
        while !rest.is_empty() {
            let n = cuts.next().unwrap_or(1).min(rest.len());
            decoder.push(&rest[..n]);
            rest = &rest[n..];
            while let Some(frame) = decoder.next_frame()? {
                prop_assert_eq!(frame.compressed, algorithm.is_some());
                decoded.push(decoder.message(frame, algorithm.as_deref())?.to_vec());
            }
        }
        decoder.finish()?;
        prop_assert_eq!(decoded, messages);
    }

    /// A message held as pieces and framed is, on the wire, a gRPC frame (the compressed
    /// flag, the payload's length big-endian, the payload) that the decoder reads back to
    /// the message; uncompressed, the payload is the pieces themselves, not copies.
    #[test]
    fn a_message_in_pieces_frames_as_the_message(message in proptest::collection::vec(any::<u8>(), 0..3000), which in 0usize..8, cut in 0usize..3000) {
        let algorithms = algorithms();
        let algorithm = algorithms[which % algorithms.len()].clone();
        let message = bytes::Bytes::from(message);
        let cut = cut.min(message.len());
        let pieces = vec![message.slice(..cut), message.slice(cut..)];
        let framed = FramedMessage::new(pieces, algorithm.as_deref())?;
        let wire: Vec<u8> = framed.clone().into_chunks().flat_map(|c| c.to_vec()).collect();
        prop_assert_eq!(framed.len(), wire.len());
        prop_assert_eq!(wire[0], u8::from(algorithm.is_some()));
        let declared = u32::from_be_bytes([wire[1], wire[2], wire[3], wire[4]]) as usize;
        prop_assert_eq!(declared, wire.len() - HEADER_LEN);
        let mut decoder = FrameDecoder::new(FrameLimits::default());
        decoder.push(&wire);
        let frame = decoder.next_frame()?.expect("one whole frame");
        prop_assert_eq!(decoder.message(frame, algorithm.as_deref())?, message.clone());
        if algorithm.is_none() && cut > 0 {
            prop_assert_eq!(framed.payload[0].as_ptr(), message.as_ptr());
        }
    }

    #[test]
    fn status_messages_round_trip(message in "\\PC{0,40}") {
        let encoded = encode_message(&message);
        prop_assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        prop_assert_eq!(decode_message(&encoded), message);
    }
}

#[test]
fn an_oversized_declared_length_is_refused_before_buffering() {
    let limits = FrameLimits {
        max_frame_bytes: 1 << 20,
        max_message_bytes: 1 << 20,
    };
    let mut decoder = FrameDecoder::new(limits);
    // Header claiming 4 GiB - 1, and a few bytes of body.
    decoder.push(&[0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    let error = decoder.next_frame().expect_err("too large");
    assert_eq!(error.kind(), ErrorKind::TooLarge);
    assert_eq!(error.grpc_code().0, otlp_core::GrpcCode::ResourceExhausted);
    assert!(decoder.buffered() < 16, "nothing reserved for the claim");
}

#[test]
fn a_compression_bomb_in_a_frame_is_resource_exhausted() {
    let mut wire = BytesMut::new();
    encode_frame(&vec![0u8; 32 << 20], Some(&Gzip::new(9)), &mut wire).expect("encode");
    assert!(wire.len() < 64 * 1024);
    let limits = FrameLimits {
        max_message_bytes: 4 << 20,
        ..Default::default()
    };
    let mut decoder = FrameDecoder::new(limits);
    decoder.push(&wire);
    let frame = decoder.next_frame().expect("frame").expect("complete");
    let error = decoder
        .message(frame, Some(&Gzip::default()))
        .expect_err("bomb");
    assert_eq!(error.kind(), ErrorKind::TooLarge);
    assert_eq!(error.grpc_code().0, otlp_core::GrpcCode::ResourceExhausted);
}

#[test]
fn protocol_violations_are_internal_errors() {
    let mut decoder = FrameDecoder::new(FrameLimits::default());
    decoder.push(&[2, 0, 0, 0, 0]);
    assert_eq!(
        decoder.next_frame().expect_err("bad flag").kind(),
        ErrorKind::Internal
    );

    let mut wire = BytesMut::new();
    encode_frame(b"hello", Some(&Gzip::default()), &mut wire).expect("encode");
    let mut decoder = FrameDecoder::new(FrameLimits::default());
    decoder.push(&wire);
    let frame = decoder.next_frame().expect("frame").expect("complete");
    assert_eq!(
        decoder
            .message(frame, None)
            .expect_err("no grpc-encoding")
            .kind(),
        ErrorKind::Internal
    );

    let mut decoder = FrameDecoder::new(FrameLimits::default());
    decoder.push(&wire[..HEADER_LEN + 2]);
    assert!(decoder.next_frame().expect("incomplete is fine").is_none());
    assert_eq!(
        decoder.finish().expect_err("truncated body").kind(),
        ErrorKind::Internal
    );
}

#[test]
fn trailers_carry_the_otlp_semantics_both_ways() {
    assert!(error_from_trailers(&ok_trailers()).is_none());

    let pushback = ExportError::unavailable("queue full: 100% used")
        .with_retry_after(Duration::from_millis(2500));
    let trailers = error_trailers(&pushback);
    assert_eq!(trailers["grpc-status"], "14");
    let read = error_from_trailers(&trailers).expect("an error");
    assert_eq!(
        read.retry_class(),
        RetryClass::Throttled(Duration::from_millis(2500))
    );
    assert!(read.message().contains("100% used"), "{}", read.message());

    // A size refusal carries no RetryInfo, so the client does not retry it.
    let too_large =
        error_from_trailers(&error_trailers(&ExportError::too_large("70 MiB"))).expect("error");
    assert_eq!(too_large.retry_class(), RetryClass::Permanent);

    // No grpc-status at all: UNKNOWN, permanent.
    let unknown = error_from_trailers(&http::HeaderMap::new()).expect("error");
    assert_eq!(unknown.retry_class(), RetryClass::Permanent);
}
