//! The admin listener: `GET /health` (200 while serving, 503 once stopping) and
//! `GET /metrics` (the relay's counters in the Prometheus text format).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use otlp_reliability::metrics::DropReason;
use tokio::net::TcpListener;

use crate::sink::Counters;

/// What the admin endpoints report.
pub struct Admin {
    /// Set once a stop has begun (health turns 503).
    pub stopping: AtomicBool,
    /// The pipeline's counters.
    pub pipeline: otlp_pipeline::PipelineCounters,
    /// The file exporter's counters.
    pub file: Arc<Counters>,
    /// The receivers' shared memory budget, if any.
    pub budget: Option<otlp_net::budget::MemoryBudget>,
}

impl Admin {
    fn health(&self) -> Response<Full<Bytes>> {
        let (status, text) = if self.stopping.load(Ordering::Relaxed) {
            (StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
        } else {
            (StatusCode::OK, "ok\n")
        };
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    }

    /// The Prometheus text exposition of the counters.
    pub fn metrics_text(&self) -> String {
        let books = self.pipeline.snapshot();
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "otlp_relay_items_received_total",
            "Items (spans, data points, log records) the receivers handed to the pipeline.",
            books.received,
        );
        counter(
            "otlp_relay_items_sent_total",
            "Items the exporter delivered.",
            books.sent,
        );
        counter(
            "otlp_relay_items_retried_total",
            "Items sent again after a retryable failure.",
            books.retried,
        );
        counter(
            "otlp_relay_export_failures_total",
            "Export attempts that failed.",
            books.failed_attempts,
        );
        counter(
            "otlp_relay_file_requests_written_total",
            "Requests the file exporter wrote.",
            self.file.written.load(Ordering::Relaxed),
        );
        counter(
            "otlp_relay_file_rotations_total",
            "Times the file exporter rotated its output.",
            self.file.rotations.load(Ordering::Relaxed),
        );
        let listeners = otlp_net::listener::listener_counters();
        counter(
            "otlp_relay_connections_opening_timeouts_total",
            "Connections closed because the peer sent nothing (or too little) in time.",
            listeners.opening_timeouts.load(Ordering::Relaxed),
        );
        counter(
            "otlp_relay_connections_tls_handshake_failures_total",
            "TLS handshakes that failed or did not finish in time.",
            listeners.tls_handshake_failures.load(Ordering::Relaxed),
        );
        counter(
            "otlp_relay_connections_accept_errors_total",
            "Errors accepting connections (each pauses the listener briefly).",
            listeners.accept_errors.load(Ordering::Relaxed),
        );
        if let Some(budget) = &self.budget {
            counter(
                "otlp_relay_receiver_memory_refusals_total",
                "Requests refused (with a retry hint) because the memory budget was used up.",
                budget.refused(),
            );
        }
        let _ = writeln!(
            out,
            "# HELP otlp_relay_items_dropped_total Items dropped, by reason.\n# TYPE otlp_relay_items_dropped_total counter"
        );
        for (index, reason) in DropReason::ALL.iter().enumerate() {
            let value = books.dropped[index];
            let label = match reason {
                DropReason::QueueFull => "queue_full",
                DropReason::Permanent => "permanent",
                DropReason::RejectedByPeer => "rejected_by_peer",
                DropReason::RetriesExhausted => "retries_exhausted",
                DropReason::Shutdown => "shutdown",
            };
            let _ = writeln!(
                out,
                "otlp_relay_items_dropped_total{{reason=\"{label}\"}} {value}"
            );
        }
        if let Some(budget) = &self.budget {
            let _ = writeln!(
                out,
                "# HELP otlp_relay_receiver_memory_bytes Bytes the memory budget holds now (requests being read, queued, batched, exported or retried).\n# TYPE otlp_relay_receiver_memory_bytes gauge\notlp_relay_receiver_memory_bytes {}",
                budget.in_use()
            );
            let _ = writeln!(
                out,
                "# HELP otlp_relay_receiver_memory_limit_bytes The memory budget of receivers and pipeline.\n# TYPE otlp_relay_receiver_memory_limit_bytes gauge\notlp_relay_receiver_memory_limit_bytes {}",
                budget.limit()
            );
        }
        let _ = writeln!(
            out,
            "# HELP otlp_relay_queue_items Items waiting in the queues.\n# TYPE otlp_relay_queue_items gauge\notlp_relay_queue_items {}",
            books.queue_items
        );
        out
    }

    fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        match path {
            "/health" => self.health(),
            "/metrics" => {
                let mut response = Response::new(Full::new(Bytes::from(self.metrics_text())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                response
            }
            _ => {
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::NOT_FOUND;
                response
            }
        }
    }
}

/// Connections the admin listener serves at once (scrapers and health checks need few).
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Longest a client may take to send a request's headers to the admin listener.
pub const ADMIN_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the admin endpoints on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    // The accept loop the receivers use: a bounded number of connections, the opening
    // deadline, and a pause instead of a spin on accept errors. The admin task is aborted
    // at the end of a stop, so its shutdown signal never fires.
    let (_never, shutdown) = tokio::sync::watch::channel(false);
    let limits = otlp_net::listener::ListenerLimits {
        max_connections: ADMIN_MAX_CONNECTIONS,
        ..Default::default()
    };
    otlp_net::listener::accept_loop(listener, limits, None, shutdown, move |connection| {
        let admin = admin.clone();
        async move {
            let service =
                hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let response = admin.answer(request.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(ADMIN_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(connection), service)
                .await;
        }
    })
    .await;
}
