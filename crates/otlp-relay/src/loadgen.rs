//! The load generator behind `otlp-loadgen`: realistic traces, metrics and logs sent over
//! any transport, codec and compression, at a target rate or as fast as the receiver
//! answers, for a duration or a count; it reports what was sent, acknowledged and rejected
//! and the latency of each request.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use otlp_core::{AnyExportRequest, ExportRequest, Logs, Metrics, SignalKind, Traces};
use otlp_testkit::realistic;
use tokio::io::AsyncWriteExt;
use tower_service::Service;

use crate::config::{Interval, OtlpExporter};
use crate::pipeline::Exporter;
use crate::sink::any_json_line;
use crate::upstream;

/// Distinct requests generated per signal; sending cycles through them, so generating
/// costs nothing while the clock runs.
const POOL: u64 = 16;

/// What to send and how.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The exporter's protocol, endpoint, compression and headers.
    pub exporter: OtlpExporter,
    /// The signals sent, each on its own schedule.
    pub signals: Vec<SignalKind>,
    /// Items (spans, data points, log records) per request.
    pub batch: usize,
    /// Items per second per signal; `None`: as fast as the receiver answers.
    pub rate: Option<f64>,
    /// How long to send (when `count` is unset).
    pub duration: Duration,
    /// Items to send per signal (rounded up to whole requests); overrides `duration`.
    pub count: Option<u64>,
    /// Requests in flight per signal.
    pub concurrency: usize,
    /// Seed of the generated data.
    pub seed: u64,
    /// Where to write every acknowledged request as an OTLP/JSON line.
    pub record: Option<std::path::PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            exporter: OtlpExporter {
                protocol: Some("grpc".into()),
                ..OtlpExporter::default()
            },
            signals: vec![SignalKind::Traces],
            batch: 512,
            rate: None,
            duration: Duration::from_secs(10),
            count: None,
            concurrency: 4,
            seed: 1,
            record: None,
        }
    }
}

/// The usage text of `otlp-loadgen`.
pub const HELP: &str = "\
otlp-loadgen: sends realistic OTLP traces, metrics and logs and reports what came back.

USAGE:
    otlp-loadgen [OPTIONS]

