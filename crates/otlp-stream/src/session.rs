//! The receiving half of one stream's life, sans-IO: when to read the next batch, when
//! the stream is idle or due a keepalive, and why it ended. A driver feeds it events and
//! the time; batches themselves (admission, de-duplication, acknowledgements) go through
//! [`acknowledge`](crate::acknowledge).

use std::time::Duration;

/// Why a stream ended, as its binding reports it to the peer (gRPC trailers, a WebSocket
/// close code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending<E> {
    /// The peer finished sending and every batch it sent was acknowledged.
    Finished,
    /// No batch arrived, and none was in progress, for this long.
    Idle(Duration),
    /// The receiver is stopping: batches not yet read stay with the peer, to resend
    /// wherever it reconnects; those taken were finished and acknowledged.
    ShuttingDown,
    /// The stream cannot go on (a framing error, a message that names no batch to refuse);
    /// the batches taken before it were acknowledged.
    Failed(E),
}

/// A timer that fired ([`ReceiverSession::handle_timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The stream was idle too long: it stops reading and ends as [`Ending::Idle`].
    Idle,
    /// A keepalive is due: write one (a WebSocket ping).
    Keepalive,
}

/// The shortest keepalive interval a session keeps (a zero interval would ask for
/// keepalives without end).
pub const MIN_KEEPALIVE: Duration = Duration::from_millis(10);

/// Settings of a [`ReceiverSession`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Batches processed at once; no more are read while this many are in progress (at
    /// least 1).
    pub concurrency: usize,
    /// How long the stream may go without a batch read or an acknowledgement written
    /// while nothing is in progress; `None`: forever.
    pub idle_timeout: Option<Duration>,
    /// How often to write a keepalive while reading (at least [`MIN_KEEPALIVE`]); `None`:
    /// never.
    pub keepalive: Option<Duration>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            idle_timeout: Some(Duration::from_secs(60)),
            keepalive: None,
        }
    }
}

/// One stream's receiving state. Times are offsets from any fixed instant the driver
/// chooses (so tests run it on simulated time).
///
/// ```
/// use std::time::Duration;
/// use otlp_stream::{Ending, ReceiverSession, SessionConfig, Timer};
///
/// let config = SessionConfig { concurrency: 1, idle_timeout: Some(Duration::from_secs(5)), keepalive: None };
/// let mut session = ReceiverSession::<&str>::new(config, Duration::ZERO);
/// assert!(session.wants_batch());
/// session.handle_batch(Duration::from_secs(1));
/// assert!(!session.wants_batch()); // one in progress, the most it takes
/// assert_eq!(session.poll_timeout(), None); // never idle while a batch is in progress
/// session.handle_processed();
/// session.handle_ack_written(Duration::from_secs(2));
/// assert_eq!(session.poll_timeout(), Some(Duration::from_secs(7)));
/// assert_eq!(session.handle_timeout(Duration::from_secs(7)), Some(Timer::Idle));
/// assert!(session.is_done());
/// assert_eq!(session.into_ending(), Ending::Idle(Duration::from_secs(5)));
/// ```
#[derive(Debug)]
pub struct ReceiverSession<E> {
    config: SessionConfig,
    reading: bool,
    in_progress: usize,
    ending: Option<Ending<E>>,
    last_activity: Duration,
    next_keepalive: Option<Duration>,
}

impl<E> ReceiverSession<E> {
    /// A stream opened at `now`.
    pub fn new(config: SessionConfig, now: Duration) -> Self {
        Self {
            config: SessionConfig {
                concurrency: config.concurrency.max(1),
                ..config
            },
            reading: true,
            in_progress: 0,
            ending: None,
            last_activity: now,
            next_keepalive: config
                .keepalive
                .and_then(|every| now.checked_add(every.max(MIN_KEEPALIVE))),
        }
    }

    /// Whether to read the next message: still reading, and room for one more batch.
    pub fn wants_batch(&self) -> bool {
        self.reading && self.in_progress < self.config.concurrency
    }

    /// Whether the stream is still read (the peer has not finished, nothing has ended it).
    pub fn is_reading(&self) -> bool {
        self.reading
    }

    /// Batches taken and not yet acknowledged.
    pub fn in_progress(&self) -> usize {
        self.in_progress
    }

    /// A message was read at `now`; its processing has started.
    pub fn handle_batch(&mut self, now: Duration) {
        self.in_progress += 1;
        self.last_activity = now;
    }

    /// A batch's processing ended; its acknowledgement is to be written.
    pub fn handle_processed(&mut self) {
        self.in_progress = self.in_progress.saturating_sub(1);
    }

    /// A batch's processing ended without an acknowledgement: the stream cannot go on
    /// (see [`ReceiverSession::handle_failure`]).
    pub fn handle_processing_failed(&mut self, error: E) {
        self.handle_processed();
        self.handle_failure(error);
    }

    /// An acknowledgement went out at `now`.
    pub fn handle_ack_written(&mut self, now: Duration) {
        self.last_activity = now;
    }

    /// The peer finished sending.
    pub fn handle_peer_finished(&mut self) {
        self.reading = false;
    }

    /// The stream cannot go on: nothing more is read, the batches in progress are still
    /// acknowledged, and the first failure is the ending.
    pub fn handle_failure(&mut self, error: E) {
        self.stop_reading(Ending::Failed(error));
    }

    /// The receiver is stopping.
    pub fn handle_shutdown(&mut self) {
        self.stop_reading(Ending::ShuttingDown);
    }

    /// When [`ReceiverSession::handle_timeout`] is next due, if ever.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if !self.reading {
            return None;
        }
        let idle = self
            .config
            .idle_timeout
            .filter(|_| self.in_progress == 0)
            .and_then(|timeout| self.last_activity.checked_add(timeout));
        match (idle, self.next_keepalive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies the time: the timer that fired, if any (idle before keepalive).
    pub fn handle_timeout(&mut self, now: Duration) -> Option<Timer> {
        if !self.reading {
            return None;
        }
        if let Some(timeout) = self.config.idle_timeout
            && self.in_progress == 0
            && self
                .last_activity
                .checked_add(timeout)
                .is_some_and(|at| at <= now)
        {
            self.stop_reading(Ending::Idle(timeout));
            return Some(Timer::Idle);
        }
        if let (Some(at), Some(every)) = (self.next_keepalive, self.config.keepalive)
            && at <= now
        {
            self.next_keepalive = now.checked_add(every.max(MIN_KEEPALIVE));
            return Some(Timer::Keepalive);
        }
        None
    }

    /// Whether the stream has ended: nothing more to read and every batch taken answered.
    pub fn is_done(&self) -> bool {
        !self.reading && self.in_progress == 0
    }

    /// Why the stream ended ([`Ending::Finished`] unless something else ended it first).
    pub fn into_ending(self) -> Ending<E> {
        self.ending.unwrap_or(Ending::Finished)
    }

    fn stop_reading(&mut self, ending: Ending<E>) {
        // Once reading has stopped for one reason, a later one (a shutdown while the
        // last batches finish) does not replace it.
        if self.reading {
            self.reading = false;
            self.ending.get_or_insert(ending);
        } else if matches!(ending, Ending::Failed(_)) {
            // A batch that could not be answered after the peer finished still fails the
            // stream, unless an earlier ending was recorded.
            self.ending.get_or_insert(ending);
        }
    }
}
