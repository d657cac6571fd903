//! `cargo xtask bench relay`: the relay binary as a gateway — gRPC in, batching (items and
//! bytes capped), gRPC out to a sink — on loopback, measured from the relay process's own
//! counters (`/proc/<pid>/stat` for CPU, `/proc/<pid>/status` for memory).
//!
//! In one run, beside each other:
//! - **receive only**: the same clients straight into the sink, the ceiling of one hop;
//! - **relay, bytes**: the default path, where validated protobuf is batched and split as
//!   bytes and sent without a decode or an encode;
//! - **relay, decode to batch**: `decode_to_batch = true`, the path before byte batching;
//! - **quiet relay**: 10,000 spans/s (100 requests of 100 spans each second), the relay's
//!   share of a core and its resident memory, on the default runtime (a worker per core)
//!   and on one worker (`[runtime] workers = 1`), beside the floor under it: a bare hyper
//!   HTTP/2 server ([`crate::floor`]) at the same load. Two loads: the OpenTelemetry
//!   Collector testbed's (its load generator's spans, about 150 bytes each), the load the
//!   testbed's published figures are for; and our realistic spans (about 460 bytes).
//!   The quiet runs are repeated in interleaved rounds (three; one with `--quick`), and
//!   each row gives the median, the range, and the relay's share over the floor's.
//!
//! The clients and the sink run in this process, on a 2-worker runtime; the relay is its own
//! process. Everything shares the machine's cores, as a gateway shares its host.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use otlp_core::{ExportRequest, Traces};
use otlp_grpc::{DecodeMode, ExporterConfig, GrpcExporter};
use prost::Message;
use serde_json::json;

use crate::grpc::{Target, start_ours};
use crate::measure::{Report, cpu_time, cpu_time_of};

/// Exports in flight from the clients in the throughput runs.
const CONCURRENCY: usize = 16;
/// Spans per client request in the throughput runs.
const REQUEST_SPANS: usize = 512;
/// The relay's batch caps: the Collector's batch processor default of 8192 items, and the
/// usual 4 MiB gRPC message.
const BATCH_ITEMS: usize = 8192;
const BATCH_BYTES: usize = 4 << 20;
/// The quiet load: requests of this many spans, this many times a second.
const QUIET_SPANS: usize = 100;
const QUIET_RATE: u32 = 100;

/// One measured configuration.
struct Row {
    label: &'static str,
    spans: u64,
    spans_per_s: f64,
    /// CPU time per span of the process named in `cpu_of`.
    cpu_ns_per_span: f64,
    cpu_of: &'static str,
    cpu_cores: f64,
}

pub(crate) fn run(quick: bool) -> Result<Report, String> {
    let budget = if quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(6)
    };
    // The quiet runs are repeated, interleaved, because this machine's speed drifts by
    // more than the differences they measure: the table shows each median and range.
    let (quiet_for, quiet_rounds) = if quick {
        (Duration::from_secs(5), 1)
    } else {
        (Duration::from_secs(12), 3)
    };
    let runtime = crate::measure::runtime()?;
    let requests: Vec<Bytes> = (0..32)
        .map(|i| Bytes::from(otlp_testkit::realistic::traces(REQUEST_SPANS, i).encode_to_vec()))
        .collect();
    let testbed_requests: Vec<Bytes> = (0..32)
        .map(|i| {
            let request = otlp_testkit::realistic::testbed_traces(QUIET_SPANS, i);
            Bytes::from(request.encode_to_vec())
        })
        .collect();
    let realistic_requests: Vec<Bytes> = (0..32)
        .map(|i| Bytes::from(otlp_testkit::realistic::traces(QUIET_SPANS, i).encode_to_vec()))
        .collect();
    let relay_binary = relay_binary()?;
    runtime.block_on(async {
        eprintln!("relay: receive only...");
        let receive_only = receive_only(&requests, budget).await?;
        eprintln!("relay: bytes path...");
        let bytes = through_relay(&relay_binary, false, &requests, budget).await?;
        eprintln!("relay: decode-to-batch path...");
        let decoded = through_relay(&relay_binary, true, &requests, budget).await?;
        eprintln!("relay: quiet, 10,000 spans/s...");
        let runs = [
            (QuietLoad::Testbed, QuietTarget::Relay, 0),
            (QuietLoad::Testbed, QuietTarget::Relay, 1),
            (QuietLoad::Testbed, QuietTarget::BareH2, 0),
            (QuietLoad::Testbed, QuietTarget::BareH2, 1),
            (QuietLoad::Realistic, QuietTarget::Relay, 0),
            (QuietLoad::Realistic, QuietTarget::BareH2, 0),
        ];
        let mut rounds: Vec<Vec<Quiet>> = runs.iter().map(|_| Vec::new()).collect();
        for _ in 0..quiet_rounds {
            for (&(load, target, workers), measured) in runs.iter().zip(&mut rounds) {
                let requests = match load {
                    QuietLoad::Testbed => &testbed_requests,
                    QuietLoad::Realistic => &realistic_requests,
                };
                let row = quiet(&relay_binary, load, requests, quiet_for, target, workers);
                measured.push(row.await?);
            }
        }
        let quiet_rows: Vec<Quiet> = rounds.into_iter().filter_map(Quiet::combine).collect();
        Ok(report(quick, &[receive_only, bytes, decoded], &quiet_rows))
    })
}

