//! Repository rules, checked from `cargo metadata` and the manifests.
//!
//! Every workspace crate declares its layer in its manifest:
//!
//! ```toml
//! [package.metadata.otlp]
//! layer = "transport"
//! ```
//!
//! so a new crate (a new transport, say) is classified where it is written and nothing
//! else in the workspace changes. The rules are documented in docs/ARCHITECTURE.md.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Where a crate sits in the dependency graph. Dependencies point to lower layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Layer {
    /// Generated protocol types and helpers over them.
    Model,
    /// Shared traits: signals, the export shape, errors and status tables.
    Core,
    /// Transport-independent building blocks: codecs, compression, batching, reliability,
    /// the stream protocol. They never depend on each other unless the manifest says so.
    Block,
    /// One crate per transport. Never depends on another transport.
    Transport,
    /// Test support (strategies, fixtures): a dev-dependency, except for applications.
    Support,
    /// Binaries, benchmarks, test suites and xtask: the top of the graph.
    App,
}

impl Layer {
    fn parse(name: &str) -> Option<Layer> {
        Some(match name {
            "model" => Layer::Model,
            "core" => Layer::Core,
            "block" => Layer::Block,
            "transport" => Layer::Transport,
            "support" => Layer::Support,
            "app" => Layer::App,
            _ => return None,
        })
    }
}

/// Whether a dependency edge is a normal (or build) dependency or a dev-dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DepKind {
    Normal,
    Dev,
}

/// One workspace crate as the rules see it.
#[derive(Debug, Clone)]
pub(crate) struct Crate {
    pub(crate) name: String,
    /// `None` when the manifest does not declare a (known) layer.
    pub(crate) layer: Option<Layer>,
    /// Block crates this crate is explicitly allowed to use (`may-depend-on`).
    pub(crate) allowed_blocks: Vec<String>,
    /// Dependencies on workspace crates and on crates the rules watch, by name.
    pub(crate) deps: Vec<(String, DepKind)>,
    pub(crate) has_readme: bool,
    pub(crate) inherits_lints: bool,
    /// `[package.metadata.otlp] reference-baseline = true`: an application that measures
    /// against the official crates (the benchmarks) and may depend on them.
    pub(crate) reference_baseline: bool,
    /// The longest hand-written source file (under `src/` and `tests/`, generated code
    /// excluded) and its line count.
    pub(crate) longest_source: Option<(String, usize)>,
    /// Whether `src/lib.rs` carries [`NO_UNWRAP_ON_PEER_DATA`].
    pub(crate) denies_unwrap: bool,
}

/// No hand-written source file is longer than this: a module past it is split (a newcomer
/// should be able to hold one in their head).
pub(crate) const MAX_SOURCE_LINES: usize = 800;

/// What the `lib.rs` of every crate that handles peer data (model, core, blocks,
/// transports) says, so that clippy refuses `unwrap`/`expect` outside its tests.
pub(crate) const NO_UNWRAP_ON_PEER_DATA: &str =
    "#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]";

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) krate: String,
    pub(crate) rule: &'static str,
    pub(crate) detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.krate, self.rule, self.detail)
    }
}

/// SDK and reference crates that only tests may use: the building blocks must not
/// drag an SDK into users' builds.
const DEV_ONLY_EXTERNAL: &[&str] = &[
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry-proto",
    "opentelemetry-otlp",
];

