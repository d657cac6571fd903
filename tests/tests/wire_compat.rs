//! Wire compatibility with the official `opentelemetry-proto` crate, property-tested for all
//! three signals over random requests that cover every metric kind, every `AnyValue`
//! variant (nested arrays and key/value lists), events, links and exemplars.
//!
//! For each random request `ours`:
//! 1. `a = encode(ours)` with our types;
//! 2. `theirs = official::decode(a)` must succeed, and `official::encode(theirs) == a`.
//!    prost encodes every known field in tag order, so byte equality means `theirs` holds
//!    exactly the field values of `ours`: nothing was lost or reinterpreted;
//! 3. the reverse: `our::decode(official::encode(theirs)) == ours`, and re-encoding that
//!    with our types gives the same bytes again.

use opentelemetry_proto::tonic::collector as official;
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_testkit::strategies;
use proptest::prelude::*;
use prost::Message;

fn check_both_ways<Ours, Theirs>(ours: &Ours) -> Result<(), TestCaseError>
where
    Ours: Message + Default + PartialEq + std::fmt::Debug,
    Theirs: Message + Default,
{
    let ours_bytes = ours.encode_to_vec();
    let theirs = Theirs::decode(ours_bytes.as_slice())
        .map_err(|e| TestCaseError::fail(format!("official crate cannot decode our bytes: {e}")))?;
    let theirs_bytes = theirs.encode_to_vec();
    prop_assert_eq!(&theirs_bytes, &ours_bytes, "official re-encoding differs");

    let back = Ours::decode(theirs_bytes.as_slice())
        .map_err(|e| TestCaseError::fail(format!("we cannot decode official bytes: {e}")))?;
    prop_assert_eq!(&back, ours);
    prop_assert_eq!(back.encode_to_vec(), ours_bytes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn traces_are_wire_compatible(request in strategies::traces_request()) {
        check_both_ways::<ExportTraceServiceRequest, official::trace::v1::ExportTraceServiceRequest>(&request)?;
    }

    #[test]
    fn metrics_are_wire_compatible(request in strategies::metrics_request()) {
        check_both_ways::<ExportMetricsServiceRequest, official::metrics::v1::ExportMetricsServiceRequest>(&request)?;
    }

    #[test]
    fn logs_are_wire_compatible(request in strategies::logs_request()) {
        check_both_ways::<ExportLogsServiceRequest, official::logs::v1::ExportLogsServiceRequest>(&request)?;
    }

    #[test]
    fn responses_are_wire_compatible(rejected in any::<i64>(), message in strategies::text()) {
        use otlp_model::SignalResponse;
        let ours = otlp_model::collector::trace::ExportTraceServiceResponse::with_partial_success(rejected, message.clone());
        check_both_ways::<_, official::trace::v1::ExportTraceServiceResponse>(&ours)?;
        let ours = otlp_model::collector::metrics::ExportMetricsServiceResponse::with_partial_success(rejected, message.clone());
        check_both_ways::<_, official::metrics::v1::ExportMetricsServiceResponse>(&ours)?;
        let ours = otlp_model::collector::logs::ExportLogsServiceResponse::with_partial_success(rejected, message);
        check_both_ways::<_, official::logs::v1::ExportLogsServiceResponse>(&ours)?;
    }
}

/// The strategies must actually reach every variant the properties claim to cover;
/// otherwise the properties above would pass vacuously.
#[test]
fn strategies_cover_every_variant() {
    use otlp_model::common::any_value::Value;
    use otlp_model::metrics::metric::Data;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;

    fn walk(value: &otlp_model::common::AnyValue, seen: &mut BTreeSet<&'static str>) {
        match &value.value {
            None => {}
            Some(Value::StringValue(_)) => {
                seen.insert("string");
            }
            Some(Value::BoolValue(_)) => {
                seen.insert("bool");
            }
            Some(Value::IntValue(_)) => {
                seen.insert("int");
            }
            Some(Value::DoubleValue(_)) => {
                seen.insert("double");
            }
            Some(Value::BytesValue(_)) => {
                seen.insert("bytes");
            }
            Some(Value::StringValueStrindex(_)) => {
                seen.insert("strindex");
            }
            Some(Value::ArrayValue(a)) => {
                seen.insert("array");
                a.values.iter().for_each(|v| walk(v, seen));
            }
            Some(Value::KvlistValue(kv)) => {
                seen.insert("kvlist");
                kv.values
                    .iter()
                    .filter_map(|kv| kv.value.as_ref())
                    .for_each(|v| walk(v, seen));
            }
        }
    }

    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..300 {
        let traces = strategies::traces_request()
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        for span in traces
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            if !span.events.is_empty() {
                seen.insert("event");
            }
            if !span.links.is_empty() {
                seen.insert("link");
            }
            for kv in &span.attributes {
                if let Some(v) = &kv.value {
                    walk(v, &mut seen);
                }
            }
        }
        let metrics = strategies::metrics_request()
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        for metric in metrics
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
        {
            let (kind, exemplars) = match &metric.data {
                None => ("no data", false),
                Some(Data::Gauge(g)) => (
                    "gauge",
                    g.data_points.iter().any(|p| !p.exemplars.is_empty()),
                ),
                Some(Data::Sum(s)) => {
                    ("sum", s.data_points.iter().any(|p| !p.exemplars.is_empty()))
                }
                Some(Data::Histogram(h)) => (
                    "histogram",
                    h.data_points.iter().any(|p| !p.exemplars.is_empty()),
                ),
                Some(Data::ExponentialHistogram(e)) => (
                    "exponential histogram",
                    e.data_points.iter().any(|p| !p.exemplars.is_empty()),
                ),
                Some(Data::Summary(_)) => ("summary", false),
            };
            seen.insert(kind);
            if exemplars {
                seen.insert("exemplar");
            }
        }
        let logs = strategies::logs_request()
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        for record in logs
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
        {
            if let Some(body) = &record.body {
                walk(body, &mut seen);
            }
        }
    }
    let expected = [
        "string",
        "bool",
        "int",
        "double",
        "bytes",
        "strindex",
        "array",
        "kvlist",
        "event",
        "link",
        "no data",
        "gauge",
        "sum",
        "histogram",
        "exponential histogram",
        "summary",
        "exemplar",
    ];
    for variant in expected {
        assert!(
            seen.contains(variant),
            "strategies never produced {variant}; saw {seen:?}"
        );
    }
}