OPTIONS:
    --protocol P        grpc (default), grpc-stream (bidirectional stream), http/protobuf,
                        http/json, http/msgpack, http/cbor, websocket (protobuf) or
                        websocket/json
    --endpoint URL      where to send (default: localhost on the protocol's port:
                        http://localhost:4317, http://localhost:4318,
                        ws://localhost:4318/v1/stream)
    --compression NAME  none (default), gzip, deflate, zstd, snappy or lz4
    --header K=V        a header (gRPC metadata) on every request; repeatable
    --signals LIST      comma-separated: traces, metrics, logs (default traces)
    --batch N           items (spans, data points, log records) per request (default 512)
    --rate N            items per second per signal (default: as fast as answered)
    --duration DUR      how long to send, like 10s or 500ms (default 10s)
    --count N           items to send per signal, then stop (overrides --duration)
    --concurrency N     requests in flight per signal (default 4)
    --seed N            seed of the generated data (default 1)
    --record PATH       write each acknowledged request to PATH as an OTLP/JSON line
    --json              print the report as JSON instead of text
    -h, --help          this text

Unset settings fall back to the OTEL_EXPORTER_OTLP_* variables, like the relay's otlp
exporter. The exit status is 0 when every request was acknowledged, 1 otherwise.
";

/// Parses the flags into options and whether the report is JSON; `None` asks for help.
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
) -> Result<Option<(LoadOptions, bool)>, String> {
    let mut options = LoadOptions::default();
    let mut json = false;
    let mut args = args.into_iter();
    let value = |flag: &str, next: Option<String>| {
        next.ok_or_else(|| format!("{flag} needs a value; see --help"))
    };
    fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
        text.parse()
            .map_err(|_| format!("{flag} {text:?}: not a number"))
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => json = true,
            "--protocol" => options.exporter.protocol = Some(value(&arg, args.next())?),
            "--endpoint" => options.exporter.endpoint = Some(value(&arg, args.next())?),
            "--compression" => options.exporter.compression = Some(value(&arg, args.next())?),
            "--header" => {
                let pair = value(&arg, args.next())?;
                let (key, val) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--header {pair:?}: expected K=V"))?;
                options.exporter.headers.insert(key.into(), val.into());
            }
            "--signals" => {
                let list = value(&arg, args.next())?;
                options.signals = list
                    .split(',')
                    .map(|name| {
                        SignalKind::ALL
                            .into_iter()
                            .find(|s| s.name() == name.trim())
                            .ok_or_else(|| format!("--signals: unknown signal {name:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--batch" => options.batch = number(&arg, &value(&arg, args.next())?)?,
            "--rate" => {
                let rate: f64 = number(&arg, &value(&arg, args.next())?)?;
                if !(rate.is_finite() && rate > 0.0) {
                    return Err("--rate must be a positive number".into());
                }
                options.rate = Some(rate);
            }
            "--duration" => {
                options.duration = Interval::parse(&value(&arg, args.next())?)
                    .map_err(|e| format!("--duration: {e}"))?
                    .0;
            }
            "--count" => options.count = Some(number(&arg, &value(&arg, args.next())?)?),
            "--concurrency" => options.concurrency = number(&arg, &value(&arg, args.next())?)?,
            "--seed" => options.seed = number(&arg, &value(&arg, args.next())?)?,
            "--record" => options.record = Some(value(&arg, args.next())?.into()),
            other => return Err(format!("unknown option {other:?}; see --help")),
        }
    }
    if options.batch == 0 || options.concurrency == 0 || options.signals.is_empty() {
        return Err("--batch, --concurrency and --signals must not be zero or empty".into());
    }
    Ok(Some((options, json)))
}

/// What one signal's run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignalReport {
    /// The signal.
    pub signal: &'static str,
    /// Requests sent.
    pub requests: u64,
    /// Items sent.
    pub items_sent: u64,
    /// Items the receiver acknowledged as accepted.
    pub items_accepted: u64,
    /// Items the receiver rejected in a partial success.
    pub items_rejected: u64,
    /// Items of requests that failed (error answer, no answer).
    pub items_failed: u64,
    /// Requests that failed, with the first error seen.
    pub failed_requests: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// Request latencies in microseconds: p50, p90, p99, max.
    pub latency_us: [u64; 4],
    /// Seconds from the first request to the last answer.
    pub elapsed_s: f64,
}

impl SignalReport {
    /// Accepted items per second.
    pub fn throughput(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.items_accepted as f64 / self.elapsed_s
        } else {
            0.0
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// One entry per signal sent.
    pub signals: Vec<SignalReport>,
}

impl Report {
    /// Whether every request was acknowledged and nothing was rejected.
    pub fn all_accepted(&self) -> bool {
        self.signals
            .iter()
            .all(|s| s.failed_requests == 0 && s.items_rejected == 0)
    }

    /// A table for people.
    pub fn text(&self) -> String {
        let mut out = String::from(
            "signal   requests  items sent  accepted  rejected  failed  items/s     p50 us  p90 us  p99 us  max us\n",
        );
        for s in &self.signals {
            let _ = writeln!(
                out,
                "{:<8} {:>8}  {:>10}  {:>8}  {:>8}  {:>6}  {:>10.0}  {:>6}  {:>6}  {:>6}  {:>6}",
                s.signal,
                s.requests,
                s.items_sent,
                s.items_accepted,
                s.items_rejected,
                s.items_failed,
                s.throughput(),
                s.latency_us[0],
                s.latency_us[1],
                s.latency_us[2],
                s.latency_us[3],
            );
            if let Some(error) = &s.first_error {
                let _ = writeln!(out, "  first error: {error}");
            }
        }
        out
    }

    /// The report as a JSON document.
    pub fn json(&self) -> String {
        let signals: Vec<String> = self
            .signals
            .iter()
            .map(|s| {
                format!(
                    "{{\"signal\":\"{}\",\"requests\":{},\"items_sent\":{},\"items_accepted\":{},\"items_rejected\":{},\"items_failed\":{},\"failed_requests\":{},\"items_per_second\":{:.1},\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"max\":{}}},\"elapsed_s\":{:.3},\"first_error\":{}}}",
                    s.signal,
                    s.requests,
                    s.items_sent,
                    s.items_accepted,
                    s.items_rejected,
                    s.items_failed,
                    s.failed_requests,
                    s.throughput(),
                    s.latency_us[0],
                    s.latency_us[1],
                    s.latency_us[2],
                    s.latency_us[3],
                    s.elapsed_s,
                    match &s.first_error {
                        Some(e) => format!("{e:?}"),
                        None => "null".into(),
                    }
                )
            })
            .collect();
        format!("{{\"signals\":[{}]}}\n", signals.join(","))
    }
}

fn pool(signal: SignalKind, batch: usize, seed: u64) -> Vec<AnyExportRequest> {
    (0..POOL)
        .map(|i| {
            let seed = seed.wrapping_mul(1_000_003).wrapping_add(i);
            match signal {
                SignalKind::Traces => {
                    ExportRequest::<Traces>::new(realistic::traces(batch, seed)).into()
                }
                SignalKind::Metrics => {
                    ExportRequest::<Metrics>::new(realistic::metrics(batch, seed)).into()
                }
                SignalKind::Logs => ExportRequest::<Logs>::new(realistic::logs(batch, seed)).into(),
            }
        })
        .collect()
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Runs the load and reports. Fails only when the exporter cannot be built or the record
/// file cannot be written.
pub async fn run(options: LoadOptions) -> Result<Report, String> {
    let env = |name: &str| std::env::var(name).ok();
    let record = match &options.record {
        Some(path) => Some(Arc::new(tokio::sync::Mutex::new(
            tokio::fs::File::create(path)
                .await
                .map_err(|e| format!("--record {}: {e}", path.display()))?,
        ))),
        None => None,
    };
    let mut runs = Vec::new();
    for &signal in &options.signals {
        let exporter =
            upstream::build(&options.exporter, signal, &env).map_err(|e| e.to_string())?;
        runs.push(tokio::spawn(run_signal(
            signal,
            exporter,
            options.clone(),
            record.clone(),
        )));
    }
    let mut report = Report::default();
    for run in runs {
        report
            .signals
            .push(run.await.map_err(|e| format!("a sender stopped: {e}"))??);
    }
    if let Some(record) = record {
        record
            .lock()
            .await
            .flush()
            .await
            .map_err(|e| format!("--record: {e}"))?;
    }
    Ok(report)
}

type Record = Option<Arc<tokio::sync::Mutex<tokio::fs::File>>>;

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    sent: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed_items: AtomicU64,
    failed_requests: AtomicU64,
}

async fn run_signal(
    signal: SignalKind,
    exporter: Exporter,
    options: LoadOptions,
    record: Record,
) -> Result<SignalReport, String> {
    let requests = Arc::new(pool(signal, options.batch, options.seed));
    let per_request = requests[0].item_count() as u64;
    let limit = options
        .count
        .map(|count| count.div_ceil(per_request.max(1)));
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Tally::default());
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let deadline = start + options.duration;
    let interval = options
        .rate
        .map(|rate| Duration::from_secs_f64(per_request as f64 / rate));
    let mut lanes = Vec::new();
    for _ in 0..options.concurrency {
        let (requests, next, tally, first_error, record) = (
            requests.clone(),
            next.clone(),
            tally.clone(),
            first_error.clone(),
            record.clone(),
        );
        let mut exporter = exporter.clone();
        lanes.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if limit.is_some_and(|limit| index >= limit) {
                    break;
                }
                if let Some(interval) = interval {
                    let due = start + interval.mul_f64(index as f64);
                    if limit.is_none() && due >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                } else if limit.is_none() && Instant::now() >= deadline {
                    break;
                }
                let request = requests[(index % POOL) as usize].clone();
                let items = request.item_count() as u64;
                let line = match &record {
                    Some(_) => Some(any_json_line(&request).map_err(|e| e.to_string())?),
                    None => None,
                };
                let sent = Instant::now();
                let result = exporter.call(request).await;
                latencies.push(sent.elapsed().as_micros() as u64);
                tally.requests.fetch_add(1, Ordering::Relaxed);
                tally.sent.fetch_add(items, Ordering::Relaxed);
                match result {
                    Ok(outcome) => {
                        tally
                            .accepted
                            .fetch_add(outcome.accepted() as u64, Ordering::Relaxed);
                        tally
                            .rejected
                            .fetch_add(outcome.rejected() as u64, Ordering::Relaxed);
                        if let (Some(record), Some(line)) = (&record, line) {
                            record
                                .lock()
                                .await
                                .write_all(&line)
                                .await
                                .map_err(|e| format!("--record: {e}"))?;
                        }
                    }
                    Err(error) => {
                        tally.failed_items.fetch_add(items, Ordering::Relaxed);
                        tally.failed_requests.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut first) = first_error.lock() {
                            first.get_or_insert_with(|| error.to_string());
                        }
                    }
                }
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for lane in lanes {
        latencies.extend(lane.await.map_err(|e| format!("a sender stopped: {e}"))??);
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let first_error = first_error.lock().ok().and_then(|e| e.clone());
    Ok(SignalReport {
        signal: signal.name(),
        requests: tally.requests.load(Ordering::Relaxed),
        items_sent: tally.sent.load(Ordering::Relaxed),
        items_accepted: tally.accepted.load(Ordering::Relaxed),
        items_rejected: tally.rejected.load(Ordering::Relaxed),
        items_failed: tally.failed_items.load(Ordering::Relaxed),
        failed_requests: tally.failed_requests.load(Ordering::Relaxed),
        first_error,
        latency_us: [
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.90),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0),
        ],
        elapsed_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_and_bad_values_are_named() {
        let (options, json) = parse_args(args(&[
            "--protocol",
            "http/json",
            "--signals",
            "traces,logs",
            "--count",
            "1000",
            "--rate",
            "500",
            "--header",
            "x-tenant=acme",
            "--json",
        ]))
        .expect("valid")
        .expect("options");
        assert!(json);
        assert_eq!(options.signals, vec![SignalKind::Traces, SignalKind::Logs]);
        assert_eq!(options.count, Some(1000));
        assert_eq!(options.rate, Some(500.0));
        assert_eq!(options.exporter.headers["x-tenant"], "acme");
        let error = parse_args(args(&["--signals", "profiles"])).expect_err("unknown");
        assert!(error.contains("profiles"), "{error}");
        assert!(parse_args(args(&["--rate", "-3"])).is_err());
        assert!(parse_args(args(&["--batch", "0"])).is_err());
        assert!(parse_args(args(&["--help"])).expect("help").is_none());
    }

    #[test]
    fn percentiles_pick_from_the_sorted_latencies() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.5), 51);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[tokio::test]
    async fn a_count_is_sent_exactly_and_reported() {
        let options = LoadOptions {
            exporter: OtlpExporter::default(),
            signals: vec![SignalKind::Metrics],
            batch: 10,
            count: Some(95),
            concurrency: 3,
            ..LoadOptions::default()
        };
        let report = run_signal(SignalKind::Metrics, Exporter::Null, options, None)
            .await
            .expect("run");
        assert_eq!(report.requests, 10);
        assert_eq!(report.items_sent, 100);
        assert_eq!(report.items_accepted, 100);
        assert!(
            Report {
                signals: vec![report]
            }
            .all_accepted()
        );
    }
}
