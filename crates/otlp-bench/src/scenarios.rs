//! The design document's scenario presets, each run as a whole client pipeline over its
//! transport on loopback: producers hand requests of 32 realistic spans to the batch layer
//! (the preset's batch size and linger), which exports through retry (the preset's backoff)
//! and the preset's exporter (protocol, compression, timeout) to our validating receiver.
//! Measured: spans delivered per second, the latency of each export call, CPU, and that
//! every span handed over arrived.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otlp_batch::presets::{self, Preset};
use otlp_batch::{BatchLayer, BatchLayerConfig};
use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Traces};
use otlp_reliability::metrics::PipelineMetrics;
use otlp_reliability::retry::RetryLayer;
use serde_json::json;
use tower::util::BoxCloneService;
use tower::{Layer, Service, ServiceExt};

use crate::measure::{Report, cpu_time, percentile};

/// Spans per request a producer hands over (an SDK's export of a busy service).
const REQUEST_SPANS: usize = 32;
/// Producers handing requests over at once.
const PRODUCERS: usize = 4;
/// Distinct requests the producers cycle through (copied into batches by the batcher).
const POOL: usize = 64;

type Exporter = BoxCloneService<ExportRequest<Traces>, ExportOutcome, ExportError>;

struct Row {
    preset: Preset,
    spans: u64,
    spans_per_s: f64,
    p50: Duration,
    p99: Duration,
    cpu_cores: f64,
    cpu_ns_per_span: f64,
    lost: u64,
}

/// A counting receiver for `protocol` and the endpoint its exporter should use.
async fn receiver(
    protocol: &str,
    delivered: Arc<AtomicU64>,
) -> Result<(String, Box<dyn FnOnce() + Send>), String> {
    let service = tower::service_fn(move |request: AnyExportRequest| {
        let items = request.item_count();
        delivered.fetch_add(items as u64, Ordering::Relaxed);
        async move { Ok::<_, ExportError>(ExportOutcome::success(items)) }
    });
    let loopback = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    Ok(match protocol {
        "grpc" => {
            let running = otlp_grpc::GrpcReceiver::new(service)
                .bind(loopback)
                .await
                .map_err(|e| e.to_string())?;
            (
                format!("http://{}", running.local_addr()),
                Box::new(move || drop(running)),
            )
        }
        "http" => {
            let running = otlp_http::HttpReceiver::new(service)
                .bind(loopback)
                .await
                .map_err(|e| e.to_string())?;
            (
                format!("http://{}", running.local_addr()),
                Box::new(move || drop(running)),
            )
        }
        "websocket" => {
            let running = otlp_websocket::WsReceiver::new(service)
                .bind(loopback)
                .await
                .map_err(|e| e.to_string())?;
            (
                format!("ws://{}/v1/stream", running.local_addr()),
                Box::new(move || drop(running)),
            )
        }
        other => return Err(format!("preset protocol {other:?} has no receiver here")),
    })
}

/// The preset's exporter, timing every call into `latencies`.
fn exporter(
    preset: &Preset,
    endpoint: &str,
    latencies: Arc<Mutex<Vec<Duration>>>,
) -> Result<Exporter, String> {
    let compression = match preset.compression {
        "none" => None,
        name => Some(
            otlp_compression::CompressionSet::with_defaults()
                .by_http_name(name)
                .cloned()
                .ok_or_else(|| format!("unknown compression {name}"))?,
        ),
    };
    let inner: Exporter = match preset.protocol {
        "grpc" => {
            let mut config = otlp_grpc::ExporterConfig::new(endpoint).map_err(|e| e.to_string())?;
            config.compression = compression;
            config.timeout = preset.export_timeout;
            BoxCloneService::new(otlp_grpc::GrpcExporter::new(config).map_err(|e| e.to_string())?)
        }
        "http" => {
            let mut config =
                otlp_http::HttpExporterConfig::new(endpoint).map_err(|e| e.to_string())?;
            config.compression = compression;
            config.timeout = preset.export_timeout;
            BoxCloneService::new(otlp_http::HttpExporter::new(config).map_err(|e| e.to_string())?)
        }
        _ => {
            let mut config = otlp_websocket::WsExporterConfig::new(endpoint);
            config.encoding = otlp_websocket::Encoding::Protobuf(compression);
            BoxCloneService::new(otlp_websocket::WsExporter::new(config))
        }
    };
    Ok(BoxCloneService::new(tower::service_fn(
        move |request: ExportRequest<Traces>| {
            let mut inner = inner.clone();
            let latencies = latencies.clone();
            async move {
                let started = Instant::now();
                let result = inner.ready().await?.call(request).await;
                if let Ok(mut kept) = latencies.lock() {
                    kept.push(started.elapsed());
                }
                result
            }
        },
    )))
}

