//! The smallest transport that passes the suite, as a worked example
//! (`docs/writing-a-transport.md` walks through it): OTLP over an in-process channel. The exporter encodes each request
//! as protobuf and sends it with its signal; the receiver decodes it, hands it to its
//! service and sends the outcome back. Errors cross unchanged, since both ends are one
//! process; a network transport maps them to its wire's statuses and back instead.
//!
//! [`InProcess::broken`] is the same transport with a mistake a transport author could
//! make ([`Breakage`]); the suite must catch each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use otlp_core::{
    AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Logs, Metrics, SignalKind, Traces,
};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

use super::{BoxFuture, BoxedService, ReceiverSettings, Stop, Transport};

/// One message on the channel: the signal, the request's protobuf bytes, the exporter's
/// headers, and where the answer goes.
type Envelope = (
    SignalKind,
    Bytes,
    http::HeaderMap,
    oneshot::Sender<Result<ExportOutcome, ExportError>>,
);

/// Receivers listening, by endpoint name (`inproc://N`).
type Listeners = Arc<Mutex<HashMap<String, mpsc::Sender<Envelope>>>>;

/// OTLP over an in-process channel.
#[derive(Clone, Default)]
pub struct InProcess {
    listeners: Listeners,
    next: Arc<AtomicU64>,
    broken: Option<Breakage>,
}

/// Mistakes a transport's exporter can make, for showing that the suite catches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakage {
    /// Every failure is reported as permanent, so data a retry would have delivered is
    /// dropped.
    PermanentErrors,
    /// A partial success is reported as a full one: the peer's rejections are lost.
    DropsPartialSuccess,
}

/// How long a stop waits for the exports already sent to be answered.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

impl InProcess {
    /// The transport with `breakage` in its exporter.
    pub fn broken(breakage: Breakage) -> Self {
        Self {
            broken: Some(breakage),
            ..Self::default()
        }
    }
}

impl Transport for InProcess {
    fn name(&self) -> String {
        match self.broken {
            None => "in-process".to_string(),
            Some(breakage) => format!("in-process ({breakage:?})"),
        }
    }

    fn start_receiver(
        &self,
        service: BoxedService,
        settings: ReceiverSettings,
    ) -> BoxFuture<'_, Result<(String, Stop), String>> {
        Box::pin(async move {
            let endpoint = format!("inproc://{}", self.next.fetch_add(1, Ordering::Relaxed));
            // Bounded: a sender ahead of the receiver waits (backpressure).
            let (sender, mut receiver) = mpsc::channel::<Envelope>(16);
            let serving = tokio::spawn(async move {
                while let Some((signal, bytes, headers, answer)) = receiver.recv().await {
                    let outcome = match admit(&settings, signal, bytes, &headers) {
                        Ok(request) => service.clone().oneshot(request).await,
                        Err(error) => Err(error),
                    };
                    let _ = answer.send(outcome);
                }
            });
            lock(&self.listeners).insert(endpoint.clone(), sender);
            let listeners = self.listeners.clone();
            let name = endpoint.clone();
            let stop: Stop = Box::new(move || {
                Box::pin(async move {
                    // New exports find nobody; the ones already sent are answered (the loop
                    // ends when the last sender is gone), within a bound.
                    lock(&listeners).remove(&name);
                    let mut serving = serving;
                    if tokio::time::timeout(DRAIN, &mut serving).await.is_err() {
                        serving.abort();
                        let _ = serving.await;
                    }
                })
            });
            Ok((endpoint, stop))
        })
    }

    /// The example sends its bytes as they are: it has no compression.
    fn compressing_exporter(&self, _endpoint: &str) -> Result<Option<BoxedService>, String> {
        Ok(None)
    }

    fn exporter(&self, endpoint: &str, headers: &http::HeaderMap) -> Result<BoxedService, String> {
        let listeners = self.listeners.clone();
        let endpoint = endpoint.to_string();
        let headers = headers.clone();
        let broken = self.broken;
        Ok(BoxedService::new(tower::service_fn(
            move |request: AnyExportRequest| {
                let sender = lock(&listeners).get(&endpoint).cloned();
                let endpoint = endpoint.clone();
                let headers = headers.clone();
                async move {
                    let result = export(sender, &endpoint, request, headers).await;
                    match (broken, result) {
                        (Some(Breakage::PermanentErrors), Err(error)) => {
                            Err(ExportError::invalid_argument(error.to_string()))
                        }
                        (Some(Breakage::DropsPartialSuccess), Ok(outcome)) => Ok(
                            ExportOutcome::success(outcome.accepted() + outcome.rejected()),
                        ),
                        (_, other) => other,
                    }
                }
            },
        )))
    }
}

async fn export(
    sender: Option<mpsc::Sender<Envelope>>,
    endpoint: &str,
    request: AnyExportRequest,
    headers: http::HeaderMap,
) -> Result<ExportOutcome, ExportError> {
    // Nobody listening is what a refused connection is on a network: retryable.
    let gone = || ExportError::unavailable(format!("no receiver at {endpoint}"));
    let sender = sender.ok_or_else(gone)?;
    let (answer, answered) = oneshot::channel();
    let envelope = (request.signal(), to_protobuf(&request), headers, answer);
    sender.send(envelope).await.map_err(|_| gone())?;
    answered.await.map_err(|_| gone())?
}

/// What the receiver does before its service: the token, the limit, decoding, and the
/// metadata it forwards.
fn admit(
    settings: &ReceiverSettings,
    signal: SignalKind,
    bytes: Bytes,
    headers: &http::HeaderMap,
) -> Result<AnyExportRequest, ExportError> {
    if let Some(token) = &settings.bearer_token {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(token.as_str()) {
            return Err(ExportError::new(
                otlp_core::ErrorKind::Unauthenticated,
                "a bearer token is required",
            ));
        }
    }
    let limit = settings.max_request_bytes;
    if bytes.len() > limit {
        return Err(ExportError::too_large(format!(
            "a request of {} bytes exceeds the limit of {limit}",
            bytes.len()
        )));
    }
    let mut request = decode(signal, bytes)?;
    let forwarded = match &mut request {
        AnyExportRequest::Traces(r) => r.headers_mut(),
        AnyExportRequest::Metrics(r) => r.headers_mut(),
        AnyExportRequest::Logs(r) => r.headers_mut(),
    };
    for key in &settings.forward_headers {
        for value in headers.get_all(key) {
            forwarded.append(key.clone(), value.clone());
        }
    }
    Ok(request)
}

fn to_protobuf(request: &AnyExportRequest) -> Bytes {
    match request {
        AnyExportRequest::Traces(r) => r.to_protobuf(),
        AnyExportRequest::Metrics(r) => r.to_protobuf(),
        AnyExportRequest::Logs(r) => r.to_protobuf(),
    }
}

fn decode(signal: SignalKind, bytes: Bytes) -> Result<AnyExportRequest, ExportError> {
    Ok(match signal {
        SignalKind::Traces => ExportRequest::<Traces>::from_protobuf(bytes)?.into(),
        SignalKind::Metrics => ExportRequest::<Metrics>::from_protobuf(bytes)?.into(),
        SignalKind::Logs => ExportRequest::<Logs>::from_protobuf(bytes)?.into(),
    })
}

fn lock(
    listeners: &Listeners,
) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Envelope>>> {
    listeners
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
