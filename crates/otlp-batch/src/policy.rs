//! What the batching driver needs from a batching strategy, so that fixed-size/time-based
//! ([`Batcher`]), [`Adaptive`](crate::Adaptive) and [`Prioritized`](crate::Prioritized)
//! strategies — and users' own — run under the same driver.

use std::time::Duration;

use otlp_model::wire::Batchable;

use crate::Batcher;

/// A batching strategy, as plain logic: time is passed in, batches are handed back.
pub trait BatchPolicy<R>: Send + 'static {
    /// Adds a request at `now`; returns the batches to send now, most urgent first.
    fn push(&mut self, request: R, now: Duration) -> Vec<R>;
    /// Whether the strategy caps bytes and so wants [`BatchPolicy::push_sized`].
    fn sizes_matter(&self) -> bool {
        false
    }
    /// [`BatchPolicy::push`] with the request's protobuf size, when the caller knows it.
    fn push_sized(&mut self, request: R, _bytes: usize, now: Duration) -> Vec<R> {
        self.push(request, now)
    }
    /// When [`BatchPolicy::expire`] next has something to return.
    fn deadline(&self) -> Option<Duration>;
    /// The batches whose time has come at `now`, most urgent first.
    fn expire(&mut self, now: Duration) -> Vec<R>;
    /// Everything pending, now, most urgent first.
    fn flush_all(&mut self) -> Vec<R>;
    /// Items the strategy chose to drop since the last call (to be counted by the driver).
    fn take_dropped(&mut self) -> usize {
        0
    }
    /// How long an export of `items` items took, for strategies that adapt to it.
    fn record_export(&mut self, _items: usize, _latency: Duration) {}
    /// The items and bytes the pending batch can still take before it is full, for a driver
    /// that lets requests wait upstream until they would fill it or the deadline comes;
    /// `None` (the default): hand every request over as it arrives.
    fn room(&self) -> Option<(usize, usize)> {
        None
    }
}

impl<R: Batchable> BatchPolicy<R> for Batcher<R> {
    fn push(&mut self, request: R, now: Duration) -> Vec<R> {
        Batcher::push(self, request, now)
    }

    fn sizes_matter(&self) -> bool {
        Batcher::sizes_matter(self)
    }

    fn push_sized(&mut self, request: R, bytes: usize, now: Duration) -> Vec<R> {
        Batcher::push_sized(self, request, bytes, now)
    }

    fn deadline(&self) -> Option<Duration> {
        Batcher::deadline(self)
    }

    fn expire(&mut self, now: Duration) -> Vec<R> {
        Batcher::expire(self, now).into_iter().collect()
    }

    fn flush_all(&mut self) -> Vec<R> {
        self.flush().into_iter().collect()
    }

    fn room(&self) -> Option<(usize, usize)> {
        Some(Batcher::room(self))
    }
}
