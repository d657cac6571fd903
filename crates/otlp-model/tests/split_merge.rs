//! Property tests for item counting, splitting and merging, for all three signals.

use otlp_model::SignalRequest;
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_model::common::InstrumentationScope;
use otlp_model::metrics::{Metric, NumberDataPoint, metric::Data};
use otlp_model::resource::Resource;
use otlp_model::trace::Span;
use otlp_testkit::strategies;
use proptest::prelude::*;

/// A span with the resource (and its schema URL) and scope (and its schema URL) it belongs to.
type FlatSpan = (
    Option<Resource>,
    String,
    Option<InstrumentationScope>,
    String,
    Span,
);

/// Every span with the resource and scope it belongs to, in order.
fn flat_spans(r: &ExportTraceServiceRequest) -> Vec<FlatSpan> {
    let mut out = Vec::new();
    for rs in &r.resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                out.push((
                    rs.resource.clone(),
                    rs.schema_url.clone(),
                    ss.scope.clone(),
                    ss.schema_url.clone(),
                    span.clone(),
                ));
            }
        }
    }
    out
}

fn flat_logs(r: &ExportLogsServiceRequest) -> Vec<String> {
    // Debug strings are a total, comparable identity for (resource, scope, record).
    let mut out = Vec::new();
    for rl in &r.resource_logs {
        for sl in &rl.scope_logs {
            for record in &sl.log_records {
                out.push(format!(
                    "{:?}|{}|{:?}|{}|{:?}",
                    rl.resource, rl.schema_url, sl.scope, sl.schema_url, record
                ));
            }
        }
    }
    out
}

/// A metric without its points, for identity.
fn metric_header(metric: &Metric) -> String {
    let mut header = metric.clone();
    match &mut header.data {
        Some(Data::Gauge(g)) => g.data_points.clear(),
        Some(Data::Sum(s)) => s.data_points.clear(),
        Some(Data::Histogram(h)) => h.data_points.clear(),
        Some(Data::ExponentialHistogram(e)) => e.data_points.clear(),
        Some(Data::Summary(s)) => s.data_points.clear(),
        None => {}
    }
    format!("{header:?}")
}

fn points(metric: &Metric) -> Vec<String> {
    match &metric.data {
        Some(Data::Gauge(g)) => g.data_points.iter().map(|p| format!("{p:?}")).collect(),
        Some(Data::Sum(s)) => s.data_points.iter().map(|p| format!("{p:?}")).collect(),
        Some(Data::Histogram(h)) => h.data_points.iter().map(|p| format!("{p:?}")).collect(),
        Some(Data::ExponentialHistogram(e)) => {
            e.data_points.iter().map(|p| format!("{p:?}")).collect()
        }
        Some(Data::Summary(s)) => s.data_points.iter().map(|p| format!("{p:?}")).collect(),
        None => Vec::new(),
    }
}

fn flat_points(r: &ExportMetricsServiceRequest) -> Vec<String> {
    let mut out = Vec::new();
    for rm in &r.resource_metrics {
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                let prefix = format!(
                    "{:?}|{}|{:?}|{}|{}",
                    rm.resource,
                    rm.schema_url,
                    sm.scope,
                    sm.schema_url,
                    metric_header(metric)
                );
                out.extend(points(metric).into_iter().map(|p| format!("{prefix}|{p}")));
            }
        }
    }
    out
}

/// Stable sort by group identity: merging may move an item next to earlier items of its
/// group, but never reorders items within a group.
fn grouped(mut items: Vec<String>, key_of: impl Fn(&str) -> String) -> Vec<String> {
    items.sort_by_key(|item| key_of(item));
    items
}

