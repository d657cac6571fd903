//! Starting and stopping the real binaries, and reading what the relay wrote.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use otlp_codec::{Codec, Json};
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;

/// Kills a process the test started if the test ends early (a failed assertion), so that
/// no process outlives the test.
pub(crate) struct KillOnDrop(pub Option<u32>);

impl KillOnDrop {
    /// The process has exited and been waited for: its id may be reused, so never kill it.
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The address printed after `label` in the relay's banner.
pub(crate) fn address_after<'a>(line: &'a str, label: &str) -> &'a str {
    let start = line
        .find(label)
        .map(|i| i + label.len())
        .unwrap_or_else(|| panic!("{label:?} in the banner {line:?}"));
    line[start..]
        .split([',', ';', '/'])
        .next()
        .expect("an address")
        .trim()
}

/// A running relay and where it listens.
pub(crate) struct Relay {
    pub(crate) guard: KillOnDrop,
    pub(crate) child: std::process::Child,
    pub(crate) stderr: BufReader<std::process::ChildStderr>,
    pub(crate) grpc: String,
    pub(crate) http: String,
    pub(crate) banner: String,
}

impl Relay {
    /// The address after the `nth` (from 0) occurrence of `label` in the banner.
    pub(crate) fn banner_address(&self, label: &str, nth: usize) -> String {
        let (start, _) = self
            .banner
            .match_indices(label)
            .nth(nth)
            .unwrap_or_else(|| panic!("{label:?} #{nth} in the banner {:?}", self.banner));
        address_after(&self.banner[start..], label).to_string()
    }

    /// The endpoint of `protocol` (as the loadgen and the relay's otlp exporter name it).
    pub(crate) fn endpoint(&self, protocol: &str) -> String {
        match protocol {
            "grpc" | "grpc-stream" => format!("http://{}", self.grpc),
            "websocket" | "websocket/json" => format!("ws://{}/v1/stream", self.http),
            _ => format!("http://{}", self.http),
        }
    }
}

/// Starts the relay on loopback ports chosen by the system, with `extra` flags and `env`.
pub(crate) fn start_relay(extra: &[&str], env: &[(&str, &str)]) -> Relay {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otlp-relay"))
        .args([
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--quiet",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the relay");
    let guard = KillOnDrop(Some(child.id()));
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut banner = String::new();
    stderr.read_line(&mut banner).expect("banner");
    Relay {
        guard,
        grpc: address_after(&banner, "gRPC ").to_string(),
        http: address_after(&banner, "HTTP ").to_string(),
        banner,
        child,
        stderr,
    }
}

/// Sends SIGTERM, waits for a successful exit, and returns the rest of standard error.
pub(crate) fn stop(mut relay: Relay) -> String {
    let stopped = Command::new("kill")
        .args(["-TERM", &relay.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = relay.child.wait().expect("exit");
    relay.guard.disarm();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut relay.stderr, &mut rest);
    assert!(status.success(), "{status}: {rest}");
    rest
}

/// A fresh path in the temporary directory (removed first if it exists).
pub(crate) fn temp_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("otlp-relay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// OTLP/JSON lines, decoded by signal.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    pub(crate) traces: Vec<ExportTraceServiceRequest>,
    pub(crate) metrics: Vec<ExportMetricsServiceRequest>,
    pub(crate) logs: Vec<ExportLogsServiceRequest>,
}

/// Reads a file of OTLP/JSON lines (the relay's output, the loadgen's record).
pub(crate) fn read_lines(path: &Path) -> Lines {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let json = Json::default();
    let mut lines = Lines::default();
    for line in text.lines() {
        let bytes = line.as_bytes().to_vec().into();
        if line.starts_with("{\"resourceSpans\"") {
            lines.traces.push(json.decode(bytes).expect("traces line"));
        } else if line.starts_with("{\"resourceMetrics\"") {
            lines
                .metrics
                .push(json.decode(bytes).expect("metrics line"));
        } else if line.starts_with("{\"resourceLogs\"") {
            lines.logs.push(json.decode(bytes).expect("logs line"));
        } else {
            panic!("not an OTLP/JSON request line: {line:.120}");
        }
    }
    lines
}

/// The items of each signal, as `otlp_testkit::items` compares them.
pub(crate) fn item_sets(lines: Lines) -> [Vec<Vec<u8>>; 3] {
    [
        otlp_testkit::items(lines.traces),
        otlp_testkit::items(lines.metrics),
        otlp_testkit::items(lines.logs),
    ]
}

/// Runs `otlp-loadgen` with `args` and returns its JSON report; panics unless it succeeds.
pub(crate) fn loadgen(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_otlp-loadgen"))
        .args(args)
        .arg("--json")
        .stderr(Stdio::piped())
        .output()
        .expect("run otlp-loadgen");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "otlp-loadgen {args:?}: {}\n{report}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    report
}
