//! `cargo xtask ci`: every check CI runs, in the order that fails fastest.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::{codegen, deps, fuzz, tidy};

/// Runs each step and stops at the first failure.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let started = Instant::now();
    step("format", || {
        cargo(root, &["fmt", "--all", "--", "--check"], &[])
    })?;
    step("codegen --check", || codegen::run(root, true))?;
    step("tidy", || tidy::run(root))?;
    step("clippy", || {
        cargo(
            root,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        )
    })?;
    step("docs", || {
        cargo(
            root,
            &["doc", "--workspace", "--no-deps", "--all-features"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        )
    })?;
    let mut interop = None;
    step("interop dependencies", || {
        interop = Some(deps::run(root)?);
        Ok(())
    })?;
    let (python, node_modules) = interop
        .map(|env| {
            (
                env.python.display().to_string(),
                env.node_modules.display().to_string(),
            )
        })
        .unwrap_or_default();
    step("tests", || {
        cargo(
            root,
            &["test", "--workspace", "--all-features"],
            &[
                // Interop tests fail, rather than skip, when a reference tool is missing.
                ("OTLP_INTEROP_REQUIRED", "1"),
                ("OTLP_INTEROP_PYTHON", &python),
                ("OTLP_INTEROP_NODE_MODULES", &node_modules),
            ],
        )
    })?;
    step("fuzz (10 s per target)", || {
        fuzz::run(root, &["--seconds".to_string(), "10".to_string()])
    })?;
    // The benchmarks must keep running on a fresh clone; their figures are not checked
    // here (performance lives in the benchmarks, not in pass/fail tests).
    step("bench --quick (runs and finishes)", || {
        crate::bench(root, &["--quick".to_string()])
    })?;
    println!("xtask ci: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}

fn step(name: &str, body: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    println!("==> {name}");
    let started = Instant::now();
    let result = body().map_err(|e| format!("step `{name}` failed: {e}"));
    println!(
        "<== {name}: {} in {:.1?}",
        if result.is_ok() { "ok" } else { "FAILED" },
        started.elapsed()
    );
    result
}

fn cargo(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let status = command
        .status()
        .map_err(|e| format!("starting cargo {}: {e}", args.join(" ")))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} exited with {status}", args.join(" ")))
    }
}
