//! The batching policy as plain logic: no clock (time is passed in), no tasks, no I/O. The
//! driver feeds it requests and timer expiries and sends what it hands back.

use std::time::Duration;

use otlp_model::SignalRequest;

/// When a batch is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// No batch holds more items (spans, data points, log records) than this.
    pub max_items: usize,
    /// No batch's protobuf encoding exceeds this many bytes, unless a single item does
    /// (`usize::MAX`: not capped, and requests are not sized, which saves a walk over each).
    pub max_bytes: usize,
    /// A batch is sent at the latest this long after its first item arrived.
    pub linger: Duration,
}

impl Default for BatchConfig {
    /// The design document's defaults: 512 items, 5 s; and 4 MiB, well under the usual
    /// 4 MiB-after-overhead gRPC and 64 MiB OTLP limits.
    fn default() -> Self {
        Self {
            max_items: 512,
            max_bytes: 4 * 1024 * 1024,
            linger: Duration::from_secs(5),
        }
    }
}

/// Accumulates requests of one signal into batches.
#[derive(Debug)]
pub struct Batcher<R> {
    config: BatchConfig,
    pending: Option<R>,
    items: usize,
    bytes: usize,
    /// When the first item of the pending batch arrived.
    opened_at: Option<Duration>,
}

impl<R: SignalRequest> Batcher<R> {
    /// An empty batcher.
    pub fn new(config: BatchConfig) -> Self {
        Self {
            config: BatchConfig {
                max_items: config.max_items.max(1),
                max_bytes: config.max_bytes.max(1),
                ..config
            },
            pending: None,
            items: 0,
            bytes: 0,
            opened_at: None,
        }
    }

    /// Items waiting in the pending batch.
    pub fn pending_items(&self) -> usize {
        self.items
    }

    /// The caps and linger in force.
    pub fn config(&self) -> BatchConfig {
        self.config
    }

    /// Changes the caps and linger; they apply from the next push (a pending batch above
    /// a lowered cap is sent by that push).
    pub fn set_config(&mut self, config: BatchConfig) {
        self.config = BatchConfig {
            max_items: config.max_items.max(1),
            max_bytes: config.max_bytes.max(1),
            ..config
        };
    }

    /// Adds a request at time `now`; returns the batches that are complete (full by items
    /// or bytes), oldest first. Items keep their order; an oversize request is split keeping
    /// each item's resource and scope.
    pub fn push(&mut self, request: R, now: Duration) -> Vec<R> {
        // Sizing walks the whole message; skip it when bytes are not capped.
        let bytes = if self.sizes_matter() {
            request.encoded_len()
        } else {
            0
        };
        self.push_sized(request, bytes, now)
    }

    /// Whether [`Batcher::push_sized`] needs real sizes (bytes are capped).
    pub fn sizes_matter(&self) -> bool {
        self.config.max_bytes != usize::MAX
    }

    /// [`Batcher::push`] for a request whose protobuf size the caller already knows.
    pub fn push_sized(&mut self, request: R, bytes: usize, now: Duration) -> Vec<R> {
        let mut ready = Vec::new();
        let items = request.item_count();
        if items == 0 {
            return ready;
        }
        let room = self.config.max_items.saturating_sub(self.items);
        if items <= room && self.bytes + bytes <= self.config.max_bytes {
            self.add(request, items, bytes, now);
            if self.items == self.config.max_items {
                ready.extend(self.flush());
            }
            return ready;
        }
        if bytes > self.config.max_bytes && items > 1 {
            // Too many bytes for one batch: halve until each part fits (or is one item).
            let half = items.div_ceil(2);
            for part in request.split(half) {
                ready.extend(self.push(part, now));
            }
            return ready;
        }
        if self.bytes + bytes > self.config.max_bytes || room == 0 {
            ready.extend(self.flush());
            ready.extend(self.push(request, now));
            return ready;
        }
        // Fill the pending batch with the first `room` items, then start new batches.
        let mut parts = request.split(room).into_iter();
        if let Some(first) = parts.next() {
            let first_bytes = if self.config.max_bytes == usize::MAX {
                0
            } else {
                first.encoded_len()
            };
            let first_items = first.item_count();
            self.add(first, first_items, first_bytes, now);
            ready.extend(self.flush());
        }
        let mut rest = R::default();
        for part in parts {
            SignalRequest::append(&mut rest, part);
        }
        ready.extend(self.push(rest, now));
        ready
    }

    fn add(&mut self, request: R, items: usize, bytes: usize, now: Duration) {
        match &mut self.pending {
            // Appending moves group headers only; items stay where they are.
            Some(pending) => SignalRequest::append(pending, request),
            None => {
                self.pending = Some(request);
                self.opened_at = Some(now);
            }
        }
        self.items += items;
        self.bytes += bytes;
    }

    /// When the pending batch must be sent, if there is one.
    pub fn deadline(&self) -> Option<Duration> {
        self.opened_at.map(|at| at + self.config.linger)
    }

    /// The pending batch, if its linger time has passed at `now`.
    pub fn expire(&mut self, now: Duration) -> Option<R> {
        match self.deadline() {
            Some(deadline) if now >= deadline => self.flush(),
            _ => None,
        }
    }

    /// The pending batch, now, whatever its size (flush on demand and on shutdown).
    pub fn flush(&mut self) -> Option<R> {
        self.items = 0;
        self.bytes = 0;
        self.opened_at = None;
        self.pending.take()
    }
}
