//! Property tests for byte-level batching: `Encoded` counts, appends and splits protobuf
//! bytes exactly as the owned messages would be counted, appended and split.

use bytes::Bytes;
use otlp_model::SignalRequest;
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_model::common::any_value::Value;
use otlp_model::wire::{Encoded, Payload, WireLayout};
use otlp_testkit::strategies;
use proptest::prelude::*;
use prost::Message;

fn encoded<R: WireLayout>(message: &R) -> Encoded<R> {
    Encoded::new(Bytes::from(message.encode_to_vec())).expect("our own encoding reads")
}

/// One request per item, each with its resource and scope: a grouping-independent
/// identity of a request's content, in order.
fn singles<R: SignalRequest + std::any::Any>(mut request: R) -> Vec<R> {
    // Metrics without data points count as no item: where they land is the splitter's
    // choice, so they are left out of the identity.
    if let Some(metrics) =
        (&mut request as &mut dyn std::any::Any).downcast_mut::<ExportMetricsServiceRequest>()
    {
        for group in &mut metrics.resource_metrics {
            for scope in &mut group.scope_metrics {
                scope.metrics.retain(|m| {
                    let mut one = ExportMetricsServiceRequest::default();
                    one.resource_metrics
                        .push(otlp_model::metrics::ResourceMetrics {
                            scope_metrics: vec![otlp_model::metrics::ScopeMetrics {
                                metrics: vec![m.clone()],
                                ..Default::default()
                            }],
                            ..Default::default()
                        });
                    one.item_count() > 0
                });
            }
        }
    }
    request
        .split(1)
        .into_iter()
        .filter(|part| part.item_count() > 0)
        // Groups without items, too, land where the splitter chose.
        .map(|part| part.partition(|_| true).0)
        .collect()
}

/// Checks `Encoded` against the owned request: counts, bytes, splits at every cap.
fn check_against_owned<R: WireLayout + std::fmt::Debug>(message: R, max: usize) {
    let bytes = message.encode_to_vec();
    let whole = encoded(&message);
    assert_eq!(whole.item_count(), message.item_count());
    assert_eq!(whole.to_bytes(), bytes, "groups concatenate to the request");
    assert_eq!(whole.encoded_len(), bytes.len());
    assert_eq!(Encoded::from_message(&message).to_bytes(), bytes);

    let expected = singles(message.clone());
    let parts = whole.try_split(max).expect("valid bytes split");
    let total = message.item_count();
    if total > max {
        assert_eq!(
            parts.len(),
            total.div_ceil(max),
            "every part but the last is full"
        );
    }
    let mut got = Vec::new();
    for part in &parts {
        assert!(part.item_count() <= max);
        let decoded = part.decode().expect("every part decodes");
        assert_eq!(
            decoded.item_count(),
            part.item_count(),
            "counts survive the cut"
        );
        assert_eq!(part.encoded_len(), part.to_bytes().len());
        assert_eq!(
            part.to_pieces().concat(),
            part.to_bytes(),
            "the pieces, written one after the other, are the part"
        );
        got.extend(singles(decoded));
    }
    assert_eq!(got.len(), expected.len(), "every item once");
    if let Some(at) = (0..got.len()).find(|i| got[*i] != expected[*i]) {
        panic!(
            "item {at} differs: got\n{:?}\nexpected\n{:?}",
            got[at], expected[at]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn trace_bytes_split_like_messages(request in strategies::traces_request(), max in 1usize..6) {
        check_against_owned(request, max);
    }

    #[test]
    fn log_bytes_split_like_messages(request in strategies::logs_request(), max in 1usize..6) {
        check_against_owned(request, max);
    }

    #[test]
    fn metric_bytes_split_like_messages(request in strategies::metrics_request(), max in 1usize..5) {
        check_against_owned(request, max);
    }

    #[test]
    fn appended_bytes_hold_both_requests(a in strategies::traces_request(), b in strategies::traces_request()) {
        let mut bytes = encoded(&a);
        bytes.append(encoded(&b));
        let mut owned = a;
        SignalRequest::append(&mut owned, b);
        prop_assert_eq!(bytes.item_count(), owned.item_count());
        prop_assert_eq!(bytes.to_pieces().concat(), bytes.to_bytes());
        prop_assert_eq!(bytes.decode().expect("decodes"), owned);
    }

    #[test]
    fn a_message_meeting_bytes_is_encoded_and_nothing_is_lost(a in strategies::logs_request(), b in strategies::logs_request()) {
        let mut payload = Payload::Message(a.clone());
        otlp_model::wire::Batchable::append(&mut payload, Payload::Encoded(encoded(&b)));
        let mut owned = a;
        SignalRequest::append(&mut owned, b);
        let Payload::Encoded(bytes) = payload else { panic!("mixed payloads are bytes") };
        prop_assert_eq!(bytes.decode().expect("decodes"), owned);
    }

    #[test]
    fn views_read_what_a_decode_reads(request in strategies::traces_request()) {
        let bytes = encoded(&request);
        let views: Vec<_> = bytes.resources().collect();
        prop_assert_eq!(views.len(), request.resource_spans.len());
        for (view, group) in views.iter().zip(&request.resource_spans) {
            let name = group.resource.iter().flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.as_str()),
                    _ => None,
                });
            prop_assert_eq!(view.service_name(), name);
            let trace_ids: Vec<&[u8]> = view.elements().filter_map(|e| e.trace_id()).collect();
            let expected: Vec<&[u8]> = group.scope_spans.iter().flat_map(|s| &s.spans)
                .map(|span| span.trace_id.as_ref()).collect();
            prop_assert_eq!(trace_ids, expected);
        }
    }

    #[test]
    fn arbitrary_bytes_are_refused_or_read_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 1usize..4) {
        if let Ok(read) = Encoded::<ExportMetricsServiceRequest>::new(Bytes::from(bytes)) {
            let _ = read.try_split(max);
        }
    }
}

