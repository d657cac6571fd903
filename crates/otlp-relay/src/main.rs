//! `otlp-relay`: receives OTLP over gRPC, HTTP and WebSocket and writes what it receives as
//! OTLP/JSON lines (one `Export*ServiceRequest` per line) to a file or standard output, with
//! a one-line live summary on standard error. SIGINT or SIGTERM stops it gracefully: the
//! receivers stop accepting, open requests finish and are written, then it exits.

#![forbid(unsafe_code)]

mod admin;
mod pipeline;
mod sink;
mod upstream;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use otlp_grpc::GrpcReceiver;
use otlp_http::HttpReceiver;
use otlp_websocket::WsReceiver;
use sink::{Counters, JsonLines};

const HELP: &str = "\
otlp-relay: OTLP over gRPC, HTTP and WebSocket in; OTLP/JSON lines out.

USAGE:
    otlp-relay [OPTIONS]

OPTIONS:
    --grpc-listen ADDR   OTLP/gRPC listener (default 0.0.0.0:4317; `off` to disable)
    --http-listen ADDR   OTLP/HTTP listener: /v1/traces, /v1/metrics, /v1/logs
                         (default 0.0.0.0:4318; `off` to disable)
    --ws-listen ADDR     OTLP over WebSocket listener, path /v1/stream
                         (default 0.0.0.0:4319; `off` to disable)
    --exporter KIND      where received telemetry goes: `file` (OTLP/JSON lines, the
                         default), `otlp` (upstream; see below) or `null` (discard)
    --output PATH        the file exporter's output: a file (appended), or `-` for
                         standard output (default `-`)
    --otlp-protocol P    the otlp exporter's protocol: grpc, http/protobuf, http/json or
                         websocket (default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf)
    --otlp-endpoint URL  the otlp exporter's endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT,
                         else localhost on the protocol's port)
    --admin-listen ADDR  GET /health (200 serving, 503 stopping) and GET /metrics
                         (Prometheus text) (default 0.0.0.0:13133; `off` to disable)
    --drain-timeout SECS how long a stop may take to export what is queued (default 10)
    --quiet              no live summary on standard error
    -h, --help           this text

Each line of the output is one ExportTraceServiceRequest, ExportMetricsServiceRequest or
ExportLogsServiceRequest in OTLP/JSON, the format the OpenTelemetry Collector's file
exporter writes. Between receivers and exporter each signal has a bounded queue, batching
(512 items or 200 ms) and retry by the OTLP classes. The otlp exporter also reads
OTEL_EXPORTER_OTLP_HEADERS, _COMPRESSION, _TIMEOUT, _CERTIFICATE, _CLIENT_CERTIFICATE,
_CLIENT_KEY and the per-signal OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT (HTTP).
SIGINT or SIGTERM stops the relay: receivers stop accepting, open requests finish, the
queues drain within the drain timeout, and what could not be sent is reported.
";

/// The command line, parsed.
#[derive(Debug)]
struct Options {
    grpc: Option<SocketAddr>,
    http: Option<SocketAddr>,
    ws: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    output: String,
    quiet: bool,
    exporter: String,
    otlp_protocol: Option<String>,
    otlp_endpoint: Option<String>,
    drain_timeout: Duration,
}

fn listen(flag: &str, value: Option<String>) -> Result<Option<SocketAddr>, String> {
    let value = value.ok_or_else(|| format!("{flag} needs an address (or `off`)"))?;
    if value == "off" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|e| format!("{flag} {value:?}: not an address like 0.0.0.0:4317 ({e})"))
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        grpc: Some(SocketAddr::from(([0, 0, 0, 0], 4317))),
        http: Some(SocketAddr::from(([0, 0, 0, 0], 4318))),
        ws: Some(SocketAddr::from(([0, 0, 0, 0], 4319))),
        admin: Some(SocketAddr::from(([0, 0, 0, 0], 13133))),
        output: "-".to_string(),
        quiet: false,
        exporter: "file".to_string(),
        otlp_protocol: None,
        otlp_endpoint: None,
        drain_timeout: Duration::from_secs(10),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--grpc-listen" => options.grpc = listen(&arg, args.next())?,
            "--http-listen" => options.http = listen(&arg, args.next())?,
            "--ws-listen" => options.ws = listen(&arg, args.next())?,
            "--admin-listen" => options.admin = listen(&arg, args.next())?,
            "--output" => {
                options.output = args.next().ok_or("--output needs a path (or `-`)")?;
            }
            "--quiet" => options.quiet = true,
            "--exporter" => {
                let kind = args.next().ok_or("--exporter needs file, otlp or null")?;
                if !matches!(kind.as_str(), "file" | "otlp" | "null") {
                    return Err(format!("--exporter {kind:?}: expected file, otlp or null"));
                }
                options.exporter = kind;
            }
            "--otlp-protocol" => {
                options.otlp_protocol = Some(args.next().ok_or("--otlp-protocol needs a value")?);
            }
            "--otlp-endpoint" => {
                options.otlp_endpoint = Some(args.next().ok_or("--otlp-endpoint needs a URL")?);
            }
            "--drain-timeout" => {
                let value = args.next().ok_or("--drain-timeout needs seconds")?;
                let seconds: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| format!("--drain-timeout {value:?}: not a number of seconds"))?;
                options.drain_timeout = Duration::from_secs_f64(seconds);
            }
            other => return Err(format!("unknown option {other:?}; see --help")),
        }
    }
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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