/// `otlp-relay` beside this binary (`cargo xtask bench` builds both).
fn relay_binary() -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name("otlp-relay");
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: run `cargo xtask bench relay`, which builds it",
            path.display()
        ))
    }
}

/// A relay process exporting to `sink` (or the bare HTTP/2 floor server), killed on drop.
struct RelayProcess {
    child: Child,
    endpoint: String,
    _config: Option<tempfile_path::TempPath>,
}

impl RelayProcess {
    /// `workers`: the relay's `[runtime] workers` (0: one per core).
    fn start(
        binary: &std::path::Path,
        sink: &str,
        decode_to_batch: bool,
        workers: usize,
    ) -> Result<Self, String> {
        let config = format!(
            "[receivers.grpc]\nlisten = \"127.0.0.1:0\"\n[receivers.http]\nlisten = \"off\"\n\
             [admin]\nlisten = \"off\"\n\
             [pipeline]\nbatch_items = {BATCH_ITEMS}\nbatch_bytes = {BATCH_BYTES}\n\
             linger = \"50ms\"\ndecode_to_batch = {decode_to_batch}\n\
             [exporter]\nkind = \"otlp\"\n\
             [exporter.otlp]\nprotocol = \"grpc\"\nendpoint = \"{sink}\"\ncompression = \"none\"\n\
             [runtime]\nworkers = {workers}\n"
        );
        let path = tempfile_path::TempPath::write("relay-bench.toml", &config)?;
        let mut command = Command::new(binary);
        command.args(["--config", &path.0.display().to_string(), "--quiet"]);
        let (child, banner) = spawn_for_banner(command)?;
        let address = banner
            .split("gRPC ")
            .nth(1)
            .and_then(|rest| rest.split([',', ';', ' ']).next())
            .ok_or_else(|| format!("no gRPC address in the relay's banner {banner:?}"))?;
        Ok(Self {
            endpoint: format!("http://{address}"),
            child,
            _config: Some(path),
        })
    }