/// Checks every rule and returns all violations, in crate order.
pub(crate) fn check(crates: &[Crate]) -> Vec<Violation> {
    let by_name: BTreeMap<&str, &Crate> = crates.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut violations = Vec::new();
    let mut violation = |krate: &Crate, rule: &'static str, detail: String| {
        violations.push(Violation {
            krate: krate.name.clone(),
            rule,
            detail,
        })
    };

    for krate in crates {
        if !krate.has_readme {
            violation(
                krate,
                "every crate has a README.md",
                "README.md not found".into(),
            );
        }
        if !krate.inherits_lints {
            violation(
                krate,
                "every crate inherits the workspace lints",
                "add `[lints] workspace = true` to its Cargo.toml".into(),
            );
        }
        if let Some((path, lines)) = &krate.longest_source
            && *lines > MAX_SOURCE_LINES
        {
            violation(
                krate,
                "no source file is longer than 800 lines",
                format!("{path} has {lines}; split the module"),
            );
        }
        if matches!(
            krate.layer,
            Some(Layer::Model | Layer::Core | Layer::Block | Layer::Transport)
        ) && !krate.denies_unwrap
        {
            violation(
                krate,
                "crates that handle peer data deny unwrap and expect outside tests",
                format!("add `{NO_UNWRAP_ON_PEER_DATA}` to src/lib.rs"),
            );
        }
        let Some(layer) = krate.layer else {
            violation(
                krate,
                "every crate declares its layer",
                "add `[package.metadata.otlp] layer = \"model|core|block|transport|support|app\"`"
                    .into(),
            );
            continue;
        };

        for (dep_name, kind) in &krate.deps {
            if DEV_ONLY_EXTERNAL.contains(&dep_name.as_str()) {
                let baseline = krate.reference_baseline && layer == Layer::App;
                if *kind == DepKind::Normal && !baseline {
                    violation(
                        krate,
                        "reference and SDK crates are dev-dependencies only",
                        format!("depends on {dep_name}"),
                    );
                }
                continue;
            }
            let Some(dep) = by_name.get(dep_name.as_str()) else {
                continue;
            };
            let Some(dep_layer) = dep.layer else { continue };
            if let Some(rule) = edge_rule(krate, layer, dep, dep_layer, *kind) {
                violation(krate, rule, format!("depends on {dep_name}"));
            }
        }
    }
    violations
}

/// The rule an edge breaks, if any.
fn edge_rule(
    krate: &Crate,
    layer: Layer,
    dep: &Crate,
    dep_layer: Layer,
    kind: DepKind,
) -> Option<&'static str> {
    if dep_layer == Layer::App {
        return Some("nothing depends on an application crate");
    }
    if dep_layer == Layer::Support {
        let allowed = kind == DepKind::Dev || layer == Layer::App;
        return (!allowed)
            .then_some("test-support crates are dev-dependencies (applications excepted)");
    }
    if kind == DepKind::Dev {
        // Tests of any crate may use any lower layer and same-layer blocks, but a transport's
        // tests must not reach into another transport.
        return (layer == Layer::Transport && dep_layer == Layer::Transport)
            .then_some("a transport never depends on another transport");
    }
    match (layer, dep_layer) {
        (Layer::Transport, Layer::Transport) => {
            Some("a transport never depends on another transport")
        }
        (Layer::Block, Layer::Block) if !krate.allowed_blocks.contains(&dep.name) => {
            Some("building blocks do not depend on each other (unless listed in may-depend-on)")
        }
        (Layer::Support, _) if dep_layer > Layer::Core => {
            Some("test support depends only on the model and core")
        }
        (Layer::App, _) => None,
        _ if dep_layer > layer => Some("dependencies point inward (to a lower layer)"),
        (Layer::Model, Layer::Model) | (Layer::Core, Layer::Core) => {
            Some("dependencies point inward (to a lower layer)")
        }
        _ => None,
    }
}

