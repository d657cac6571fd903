//! `cargo xtask`: the repository's automation, in Rust so that it needs nothing but cargo.
//!
//! ```text
//! cargo xtask codegen [--check]   regenerate (or verify) the committed protobuf code
//! cargo xtask tidy                check the repository rules (dependency direction, lints, READMEs)
//! cargo xtask bench [suite]       benchmarks, optimised, results under target/bench/
//! cargo xtask fuzz [--seconds N]  build and run every fuzz target for a bounded time
//! cargo xtask deps                install what the interop tests run against
//! cargo xtask ci                  everything CI runs, in CI's order
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod ci;
mod codegen;
mod deps;
mod fuzz;
mod schema_gen;
mod tidy;
mod wire_gen;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  codegen [--check]   generate Rust types from proto/ into crates/otlp-model/src/generated
                      (--check: fail if the committed files are stale, change nothing)
  tidy                check repository rules: dependency direction, [lints] workspace = true,
                      a README.md in every crate
  bench [suite..] [--quick]
                      run benchmarks in release mode (suites: codecs, compression, grpc, http, websocket,
                      pipeline; default: all),
                      results in target/bench/
  fuzz [--seconds N]  build the libFuzzer targets in fuzz/ (stable toolchain) and run each
                      for N seconds (default 10)
  deps                install what the interop tests run against (reference CLI tools,
                      a Python environment under target/interop/python)
  ci                  run everything CI runs: fmt, codegen --check, tidy, clippy, docs,
                      deps, tests (interop tests required, not skipped)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args.first().map(String::as_str) {
        Some("codegen") => {
            let check = args.iter().any(|a| a == "--check");
            codegen::run(&root, check)
        }
        Some("tidy") => tidy::run(&root),
        Some("ci") => ci::run(&root),
        Some("bench") => bench(&root, &args[1..]),
        Some("fuzz") => fuzz::run(&root, &args[1..]),
        Some("deps") => deps::run(&root).map(|env| {
            println!("OTLP_INTEROP_PYTHON={}", env.python.display());
        }),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask bench`: the benchmarks run optimised, in their own binary.
fn bench(root: &Path, args: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(root)
        .args(["run", "--release", "--quiet", "-p", "otlp-bench", "--"])
        .args(args)
        .status()
        .map_err(|e| format!("starting the benchmarks: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("benchmarks exited with {status}"))
    }
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.to_path_buf())
}