async fn run(options: Options) -> Result<(), String> {
    let counters = Arc::new(Counters::default());
    let exporter = match options.exporter.as_str() {
        "otlp" => upstream::build(
            options.otlp_protocol.as_deref(),
            options.otlp_endpoint.as_deref(),
            &|name| std::env::var(name).ok(),
        )?,
        "null" => pipeline::Exporter::Null,
        _ => {
            let output: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = if options.output == "-" {
                Box::new(tokio::io::stdout())
            } else {
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&options.output)
                    .await
                    .map_err(|e| format!("--output {}: {e}", options.output))?;
                Box::new(file)
            };
            pipeline::Exporter::File(JsonLines::new(output, counters.clone()))
        }
    };
    let pipelines = pipeline::Pipelines::new(&exporter);
    let sink = pipelines.entry();

    // Bind everything before serving anything: a bad address never leaves a half-started
    // relay behind.
    let grpc = match options.grpc {
        Some(address) => Some(
            GrpcReceiver::new(sink.clone())
                .bind(address)
                .await
                .map_err(|e| format!("--grpc-listen {address}: {e}"))?,
        ),
        None => None,
    };
    let http = match options.http {
        Some(address) => Some(
            HttpReceiver::new(sink.clone())
                .bind(address)
                .await
                .map_err(|e| format!("--http-listen {address}: {e}"))?,
        ),
        None => None,
    };
    let ws = match options.ws {
        Some(address) => Some(
            WsReceiver::new(sink.clone())
                .bind(address)
                .await
                .map_err(|e| format!("--ws-listen {address}: {e}"))?,
        ),
        None => None,
    };
    let admin_listener = match options.admin {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| format!("--admin-listen {address}: {e}"))?,
        ),
        None => None,
    };
    let admin = Arc::new(admin::Admin {
        stopping: std::sync::atomic::AtomicBool::new(false),
        queued: pipelines.queued.clone(),
        exported: pipelines.exported.clone(),
        file: counters.clone(),
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
    if let Some(r) = &grpc {
        listening.push(format!("gRPC {}", r.local_addr()));
    }
    if let Some(r) = &http {
        listening.push(format!("HTTP {}", r.local_addr()));
    }
    if let Some(r) = &ws {
        listening.push(format!("WebSocket {}/v1/stream", r.local_addr()));
    }
    eprintln!(
        "otlp-relay: listening on {}; writing OTLP/JSON lines to {}",
        listening.join(", "),
        if options.output == "-" {
            "standard output"
        } else {
            &options.output
        }
    );

    let summary = {
        let counters = counters.clone();
        let queued = pipelines.queued.clone();
        let exported = pipelines.exported.clone();
        let quiet = options.quiet;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if !quiet {
                    eprint!(
                        "\r{}",
                        summary_line(&counters, &queued.snapshot(), &exported.snapshot())
                    );
                }
            }
        })
    };
    wait_for_stop().await;
    admin.stopping.store(true, Ordering::Relaxed);
    eprintln!("\notlp-relay: stopping: letting open requests finish");
    if let Some(r) = grpc {
        r.shutdown().await;
    }
    if let Some(r) = http {
        r.shutdown().await;
    }
    if let Some(r) = ws {
        r.shutdown().await;
    }
    let left = pipelines.shutdown(options.drain_timeout).await;
    summary.abort();
    if let Some(task) = admin_task {
        task.abort();
    }
    eprintln!(
        "otlp-relay: stopped; {}; {left} items not sent by the drain deadline",
        summary_line(
            &counters,
            &pipelines.queued.snapshot(),
            &pipelines.exported.snapshot()
        )
    );
    Ok(())
}

fn summary_line(
    counters: &Counters,
    queued: &otlp_reliability::metrics::MetricsSnapshot,
    exported: &otlp_reliability::metrics::MetricsSnapshot,
) -> String {
    let dropped: u64 = queued.dropped.iter().chain(&exported.dropped).sum();
    format!(
        "pipeline: {} items in, {} sent, {} retried, {} dropped, {} queued; file: {} requests written, {} failed",
        queued.received,
        exported.sent,
        exported.retried,
        dropped,
        queued.queue_items,
        counters.written.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed),
    )
}

async fn wait_for_stop() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
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
        assert_eq!(options.grpc, Some("127.0.0.1:1".parse().expect("address")));
        assert_eq!(options.http, None);
        assert_eq!(options.output, "x.jsonl");
        let error = parse(args(&["--grpc-listen", "nowhere"])).expect_err("invalid");
        assert!(error.contains("--grpc-listen"), "{error}");
        assert!(parse(args(&["--bogus"])).is_err());
        assert!(parse(args(&["--help"])).expect("help").is_none());
    }
}
