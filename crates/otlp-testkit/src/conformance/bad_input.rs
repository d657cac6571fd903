//! The bad-input table: protobuf that is not a valid export request, sent through the
//! exporter as bytes it passes on unread. Each is refused as invalid (permanent: resending
//! cannot fix it) before the service, and the receiver goes on serving.

use bytes::Bytes;
use otlp_core::{AnyExportRequest, ErrorKind, ExportRequest, Traces};
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_model::common::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use otlp_model::trace::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use super::{MAX_REQUEST, ReceiverSettings, Transport, counting_service, exchange};
use crate::realistic;

/// One span named `name` with attribute `k` = `value`, encoded.
fn one_span(name: &str, value: AnyValue) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name: name.to_string(),
                    attributes: vec![KeyValue {
                        key: "k".into(),
                        value: Some(value),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// The table: what each body is, and the body.
pub fn bad_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut invalid_utf8 = one_span("BREAK-THIS-NAME", AnyValue::default());
    if let Some(at) = invalid_utf8
        .windows(5)
        .position(|window| window == b"BREAK")
    {
        invalid_utf8[at] = 0xff;
    }
    let mut deep = AnyValue::default();
    for _ in 0..120 {
        deep = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values: vec![deep] })),
        };
    }
    vec![
        ("a truncated varint", vec![0x0a, 0xff]),
        ("a length beyond the end", vec![0x0a, 0x05, 0x01]),
        ("a known field with the wrong wire type", vec![0x08, 0x01]),
        ("a field number of zero", vec![0x02, 0x00]),
        ("an end of group never opened", vec![0x0c]),
        ("a string that is not UTF-8", invalid_utf8),
        (
            "messages nested past the decoder's limit",
            one_span("deep", deep),
        ),
    ]
}

/// Every row of [`bad_inputs`], then a valid request on the same exporter.
pub(super) async fn refused(transport: &dyn Transport) -> Result<(), String> {
    let (service, reached) = counting_service();
    let (endpoint, stop) = transport
        .start_receiver(service, ReceiverSettings::limited(MAX_REQUEST))
        .await?;
    let exporter = transport.exporter(&endpoint, &http::HeaderMap::new())?;
    let mut failures = Vec::new();
    for (what, body) in bad_inputs() {
        let request = ExportRequest::<Traces>::from_encoded(Bytes::from(body), 1);
        match exchange(exporter.clone(), request.into()).await {
            Ok(Err(error)) if error.kind() == ErrorKind::InvalidArgument => {}
            other => failures.push(format!("{what}: {other:?}")),
        }
    }
    let valid: AnyExportRequest = ExportRequest::<Traces>::new(realistic::traces(10, 41)).into();
    let after = exchange(exporter, valid).await;
    stop().await;
    match after? {
        Ok(outcome) if outcome.accepted() == 10 => {}
        other => failures.push(format!("a valid request after them: {other:?}")),
    }
    let reached = reached.load(std::sync::atomic::Ordering::SeqCst);
    if reached != 1 {
        failures.push(format!(
            "the service saw {reached} requests, not the one valid"
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
