//! OTLP/HTTP on loopback: spans/s, latency and CPU of our receiver (and exporter) against a
//! baseline receiver built on hyper with the official `opentelemetry-proto` types (prost
//! for protobuf, serde for JSON), both ends in this process on one 2-worker runtime.
//!
//! The same pooled HTTP/1.1 client posts the same pre-encoded bodies to both receivers, so
//! the comparison is of the receivers; a further row runs our exporter end to end. Every
//! receiver checks every request fully and counts its spans: the baseline decodes into
//! owned types; ours validates protobuf as strictly as a decode (the default) and decodes
//! JSON into owned types.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1 as reference;
use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Traces};
use otlp_http::{HttpExporter, HttpExporterConfig, HttpReceiver};
use prost::Message;
use serde_json::json;

use crate::measure::{Report, cpu_time, percentile};

const CONCURRENCY: usize = 16;
const DISTINCT: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Baseline,
    OursReceiver,
    OursEndToEnd,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Baseline => "hyper + opentelemetry-proto receiver",
            Kind::OursReceiver => "otlp-http receiver",
            Kind::OursEndToEnd => "otlp-http exporter -> otlp-http receiver",
        }
    }
}

struct Row {
    kind: Kind,
    format: Format,
    batch: usize,
    spans: u64,
    spans_per_s: f64,
    p50: Duration,
    p99: Duration,
    cpu_cores: f64,
}

pub(crate) fn run(quick: bool) -> Result<Report, String> {
    let budget = if quick {
        Duration::from_millis(1500)
    } else {
        Duration::from_secs(4)
    };
    let runtime = crate::measure::runtime()?;
    let json_codec = otlp_codec::Json::default();
    let mut rows = Vec::new();
    for format in [Format::Protobuf, Format::Json] {
        for &batch in crate::measure::batch_sizes(quick) {
            let bodies: Vec<Bytes> = (0..DISTINCT)
                .map(|i| {
                    let message = otlp_testkit::realistic::traces(batch, i as u64);
                    match format {
                        Format::Protobuf => Ok(Bytes::from(message.encode_to_vec())),
                        Format::Json => {
                            let mut out = Vec::new();
                            <otlp_codec::Json as otlp_codec::Codec<_>>::encode(
                                &json_codec,
                                &message,
                                &mut out,
                            )
                            .map(|()| Bytes::from(out))
                            .map_err(|e| e.to_string())
                        }
                    }
                })
                .collect::<Result<_, _>>()?;
            let kinds: &[Kind] = match format {
                Format::Protobuf => &[Kind::Baseline, Kind::OursReceiver, Kind::OursEndToEnd],
                Format::Json => &[Kind::Baseline, Kind::OursReceiver],
            };
            for &kind in kinds {
                eprintln!("http: {} {format:?} at batch {batch}...", kind.label());
                rows.push(runtime.block_on(throughput(kind, format, batch, &bodies, budget))?);
            }
        }
    }
    Ok(report(quick, &rows))
}

struct Target {
    url: String,
    decoded: Arc<AtomicU64>,
    stop: Box<dyn FnOnce() + Send>,
}

async fn start_ours() -> Result<Target, String> {
    let decoded = Arc::new(AtomicU64::new(0));
    let counter = decoded.clone();
    let service = tower::service_fn(move |request: AnyExportRequest| {
        let items = request.item_count();
        counter.fetch_add(items as u64, Ordering::Relaxed);
        async move { Ok::<_, ExportError>(ExportOutcome::success(items)) }
    });
    let running = HttpReceiver::new(service)
        .bind("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Target {
        url: format!("http://{}", running.local_addr()),
        decoded,
        stop: Box::new(move || drop(running)),
    })
}

/// The baseline: hyper's HTTP/1.1 server decoding with the official types.
async fn start_baseline() -> Result<Target, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let decoded = Arc::new(AtomicU64::new(0));
    let counter = decoded.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let counter = counter.clone();
                        async move { Ok::<_, Infallible>(baseline_answer(request, &counter).await) }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Target {
        url: format!("http://{address}"),
        decoded,
        stop: Box::new(move || task.abort()),
    })
}

async fn baseline_answer(
    request: http::Request<hyper::body::Incoming>,
    counter: &AtomicU64,
) -> http::Response<Full<Bytes>> {
    let json = request
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().ends_with(b"json"));
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return status(400),
    };
    let message: Option<reference::ExportTraceServiceRequest> = if json {
        serde_json::from_slice(&body).ok()
    } else {
        Message::decode(body).ok()
    };
    let Some(message) = message else {
        return status(400);
    };
    let spans: usize = message
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    counter.fetch_add(spans as u64, Ordering::Relaxed);
    let answer = reference::ExportTraceServiceResponse {
        partial_success: None,
    };
    let bytes = if json {
        serde_json::to_vec(&answer).unwrap_or_default()
    } else {
        answer.encode_to_vec()
    };
    http::Response::new(Full::new(Bytes::from(bytes)))
}

