//! The stream protocol of otlp-transport, sans-IO: no sockets, no clock, no tasks. The gRPC
//! streaming RPCs and the WebSocket transport both drive it.
//!
//! - [`Sender`]: numbers batches (from 1, a resend keeps its number), keeps at most a window
//!   of them unacknowledged (backpressure: [`Sender::offer`] hands the batch back when the
//!   window is full), writes them in order ([`Sender::poll_transmit`]), applies
//!   acknowledgements ([`Sender::handle_ack`]: delivered with partial success, failed for
//!   good, or to be resent after the peer's hint or a backoff), and after
//!   [`Sender::handle_disconnect`] sends exactly the unacknowledged batches again.
//! - [`DedupWindow`], [`acknowledge`] and [`completed`]/[`received`] for the receiving
//!   side: a resent batch already accepted (same batch id) is acknowledged without being
//!   processed twice, and one that overtakes its original is refused retryably.
//! - [`ReceiverSession`]: one receiving stream's life — at most `concurrency` batches in
//!   progress, idle and keepalive timers, and why it ended ([`Ending`]).
//!
//! The envelope is `otlp_transport.v1.StreamBatch` / `StreamAck` (`proto/otlp_transport`).
//!
//! ```
//! use std::time::Duration;
//! use otlp_core::{ExportOutcome, ExportError};
//! use otlp_stream::{AckEvent, Sender, SenderConfig, completed};
//!
//! let mut sender = Sender::new(SenderConfig { window: 2, ..Default::default() });
//! let now = Duration::ZERO;
//! sender.handle_connect();
//! let first = sender.offer("batch one", 10).unwrap();
//! let second = sender.offer("batch two", 5).unwrap();
//! assert_eq!(sender.offer("batch three", 1), Err("batch three")); // window full
//!
//! assert_eq!(sender.poll_transmit(now).unwrap().sequence, first);
//! assert_eq!(sender.poll_transmit(now).unwrap().sequence, second);
//! // The connection breaks before any acknowledgement: both are sent again, same numbers.
//! sender.handle_disconnect();
//! sender.handle_connect();
//! let resent = sender.poll_transmit(now).unwrap();
//! assert_eq!((resent.sequence, resent.resend), (first, true));
//!
//! let ack = completed(first, &Ok::<_, ExportError>(ExportOutcome::success(10)));
//! assert!(matches!(sender.handle_ack(&ack, now), AckEvent::Delivered { .. }));
//! assert_eq!(sender.outstanding(), 1);
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod envelope;
mod receiver;
mod sender;
mod session;

pub use receiver::{
    Admission, DedupWindow, IN_FLIGHT_RETRY_AFTER, MAX_BATCH_ID_BYTES, acknowledge, completed,
    received,
};
pub use sender::{AckEvent, Sender, SenderConfig, Transmit};
pub use session::{Ending, MIN_KEEPALIVE, ReceiverSession, SessionConfig, Timer};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
