//! The too-large checks: a request over the receiver's limit is refused as too large
//! before the service, and, split as the retry layer splits it, arrives exactly once.

use std::sync::{Arc, Mutex};

use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Traces};

use super::{BoxFuture, BoxedService, ReceiverSettings, Transport, counting_service, exchange};
use crate::realistic;

/// What the service saw of each request: its size and its span ids.
type Seen = Arc<Mutex<Vec<(usize, Vec<bytes::Bytes>)>>>;

/// The receiver's limit in these checks.
const LIMIT: usize = 64 << 10;

/// A request about three times a 64 KiB limit: refused before the service, as too large
/// (`ErrorKind::TooLarge`, permanent as it is, which the retry layer answers by splitting).
pub(super) async fn refused(transport: &dyn Transport) -> Result<(), String> {
    let (service, reached) = counting_service();
    let (endpoint, stop) = transport
        .start_receiver(service, ReceiverSettings::limited(LIMIT))
        .await?;
    let exporter = transport.exporter(&endpoint, &http::HeaderMap::new())?;
    let request: AnyExportRequest = ExportRequest::<Traces>::new(realistic::traces(400, 21)).into();
    let size = request.encoded_len();
    if size < 2 * LIMIT {
        stop().await;
        return Err(format!("the suite's large request is only {size} bytes"));
    }
    let result = exchange(exporter, request).await;
    stop().await;
    let reached = reached.load(std::sync::atomic::Ordering::SeqCst);
    if reached != 0 {
        return Err(format!(
            "a request of {size} bytes reached the service over a {LIMIT}-byte limit"
        ));
    }
    match result? {
        Err(error) if error.kind() == otlp_core::ErrorKind::TooLarge => Ok(()),
        other => Err(format!(
            "expected a too-large refusal of {size} bytes, got {other:?}"
        )),
    }
}

/// The request of [`refused`] sent the way the retry layer sends one refused as too large
/// (`otlp_reliability`'s retry: halves, each split again while refused): the service sees
/// every span once, never a request over the limit, and the parts' outcomes add up.
pub(super) async fn split_and_resent(transport: &dyn Transport) -> Result<(), String> {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let service = BoxedService::new(tower::service_fn(move |request: AnyExportRequest| {
        let items = request.item_count();
        let ids = match &request {
            AnyExportRequest::Traces(traces) => span_ids(traces),
            _ => Vec::new(),
        };
        if let Ok(mut seen) = record.lock() {
            seen.push((request.encoded_len(), ids));
        }
        async move { Ok::<_, ExportError>(ExportOutcome::success(items)) }
    }));
    let (endpoint, stop) = transport
        .start_receiver(service, ReceiverSettings::limited(LIMIT))
        .await?;
    let exporter = transport.exporter(&endpoint, &http::HeaderMap::new())?;
    let request = ExportRequest::<Traces>::new(realistic::traces(400, 23));
    let mut sent = span_ids(&request);
    let accepted = send_splitting(exporter, request).await;
    stop().await;
    let accepted = accepted?;
    if accepted != sent.len() {
        return Err(format!(
            "the parts' outcomes accept {accepted} of {} spans",
            sent.len()
        ));
    }
    let seen = seen
        .lock()
        .map_err(|_| "the recording lock is poisoned".to_string())?;
    if let Some((size, _)) = seen.iter().find(|(size, _)| *size > LIMIT) {
        return Err(format!(
            "a request of {size} bytes reached the service over a {LIMIT}-byte limit"
        ));
    }
    if seen.len() < 2 {
        return Err(format!(
            "the service saw {} requests, not parts",
            seen.len()
        ));
    }
    let mut arrived: Vec<bytes::Bytes> = seen.iter().flat_map(|(_, ids)| ids.clone()).collect();
    sent.sort();
    arrived.sort();
    if arrived != sent {
        return Err(format!(
            "{} spans arrived for {} sent, not each once",
            arrived.len(),
            sent.len()
        ));
    }
    Ok(())
}

/// Exports `request`; refused as too large, exports its halves the same way. Returns the
/// spans accepted.
fn send_splitting(
    exporter: BoxedService,
    request: ExportRequest<Traces>,
) -> BoxFuture<'static, Result<usize, String>> {
    Box::pin(async move {
        let items = request.item_count();
        match exchange(exporter.clone(), request.clone().into()).await? {
            Ok(outcome) => Ok(outcome.accepted()),
            Err(error) if error.kind() == otlp_core::ErrorKind::TooLarge && items > 1 => {
                let halves = request
                    .split(items.div_ceil(2))
                    .map_err(|e| format!("splitting {items} spans: {e}"))?;
                let mut accepted = 0;
                for half in halves {
                    accepted += send_splitting(exporter.clone(), half).await?;
                }
                Ok(accepted)
            }
            Err(error) => Err(format!("a part of {items} spans failed: {error}")),
        }
    })
}

/// The span ids of a traces request, in order.
fn span_ids(request: &ExportRequest<Traces>) -> Vec<bytes::Bytes> {
    let Ok(message) = request.message() else {
        return Vec::new();
    };
    message
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans)
        .map(|span| span.span_id.clone())
        .collect()
}
