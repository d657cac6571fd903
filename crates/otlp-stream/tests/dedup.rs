//! The receiving side's de-duplication through its public API: an id counts as seen only
//! once its batch was accepted, a resend of a batch in flight is refused retryably, and a
//! failed or abandoned original leaves no entry. The window is bounded in ids and bytes.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use otlp_core::{ExportError, ExportOutcome, GrpcCode};
use otlp_stream::{Admission, DedupWindow, IN_FLIGHT_RETRY_AFTER, MAX_BATCH_ID_BYTES, acknowledge};
use proptest::prelude::*;

/// Polls a future once, with a waker that does nothing.
fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Runs a future that is ready at once.
fn now<F: Future>(future: F) -> F::Output {
    match poll_once(pin!(future)) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("expected a ready future"),
    }
}

fn ok(items: usize) -> std::future::Ready<Result<ExportOutcome, ExportError>> {
    std::future::ready(Ok(ExportOutcome::success(items)))
}

#[test]
fn a_resend_while_the_original_is_in_flight_is_refused_retryably_and_then_processed() {
    let dedup = Mutex::new(DedupWindow::new(16));
    let id: &[u8] = b"0123456789abcdef";
    let (release, held) = std::sync::mpsc::channel::<Result<ExportOutcome, ExportError>>();
    // The original: admitted, then waiting for its service.
    // Polled by hand, it reads its verdict from the channel on each poll.
    let service = std::future::poll_fn(move |_| match held.try_recv() {
        Ok(result) => Poll::Ready(result),
        Err(_) => Poll::Pending,
    });
    let mut original = pin!(acknowledge(&dedup, 1, Some(id), 3, service));
    assert!(poll_once(original.as_mut()).is_pending());
    // The resend overtakes it: not acknowledged as delivered, and not processed.
    let mut polled = false;
    let (ack, duplicate) = now(acknowledge(&dedup, 1, Some(id), 3, async {
        polled = true;
        Ok(ExportOutcome::success(3))
    }));
    assert!(!polled && !duplicate);
    assert_eq!(ack.code, GrpcCode::Unavailable.as_i32(), "{ack:?}");
    assert_eq!(
        ack.retry_after_millis,
        IN_FLIGHT_RETRY_AFTER.as_millis() as u64
    );
    // The original fails: its id is not remembered, so the next resend is processed.
    release
        .send(Err(ExportError::unavailable("downstream down")))
        .expect("send");
    let Poll::Ready((ack, _)) = poll_once(original.as_mut()) else {
        panic!("the original finished");
    };
    assert_eq!(ack.code, GrpcCode::Unavailable.as_i32());
    let (ack, duplicate) = now(acknowledge(&dedup, 1, Some(id), 3, ok(3)));
    assert_eq!((ack.code, duplicate), (0, false));
    // Accepted now: a further resend is a duplicate and is not processed.
    let (ack, duplicate) = now(acknowledge(&dedup, 1, Some(id), 3, async {
        panic!("a duplicate is not processed")
    }));
    assert_eq!((ack.code, duplicate), (0, true));
}

#[test]
fn an_abandoned_original_leaves_no_entry() {
    let dedup = Mutex::new(DedupWindow::new(16));
    let id: &[u8] = b"batch";
    {
        let mut original = Box::pin(acknowledge(
            &dedup,
            1,
            Some(id),
            1,
            std::future::pending::<Result<ExportOutcome, ExportError>>(),
        ));
        assert!(poll_once(original.as_mut()).is_pending());
        // Dropped mid-way, as when its connection closes and its task is aborted.
    }
    let window = dedup.lock().expect("lock");
    assert_eq!((window.in_flight_len(), window.accepted_len()), (0, 0));
    assert_eq!(window.bytes(), 0);
    drop(window);
    let (ack, duplicate) = now(acknowledge(&dedup, 1, Some(id), 1, ok(1)));
    assert_eq!((ack.code, duplicate), (0, false));
}

#[test]
fn ids_longer_than_the_bound_are_refused_and_not_remembered() {
    let dedup = Mutex::new(DedupWindow::new(16));
    let long = vec![7u8; MAX_BATCH_ID_BYTES + 1];
    let (ack, _) = now(acknowledge(&dedup, 9, Some(&long), 1, async {
        panic!("not processed")
    }));
    assert_eq!(ack.sequence, 9);
    assert_eq!(ack.code, GrpcCode::InvalidArgument.as_i32());
    assert_eq!(dedup.lock().expect("lock").bytes(), 0);
}

proptest! {
    /// Whatever the sequence of admissions and outcomes, the window keeps its bounds and
    /// never calls an id a duplicate unless its batch was accepted.
    #[test]
    fn the_window_is_bounded_and_only_accepted_ids_are_duplicates(
        ops in proptest::collection::vec((0u8..40, 0usize..MAX_BATCH_ID_BYTES + 8, any::<bool>()), 1..300),
        capacity in 1usize..20,
        max_bytes in 0usize..4096,
    ) {
        let mut window = DedupWindow::with_max_bytes(capacity, max_bytes);
        let mut accepted_ever = std::collections::HashSet::new();
        for (key, len, accept) in ops {
            let id = vec![key; len];
            match window.admit(&id) {
                Admission::Fresh => {
                    if !id.is_empty() {
                        window.settle(&id, accept);
                        if accept {
                            accepted_ever.insert(id.clone());
                        }
                    }
                }
                Admission::Duplicate => prop_assert!(accepted_ever.contains(&id)),
                Admission::InFlight => prop_assert!(false, "nothing is left in flight here"),
                Admission::Invalid => prop_assert!(id.len() > MAX_BATCH_ID_BYTES),
            }
            prop_assert!(window.accepted_len() <= capacity);
            prop_assert!(window.bytes() <= max_bytes);
            prop_assert_eq!(window.in_flight_len(), 0);
        }
    }
}
