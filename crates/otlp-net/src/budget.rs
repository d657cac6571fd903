//! A memory budget shared by receivers and the pipeline behind them: a request's bytes
//! from the first one read (bodies, decompression, via [`Admission`]) to its decoded size,
//! held with the request ([`admit`]) while it is queued, batched, exported and retried,
//! across every connection, stream and transport that shares the budget. Per-request
//! limits bound one request; the budget bounds them all together, so a slow downstream or
//! a crowd of clients cannot make the process hold more than the budget.
//!
//! A request that does not fit now is refused at once with a retryable `Unavailable` error
//! and a one-second retry hint (gRPC UNAVAILABLE with RetryInfo, HTTP 503 with Retry-After, a
//! retryable stream acknowledgement), and counted: the client keeps the data and sends it
//! again, nothing is lost silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use otlp_core::{AnyExportRequest, ExportError};

/// How long a refused client is asked to wait before sending again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct State {
    limit: usize,
    in_use: AtomicUsize,
    refused: AtomicU64,
    peak: AtomicUsize,
}

/// A byte budget; clones share it.
///
/// ```
/// use otlp_net::budget::MemoryBudget;
/// let budget = MemoryBudget::new(1000);
/// let first = budget.reserve(600).unwrap();
/// assert!(budget.reserve(600).is_err()); // would pass the limit: refused, retryable
/// drop(first);
/// assert!(budget.reserve(600).is_ok());
/// assert_eq!(budget.refused(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    state: Arc<State>,
}