async fn run_preset(preset: Preset, budget: Duration) -> Result<Row, String> {
    let delivered = Arc::new(AtomicU64::new(0));
    let (endpoint, stop) = receiver(preset.protocol, delivered.clone()).await?;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let exporter = exporter(&preset, &endpoint, latencies.clone())?;
    let metrics = Arc::new(PipelineMetrics::new());
    let retry = RetryLayer::new(preset.backoff, metrics.clone()).layer(exporter);
    let batch = BatchLayer::new(
        BatchLayerConfig {
            batch: preset.batch,
            ..BatchLayerConfig::default()
        },
        metrics.clone(),
    )
    .layer(retry);
    let pool: Arc<Vec<ExportRequest<Traces>>> = Arc::new(
        (0..POOL)
            .map(|i| ExportRequest::new(otlp_testkit::realistic::traces(REQUEST_SPANS, i as u64)))
            .collect(),
    );
    let handed = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_time();
    let started = Instant::now();
    let deadline = started + budget;
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let (batch, pool, handed) = (batch.clone(), pool.clone(), handed.clone());
        producers.push(tokio::spawn(async move {
            let mut next = producer;
            while Instant::now() < deadline {
                let request = pool[next % POOL].clone();
                next += PRODUCERS;
                if batch.clone().oneshot(request).await.is_ok() {
                    handed.fetch_add(REQUEST_SPANS as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    for producer in producers {
        producer.await.map_err(|e| e.to_string())?;
    }
    let left = batch.shutdown(Duration::from_secs(60)).await;
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    stop();
    let handed = handed.load(Ordering::Relaxed);
    let spans = delivered.load(Ordering::Relaxed);
    let mut latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort();
    Ok(Row {
        preset,
        spans,
        spans_per_s: spans as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        cpu_cores: cpu.as_secs_f64() / elapsed.as_secs_f64(),
        cpu_ns_per_span: cpu.as_nanos() as f64 / spans.max(1) as f64,
        lost: handed.saturating_sub(spans) + left as u64,
    })
}

pub(crate) fn run(quick: bool) -> Result<Report, String> {
    let budget = if quick {
        Duration::from_millis(1500)
    } else {
        Duration::from_secs(4)
    };
    let runtime = crate::measure::runtime()?;
    let mut rows = Vec::new();
    for (index, preset) in presets::ALL.into_iter().enumerate() {
        crate::progress::step("scenarios", index, presets::ALL.len(), preset.name);
        rows.push(runtime.block_on(run_preset(preset, budget))?);
    }
    crate::progress::done("scenarios", presets::ALL.len());
    let mut markdown = format!(
        "## Scenario presets, whole client pipeline to our receiver on loopback\n\n\
         {PRODUCERS} producers hand requests of {REQUEST_SPANS} realistic spans to batch -> retry -> \
         exporter, as fast as accepted, for {:.1} s per preset; latency is of one export call.\n\n\
         | scenario | protocol | batch | linger | timeout | compression | spans/s | export p50 | export p99 | CPU cores | CPU ns/span | lost |\n\
         |---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n",
        budget.as_secs_f64()
    );
    let mut json_rows = Vec::new();
    for row in &rows {
        let p = &row.preset;
        markdown.push_str(&format!(
            "| {} | {} | {} | {:?} | {:?} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} | {:.0} | {} |\n",
            p.name,
            p.protocol,
            p.batch.max_items,
            p.batch.linger,
            p.export_timeout,
            p.compression,
            row.spans_per_s,
            row.p50.as_secs_f64() * 1e3,
            row.p99.as_secs_f64() * 1e3,
            row.cpu_cores,
            row.cpu_ns_per_span,
            row.lost,
        ));
        json_rows.push(json!({
            "scenario": p.name,
            "protocol": p.protocol,
            "batch": p.batch.max_items,
            "linger_ms": p.batch.linger.as_secs_f64() * 1e3,
            "timeout_ms": p.export_timeout.as_secs_f64() * 1e3,
            "compression": p.compression,
            "spans": row.spans,
            "spans_per_s": row.spans_per_s,
            "export_p50_us": row.p50.as_secs_f64() * 1e6,
            "export_p99_us": row.p99.as_secs_f64() * 1e6,
            "cpu_cores": row.cpu_cores,
            "cpu_ns_per_span": row.cpu_ns_per_span,
            "lost": row.lost,
        }));
    }
    if let Some(row) = rows.iter().find(|r| r.lost > 0) {
        return Err(format!(
            "scenario {}: {} spans handed over did not arrive",
            row.preset.name, row.lost
        ));
    }
    Ok(Report {
        name: "scenarios",
        markdown,
        json: json!({ "quick": quick, "request_spans": REQUEST_SPANS, "producers": PRODUCERS, "rows": json_rows }),
    })
}
