//! The stream driver over an in-memory link whose peer the test plays: what it writes
//! after a broken link, a refusal, a message too large and a peer without the stream
//! service, seen from the exporter's public handle.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use otlp_core::{AnyExportRequest, ErrorKind, ExportError, ExportOutcome, ExportRequest, Traces};
use otlp_model::stream::StreamAck;
use otlp_net::stream_client::{
    LinkEnd, SendError, StreamClient, StreamClientConfig, StreamConnector, StreamLink,
    UnaryFallback,
};
use otlp_stream::completed;
use tokio::sync::mpsc;

/// What the peer does when the driver opens a link.
enum Opening {
    Accept,
    Refuse(ExportError),
}

/// The peer's side of one accepted link.
struct PeerSide {
    batches: mpsc::UnboundedReceiver<(u64, usize)>,
    acks: mpsc::UnboundedSender<Result<StreamAck, LinkEnd>>,
}

impl PeerSide {
    /// The next batch written, as (sequence, items).
    async fn batch(&mut self) -> (u64, usize) {
        tokio::time::timeout(Duration::from_secs(5), self.batches.recv())
            .await
            .expect("a batch within 5 s")
            .expect("the link is open")
    }

    fn complete(&self, sequence: u64, items: usize) {
        let ack = completed(
            sequence,
            &Ok::<_, ExportError>(ExportOutcome::success(items)),
        );
        let _ = self.acks.send(Ok(ack));
    }
}

struct Connector {
    openings: mpsc::UnboundedReceiver<Opening>,
    links: mpsc::UnboundedSender<PeerSide>,
    fallback: Option<UnaryFallback>,
}

struct MemoryLink {
    batches: mpsc::UnboundedSender<(u64, usize)>,
    acks: mpsc::UnboundedReceiver<Result<StreamAck, LinkEnd>>,
}

impl StreamConnector for Connector {
    type Link = MemoryLink;

    async fn open(&mut self) -> Result<MemoryLink, LinkEnd> {
        match self.openings.recv().await {
            Some(Opening::Accept) => {
                let (batches, peer_batches) = mpsc::unbounded_channel();
                let (peer_acks, acks) = mpsc::unbounded_channel();
                let _ = self.links.send(PeerSide {
                    batches: peer_batches,
                    acks: peer_acks,
                });
                Ok(MemoryLink { batches, acks })
            }
            Some(Opening::Refuse(error)) => Err(LinkEnd::Refused(error)),
            None => Err(LinkEnd::Broken),
        }
    }

    fn fallback(&self) -> Option<UnaryFallback> {
        self.fallback.clone()
    }
}

impl StreamLink for MemoryLink {
    async fn send(&mut self, sequence: u64, batch: &AnyExportRequest) -> Result<usize, SendError> {
        let items = batch.item_count();
        self.batches
            .send((sequence, items))
            .map_err(|_| SendError::Broken)?;
        // The "message size" is the item count, so the largest batch is the one with most.
        Ok(items)
    }

    async fn flush(&mut self) -> Result<(), LinkEnd> {
        Ok(())
    }

    async fn receive(&mut self) -> Result<StreamAck, LinkEnd> {
        self.acks.recv().await.unwrap_or(Err(LinkEnd::Broken))
    }

    async fn finish(self) {}
}

/// A driver over a scripted peer: `openings` says how each opening goes, `links` hands
/// the test the peer's side of each accepted link.
fn client(
    fallback: Option<UnaryFallback>,
) -> (
    StreamClient,
    mpsc::UnboundedSender<Opening>,
    mpsc::UnboundedReceiver<PeerSide>,
) {
    let (openings_tx, openings) = mpsc::unbounded_channel();
    let (links_tx, links) = mpsc::unbounded_channel();
    let connector = Connector {
        openings,
        links: links_tx,
        fallback,
    };
    let config = StreamClientConfig {
        reconnect_initial: Duration::from_millis(1),
        reconnect_max: Duration::from_millis(10),
        ..StreamClientConfig::default()
    };
    (StreamClient::spawn(connector, config), openings_tx, links)
}

fn request(spans: usize) -> AnyExportRequest {
    ExportRequest::<Traces>::new(otlp_testkit::realistic::traces(spans, spans as u64)).into()
}

async fn next_link(links: &mut mpsc::UnboundedReceiver<PeerSide>) -> PeerSide {
    tokio::time::timeout(Duration::from_secs(5), links.recv())
        .await
        .expect("a link within 5 s")
        .expect("the driver runs")
}