fn key_before_last_bar(item: &str) -> String {
    item.rsplit_once('|')
        .map(|(k, _)| k.to_string())
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn traces_split_keeps_every_span_in_order_within_the_cap(request in strategies::traces_request(), max in 1usize..6) {
        let parts = request.clone().split(max);
        for part in &parts {
            prop_assert!(part.item_count() <= max);
            prop_assert!(!part.resource_spans.is_empty());
        }
        // Every part but the last is full: no needless small requests.
        for part in parts.iter().rev().skip(1) {
            prop_assert_eq!(part.item_count(), max);
        }
        prop_assert_eq!(parts.iter().map(SignalRequest::item_count).sum::<usize>(), request.item_count());
        let rejoined: Vec<_> = parts.iter().flat_map(flat_spans).collect();
        prop_assert_eq!(rejoined, flat_spans(&request));
    }

    #[test]
    fn traces_merge_of_split_restores_every_span(request in strategies::traces_request(), max in 1usize..6) {
        let mut merged = ExportTraceServiceRequest::default();
        for part in request.clone().split(max) {
            merged.merge(part);
        }
        prop_assert_eq!(merged.item_count(), request.item_count());
        let key = |s: &FlatSpan| format!("{:?}{}{:?}{}", s.0, s.1, s.2, s.3);
        let mut expected = flat_spans(&request);
        expected.sort_by_key(key);
        let mut actual = flat_spans(&merged);
        actual.sort_by_key(key);
        prop_assert_eq!(actual, expected);
    }

    #[test]
    fn logs_split_and_merge_keep_every_record(request in strategies::logs_request(), max in 1usize..6) {
        let parts = request.clone().split(max);
        prop_assert!(parts.iter().all(|p| p.item_count() <= max));
        let rejoined: Vec<_> = parts.iter().flat_map(flat_logs).collect();
        prop_assert_eq!(&rejoined, &flat_logs(&request));

        let mut merged = ExportLogsServiceRequest::default();
        for part in parts {
            merged.merge(part);
        }
        prop_assert_eq!(
            grouped(flat_logs(&merged), key_before_last_bar_logs),
            grouped(flat_logs(&request), key_before_last_bar_logs)
        );
    }

    #[test]
    fn metrics_split_cuts_inside_metrics_and_keeps_every_point(request in strategies::metrics_request(), max in 1usize..5) {
        let parts = request.clone().split(max);
        for part in &parts {
            prop_assert!(part.item_count() <= max);
        }
        for part in parts.iter().rev().skip(1) {
            prop_assert_eq!(part.item_count(), max);
        }
        let rejoined: Vec<_> = parts.iter().flat_map(flat_points).collect();
        prop_assert_eq!(&rejoined, &flat_points(&request));

        let mut merged = ExportMetricsServiceRequest::default();
        for part in parts {
            merged.merge(part);
        }
        prop_assert_eq!(merged.item_count(), request.item_count());
        prop_assert_eq!(
            grouped(flat_points(&merged), key_before_last_bar),
            grouped(flat_points(&request), key_before_last_bar)
        );
    }
}

fn key_before_last_bar_logs(item: &str) -> String {
    // resource|schema|scope|schema|record: the key is everything but the record.
    let mut parts = item.splitn(5, '|');
    (0..4)
        .filter_map(|_| parts.next())
        .collect::<Vec<_>>()
        .join("|")
}

#[test]
fn split_of_groups_without_items_keeps_them() {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![otlp_model::trace::ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![otlp_model::trace::ScopeSpans::default()],
            schema_url: "s".into(),
        }],
    };
    assert_eq!(request.item_count(), 0);
    assert_eq!(request.clone().split(10), vec![request]);
    assert!(ExportTraceServiceRequest::default().split(10).is_empty());
}

#[test]
fn a_large_metric_is_split_with_its_identity() {
    let points: Vec<NumberDataPoint> = (0..5)
        .map(|i| NumberDataPoint {
            time_unix_nano: i,
            ..Default::default()
        })
        .collect();
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![otlp_model::metrics::ResourceMetrics {
            scope_metrics: vec![otlp_model::metrics::ScopeMetrics {
                metrics: vec![Metric {
                    name: "requests".into(),
                    unit: "1".into(),
                    data: Some(Data::Sum(otlp_model::metrics::Sum {
                        data_points: points,
                        aggregation_temporality: 2,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let parts = request.clone().split(2);
    assert_eq!(
        parts
            .iter()
            .map(SignalRequest::item_count)
            .collect::<Vec<_>>(),
        [2, 2, 1]
    );
    for part in &parts {
        let metric = &part.resource_metrics[0].scope_metrics[0].metrics[0];
        assert_eq!(metric.name, "requests");
        let Some(Data::Sum(sum)) = &metric.data else {
            panic!("sum kept")
        };
        assert_eq!((sum.aggregation_temporality, sum.is_monotonic), (2, true));
    }
    let mut merged = ExportMetricsServiceRequest::default();
    for part in parts {
        merged.merge(part);
    }
    assert_eq!(merged, request, "the split metric is rejoined");
}

proptest! {
    #[test]
    fn partition_keeps_every_span_on_exactly_one_side(request in strategies::traces_request(), modulus in 1usize..4) {
        let original = flat_spans(&request);
        let (kept, rest) = request.partition(|span| span.name.len() % modulus == 0);
        let kept_spans = flat_spans(&kept);
        let rest_spans = flat_spans(&rest);
        prop_assert!(kept_spans.iter().all(|s| s.4.name.len() % modulus == 0));
        prop_assert!(rest_spans.iter().all(|s| s.4.name.len() % modulus != 0));
        // Each side is the original sequence filtered: nothing lost, order kept.
        let expect_kept: Vec<_> = original.iter().filter(|s| s.4.name.len() % modulus == 0).cloned().collect();
        let expect_rest: Vec<_> = original.iter().filter(|s| s.4.name.len() % modulus != 0).cloned().collect();
        prop_assert_eq!(kept_spans, expect_kept);
        prop_assert_eq!(rest_spans, expect_rest);
    }
}
