//! Protobuf code generation with prost-build, fed by protox (a protobuf compiler in Rust),
//! so no `protoc` binary is needed anywhere.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where the generated modules are committed.
pub(crate) const GENERATED_DIR: &str = "crates/otlp-model/src/generated";

/// The proto files we compile; their imports are found under `proto/`.
const PROTO_FILES: &[&str] = &[
    "opentelemetry/proto/common/v1/common.proto",
    "opentelemetry/proto/resource/v1/resource.proto",
    "opentelemetry/proto/trace/v1/trace.proto",
    "opentelemetry/proto/metrics/v1/metrics.proto",
    "opentelemetry/proto/logs/v1/logs.proto",
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
    "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
    "opentelemetry/proto/collector/logs/v1/logs_service.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
    "otlp_transport/v1/stream.proto",
];

/// The directories whose `.rs` files are entirely generated: any other `.rs` file there is
/// stale.
const GENERATED_DIRS: &[&str] = &[GENERATED_DIR, "crates/otlp-codec/src/generated"];

/// Generates into memory, then either replaces the committed files or, with `check`,
/// compares them and fails on any difference.
pub(crate) fn run(root: &Path, check: bool) -> Result<(), String> {
    let generated = generate(root)?;
    let mut committed = BTreeMap::new();
    for dir in GENERATED_DIRS {
        for (name, contents) in read_dir_files(&root.join(dir))? {
            committed.insert(format!("{dir}/{name}"), contents);
        }
    }
    if check {
        let stale = differences(&committed, &generated);
        if stale.is_empty() {
            println!(
                "codegen: {} generated files are up to date",
                generated.len()
            );
            return Ok(());
        }
        return Err(format!(
            "generated code is stale ({}); run `cargo xtask codegen` and commit the result",
            stale.join(", ")
        ));
    }
    for name in committed.keys() {
        if !generated.contains_key(name) {
            let path = root.join(name);
            fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        }
    }
    for (name, contents) in &generated {
        let path = root.join(name);
        if committed.get(name) != Some(contents) {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            fs::write(&path, contents).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
    }
    println!("codegen: wrote {} generated files", generated.len());
    Ok(())
}

/// Names of files that are missing, extra or different between the two sets.
fn differences(
    committed: &BTreeMap<String, String>,
    generated: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut stale = Vec::new();
    for (name, contents) in generated {
        match committed.get(name) {
            None => stale.push(format!("{name} missing")),
            Some(existing) if existing != contents => stale.push(format!("{name} differs")),
            Some(_) => {}
        }
    }
    for name in committed.keys() {
        if !generated.contains_key(name) {
            stale.push(format!("{name} is not generated any more"));
        }
    }
    stale
}

fn generate(root: &Path) -> Result<BTreeMap<String, String>, String> {
    let proto_root = root.join("proto");
    let files: Vec<PathBuf> = PROTO_FILES.iter().map(|f| proto_root.join(f)).collect();
    let descriptors =
        protox::compile(&files, [&proto_root]).map_err(|e| format!("compiling protos: {e}"))?;

    // Unique per call: tests run several generations at once in one process.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let scratch = std::env::temp_dir().join(format!("otlp-codegen-{}-{call}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).map_err(|e| format!("creating {}: {e}", scratch.display()))?;

    let mut config = prost_build::Config::new();
    config
        .out_dir(&scratch)
        // Ids, exemplar ids and `bytes` attribute values become `bytes::Bytes`: decoding from a
        // `Bytes` buffer then slices it instead of copying, and clones are O(1).
        .bytes(["."])
        .include_file("mod.rs");
    let schema = crate::schema_gen::generate(&descriptors)?;
    let wire = crate::wire_gen::generate(&descriptors)?;
    config
        .compile_fds(descriptors)
        .map_err(|e| format!("generating Rust code: {e}"))?;

    let mut generated = BTreeMap::new();
    for (name, contents) in read_dir_files(&scratch)? {
        generated.insert(
            format!("{GENERATED_DIR}/{name}"),
            format!(
                "// @generated by `cargo xtask codegen` from proto/. Do not edit by hand.\n{contents}"
            ),
        );
    }
    let _ = fs::remove_dir_all(&scratch);
    generated.insert(crate::schema_gen::OUTPUT.to_string(), schema);
    generated.insert(crate::wire_gen::OUTPUT.to_string(), wire);
    Ok(generated)
}

fn read_dir_files(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut files = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            let contents = fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            files.insert(entry.file_name().to_string_lossy().into_owned(), contents);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn identical_sets_are_fresh() {
        let a = set(&[("a.rs", "x"), ("b.rs", "y")]);
        assert!(differences(&a, &a.clone()).is_empty());
    }

    #[test]
    fn deleted_changed_and_extra_files_are_stale() {
        let generated = set(&[("a.rs", "x"), ("b.rs", "y")]);
        let committed = set(&[("b.rs", "edited"), ("old.rs", "z")]);
        let stale = differences(&committed, &generated);
        assert_eq!(
            stale,
            vec![
                "a.rs missing".to_string(),
                "b.rs differs".to_string(),
                "old.rs is not generated any more".to_string()
            ]
        );
    }
}

#[cfg(test)]
mod check_mode {
    use super::*;

    /// A scratch copy of `proto/` and the committed generated code.
    fn scratch_workspace(name: &str) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask is inside the workspace")
            .to_path_buf();
        let scratch = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&scratch);
        copy_tree(&root.join("proto"), &scratch.join("proto"));
        for dir in GENERATED_DIRS {
            copy_tree(&root.join(dir), &scratch.join(dir));
        }
        scratch
    }

    fn copy_tree(from: &Path, to: &Path) {
        fs::create_dir_all(to).expect("create scratch dir");
        for entry in fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            if path.is_dir() {
                copy_tree(&path, &to.join(entry.file_name()));
            } else {
                fs::copy(&path, to.join(entry.file_name())).expect("copy file");
            }
        }
    }

    #[test]
    fn committed_code_passes_check_and_a_deleted_file_fails_it() {
        let scratch = scratch_workspace("codegen-check");
        run(&scratch, true).expect("committed generated code is fresh");

        let victim = scratch
            .join(GENERATED_DIR)
            .join("opentelemetry.proto.trace.v1.rs");
        fs::remove_file(&victim).expect("delete a generated file");
        let error = run(&scratch, true).expect_err("check must fail on a missing file");
        assert!(
            error.contains("opentelemetry.proto.trace.v1.rs missing"),
            "{error}"
        );
        assert!(error.contains("run `cargo xtask codegen`"), "{error}");

        // Normal mode repairs it, after which the check passes again.
        run(&scratch, false).expect("regenerate");
        run(&scratch, true).expect("fresh after regeneration");
        let _ = fs::remove_dir_all(&scratch);
    }

    #[test]
    fn a_proto_change_makes_the_check_fail() {
        let scratch = scratch_workspace("codegen-proto-edit");
        let proto = scratch.join("proto/opentelemetry/proto/logs/v1/logs.proto");
        let text = fs::read_to_string(&proto).expect("read proto");
        let edited = text.replace(
            "string event_name = 12;",
            "string event_name = 12;\n  string extra = 13;",
        );
        fs::write(&proto, edited).expect("write proto");
        let error = run(&scratch, true).expect_err("stale after a proto edit");
        assert!(
            error.contains("opentelemetry.proto.logs.v1.rs differs"),
            "{error}"
        );
        let _ = fs::remove_dir_all(&scratch);
    }
}
