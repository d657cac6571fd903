//! Sender and receiver over a simulated connection that loses everything in flight when it
//! breaks, on simulated time: every batch ends up processed exactly once (resends of
//! already-processed batches are recognised by batch id), and the window is never exceeded.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use otlp_core::{ExportError, ExportOutcome};
use otlp_stream::{AckEvent, Admission, DedupWindow, Sender, SenderConfig, completed};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Offer(usize),
    Write,
    Deliver,
    Acknowledge,
    Break,
    Reconnect,
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1usize..100).prop_map(Step::Offer),
        4 => Just(Step::Write),
        4 => Just(Step::Deliver),
        4 => Just(Step::Acknowledge),
        1 => Just(Step::Break),
        1 => Just(Step::Reconnect),
        1 => (1u64..5000).prop_map(Step::Wait),
    ]
}

/// A payload: the batch id and its item count.
type Payload = (u64, usize);

struct World {
    sender: Sender<Payload>,
    dedup: DedupWindow,
    to_receiver: VecDeque<(u64, Payload)>,
    to_sender: VecDeque<otlp_model::stream::StreamAck>,
    processed: HashMap<u64, usize>,
    /// Every third fresh delivery is refused once with UNAVAILABLE, to exercise resends.
    deliveries: usize,
    now: Duration,
    window: usize,
}

impl World {
    fn deliver(&mut self) {
        let Some((sequence, (id, items))) = self.to_receiver.pop_front() else {
            return;
        };
        let key = id.to_be_bytes();
        let result = match self.dedup.admit(&key) {
            Admission::Duplicate => Ok(ExportOutcome::success(items)),
            Admission::Fresh => {
                self.deliveries += 1;
                let accepted = !self.deliveries.is_multiple_of(3);
                // A refused batch leaves no entry, so that its resend is processed.
                self.dedup.settle(&key, accepted);
                if accepted {
                    *self.processed.entry(id).or_default() += 1;
                    Ok(ExportOutcome::success(items))
                } else {
                    Err(ExportError::unavailable("downstream busy"))
                }
            }
            other => panic!("one batch in flight at a time, ids of 8 bytes: {other:?}"),
        };
        self.to_sender.push_back(completed(sequence, &result));
    }

    fn acknowledge(&mut self) {
        if let Some(ack) = self.to_sender.pop_front() {
            match self.sender.handle_ack(&ack, self.now) {
                AckEvent::Failed { error, .. } => panic!("nothing here is permanent: {error}"),
                AckEvent::Delivered { .. }
                | AckEvent::WillResend { .. }
                | AckEvent::Progress { .. }
                | AckEvent::Unknown { .. } => {}
            }
        }
    }

    fn write(&mut self) {
        if let Some(transmit) = self.sender.poll_transmit(self.now) {
            self.to_receiver
                .push_back((transmit.sequence, transmit.payload));
        }
    }

    fn break_connection(&mut self) {
        self.to_receiver.clear();
        self.to_sender.clear();
        self.sender.handle_disconnect();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_batch_is_processed_exactly_once(steps in proptest::collection::vec(step(), 1..200), window in 1usize..10) {
        let mut world = World {
            sender: Sender::new(SenderConfig { window, max_attempts: 1000, ..Default::default() }),
            dedup: DedupWindow::new(10_000),
            to_receiver: VecDeque::new(),
            to_sender: VecDeque::new(),
            processed: HashMap::new(),
            deliveries: 0,
            now: Duration::ZERO,
            window,
        };
        world.sender.handle_connect();
        let mut offered = Vec::new();
        let mut next_id = 0u64;
        for step in steps {
            match step {
                Step::Offer(items) => {
                    if world.sender.offer((next_id, items), items).is_ok() {
                        offered.push(next_id);
                        next_id += 1;
                    }
                }
                Step::Write => world.write(),
                Step::Deliver => world.deliver(),
                Step::Acknowledge => world.acknowledge(),
                Step::Break => world.break_connection(),
                Step::Reconnect => world.sender.handle_connect(),
                Step::Wait(ms) => world.now += Duration::from_millis(ms),
            }
            prop_assert!(world.sender.outstanding() <= world.window);
        }
        // Drain: a stable connection until nothing is outstanding.
        world.sender.handle_connect();
        let mut rounds = 0;
        while world.sender.outstanding() > 0 {
            rounds += 1;
            prop_assert!(rounds < 100_000, "did not drain");
            world.write();
            world.deliver();
            world.acknowledge();
            if let Some(due) = world.sender.poll_timeout() {
                world.now = world.now.max(due);
            }
        }
        for id in &offered {
            prop_assert_eq!(world.processed.get(id).copied(), Some(1), "batch {} processed {:?} times", id, world.processed.get(id));
        }
        prop_assert_eq!(world.processed.len(), offered.len());
    }
}

#[test]
fn throttling_hints_delay_the_resend() {
    let mut sender = Sender::new(SenderConfig::default());
    sender.handle_connect();
    let sequence = sender.offer("b", 1).expect("room");
    let now = Duration::from_secs(10);
    sender.poll_transmit(now).expect("due");
    let busy = ExportError::unavailable("busy").with_retry_after(Duration::from_secs(7));
    let ack = completed(sequence, &Err(busy));
    assert!(
        matches!(sender.handle_ack(&ack, now), AckEvent::WillResend { at, .. } if at == now + Duration::from_secs(7))
    );
    assert!(sender.poll_transmit(now + Duration::from_secs(6)).is_none());
    assert_eq!(sender.poll_timeout(), Some(now + Duration::from_secs(7)));
    let again = sender
        .poll_transmit(now + Duration::from_secs(7))
        .expect("due");
    assert!(again.resend);
}

#[test]
fn permanent_refusals_fail_the_batch_and_partial_success_is_reported() {
    let mut sender = Sender::new(SenderConfig::default());
    sender.handle_connect();
    let bad = sender.offer("bad", 4).expect("room");
    let partial = sender.offer("partial", 10).expect("room");
    sender.poll_transmit(Duration::ZERO);
    sender.poll_transmit(Duration::ZERO);
    let refused = completed(bad, &Err(ExportError::invalid_argument("malformed")));
    assert!(matches!(
        sender.handle_ack(&refused, Duration::ZERO),
        AckEvent::Failed { items: 4, .. }
    ));
    let ack = completed(partial, &Ok(ExportOutcome::partial(10, 3, "3 bad spans")));
    match sender.handle_ack(&ack, Duration::ZERO) {
        AckEvent::Delivered { outcome, .. } => {
            assert_eq!((outcome.accepted(), outcome.rejected()), (7, 3))
        }
        other => panic!("{other:?}"),
    }
    // A late duplicate acknowledgement is ignored.
    assert!(matches!(
        sender.handle_ack(&ack, Duration::ZERO),
        AckEvent::Unknown { .. }
    ));
    assert_eq!(sender.outstanding(), 0);
}

#[test]
fn the_dedup_window_is_bounded() {
    let mut window = DedupWindow::new(3);
    for id in 0u8..5 {
        assert_eq!(window.admit(&[id]), Admission::Fresh);
        window.settle(&[id], true);
    }
    // The two oldest were forgotten, the three newest are remembered.
    assert_eq!(window.admit(&[0]), Admission::Fresh);
    assert_eq!(window.admit(&[4]), Admission::Duplicate);
}
