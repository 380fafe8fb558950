//! `wasmtel new`: a project of each language builds with its one command (`sh test.sh`) and
//! passes its fixture test as made; names and directories in use are refused.

use std::path::Path;

use wasmtel_tests::{
    COMPONENTIZE_JS, PYTHON_TOOLS, WASM_TARGET_DIR, output_text, wasmtel_bin, wasmtel_command,
};

fn new(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = wasmtel_command(dir)
        .arg("new")
        .args(args)
        .output()
        .expect("run wasmtel");
    (output.status.success(), output_text(&output))
}

#[test]
fn a_project_of_each_language_builds_and_passes_its_fixture_test() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for lang in ["rust", "js", "python"] {
        let name = format!("my-{lang}");
        let (ok, text) = new(tmp.path(), &[&name, "--lang", lang]);
        assert!(ok, "{text}");
        assert!(text.starts_with(&format!("made {name} (")), "{text}");
        // Its one command, with the tools the build script installed instead of installing them
        // again, and the Rust build reusing the compiled dependencies of the examples.
        let output = std::process::Command::new("sh")
            .arg(tmp.path().join(&name).join("test.sh"))
            .env("WASMTEL", wasmtel_bin())
            .env("COMPONENTIZE_JS", COMPONENTIZE_JS)
            .env(
                "COMPONENTIZE_PY",
                Path::new(PYTHON_TOOLS).join("bin/componentize-py"),
            )
            .env("PYTHONPATH", PYTHON_TOOLS)
            .env("CARGO_TARGET_DIR", WASM_TARGET_DIR)
            .output()
            .expect("run test.sh");
        let text = output_text(&output);
        assert!(output.status.success(), "{lang}: {text}");
        assert!(
            text.contains(
                " on fixture.jsonl did what expected holds (5 calls, 1 log lines, 1 files)"
            ),
            "{lang}: {text}"
        );
    }
}

#[test]
fn a_bad_name_or_a_directory_in_use_is_refused_and_nothing_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for bad in ["Csv", "9lives", "a b", "../up", "ü", "test", "wasmtel-sdk"] {
        let (ok, text) = new(tmp.path(), &[bad, "--lang", "rust"]);
        assert!(!ok, "{bad}: {text}");
        assert!(
            text.contains(&format!("`{bad}` cannot name a plugin")),
            "{text}"
        );
    }
    std::fs::create_dir(tmp.path().join("taken")).expect("mkdir");
    std::fs::write(tmp.path().join("taken/mine.txt"), "keep").expect("write");
    let (ok, text) = new(tmp.path(), &["taken", "--lang", "js"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("taken exists and is not an empty directory: nothing was written"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).expect("ls").count(),
        1,
        "only the directory in use"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("taken"))
            .expect("ls")
            .count(),
        1
    );
}
