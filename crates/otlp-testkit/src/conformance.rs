//! A behavioural suite for transports: driven by a [`Transport`] (how to start the
//! transport's receiver in front of a service, and how to build its exporter), it checks
//! what every OTLP transport of this workspace must do the same way, over whatever the
//! transport uses (real sockets on loopback for ours), and reports each check by name.
//!
//! Checks: every signal round-trips exactly; partial success reaches the client; a
//! throttled refusal keeps its class and its hint (or, for an exporter that resends by
//! itself, nothing is resent before the hint); a transient failure stays retryable and a
//! permanent one permanent; a receiver that is gone is a retryable failure, in bounded
//! time; an empty request is accepted; concurrent exports over one exporter each get their
//! own answer; a stop lets an export in flight finish with its answer; a request over the
//! receiver's limit is refused as too large (not retried as it is: the retry layer splits
//! it), and the service never sees it; split into halves as the retry layer splits it (and
//! again while a half is refused), every item arrives exactly once, in requests within the
//! limit; every row of the bad-input table ([`bad_input::bad_inputs`]: malformed
//! protobuf) is refused as invalid before the service, and the receiver goes on serving; a
//! compressed request arrives intact; a receiver that accepts no compression gets
//! the request uncompressed, either negotiated by the binding or after the exporter reports
//! the refused encoding (`UnsupportedMediaType`, which the retry layer answers by resending
//! uncompressed); a receiver that requires a bearer token refuses an
//! exporter without it as unauthenticated (permanent) before the service, and serves one
//! with it; the headers a receiver forwards reach the service with every request (every
//! batch of a stream), and no other header does.
//!
//! ```
//! use otlp_testkit::conformance::{self, in_process::InProcess};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let report = conformance::run(&InProcess::default()).await;
//! report.assert_passed();
//! # });
//! ```

pub mod bad_input;
mod compression;
pub mod in_process;
mod too_large;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otlp_core::{
    AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Logs, Metrics, RetryClass, Traces,
};
use tower::ServiceExt;

use crate::realistic;

/// Any export service, boxed: what a receiver under test is given and what an exporter
/// under test is.
pub type BoxedService =
    tower::util::BoxCloneSyncService<AnyExportRequest, ExportOutcome, ExportError>;

/// A boxed future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Stops a receiver under test: exports in flight are answered (drained), then its
/// connections are closed and its port released.
pub type Stop = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// The loopback address with a port the system picks: where the suite's receivers bind.
pub const LOOPBACK: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

/// What [`Transport::start_receiver`] returns for a receiver reached at `endpoint` and
/// stopped by awaiting `stop`.
pub fn started(
    endpoint: String,
    stop: impl Future<Output = ()> + Send + 'static,
) -> (String, Stop) {
    (endpoint, Box::new(move || Box::pin(stop)))
}

/// The transport under test.
pub trait Transport: Send + Sync {
    /// A short name for reports (`grpc`, `http/json`, ...).
    fn name(&self) -> String;

    /// Starts a receiver (on loopback, for a network transport) that hands every request
    /// to `service`, set up as `settings` say (its limit, authentication and the metadata
    /// it forwards); returns the endpoint an exporter reaches it at, and how to stop it.
    fn start_receiver(
        &self,
        service: BoxedService,
        settings: ReceiverSettings,
    ) -> BoxFuture<'_, Result<(String, Stop), String>>;

    /// An exporter to `endpoint` that sends `headers` with every request (for a stream
    /// binding: with its handshake or call).
    fn exporter(&self, endpoint: &str, headers: &http::HeaderMap) -> Result<BoxedService, String>;

    /// An exporter to `endpoint` that compresses what it sends with gzip (as the
    /// transport compresses: a `grpc-encoding`, a `Content-Encoding`, a subprotocol), or
    /// `None` for a transport that has no compression (the compression checks then have
    /// nothing to check).
    fn compressing_exporter(&self, endpoint: &str) -> Result<Option<BoxedService>, String>;

    /// Whether the exporter resends a batch refused retryably by itself (a stream
    /// exporter does, after the peer's hint), so that the caller sees only the end of the
    /// call, not the refusal. The suite then checks that it does resend, and never before
    /// the hint; its calls should end within a few seconds for that.
    fn resends_itself(&self) -> bool {
        false
    }
}

