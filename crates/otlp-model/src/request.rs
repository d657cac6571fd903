//! The operations shared by the three OTLP export requests, and their responses.

use crate::collector::logs::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use crate::collector::metrics::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use crate::collector::trace::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use crate::split::{data_point_count, merge_groups, partition_groups, split_groups};

/// An OTLP export request: `ExportTraceServiceRequest`, `ExportMetricsServiceRequest` or
/// `ExportLogsServiceRequest`.
///
/// "Items" are what OTLP counts in partial success: spans, metric data points, log records.
pub trait SignalRequest:
    prost::Message + Default + Clone + PartialEq + Send + Sync + 'static
{
    /// The response type of the same export service.
    type Response: SignalResponse;

    /// What partitioning looks at: a span, a metric (with all its data points) or a log
    /// record.
    type Item;

    /// Spans, metric data points or log records in the request.
    fn item_count(&self) -> usize;

    /// Whether the request holds no items (it may still hold empty groups).
    fn is_empty(&self) -> bool {
        self.item_count() == 0
    }

    /// Splits into requests of at most `max_items` items each (`0` is taken as `1`),
    /// keeping item order and each item's resource and scope. A request with no items
    /// yields itself (if it has any groups) or nothing.
    fn split(self, max_items: usize) -> Vec<Self>;

    /// Appends the items of `other`, merging them into the resource and scope groups of
    /// `self` that have the same resource (or scope) and schema URL. Costs time in the
    /// number of groups and moves the items; the result is as small as it can be.
    fn merge(&mut self, other: Self);

    /// Appends the resource groups of `other` as they are, without looking for groups to
    /// merge with: O(groups of `other`), no item is moved. The result may repeat a resource
    /// or scope; it holds the same items in the same order.
    fn append(&mut self, other: Self);

    /// Splits into the items for which `keep` is true and the others, each keeping its
    /// resource and scope; groups left without items are dropped from both sides.
    fn partition(self, keep: impl FnMut(&Self::Item) -> bool) -> (Self, Self);
}

/// An OTLP export response, whose only content is the optional partial success.
pub trait SignalResponse:
    prost::Message + Default + Clone + PartialEq + Send + Sync + 'static
{
    /// A response reporting `rejected` refused items and a message. With `rejected == 0`
    /// and an empty message this is the plain success response (no partial success set).
    fn with_partial_success(rejected: i64, message: String) -> Self;

    /// Items the server refused (0 for full success).
    fn rejected(&self) -> i64;

    /// The server's explanation, or a warning when nothing was rejected; empty if none.
    fn error_message(&self) -> &str;
}

macro_rules! export_pair {
    (
        $request:ty, $groups:ident, $response:ty, $partial:ident, $rejected:ident,
        item: $item:ty, count: $count:expr
    ) => {
        impl SignalRequest for $request {
            type Response = $response;
            type Item = $item;

            fn item_count(&self) -> usize {
                let count: fn(&Self) -> usize = $count;
                count(self)
            }

            fn split(self, max_items: usize) -> Vec<Self> {
                split_groups(self.$groups, max_items)
                    .into_iter()
                    .map(|$groups| Self { $groups })
                    .collect()
            }

            fn merge(&mut self, other: Self) {
                merge_groups(&mut self.$groups, other.$groups);
            }

            fn append(&mut self, mut other: Self) {
                self.$groups.append(&mut other.$groups);
            }

            fn partition(self, keep: impl FnMut(&Self::Item) -> bool) -> (Self, Self) {
                let (kept, rest) = partition_groups(self.$groups, keep);
                (Self { $groups: kept }, Self { $groups: rest })
            }
        }

        impl SignalResponse for $response {
            fn with_partial_success(rejected: i64, message: String) -> Self {
                if rejected == 0 && message.is_empty() {
                    return Self::default();
                }
                Self {
                    partial_success: Some($partial {
                        $rejected: rejected,
                        error_message: message,
                    }),
                }
            }

            fn rejected(&self) -> i64 {
                self.partial_success.as_ref().map_or(0, |p| p.$rejected)
            }

            fn error_message(&self) -> &str {
                self.partial_success
                    .as_ref()
                    .map_or("", |p| p.error_message.as_str())
            }
        }
    };
}

export_pair!(
    ExportTraceServiceRequest, resource_spans,
    ExportTraceServiceResponse, ExportTracePartialSuccess, rejected_spans,
    item: crate::trace::Span,
    count: |r| r.resource_spans.iter().flat_map(|g| &g.scope_spans).map(|s| s.spans.len()).sum()
);

export_pair!(
    ExportLogsServiceRequest, resource_logs,
    ExportLogsServiceResponse, ExportLogsPartialSuccess, rejected_log_records,
    item: crate::logs::LogRecord,
    count: |r| r.resource_logs.iter().flat_map(|g| &g.scope_logs).map(|s| s.log_records.len()).sum()
);

export_pair!(
    ExportMetricsServiceRequest, resource_metrics,
    ExportMetricsServiceResponse, ExportMetricsPartialSuccess, rejected_data_points,
    item: crate::metrics::Metric,
    count: |r| r
        .resource_metrics
        .iter()
        .flat_map(|g| &g.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(data_point_count)
        .sum()
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_response_has_no_partial_success() {
        let ok = ExportTraceServiceResponse::with_partial_success(0, String::new());
        assert_eq!(ok, ExportTraceServiceResponse::default());
        assert_eq!(ok.rejected(), 0);

        let warning = ExportLogsServiceResponse::with_partial_success(0, "deprecated".into());
        assert_eq!(warning.rejected(), 0);
        assert_eq!(warning.error_message(), "deprecated");

        let partial = ExportMetricsServiceResponse::with_partial_success(3, "bad points".into());
        assert_eq!(partial.rejected(), 3);
        assert_eq!(
            partial
                .partial_success
                .as_ref()
                .map(|p| p.rejected_data_points),
            Some(3)
        );
    }
}
