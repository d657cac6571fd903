//! The benchmark workload: realistic telemetry, deterministic for a given seed.
//!
//! "A realistic span" is an HTTP server span: 16-byte trace id, 8-byte span and parent span
//! ids, name `GET /api/users/{id}`, kind SERVER, start and end times, status OK and ten
//! attributes (`http.request.method`, `http.route`, `http.response.status_code`, `url.path`
//! (varying), `url.scheme`, `server.address`, `server.port`, `network.peer.address`
//! (varying), `user_agent.original`, `http.response.body.size`), under one resource
//! (`service.name`, `service.version`, `host.name`) and one scope.

use bytes::Bytes;
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_model::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use otlp_model::logs::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use otlp_model::metrics::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use otlp_model::resource::Resource;
use otlp_model::trace::{ResourceSpans, ScopeSpans, Span, Status, span, status};

/// 2026-01-01T00:00:00Z in Unix nanoseconds: a fixed base so output is reproducible.
const BASE_TIME_NANOS: u64 = 1_767_225_600_000_000_000;

/// A small deterministic generator (splitmix64); benchmarks need repeatable input, not
/// statistical quality.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    fn id<const N: usize>(&mut self) -> Bytes {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let random = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&random[..chunk.len()]);
        }
        // All-zero ids are invalid; make sure we never produce one.
        out[0] |= 1;
        Bytes::copy_from_slice(&out)
    }
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        key_strindex: 0,
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        key_strindex: 0,
    }
}

/// The resource every realistic request carries.
pub fn resource() -> Resource {
    Resource {
        attributes: vec![
            string("service.name", "user-api"),
            string("service.version", "1.42.0"),
            string("host.name", "api-7f9c6d5b8-x2k4q"),
        ],
        dropped_attributes_count: 0,
        entity_refs: Vec::new(),
    }
}

/// The instrumentation scope every realistic request carries.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "io.opentelemetry.http-server".to_string(),
        version: "2.9.0".to_string(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

/// One realistic HTTP server span.
pub fn span(rng: &mut Rng) -> Span {
    let user = 10_000 + rng.below(90_000);
    let start = BASE_TIME_NANOS + rng.below(3_600_000_000_000);
    let duration = 200_000 + rng.below(50_000_000);
    let peer = format!(
        "10.{}.{}.{}",
        rng.below(256),
        rng.below(256),
        1 + rng.below(254)
    );
    Span {
        trace_id: rng.id::<16>(),
        span_id: rng.id::<8>(),
        trace_state: String::new(),
        parent_span_id: rng.id::<8>(),
        flags: 0x101,
        name: "GET /api/users/{id}".to_string(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes: vec![
            string("http.request.method", "GET"),
            string("http.route", "/api/users/{id}"),
            int("http.response.status_code", 200),
            string("url.path", format!("/api/users/{user}")),
            string("url.scheme", "https"),
            string("server.address", "api.example.com"),
            int("server.port", 443),
            string("network.peer.address", peer),
            string(
                "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0.0.0 Safari/537.36",
            ),
            int("http.response.body.size", 256 + rng.below(8192) as i64),
        ],
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Some(Status {
            message: String::new(),
            code: status::StatusCode::Ok as i32,
        }),
    }
}

/// `count` realistic spans under one resource and one scope.
pub fn traces(count: usize, seed: u64) -> ExportTraceServiceRequest {
    let mut rng = Rng::new(seed);
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans: (0..count).map(|_| span(&mut rng)).collect(),
                schema_url: String::new(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.26.0".to_string(),
        }],
    }
}

