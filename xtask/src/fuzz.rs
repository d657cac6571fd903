//! `cargo xtask fuzz [--seconds N]`: builds the libFuzzer targets in `fuzz/` on the stable
//! toolchain (coverage instrumentation through stable `-C` flags; no sanitizer, so no
//! nightly) and runs each for a bounded time. Any crash, panic, leak past the RSS limit or
//! timeout fails the command.

use std::path::Path;
use std::process::Command;

const TARGETS: &[&str] = &[
    "decode_json",
    "decode_protobuf",
    "validate_protobuf",
    "decode_msgpack",
    "decode_cbor",
    "decompress",
    "grpc_framing",
    "stream_envelope",
    "websocket_message",
    "http_receiver",
];

/// Instrumentation flags libFuzzer needs, as cargo-fuzz passes them with `--sanitizer none`.
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions";

/// The host triple: RUSTFLAGS then apply to the targets only, not to build scripts.
const TARGET: &str = "x86_64-unknown-linux-gnu";

pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse::<u64>().map_err(|e| format!("--seconds: {e}")))
        .transpose()?
        .unwrap_or(10);
    let fuzz_dir = root.join("fuzz");
    let target_dir = root.join("target/fuzz");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&fuzz_dir)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        .status()
        .map_err(|e| format!("building fuzz targets: {e}"))?;
    if !status.success() {
        return Err(format!("building fuzz targets failed: {status}"));
    }
    for target in TARGETS {
        let corpus = target_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        seed(root, target, &corpus)?;
        let binary = target_dir.join(TARGET).join("release").join(target);
        println!("fuzz: {target} for {seconds} s");
        let output = Command::new(&binary)
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=1024")
            .arg("-timeout=10")
            .arg("-max_len=65536")
            .arg(format!("-artifact_prefix={}/", target_dir.display()))
            .arg(&corpus)
            .output()
            .map_err(|e| format!("running {}: {e}", binary.display()))?;
        let log = String::from_utf8_lossy(&output.stderr);
        if let Some(done) = log.lines().rev().find(|l| l.contains("DONE")) {
            println!("fuzz: {target}: {done}");
        }
        if !output.status.success() {
            return Err(format!("fuzz target {target} failed:\n{log}"));
        }
    }
    Ok(())
}

/// Seeds a corpus with valid inputs, so the fuzzer starts past the first byte.
fn seed(root: &Path, target: &str, corpus: &Path) -> Result<(), String> {
    if target != "decode_json" {
        return Ok(());
    }
    let data = root.join("crates/otlp-codec/tests/data");
    for entry in std::fs::read_dir(&data).map_err(|e| format!("{}: {e}", data.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, corpus.join(name))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}
