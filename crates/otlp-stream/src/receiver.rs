//! The receiving side: validates sequence numbers, recognises batches it has already
//! accepted (by batch id, across reconnects and hops), and builds acknowledgements.

use std::collections::{HashSet, VecDeque};

use otlp_core::{ExportError, ExportOutcome};
use otlp_model::stream::StreamAck;
use otlp_model::stream::stream_ack::Stage;

/// Longest batch id a receiver remembers; a batch with a longer one is refused as invalid.
/// Our senders use 16 bytes.
pub const MAX_BATCH_ID_BYTES: usize = 64;

/// What the window charges for one remembered id beyond its two copies (one in the
/// eviction order, one in the set): the queue's slot and the set's bucket, both with the
/// room they keep for growth, so that [`DedupWindow::bytes`] bounds its real heap
/// (`tests/window_memory.rs` measures it).
const ENTRY_OVERHEAD_BYTES: usize = 112;

/// Whether a batch should be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First time seen: process it, then [`DedupWindow::settle`] it.
    Fresh,
    /// Accepted before (same batch id): acknowledge again without processing.
    Duplicate,
    /// The same id is being processed now: answer with a retryable refusal, because the
    /// original may still fail.
    InFlight,
    /// The id is longer than [`MAX_BATCH_ID_BYTES`]: refuse the batch.
    Invalid,
}

/// Remembers the ids of the batches accepted last, so a resend of one of them is
/// acknowledged without being processed twice, and the ids being processed now, so a
/// resend that overtakes its original is neither processed twice nor acknowledged before
/// the original succeeded.
///
/// An id counts as accepted only once [`DedupWindow::settle`] says its batch was: a batch
/// that failed, or whose processing was abandoned, leaves no entry and its resend is
/// processed. Memory is bounded by `capacity` ids and by `max_bytes` (ids are at most
/// [`MAX_BATCH_ID_BYTES`] long); the oldest accepted ids are forgotten first.
#[derive(Debug)]
pub struct DedupWindow {
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    order: VecDeque<Vec<u8>>,
    accepted: HashSet<Vec<u8>>,
    in_flight: HashSet<Vec<u8>>,
    duplicates: u64,
}

impl DedupWindow {
    /// A window remembering `capacity` accepted batch ids (and at most 16 MiB of them).
    pub fn new(capacity: usize) -> Self {
        Self::with_max_bytes(capacity, 16 << 20)
    }

    /// A window remembering `capacity` accepted batch ids in at most `max_bytes` (ids in
    /// flight count against the bytes too, but are never evicted: their number is bounded
    /// by the receiver's concurrency).
    pub fn with_max_bytes(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_bytes,
            bytes: 0,
            order: VecDeque::new(),
            accepted: HashSet::new(),
            in_flight: HashSet::new(),
            duplicates: 0,
        }
    }

    /// Checks a batch id; a fresh one is remembered as in flight until
    /// [`DedupWindow::settle`]. Batches without an id are always fresh and not tracked.
    pub fn admit(&mut self, batch_id: &[u8]) -> Admission {
        if batch_id.is_empty() {
            return Admission::Fresh;
        }
        if batch_id.len() > MAX_BATCH_ID_BYTES {
            return Admission::Invalid;
        }
        if self.accepted.contains(batch_id) {
            self.duplicates += 1;
            return Admission::Duplicate;
        }
        if self.in_flight.contains(batch_id) {
            return Admission::InFlight;
        }
        self.bytes += entry_bytes(batch_id);
        self.in_flight.insert(batch_id.to_vec());
        Admission::Fresh
    }

    /// Ends the processing of a batch [`DedupWindow::admit`] let through: an accepted one
    /// is remembered (its resends are duplicates), a refused or abandoned one is not (its
    /// resend is processed).
    pub fn settle(&mut self, batch_id: &[u8], accepted: bool) {
        let Some(id) = self.in_flight.take(batch_id) else {
            return;
        };
        if !accepted {
            self.bytes -= entry_bytes(&id);
            return;
        }
        self.order.push_back(id.clone());
        self.accepted.insert(id);
        while self.order.len() > self.capacity || self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.accepted.remove(&oldest);
            self.bytes -= entry_bytes(&oldest);
        }
    }

    /// Forgets a batch id, accepted or in flight (its resend must be processed).
    pub fn forget(&mut self, batch_id: &[u8]) {
        if self.in_flight.remove(batch_id) || self.accepted.remove(batch_id) {
            self.bytes -= entry_bytes(batch_id);
            self.order.retain(|id| id != batch_id);
        }
    }

    /// The most bytes the accepted ids can take (the smaller of `capacity` ids of the
    /// longest length and `max_bytes`): what the relay reserves from its memory budget
    /// for the window.
    pub fn bound_bytes(&self) -> usize {
        self.capacity
            .saturating_mul(entry_bytes(&[0; MAX_BATCH_ID_BYTES]))
            .min(self.max_bytes)
    }

    /// Bytes the remembered ids take, overhead included; at most `max_bytes` plus the ids
    /// in flight.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Ids remembered as accepted.
    pub fn accepted_len(&self) -> usize {
        self.order.len()
    }

    /// Ids being processed now.
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// Duplicates recognised so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

