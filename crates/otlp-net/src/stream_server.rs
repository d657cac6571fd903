//! The receiver half of the stream protocol over any binding, written once: the sans-IO
//! [`otlp_stream::ReceiverSession`] decides when to read, when the stream is idle and why
//! it ended, and one tokio driver runs it over a [`ReceiveLink`] (gRPC bidirectional, a
//! WebSocket), which keeps only its framing: receive a message, write an
//! acknowledgement or a keepalive, end with a status.
//!
//! The driver reads a message while fewer than `concurrency` batches are in progress,
//! processes each in a task of its own (so one stream's batches use every core),
//! acknowledges them in completion order, bounds every write by `write_timeout` (a peer
//! that stops reading is counted as stalled and dropped), and counts open, idle and
//! stalled streams in [`StreamStats`].

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use otlp_model::stream::StreamAck;
use otlp_stream::{Ending, ReceiverSession, SessionConfig, Timer};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::intake::StreamStats;
use crate::listener::stopped;

/// One accepted stream of a binding. `receive` must be cancel-safe: the driver waits for
/// it beside finished batches, timers and the receiver's stop.
pub trait ReceiveLink: Send {
    /// One message as the binding frames it (a gRPC frame, a WebSocket message).
    type Message: Send + 'static;
    /// What ends the stream early, as the binding says it (an error status, a close
    /// frame): a framing error, or a message that names no batch to refuse.
    type Fatal: Send + 'static;

    /// The next message; `Ok(None)` once the peer has finished sending.
    fn receive(
        &mut self,
    ) -> impl Future<Output = Result<Option<Self::Message>, Self::Fatal>> + Send;

    /// Writes one acknowledgement; `false` if the peer is gone.
    fn send_ack(&mut self, ack: &StreamAck) -> impl Future<Output = bool> + Send;

    /// Writes a keepalive (a WebSocket ping); `false` if the peer is gone. Called only
    /// when the session has a keepalive interval ([`SessionConfig::keepalive`]).
    fn send_keepalive(&mut self) -> impl Future<Output = bool> + Send {
        async { true }
    }

    /// A write ran out of time: the peer stopped reading. A binding whose stream cannot
    /// end without the peer (HTTP/2 with no window) closes the connection here.
    fn stalled(&mut self) {}

    /// Ends the stream, telling the peer why; `false` if the peer is gone. Nothing is
    /// written after it.
    fn finish(&mut self, ending: Ending<Self::Fatal>) -> impl Future<Output = bool> + Send;

    /// What ends the stream when the receiver itself failed (gRPC INTERNAL, WebSocket close
    /// 1011): a batch's processing panicked where it could not answer for its own sequence
    /// number.
    fn internal_error(reason: &'static str) -> Self::Fatal;
}

/// Settings of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamServerConfig {
    /// Batches processed at once, idle timeout and keepalive interval.
    pub session: SessionConfig,
    /// Longest one write (an acknowledgement, a keepalive, the ending) may block.
    pub write_timeout: Duration,
}

/// Serves one stream until it ends: reads messages while there is room, hands each to
/// `process` (which answers with its acknowledgement, or with what ends the stream),
/// writes the acknowledgements as batches finish, and ends with the session's
/// [`Ending`]. A batch whose processing panics ends the stream as the receiver's failure
/// ([`ReceiveLink::internal_error`]): which batch it was is not known here, so none is
/// acknowledged for it, and the peer resends what is unacknowledged on its next stream.
/// (`process` answers a panic in the export itself for the batch's own sequence number.)
pub async fn serve_stream<L, P, Fut>(
    mut link: L,
    config: StreamServerConfig,
    stats: &StreamStats,
    mut shutdown: watch::Receiver<bool>,
    mut process: P,
) where
    L: ReceiveLink,
    P: FnMut(L::Message) -> Fut,
    Fut: Future<Output = Result<StreamAck, L::Fatal>> + Send + 'static,
{
    let _open = stats.open_stream();
    let start = Instant::now();
    let mut session = ReceiverSession::new(config.session, Duration::ZERO);
    let mut in_progress = JoinSet::new();
    let write_timeout = config.write_timeout;
    while !session.is_done() {
        // A timer too far away to be an instant (a timeout of "forever") never fires.
        let timer = session.poll_timeout().and_then(|at| start.checked_add(at));
        tokio::select! {
            message = link.receive(), if session.wants_batch() => match message {
                Ok(Some(message)) => {
                    session.handle_batch(start.elapsed());
                    in_progress.spawn(process(message));
                }
                Ok(None) => session.handle_peer_finished(),
                Err(fatal) => session.handle_failure(fatal),
            },
            Some(done) = in_progress.join_next(), if !in_progress.is_empty() => {
                let ack = match done {
                    Ok(Ok(ack)) => ack,
                    Ok(Err(fatal)) => {
                        session.handle_processing_failed(fatal);
                        continue;
                    }
                    Err(_) => {
                        session.handle_processing_failed(L::internal_error(
                            "processing a batch panicked",
                        ));
                        continue;
                    }
                };
                session.handle_processed();
                if !write(&mut link, write_timeout, stats, Write::Ack(&ack)).await {
                    return;
                }
                session.handle_ack_written(start.elapsed());
            }
            () = sleep_until(timer), if timer.is_some() => {
                match session.handle_timeout(start.elapsed()) {
                    Some(Timer::Idle) => {
                        stats.idle.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Timer::Keepalive)
                        if !write(&mut link, write_timeout, stats, Write::Keepalive).await =>
                    {
                        return;
                    }
                    _ => {}
                }
            }
            () = stopped(&mut shutdown), if session.is_reading() => {
                session.handle_shutdown();
            }
        }
    }
    let ending = session.into_ending();
    write(&mut link, write_timeout, stats, Write::Finish(ending)).await;
}

/// What the driver writes.
enum Write<'a, F> {
    Ack(&'a StreamAck),
    Keepalive,
    Finish(Ending<F>),
}

/// Runs one write of `link` within `timeout`: `false` if the peer is gone, or stopped
/// reading (counted as stalled, and the link told).
async fn write<L: ReceiveLink>(
    link: &mut L,
    timeout: Duration,
    stats: &StreamStats,
    what: Write<'_, L::Fatal>,
) -> bool {
    let written = tokio::time::timeout(timeout, async {
        match what {
            Write::Ack(ack) => link.send_ack(ack).await,
            Write::Keepalive => link.send_keepalive().await,
            Write::Finish(ending) => link.finish(ending).await,
        }
    })
    .await;
    match written {
        Ok(written) => written,
        Err(_) => {
            stats.stalled.fetch_add(1, Ordering::Relaxed);
            link.stalled();
            false
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
