//! Clients no one here wrote, sending to the relay binary: the official OpenTelemetry
//! Python SDK exporters (gRPC, HTTP/protobuf, HTTP/JSON; spans, metrics and logs) and the
//! official Rust `opentelemetry-otlp` exporters (spans over gRPC, HTTP/protobuf and
//! HTTP/JSON; metrics and logs through the Rust SDK over gRPC). The relay's file must show
//! what they sent intact: ids, names, timestamps, attributes, values.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use otlp_model::common::{KeyValue as OtlpKeyValue, any_value};
use otlp_model::encode_hex;
use otlp_model::logs::LogRecord;
use otlp_model::metrics::NumberDataPoint;
use otlp_model::trace::Span;
use otlp_testkit::interop;

mod common;
use common::{Lines, read_lines, start_relay, stop, temp_file};

fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    encode_hex(bytes, &mut out);
    out
}

fn int_attribute(attributes: &[OtlpKeyValue], key: &str) -> Option<i64> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::IntValue(v) => Some(*v),
            _ => None,
        }
    })
}

fn log_records(lines: &Lines) -> Vec<&LogRecord> {
    lines
        .logs
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .collect()
}

fn log_with_body<'a>(records: &[&'a LogRecord], body: &str) -> Option<&'a LogRecord> {
    records.iter().copied().find(|r| {
        r.body.as_ref().and_then(|b| b.value.as_ref())
            == Some(&any_value::Value::StringValue(body.to_string()))
    })
}

/// The data points of every sum named `name`, one list per metric.
fn sum_points<'a>(lines: &'a Lines, name: &str) -> Vec<Vec<&'a NumberDataPoint>> {
    lines
        .metrics
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
        .filter_map(|m| match &m.data {
            Some(otlp_model::metrics::metric::Data::Sum(sum)) => {
                Some(sum.data_points.iter().collect())
            }
            _ => None,
        })
        .collect()
}

fn int_value(point: &NumberDataPoint) -> Option<i64> {
    match point.value {
        Some(otlp_model::metrics::number_data_point::Value::AsInt(v)) => Some(v),
        _ => None,
    }
}

fn spans(lines: &Lines) -> Vec<&Span> {
    lines
        .traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect()
}

#[test]
fn the_official_python_exporters_send_all_signals_intact() {
    let output = temp_file("python.jsonl");
    let relay = start_relay(&["--output", &output.display().to_string()], &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python_sdk.py");
    let mut sent_by_protocol = Vec::new();
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        let endpoint = relay.endpoint(protocol);
        let Some(printed) = interop::run(&interop::python(), &[script, protocol, &endpoint], b"")
        else {
            // Not installed and not required (a plain `cargo test`): skipped, as said.
            return;
        };
        let sent: serde_json::Value = serde_json::from_slice(&printed)
            .unwrap_or_else(|e| panic!("{protocol}: {e}: {}", String::from_utf8_lossy(&printed)));
        sent_by_protocol.push((protocol, sent));
    }
    let report = stop(relay);
    assert!(report.contains("0 dropped"), "{report}");
    let lines = read_lines(&output);
    let received_spans = spans(&lines);
    for (protocol, sent) in &sent_by_protocol {
        for span in sent["spans"].as_array().expect("spans") {
            let span_id = span["span_id"].as_str().expect("span id");
            let found = received_spans
                .iter()
                .find(|s| hex(&s.span_id) == span_id)
                .unwrap_or_else(|| panic!("{protocol}: span {span_id} not in the file"));
            assert_eq!(hex(&found.trace_id), span["trace_id"].as_str().expect("id"));
            assert_eq!(found.name, span["name"].as_str().expect("name"));
            assert_eq!(
                found.start_time_unix_nano,
                span["start"].as_u64().expect("start")
            );
            assert_eq!(found.end_time_unix_nano, span["end"].as_u64().expect("end"));
            assert_eq!(
                int_attribute(&found.attributes, "index"),
                span["index"].as_i64(),
                "{protocol}"
            );
        }
        let records = log_records(&lines);
        for log in sent["logs"].as_array().expect("logs") {
            let body = log["body"].as_str().expect("body");
            let found = log_with_body(&records, body)
                .unwrap_or_else(|| panic!("{protocol}: log {body:?} not in the file"));
            assert_eq!(found.time_unix_nano, log["time"].as_u64().expect("time"));
            assert_eq!(found.severity_text, "WARN");
            assert_eq!(
                int_attribute(&found.attributes, "index"),
                log["index"].as_i64()
            );
        }
        for metric in sent["metrics"].as_array().expect("metrics") {
            let name = metric["name"].as_str().expect("name");
            let sums: Vec<i64> = sum_points(&lines, name)
                .iter()
                .map(|points| points.iter().filter_map(|p| int_value(p)).sum())
                .collect();
            assert!(
                sums.contains(&metric["sum"].as_i64().expect("sum")),
                "{protocol}: {name} sums {sums:?}"
            );
        }
    }
    let _ = std::fs::remove_file(&output);
}

