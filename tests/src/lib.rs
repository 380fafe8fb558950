//! Support for wasmtel's integration tests: the misbehaving guest plugins, the recorded Codex-like
//! session of `fixtures/`, and helpers to run configs in temporary directories.

mod fixture;
pub mod session;

use std::path::{Path, PathBuf};

pub use fixture::fixture;

/// The `rogue` test plugin: misbehaves as its config says (see `guests/rogue`).
pub const ROGUE: &str = concat!(env!("OUT_DIR"), "/rogue.wasm");
/// A component that exports `wasmtel:exporter/exporter@9.0.0`.
pub const FUTURE_VERSION: &str = concat!(env!("OUT_DIR"), "/future_version.wasm");
/// A complete exporter that also imports `test:extra/telepathy`.
pub const EXTRA_IMPORT: &str = concat!(env!("OUT_DIR"), "/extra_import.wasm");
/// A component that exports `wasmtel:exporter/exporter@0.1.0` with `init` alone.
pub const INCOMPLETE: &str = concat!(env!("OUT_DIR"), "/incomplete.wasm");

/// The one `.jsonl` file in `dir`.
pub fn only_jsonl(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one .jsonl file in {}: {files:?}",
        dir.display()
    );
    files.into_iter().next().expect("one file")
}

/// Writes `text` as `config.toml` into `dir` and loads it.
pub fn config(dir: &Path, text: &str) -> wasmtel::Config {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    wasmtel::Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Replays the fixture through the exporters of `config`; panics on an error.
pub fn replay_fixture(config: wasmtel::Config) -> wasmtel::ReplaySummary {
    let open = || std::fs::File::open(fixture()).map(std::io::BufReader::new);
    wasmtel::replay(
        "fixture",
        open,
        wasmtel::Telemetry::builder(config),
        |_, _| {},
    )
    .unwrap_or_else(|e| panic!("{}", e.chain()))
}

/// The final counters of the exporter named `name`.
pub fn exporter<'a>(summary: &'a wasmtel::ReplaySummary, name: &str) -> &'a wasmtel::ExporterStats {
    summary
        .exporter(name)
        .unwrap_or_else(|| panic!("no exporter {name} in {summary}"))
}

/// Asserts that an exporter exported `records` records and dropped none.
pub fn assert_delivered_all(stats: &wasmtel::ExporterStats, records: u64) {
    assert_eq!(
        (stats.records_exported, stats.dropped()),
        (records, 0),
        "{stats}"
    );
}

/// A line-by-line diff of two texts, for readable assertion messages: the first differing lines.
pub fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = format!("expected {} lines, got {}\n", e.len(), a.len());
    let mut shown = 0;
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y && shown < 5 {
            shown += 1;
            out += &format!(
                "line {}:\n  - {}\n  + {}\n",
                i + 1,
                x.unwrap_or(&"<none>"),
                y.unwrap_or(&"<none>")
            );
        }
    }
    out
}

/// The host's log, captured: see [`capture_log`].
#[derive(Clone, Default)]
pub struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    /// What was logged so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Makes the process's log subscriber write into memory, and returns what it writes. Once per
/// test binary: the subscriber is the process's.
pub fn capture_log() -> CapturedLog {
    let captured = CapturedLog::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    captured
}
