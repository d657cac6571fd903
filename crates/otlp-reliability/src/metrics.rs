//! Self-metrics: what came in, what went out, what was retried and what was dropped, why.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why items were dropped. Every drop is counted under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The queue was full and its policy drops (newest or oldest).
    QueueFull,
    /// The peer refused them permanently (a permanent error).
    Permanent,
    /// The peer accepted the request but rejected these items (partial success).
    RejectedByPeer,
    /// Retries ran out of time (max elapsed) or budget.
    RetriesExhausted,
    /// Still queued when shutdown's deadline passed.
    Shutdown,
}

impl DropReason {
    /// Every reason.
    pub const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::Permanent,
        DropReason::RejectedByPeer,
        DropReason::RetriesExhausted,
        DropReason::Shutdown,
    ];

    /// A stable name for labels.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Permanent => "permanent_error",
            DropReason::RejectedByPeer => "rejected_by_peer",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::Shutdown => "shutdown",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters shared by the layers of one pipeline (`Arc<PipelineMetrics>`). All counts are
/// items (spans, data points, log records) unless named otherwise.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    received: AtomicU64,
    sent: AtomicU64,
    failed_attempts: AtomicU64,
    retried: AtomicU64,
    dropped: [AtomicU64; 5],
    queue_items: AtomicU64,
    queue_bytes: AtomicU64,
}

/// A point-in-time copy of [`PipelineMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Items handed to the pipeline.
    pub received: u64,
    /// Items the peer accepted.
    pub sent: u64,
    /// Export attempts that failed (any class).
    pub failed_attempts: u64,
    /// Items sent again after a retryable failure.
    pub retried: u64,
    /// Items dropped, by [`DropReason`] (indexed like [`DropReason::ALL`]).
    pub dropped: [u64; 5],
    /// Items waiting in the queue.
    pub queue_items: u64,
    /// Encoded bytes waiting in the queue.
    pub queue_bytes: u64,
}

impl MetricsSnapshot {
    /// Items dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Items dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {} sent {} retried {} failed attempts {} queued {} ({} B)",
            self.received,
            self.sent,
            self.retried,
            self.failed_attempts,
            self.queue_items,
            self.queue_bytes
        )?;
        for reason in DropReason::ALL {
            let n = self.dropped(reason);
            if n > 0 {
                write!(f, " dropped[{}] {n}", reason.name())?;
            }
        }
        Ok(())
    }
}

impl PipelineMetrics {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current values.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            received: load(&self.received),
            sent: load(&self.sent),
            failed_attempts: load(&self.failed_attempts),
            retried: load(&self.retried),
            dropped: std::array::from_fn(|i| load(&self.dropped[i])),
            queue_items: load(&self.queue_items),
            queue_bytes: load(&self.queue_bytes),
        }
    }

    /// Counts items handed to the pipeline.
    pub fn add_received(&self, items: usize) {
        self.received.fetch_add(items as u64, Ordering::Relaxed);
    }

    /// Counts items the peer accepted.
    pub fn add_sent(&self, items: usize) {
        self.sent.fetch_add(items as u64, Ordering::Relaxed);
    }

    /// Counts one failed export attempt.
    pub fn add_failed_attempt(&self) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts items sent again after a retryable failure.
    pub fn add_retried(&self, items: usize) {
        self.retried.fetch_add(items as u64, Ordering::Relaxed);
    }

    /// Counts items dropped, with the reason.
    pub fn add_dropped(&self, reason: DropReason, items: usize) {
        self.dropped[reason.index()].fetch_add(items as u64, Ordering::Relaxed);
    }

    /// Records the queue's current length and bytes.
    pub fn set_queue(&self, items: usize, bytes: usize) {
        self.queue_items.store(items as u64, Ordering::Relaxed);
        self.queue_bytes.store(bytes as u64, Ordering::Relaxed);
    }
}
