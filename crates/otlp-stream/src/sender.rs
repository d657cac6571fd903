//! The sending side: numbers batches, keeps at most a window of them unacknowledged, hands
//! them to the transport in order, and after a broken connection hands back exactly the
//! unacknowledged ones, in order, with their original numbers.

use std::collections::BTreeMap;
use std::time::Duration;

use otlp_core::{ExportError, ExportOutcome, GrpcCode, RetryClass};
use otlp_model::stream::StreamAck;
use otlp_model::stream::stream_ack::Stage;

/// Window and resend settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderConfig {
    /// Most batches sent or waiting to be sent without an acknowledgement.
    pub window: usize,
    /// First delay before resending a batch the peer answered with a retryable error.
    pub initial_resend_delay: Duration,
    /// Longest delay before a resend.
    pub max_resend_delay: Duration,
    /// A batch refused this many times with retryable errors is given up.
    pub max_attempts: u32,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            window: 64,
            initial_resend_delay: Duration::from_millis(100),
            max_resend_delay: Duration::from_secs(30),
            max_attempts: 20,
        }
    }
}

/// A batch for the transport to write now.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit<P> {
    /// The batch's sequence number (unchanged on resend).
    pub sequence: u64,
    /// The payload (cloned: the sender keeps it until it is acknowledged).
    pub payload: P,
    /// Whether this is a resend.
    pub resend: bool,
}

/// What an acknowledgement meant.
#[derive(Debug)]
pub enum AckEvent {
    /// The batch is done: accepted, possibly with some items rejected (partial success).
    Delivered {
        /// The batch.
        sequence: u64,
        /// Accepted and rejected items.
        outcome: ExportOutcome,
    },
    /// The batch was refused for good (a permanent error, or too many attempts): its items
    /// are dropped and must be counted by the caller.
    Failed {
        /// The batch.
        sequence: u64,
        /// Items in it.
        items: usize,
        /// Why.
        error: ExportError,
    },
    /// The batch will be sent again at `at` (a retryable error).
    WillResend {
        /// The batch.
        sequence: u64,
        /// When.
        at: Duration,
    },
    /// An intermediate acknowledgement (received, not yet completed): nothing changes.
    Progress {
        /// The batch.
        sequence: u64,
    },
    /// An acknowledgement for a batch that is not outstanding (already acknowledged, or
    /// never sent): ignored.
    Unknown {
        /// The sequence it named.
        sequence: u64,
    },
}

#[derive(Debug)]
struct Entry<P> {
    payload: P,
    items: usize,
    /// Written on the current connection (an acknowledgement may come).
    in_flight: bool,
    /// Sent before, on this or an earlier connection.
    sent_before: bool,
    attempts: u32,
    /// Not to be sent before this time (after a retryable refusal).
    not_before: Option<Duration>,
}

/// The sending state machine. No I/O and no clock: the transport calls
/// [`Sender::poll_transmit`] when it can write, feeds acknowledgements to
/// [`Sender::handle_ack`], and reports connection changes.
#[derive(Debug)]
pub struct Sender<P> {
    config: SenderConfig,
    next_sequence: u64,
    outstanding: BTreeMap<u64, Entry<P>>,
    connected: bool,
}

impl<P: Clone> Sender<P> {
    /// A sender with nothing outstanding, not yet connected.
    pub fn new(config: SenderConfig) -> Self {
        Self {
            config: SenderConfig {
                window: config.window.max(1),
                ..config
            },
            next_sequence: 1,
            outstanding: BTreeMap::new(),
            connected: false,
        }
    }

