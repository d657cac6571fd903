//! `ExportRequest` and `ExportOutcome` behaviour.

use bytes::Bytes;
use otlp_core::{ErrorKind, ExportOutcome, ExportRequest, Logs, Metrics, Traces};
use otlp_model::collector::metrics::ExportMetricsServiceResponse;
use otlp_model::{SignalRequest, SignalResponse};
use prost::Message;

#[test]
fn encoded_payload_is_passed_through_without_copying() {
    let message = otlp_testkit::realistic::traces(20, 1);
    let bytes = Bytes::from(message.encode_to_vec());
    let request = ExportRequest::<Traces>::from_encoded(bytes.clone(), 20);
    assert!(request.is_encoded());
    let out = request.to_protobuf();
    assert_eq!(out.as_ptr(), bytes.as_ptr(), "same buffer, not a copy");
    assert_eq!(request.encoded_len(), bytes.len());
    assert_eq!(request.message().expect("valid").into_owned(), message);
}

#[test]
fn a_payload_in_pieces_is_written_as_pieces_and_reads_as_the_whole() {
    let message = otlp_testkit::realistic::traces(20, 1);
    let bytes = Bytes::from(message.encode_to_vec());
    // Any cut between fields of the request is a valid pair of pieces; mid-field is too,
    // since they are only ever written one after the other.
    let pieces = vec![bytes.slice(..100), bytes.slice(100..)];
    let request = ExportRequest::<Traces>::from_encoded_pieces(pieces, 20);
    assert!(request.is_encoded());
    let written = request.protobuf_pieces();
    assert_eq!(written.len(), 2);
    assert_eq!(written[1].as_ptr(), bytes[100..].as_ptr(), "not copied");
    assert_eq!(request.to_protobuf(), bytes);
    assert_eq!(request.encoded_len(), bytes.len());
    assert_eq!(
        request.message().expect("valid").into_owned(),
        message.clone()
    );
    assert_eq!(request.clone().into_message().expect("valid"), message);
    // One piece is the whole request, as from_encoded holds it.
    let one = ExportRequest::<Traces>::from_encoded_pieces(vec![bytes.clone()], 20);
    assert_eq!(one.to_protobuf().as_ptr(), bytes.as_ptr());
}

#[test]
fn malformed_protobuf_is_an_invalid_argument_error() {
    let garbage = Bytes::from_static(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    let error = ExportRequest::<Logs>::from_protobuf(garbage.clone()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(!error.is_retryable());
    assert!(
        error.to_string().contains("malformed logs request"),
        "{error}"
    );

    // A payload trusted as valid but not: the error surfaces when it is decoded.
    let trusted = ExportRequest::<Logs>::from_encoded(garbage, 1);
    assert_eq!(
        trusted.message().unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn split_keeps_headers_and_items() {
    let mut request = ExportRequest::<Metrics>::new(otlp_testkit::realistic::metrics(10, 2));
    request
        .headers_mut()
        .insert("x-tenant", http::HeaderValue::from_static("blue"));
    let parts = request.split(4).expect("decoded");
    assert_eq!(
        parts
            .iter()
            .map(ExportRequest::item_count)
            .collect::<Vec<_>>(),
        [4, 4, 2]
    );
    for part in &parts {
        assert_eq!(part.headers()["x-tenant"], "blue");
        assert_eq!(
            part.message().expect("message").item_count(),
            part.item_count()
        );
    }
}

#[test]
fn outcome_clamps_what_a_peer_reports() {
    let response = ExportMetricsServiceResponse::with_partial_success(-5, "odd".into());
    assert_eq!(ExportOutcome::from_response(10, &response).rejected(), 0);
    let response = ExportMetricsServiceResponse::with_partial_success(50, "all of them".into());
    let outcome = ExportOutcome::from_response(10, &response);
    assert_eq!((outcome.rejected(), outcome.accepted()), (10, 0));
    assert_eq!(outcome.message(), "all of them");

    let full: ExportMetricsServiceResponse = ExportOutcome::success(3).to_response();
    assert_eq!(
        full.partial_success, None,
        "success leaves partial_success unset"
    );
}