fn entry_bytes(id: &[u8]) -> usize {
    2 * id.len() + ENTRY_OVERHEAD_BYTES
}

/// The final acknowledgement of a processed batch.
pub fn completed(sequence: u64, result: &Result<ExportOutcome, ExportError>) -> StreamAck {
    match result {
        Ok(outcome) => StreamAck {
            sequence,
            stage: Stage::Completed as i32,
            code: 0,
            message: String::new(),
            retry_after_millis: 0,
            rejected_items: i64::try_from(outcome.rejected()).unwrap_or(i64::MAX),
            error_message: outcome.message().to_string(),
        },
        Err(error) => {
            let (code, delay) = error.grpc_code();
            StreamAck {
                sequence,
                stage: Stage::Completed as i32,
                code: code.as_i32(),
                message: error.to_string(),
                retry_after_millis: delay
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                rejected_items: 0,
                error_message: String::new(),
            }
        }
    }
}

/// The intermediate acknowledgement: received and valid, processing continues.
pub fn received(sequence: u64) -> StreamAck {
    StreamAck {
        sequence,
        stage: Stage::Received as i32,
        ..Default::default()
    }
}

/// How long a resend that overtook its original is asked to wait before trying again.
pub const IN_FLIGHT_RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// Settles an admitted id as not accepted unless disarmed: an export future dropped
/// mid-way (its connection closed, its task aborted or panicked) leaves no entry.
struct InFlight<'a> {
    dedup: &'a std::sync::Mutex<DedupWindow>,
    id: Option<&'a [u8]>,
}

impl InFlight<'_> {
    fn settle(mut self, accepted: bool) {
        if let Some(id) = self.id.take() {
            settle(self.dedup, id, accepted);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            settle(self.dedup, id, false);
        }
    }
}

fn settle(dedup: &std::sync::Mutex<DedupWindow>, id: &[u8], accepted: bool) {
    // A poisoned window is still consistent: every update is a few set operations.
    let mut window = dedup
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    window.settle(id, accepted);
}

/// Runs `export` for batch `sequence` unless its id was accepted before, and returns the
/// final acknowledgement and whether the batch was a duplicate. The id counts as accepted
/// only when `export` succeeds; a resend arriving while the original is still being
/// processed gets a retryable refusal (UNAVAILABLE, retry after
/// [`IN_FLIGHT_RETRY_AFTER`]); a failed export, or one dropped before it finished, leaves
/// no entry, so the resend is processed. A panic in `export` is answered as an INTERNAL
/// error for `sequence`. `export` is not polled for a duplicate.
pub async fn acknowledge<Fut>(
    dedup: &std::sync::Mutex<DedupWindow>,
    sequence: u64,
    id: Option<&[u8]>,
    items: usize,
    export: Fut,
) -> (StreamAck, bool)
where
    Fut: std::future::Future<Output = Result<ExportOutcome, ExportError>>,
{
    let id = id.filter(|id| !id.is_empty());
    if let Some(id) = id {
        let admission = dedup
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .admit(id);
        match admission {
            Admission::Fresh => {}
            Admission::Duplicate => {
                return (
                    completed(sequence, &Ok(ExportOutcome::success(items))),
                    true,
                );
            }
            Admission::InFlight => {
                let error = ExportError::unavailable(
                    "a batch with this id is being processed; resend it later",
                )
                .with_retry_after(IN_FLIGHT_RETRY_AFTER);
                return (completed(sequence, &Err(error)), false);
            }
            Admission::Invalid => {
                let error = ExportError::invalid_argument(format!(
                    "batch id of {} bytes; at most {MAX_BATCH_ID_BYTES} are accepted",
                    id.len()
                ));
                return (completed(sequence, &Err(error)), false);
            }
        }
    }
    let guard = InFlight { dedup, id };
    // A panicking service is answered for this batch's own sequence number, and its id is
    // left unremembered, like any other failure.
    let mut export = std::pin::pin!(export);
    let result = std::future::poll_fn(|cx| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| export.as_mut().poll(cx)))
            .unwrap_or_else(|_| {
                std::task::Poll::Ready(Err(ExportError::internal("processing the batch panicked")))
            })
    })
    .await;
    guard.settle(result.is_ok());
    (completed(sequence, &result), false)
}
