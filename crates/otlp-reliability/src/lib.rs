//! Reliability layers for any OTLP exporter, as tower layers over the one export shape
//! (`ExportRequest<S>` -> `ExportOutcome` / `ExportError`):
//!
//! - [`retry`]: exponential backoff with jitter ([`backoff`], plain logic, no clock),
//!   exactly the OTLP retry classes (`ExportError::retry_class`), throttling hints honoured
//!   and capped, partial success counted and never retried, a batch refused as too large
//!   split in half and resent, an optional [`RetryBudget`](retry::RetryBudget).
//! - [`timeout`]: a deadline per attempt (the total deadline is the backoff's
//!   `max_elapsed`).
//! - [`queue`]: a queue bounded in items and bytes with the policies block, drop-newest
//!   and drop-oldest, concurrent workers, and a shutdown that drains within a deadline.
//! - [`metrics`]: counters for items received, sent, retried, failed attempts, dropped by
//!   reason, and queue length and bytes.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use otlp_core::{ExportError, ExportOutcome, ExportRequest, Traces};
//! use otlp_reliability::{backoff::BackoffConfig, metrics::PipelineMetrics, retry::RetryLayer, timeout::TimeoutLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! let metrics = Arc::new(PipelineMetrics::new());
//! let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
//! let counter = calls.clone();
//! // An exporter that is unavailable twice, then accepts.
//! let exporter = service_fn(move |request: ExportRequest<Traces>| {
//!     let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         if n < 2 { Err(ExportError::unavailable("restarting")) } else { Ok(ExportOutcome::success(request.item_count())) }
//!     }
//! });
//! let pipeline = ServiceBuilder::new()
//!     .layer(RetryLayer::new(BackoffConfig::default(), metrics.clone()))
//!     .layer(TimeoutLayer::new(Duration::from_secs(10)))
//!     .service(exporter);
//! let request = ExportRequest::<Traces>::new(otlp_testkit::realistic::traces(5, 1));
//! let outcome = pipeline.oneshot(request).await?;
//! assert_eq!(outcome.accepted(), 5);
//! assert_eq!(metrics.snapshot().retried, 10); // 5 items, retried twice
//! # Ok::<(), ExportError>(())
//! # }).unwrap();
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod backoff;
pub mod metrics;
pub mod queue;
pub mod retry;
pub mod timeout;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
