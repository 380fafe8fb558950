//! Where the recorded Codex-like session is; shared by the test crate, the host's command-line
//! tests and its benchmarks.

use std::path::PathBuf;

/// The recorded Codex-like session, in the record format.
pub fn fixture() -> PathBuf {
    // Both crates that use it live one level below the repository root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/codex-session.jsonl")
}
