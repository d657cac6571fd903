//! The three OTLP signals as types, so that everything above them is written once.

use std::fmt;

use otlp_model::collector::logs::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use otlp_model::collector::metrics::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use otlp_model::collector::trace::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use otlp_model::{SignalRequest, SignalResponse};

/// A telemetry signal: its messages and the names the OTLP transports give it.
///
/// Implemented by the marker types [`Traces`], [`Metrics`] and [`Logs`]; code generic over
/// `S: Signal` handles all three.
///
/// ```
/// use otlp_core::{Signal, Traces, Logs};
/// assert_eq!(Traces::HTTP_PATH, "/v1/traces");
/// assert_eq!(
///     Logs::GRPC_EXPORT_PATH,
///     "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
/// );
/// ```
pub trait Signal: Send + Sync + Sized + 'static {
    /// The export request message.
    type Request: SignalRequest<Response = Self::Response> + otlp_model::wire::WireLayout;
    /// The export response message.
    type Response: SignalResponse;
    /// The signal as a value.
    const KIND: SignalKind;
    /// The default OTLP/HTTP path (`/v1/traces`, ...).
    const HTTP_PATH: &'static str;
    /// The fully qualified gRPC service name.
    const GRPC_SERVICE: &'static str;
    /// The gRPC path of the unary `Export` method.
    const GRPC_EXPORT_PATH: &'static str;
    /// What one item is called, plural, for messages ("spans", "data points", "log records").
    const ITEMS: &'static str;
    /// The fixed in-memory size of one decoded item (its struct, before what it owns), for
    /// estimating what a decoded request takes.
    const ITEM_BYTES: usize;
}

/// Traces: items are spans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Traces;

/// Metrics: items are data points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Metrics;

/// Logs: items are log records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Logs;

impl Signal for Traces {
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    const KIND: SignalKind = SignalKind::Traces;
    const HTTP_PATH: &'static str = "/v1/traces";
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const GRPC_EXPORT_PATH: &'static str =
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const ITEMS: &'static str = "spans";
    const ITEM_BYTES: usize = std::mem::size_of::<otlp_model::trace::Span>();
}

impl Signal for Metrics {
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    const KIND: SignalKind = SignalKind::Metrics;
    const HTTP_PATH: &'static str = "/v1/metrics";
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const GRPC_EXPORT_PATH: &'static str =
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const ITEMS: &'static str = "data points";
    // The largest kind of data point, so that the estimate is never low.
    const ITEM_BYTES: usize = {
        let histogram = std::mem::size_of::<otlp_model::metrics::HistogramDataPoint>();
        let exponential = std::mem::size_of::<otlp_model::metrics::ExponentialHistogramDataPoint>();
        if histogram > exponential {
            histogram
        } else {
            exponential
        }
    };
}

impl Signal for Logs {
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    const KIND: SignalKind = SignalKind::Logs;
    const HTTP_PATH: &'static str = "/v1/logs";
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const GRPC_EXPORT_PATH: &'static str =
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const ITEMS: &'static str = "log records";
    const ITEM_BYTES: usize = std::mem::size_of::<otlp_model::logs::LogRecord>();
}

/// A signal as a runtime value, for routing and configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalKind {
    /// Spans.
    Traces,
    /// Metric data points.
    Metrics,
    /// Log records.
    Logs,
}

impl SignalKind {
    /// All signals, in OTLP's usual order.
    pub const ALL: [SignalKind; 3] = [SignalKind::Traces, SignalKind::Metrics, SignalKind::Logs];

    /// `traces`, `metrics` or `logs`: the name configuration files and metrics labels use.
    pub const fn name(self) -> &'static str {
        match self {
            SignalKind::Traces => "traces",
            SignalKind::Metrics => "metrics",
            SignalKind::Logs => "logs",
        }
    }

    /// The default OTLP/HTTP path.
    pub const fn http_path(self) -> &'static str {
        match self {
            SignalKind::Traces => Traces::HTTP_PATH,
            SignalKind::Metrics => Metrics::HTTP_PATH,
            SignalKind::Logs => Logs::HTTP_PATH,
        }
    }

    /// The gRPC path of the unary `Export` method.
    pub const fn grpc_export_path(self) -> &'static str {
        match self {
            SignalKind::Traces => Traces::GRPC_EXPORT_PATH,
            SignalKind::Metrics => Metrics::GRPC_EXPORT_PATH,
            SignalKind::Logs => Logs::GRPC_EXPORT_PATH,
        }
    }

    /// What items of this signal are called.
    pub const fn items(self) -> &'static str {
        match self {
            SignalKind::Traces => Traces::ITEMS,
            SignalKind::Metrics => Metrics::ITEMS,
            SignalKind::Logs => Logs::ITEMS,
        }
    }

    /// The signal whose default OTLP/HTTP path is `path`.
    pub fn from_http_path(path: &str) -> Option<SignalKind> {
        Self::ALL.into_iter().find(|s| s.http_path() == path)
    }

    /// The signal whose gRPC `Export` path is `path`.
    pub fn from_grpc_path(path: &str) -> Option<SignalKind> {
        Self::ALL.into_iter().find(|s| s.grpc_export_path() == path)
    }

    /// Parses [`SignalKind::name`].
    pub fn from_name(name: &str) -> Option<SignalKind> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_round_trip() {
        for kind in SignalKind::ALL {
            assert_eq!(SignalKind::from_http_path(kind.http_path()), Some(kind));
            assert_eq!(
                SignalKind::from_grpc_path(kind.grpc_export_path()),
                Some(kind)
            );
            assert_eq!(SignalKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(SignalKind::from_http_path("/v1/profiles"), None);
        assert_eq!(Metrics::KIND.to_string(), "metrics");
    }
}