    /// This binary as the bare HTTP/2 server of [`crate::floor`], on `workers` workers (0:
    /// one per core).
    fn bare_h2(workers: usize) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = Command::new(&exe);
        command.arg(crate::floor::SERVE_FLAG);
        if workers > 0 {
            command.env("TOKIO_WORKER_THREADS", workers.to_string());
        }
        let (child, banner) = spawn_for_banner(command)?;
        let address = banner
            .strip_prefix(crate::floor::BANNER)
            .map(str::trim)
            .ok_or_else(|| format!("no address in the server's banner {banner:?}"))?;
        Ok(Self {
            endpoint: format!("http://{address}"),
            child,
            _config: None,
        })
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

/// Starts `command` and reads the first line it writes on standard error, where it says
/// where it listens.
fn spawn_for_banner(mut command: Command) -> Result<(Child, String), String> {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {:?}: {e}", command.get_program()))?;
    let stderr = child.stderr.take().ok_or("the child's standard error")?;
    let mut banner = String::new();
    BufReader::new(stderr)
        .read_line(&mut banner)
        .map_err(|e| e.to_string())?;
    Ok((child, banner))
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary file removed on drop.
mod tempfile_path {
    /// The path of a file written for the run.
    pub(crate) struct TempPath(pub(crate) std::path::PathBuf);

    impl TempPath {
        pub(crate) fn write(name: &str, contents: &str) -> Result<Self, String> {
            let path =
                std::env::temp_dir().join(format!("otlp-bench-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Self(path))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn exporter(endpoint: &str) -> Result<GrpcExporter, String> {
    GrpcExporter::new(ExporterConfig::new(endpoint).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())
}

/// Sends the requests round robin from `CONCURRENCY` lanes for `budget`; returns the spans
/// sent (every one acknowledged).
async fn load(endpoint: &str, requests: &[Bytes], budget: Duration) -> Result<u64, String> {
    let client = exporter(endpoint)?;
    let started = Instant::now();
    let mut lanes = Vec::new();
    for lane in 0..CONCURRENCY {
        let client = client.clone();
        let requests = requests.to_vec();
        lanes.push(tokio::spawn(async move {
            let (mut sent, mut i) = (0u64, lane);
            while started.elapsed() < budget {
                let bytes = requests[i % requests.len()].clone();
                let request = ExportRequest::<Traces>::from_encoded(bytes, REQUEST_SPANS);
                client.export(&request).await.map_err(|e| e.to_string())?;
                sent += REQUEST_SPANS as u64;
                i += CONCURRENCY;
            }
            Ok::<_, String>(sent)
        }));
    }
    let mut sent = 0;
    for lane in lanes {
        sent += lane.await.map_err(|e| e.to_string())??;
    }
    Ok(sent)
}

/// Waits until the sink has counted `expected` spans more than `before`, for at most 30 s.
async fn delivered(sink: &Target, before: u64, expected: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = sink.decoded.load(Ordering::Relaxed) - before;
        if got >= expected {
            return if got == expected {
                Ok(())
            } else {
                Err(format!("the sink got {got} spans of {expected} sent"))
            };
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the sink got {got} spans of {expected} within 30 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn receive_only(requests: &[Bytes], budget: Duration) -> Result<Row, String> {
    let sink = start_ours(DecodeMode::Validate).await?;
    load(&sink.endpoint, &requests[..4], Duration::ZERO).await?;
    let before = sink.decoded.load(Ordering::Relaxed);
    let (cpu_before, started) = (cpu_time(), Instant::now());
    let sent = load(&sink.endpoint, requests, budget).await?;
    delivered(&sink, before, sent).await?;
    let (elapsed, cpu) = (started.elapsed(), cpu_time().saturating_sub(cpu_before));
    (sink.stop)();
    Ok(Row {
        label: "receive only: clients -> sink",
        spans: sent,
        spans_per_s: sent as f64 / elapsed.as_secs_f64(),
        cpu_ns_per_span: cpu.as_nanos() as f64 / sent.max(1) as f64,
        cpu_of: "bench process (clients + sink)",
        cpu_cores: cpu.as_secs_f64() / elapsed.as_secs_f64(),
    })
}

async fn through_relay(
    binary: &std::path::Path,
    decode_to_batch: bool,
    requests: &[Bytes],
    budget: Duration,
) -> Result<Row, String> {
    let sink = start_ours(DecodeMode::Validate).await?;
    let relay = RelayProcess::start(binary, &sink.endpoint, decode_to_batch, 0)?;
    // Warm up: connections, buffers, the relay's allocator.
    let warm = load(&relay.endpoint, requests, Duration::from_millis(300)).await?;
    delivered(&sink, 0, warm).await?;
    let before = sink.decoded.load(Ordering::Relaxed);
    let pid = relay.pid();
    let (cpu_before, started) = (cpu_time_of(&pid), Instant::now());
    let sent = load(&relay.endpoint, requests, budget).await?;
    delivered(&sink, before, sent).await?;
    let (elapsed, cpu) = (
        started.elapsed(),
        cpu_time_of(&pid).saturating_sub(cpu_before),
    );
    drop(relay);
    (sink.stop)();
    Ok(Row {
        label: if decode_to_batch {
            "relay, decode to batch (before): gRPC -> decode, batch -> encode, gRPC"
        } else {
            "relay, bytes (default): gRPC -> validate, batch bytes -> gRPC"
        },
        spans: sent,
        spans_per_s: sent as f64 / elapsed.as_secs_f64(),
        cpu_ns_per_span: cpu.as_nanos() as f64 / sent.max(1) as f64,
        cpu_of: "relay process",
        cpu_cores: cpu.as_secs_f64() / elapsed.as_secs_f64(),
    })
}

/// What the quiet load is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuietTarget {
    /// The relay, exporting to a sink.
    Relay,
    /// The bare HTTP/2 server of [`crate::floor`]: what the stack costs before any OTLP work.
    BareH2,
}

/// The spans of the quiet load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuietLoad {
    /// The Collector testbed's load generator's spans
    /// ([`otlp_testkit::realistic::testbed_traces`]).
    Testbed,
    /// Realistic HTTP server spans ([`otlp_testkit::realistic::traces`]).
    Realistic,
}

impl QuietLoad {
    fn label(self) -> &'static str {
        match self {
            QuietLoad::Testbed => "Collector testbed's spans",
            QuietLoad::Realistic => "realistic spans",
        }
    }
}

/// The quiet relay's figures.
struct Quiet {
    load: QuietLoad,
    /// Mean bytes of one request of the load.
    request_bytes: usize,
    target: QuietTarget,
    /// `[runtime] workers` (0: one per core).
    workers: usize,
    spans_per_s: f64,
    /// The median over the rounds.
    core_percent: f64,
    /// The lowest and highest over the rounds.
    core_percent_range: (f64, f64),
    rounds: usize,
    rss_mib: f64,
    peak_rss_mib: f64,
}

impl Quiet {
    /// The rounds of one configuration as one row: the median CPU share and its range,
    /// the mean rate, the largest memory figures.
    fn combine(mut rounds: Vec<Quiet>) -> Option<Quiet> {
        rounds.sort_by(|a, b| a.core_percent.total_cmp(&b.core_percent));
        let count = rounds.len();
        let (low, high) = (rounds.first()?.core_percent, rounds.last()?.core_percent);
        let spans_per_s = rounds.iter().map(|r| r.spans_per_s).sum::<f64>() / count as f64;
        let rss_mib = rounds.iter().map(|r| r.rss_mib).fold(0.0, f64::max);
        let peak_rss_mib = rounds.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
        let median = rounds.swap_remove(count / 2);
        Some(Quiet {
            spans_per_s,
            core_percent_range: (low, high),
            rounds: count,
            rss_mib,
            peak_rss_mib,
            ..median
        })
    }
}

async fn quiet(
    binary: &std::path::Path,
    load: QuietLoad,
    requests: &[Bytes],
    span: Duration,
    target: QuietTarget,
    workers: usize,
) -> Result<Quiet, String> {
    let sink = start_ours(DecodeMode::Validate).await?;
    let relay = match target {
        QuietTarget::Relay => RelayProcess::start(binary, &sink.endpoint, false, workers)?,
        QuietTarget::BareH2 => RelayProcess::bare_h2(workers)?,
    };
    let client = exporter(&relay.endpoint)?;
    let pid = relay.pid();
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / QUIET_RATE);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One second to settle (connections, first batches), then the measured span.
    let mut sent = 0u64;
    let mut measured = None;
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < span + Duration::from_secs(1) {
        if measured.is_none() && started.elapsed() >= Duration::from_secs(1) {
            measured = Some((Instant::now(), cpu_time_of(&pid), sent));
        }
        ticker.tick().await;
        let bytes = requests[i % requests.len()].clone();
        i += 1;
        let request = ExportRequest::<Traces>::from_encoded(bytes, QUIET_SPANS);
        client.export(&request).await.map_err(|e| e.to_string())?;
        sent += QUIET_SPANS as u64;
    }
    let (from, cpu_before, sent_before) = measured.ok_or("the quiet run was too short")?;
    let (elapsed, cpu) = (from.elapsed(), cpu_time_of(&pid).saturating_sub(cpu_before));
    let memory = memory_of(&pid);
    if target == QuietTarget::Relay {
        delivered(&sink, 0, sent).await?;
    }
    drop(relay);
    (sink.stop)();
    Ok(Quiet {
        load,
        request_bytes: requests.iter().map(Bytes::len).sum::<usize>() / requests.len().max(1),
        target,
        workers,
        spans_per_s: (sent - sent_before) as f64 / elapsed.as_secs_f64(),
        core_percent: 100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64(),
        core_percent_range: (0.0, 0.0),
        rounds: 1,
        rss_mib: memory.0,
        peak_rss_mib: memory.1,
    })
}

/// Resident and peak resident memory of process `pid`, in MiB.
fn memory_of(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// How the quiet table names a `[runtime] workers` value.
fn quiet_runtime(workers: usize) -> String {
    match workers {
        0 => "default (a worker per core)".to_string(),
        1 => "`workers = 1`".to_string(),
        n => format!("`workers = {n}`"),
    }
}

fn report(quick: bool, rows: &[Row], quiet: &[Quiet]) -> Report {
    let mut markdown = format!(
        "## The relay as a gateway: gRPC in, batch ({BATCH_ITEMS} items, {} MiB, linger 50 ms), gRPC out{}\n\n\
         Clients send {REQUEST_SPANS}-span requests, {CONCURRENCY} in flight; the sink is our \
         validating gRPC receiver. Spans/s counts what reached the sink.\n\n\
         | path | spans | spans/s | CPU-ns/span | CPU of | cores busy |\n|---|---:|---:|---:|---|---:|\n",
        BATCH_BYTES >> 20,
        if quick { " (quick)" } else { "" }
    );
    for row in rows {
        markdown.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.2} |\n",
            row.label, row.spans, row.spans_per_s, row.cpu_ns_per_span, row.cpu_of, row.cpu_cores
        ));
    }
    if let [_, bytes, decoded] = rows {
        markdown.push_str(&format!(
            "\nBytes path vs decode to batch: {:.2}x the spans/s, {:.2}x less relay CPU per span.\n",
            bytes.spans_per_s / decoded.spans_per_s,
            decoded.cpu_ns_per_span / bytes.cpu_ns_per_span
        ));
    }
    markdown.push_str(&format!(
        "\n### Quiet relay: {QUIET_RATE} requests of {QUIET_SPANS} spans a second\n\n\
         The floor is a bare hyper HTTP/2 server (its own process) that reads each request \
         and answers OK: what the HTTP/2 stack and loopback cost before any OTLP work.\n\n\
         Each row is the median of {} interleaved rounds, with their range; `x floor` is the \
         relay's median over the floor's at the same load and runtime, which the machine's \
         drifting speed moves less than either.\n\n\
         | load (bytes a request) | process | runtime | spans/s | CPU (% of a core) | range | x floor | RSS (MiB) | peak RSS (MiB) |\n\
         |---|---|---|---:|---:|---|---:|---:|---:|\n",
        quiet.first().map_or(0, |row| row.rounds)
    ));
    // The relay's CPU over the floor's, at the same load and runtime.
    let over_floor = |row: &Quiet| {
        let floor = quiet.iter().find(|floor| {
            floor.target == QuietTarget::BareH2
                && floor.load == row.load
                && floor.workers == row.workers
        })?;
        (row.target == QuietTarget::Relay && floor.core_percent > 0.0)
            .then(|| row.core_percent / floor.core_percent)
    };
    for row in quiet {
        markdown.push_str(&format!(
            "| {} ({}) | {} | {} | {:.0} | {:.2} | {:.2}–{:.2} | {} | {:.1} | {:.1} |\n",
            row.load.label(),
            row.request_bytes,
            match row.target {
                QuietTarget::Relay => "relay (gRPC in, batch, gRPC out)",
                QuietTarget::BareH2 => "floor: bare hyper HTTP/2 server",
            },
            quiet_runtime(row.workers),
            row.spans_per_s,
            row.core_percent,
            row.core_percent_range.0,
            row.core_percent_range.1,
            over_floor(row).map_or(String::new(), |ratio| format!("{ratio:.2}x")),
            row.rss_mib,
            row.peak_rss_mib
        ));
    }
    let json = json!({
        "quick": quick,
        "batch_items": BATCH_ITEMS,
        "batch_bytes": BATCH_BYTES,
        "rows": rows.iter().map(|row| json!({
            "label": row.label,
            "spans": row.spans,
            "spans_per_s": row.spans_per_s,
            "cpu_ns_per_span": row.cpu_ns_per_span,
            "cpu_of": row.cpu_of,
            "cpu_cores": row.cpu_cores,
        })).collect::<Vec<_>>(),
        "quiet": quiet.iter().map(|quiet| json!({
            "load": match quiet.load {
                QuietLoad::Testbed => "testbed",
                QuietLoad::Realistic => "realistic",
            },
            "request_bytes": quiet.request_bytes,
            "process": match quiet.target {
                QuietTarget::Relay => "relay",
                QuietTarget::BareH2 => "bare_h2",
            },
            "workers": quiet.workers,
            "spans_per_s": quiet.spans_per_s,
            "core_percent": quiet.core_percent,
            "core_percent_range": [quiet.core_percent_range.0, quiet.core_percent_range.1],
            "over_floor": over_floor(quiet),
            "rounds": quiet.rounds,
            "rss_mib": quiet.rss_mib,
            "peak_rss_mib": quiet.peak_rss_mib,
        })).collect::<Vec<_>>(),
    });
    Report {
        name: "relay",
        markdown,
        json,
    }
}
