//! Batching for OTLP exporters, for all three signals.
//!
//! - [`Batcher`]: the policy as plain logic (time passed in): batches capped by items and
//!   by encoded bytes, an oversize request split keeping resource and scope, a linger timer,
//!   flush on demand. Fixed-size and time-based batching are its two caps.
//! - [`Batch`] / [`BatchLayer`]: the tokio driver as a tower layer: producers hand requests
//!   over (waiting asynchronously when the hand-over channel is full), complete batches go
//!   to the inner service with bounded concurrency, and `shutdown` drains within a deadline
//!   and counts what it could not send.
//! - [`Adaptive`]: batch size and linger follow the arrival rate and export latency, within
//!   bounds. [`Prioritized`]: a caller's classifier (error spans, severe logs first) gives
//!   each class its own batches; urgent ones leave first, the least important are dropped
//!   first under pressure. All strategies implement [`BatchPolicy`] and run under the same
//!   driver ([`Batch::with_policy`]).
//! - [`presets`]: the design document's scenarios (high throughput, low latency, high
//!   reliability, browser, real-time, high concurrency) as values.
//!
//! ```
//! use std::time::Duration;
//! use otlp_batch::{BatchConfig, Batcher};
//! use otlp_model::SignalRequest;
//!
//! let mut batcher = Batcher::new(BatchConfig { max_items: 512, ..Default::default() });
//! let now = Duration::ZERO;
//! // 1,200 spans arrive in one request: two full batches come out, 176 spans wait.
//! let ready = batcher.push(otlp_testkit::realistic::traces(1_200, 1), now);
//! assert_eq!(ready.iter().map(|b| b.item_count()).collect::<Vec<_>>(), [512, 512]);
//! assert_eq!(batcher.pending_items(), 176);
//! // ...until the linger time passes.
//! assert!(batcher.expire(now + Duration::from_secs(1)).is_none());
//! assert_eq!(batcher.expire(now + Duration::from_secs(5)).map(|b| b.item_count()), Some(176));
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod adaptive;
mod batcher;
mod driver;
mod policy;
pub mod presets;
mod priority;
mod unit;

pub use adaptive::{Adaptive, AdaptiveConfig};
pub use batcher::{BatchConfig, Batcher};
pub use driver::{Batch, BatchLayer, BatchLayerConfig};
pub use policy::BatchPolicy;
pub use priority::{Classifier, Prioritized};
pub use unit::BatchUnit;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
