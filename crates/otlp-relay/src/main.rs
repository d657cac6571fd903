//! `otlp-relay`: receives OTLP over gRPC, HTTP and WebSocket and sends it on, per signal
//! through a queue, batching and retry, to OTLP/JSON lines (one `Export*ServiceRequest` per
//! line) in a file or standard output, an OTLP upstream, or nowhere; with a one-line live
//! summary on standard error. SIGINT or SIGTERM stops it gracefully: the receivers stop
//! accepting, open requests finish, the queues drain within a deadline, and what could not
//! be sent is reported.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use otlp_core::SignalKind;
use otlp_net::budget::MemoryBudget;
use otlp_net::intake::IntakeConfig;
use otlp_net::listener::ListenerLimits;
use otlp_relay::config::{Config, ExporterKind, Interval, Listen};
use otlp_relay::pipeline::{self, Exporter};
use otlp_relay::receivers::{ReceiverContext, ReceiverKinds};
use otlp_relay::sink::{Counters, JsonLines, Output, RotatingFile};
use otlp_relay::{admin, upstream};
use otlp_stream::DedupWindow;

const HELP: &str = "\
otlp-relay: OTLP over gRPC, HTTP and WebSocket in; OTLP/JSON lines or an OTLP upstream out.

USAGE:
    otlp-relay [OPTIONS]

OPTIONS:
    --config FILE        a TOML configuration read over the embedded defaults (see
                         --print-config and relay.example.toml); the flags below override it
    --print-config       print the configuration in effect (defaults, file, flags) and exit
    --grpc-listen ADDR   OTLP/gRPC listener (default 127.0.0.1:4317; `off` to disable)
    --http-listen ADDR   OTLP/HTTP listener: /v1/traces, /v1/metrics, /v1/logs, and OTLP over
                         WebSocket at /v1/stream (default 127.0.0.1:4318; `off` to disable)
    --ws-listen ADDR     a WebSocket listener of its own, path /v1/stream (default off)
    --admin-listen ADDR  GET /health (200 serving, 503 stopping) and GET /metrics
                         (Prometheus text) (default 127.0.0.1:13133; `off` to disable)
    --exporter KIND      where received telemetry goes: `file` (OTLP/JSON lines, the
                         default), `otlp` (upstream; see below) or `null` (discard)
    --output PATH        the file exporter's output: a file (appended, rotated when
                         exporter.file.rotate_bytes is set), or `-` for standard output
    --otlp-protocol P    the otlp exporter's protocol: grpc, grpc-stream, http/protobuf,
                         http/json, http/msgpack, http/cbor, websocket or websocket/json
                         (default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf)
    --otlp-endpoint URL  the otlp exporter's endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT,
                         else localhost on the protocol's port)
    --drain-timeout DUR  how long a stop may take to export what is queued (default 10s)
    --quiet              no live summary on standard error
    -h, --help           this text

Each line of the file exporter's output is one ExportTraceServiceRequest,
ExportMetricsServiceRequest or ExportLogsServiceRequest in OTLP/JSON, the format the
OpenTelemetry Collector's file exporter writes. Between receivers and exporter each signal
has a bounded queue, batching and retry by the OTLP classes ([pipeline] in the file).
Settings of [exporter.otlp] left unset come from OTEL_EXPORTER_OTLP_ENDPOINT, _PROTOCOL,
_HEADERS, _COMPRESSION, _TIMEOUT, _CERTIFICATE, _CLIENT_CERTIFICATE and _CLIENT_KEY, each
first from its per-signal variant (OTEL_EXPORTER_OTLP_TRACES_*, _METRICS_*, _LOGS_*).
A configuration error names the key and the line and nothing starts. SIGINT or SIGTERM
stops the relay: receivers stop accepting, open requests finish, the queues drain within
the drain timeout, and what could not be sent is reported.
";

/// What the command line asks for.
#[derive(Debug)]
struct Options {
    config: Config,
    quiet: bool,
    print_config: bool,
}

fn listen(flag: &str, value: Option<String>) -> Result<Listen, String> {
    let value = value.ok_or_else(|| format!("{flag} needs an address (or `off`)"))?;
    Listen::parse(&value).map_err(|e| format!("{flag}: {e}"))
}

