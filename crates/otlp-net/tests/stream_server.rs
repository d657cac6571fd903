//! The stream receive driver over an in-memory link whose peer the test plays: a batch
//! whose processing panics before it could answer for its own sequence number.

use std::time::Duration;

use otlp_model::stream::StreamAck;
use otlp_net::intake::StreamStats;
use otlp_net::stream_server::{ReceiveLink, StreamServerConfig, serve_stream};
use otlp_stream::{Ending, SessionConfig};
use tokio::sync::{mpsc, watch};

/// What the driver wrote, as the peer sees it.
#[derive(Debug, PartialEq)]
enum Written {
    Ack(u64),
    Finished(String),
}

/// A link whose messages are sequence numbers and whose fatal endings are reasons.
struct MemoryLink {
    messages: mpsc::UnboundedReceiver<u64>,
    written: mpsc::UnboundedSender<Written>,
}

impl ReceiveLink for MemoryLink {
    type Message = u64;
    type Fatal = String;

    async fn receive(&mut self) -> Result<Option<u64>, String> {
        Ok(self.messages.recv().await)
    }

    async fn send_ack(&mut self, ack: &StreamAck) -> bool {
        self.written.send(Written::Ack(ack.sequence)).is_ok()
    }

    async fn finish(&mut self, ending: Ending<String>) -> bool {
        let why = match ending {
            Ending::Failed(reason) => format!("failed: {reason}"),
            other => format!("{other:?}"),
        };
        self.written.send(Written::Finished(why)).is_ok()
    }

    fn internal_error(reason: &'static str) -> String {
        reason.to_string()
    }
}

/// A panic in a batch's processing, where no sequence number is known to answer for,
/// ends the stream as the receiver's failure: no acknowledgement for a batch the peer never
/// sent (sequence 0), and the peer resends what was not acknowledged on a new stream. The
/// batches before it are acknowledged as usual.
#[tokio::test]
async fn a_batch_whose_processing_panics_ends_the_stream_unacknowledged() {
    let (send, messages) = mpsc::unbounded_channel();
    let (written, mut peer) = mpsc::unbounded_channel();
    let config = StreamServerConfig {
        session: SessionConfig {
            concurrency: 1,
            idle_timeout: Some(Duration::from_secs(30)),
            keepalive: None,
        },
        write_timeout: Duration::from_secs(5),
    };
    let stats = StreamStats::default();
    let (_stop, shutdown) = watch::channel(false);
    send.send(1).expect("first batch");
    send.send(2).expect("second batch");
    drop(send);
    let served = serve_stream(
        MemoryLink { messages, written },
        config,
        &stats,
        shutdown,
        |sequence| async move {
            if sequence == 2 {
                panic!("a defect outside the export");
            }
            Ok(otlp_stream::completed(
                sequence,
                &Ok::<_, otlp_core::ExportError>(otlp_core::ExportOutcome::success(1)),
            ))
        },
    );
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("the stream ends");
    let mut seen = Vec::new();
    while let Ok(write) = peer.try_recv() {
        seen.push(write);
    }
    assert_eq!(
        seen,
        [
            Written::Ack(1),
            Written::Finished("failed: processing a batch panicked".to_string())
        ]
    );
}
