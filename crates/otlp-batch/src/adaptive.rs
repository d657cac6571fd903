//! Adaptive batching: batch size and linger follow the observed arrival rate and export
//! latency, within bounds. Under load, batches grow (fewer, larger exports); when traffic
//! is light, they shrink and leave sooner (lower latency).

use std::time::Duration;

use otlp_model::wire::Batchable;

use crate::policy::BatchPolicy;
use crate::{BatchConfig, Batcher};

/// The bounds an [`Adaptive`] batcher moves within.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveConfig {
    /// Smallest batch size it will choose.
    pub min_items: usize,
    /// Largest batch size it will choose.
    pub max_items: usize,
    /// Shortest linger it will choose.
    pub min_linger: Duration,
    /// Longest linger it will choose.
    pub max_linger: Duration,
    /// Byte cap, fixed.
    pub max_bytes: usize,
    /// A batch should take about this many export latencies to fill: the batch size aims
    /// at `arrival rate x export latency x latency_multiple`, so that exports keep up.
    pub latency_multiple: f64,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            min_items: 64,
            max_items: 2048,
            min_linger: Duration::from_millis(50),
            max_linger: Duration::from_secs(5),
            max_bytes: 4 * 1024 * 1024,
            latency_multiple: 4.0,
        }
    }
}

/// A [`Batcher`] whose size and linger are retuned after every push and export.
#[derive(Debug)]
pub struct Adaptive<R> {
    config: AdaptiveConfig,
    batcher: Batcher<R>,
    /// Smoothed arrival rate, items per second.
    rate: f64,
    /// Smoothed export latency.
    latency: Duration,
    last_push: Option<Duration>,
}

/// Weight of the newest observation in the moving averages.
const SMOOTHING: f64 = 0.2;

impl<R: Batchable> Adaptive<R> {
    /// Starts at the smallest batch and shortest linger.
    pub fn new(config: AdaptiveConfig) -> Self {
        Self {
            batcher: Batcher::new(BatchConfig {
                max_items: config.min_items.max(1),
                max_bytes: config.max_bytes,
                linger: config.min_linger,
            }),
            config,
            rate: 0.0,
            latency: Duration::from_millis(10),
            last_push: None,
        }
    }

    /// The batch size currently in force.
    pub fn current(&self) -> BatchConfig {
        self.batcher.config()
    }

    fn retune(&mut self) {
        let c = self.config;
        let wanted = self.rate * self.latency.as_secs_f64() * c.latency_multiple;
        let items = (wanted.round() as usize)
            .clamp(c.min_items.max(1), c.max_items.max(c.min_items).max(1));
        // Linger: the time the wanted batch takes to fill at the current rate.
        let linger = if self.rate > 0.0 {
            Duration::from_secs_f64((items as f64 / self.rate).min(c.max_linger.as_secs_f64()))
        } else {
            c.max_linger
        };
        self.batcher.set_config(BatchConfig {
            max_items: items,
            max_bytes: c.max_bytes,
            linger: linger.clamp(c.min_linger, c.max_linger),
        });
    }
}

impl<R: Batchable> BatchPolicy<R> for Adaptive<R> {
    fn push(&mut self, request: R, now: Duration) -> Vec<R> {
        let items = request.item_count() as f64;
        if let Some(last) = self.last_push {
            let gap = now.saturating_sub(last).as_secs_f64().max(1e-6);
            self.rate = (1.0 - SMOOTHING) * self.rate + SMOOTHING * (items / gap);
        }
        self.last_push = Some(now);
        self.retune();
        self.batcher.push(request, now)
    }

    fn deadline(&self) -> Option<Duration> {
        self.batcher.deadline()
    }

    fn expire(&mut self, now: Duration) -> Vec<R> {
        self.batcher.expire(now).into_iter().collect()
    }

    fn flush_all(&mut self) -> Vec<R> {
        self.batcher.flush().into_iter().collect()
    }

    fn record_export(&mut self, _items: usize, latency: Duration) {
        self.latency = self.latency.mul_f64(1.0 - SMOOTHING) + latency.mul_f64(SMOOTHING);
        self.retune();
    }
}