#[test]
fn a_metric_with_many_points_is_cut_inside_by_bytes() {
    let request = otlp_testkit::realistic::one_gauge("queue.depth", 10);
    let parts = encoded(&request).split(4);
    let sizes: Vec<usize> = parts.iter().map(Encoded::item_count).collect();
    assert_eq!(sizes, [4, 4, 2]);
    let last = parts[2].decode().expect("decodes");
    let metric = &last.resource_metrics[0].scope_metrics[0].metrics[0];
    assert_eq!(metric.name, "queue.depth");
    check_against_owned(request, 3);
}

#[test]
fn a_later_metric_data_member_replaces_an_earlier_one_as_a_decode_does() {
    // Metric { gauge: 2 points, sum: 1 point }: a decode keeps the sum only.
    use otlp_model::metrics::{Gauge, Metric, NumberDataPoint, Sum, metric::Data};
    let gauge = Metric {
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint::default(); 2],
        })),
        ..Default::default()
    };
    let sum = Metric {
        data: Some(Data::Sum(Sum {
            data_points: vec![NumberDataPoint::default()],
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut element = gauge.encode_to_vec();
    element.extend(sum.encode_to_vec());
    assert_eq!(ExportMetricsServiceRequest::element_items(&element), Ok(1));
}

/// A metric whose name is not UTF-8, with two gauge points, as a request: `Encoded::new`
/// reads its framing, but the metric does not decode.
fn undecodable_metrics() -> Bytes {
    let metric = [0x0a, 0x01, 0xff, 0x2a, 0x04, 0x0a, 0x00, 0x0a, 0x00];
    let mut request = vec![0x0a, 0x0d, 0x12, 0x0b, 0x12, 0x09];
    request.extend(metric);
    Bytes::from(request)
}

#[test]
fn bytes_that_do_not_decode_leave_whole_once_and_never_loop() {
    let encoded =
        Encoded::<ExportMetricsServiceRequest>::new(undecodable_metrics()).expect("framing reads");
    assert_eq!(encoded.item_count(), 2);
    assert!(encoded.clone().try_split(1).is_err());
    let parts = encoded.split(1);
    assert_eq!(parts.len(), 1, "handed on whole, for the peer to refuse");
    assert_eq!(parts[0].item_count(), 2);
}

#[test]
fn keys_beyond_32_bits_and_overlong_varints_are_refused() {
    // Field 2^29 as a key (above 32 bits once shifted), then an overlong length.
    assert!(
        Encoded::<ExportTraceServiceRequest>::new(Bytes::from_static(&[
            0x82, 0x80, 0x80, 0x80, 0x10, 0x00
        ]))
        .is_err()
    );
    let overlong = [
        0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02,
    ];
    assert!(Encoded::<ExportTraceServiceRequest>::new(Bytes::copy_from_slice(&overlong)).is_err());
}

/// `ResourceLogs { resource: Resource { attributes: [KeyValue { key, <value fields> }] } }`.
fn logs_with_attribute(key: &str, value_fields: &[&[u8]]) -> Bytes {
    fn len_field(number: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![number << 3 | 2, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }
    let mut attribute = len_field(1, key.as_bytes());
    for value in value_fields {
        attribute.extend(len_field(2, value));
    }
    let resource = len_field(1, &attribute);
    let group = len_field(1, &resource);
    Bytes::from(len_field(1, &group))
}

#[test]
fn attribute_values_are_read_as_a_decode_reads_them() {
    let read = |bytes: Bytes| {
        let decoded = ExportLogsServiceRequest::decode(bytes.clone()).expect("decodes");
        let encoded = Encoded::<ExportLogsServiceRequest>::new(bytes).expect("reads");
        let view = encoded
            .resources()
            .next()
            .map(|r| r.service_name().map(str::to_string));
        let owned = decoded.resource_logs[0].resource.as_ref().and_then(|r| {
            r.attributes[0]
                .value
                .as_ref()
                .and_then(|v| match v.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
        });
        (view.flatten(), owned)
    };
    // A repeated `value` merges: the empty second one changes nothing.
    let (view, owned) = read(logs_with_attribute(
        "service.name",
        &[b"\x0a\x08checkout", b""],
    ));
    assert_eq!(owned.as_deref(), Some("checkout"));
    assert_eq!(view, owned);
    // An unknown field after the string leaves it the value.
    let (view, owned) = read(logs_with_attribute(
        "service.name",
        &[b"\x0a\x08checkout\x78\x01"],
    ));
    assert_eq!(owned.as_deref(), Some("checkout"));
    assert_eq!(view, owned);
    // A later member replaces the string (int 1).
    let (view, owned) = read(logs_with_attribute(
        "service.name",
        &[b"\x0a\x08checkout", b"\x18\x01"],
    ));
    assert_eq!(owned, None);
    assert_eq!(view, owned);
}

#[test]
fn an_unknown_field_of_a_cut_group_is_not_copied_into_every_part() {
    use otlp_model::trace::{ResourceSpans, ScopeSpans, Span};
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); 100],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    // The scope group gains an unknown field 9 of 64 KiB.
    let mut scope = request.resource_spans[0].scope_spans[0].encode_to_vec();
    let unknown = vec![0u8; 64 << 10];
    let mut field = vec![0x4a, 0x80, 0x80, 0x04];
    field.extend(&unknown);
    scope.extend(field);
    let mut resource = vec![0x12];
    prost::encoding::encode_varint(scope.len() as u64, &mut resource);
    resource.extend(scope);
    let mut bytes = vec![0x0a];
    prost::encoding::encode_varint(resource.len() as u64, &mut bytes);
    bytes.extend(resource);
    let parts = Encoded::<ExportTraceServiceRequest>::new(Bytes::from(bytes))
        .expect("reads")
        .split(10);
    assert_eq!(parts.len(), 10);
    let total: usize = parts.iter().map(Encoded::encoded_len).sum();
    assert!(
        total < 8 << 10,
        "{total} bytes: the unknown field was repeated"
    );
}

#[test]
fn large_groups_are_written_as_they_arrived_and_small_ones_together() {
    use otlp_model::trace::{ResourceSpans, ScopeSpans, Span};
    let request = |name: String| ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let small = Bytes::from(request("small".into()).encode_to_vec());
    let large = Bytes::from(request("x".repeat(64 << 10)).encode_to_vec());
    let mut batch = Encoded::<ExportTraceServiceRequest>::default();
    for _ in 0..100 {
        batch.append(Encoded::new(small.clone()).expect("reads"));
    }
    batch.append(Encoded::new(large.clone()).expect("reads"));
    let pieces = batch.to_pieces();
    assert_eq!(
        pieces.len(),
        2,
        "the small groups in one piece, the large one in its own"
    );
    assert_eq!(pieces[0].len(), 100 * small.len());
    assert_eq!(
        pieces[1].as_ptr(),
        large.as_ptr(),
        "the large group is not copied"
    );
    assert_eq!(pieces.concat(), batch.to_bytes());
    // A small group alone is not copied either.
    let alone = Encoded::<ExportTraceServiceRequest>::new(small.clone()).expect("reads");
    assert_eq!(alone.to_pieces()[0].as_ptr(), small.as_ptr());
}
