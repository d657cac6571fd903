//! Hostile input: deep nesting on a small stack, garbage, truncation, type confusion,
//! oversize input. Every case is an error value; none panics, overflows or hangs.
#![cfg(all(feature = "json", feature = "msgpack", feature = "cbor"))]

use bytes::Bytes;
use otlp_codec::{Cbor, Codec, CodecErrorKind, DecodeLimits, Json, MessagePack, Protobuf};
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use proptest::prelude::*;

const SMALL_STACK: usize = 256 * 1024;
const DEPTH: usize = 100_000;

/// Runs `f` on a thread with a 256 KiB stack: a stack overflow aborts the test binary.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

fn logs_json_with_body(body: &str) -> String {
    format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{body}}}]}}]}}]}}"#)
}

#[test]
fn json_100k_deep_any_value_is_refused_on_a_small_stack() {
    for (open, close) in [
        (r#"{"arrayValue":{"values":["#, "]}}"),
        (r#"{"kvlistValue":{"values":[{"key":"k","value":"#, "}]}}"),
    ] {
        let body = format!("{}{{}}{}", open.repeat(DEPTH), close.repeat(DEPTH));
        let input = Bytes::from(logs_json_with_body(&body));
        let result = on_small_stack(move || {
            Codec::<ExportLogsServiceRequest>::decode(&Json::default(), input)
        });
        let error = result.expect_err("refused");
        assert_eq!(error.kind(), CodecErrorKind::TooDeep, "{error}");
    }
    // The deepest nesting the default limit accepts (64) decodes on the same small stack:
    // the recursion that a peer can drive is bounded by the limit, not by the input.
    let body = format!(
        "{}{{}}{}",
        r#"{"arrayValue":{"values":["#.repeat(63),
        "]}}".repeat(63)
    );
    let input = Bytes::from(logs_json_with_body(&body));
    let accepted =
        on_small_stack(move || Codec::<ExportLogsServiceRequest>::decode(&Json::default(), input));
    let request = accepted.expect("64 levels are within the limit");
    // ...and encodes back on a small stack too.
    let reencoded = on_small_stack(move || {
        let mut out = Vec::new();
        Codec::<ExportLogsServiceRequest>::encode(&Json::default(), &request, &mut out)
            .map(|()| out.len())
    });
    assert!(reencoded.expect("encode") > 0);

    // Deep nesting inside an unknown field is skipped iteratively, and bounded too.
    let unknown = format!(r#"{{"extra":{}1{}}}"#, "[".repeat(DEPTH), "]".repeat(DEPTH));
    let result = on_small_stack(move || {
        Codec::<ExportLogsServiceRequest>::decode(&Json::default(), unknown.into())
    });
    assert_eq!(result.expect_err("refused").kind(), CodecErrorKind::TooDeep);
}

/// Protobuf bytes of an `ExportLogsServiceRequest` whose single log body nests `depth`
/// `AnyValue`s through `ArrayValue`s, built iteratively (no recursion here either).
fn deep_protobuf(depth: usize) -> Vec<u8> {
    fn varint(mut v: usize, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn varint_len(v: usize) -> usize {
        let mut out = Vec::new();
        varint(v, &mut out);
        out.len()
    }
    // Sizes from the inside out: AnyValue(n) = tag + len + ArrayValue(n), ArrayValue(n) =
    // tag + len + AnyValue(n-1); the innermost AnyValue is empty.
    let mut any_sizes = vec![0usize; depth + 1];
    let mut array_sizes = vec![0usize; depth + 1];
    for level in 1..=depth {
        array_sizes[level] = 1 + varint_len(any_sizes[level - 1]) + any_sizes[level - 1];
        any_sizes[level] = 1 + varint_len(array_sizes[level]) + array_sizes[level];
    }
    let mut body = Vec::with_capacity(any_sizes[depth] + 16);
    for level in (1..=depth).rev() {
        body.push(0x2a); // AnyValue.array_value, field 5, length-delimited
        varint(array_sizes[level], &mut body);
        body.push(0x0a); // ArrayValue.values, field 1
        varint(any_sizes[level - 1], &mut body);
    }
    let wrap = |field_tag: u8, inner: Vec<u8>| {
        let mut out = vec![field_tag];
        varint(inner.len(), &mut out);
        out.extend(inner);
        out
    };
    let record = wrap(0x2a, body); // LogRecord.body, field 5
    let scope_logs = wrap(0x12, record); // ScopeLogs.log_records, field 2
    let resource_logs = wrap(0x12, scope_logs); // ResourceLogs.scope_logs, field 2
    wrap(0x0a, resource_logs) // ExportLogsServiceRequest.resource_logs, field 1
}

#[test]
fn protobuf_100k_deep_any_value_is_refused_on_a_small_stack() {
    let input = Bytes::from(deep_protobuf(DEPTH));
    let result = on_small_stack(move || {
        Codec::<ExportLogsServiceRequest>::decode(&Protobuf::default(), input)
    });
    assert!(result.is_err(), "refused by prost's recursion limit");

    // A nesting prost accepts but a configured limit does not.
    let input = Bytes::from(deep_protobuf(20));
    let limits = DecodeLimits {
        max_any_value_depth: 8,
        ..Default::default()
    };
    let error = Codec::<ExportLogsServiceRequest>::decode(&Protobuf::new(limits), input.clone())
        .expect_err("too deep");
    assert_eq!(error.kind(), CodecErrorKind::TooDeep);
    Codec::<ExportLogsServiceRequest>::decode(&Protobuf::default(), input)
        .expect("within the default limit");
}

#[test]
fn binary_formats_100k_deep_are_refused_on_a_small_stack() {
    // msgpack: AnyValue = {5: {1: [AnyValue]}} -> 0x81 0x05 0x81 0x01 0x91 ...
    let mut msgpack = b"\x81\x01\x91\x81\x02\x91\x81\x02\x91\x81\x05".to_vec();
    msgpack.extend(b"\x81\x05\x81\x01\x91".repeat(DEPTH));
    msgpack.push(0x80);
    let result = on_small_stack(move || {
        Codec::<ExportLogsServiceRequest>::decode(&MessagePack::default(), msgpack.into())
    });
    assert_eq!(result.expect_err("refused").kind(), CodecErrorKind::TooDeep);

    // CBOR: the same shape with CBOR heads (map of 1 = 0xa1, array of 1 = 0x81).
    let mut cbor = b"\xa1\x01\x81\xa1\x02\x81\xa1\x02\x81\xa1\x05".to_vec();
    cbor.extend(b"\xa1\x05\xa1\x01\x81".repeat(DEPTH));
    cbor.push(0xa0);
    let result = on_small_stack(move || {
        Codec::<ExportLogsServiceRequest>::decode(&Cbor::default(), cbor.into())
    });
    assert_eq!(result.expect_err("refused").kind(), CodecErrorKind::TooDeep);
}

#[test]
fn oversized_input_is_too_large() {
    let limits = DecodeLimits {
        max_input_bytes: 1000,
        ..Default::default()
    };
    let input = Bytes::from(vec![b' '; 1001]);
    for codec in [
        &Protobuf::new(limits) as &dyn Codec<ExportTraceServiceRequest>,
        &Json::new(limits),
        &MessagePack::new(limits),
        &Cbor::new(limits),
    ] {
        assert_eq!(
            codec.decode(input.clone()).expect_err("too large").kind(),
            CodecErrorKind::TooLarge
        );
    }
}

#[test]
fn json_type_confusion_and_spec_violations_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{"resourceSpans":{}}"#, "resourceSpans"),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].traceId",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"0102030405060708090a"}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].spanId",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"-1"}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NOPE"}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].kind",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":42}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].name",
        ),
        (
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"stringValue":"x","intValue":"1"}}]}}]}"#,
            "resourceSpans[0].resource.attributes[0].value.intValue",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"droppedAttributesCount":1.5}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].droppedAttributesCount",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"flags":4294967296}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].flags",
        ),
    ];
    for (input, path) in cases {
        let error = Codec::<ExportTraceServiceRequest>::decode(
            &Json::default(),
            Bytes::from(input.to_string()),
        )
        .expect_err(input);
        assert_eq!(error.kind(), CodecErrorKind::Invalid, "{input}: {error}");
        assert_eq!(error.path(), *path, "{input}: {error}");
    }
    for malformed in [
        "",
        "{",
        "[]",
        r#"{"resourceSpans":[}"#,
        r#"{"resourceSpans":[],}"#,
        r#"{} {}"#,
        r#"{"a" 1}"#,
        r#"{"a":tru}"#,
        "{\"a\":\"\u{1}\"}",
        r#"{"a":"\ud800"}"#,
        r#"{"a":01}"#,
    ] {
        assert!(
            Codec::<ExportTraceServiceRequest>::decode(
                &Json::default(),
                Bytes::from(malformed.to_string())
            )
            .is_err(),
            "accepted {malformed:?}"
        );
    }
}