    /// Takes a batch of `items` items if the window has room, returning its sequence
    /// number; hands the payload back when the window is full (backpressure).
    pub fn offer(&mut self, payload: P, items: usize) -> Result<u64, P> {
        if self.outstanding.len() >= self.config.window {
            return Err(payload);
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.outstanding.insert(
            sequence,
            Entry {
                payload,
                items,
                in_flight: false,
                sent_before: false,
                attempts: 0,
                not_before: None,
            },
        );
        Ok(sequence)
    }

    /// The transport is connected: batches can be written.
    pub fn handle_connect(&mut self) {
        self.connected = true;
    }

    /// The connection broke: nothing in flight will be acknowledged, so every outstanding
    /// batch will be sent again, in order, once connected.
    pub fn handle_disconnect(&mut self) {
        self.connected = false;
        for entry in self.outstanding.values_mut() {
            entry.in_flight = false;
        }
    }

    /// The next batch to write at `now`, lowest sequence first; `None` when disconnected or
    /// when nothing is due.
    pub fn poll_transmit(&mut self, now: Duration) -> Option<Transmit<P>> {
        if !self.connected {
            return None;
        }
        let (&sequence, entry) = self
            .outstanding
            .iter_mut()
            .find(|(_, e)| !e.in_flight && e.not_before.is_none_or(|t| t <= now))?;
        entry.in_flight = true;
        entry.not_before = None;
        entry.attempts += 1;
        let resend = entry.sent_before;
        entry.sent_before = true;
        Some(Transmit {
            sequence,
            payload: entry.payload.clone(),
            resend,
        })
    }

    /// When a batch waiting after a retryable refusal becomes due.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.outstanding
            .values()
            .filter(|e| !e.in_flight)
            .filter_map(|e| e.not_before)
            .min()
    }

    /// Applies an acknowledgement received at `now`.
    pub fn handle_ack(&mut self, ack: &StreamAck, now: Duration) -> AckEvent {
        let sequence = ack.sequence;
        let Some(entry) = self.outstanding.get_mut(&sequence) else {
            return AckEvent::Unknown { sequence };
        };
        if !entry.in_flight {
            // An answer from a connection we already gave up on: the batch will be (or
            // was) sent again, and that send's answer counts.
            return AckEvent::Unknown { sequence };
        }
        if ack.stage == Stage::Received as i32 {
            return AckEvent::Progress { sequence };
        }
        let items = entry.items;
        if ack.code == GrpcCode::Ok.as_i32() {
            self.outstanding.remove(&sequence);
            let rejected = usize::try_from(ack.rejected_items.max(0)).unwrap_or(usize::MAX);
            return AckEvent::Delivered {
                sequence,
                outcome: ExportOutcome::partial(items, rejected, ack.error_message.clone()),
            };
        }
        let hint =
            (ack.retry_after_millis > 0).then(|| Duration::from_millis(ack.retry_after_millis));
        let error = ExportError::from_grpc(GrpcCode::from_i32(ack.code), ack.message.clone(), hint);
        let delay = match error.retry_class() {
            RetryClass::Permanent => None,
            _ if entry.attempts >= self.config.max_attempts => None,
            RetryClass::Throttled(hint) => Some(hint.min(self.config.max_resend_delay)),
            RetryClass::Retryable => {
                let exponent = entry.attempts.saturating_sub(1).min(16);
                Some(
                    self.config
                        .initial_resend_delay
                        .saturating_mul(1 << exponent)
                        .min(self.config.max_resend_delay),
                )
            }
        };
        match delay {
            Some(delay) => {
                entry.in_flight = false;
                entry.not_before = Some(now + delay);
                AckEvent::WillResend {
                    sequence,
                    at: now + delay,
                }
            }
            None => {
                self.outstanding.remove(&sequence);
                AckEvent::Failed {
                    sequence,
                    items,
                    error,
                }
            }
        }
    }

    /// Batches sent or waiting without a final acknowledgement.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Items in outstanding batches (what would be lost if the sender were dropped now).
    pub fn outstanding_items(&self) -> usize {
        self.outstanding.values().map(|e| e.items).sum()
    }

    /// Whether a new batch would be accepted.
    pub fn has_room(&self) -> bool {
        self.outstanding.len() < self.config.window
    }
}
