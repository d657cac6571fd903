//! Installs what the interop tests run against: reference command-line tools (Debian
//! packages) and a Python environment with the packages in `tests/interop/requirements.txt`.
//! Idempotent: what is already there is not installed again.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages providing the reference tools, by the command they provide.
const CLI_TOOLS: &[(&str, &str)] = &[("gzip", "gzip"), ("zstd", "zstd"), ("lz4", "lz4")];

/// Modules the Python environment must import.
const PYTHON_MODULES: &str = "import cramjam, lz4.frame, zstandard, opentelemetry.sdk, opentelemetry.exporter.otlp.json.common";

/// What the tests need to know about the installed environment.
pub(crate) struct InteropEnv {
    /// The Python interpreter of the interop environment.
    pub(crate) python: PathBuf,
}

/// Installs everything and returns where it is.
pub(crate) fn run(root: &Path) -> Result<InteropEnv, String> {
    ensure_cli_tools()?;
    let python = ensure_python(root)?;
    Ok(InteropEnv { python })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn ensure_cli_tools() -> Result<(), String> {
    let missing: Vec<&str> = CLI_TOOLS
        .iter()
        .filter(|(command, _)| !on_path(command))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        println!("deps: reference tools present ({})", names(CLI_TOOLS));
        return Ok(());
    }
    println!("deps: installing Debian packages {}", missing.join(" "));
    status(Command::new("apt-get").args(["update", "-qq"]))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn names(tools: &[(&str, &str)]) -> String {
    tools.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
}

fn ensure_python(root: &Path) -> Result<PathBuf, String> {
    let venv = root.join("target/interop/python");
    let python = venv.join("bin/python");
    let requirements = root.join("tests/interop/requirements.txt");
    let stamp = venv.join("requirements.installed");
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("reading {}: {e}", requirements.display()))?;
    let installed = std::fs::read_to_string(&stamp).unwrap_or_default();
    if python.is_file() && installed == wanted && imports(&python) {
        println!("deps: Python environment up to date ({})", venv.display());
        return Ok(python);
    }
    println!("deps: creating Python environment in {}", venv.display());
    let system_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    status(
        Command::new(&system_python)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    )?;
    status(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    if !imports(&python) {
        return Err(format!(
            "{} cannot `{PYTHON_MODULES}` after installing",
            python.display()
        ));
    }
    std::fs::write(&stamp, wanted).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(python)
}

fn imports(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", PYTHON_MODULES])
        .status()
        .is_ok_and(|s| s.success())
}

fn status(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|e| format!("starting {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} exited with {status}"))
    }
}