/// Reads the workspace through `cargo metadata` and each crate's manifest.
pub(crate) fn load_workspace(root: &Path) -> Result<Vec<Crate>, String> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .no_deps()
        .exec()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    let mut crates = Vec::new();
    for package in metadata.workspace_packages() {
        let otlp = package.metadata.get("otlp");
        let layer = otlp
            .and_then(|m| m.get("layer"))
            .and_then(serde_json::Value::as_str)
            .and_then(Layer::parse);
        let allowed_blocks = otlp
            .and_then(|m| m.get("may-depend-on"))
            .and_then(serde_json::Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let deps = package
            .dependencies
            .iter()
            .map(|d| {
                let kind = match d.kind {
                    cargo_metadata::DependencyKind::Development => DepKind::Dev,
                    _ => DepKind::Normal,
                };
                (d.name.clone(), kind)
            })
            .collect();
        let manifest = package.manifest_path.as_std_path();
        let dir = manifest.parent().unwrap_or(root);
        let manifest_text = std::fs::read_to_string(manifest)
            .map_err(|e| format!("reading {}: {e}", manifest.display()))?;
        let parsed: toml::Table = manifest_text
            .parse()
            .map_err(|e| format!("parsing {}: {e}", manifest.display()))?;
        let inherits_lints = parsed
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(toml::Value::as_bool)
            == Some(true);
        let reference_baseline = otlp
            .and_then(|m| m.get("reference-baseline"))
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        crates.push(Crate {
            name: package.name.to_string(),
            layer,
            allowed_blocks,
            deps,
            has_readme: dir.join("README.md").is_file(),
            inherits_lints,
            reference_baseline,
            longest_source: longest_source(dir)?,
            denies_unwrap: std::fs::read_to_string(dir.join("src/lib.rs"))
                .is_ok_and(|text| text.lines().any(|l| l.trim() == NO_UNWRAP_ON_PEER_DATA)),
        });
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(crates)
}

/// The longest `.rs` file under `dir/src` and `dir/tests` (generated code excluded), as a
/// path relative to `dir` and its line count.
fn longest_source(dir: &Path) -> Result<Option<(String, usize)>, String> {
    let mut longest: Option<(String, usize)> = None;
    let mut pending: Vec<std::path::PathBuf> =
        ["src", "tests"].iter().map(|d| dir.join(d)).collect();
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry
                .map_err(|e| format!("{}: {e}", folder.display()))?
                .path();
            if path.file_name().is_some_and(|n| n == "generated") {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let lines = text.lines().count();
                if longest.as_ref().is_none_or(|(_, most)| lines > *most) {
                    let shown = path
                        .strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    longest = Some((shown, lines));
                }
            }
        }
    }
    Ok(longest)
}

