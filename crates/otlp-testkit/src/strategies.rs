//! proptest strategies for the OTLP messages.
//!
//! Sizes are kept small (a few groups, a few items each) so that a property test runs
//! hundreds of cases in well under a second; the variety is in the shapes, not the sizes.
//! Doubles are finite or infinite but never NaN, so that generated messages compare equal
//! to themselves; codecs test NaN separately.

use bytes::Bytes;
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_model::common::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use otlp_model::logs::{LogRecord, ResourceLogs, ScopeLogs};
use otlp_model::metrics::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, metric,
    number_data_point, summary_data_point::ValueAtQuantile,
};
use otlp_model::resource::Resource;
use otlp_model::trace::{ResourceSpans, ScopeSpans, Span, Status, span};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// A double that is finite, or one of the infinities; never NaN.
pub fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => any::<f64>().prop_filter("not NaN", |d| !d.is_nan()),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(0.0),
    ]
}

/// Short strings, including non-ASCII and characters that JSON must escape.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z._]{0,12}",
        1 => "\\PC{0,8}",
        1 => Just("quote\" backslash\\ newline\n tab\t nul\u{0} emoji\u{1F600}".to_string()),
    ]
}

/// Arbitrary bytes, short.
pub fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

/// A trace id: empty (absent) or 16 bytes.
pub fn trace_id() -> impl Strategy<Value = Bytes> {
    prop_oneof![1 => Just(Bytes::new()), 4 => any::<[u8; 16]>().prop_map(|b| Bytes::copy_from_slice(&b))]
}

/// A span id: empty (absent) or 8 bytes.
pub fn span_id() -> impl Strategy<Value = Bytes> {
    prop_oneof![1 => Just(Bytes::new()), 4 => any::<[u8; 8]>().prop_map(|b| Bytes::copy_from_slice(&b))]
}

/// A value of an enum field: usually a defined one, sometimes a value unknown to the schema
/// (proto3 enums are open, and a relay must carry such values through).
pub fn enum_value(defined: std::ops::RangeInclusive<i32>) -> impl Strategy<Value = i32> {
    prop_oneof![9 => defined, 1 => any::<i32>()]
}

/// Every `AnyValue` variant, nested up to `depth` levels of arrays and key/value lists.
pub fn any_value_with_depth(depth: u32) -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        Just(None),
        text().prop_map(|s| Some(any_value::Value::StringValue(s))),
        any::<bool>().prop_map(|b| Some(any_value::Value::BoolValue(b))),
        any::<i64>().prop_map(|i| Some(any_value::Value::IntValue(i))),
        double().prop_map(|d| Some(any_value::Value::DoubleValue(d))),
        bytes(12).prop_map(|b| Some(any_value::Value::BytesValue(b))),
        (0..100i32).prop_map(|i| Some(any_value::Value::StringValueStrindex(i))),
    ]
    .prop_map(|value| AnyValue { value });
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
            }),
            vec(("[a-z]{0,6}", option::of(inner), 0..3i32), 0..4).prop_map(|kvs| AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, value, key_strindex)| KeyValue {
                            key,
                            value,
                            key_strindex
                        })
                        .collect(),
                })),
            }),
        ]
    })
}

/// An `AnyValue` nested up to three levels.
pub fn any_value() -> impl Strategy<Value = AnyValue> {
    any_value_with_depth(3)
}

/// One attribute; the value is occasionally absent.
pub fn key_value() -> impl Strategy<Value = KeyValue> {
    (
        text(),
        option::weighted(0.9, any_value()),
        prop_oneof![9 => Just(0), 1 => 1..50i32],
    )
        .prop_map(|(key, value, key_strindex)| KeyValue {
            key,
            value,
            key_strindex,
        })
}

/// Zero to three attributes.
pub fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    vec(key_value(), 0..4)
}

/// A resource, with entity references.
pub fn resource() -> impl Strategy<Value = Resource> {
    let entity = (text(), text(), vec(text(), 0..2), vec(text(), 0..2)).prop_map(
        |(schema_url, r#type, id_keys, description_keys)| EntityRef {
            schema_url,
            r#type,
            id_keys,
            description_keys,
        },
    );
    (attributes(), any::<u32>(), vec(entity, 0..2)).prop_map(
        |(attributes, dropped_attributes_count, entity_refs)| Resource {
            attributes,
            dropped_attributes_count,
            entity_refs,
        },
    )
}

/// An instrumentation scope.
pub fn scope() -> impl Strategy<Value = InstrumentationScope> {
    (text(), text(), attributes(), any::<u32>()).prop_map(
        |(name, version, attributes, dropped_attributes_count)| InstrumentationScope {
            name,
            version,
            attributes,
            dropped_attributes_count,
        },
    )
}

fn schema_url() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("https://opentelemetry.io/schemas/1.26.0".to_string())
    ]
}