/// How the suite sets up a receiver under test.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    /// Refuse, as too large, any request over this many bytes (as sent, and after
    /// decompression); the service never sees it.
    pub max_request_bytes: usize,
    /// Require `Authorization: Bearer <token>` on every request (on the handshake or call,
    /// for a stream binding): without it, refuse as unauthenticated before the service.
    /// `None`: no authentication.
    pub bearer_token: Option<String>,
    /// Request headers handed to the service with each request (its metadata); no other
    /// header is.
    pub forward_headers: Vec<http::HeaderName>,
    /// Accept compressed requests (the transport's usual algorithms, gzip among them);
    /// `false`: accept only uncompressed ones, refusing others as the protocol says.
    pub accept_compression: bool,
}

impl ReceiverSettings {
    /// A receiver with `max_request_bytes` as its limit, no authentication, and no
    /// metadata forwarded.
    pub fn limited(max_request_bytes: usize) -> Self {
        Self {
            max_request_bytes,
            bearer_token: None,
            forward_headers: Vec::new(),
            accept_compression: true,
        }
    }
}

/// What a suite run found, check by check.
#[derive(Debug)]
pub struct Report {
    /// The transport's name.
    pub transport: String,
    /// Each check's name and outcome.
    pub checks: Vec<(&'static str, Result<(), String>)>,
}

impl Report {
    /// The checks that failed, with why.
    pub fn failures(&self) -> Vec<(&'static str, &str)> {
        self.checks
            .iter()
            .filter_map(|(name, result)| result.as_ref().err().map(|why| (*name, why.as_str())))
            .collect()
    }

