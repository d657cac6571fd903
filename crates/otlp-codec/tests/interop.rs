//! OTLP/JSON written by others: the official Python SDK's JSON encoder, the official
//! `opentelemetry-proto` crate's serde JSON, and documents written by hand from the
//! specification's examples.
#![cfg(feature = "json")]

use bytes::Bytes;
use otlp_codec::{Codec, Json};
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_model::common::any_value::Value;
use otlp_model::metrics::metric::Data;
use otlp_model::{SignalRequest, SpanId, TraceId};
use otlp_testkit::interop::{python, run};
use proptest::prelude::*;
use prost::Message;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/python_json.py");

fn decode<M: otlp_codec::schema::Schema>(json: &[u8]) -> M
where
    Json: Codec<M>,
{
    Json::default()
        .decode(Bytes::copy_from_slice(json))
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(json)))
}

#[test]
fn python_sdk_json_decodes_and_our_json_reads_back_in_python() {
    let python = python();
    let Some(output) = run(&python, &[SCRIPT, "produce"], b"") else {
        return;
    };
    let lines: Vec<&[u8]> = output
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 3, "{}", String::from_utf8_lossy(&output));

    let traces: ExportTraceServiceRequest = decode(lines[0]);
    assert_eq!(traces.item_count(), 2);
    let spans: Vec<_> = traces
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let parent = spans
        .iter()
        .find(|s| s.name == "parent")
        .expect("parent span");
    let child = spans
        .iter()
        .find(|s| s.name == "child")
        .expect("child span");
    assert_eq!(parent.trace_id.len(), 16);
    assert_eq!(
        child.parent_span_id, parent.span_id,
        "ids survive hex decoding"
    );
    assert_eq!(parent.kind, 2);
    assert_eq!(
        child.status.as_ref().map(|s| (s.code, s.message.as_str())),
        Some((2, "upstream timeout"))
    );
    let attribute = |name: &str| {
        parent
            .attributes
            .iter()
            .find(|a| a.key == name)
            .and_then(|a| a.value.clone())
            .and_then(|v| v.value)
    };
    assert_eq!(
        attribute("http.response.status_code"),
        Some(Value::IntValue(200))
    );
    assert_eq!(attribute("ratio"), Some(Value::DoubleValue(0.25)));
    assert_eq!(attribute("cached"), Some(Value::BoolValue(true)));
    assert!(matches!(attribute("tags"), Some(Value::ArrayValue(a)) if a.values.len() == 2));
    assert_eq!(parent.events[0].name, "cache miss");
    assert_eq!(child.links[0].span_id, parent.span_id);

    let metrics: ExportMetricsServiceRequest = decode(lines[1]);
    let kinds: Vec<(&str, &str)> = metrics
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| {
            (
                m.name.as_str(),
                match &m.data {
                    Some(Data::Sum(_)) => "sum",
                    Some(Data::Gauge(_)) => "gauge",
                    Some(Data::Histogram(_)) => "histogram",
                    _ => "other",
                },
            )
        })
        .collect();
    for expected in [
        ("requests", "sum"),
        ("queue.length", "sum"),
        ("latency", "histogram"),
        ("temperature", "gauge"),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} not in {kinds:?}");
    }

    let logs: ExportLogsServiceRequest = decode(lines[2]);
    assert_eq!(logs.item_count(), 2);
    let records: Vec<_> = logs
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .collect();
    assert_eq!(records[0].severity_number, 13);
    assert_eq!(
        records[0].body.as_ref().and_then(|b| b.value.clone()),
        Some(Value::StringValue("disk almost full".into()))
    );

    // The other direction: the official Python JSON classes read what we write.
    for (kind, ours, count, names) in [
        ("traces", encode(&traces), 2, vec!["child", "parent"]),
        ("logs", encode(&logs), 2, vec!["ERROR", "WARN"]),
    ] {
        let Some(answer) = run(&python, &[SCRIPT, "consume", kind], &ours) else {
            return;
        };
        let answer: serde_json::Value =
            serde_json::from_slice(&answer).expect("python prints JSON");
        assert_eq!(answer["count"], count, "{kind}");
        assert_eq!(answer["names"], serde_json::json!(names), "{kind}");
    }
}

fn encode<M>(message: &M) -> Vec<u8>
where
    Json: Codec<M>,
{
    let mut out = Vec::new();
    Json::default().encode(message, &mut out).expect("encode");
    out
}

#[test]
fn documents_written_from_the_specification_examples() {
    let traces: ExportTraceServiceRequest = decode(include_bytes!("data/traces.json"));
    let span = &traces.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        TraceId::from_slice(&span.trace_id)
            .expect("16 bytes")
            .to_hex(),
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(
        SpanId::from_slice(&span.span_id).expect("8 bytes").to_hex(),
        "eee19b7ec3c1b174"
    );
    assert_eq!(span.kind, 2, "enum accepted by name");
    assert_eq!(
        span.start_time_unix_nano, 1_544_712_660_000_000_000,
        "int64 accepted as a number"
    );
    assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(span.attributes.len(), 6);
    assert_eq!(
        span.attributes[2]
            .value
            .as_ref()
            .and_then(|v| v.value.clone()),
        Some(Value::BytesValue(vec![1, 2, 3].into()))
    );
    assert_eq!(
        span.attributes[5].value,
        Some(Default::default()),
        "an empty AnyValue is kept"
    );
    assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));

    let metrics: ExportMetricsServiceRequest = decode(include_bytes!("data/metrics.json"));
    assert_eq!(
        metrics.item_count(),
        1 + 3 + 1 + 1 + 1,
        "snake_case keys accepted; every kind read"
    );
    let logs: ExportLogsServiceRequest = decode(include_bytes!("data/logs.json"));
    assert_eq!(logs.item_count(), 3);
    let first = &logs.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(
        first.body.as_ref().and_then(|b| b.value.clone()),
        Some(Value::StringValue("disk almost full é😀".into()))
    );

    // Whatever we read, we write back so that reading it again gives the same message.
    let again: ExportMetricsServiceRequest = decode(&encode(&metrics));
    assert_eq!(again.encode_to_vec(), metrics.encode_to_vec());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// The official crate's serde JSON (a different implementation of the same mapping)
    /// decodes with ours to the same message.
    #[test]
    fn official_serde_json_decodes(request in otlp_testkit::strategies::traces_request()) {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as Official;
        let official = Official::decode(request.encode_to_vec().as_slice()).expect("wire compatible");
        let json = serde_json::to_vec(&official).expect("serde");
        // serde_json writes infinities as `null`: that loss is on their side, not a case
        // for comparing.
        prop_assume!(!json.windows(5).any(|w| w == b":null"));
        let ours: ExportTraceServiceRequest = Json::default().decode(Bytes::from(json.clone()))
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&json))))?;
        prop_assert_eq!(ours, request);
    }
}