/// A span with events, links and status.
pub fn span() -> impl Strategy<Value = Span> {
    let event = (any::<u64>(), text(), attributes(), any::<u32>()).prop_map(
        |(time_unix_nano, name, attributes, dropped_attributes_count)| span::Event {
            time_unix_nano,
            name,
            attributes,
            dropped_attributes_count,
        },
    );
    let link = (
        trace_id(),
        span_id(),
        text(),
        attributes(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| {
                span::Link {
                    trace_id,
                    span_id,
                    trace_state,
                    attributes,
                    dropped_attributes_count,
                    flags,
                }
            },
        );
    let status = (text(), enum_value(0..=2)).prop_map(|(message, code)| Status { message, code });
    let ids = (trace_id(), span_id(), text(), span_id(), any::<u32>());
    let body = (
        text(),
        enum_value(0..=5),
        any::<u64>(),
        any::<u64>(),
        attributes(),
        any::<u32>(),
    );
    let children = (
        vec(event, 0..3),
        any::<u32>(),
        vec(link, 0..3),
        any::<u32>(),
        option::of(status),
    );
    (ids, body, children).prop_map(
        |(
            (trace_id, span_id, trace_state, parent_span_id, flags),
            (
                name,
                kind,
                start_time_unix_nano,
                end_time_unix_nano,
                attributes,
                dropped_attributes_count,
            ),
            (events, dropped_events_count, links, dropped_links_count, status),
        )| Span {
            trace_id,
            span_id,
            trace_state,
            parent_span_id,
            flags,
            name,
            kind,
            start_time_unix_nano,
            end_time_unix_nano,
            attributes,
            dropped_attributes_count,
            events,
            dropped_events_count,
            links,
            dropped_links_count,
            status,
        },
    )
}

/// A log record with any body.
pub fn log_record() -> impl Strategy<Value = LogRecord> {
    let times = (any::<u64>(), any::<u64>(), enum_value(0..=24), text());
    let body = (
        option::of(any_value()),
        attributes(),
        any::<u32>(),
        any::<u32>(),
    );
    let ids = (trace_id(), span_id(), text());
    (times, body, ids).prop_map(
        |(
            (time_unix_nano, observed_time_unix_nano, severity_number, severity_text),
            (body, attributes, dropped_attributes_count, flags),
            (trace_id, span_id, event_name),
        )| LogRecord {
            time_unix_nano,
            observed_time_unix_nano,
            severity_number,
            severity_text,
            body,
            attributes,
            dropped_attributes_count,
            flags,
            trace_id,
            span_id,
            event_name,
        },
    )
}

/// An exemplar with an integer, a double or no value.
pub fn exemplar() -> impl Strategy<Value = Exemplar> {
    let value = prop_oneof![
        Just(None),
        double().prop_map(|d| Some(exemplar::Value::AsDouble(d))),
        any::<i64>().prop_map(|i| Some(exemplar::Value::AsInt(i))),
    ];
    (attributes(), any::<u64>(), value, span_id(), trace_id()).prop_map(
        |(filtered_attributes, time_unix_nano, value, span_id, trace_id)| Exemplar {
            filtered_attributes,
            time_unix_nano,
            value,
            span_id,
            trace_id,
        },
    )
}

fn exemplars() -> impl Strategy<Value = Vec<Exemplar>> {
    vec(exemplar(), 0..2)
}

fn number_point() -> impl Strategy<Value = NumberDataPoint> {
    let value = prop_oneof![
        Just(None),
        double().prop_map(|d| Some(number_data_point::Value::AsDouble(d))),
        any::<i64>().prop_map(|i| Some(number_data_point::Value::AsInt(i))),
    ];
    (
        attributes(),
        any::<u64>(),
        any::<u64>(),
        value,
        exemplars(),
        0..2u32,
    )
        .prop_map(
            |(attributes, start_time_unix_nano, time_unix_nano, value, exemplars, flags)| {
                NumberDataPoint {
                    attributes,
                    start_time_unix_nano,
                    time_unix_nano,
                    value,
                    exemplars,
                    flags,
                }
            },
        )
}

fn histogram_point() -> impl Strategy<Value = HistogramDataPoint> {
    let head = (
        attributes(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        option::of(double()),
    );
    let buckets = (
        vec(any::<u64>(), 0..5),
        vec(double(), 0..4),
        exemplars(),
        0..2u32,
    );
    let extremes = (option::of(double()), option::of(double()));
    (head, buckets, extremes).prop_map(
        |(
            (attributes, start_time_unix_nano, time_unix_nano, count, sum),
            (bucket_counts, explicit_bounds, exemplars, flags),
            (min, max),
        )| HistogramDataPoint {
            attributes,
            start_time_unix_nano,
            time_unix_nano,
            count,
            sum,
            bucket_counts,
            explicit_bounds,
            exemplars,
            flags,
            min,
            max,
        },
    )
}

fn exponential_point() -> impl Strategy<Value = ExponentialHistogramDataPoint> {
    let buckets =
        (any::<i32>(), vec(any::<u64>(), 0..4)).prop_map(|(offset, bucket_counts)| Buckets {
            offset,
            bucket_counts,
        });
    let head = (
        attributes(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        option::of(double()),
    );
    let shape = (
        -10..=20i32,
        any::<u64>(),
        option::of(buckets.clone()),
        option::of(buckets),
    );
    let tail = (
        0..2u32,
        exemplars(),
        option::of(double()),
        option::of(double()),
        double(),
    );
    (head, shape, tail).prop_map(
        |(
            (attributes, start_time_unix_nano, time_unix_nano, count, sum),
            (scale, zero_count, positive, negative),
            (flags, exemplars, min, max, zero_threshold),
        )| ExponentialHistogramDataPoint {
            attributes,
            start_time_unix_nano,
            time_unix_nano,
            count,
            sum,
            scale,
            zero_count,
            positive,
            negative,
            flags,
            exemplars,
            min,
            max,
            zero_threshold,
        },
    )
}

fn summary_point() -> impl Strategy<Value = SummaryDataPoint> {
    let quantile =
        (double(), double()).prop_map(|(quantile, value)| ValueAtQuantile { quantile, value });
    (
        attributes(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        double(),
        vec(quantile, 0..3),
        0..2u32,
    )
        .prop_map(
            |(
                attributes,
                start_time_unix_nano,
                time_unix_nano,
                count,
                sum,
                quantile_values,
                flags,
            )| {
                SummaryDataPoint {
                    attributes,
                    start_time_unix_nano,
                    time_unix_nano,
                    count,
                    sum,
                    quantile_values,
                    flags,
                }
            },
        )
}

/// The data of a metric: any of the five kinds (or none), with zero to three points.
pub fn metric_data() -> impl Strategy<Value = Option<metric::Data>> {
    let temporality = || enum_value(0..=2);
    prop_oneof![
        1 => Just(None),
        2 => vec(number_point(), 0..4).prop_map(|data_points| Some(metric::Data::Gauge(Gauge { data_points }))),
        2 => (vec(number_point(), 0..4), temporality(), any::<bool>()).prop_map(
            |(data_points, aggregation_temporality, is_monotonic)| {
                Some(metric::Data::Sum(Sum { data_points, aggregation_temporality, is_monotonic }))
            }
        ),
        2 => (vec(histogram_point(), 0..4), temporality()).prop_map(
            |(data_points, aggregation_temporality)| {
                Some(metric::Data::Histogram(Histogram { data_points, aggregation_temporality }))
            }
        ),
        2 => (vec(exponential_point(), 0..4), temporality()).prop_map(
            |(data_points, aggregation_temporality)| {
                Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points,
                    aggregation_temporality,
                }))
            }
        ),
        2 => vec(summary_point(), 0..4).prop_map(|data_points| Some(metric::Data::Summary(Summary { data_points }))),
    ]
}

/// A metric of any kind.
pub fn metric() -> impl Strategy<Value = Metric> {
    (text(), text(), text(), metric_data(), attributes()).prop_map(
        |(name, description, unit, data, metadata)| Metric {
            name,
            description,
            unit,
            data,
            metadata,
        },
    )
}

/// A trace export request: zero to two resources, zero to two scopes each, zero to four spans.
pub fn traces_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope_spans = (option::of(scope()), vec(span(), 0..5), schema_url()).prop_map(
        |(scope, spans, schema_url)| ScopeSpans {
            scope,
            spans,
            schema_url,
        },
    );
    let resource_spans = (option::of(resource()), vec(scope_spans, 0..3), schema_url()).prop_map(
        |(resource, scope_spans, schema_url)| ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        },
    );
    vec(resource_spans, 0..3)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