/// Bytes held against a budget until dropped.
#[derive(Debug)]
pub struct Reservation {
    state: Arc<State>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.state.in_use.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Reservation {
    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Makes the reservation hold at least `total` bytes (it never shrinks), or refuses as
    /// [`MemoryBudget::reserve`] does, keeping what it held.
    pub fn grow_to(&mut self, total: usize) -> Result<(), ExportError> {
        let Some(extra) = total.checked_sub(self.bytes).filter(|&extra| extra > 0) else {
            return Ok(());
        };
        let state = &self.state;
        if total > state.limit {
            state.refused.fetch_add(1, Ordering::Relaxed);
            // It could never fit: too large (413 / RESOURCE_EXHAUSTED), which senders of
            // this library answer by splitting the request.
            return Err(ExportError::too_large(format!(
                "this request needs about {total} bytes (as read, decompressed or decoded), \
                 more than the receiver's whole memory budget of {} bytes; send it in \
                 smaller parts",
                state.limit
            )));
        }
        let mut current = state.in_use.load(Ordering::Acquire);
        loop {
            let wanted = current.saturating_add(extra);
            if wanted > state.limit {
                state.refused.fetch_add(1, Ordering::Relaxed);
                return Err(ExportError::unavailable(format!(
                    "the receiver is holding {current} bytes of requests and its memory budget \
                     is {} bytes; this request ({total} bytes) must wait",
                    state.limit
                ))
                .with_retry_after(RETRY_AFTER));
            }
            match state.in_use.compare_exchange_weak(
                current,
                wanted,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    state.peak.fetch_max(wanted, Ordering::Relaxed);
                    self.bytes = total;
                    return Ok(());
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// The reservation of one request on its way in: it grows as the body arrives and is
/// decompressed ([`Admission::cover`]), then becomes the request's own ([`Admission::admit`]),
/// so the bytes are counted from the first one read until the data leaves the process.
/// Without a budget it does nothing.
///
/// ```
/// use otlp_core::{AnyExportRequest, ExportRequest, Traces};
/// use otlp_net::budget::{Admission, MemoryBudget};
/// let budget = MemoryBudget::new(1 << 20);
/// let mut intake = Admission::new(Some(&budget));
/// intake.cover(4096).unwrap(); // the body so far
/// assert_eq!(budget.in_use(), 4096);
/// let request = AnyExportRequest::from(ExportRequest::<Traces>::new(
///     otlp_testkit::realistic::traces(10, 1),
/// ));
/// let admitted = intake.admit(request).unwrap();
/// assert!(budget.in_use() >= admitted.decoded_size_estimate());
/// drop(admitted);
/// assert_eq!(budget.in_use(), 0);
/// ```
#[derive(Debug, Default)]
pub struct Admission {
    budget: Option<MemoryBudget>,
    held: Option<Reservation>,
}

impl Admission {
    /// An empty reservation against `budget` (none: nothing is counted).
    pub fn new(budget: Option<&MemoryBudget>) -> Self {
        Self {
            budget: budget.cloned(),
            held: None,
        }
    }

    /// Makes the reservation cover `bytes` in total (it never shrinks); refused as
    /// [`MemoryBudget::reserve`] refuses.
    pub fn cover(&mut self, bytes: usize) -> Result<(), ExportError> {
        match (&mut self.held, &self.budget) {
            (Some(held), _) => held.grow_to(bytes),
            (None, Some(budget)) => {
                self.held = Some(budget.reserve(bytes)?);
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    /// Grows the reservation to the request's decoded-size estimate and attaches it to the
    /// request (see [`admit`]).
    pub fn admit(mut self, request: AnyExportRequest) -> Result<AnyExportRequest, ExportError> {
        self.cover(request.decoded_size_estimate())?;
        Ok(match self.held {
            Some(held) => request.hold(held),
            None => request,
        })
    }
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            state: Arc::new(State {
                limit,
                in_use: AtomicUsize::new(0),
                refused: AtomicU64::new(0),
                peak: AtomicUsize::new(0),
            }),
        }
    }

    /// Holds `bytes` until the reservation is dropped, or refuses (and counts the refusal)
    /// when they would take the budget past its limit: retryably with a hint while it is
    /// only full, as too large when `bytes` exceed the whole limit (it could never fit).
    pub fn reserve(&self, bytes: usize) -> Result<Reservation, ExportError> {
        let mut reservation = Reservation {
            state: self.state.clone(),
            bytes: 0,
        };
        reservation.grow_to(bytes)?;
        Ok(reservation)
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> usize {
        self.state.limit
    }

    /// Bytes held now.
    pub fn in_use(&self) -> usize {
        self.state.in_use.load(Ordering::Acquire)
    }

    /// The most bytes ever held at once.
    pub fn peak(&self) -> usize {
        self.state.peak.load(Ordering::Relaxed)
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::Relaxed)
    }
}

/// Admits a request against `budget`: reserves what it will take once decoded
/// ([`AnyExportRequest::decoded_size_estimate`]) and attaches the reservation to the
/// request, so the bytes stay counted while the request, its clones and the batches made
/// from it are queued, batched, exported or waiting to be retried, and are released when
/// the last of them is gone. Without a budget the request passes unchanged.
///
/// ```
/// use otlp_core::{AnyExportRequest, ExportRequest, Traces};
/// use otlp_net::budget::{MemoryBudget, admit};
/// let budget = MemoryBudget::new(1 << 20);
/// let request = AnyExportRequest::from(ExportRequest::<Traces>::new(
///     otlp_testkit::realistic::traces(10, 1),
/// ));
/// let admitted = admit(Some(&budget), request).unwrap();
/// assert!(budget.in_use() >= admitted.decoded_size_estimate());
/// drop(admitted);
/// assert_eq!(budget.in_use(), 0);
/// ```
pub fn admit(
    budget: Option<&MemoryBudget>,
    request: AnyExportRequest,
) -> Result<AnyExportRequest, ExportError> {
    Admission::new(budget).admit(request)
}

/// Reserves `bytes` from `budget` if there is one (receivers without a budget hold what
/// their per-request limits allow).
pub fn reserve(
    budget: Option<&MemoryBudget>,
    bytes: usize,
) -> Result<Option<Reservation>, ExportError> {
    budget.map(|b| b.reserve(bytes)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp_core::RetryClass;
    use proptest::prelude::*;

    #[test]
    fn refusals_are_retryable_with_a_hint_and_counted() {
        let budget = MemoryBudget::new(100);
        let held = budget.reserve(100).expect("fits exactly");
        let error = budget.reserve(1).expect_err("full");
        assert_eq!(error.retry_class(), RetryClass::Throttled(RETRY_AFTER));
        assert_eq!(budget.refused(), 1);
        assert_eq!(budget.in_use(), 100);
        drop(held);
        assert_eq!(budget.in_use(), 0);
        assert!(MemoryBudget::new(10).reserve(11).is_err());
        assert!(reserve(None, usize::MAX).expect("no budget").is_none());
    }

    proptest! {
        /// Whatever the order of reservations and releases, what is held never passes the
        /// limit and returns to zero when everything is released.
        #[test]
        fn the_limit_holds_under_any_sequence(
            limit in 1usize..10_000,
            steps in proptest::collection::vec((any::<bool>(), 0usize..4_000), 0..200),
        ) {
            let budget = MemoryBudget::new(limit);
            let mut held = Vec::new();
            let mut expected = 0usize;
            for (release, bytes) in steps {
                if release && !held.is_empty() {
                    let reservation: Reservation = held.swap_remove(bytes % held.len());
                    expected -= reservation.bytes();
                } else if let Ok(reservation) = budget.reserve(bytes) {
                    expected += bytes;
                    held.push(reservation);
                } else {
                    prop_assert!(expected + bytes > limit);
                }
                prop_assert_eq!(budget.in_use(), expected);
                prop_assert!(budget.in_use() <= limit);
                prop_assert!(budget.peak() <= limit);
            }
            held.clear();
            prop_assert_eq!(budget.in_use(), 0);
        }
    }

    #[test]
    fn concurrent_reservations_never_pass_the_limit() {
        let budget = MemoryBudget::new(1_000);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for i in 0..10_000 {
                        if let Ok(r) = budget.reserve(1 + i % 300) {
                            assert!(budget.in_use() <= 1_000);
                            drop(r);
                        }
                    }
                });
            }
        });
        assert_eq!(budget.in_use(), 0);
        assert!(budget.peak() <= 1_000);
    }
}
