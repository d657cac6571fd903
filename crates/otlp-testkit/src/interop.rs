//! Running programs no one here wrote (reference tools, official SDKs) from tests.
//!
//! `cargo xtask ci` installs them and sets `OTLP_INTEROP_REQUIRED=1`, which turns a missing
//! program into a test failure; a plain `cargo test` skips what is missing and says so.

use std::io::Write;
use std::process::{Command, Stdio};

/// Whether interop programs must be present (`OTLP_INTEROP_REQUIRED=1`).
pub fn required() -> bool {
    std::env::var_os("OTLP_INTEROP_REQUIRED").is_some_and(|v| v == "1")
}

/// The Python interpreter of the interop environment (`OTLP_INTEROP_PYTHON`, set by
/// `cargo xtask ci`), or `python3`.
pub fn python() -> String {
    std::env::var("OTLP_INTEROP_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The Chromium binary (`OTLP_INTEROP_CHROMIUM`, or `chromium` on the path: Debian's
/// package, installed by `cargo xtask ci`).
pub fn chromium() -> String {
    std::env::var("OTLP_INTEROP_CHROMIUM").unwrap_or_else(|_| "chromium".to_string())
}

/// The `node_modules` directory with the OpenTelemetry JS exporters
/// (`OTLP_INTEROP_NODE_MODULES`, set by `cargo xtask ci`), if known.
pub fn node_modules() -> Option<std::path::PathBuf> {
    std::env::var_os("OTLP_INTEROP_NODE_MODULES")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// Runs `program args` with `input` on stdin and returns its stdout. Returns `None`, after
/// printing why, when the program (or a Python module it imports) is missing and interop is
/// not required; panics on any other failure, or on a missing program when it is required.
pub fn run(program: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    run_with_env(program, args, &[], input)
}

/// [`run`] with extra environment variables.
pub fn run_with_env(
    program: &str,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
    input: &[u8],
) -> Option<Vec<u8>> {
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if !required() => {
            eprintln!("SKIPPED: {program} is not available ({e}); `cargo xtask ci` installs it");
            return None;
        }
        Err(e) => panic!("{program} is required (OTLP_INTEROP_REQUIRED=1) but cannot run: {e}"),
    };
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("wait for the program");
    writer
        .join()
        .expect("stdin writer thread")
        .expect("write the program's stdin");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let missing_module =
            stderr.contains("ModuleNotFoundError") || stderr.contains("Cannot find module");
        if !required() && missing_module {
            eprintln!("SKIPPED: {program} {args:?}: a Python module is missing: {stderr}");
            return None;
        }
        panic!("{program} {args:?} failed: {}\n{stderr}", output.status);
    }
    Some(output.stdout)
}
