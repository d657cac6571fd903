//! The receiving side: validates sequence numbers, recognises batches it has already
//! accepted (by batch id, across reconnects and hops), and builds acknowledgements.

use std::collections::{HashSet, VecDeque};

use otlp_core::{ExportError, ExportOutcome};
use otlp_model::stream::StreamAck;
use otlp_model::stream::stream_ack::Stage;

/// Whether a batch should be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First time seen: process it.
    Fresh,
    /// Accepted before (same batch id): acknowledge again without processing.
    Duplicate,
}

/// Remembers the ids of the last `capacity` batches accepted, so a resend of one of them
/// is acknowledged without being processed twice. Memory is bounded by `capacity`.
#[derive(Debug)]
pub struct DedupWindow {
    capacity: usize,
    order: VecDeque<Vec<u8>>,
    seen: HashSet<Vec<u8>>,
    duplicates: u64,
}

impl DedupWindow {
    /// A window remembering `capacity` batch ids.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            seen: HashSet::new(),
            duplicates: 0,
        }
    }

    /// Checks (and remembers) a batch id. Batches without an id are always fresh.
    pub fn admit(&mut self, batch_id: &[u8]) -> Admission {
        if batch_id.is_empty() {
            return Admission::Fresh;
        }
        if self.seen.contains(batch_id) {
            self.duplicates += 1;
            return Admission::Duplicate;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.order.push_back(batch_id.to_vec());
        self.seen.insert(batch_id.to_vec());
        Admission::Fresh
    }

    /// Forgets a batch id (its processing failed, so a resend must be processed).
    pub fn forget(&mut self, batch_id: &[u8]) {
        if self.seen.remove(batch_id) {
            self.order.retain(|id| id != batch_id);
        }
    }

    /// Duplicates recognised so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
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

/// Runs `export` for batch `sequence` unless its id was accepted before, and returns the
/// final acknowledgement and whether the batch was a duplicate. A refused batch's id is
/// forgotten, so that its resend is processed. `export` is not polled for a duplicate.
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
    if let Some(id) = id {
        let admission = dedup
            .lock()
            .map(|mut window| window.admit(id))
            .unwrap_or(Admission::Fresh);
        if admission == Admission::Duplicate {
            return (
                completed(sequence, &Ok(ExportOutcome::success(items))),
                true,
            );
        }
    }
    let result = export.await;
    if result.is_err()
        && let Some(id) = id
        && let Ok(mut window) = dedup.lock()
    {
        window.forget(id);
    }
    (completed(sequence, &result), false)
}