fn status(code: u16) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = http::StatusCode::from_u16(code).unwrap_or_default();
    response
}

#[derive(Clone)]
enum Sender {
    Raw(Client<HttpConnector, Full<Bytes>>),
    Exporter(HttpExporter),
}

impl Sender {
    async fn send(
        &self,
        url: &str,
        format: Format,
        body: &Bytes,
        spans: usize,
    ) -> Result<(), String> {
        match self {
            Sender::Raw(client) => {
                let request = http::Request::post(url)
                    .header("content-type", format.content_type())
                    .body(Full::new(body.clone()))
                    .map_err(|e| e.to_string())?;
                let response = client.request(request).await.map_err(|e| e.to_string())?;
                let ok = response.status().is_success();
                let _ = response.into_body().collect().await;
                if ok { Ok(()) } else { Err("refused".into()) }
            }
            Sender::Exporter(exporter) => {
                let request = ExportRequest::<Traces>::from_encoded(body.clone(), spans);
                exporter
                    .export(&request)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

async fn throughput(
    kind: Kind,
    format: Format,
    batch: usize,
    bodies: &[Bytes],
    budget: Duration,
) -> Result<Row, String> {
    let target = match kind {
        Kind::Baseline => start_baseline().await?,
        Kind::OursReceiver | Kind::OursEndToEnd => start_ours().await?,
    };
    let sender = match kind {
        Kind::OursEndToEnd => Sender::Exporter(
            HttpExporter::new(HttpExporterConfig::new(&target.url).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?,
        ),
        _ => {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            Sender::Raw(
                Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(CONCURRENCY)
                    .build(connector),
            )
        }
    };
    let url = format!("{}/v1/traces", target.url);
    for body in bodies.iter().take(4) {
        sender.send(&url, format, body, batch).await?;
    }
    let before = target.decoded.load(Ordering::Relaxed);
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut lanes = Vec::new();
    for lane in 0..CONCURRENCY {
        let sender = sender.clone();
        let bodies = bodies.to_vec();
        let url = url.clone();
        lanes.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = lane;
            while started.elapsed() < budget {
                let t = Instant::now();
                sender
                    .send(&url, format, &bodies[i % bodies.len()], batch)
                    .await?;
                latencies.push(t.elapsed());
                i += CONCURRENCY;
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for lane in lanes {
        latencies.extend(lane.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let decoded = target.decoded.load(Ordering::Relaxed) - before;
    (target.stop)();
    let sent = (latencies.len() * batch) as u64;
    if decoded != sent {
        return Err(format!(
            "{}: decoded {decoded} of {sent} spans",
            kind.label()
        ));
    }
    latencies.sort();
    Ok(Row {
        kind,
        format,
        batch,
        spans: sent,
        spans_per_s: sent as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        cpu_cores: cpu.as_secs_f64() / elapsed.as_secs_f64(),
    })
}

fn report(quick: bool, rows: &[Row]) -> Report {
    let mut markdown = format!(
        "## OTLP/HTTP on loopback (HTTP/1.1, {CONCURRENCY} requests in flight, realistic spans)\n\n\
         | sender -> receiver | format | batch | spans | spans/s | vs baseline | p50 µs | p99 µs | CPU cores |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let mut json_rows = Vec::new();
    for row in rows {
        let baseline = rows
            .iter()
            .find(|r| r.kind == Kind::Baseline && r.format == row.format && r.batch == row.batch)
            .map_or(f64::NAN, |b| row.spans_per_s / b.spans_per_s);
        let label = match row.kind {
            Kind::OursEndToEnd => row.kind.label().to_string(),
            kind => format!("hyper client -> {}", kind.label()),
        };
        markdown.push_str(&format!(
            "| {label} | {:?} | {} | {} | {:.0} | {:.2}x | {:.0} | {:.0} | {:.2} |\n",
            row.format,
            row.batch,
            row.spans,
            row.spans_per_s,
            baseline,
            row.p50.as_secs_f64() * 1e6,
            row.p99.as_secs_f64() * 1e6,
            row.cpu_cores,
        ));
        json_rows.push(json!({
            "sender_receiver": label,
            "format": format!("{:?}", row.format),
            "batch": row.batch,
            "spans": row.spans,
            "spans_per_s": row.spans_per_s,
            "vs_baseline": baseline,
            "p50_us": row.p50.as_secs_f64() * 1e6,
            "p99_us": row.p99.as_secs_f64() * 1e6,
            "cpu_cores": row.cpu_cores,
        }));
    }
    Report {
        name: "http",
        markdown,
        json: json!({ "quick": quick, "concurrency": CONCURRENCY, "rows": json_rows }),
    }
}
