//! Builds the built-in plugins (the `plugins/` workspace) for wasm32-wasip2 and puts the
//! components in OUT_DIR, where `src/builtin.rs` embeds them; and lists the files `wasmtel new`
//! writes (`OUT_DIR/templates.rs`, embedded by `src/new.rs`). Without the `runtime` feature there
//! is no host to embed them in, and nothing is built.

#[path = "wasm_build.rs"]
mod wasm_build;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    if std::env::var_os("CARGO_FEATURE_RUNTIME").is_none() {
        println!("cargo:rerun-if-changed=build.rs");
        return;
    }
    wasm_build::build_workspace("../plugins");
    templates();
}

/// What a new plugin project of each language is made of: (language, or `all`; the file or
/// directory in the repository; where it goes in the project; whether `{{name}}` and the like
/// are filled in).
const TEMPLATES: &[(&str, &str, &str, bool)] = &[
    ("all", "wit", "wit", false),
    ("all", "examples/plugins/expected", "expected", false),
    (
        "all",
        "tests/fixtures/codex-session.jsonl",
        "fixture.jsonl",
        false,
    ),
    ("rust", "host/templates/rust", "", true),
    ("rust", "sdk/src", "wasmtel-sdk/src", false),
    (
        "rust",
        "examples/plugins/csv-rust/src/lib.rs",
        "src/lib.rs",
        false,
    ),
    ("rust", "examples/plugins/Cargo.lock", "Cargo.lock", false),
    ("js", "host/templates/js", "", true),
    ("js", "sdk/js/wasmtel.js", "wasmtel.js", false),
    ("js", "examples/plugins/csv-js/csv.js", "plugin.js", false),
    ("python", "host/templates/python", "", true),
    ("python", "sdk/python/wasmtel.py", "wasmtel.py", false),
    (
        "python",
        "examples/plugins/csv-python/app.py",
        "app.py",
        false,
    ),
];

fn templates() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut code = String::from("&[\n");
    for &(lang, from, to, fill) in TEMPLATES {
        let from = repo.join(from);
        println!("cargo:rerun-if-changed={}", from.display());
        let mut files = Vec::new();
        walk(&from, &mut files);
        files.sort();
        for file in files {
            let relative = file.strip_prefix(&from).expect("under it");
            let dest = if relative.as_os_str().is_empty() {
                PathBuf::from(to)
            } else {
                Path::new(to).join(relative)
            };
            let dest = dest.to_str().expect("UTF-8 names");
            let source = file.canonicalize().expect("a file");
            writeln!(
                code,
                "    ({lang:?}, {dest:?}, include_bytes!({:?}), {fill}),",
                source.display()
            )
            .expect("to a string");
        }
    }
    code.push_str("]\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("templates.rs"), code).expect("OUT_DIR/templates.rs");
}

/// The files at `path` (itself, if it is a file), but Python's caches and `wit/released`.
fn walk(path: &Path, files: &mut Vec<PathBuf>) {
    if path.is_file() {
        files.push(path.to_path_buf());
        return;
    }
    for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        let path = entry.expect("an entry").path();
        // Python's caches; the frozen WIT versions a new plugin does not build against.
        if path
            .file_name()
            .is_some_and(|n| n == "__pycache__" || n == "released")
        {
            continue;
        }
        walk(&path, files);
    }
}