/// `count` spans shaped like the OpenTelemetry Collector testbed's load generator (its
/// performance-test data provider), so that a figure can be set beside the testbed's for
/// the same load: under one bare resource and scope, each span has the batch's trace id, its
/// own span id, a numbered name, kind client, a 1 ms duration and two integer attributes
/// (its sequence number and the batch's). About 150 bytes a span encoded, against about
/// 460 for [`traces`].
pub fn testbed_traces(count: usize, batch: u64) -> ExportTraceServiceRequest {
    let trace_id = [0u8; 8]
        .into_iter()
        .chain(batch.to_be_bytes())
        .collect::<Vec<u8>>();
    let spans = (0..count as u64)
        .map(|i| {
            let sequence = batch * count as u64 + i + 1;
            let start = BASE_TIME_NANOS + (i + batch * 1000) * 1_000_000_000;
            Span {
                trace_id: Bytes::from(trace_id.clone()),
                span_id: Bytes::copy_from_slice(&sequence.to_be_bytes()),
                name: format!("load-generator-span{}", sequence + batch * 1000),
                kind: span::SpanKind::Client as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 1_000_000,
                attributes: vec![
                    int("load_generator.span_seq_num", sequence as i64),
                    int("load_generator.trace_seq_num", batch as i64),
                ],
                ..Span::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope::default()),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One gauge named `name` with `points` data points (time stamps 0, 1, ...), under one
/// resource and scope: the shape that makes a splitter cut inside a metric.
pub fn one_gauge(name: &str, points: usize) -> ExportMetricsServiceRequest {
    use otlp_model::metrics::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
    };
    let data_points = (0..points as u64)
        .map(|time_unix_nano| NumberDataPoint {
            time_unix_nano,
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.to_string(),
                    data: Some(Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Realistic HTTP server metrics with `points` data points in all, alternating between a
/// request counter (sum) and a duration histogram, one point per route and status.
pub fn metrics(points: usize, seed: u64) -> ExportMetricsServiceRequest {
    let mut rng = Rng::new(seed);
    let mut counter = Vec::new();
    let mut histogram = Vec::new();
    for i in 0..points {
        let attributes = vec![
            string("http.request.method", "GET"),
            string("http.route", format!("/api/route/{}", i / 2)),
            int("http.response.status_code", [200, 404, 500][i % 3]),
        ];
        let time = BASE_TIME_NANOS + rng.below(60_000_000_000);
        if i % 2 == 0 {
            counter.push(NumberDataPoint {
                attributes,
                start_time_unix_nano: BASE_TIME_NANOS,
                time_unix_nano: time,
                value: Some(number_data_point::Value::AsInt(rng.below(1_000_000) as i64)),
                exemplars: Vec::new(),
                flags: 0,
            });
        } else {
            let bucket_counts: Vec<u64> = (0..8).map(|_| rng.below(1000)).collect();
            histogram.push(HistogramDataPoint {
                attributes,
                start_time_unix_nano: BASE_TIME_NANOS,
                time_unix_nano: time,
                count: bucket_counts.iter().sum(),
                sum: Some(rng.below(10_000_000) as f64 / 1000.0),
                bucket_counts,
                explicit_bounds: vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5],
                exemplars: Vec::new(),
                flags: 0,
                min: Some(0.001),
                max: Some(2.5),
            });
        }
    }
    let cumulative = AggregationTemporality::Cumulative as i32;
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics: vec![
                    Metric {
                        name: "http.server.request.count".to_string(),
                        description: "Requests served".to_string(),
                        unit: "{request}".to_string(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: counter,
                            aggregation_temporality: cumulative,
                            is_monotonic: true,
                        })),
                        metadata: Vec::new(),
                    },
                    Metric {
                        name: "http.server.request.duration".to_string(),
                        description: "Duration of HTTP server requests".to_string(),
                        unit: "s".to_string(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: histogram,
                            aggregation_temporality: cumulative,
                        })),
                        metadata: Vec::new(),
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// `count` realistic access-log records, correlated with a trace.
pub fn logs(count: usize, seed: u64) -> ExportLogsServiceRequest {
    let mut rng = Rng::new(seed);
    let records = (0..count)
        .map(|_| {
            let time = BASE_TIME_NANOS + rng.below(3_600_000_000_000);
            let status = [200, 200, 200, 404, 500][rng.below(5) as usize];
            let user = 10_000 + rng.below(90_000);
            LogRecord {
                time_unix_nano: time,
                observed_time_unix_nano: time + 1_000_000,
                severity_number: if status >= 500 {
                    SeverityNumber::Error as i32
                } else {
                    SeverityNumber::Info as i32
                },
                severity_text: if status >= 500 { "ERROR" } else { "INFO" }.to_string(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(format!(
                        "GET /api/users/{user} -> {status}"
                    ))),
                }),
                attributes: vec![
                    string("http.request.method", "GET"),
                    int("http.response.status_code", status),
                    string("url.path", format!("/api/users/{user}")),
                ],
                dropped_attributes_count: 0,
                flags: 1,
                trace_id: rng.id::<16>(),
                span_id: rng.id::<8>(),
                event_name: String::new(),
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp_model::SignalRequest;
    use prost::Message;

    #[test]
    fn the_realistic_span_is_about_465_bytes() {
        let request = traces(10_000, 7);
        let per_span = request.encoded_len() as f64 / 10_000.0;
        assert!(
            (420.0..=510.0).contains(&per_span),
            "{per_span} bytes per span"
        );
    }

    #[test]
    fn workloads_are_deterministic_and_sized() {
        assert_eq!(traces(50, 1), traces(50, 1));
        assert_ne!(traces(50, 1), traces(50, 2));
        assert_eq!(metrics(101, 3).item_count(), 101);
        assert_eq!(logs(33, 3).item_count(), 33);
    }
}
