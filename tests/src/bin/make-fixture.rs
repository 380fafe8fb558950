//! Records the Codex-like session of `wasmtel_tests::session` through wasmtel into the built-in
//! file-jsonl, and copies what it wrote to the path given (default:
//! `tests/fixtures/codex-session.jsonl`).

use std::path::PathBuf;

fn main() {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(wasmtel_tests::fixture);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let recorded = wasmtel_tests::session::record_into(dir.path());
    std::fs::copy(&recorded, &out).expect("copy the recording");
    eprintln!("recorded the session into {}", out.display());
}