    /// Panics, listing every failed check, unless all passed.
    pub fn assert_passed(&self) {
        let failures = self.failures();
        assert!(
            failures.is_empty(),
            "{} fails the conformance suite:\n{}",
            self.transport,
            failures
                .iter()
                .map(|(name, why)| format!("- {name}: {why}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// The request limit of the suite's receivers, far above its requests but the one that
/// "a request over the limit" exceeds.
pub(crate) const MAX_REQUEST: usize = 4 << 20;

/// Longest any single exchange of the suite may take.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(15);

/// The throttling hint the suite's receivers answer with: whole seconds, which every
/// transport can carry (HTTP's `Retry-After` has no finer unit).
const HINT: Duration = Duration::from_secs(2);

/// Runs every check against `transport`.
pub async fn run(transport: &dyn Transport) -> Report {
    let mut checks = Vec::new();
    checks.push((
        "every signal round-trips exactly",
        round_trips(transport).await,
    ));
    checks.push((
        "partial success reaches the client",
        answered_with(
            transport,
            || Ok(ExportOutcome::partial(40, 3, "three refused")),
            |result| match result {
                Ok(outcome)
                    if outcome.accepted() == 37
                        && outcome.rejected() == 3
                        && outcome.message().contains("three refused") =>
                {
                    Ok(())
                }
                other => Err(format!(
                    "expected 37 accepted, 3 rejected and the message, got {other:?}"
                )),
            },
        )
        .await,
    ));
    checks.push((
        "a throttled refusal keeps its class and its hint",
        throttled(transport).await,
    ));
    checks.push((
        "a transient failure stays retryable",
        answered_with(
            transport,
            || Err(ExportError::unavailable("restarting")),
            |result| match result {
                Err(error) if error.is_retryable() => Ok(()),
                other => Err(format!("expected a retryable error, got {other:?}")),
            },
        )
        .await,
    ));
    checks.push((
        "a permanent failure stays permanent",
        answered_with(
            transport,
            || Err(ExportError::invalid_argument("malformed")),
            |result| match result {
                Err(error) if error.retry_class() == RetryClass::Permanent => Ok(()),
                other => Err(format!("expected a permanent error, got {other:?}")),
            },
        )
        .await,
    ));
    checks.push((
        "a receiver that is gone is a retryable failure",
        receiver_gone(transport).await,
    ));
    checks.push(("an empty request is accepted", empty(transport).await));
    checks.push((
        "concurrent exports each get their own answer",
        concurrent(transport).await,
    ));
    checks.push((
        "a stop lets an export in flight finish",
        drain(transport).await,
    ));
    checks.push((
        "a request over the receiver's limit is refused as too large",
        too_large::refused(transport).await,
    ));
    checks.push((
        "a request refused as too large arrives exactly once as the parts a split makes",
        too_large::split_and_resent(transport).await,
    ));
    checks.push((
        "malformed protobuf is refused as invalid before the service, and serving goes on",
        bad_input::refused(transport).await,
    ));
    checks.push((
        "a compressed request arrives intact",
        compression::arrives_intact(transport).await,
    ));
    checks.push((
        "a receiver that refuses the exporter's compression gets the request uncompressed",
        compression::refused(transport).await,
    ));
    checks.push((
        "a receiver that requires a token refuses an exporter without it",
        authentication(transport).await,
    ));
    checks.push((
        "the metadata the receiver forwards reaches the service, and no other header",
        metadata(transport).await,
    ));
    Report {
        transport: transport.name(),
        checks,
    }
}

fn requests() -> [AnyExportRequest; 3] {
    [
        ExportRequest::<Traces>::new(realistic::traces(40, 11)).into(),
        ExportRequest::<Metrics>::new(realistic::metrics(40, 12)).into(),
        ExportRequest::<Logs>::new(realistic::logs(40, 13)).into(),
    ]
}

/// A service that accepts every request, and the count of the requests that reached it.
pub(crate) fn counting_service() -> (BoxedService, Arc<std::sync::atomic::AtomicUsize>) {
    let reached: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
    let record = reached.clone();
    let service = BoxedService::new(tower::service_fn(move |request: AnyExportRequest| {
        record.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Ok::<_, ExportError>(ExportOutcome::success(request.item_count())) }
    }));
    (service, reached)
}

/// The requests a service that accepts every request saw, in order.
pub(crate) type Seen = Arc<Mutex<Vec<AnyExportRequest>>>;

/// A service that accepts every request and records it.
pub(crate) fn recording_service() -> (BoxedService, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let service = BoxedService::new(tower::service_fn(move |request: AnyExportRequest| {
        let items = request.item_count();
        if let Ok(mut seen) = record.lock() {
            seen.push(request);
        }
        async move { Ok::<_, ExportError>(ExportOutcome::success(items)) }
    }));
    (service, seen)
}

/// One export; an export that does not end within [`EXCHANGE_DEADLINE`] fails the check.
pub(crate) async fn exchange(
    exporter: BoxedService,
    request: AnyExportRequest,
) -> Result<Result<ExportOutcome, ExportError>, String> {
    tokio::time::timeout(EXCHANGE_DEADLINE, exporter.oneshot(request))
        .await
        .map_err(|_| format!("the export did not end within {EXCHANGE_DEADLINE:?}"))
}

async fn round_trips(transport: &dyn Transport) -> Result<(), String> {
    let (service, seen) = recording_service();
    let (endpoint, stop) = transport
        .start_receiver(service, ReceiverSettings::limited(MAX_REQUEST))
        .await?;
    let exporter = transport.exporter(&endpoint, &http::HeaderMap::new())?;
    let mut result = Ok(());
    for request in requests() {
        let sent = request.clone();
        match exchange(exporter.clone(), request).await {
            Ok(Ok(outcome)) if outcome.accepted() == sent.item_count() => {}
            other => {
                result = Err(format!("{}: {other:?}", sent.signal()));
                break;
            }
        }
    }
    stop().await;
    result?;
    let seen = seen
        .lock()
        .map_err(|_| "the recording lock is poisoned".to_string())?;
    let sent = requests();
    if seen.len() != sent.len() {
        return Err(format!(
            "{} requests arrived, {} sent",
            seen.len(),
            sent.len()
        ));
    }
    for (got, want) in seen.iter().zip(&sent) {
        if !same_message(got, want)? {
            return Err(format!("the {} request arrived changed", want.signal()));
        }
    }
    Ok(())
}

fn same_message(a: &AnyExportRequest, b: &AnyExportRequest) -> Result<bool, String> {
    let text = |e: ExportError| e.to_string();
    Ok(match (a, b) {
        (AnyExportRequest::Traces(a), AnyExportRequest::Traces(b)) => {
            a.message().map_err(text)? == b.message().map_err(text)?
        }
        (AnyExportRequest::Metrics(a), AnyExportRequest::Metrics(b)) => {
            a.message().map_err(text)? == b.message().map_err(text)?
        }
        (AnyExportRequest::Logs(a), AnyExportRequest::Logs(b)) => {
            a.message().map_err(text)? == b.message().map_err(text)?
        }
        _ => false,
    })
}

/// One traces export to a receiver whose service answers `answer()`, judged by `judge`.
async fn answered_with(
    transport: &dyn Transport,
    answer: fn() -> Result<ExportOutcome, ExportError>,
    judge: impl FnOnce(&Result<ExportOutcome, ExportError>) -> Result<(), String>,
) -> Result<(), String> {
    let service = BoxedService::new(tower::service_fn(move |_: AnyExportRequest| async move {
        answer()
    }));
    let (endpoint, stop) = transport
        .start_receiver(service, ReceiverSettings::limited(MAX_REQUEST))
        .await?;
    let exporter = transport.exporter(&endpoint, &http::HeaderMap::new())?;
    let [traces, ..] = requests();
    let result = exchange(exporter, traces).await;
    stop().await;
    judge(&result?)
}

async fn throttled(transport: &dyn Transport) -> Result<(), String> {
    let calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let record = calls.clone();
    let service = BoxedService::new(tower::service_fn(move |_: AnyExportRequest| {
        if let Ok(mut calls) = record.lock() {
            calls.push(Instant::now());
        }
        async { Err::<ExportOutcome, _>(ExportError::unavailable("busy").with_retry_after(HINT)) }
    }));
    let (endpoint, stop) = transport
        .start_receiver(service, ReceiverSettings::limited(MAX_REQUEST))
        .await?;
    let exporter = transport.exporter(&endpoint, &http::HeaderMap::new())?;
    let [traces, ..] = requests();
    let result = exchange(exporter, traces).await;
    stop().await;
    let result = result?;
    let calls = calls
        .lock()
        .map_err(|_| "the recording lock is poisoned".to_string())?;
    if !transport.resends_itself() {
        return match result {
            Err(error) if error.retry_class() == RetryClass::Throttled(HINT) => Ok(()),
            other => Err(format!("expected Throttled({HINT:?}), got {other:?}")),
        };
    }
    // It must resend (the refusal was retryable), and not before the hint: timers may
    // fire a little early, a resend well before the hint ignored it.
    if calls.len() < 2 {
        return Err(format!(
            "the refused batch was not resent within {EXCHANGE_DEADLINE:?} ({} call)",
            calls.len()
        ));
    }
    let early = HINT.mul_f64(0.9);
    if let Some(gap) = calls
        .windows(2)
        .map(|pair| pair[1].duration_since(pair[0]))
        .find(|gap| *gap < early)
    {
        return Err(format!(
            "resent {gap:?} after a refusal that asked for {HINT:?}"
        ));
    }
    match result {
        Err(error) if error.is_retryable() => Ok(()),
        other => Err(format!(
            "expected a retryable end of the call, got {other:?}"
        )),
    }
}

async fn receiver_gone(transport: &dyn Transport) -> Result<(), String> {
    let service = BoxedService::new(tower::service_fn(|request: AnyExportRequest| async move {
        Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
    }));
    let (endpoint, stop) = transport
        .start_receiver(service, ReceiverSettings::limited(MAX_REQUEST))
        .await?;
    stop().await;
    let exporter = transport.exporter(&endpoint, &http::HeaderMap::new())?;
    let [traces, ..] = requests();
    match exchange(exporter, traces).await? {
        Err(error) if error.is_retryable() => Ok(()),
        other => Err(format!("expected a retryable error, got {other:?}")),
    }
}

/// A request without items (OTLP allows it; the answer is a plain success).
async fn empty(transport: &dyn Transport) -> Result<(), String> {
    let service = BoxedService::new(tower::service_fn(|request: AnyExportRequest| async move {
        Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
    }));
    let (endpoint, stop) = transport
        .start_receiver(service, ReceiverSettings::limited(MAX_REQUEST))
        .await?;
    let exporter = transport.exporter(&endpoint, &http::HeaderMap::new())?;
    let request = ExportRequest::<Traces>::new(Default::default()).into();
    let result = exchange(exporter, request).await;
    stop().await;
    match result? {
        Ok(outcome) if outcome.accepted() == 0 && outcome.rejected() == 0 => Ok(()),
        other => Err(format!("expected a success of no items, got {other:?}")),
    }
}

/// Exports in flight at once over one exporter (clones of it).
const CONCURRENT: usize = 16;

/// `CONCURRENT` exports of 1, 2, ... spans at once, answered by a service that takes a
/// moment, so that they overlap: each must arrive once and get the answer for its own
/// items (a transport that mixes up responses, or serialises and drops, fails).
async fn concurrent(transport: &dyn Transport) -> Result<(), String> {
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let record = seen.clone();
    let service = BoxedService::new(tower::service_fn(move |request: AnyExportRequest| {
        let items = request.item_count();
        if let Ok(mut seen) = record.lock() {
            seen.push(items);
        }
        async move {
            // Answer late and in reverse order of size, so that answers overtake requests.
            tokio::time::sleep(Duration::from_millis(
                5 * (CONCURRENT - items.min(CONCURRENT)) as u64,
            ))
            .await;
            Ok::<_, ExportError>(ExportOutcome::success(items))
        }
    }));
    let (endpoint, stop) = transport
        .start_receiver(service, ReceiverSettings::limited(MAX_REQUEST))
        .await?;
    let exporter = transport.exporter(&endpoint, &http::HeaderMap::new())?;
    let exports = (1..=CONCURRENT).map(|spans| {
        let request = ExportRequest::<Traces>::new(realistic::traces(spans, spans as u64)).into();
        let exporter = exporter.clone();
        async move { (spans, exchange(exporter, request).await) }
    });
    let results = futures_util::future::join_all(exports).await;
    stop().await;
    for (spans, result) in results {
        match result? {
            Ok(outcome) if outcome.accepted() == spans => {}
            other => return Err(format!("the export of {spans} spans got {other:?}")),
        }
    }
    let mut seen = seen
        .lock()
        .map_err(|_| "the recording lock is poisoned".to_string())?
        .clone();
    seen.sort_unstable();
    if seen != (1..=CONCURRENT).collect::<Vec<_>>() {
        return Err(format!("the receiver's service saw {seen:?}"));
    }
    Ok(())
}

/// An export whose service is still working when the receiver is told to stop: the stop
/// must wait for it (drain), and the client must get the service's answer, not a cut
/// connection; and the stop must end.
async fn drain(transport: &dyn Transport) -> Result<(), String> {
    let (entered, service_entered) = tokio::sync::oneshot::channel::<()>();
    let entered = Arc::new(Mutex::new(Some(entered)));
    let service = BoxedService::new(tower::service_fn(move |request: AnyExportRequest| {
        if let Some(entered) = entered.lock().ok().and_then(|mut e| e.take()) {
            let _ = entered.send(());
        }
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
        }
    }));
    let (endpoint, stop) = transport
        .start_receiver(service, ReceiverSettings::limited(MAX_REQUEST))
        .await?;
    let exporter = transport.exporter(&endpoint, &http::HeaderMap::new())?;
    let [traces, ..] = requests();
    let items = traces.item_count();
    let export = tokio::spawn(exchange(exporter, traces));
    if tokio::time::timeout(EXCHANGE_DEADLINE, service_entered)
        .await
        .is_err()
    {
        stop().await;
        return Err("the export never reached the service".into());
    }
    let (stopped, exported) = tokio::join!(tokio::time::timeout(EXCHANGE_DEADLINE, stop()), export);
    let exported = exported.map_err(|e| format!("the export task failed: {e}"))?;
    if stopped.is_err() {
        return Err(format!("the stop did not end within {EXCHANGE_DEADLINE:?}"));
    }
    match exported? {
        Ok(outcome) if outcome.accepted() == items => Ok(()),
        other => Err(format!(
            "expected the service's success for {items} items, got {other:?}"
        )),
    }
}

/// The token of the suite's authenticating receivers.
const TOKEN: &str = "conformance-token";

/// A receiver requiring a bearer token: an exporter without it is refused as
/// unauthenticated (permanent: resending cannot fix it) before the service; one with it is
/// served.
async fn authentication(transport: &dyn Transport) -> Result<(), String> {
    let (service, reached) = counting_service();
    let settings = ReceiverSettings {
        bearer_token: Some(TOKEN.to_string()),
        ..ReceiverSettings::limited(MAX_REQUEST)
    };
    let (endpoint, stop) = transport.start_receiver(service, settings).await?;
    let [traces, ..] = requests();
    let items = traces.item_count();
    let anonymous = match transport.exporter(&endpoint, &http::HeaderMap::new()) {
        Ok(exporter) => exchange(exporter, traces.clone()).await,
        Err(error) => Err(error),
    };
    let mut headers = http::HeaderMap::new();
    let bearer = http::HeaderValue::from_str(&format!("Bearer {TOKEN}"))
        .map_err(|e| format!("the suite's header: {e}"))?;
    headers.insert(http::header::AUTHORIZATION, bearer);
    let identified = match transport.exporter(&endpoint, &headers) {
        Ok(exporter) => exchange(exporter, traces).await,
        Err(error) => Err(error),
    };
    stop().await;
    match anonymous? {
        Err(error)
            if error.kind() == otlp_core::ErrorKind::Unauthenticated
                && error.retry_class() == RetryClass::Permanent => {}
        other => {
            return Err(format!(
                "without the token: expected unauthenticated, got {other:?}"
            ));
        }
    }
    match identified? {
        Ok(outcome) if outcome.accepted() == items => {}
        other => {
            return Err(format!(
                "with the token: expected {items} accepted, got {other:?}"
            ));
        }
    }
    let reached = reached.load(std::sync::atomic::Ordering::SeqCst);
    if reached != 1 {
        return Err(format!(
            "{reached} requests reached the service; only the one with the token should"
        ));
    }
    Ok(())
}

/// A receiver forwarding `x-tenant`: the service sees it with each request, and not the
/// exporter's other headers.
async fn metadata(transport: &dyn Transport) -> Result<(), String> {
    let seen: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let service = BoxedService::new(tower::service_fn(move |request: AnyExportRequest| {
        let headers = match &request {
            AnyExportRequest::Traces(r) => r.headers().clone(),
            AnyExportRequest::Metrics(r) => r.headers().clone(),
            AnyExportRequest::Logs(r) => r.headers().clone(),
        };
        if let Ok(mut seen) = record.lock() {
            seen.push(headers);
        }
        async move { Ok::<_, ExportError>(ExportOutcome::success(request.item_count())) }
    }));
    let settings = ReceiverSettings {
        forward_headers: vec![http::HeaderName::from_static("x-tenant")],
        ..ReceiverSettings::limited(MAX_REQUEST)
    };
    let (endpoint, stop) = transport.start_receiver(service, settings).await?;
    let mut headers = http::HeaderMap::new();
    headers.insert("x-tenant", http::HeaderValue::from_static("acme"));
    headers.insert("x-not-forwarded", http::HeaderValue::from_static("private"));
    let result = match transport.exporter(&endpoint, &headers) {
        Ok(exporter) => {
            let mut results = Vec::new();
            for request in requests() {
                results.push(exchange(exporter.clone(), request).await);
            }
            Ok(results)
        }
        Err(error) => Err(error),
    };
    stop().await;
    for result in result? {
        if !matches!(result, Ok(Ok(_))) {
            return Err(format!("an export failed: {result:?}"));
        }
    }
    let seen = seen
        .lock()
        .map_err(|_| "the recording lock is poisoned".to_string())?;
    if seen.len() != 3 {
        return Err(format!(
            "{} requests reached the service, 3 sent",
            seen.len()
        ));
    }
    for headers in seen.iter() {
        if headers.get("x-tenant").map(|v| v.as_bytes()) != Some(b"acme") {
            return Err(format!("x-tenant did not reach the service: {headers:?}"));
        }
        if headers.contains_key("x-not-forwarded") {
            return Err(format!(
                "a header not listed reached the service: {headers:?}"
            ));
        }
    }
    Ok(())
}