/// Parses the flags; `--config` is read first wherever it appears, so the other flags
/// always override the file.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let args: Vec<String> = args.into_iter().collect();
    let mut config = Config::default();
    if let Some(i) = args.iter().position(|a| a == "--config") {
        let path = args.get(i + 1).ok_or("--config needs a file")?;
        config = Config::from_file(std::path::Path::new(path)).map_err(|e| e.to_string())?;
    }
    let mut options = Options {
        config,
        quiet: false,
        print_config: false,
    };
    let config = &mut options.config;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--config" => {
                args.next();
            }
            "--print-config" => options.print_config = true,
            "--grpc-listen" => config.receivers.grpc.listen = listen(&arg, args.next())?,
            "--http-listen" => config.receivers.http.listen = listen(&arg, args.next())?,
            "--ws-listen" => config.receivers.websocket.listen = listen(&arg, args.next())?,
            "--admin-listen" => config.admin.listen = listen(&arg, args.next())?,
            "--output" => {
                config.exporter.file.path = args.next().ok_or("--output needs a path (or `-`)")?;
                config.exporter.kind = ExporterKind::File;
            }
            "--quiet" => options.quiet = true,
            "--exporter" => {
                let kind = args.next().ok_or("--exporter needs file, otlp or null")?;
                config.exporter.kind = match kind.as_str() {
                    "file" => ExporterKind::File,
                    "otlp" => ExporterKind::Otlp,
                    "null" => ExporterKind::Null,
                    _ => return Err(format!("--exporter {kind:?}: expected file, otlp or null")),
                };
            }
            "--otlp-protocol" => {
                config.exporter.otlp.protocol =
                    Some(args.next().ok_or("--otlp-protocol needs a value")?);
            }
            "--otlp-endpoint" => {
                config.exporter.otlp.endpoint =
                    Some(args.next().ok_or("--otlp-endpoint needs a URL")?);
            }
            "--drain-timeout" => {
                let value = args.next().ok_or("--drain-timeout needs a duration")?;
                // A bare number is seconds, as the flag always took.
                let text = if value.parse::<f64>().is_ok() {
                    format!("{value}s")
                } else {
                    value
                };
                config.pipeline.drain_timeout =
                    Interval::parse(&text).map_err(|e| format!("--drain-timeout: {e}"))?;
            }
            other => return Err(format!("unknown option {other:?}; see --help")),
        }
    }
    options.config.check().map_err(text)?;
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("otlp-relay: {error}");
            return ExitCode::from(2);
        }
    };
    if options.print_config {
        print!("{}", options.config.to_toml());
        return ExitCode::SUCCESS;
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if options.config.runtime.workers > 0 {
        runtime.worker_threads(options.config.runtime.workers);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("otlp-relay: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("otlp-relay: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The receiver kinds the relay serves: a new transport crate's factory is registered
/// here (`.with(factory)`).
fn relay_receivers() -> ReceiverKinds {
    ReceiverKinds::builtin()
}

/// The upstream protocols the relay exports with: a new transport crate's factory is
/// registered here (`.with(factory)`).
fn relay_upstreams() -> otlp_relay::factories::Upstreams {
    otlp_relay::factories::Upstreams::builtin()
}

/// The exporter of each signal, in `SignalKind::ALL` order, and the pipeline's backstop
/// deadline per attempt: a second past the longest of the OTLP exporters' own; none for
/// the file and null exporters (a write cut short would leave a partial line).
async fn exporters(
    config: &Config,
    counters: &Arc<Counters>,
) -> Result<([Exporter; 3], Option<Duration>), String> {
    let settings = &config.exporter;
    let mut longest = None;
    let exporters = match settings.kind {
        ExporterKind::Otlp => {
            let env = |name: &str| std::env::var(name).ok();
            let mut most = Duration::ZERO;
            for signal in SignalKind::ALL {
                most = most.max(upstream::timeout(&settings.otlp, signal, &env).map_err(text)?);
            }
            longest = Some(most + Duration::from_secs(1));
            let upstreams = relay_upstreams();
            let [traces, metrics, logs] = SignalKind::ALL;
            [
                upstreams
                    .build(&settings.otlp, traces, &env)
                    .map_err(text)?,
                upstreams
                    .build(&settings.otlp, metrics, &env)
                    .map_err(text)?,
                upstreams.build(&settings.otlp, logs, &env).map_err(text)?,
            ]
        }
        ExporterKind::Null => [Exporter::Null, Exporter::Null, Exporter::Null],
        ExporterKind::File => {
            let file = &settings.file;
            let output = if file.path == "-" {
                Output::Stream(Box::new(tokio::io::stdout()))
            } else {
                Output::File(
                    RotatingFile::open(file.path.clone().into(), file.rotate_bytes, file.keep)
                        .await
                        .map_err(|e| format!("exporter.file.path {}: {e}", file.path))?,
                )
            };
            let lines = Exporter::File(JsonLines::new(output, counters.clone()));
            [lines.clone(), lines.clone(), lines]
        }
    };
    Ok((exporters, longest))
}

async fn bind<F, T>(key: &str, listen: Listen, bind: F) -> Result<Option<T>, String>
where
    F: AsyncFnOnce(std::net::SocketAddr) -> std::io::Result<T>,
{
    match listen.0 {
        Some(address) => bind(address)
            .await
            .map(Some)
            .map_err(|e| format!("{key} {address}: {e}")),
        None => Ok(None),
    }
}

/// The binary reports every error as text.
fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

async fn run(options: Options) -> Result<(), String> {
    let mut signals = StopSignals::listen()?;
    let config = options.config;
    let counters = Arc::new(Counters::default());
    let (exporters, attempt_timeout) = exporters(&config, &counters).await?;
    let pipelines = pipeline::build(exporters, &config.pipeline, attempt_timeout);
    let receivers = &config.receivers;
    // Every receiver section is prepared (parsed, certificates read) before anything
    // binds: a bad setting starts nothing.
    let prepared = relay_receivers().prepare(receivers).map_err(text)?;
    let max_request = usize::try_from(receivers.max_request_bytes).unwrap_or(usize::MAX);
    let budget = (receivers.memory_budget_bytes > 0).then(|| {
        MemoryBudget::new(usize::try_from(receivers.memory_budget_bytes).unwrap_or(usize::MAX))
    });
    // The stream receivers' de-duplication windows count against the same budget, at
    // their bound, for the relay's life, so the stated budget covers them too. Together
    // they take at most a sixteenth of it (fewer ids are remembered under a small budget).
    let stream_receivers: usize = prepared.iter().map(|p| p.stream_windows()).sum();
    let default_capacity = otlp_grpc::ReceiverConfig::default().dedup_capacity;
    let dedup_capacity = match &budget {
        Some(budget) => {
            let share = budget.limit() / 16 / stream_receivers.max(1);
            (share / DedupWindow::new(1).bound_bytes()).clamp(1, default_capacity)
        }
        None => default_capacity,
    };
    let windows = stream_receivers * DedupWindow::new(dedup_capacity).bound_bytes();
    let _windows = otlp_net::budget::reserve(budget.as_ref(), windows).map_err(|e| {
        format!("receivers.memory_budget_bytes cannot hold the de-duplication windows: {e}")
    })?;
    // Every receiver takes requests in with the same settings.
    let context = ReceiverContext {
        sink: pipelines.entry(),
        intake: IntakeConfig {
            memory_budget: budget.clone(),
            ..IntakeConfig::default()
        }
        .with_max_request_bytes(max_request),
        listener: ListenerLimits {
            max_connections: receivers.max_connections,
            ..ListenerLimits::default()
        },
        auth: receivers.bearer_auth().map_err(text)?,
        allowed_origins: receivers.allowed_origins.clone(),
        dedup_capacity,
    };
    let mut started = Vec::new();
    for receiver in prepared {
        started.push(receiver.start(&context).await.map_err(text)?);
    }
    let admin_listener = bind("admin.listen", config.admin.listen, async |address| {
        tokio::net::TcpListener::bind(address).await
    })
    .await?;
    let admin = Arc::new(admin::Admin {
        stopping: std::sync::atomic::AtomicBool::new(false),
        pipeline: pipelines.counters().clone(),
        file: counters.clone(),
        budget: budget.clone(),
    });
    let mut listening = Vec::new();
    let admin_task = match admin_listener {
        Some(listener) => {
            if let Ok(address) = listener.local_addr() {
                listening.push(format!("admin {address}"));
            }
            Some(tokio::spawn(admin::serve(listener, admin.clone())))
        }
        None => None,
    };
    listening.extend(started.iter().flat_map(|r| r.listening.iter().cloned()));
    let destination = match config.exporter.kind {
        ExporterKind::File if config.exporter.file.path == "-" => {
            "writing OTLP/JSON lines to standard output".to_string()
        }
        ExporterKind::File => format!("writing OTLP/JSON lines to {}", config.exporter.file.path),
        ExporterKind::Otlp => "exporting to the OTLP upstream".to_string(),
        ExporterKind::Null => "discarding what arrives".to_string(),
    };
    eprintln!(
        "otlp-relay: listening on {}; {destination}",
        listening.join(", ")
    );

    let summary = {
        let counters = counters.clone();
        let pipeline = pipelines.counters().clone();
        let quiet = options.quiet;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if !quiet {
                    eprint!("\r{}", summary_line(&counters, &pipeline.snapshot()));
                }
            }
        })
    };
    signals.next().await;
    admin.stopping.store(true, Ordering::Relaxed);
    eprintln!(
        "\notlp-relay: stopping: letting open requests finish (a second signal stops at once)"
    );
    // One deadline for the whole stop: the receivers stop together and whatever time they
    // leave is the pipelines' to drain in.
    let deadline = tokio::time::Instant::now() + config.pipeline.drain_timeout.0;
    let stopping = async {
        let remaining = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut stops = tokio::task::JoinSet::new();
        for receiver in started {
            stops.spawn(receiver.shutdown_within(remaining()));
        }
        while stops.join_next().await.is_some() {}
        pipelines.shutdown(remaining()).await
    };
    let left = tokio::select! {
        left = stopping => Some(left),
        () = signals.next() => None,
    };
    summary.abort();
    if let Some(task) = admin_task {
        task.abort();
    }
    let books = pipelines.counters().snapshot();
    match left {
        Some(left) => eprintln!(
            "otlp-relay: stopped; {}; {left} items not sent by the drain deadline",
            summary_line(&counters, &books)
        ),
        None => {
            // Stopped by a second signal: what was neither sent nor dropped yet is
            // abandoned, and said so, so the books still balance.
            let abandoned = books
                .received
                .saturating_sub(books.sent)
                .saturating_sub(books.dropped_total());
            eprintln!(
                "otlp-relay: stopped at once by a second signal; {}; {abandoned} items abandoned",
                summary_line(&counters, &books)
            );
        }
    }
    Ok(())
}