#[tokio::test]
async fn a_broken_link_resends_exactly_the_unacknowledged_batches_with_their_numbers() {
    let (client, openings, mut links) = client(None);
    openings.send(Opening::Accept).expect("script");
    let exports: Vec<_> = [1, 2, 3]
        .into_iter()
        .map(|spans| {
            let client = client.clone();
            tokio::spawn(async move { client.export(request(spans)).await })
        })
        .collect();
    let mut first = next_link(&mut links).await;
    let mut written = [
        first.batch().await,
        first.batch().await,
        first.batch().await,
    ];
    written.sort_unstable();
    assert_eq!(
        written
            .iter()
            .map(|(sequence, _)| *sequence)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // One is acknowledged, then the link breaks.
    let (acknowledged, items) = written[1];
    first.complete(acknowledged, items);
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(first);

    openings.send(Opening::Accept).expect("script");
    let mut second = next_link(&mut links).await;
    let mut resent = [second.batch().await, second.batch().await];
    resent.sort_unstable();
    assert_eq!(
        resent,
        [written[0], written[2]],
        "only the unacknowledged, same numbers"
    );
    for (sequence, items) in resent {
        second.complete(sequence, items);
    }
    let mut accepted = Vec::new();
    for export in exports {
        accepted.push(export.await.expect("task").expect("delivered").accepted());
    }
    accepted.sort_unstable();
    assert_eq!(accepted, [1, 2, 3]);
    let stats = client.stats();
    assert_eq!(stats.batches_sent.load(Ordering::Relaxed), 3);
    assert_eq!(stats.batches_resent.load(Ordering::Relaxed), 2);
    assert_eq!(stats.batches_delivered.load(Ordering::Relaxed), 3);
    assert_eq!(stats.reconnects.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_refusal_at_opening_fails_what_is_outstanding_and_the_next_batch_reconnects() {
    let (client, openings, mut links) = client(None);
    openings
        .send(Opening::Refuse(ExportError::new(
            ErrorKind::Unauthenticated,
            "no token",
        )))
        .expect("script");
    let refused = client.export(request(2)).await.expect_err("refused");
    assert_eq!(refused.kind(), ErrorKind::Unauthenticated);
    assert_eq!(client.stats().batches_failed.load(Ordering::Relaxed), 1);

    openings.send(Opening::Accept).expect("script");
    let export = tokio::spawn({
        let client = client.clone();
        async move { client.export(request(4)).await }
    });
    let mut link = next_link(&mut links).await;
    let (sequence, items) = link.batch().await;
    assert_eq!((sequence, items), (2, 4), "numbering goes on");
    link.complete(sequence, items);
    assert_eq!(
        export.await.expect("task").expect("delivered").accepted(),
        4
    );
}

#[tokio::test]
async fn too_large_fails_the_largest_batch_in_flight_and_resends_the_others() {
    let (client, openings, mut links) = client(None);
    openings.send(Opening::Accept).expect("script");
    let small = tokio::spawn({
        let client = client.clone();
        async move { client.export(request(2)).await }
    });
    let mut link = next_link(&mut links).await;
    let small_batch = link.batch().await;
    let large = tokio::spawn({
        let client = client.clone();
        async move { client.export(request(50)).await }
    });
    let _large_batch = link.batch().await;
    let _ = link.acks.send(Err(LinkEnd::TooLarge));

    let error = large
        .await
        .expect("task")
        .expect_err("the largest is refused");
    assert_eq!(error.kind(), ErrorKind::TooLarge);
    openings.send(Opening::Accept).expect("script");
    let mut next = next_link(&mut links).await;
    assert_eq!(
        next.batch().await,
        small_batch,
        "the other is written again"
    );
    next.complete(small_batch.0, small_batch.1);
    assert_eq!(small.await.expect("task").expect("delivered").accepted(), 2);
}

#[tokio::test]
async fn a_peer_without_the_stream_service_gets_everything_through_the_fallback() {
    let unary: UnaryFallback = Arc::new(|request: AnyExportRequest| {
        let items = request.item_count();
        Box::pin(async move { Ok(ExportOutcome::success(items)) })
    });
    let (client, openings, mut links) = client(Some(unary));
    openings.send(Opening::Accept).expect("script");
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.export(request(3)).await }
    });
    let mut link = next_link(&mut links).await;
    let _ = link.batch().await;
    let _ = link.acks.send(Err(LinkEnd::Unimplemented));
    assert_eq!(
        pending.await.expect("task").expect("by unary").accepted(),
        3
    );
    assert_eq!(
        client
            .export(request(5))
            .await
            .expect("by unary")
            .accepted(),
        5
    );
    assert!(client.stats().fell_back_to_unary.load(Ordering::Relaxed));
}
