//! The response of the one export shape: how many items were accepted and rejected.

use otlp_model::SignalResponse;

/// The outcome of an export that the peer answered with success: every item accepted, or
/// some rejected (OTLP partial success). A failed export is an
/// [`ExportError`](crate::ExportError) instead.
///
/// Rejected items are final: OTLP forbids retrying a partial success, so policies count
/// them as dropped.
///
/// ```
/// use otlp_core::ExportOutcome;
/// use otlp_model::collector::trace::ExportTraceServiceResponse;
///
/// let outcome = ExportOutcome::partial(10, 2, "two spans had invalid ids");
/// assert_eq!(outcome.accepted(), 8);
/// let response: ExportTraceServiceResponse = outcome.to_response();
/// assert_eq!(response.partial_success.unwrap().rejected_spans, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportOutcome {
    items: usize,
    rejected: usize,
    message: String,
}

impl ExportOutcome {
    /// All `items` accepted.
    pub fn success(items: usize) -> Self {
        Self {
            items,
            rejected: 0,
            message: String::new(),
        }
    }

    /// `rejected` of `items` refused (capped at `items`), with the reason. With
    /// `rejected == 0` and a message, this is a success with a warning.
    pub fn partial(items: usize, rejected: usize, message: impl Into<String>) -> Self {
        Self {
            items,
            rejected: rejected.min(items),
            message: message.into(),
        }
    }

    /// The outcome a peer's response reports for a request of `items` items. A negative
    /// or excessive rejected count from the peer is clamped into `0..=items`.
    pub fn from_response<R: SignalResponse>(items: usize, response: &R) -> Self {
        let rejected = usize::try_from(response.rejected().max(0)).unwrap_or(usize::MAX);
        Self::partial(items, rejected, response.error_message())
    }

    /// The response message a receiver sends for this outcome: no `partial_success` when
    /// everything was accepted without a message, as the specification requires.
    pub fn to_response<R: SignalResponse>(&self) -> R {
        R::with_partial_success(
            i64::try_from(self.rejected).unwrap_or(i64::MAX),
            self.message.clone(),
        )
    }

    /// Items in the request.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Items accepted.
    pub fn accepted(&self) -> usize {
        self.items - self.rejected
    }

    /// Items refused.
    pub fn rejected(&self) -> usize {
        self.rejected
    }

    /// The peer's message: the reason for rejections, or a warning; empty if none.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether every item was accepted.
    pub fn is_full_success(&self) -> bool {
        self.rejected == 0
    }
}
