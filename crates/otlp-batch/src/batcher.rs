//! The batching policy as plain logic: no clock (time is passed in), no tasks, no I/O. The
//! driver feeds it requests and timer expiries and sends what it hands back.

use std::time::Duration;

use otlp_model::wire::Batchable;

/// When a batch is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// No batch holds more items (spans, data points, log records) than this, except
    /// encoded bytes that cannot be cut because they do not decode (they leave whole).
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

impl<R: Batchable> Batcher<R> {
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

    /// The items and bytes the pending batch can still take before it is full.
    pub fn room(&self) -> (usize, usize) {
        (
            self.config.max_items.saturating_sub(self.items),
            self.config.max_bytes.saturating_sub(self.bytes),
        )
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
    ///
    /// Costs time linear in the request's items whatever its shape: the pending batch and
    /// the request are cut once by items, and only a part over the byte cap is cut again.
    /// An item that alone exceeds `max_bytes` leaves as a batch of its own.
    pub fn push_sized(&mut self, request: R, bytes: usize, now: Duration) -> Vec<R> {
        let mut ready = Vec::new();
        let items = request.item_count();
        if items == 0 {
            return ready;
        }
        let room = self.config.max_items.saturating_sub(self.items);
        if items <= room && self.bytes.saturating_add(bytes) <= self.config.max_bytes {
            self.add(request, items, bytes, now);
            if self.items == self.config.max_items {
                ready.extend(self.flush());
            }
            return ready;
        }
        // The pending batch and the request together, cut by items: every part but the
        // last is full; the last stays pending unless it is full too. `append` moves group
        // headers only, so the whole step is linear in the items.
        let opened_at = self.opened_at.unwrap_or(now);
        let total_items = self.items + items;
        let combined = match self.flush() {
            Some(mut pending) => {
                pending.append(request);
                pending
            }
            None => request,
        };
        let parts = if total_items > self.config.max_items {
            combined.split(self.config.max_items)
        } else {
            vec![combined]
        };
        let single = parts.len() == 1;
        let last = parts.len().saturating_sub(1);
        for (index, part) in parts.into_iter().enumerate() {
            let part_items = part.item_count();
            let part_bytes = if self.sizes_matter() {
                part.encoded_len()
            } else {
                0
            };
            if part_bytes > self.config.max_bytes {
                split_by_bytes(
                    part,
                    part_items,
                    part_bytes,
                    self.config.max_bytes,
                    &mut ready,
                );
            } else if index == last && part_items < self.config.max_items {
                // Still room: it waits for more, from when its oldest item arrived.
                let at = if single { opened_at } else { now };
                self.add(part, part_items, part_bytes, at);
            } else {
                ready.push(part);
            }
        }
        ready
    }

    fn add(&mut self, request: R, items: usize, bytes: usize, now: Duration) {
        match &mut self.pending {
            // Appending moves group headers only; items stay where they are.
            Some(pending) => pending.append(request),
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

/// Cuts `request` (`items` items, `bytes` bytes encoded) into parts of at most `max_bytes`
/// bytes each, or of one item where an item alone is larger, appending them to `out`.
///
/// The first cut aims at parts of the cap's size assuming items of the average size, so
/// evenly sized items are cut once (linear time); a part that still exceeds the cap, an
/// uneven one, is halved, which bounds the depth by the logarithm of the items.
fn split_by_bytes<R: Batchable>(
    request: R,
    items: usize,
    bytes: usize,
    max_bytes: usize,
    out: &mut Vec<R>,
) {
    if items <= 1 || bytes <= max_bytes {
        out.push(request);
        return;
    }
    let parts_wanted = bytes.div_ceil(max_bytes.max(1)).max(2);
    let per_part = items.div_ceil(parts_wanted).max(1);
    let parts = request.split(per_part);
    if parts.len() == 1 {
        // Could not be cut (bytes that do not decode): it leaves as it is, once.
        out.extend(parts);
        return;
    }
    for part in parts {
        let part_items = part.item_count();
        let part_bytes = part.encoded_len();
        if part_bytes > max_bytes && part_items > 1 {
            let half = part_items.div_ceil(2);
            let pieces = part.split(half);
            if pieces.len() == 1 {
                out.extend(pieces);
                continue;
            }
            for piece in pieces {
                let piece_items = piece.item_count();
                let piece_bytes = piece.encoded_len();
                split_by_bytes(piece, piece_items, piece_bytes, max_bytes, out);
            }
        } else {
            out.push(part);
        }
    }
}