/// `cargo xtask tidy`.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let crates = load_workspace(root)?;
    let violations = check(&crates);
    if violations.is_empty() {
        println!("tidy: {} crates follow the repository rules", crates.len());
        return Ok(());
    }
    for v in &violations {
        eprintln!("tidy: {v}");
    }
    Err(format!(
        "{} repository rule violation(s); see docs/ARCHITECTURE.md",
        violations.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(name: &str, layer: Layer, deps: &[(&str, DepKind)]) -> Crate {
        Crate {
            name: name.into(),
            layer: Some(layer),
            allowed_blocks: Vec::new(),
            deps: deps.iter().map(|(n, k)| (n.to_string(), *k)).collect(),
            has_readme: true,
            inherits_lints: true,
            reference_baseline: false,
            longest_source: Some(("src/lib.rs".into(), 100)),
            denies_unwrap: true,
        }
    }

    use DepKind::{Dev, Normal};

    fn healthy() -> Vec<Crate> {
        vec![
            krate("otlp-model", Layer::Model, &[("opentelemetry-proto", Dev)]),
            krate("otlp-core", Layer::Core, &[("otlp-model", Normal)]),
            krate("otlp-codec", Layer::Block, &[("otlp-core", Normal)]),
            krate("otlp-compression", Layer::Block, &[("otlp-core", Normal)]),
            krate(
                "otlp-grpc",
                Layer::Transport,
                &[
                    ("otlp-codec", Normal),
                    ("otlp-compression", Normal),
                    ("otlp-testkit", Dev),
                ],
            ),
            krate("otlp-http", Layer::Transport, &[("otlp-codec", Normal)]),
            krate("otlp-testkit", Layer::Support, &[("otlp-model", Normal)]),
            krate(
                "otlp-relay",
                Layer::App,
                &[
                    ("otlp-grpc", Normal),
                    ("otlp-http", Normal),
                    ("otlp-testkit", Normal),
                ],
            ),
        ]
    }

    fn rules_broken(crates: &[Crate]) -> Vec<&'static str> {
        check(crates).into_iter().map(|v| v.rule).collect()
    }

    #[test]
    fn a_layered_workspace_passes() {
        assert_eq!(check(&healthy()), vec![]);
    }

    #[test]
    fn a_transport_depending_on_another_transport_fails() {
        let mut crates = healthy();
        crates[5].deps.push(("otlp-grpc".into(), Normal));
        assert_eq!(
            check(&crates),
            vec![Violation {
                krate: "otlp-http".into(),
                rule: "a transport never depends on another transport",
                detail: "depends on otlp-grpc".into(),
            }]
        );
        // Not even from its tests.
        crates[5].deps.last_mut().expect("pushed").1 = Dev;
        assert_eq!(
            rules_broken(&crates),
            vec!["a transport never depends on another transport"]
        );
    }

    #[test]
    fn an_outward_dependency_fails() {
        let mut crates = healthy();
        crates[0].deps.push(("otlp-core".into(), Normal));
        crates[2].deps.push(("otlp-grpc".into(), Normal));
        assert_eq!(
            rules_broken(&crates),
            vec![
                "dependencies point inward (to a lower layer)",
                "dependencies point inward (to a lower layer)"
            ]
        );
    }

    #[test]
    fn codec_and_compression_do_not_know_each_other_unless_allowed() {
        let mut crates = healthy();
        crates[2].deps.push(("otlp-compression".into(), Normal));
        assert_eq!(
            rules_broken(&crates),
            vec!["building blocks do not depend on each other (unless listed in may-depend-on)"]
        );
        crates[2].allowed_blocks.push("otlp-compression".into());
        assert_eq!(check(&crates), vec![]);
    }

    #[test]
    fn sdk_crates_and_test_support_stay_out_of_normal_dependencies() {
        let mut crates = healthy();
        crates[1].deps.push(("opentelemetry-proto".into(), Normal));
        crates[2].deps.push(("otlp-testkit".into(), Normal));
        assert_eq!(
            rules_broken(&crates),
            vec![
                "reference and SDK crates are dev-dependencies only",
                "test-support crates are dev-dependencies (applications excepted)"
            ]
        );
    }

    #[test]
    fn only_a_declared_benchmark_application_may_use_reference_crates() {
        let mut crates = healthy();
        crates[7].deps.push(("opentelemetry-proto".into(), Normal));
        assert_eq!(
            rules_broken(&crates),
            vec!["reference and SDK crates are dev-dependencies only"]
        );
        crates[7].reference_baseline = true;
        assert_eq!(check(&crates), vec![]);
        // The declaration means nothing outside the application layer.
        crates[1].reference_baseline = true;
        crates[1].deps.push(("opentelemetry-proto".into(), Normal));
        assert_eq!(
            rules_broken(&crates),
            vec!["reference and SDK crates are dev-dependencies only"]
        );
    }

    #[test]
    fn missing_readme_lints_or_layer_fail() {
        let mut crates = healthy();
        crates[3].has_readme = false;
        crates[4].inherits_lints = false;
        crates[6].layer = None;
        assert_eq!(
            rules_broken(&crates),
            vec![
                "every crate has a README.md",
                "every crate inherits the workspace lints",
                "every crate declares its layer"
            ]
        );
    }

    #[test]
    fn a_long_source_file_or_a_peer_data_crate_allowing_unwrap_fails() {
        let mut crates = healthy();
        crates[3].longest_source = Some(("src/big.rs".into(), MAX_SOURCE_LINES + 1));
        crates[4].denies_unwrap = false;
        // Test support and applications may choose.
        crates[6].denies_unwrap = false;
        crates[7].denies_unwrap = false;
        assert_eq!(
            rules_broken(&crates),
            vec![
                "no source file is longer than 800 lines",
                "crates that handle peer data deny unwrap and expect outside tests"
            ]
        );
    }

    #[test]
    fn nothing_depends_on_an_application() {
        let mut crates = healthy();
        crates[4].deps.push(("otlp-relay".into(), Dev));
        assert_eq!(
            rules_broken(&crates),
            vec!["nothing depends on an application crate"]
        );
    }

    #[test]
    fn this_workspace_follows_the_rules() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask is inside the workspace");
        let crates = load_workspace(root).expect("cargo metadata");
        assert!(crates.iter().any(|c| c.name == "otlp-model"));
        let violations = check(&crates);
        assert!(
            violations.is_empty(),
            "{}",
            violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
