//! Installs what the interop tests run against: reference command-line tools (Debian
//! packages), a Python environment with the packages in `tests/interop/requirements.txt`,
//! and the OpenTelemetry JS exporters of `tests/interop/node/package-lock.json`.
//! Idempotent: what is already there is not installed again.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages providing the reference tools, by the command they provide.
const CLI_TOOLS: &[(&str, &str)] = &[
    ("gzip", "gzip"),
    ("zstd", "zstd"),
    ("lz4", "lz4"),
    ("chromium", "chromium"),
];

/// Modules the Python environment must import.
const PYTHON_MODULES: &str = "import cramjam, lz4.frame, zstandard, opentelemetry.sdk, opentelemetry.exporter.otlp.json.common, opentelemetry.exporter.otlp.proto.grpc.trace_exporter, opentelemetry.exporter.otlp.proto.http.trace_exporter";

/// What the tests need to know about the installed environment.
pub(crate) struct InteropEnv {
    /// The Python interpreter of the interop environment.
    pub(crate) python: PathBuf,
    /// The `node_modules` directory with the JS exporters.
    pub(crate) node_modules: PathBuf,
}

/// Installs everything and returns where it is.
pub(crate) fn run(root: &Path) -> Result<InteropEnv, String> {
    ensure_cli_tools()?;
    let python = ensure_python(root)?;
    let node_modules = ensure_node(root)?;
    Ok(InteropEnv {
        python,
        node_modules,
    })
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

/// `npm ci` of the committed lock file into `target/interop/node`, redone when the lock
/// file changes.
fn ensure_node(root: &Path) -> Result<PathBuf, String> {
    let source = root.join("tests/interop/node");
    let target = root.join("target/interop/node");
    let lock = std::fs::read_to_string(source.join("package-lock.json"))
        .map_err(|e| format!("reading the npm lock file: {e}"))?;
    let stamp = target.join("lock.installed");
    let modules = target.join("node_modules");
    if std::fs::read_to_string(&stamp).unwrap_or_default() == lock && modules.is_dir() {
        println!("deps: Node packages up to date ({})", target.display());
        return Ok(modules);
    }
    println!("deps: installing Node packages in {}", target.display());
    std::fs::create_dir_all(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), target.join(file))
            .map_err(|e| format!("copying {file}: {e}"))?;
    }
    status(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&target),
    )?;
    std::fs::write(&stamp, lock).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(modules)
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