fn sdk_span(protocol: usize, i: u64) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(0xabcd_0000_0000_0000_0000_0000_0000_0000_u128 + u128::from(i)),
            SpanId::from(((protocol as u64 + 1) << 32) + i),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from(0x77),
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: format!("rust-{protocol}-{i}").into(),
        start_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789 + i),
        end_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_001_000_000_000 + i),
        attributes: vec![KeyValue::new("index", i as i64)],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Ok,
        instrumentation_scope: InstrumentationScope::builder("relay-interop").build(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_rust_exporter_sends_spans_intact_over_each_protocol() {
    let output = temp_file("rust.jsonl");
    let relay = start_relay(&["--output", &output.display().to_string()], &[]);
    for (index, protocol) in ["grpc", "http/protobuf", "http/json"]
        .into_iter()
        .enumerate()
    {
        let exporter = match protocol {
            "grpc" => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(relay.endpoint("grpc"))
                .build(),
            _ => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(if protocol == "http/json" {
                    Protocol::HttpJson
                } else {
                    Protocol::HttpBinary
                })
                .with_endpoint(format!("{}/v1/traces", relay.endpoint(protocol)))
                .build(),
        }
        .expect("official exporter");
        let spans: Vec<SpanData> = (0..20).map(|i| sdk_span(index, i)).collect();
        exporter
            .export(spans)
            .await
            .unwrap_or_else(|e| panic!("{protocol}: {e:?}"));
    }
    let report = stop(relay);
    assert!(report.contains("60 items in, 60 sent"), "{report}");
    let lines = read_lines(&output);
    let received = spans(&lines);
    assert_eq!(received.len(), 60);
    for index in 0..3 {
        for i in 0..20 {
            let expected = sdk_span(index, i);
            let found = received
                .iter()
                .find(|s| s.span_id.as_ref() == expected.span_context.span_id().to_bytes())
                .unwrap_or_else(|| panic!("span {index}/{i} missing"));
            assert_eq!(
                found.trace_id.as_ref(),
                expected.span_context.trace_id().to_bytes()
            );
            assert_eq!(found.parent_span_id.as_ref(), 0x77u64.to_be_bytes());
            assert_eq!(found.name, expected.name);
            assert_eq!(found.start_time_unix_nano, 1_700_000_000_123_456_789 + i);
            assert_eq!(found.end_time_unix_nano, 1_700_000_001_000_000_000 + i);
            assert_eq!(found.kind, 3, "SPAN_KIND_CLIENT");
            assert_eq!(int_attribute(&found.attributes, "index"), Some(i as i64));
        }
    }
    let _ = std::fs::remove_file(&output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_rust_sdk_sends_metrics_and_logs_intact_over_grpc() {
    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
    use opentelemetry::metrics::MeterProvider as _;

    let output = temp_file("rust-sdk.jsonl");
    let relay = start_relay(&["--output", &output.display().to_string()], &[]);
    // Built inside the runtime: the SDK's exporter threads use its reactor.
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(relay.endpoint("grpc"))
        .build()
        .expect("metric exporter");
    let logs = opentelemetry_otlp::LogExporter::builder()
        .with_tonic()
        .with_endpoint(relay.endpoint("grpc"))
        .build()
        .expect("log exporter");
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("rust-sdk-interop")
        .build();
    let timestamp = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_987_654_321);
    tokio::task::spawn_blocking(move || {
        let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_periodic_exporter(metrics)
            .with_resource(resource.clone())
            .build();
        let counter = meters
            .meter("relay-interop")
            .u64_counter("rust.requests")
            .build();
        counter.add(7, &[KeyValue::new("route", "/a")]);
        counter.add(5, &[KeyValue::new("route", "/b")]);
        meters.force_flush().expect("metrics flushed");
        meters.shutdown().expect("metrics shut down");

        let loggers = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
            .with_simple_exporter(logs)
            .with_resource(resource)
            .build();
        let logger = loggers.logger("relay-interop");
        for i in 0..3_i64 {
            let mut record = logger.create_log_record();
            record.set_body(format!("rust log {i}").into());
            record.set_timestamp(timestamp + Duration::from_nanos(i as u64));
            record.set_severity_number(Severity::Warn);
            record.set_severity_text("WARN");
            record.add_attribute("index", i);
            logger.emit(record);
        }
        loggers.shutdown().expect("logs shut down");
    })
    .await
    .expect("SDK thread");
    let report = stop(relay);
    assert!(report.contains("0 dropped"), "{report}");
    let lines = read_lines(&output);

    let points: Vec<&NumberDataPoint> = sum_points(&lines, "rust.requests")
        .into_iter()
        .flatten()
        .collect();
    let value_of = |route: &str| {
        points.iter().find_map(|p| {
            let matches = p.attributes.iter().any(|kv| {
                kv.key == "route"
                    && kv.value.as_ref().and_then(|v| v.value.as_ref())
                        == Some(&any_value::Value::StringValue(route.to_string()))
            });
            if matches { int_value(p) } else { None }
        })
    };
    assert_eq!(
        (value_of("/a"), value_of("/b")),
        (Some(7), Some(5)),
        "{points:?}"
    );

    let records = log_records(&lines);
    assert_eq!(records.len(), 3);
    for i in 0..3_u64 {
        let body = format!("rust log {i}");
        let found =
            log_with_body(&records, &body).unwrap_or_else(|| panic!("{body:?} not in the file"));
        assert_eq!(found.time_unix_nano, 1_700_000_000_987_654_321 + i);
        assert_eq!(found.severity_number, 13, "SEVERITY_NUMBER_WARN");
        assert_eq!(found.severity_text, "WARN");
        assert_eq!(int_attribute(&found.attributes, "index"), Some(i as i64));
    }
    let _ = std::fs::remove_file(&output);
}
