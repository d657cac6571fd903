//! `cargo xtask`: the repository's automation, in Rust so that it needs nothing but cargo.
//!
//! ```text
//! cargo xtask codegen [--check]   regenerate (or verify) the committed protobuf code
//! cargo xtask tidy                check the repository rules (dependency direction, lints, READMEs)
//! cargo xtask bench [suite] [--quick] [--readme]  benchmarks, optimised, results under target/bench/
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
  bench [suite..] [--quick] [--readme]
                      run benchmarks in release mode (suites: codecs, compression, pipeline, grpc, http,
                      websocket, scenarios, relay; default: all, then the summary beside the design document's
                      tables), results in target/bench/ (Markdown, JSON, summary.svg); --quick: under two
                      minutes; --readme: the summary replaces the README's benchmark section
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

/// `cargo xtask bench`: the benchmarks run optimised, in their own binary. With
/// `--readme` (and every suite), the measured summary replaces the README's benchmark
/// section, so the figures there are the ones the code printed.
pub(crate) fn bench(root: &Path, args: &[String]) -> Result<(), String> {
    let readme = args.iter().any(|a| a == "--readme");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--readme").collect();
    let relay_only = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .eq(["relay"].iter());
    if readme && !relay_only && args.iter().any(|a| !a.starts_with("--") && *a != "all") {
        return Err("--readme needs every suite (no suite names), or the relay suite alone".into());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The relay suite runs the relay binary, which must sit beside the benchmarks'.
    let suites: Vec<&str> = args
        .iter()
        .map(|a| a.as_str())
        .filter(|a| !a.starts_with("--"))
        .collect();
    if suites.is_empty() || suites.iter().any(|s| matches!(*s, "all" | "relay")) {
        let built = std::process::Command::new(&cargo)
            .current_dir(root)
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "otlp-relay",
                "--bin",
                "otlp-relay",
            ])
            .status()
            .map_err(|e| format!("building the relay: {e}"))?;
        if !built.success() {
            return Err(format!("building the relay exited with {built}"));
        }
    }
    let status = std::process::Command::new(cargo)
        .current_dir(root)
        .args(["run", "--release", "--quiet", "-p", "otlp-bench", "--"])
        .args(&args)
        .status()
        .map_err(|e| format!("starting the benchmarks: {e}"))?;
    if !status.success() {
        return Err(format!("benchmarks exited with {status}"));
    }
    if readme {
        let path = root.join("README.md");
        let mut text =
            std::fs::read_to_string(&path).map_err(|e| format!("reading README.md: {e}"))?;
        let mut sections = vec![("relay.md", RELAY_BEGIN, RELAY_END)];
        if !relay_only {
            sections.push(("summary.md", BENCH_BEGIN, BENCH_END));
        }
        for (file, begin, end) in sections {
            let body = std::fs::read_to_string(root.join("target/bench").join(file))
                .map_err(|e| format!("reading target/bench/{file}: {e}"))?;
            text = splice_bench_section(&text, begin, end, &body)?;
            println!("README.md: section {begin} replaced by target/bench/{file}");
        }
        std::fs::write(&path, text).map_err(|e| format!("writing README.md: {e}"))?;
    }
    Ok(())
}

const BENCH_BEGIN: &str = "<!-- bench:begin (written by `cargo xtask bench --readme`) -->";
const BENCH_END: &str = "<!-- bench:end -->";
const RELAY_BEGIN: &str =
    "<!-- bench-relay:begin (written by `cargo xtask bench relay --readme`) -->";
const RELAY_END: &str = "<!-- bench-relay:end -->";

/// `text` with everything between the markers `open` and `close` replaced by `summary`
/// (its headings demoted below the README's own section heading).
fn splice_bench_section(
    text: &str,
    open: &str,
    close: &str,
    summary: &str,
) -> Result<String, String> {
    let begin = text
        .find(open)
        .ok_or_else(|| format!("README.md has no {open:?} marker"))?
        + open.len();
    let end = text[begin..]
        .find(close)
        .map(|i| begin + i)
        .ok_or_else(|| format!("README.md has no {close:?} marker"))?;
    let body: String = summary
        .lines()
        .map(|line| {
            if line.starts_with('#') {
                format!("##{line}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    Ok(format!("{}\n{body}{}", &text[..begin], &text[end..]))
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.to_path_buf())
}

#[cfg(test)]
mod bench_tests {
    use super::*;

    #[test]
    fn the_readme_section_is_replaced_between_the_markers_only() {
        let readme = format!("intro\n{BENCH_BEGIN}\nold figures\n{BENCH_END}\noutro\n");
        let updated = splice_bench_section(&readme, BENCH_BEGIN, BENCH_END, "# Title\n| a |\n")
            .expect("markers");
        assert_eq!(
            updated,
            format!("intro\n{BENCH_BEGIN}\n### Title\n| a |\n{BENCH_END}\noutro\n")
        );
        assert!(splice_bench_section("no markers", BENCH_BEGIN, BENCH_END, "x").is_err());
    }
}