fn summary_line(counters: &Counters, books: &otlp_reliability::metrics::MetricsSnapshot) -> String {
    format!(
        "pipeline: {} items in, {} sent, {} retried, {} dropped, {} queued; file: {} requests written, {} failed",
        books.received,
        books.sent,
        books.retried,
        books.dropped_total(),
        books.queue_items,
        counters.written.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed),
    )
}

/// SIGINT and SIGTERM, listened for from the start: a stop that arrives while the relay is
/// still starting is not left to the default action, which would end the process without
/// draining or reporting.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> Result<Self, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind| signal(kind).map_err(|e| format!("listening for signals: {e}"));
            Ok(Self {
                interrupt: listen(SignalKind::interrupt())?,
                terminate: listen(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_and_bad_values_name_the_flag() {
        let options = parse(args(&[
            "--grpc-listen",
            "127.0.0.1:1",
            "--http-listen",
            "off",
            "--output",
            "x.jsonl",
        ]))
        .expect("valid")
        .expect("options");
        let config = &options.config;
        assert_eq!(
            config.receivers.grpc.listen,
            Listen(Some("127.0.0.1:1".parse().expect("address")))
        );
        assert_eq!(config.receivers.http.listen, Listen::OFF);
        assert_eq!(config.exporter.file.path, "x.jsonl");
        let error = parse(args(&["--grpc-listen", "nowhere"])).expect_err("invalid");
        assert!(error.contains("--grpc-listen"), "{error}");
        assert!(parse(args(&["--bogus"])).is_err());
        assert!(parse(args(&["--help"])).expect("help").is_none());
    }
}
