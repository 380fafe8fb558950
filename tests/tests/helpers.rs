//! The helper libraries' own tests: `sdk/js/wasmtel.js` under Node.js and `sdk/python/wasmtel.py`
//! under CPython, their host imports stood in for (see `sdk/js/test`, `sdk/python/tests`); run
//! in the language's own test runner.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run the test runner");
    let text = wasmtel_tests::output_text(&output);
    assert!(output.status.success(), "{text}");
    text
}

#[test]
fn the_javascript_helper_library_passes_its_tests() {
    let text = run(Command::new("node")
        .args([
            "--import",
            "./test/register.mjs",
            "--test",
            "test/wasmtel.test.mjs",
        ])
        .current_dir(repo().join("sdk/js")));
    let passed = text
        .lines()
        .find_map(|l| l.strip_prefix("# pass ")?.parse::<u32>().ok());
    assert!(passed > Some(0) && text.contains("\n# fail 0\n"), "{text}");
}

#[test]
fn the_python_helper_library_passes_its_tests() {
    let text = run(Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "sdk/python/tests"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(repo()));
    let ran = text.lines().find_map(|l| {
        l.strip_prefix("Ran ")?
            .split(' ')
            .next()?
            .parse::<u32>()
            .ok()
    });
    assert!(ran > Some(0) && text.ends_with("\nOK\n"), "{text}");
}
