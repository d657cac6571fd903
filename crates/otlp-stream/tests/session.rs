//! The receiving session on simulated time, driven by random events: never more batches in
//! progress than its concurrency, never idle while one is in progress, ended only when
//! every batch taken was answered, and the first reason to stop reading is the ending.

use std::time::Duration;

use otlp_stream::{Ending, ReceiverSession, SessionConfig, Timer};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Event {
    Batch,
    Processed,
    ProcessingFailed(u8),
    ReadFailed(u8),
    PeerFinished,
    Shutdown,
    Wait(u64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => Just(Event::Batch),
        6 => Just(Event::Processed),
        1 => any::<u8>().prop_map(Event::ProcessingFailed),
        1 => any::<u8>().prop_map(Event::ReadFailed),
        1 => Just(Event::PeerFinished),
        1 => Just(Event::Shutdown),
        3 => (1u64..3000).prop_map(Event::Wait),
    ]
}

/// The ending a reference model expects: the first reason reading stopped, except that a
/// failed batch after a clean finish still fails the stream.
fn expected(first_stop: Option<Ending<u8>>, late_failure: Option<u8>) -> Ending<u8> {
    match first_stop {
        None | Some(Ending::Finished) => late_failure.map_or(Ending::Finished, Ending::Failed),
        Some(other) => other,
    }
}

proptest! {
    #[test]
    fn the_session_keeps_its_bounds_and_ends_for_the_first_reason(
        concurrency in 1usize..5,
        idle_ms in proptest::option::of(100u64..2000),
        keepalive_ms in proptest::option::of(100u64..2000),
        events in proptest::collection::vec(event(), 1..80),
    ) {
        let idle = idle_ms.map(Duration::from_millis);
        let config = SessionConfig {
            concurrency,
            idle_timeout: idle,
            keepalive: keepalive_ms.map(Duration::from_millis),
        };
        let mut now = Duration::ZERO;
        let mut session = ReceiverSession::<u8>::new(config, now);
        let mut in_progress = 0usize;
        let mut reading = true;
        let mut first_stop: Option<Ending<u8>> = None;
        let mut late_failure = None;
        let mut last_activity = now;
        for event in events {
            match event {
                Event::Batch if session.wants_batch() => {
                    session.handle_batch(now);
                    in_progress += 1;
                    last_activity = now;
                }
                Event::Batch => {
                    prop_assert!(!reading || in_progress == concurrency);
                }
                Event::Processed if in_progress > 0 => {
                    session.handle_processed();
                    session.handle_ack_written(now);
                    in_progress -= 1;
                    last_activity = now;
                }
                Event::ProcessingFailed(code) if in_progress > 0 => {
                    session.handle_processing_failed(code);
                    in_progress -= 1;
                    if reading {
                        first_stop = Some(Ending::Failed(code));
                        reading = false;
                    } else if first_stop.is_none() {
                        late_failure.get_or_insert(code);
                    }
                }
                Event::ReadFailed(code) if reading => {
                    session.handle_failure(code);
                    first_stop = Some(Ending::Failed(code));
                    reading = false;
                }
                Event::PeerFinished if reading => {
                    session.handle_peer_finished();
                    reading = false;
                }
                Event::Shutdown => {
                    session.handle_shutdown();
                    if reading {
                        first_stop = Some(Ending::ShuttingDown);
                        reading = false;
                    }
                }
                Event::Wait(ms) => {
                    let until = now + Duration::from_millis(ms);
                    // Fire every timer due before `until`, in order, as a driver would.
                    while let Some(at) = session.poll_timeout().filter(|at| *at <= until) {
                        prop_assert!(at >= now, "a timer due in the past");
                        now = at;
                        match session.handle_timeout(now) {
                            Some(Timer::Idle) => {
                                prop_assert_eq!(in_progress, 0, "idle with a batch in progress");
                                prop_assert!(now >= last_activity + idle.unwrap_or_default());
                                prop_assert!(reading);
                                first_stop = Some(Ending::Idle(idle.unwrap_or_default()));
                                reading = false;
                            }
                            Some(Timer::Keepalive) => prop_assert!(reading),
                            None => prop_assert!(false, "a due timer that did not fire"),
                        }
                    }
                    now = until;
                }
                _ => {}
            }
            prop_assert_eq!(session.in_progress(), in_progress);
            prop_assert!(in_progress <= concurrency);
            prop_assert_eq!(session.is_done(), !reading && in_progress == 0);
            prop_assert_eq!(session.wants_batch(), reading && in_progress < concurrency);
            if in_progress > 0 && keepalive_ms.is_none() {
                prop_assert_eq!(session.poll_timeout(), None);
            }
        }
        prop_assert_eq!(session.into_ending(), expected(first_stop, late_failure));
    }
}

#[test]
fn keepalives_come_at_their_interval_while_reading_and_stop_with_it() {
    let config = SessionConfig {
        concurrency: 1,
        idle_timeout: None,
        keepalive: Some(Duration::from_secs(15)),
    };
    let mut session = ReceiverSession::<()>::new(config, Duration::ZERO);
    assert_eq!(session.poll_timeout(), Some(Duration::from_secs(15)));
    assert_eq!(session.handle_timeout(Duration::from_secs(14)), None);
    assert_eq!(
        session.handle_timeout(Duration::from_secs(15)),
        Some(Timer::Keepalive)
    );
    assert_eq!(session.poll_timeout(), Some(Duration::from_secs(30)));
    session.handle_peer_finished();
    assert_eq!(session.poll_timeout(), None);
    assert_eq!(session.handle_timeout(Duration::from_secs(60)), None);
    assert_eq!(session.into_ending(), Ending::Finished);
}