fn any_codec() -> impl Strategy<Value = usize> {
    0usize..4
}

fn decode_any(codec: usize, input: Bytes) {
    let codecs: [&dyn Codec<ExportMetricsServiceRequest>; 4] = [
        &Protobuf::default(),
        &Json::default(),
        &MessagePack::default(),
        &Cbor::default(),
    ];
    let _ = codecs[codec].decode(input);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn garbage_is_an_error_or_a_message_never_a_panic(codec in any_codec(), garbage in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_any(codec, Bytes::from(garbage));
    }

    #[test]
    fn truncated_input_is_rejected(request in otlp_testkit::strategies::metrics_request(), codec in 1usize..4, cut in any::<proptest::sample::Index>()) {
        let codecs: [&dyn Codec<ExportMetricsServiceRequest>; 4] =
            [&Protobuf::default(), &Json::default(), &MessagePack::default(), &Cbor::default()];
        let mut bytes = Vec::new();
        codecs[codec].encode(&request, &mut bytes).expect("encode");
        let cut = cut.index(bytes.len());
        // Self-delimiting formats must notice any truncation.
        prop_assert!(codecs[codec].decode(Bytes::copy_from_slice(&bytes[..cut])).is_err());
    }

    #[test]
    fn flipped_bytes_never_panic(request in otlp_testkit::strategies::metrics_request(), codec in any_codec(), at in any::<proptest::sample::Index>(), with in any::<u8>()) {
        let codecs: [&dyn Codec<ExportMetricsServiceRequest>; 4] =
            [&Protobuf::default(), &Json::default(), &MessagePack::default(), &Cbor::default()];
        let mut bytes = Vec::new();
        codecs[codec].encode(&request, &mut bytes).expect("encode");
        if !bytes.is_empty() {
            let at = at.index(bytes.len());
            bytes[at] = with;
        }
        decode_any(codec, Bytes::from(bytes));
    }
}