/// A metrics export request of every metric kind.
pub fn metrics_request() -> impl Strategy<Value = ExportMetricsServiceRequest> {
    let scope_metrics = (option::of(scope()), vec(metric(), 0..4), schema_url()).prop_map(
        |(scope, metrics, schema_url)| ScopeMetrics {
            scope,
            metrics,
            schema_url,
        },
    );
    let resource_metrics = (
        option::of(resource()),
        vec(scope_metrics, 0..3),
        schema_url(),
    )
        .prop_map(|(resource, scope_metrics, schema_url)| ResourceMetrics {
            resource,
            scope_metrics,
            schema_url,
        });
    vec(resource_metrics, 0..3)
        .prop_map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
}

/// A logs export request.
pub fn logs_request() -> impl Strategy<Value = ExportLogsServiceRequest> {
    let scope_logs = (option::of(scope()), vec(log_record(), 0..5), schema_url()).prop_map(
        |(scope, log_records, schema_url)| ScopeLogs {
            scope,
            log_records,
            schema_url,
        },
    );
    let resource_logs = (option::of(resource()), vec(scope_logs, 0..3), schema_url()).prop_map(
        |(resource, scope_logs, schema_url)| ResourceLogs {
            resource,
            scope_logs,
            schema_url,
        },
    );
    vec(resource_logs, 0..3).prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
}
