//! Shared by the build scripts of `host` and `tests` (which includes it by path): builds a cargo
//! workspace of plugins for `wasm32-wasip2` and copies each member's component into OUT_DIR as
//! `<name>.wasm`, the member's directory name with `_` for `-`.
//!
//! The nested build uses one target directory beside the outer one (`target/wasm-plugins`), so
//! plugins are built once whatever the outer profile, and share their dependencies.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

pub fn build_workspace(workspace: &str) {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .join(workspace)
        .canonicalize()
        .expect("the plugin workspace exists");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    for dir in ["src", "Cargo.toml", "Cargo.lock", ".cargo"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    let mut members = Vec::new();
    for entry in std::fs::read_dir(&workspace)
        .expect("the plugin workspace is readable")
        .flatten()
    {
        if entry.path().join("Cargo.toml").exists() {
            println!("cargo:rerun-if-changed={}", entry.path().display());
            members.push(entry.file_name().to_string_lossy().replace('-', "_"));
        }
    }
    let repo = workspace
        .ancestors()
        .find(|p| p.join("wit").is_dir())
        .expect("plugin workspaces live in the repository");
    println!("cargo:rerun-if-changed={}", repo.join("sdk").display());
    println!("cargo:rerun-if-changed={}", repo.join("wit").display());

    let target_dir = wasm_target_dir(&out_dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&workspace);
    // The outer build's settings are not the plugins' (they are for the host's target).
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    for (var, _) in std::env::vars() {
        if var.starts_with("CARGO_PROFILE_")
            || var.starts_with("CARGO_CFG_")
            || var.starts_with("CARGO_FEATURE_")
        {
            command.env_remove(var);
        }
    }
    let output = command.output().expect("cargo runs");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("may not be installed")
            || stderr.contains("can't find crate for `core`")
            || stderr.contains("can't find crate for `std`")
        {
            panic!(
                "\n\nThe {TARGET} target is missing. Add it with:\n\n    rustup target add {TARGET}\n\n{stderr}"
            );
        }
        panic!(
            "building the plugins in {} for {TARGET} failed:\n{stderr}",
            workspace.display()
        );
    }
    for name in &members {
        let built = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{name}.wasm"));
        std::fs::copy(&built, out_dir.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
    }
}

/// `<outer target dir>/wasm-plugins`.
pub fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    target_dir(out_dir).join("wasm-plugins")
}

/// The outer build's target directory, found from OUT_DIR (`<target>/<profile>/build/<pkg>/out`);
/// OUT_DIR itself where that is not its shape.
pub fn target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent()?.parent())
        .unwrap_or(out_dir)
        .to_path_buf()
}
