//! Support for wasmtel's integration tests: the misbehaving guest plugins, the recorded Codex-like
//! session of `fixtures/`, and helpers to run configs in temporary directories.

mod fixture;
pub mod native_otlp;
pub mod receiver;
pub mod session;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use fixture::fixture;

/// The `rogue` test plugin: misbehaves as its config says (see `guests/rogue`).
pub const ROGUE: &str = concat!(env!("OUT_DIR"), "/rogue.wasm");
/// A component that exports `wasmtel:exporter/exporter@9.0.0`.
pub const FUTURE_VERSION: &str = concat!(env!("OUT_DIR"), "/future_version.wasm");
/// A complete exporter that also imports `test:extra/telepathy`.
pub const EXTRA_IMPORT: &str = concat!(env!("OUT_DIR"), "/extra_import.wasm");
/// A component built against the released 0.2.0 WIT that exports `wasmtel:exporter/exporter@0.2.0`
/// with `init` alone.
pub const INCOMPLETE: &str = concat!(env!("OUT_DIR"), "/incomplete.wasm");
/// A complete exporter built against the released WIT 0.2.0: it logs how many records each batch
/// holds.
pub const RELEASED_0_2_0: &str = concat!(env!("OUT_DIR"), "/released_0_2_0.wasm");
/// A complete exporter built against the released WIT 0.1.1: it writes a line per record of the
/// typed batches it gets to `records.txt` (see `guests/released-0-1-1`).
pub const RELEASED_0_1_1: &str = concat!(env!("OUT_DIR"), "/released_0_1_1.wasm");
/// An exporter of the `text-plugin` world: appends the lines of each batch to `lines.jsonl`,
/// without a resource line equal to the last.
pub const TEXT_LINES: &str = concat!(env!("OUT_DIR"), "/text_lines.wasm");
/// The CSV example exporter in Rust (`examples/plugins/csv-rust`).
pub const CSV_RUST: &str = concat!(env!("OUT_DIR"), "/csv_rust.wasm");
/// The CSV example exporter in JavaScript (`examples/plugins/csv-js`), built by ComponentizeJS.
pub const CSV_JS: &str = concat!(env!("OUT_DIR"), "/csv_js.wasm");
/// The CSV example exporter in Python (`examples/plugins/csv-python`), built by componentize-py.
pub const CSV_PYTHON: &str = concat!(env!("OUT_DIR"), "/csv_python.wasm");
/// ComponentizeJS, as the build script installed it.
pub const COMPONENTIZE_JS: &str = env!("COMPONENTIZE_JS");
/// Where the build script installed componentize-py (its `bin/componentize-py`, and the
/// `PYTHONPATH` it needs).
pub const PYTHON_TOOLS: &str = env!("PYTHON_TOOLS");
/// The target directory of the plugins the build script builds for wasm32-wasip2, whose compiled
/// dependencies a test's own plugin build reuses.
pub const WASM_TARGET_DIR: &str = env!("WASM_TARGET_DIR");
/// jsdom's package, installed by the build script: a DOM to run HTML pages' scripts in.
pub const JSDOM: &str = env!("JSDOM");
/// A core module in WAT made a component: 24 memories, each grown by 16 MiB every export call.
pub const MEMORIES: &str = concat!(env!("OUT_DIR"), "/memories.wasm");
/// A core module in WAT made a component: 2 tables, each grown by 32 M elements every export
/// call.
pub const TABLES: &str = concat!(env!("OUT_DIR"), "/tables.wasm");

/// Set in the process [`in_own_process`] starts.
const OWN_PROCESS: &str = "WASMTEL_TEST_OWN_PROCESS";

/// Runs the test `test` of the module `module` (its `module_path!()`) again, alone, in a process
/// of its own, where this call runs `body` and returns `None`; here it waits for that process,
/// fails if it failed, and returns its peak resident memory in MiB, as the kernel counts it
/// (`VmHWM` of /proc/self/status).
pub fn in_own_process(module: &str, test: &str, body: impl FnOnce()) -> Option<u64> {
    in_own_process_with_env(module, test, &[], body)
}

/// [`in_own_process`], the process given the variables `env` too.
pub fn in_own_process_with_env(
    module: &str,
    test: &str,
    env: &[(&str, &str)],
    body: impl FnOnce(),
) -> Option<u64> {
    const PEAK: &str = "peak resident memory (KiB): ";
    // The test harness names a test by its path without the crate.
    let test = match module.split_once("::") {
        Some((_, path)) => format!("{path}::{test}"),
        None => test.to_owned(),
    };
    if std::env::var_os(OWN_PROCESS).is_some() {
        body();
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .expect("VmHWM")
            .trim()
            .trim_end_matches("kB")
            .trim();
        println!("\n{PEAK}{kib}");
        return None;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([&test, "--exact", "--nocapture", "--test-threads=1"])
        .env(OWN_PROCESS, "1")
        .envs(env.iter().copied())
        .output()
        .expect("run the test again");
    let text = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{test}, in a process of its own, failed ({}):\n{text}",
        output.status
    );
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(PEAK))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("{test} ran no test, or said no peak:\n{text}"));
    Some(kib / 1024)
}

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

/// The `wasmtel` binary of this build (`cargo test --workspace` builds it for the host's tests).
pub fn wasmtel_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("wasmtel");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace` or `cargo build -p wasmtel`",
        bin.display()
    );
    bin
}

/// The `wasmtel` command, run in `dir`, inheriting none of the variables that change what it
/// does (`CODEX_OTEL_*`, `OTEL_*`, `TRACEPARENT`, `STATSIG_SERVER_SDK_SECRET`,
/// `WASMTEL_STATSIG_ENDPOINT`), so that a test sees the same wherever it runs.
pub fn wasmtel_command(dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(wasmtel_bin());
    command.current_dir(dir);
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name.starts_with("CODEX_OTEL_")
            || name.starts_with("OTEL_")
            || matches!(
                name.as_ref(),
                "TRACEPARENT"
                    | "TRACESTATE"
                    | "STATSIG_SERVER_SDK_SECRET"
                    | "WASMTEL_STATSIG_ENDPOINT"
            )
        {
            command.env_remove(&var);
        }
    }
    command
}

/// Runs `command` to its end, as `Command::output` does, but kills it and fails the test if it
/// runs longer than `limit`, saying what it printed so far.
pub fn output_within(command: &mut std::process::Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = KillOnDrop(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}")),
    );
    let child = &mut child.0;
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("piped")));
    let stderr = read(Box::new(child.stderr.take().expect("piped")));
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::process::Output {
        status: status.unwrap_or_default(),
        stdout: stdout.join().expect("read stdout"),
        stderr: stderr.join().expect("read stderr"),
    };
    assert!(
        status.is_some(),
        "{command:?} ran past {limit:?} and was killed; it printed:\n{}",
        output_text(&output)
    );
    output
}

/// A child process, killed (and waited for) when dropped: a failing test leaves none behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a run of the command printed: its stdout, then its stderr.
pub fn output_text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// Writes `text` as `config.toml` into `dir` and loads it.
pub fn config(dir: &Path, text: &str) -> wasmtel::Config {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    wasmtel::Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one instance of `plugin` (bytes, named `name`) with the sandbox directory `dir`: `init`
/// with `config`, one export of `batch`, `flush` and `shutdown`; panics on any error.
pub fn export_once(
    name: &str,
    plugin: &[u8],
    dir: &Path,
    config: &str,
    batch: &wasmtel::plugin::Batch,
) {
    use wasmtel::plugin::{Runtime, Sandbox};
    let plugin = Runtime::new(None)
        .expect("runtime")
        .load(name, plugin)
        .unwrap_or_else(|e| panic!("{name} loads: {e}"));
    let sandbox = Sandbox {
        dir: Some(dir.to_path_buf()),
        ..Sandbox::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut instance = plugin
            .instantiate(name, &sandbox)
            .await
            .expect("instantiate");
        instance.init(config, name, name).await.expect("init");
        instance.export(batch).await.expect("export");
        instance.flush().await.expect("flush");
        instance.shutdown().await.expect("shutdown");
    });
}

/// How many records the fixture holds (its lines but the resource line).
pub fn fixture_records() -> u64 {
    let text = std::fs::read_to_string(fixture()).expect("fixture");
    text.lines().count() as u64 - 1
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

/// Replays the fixture into a healthy file-jsonl exporter and a rogue one, of the plugin `plugin`
/// configured with `rogue` (the inside of its `config` table), `sandbox` (more keys of its sandbox table) and
/// `extra` (more keys of its exporter table).
/// Checks the healthy exporter's output is the whole fixture; returns the rogue's counters and
/// the number of records replayed.
pub fn beside_a_healthy_exporter(
    plugin: &str,
    rogue: &str,
    sandbox: &str,
    extra: &str,
) -> (wasmtel::ExporterStats, u64) {
    let tmp = tempfile::tempdir().expect("tempdir");
    beside_a_healthy_exporter_in(tmp.path(), plugin, rogue, sandbox, extra)
}

/// [`beside_a_healthy_exporter`] with its config in `dir`, and the sandbox directories
/// `dir/healthy` and `dir/rogue`.
pub fn beside_a_healthy_exporter_in(
    dir: &Path,
    plugin: &str,
    rogue: &str,
    sandbox: &str,
    extra: &str,
) -> (wasmtel::ExporterStats, u64) {
    let text = format!(
        "[telemetry]\nsession_id = \"faults\"\n\
         [exporters.healthy]\nplugin = \"file-jsonl\"\nsandbox = {{ dir = \"healthy\" }}\n\
         [exporters.rogue]\nplugin = {plugin:?}\nconfig = {{ {rogue} }}\nsandbox = {{ dir = \"rogue\"{sandbox} }}\n{extra}\n"
    );
    let summary = replay_fixture(config(dir, &text));
    let healthy = &summary.exporters[0];
    assert_eq!(
        (healthy.records_exported, healthy.dropped(), healthy.faults),
        (summary.records, 0, 0),
        "{healthy}"
    );
    let written =
        std::fs::read_to_string(only_jsonl(&dir.join("healthy"))).expect("healthy output");
    assert!(
        written == std::fs::read_to_string(fixture()).expect("fixture"),
        "the healthy output is complete"
    );
    let rogue = summary.exporters[1].clone();
    assert_eq!(rogue.pending, 0, "every record is accounted for: {rogue}");
    assert_eq!(
        rogue.records_exported + rogue.dropped(),
        summary.records,
        "{rogue}"
    );
    (rogue, summary.records)
}

/// The last error of an exporter, or nothing.
pub fn error_of(s: &wasmtel::ExporterStats) -> &str {
    s.last_error.as_deref().unwrap_or_default()
}

/// Checks that a faulting rogue dropped everything, had faults and restarts, and was parked, and
/// that its last error is one line naming the fault and one of `causes`.
pub fn faulted_and_parked(s: &wasmtel::ExporterStats, records: u64, causes: &[&str]) {
    assert_eq!((s.records_exported, s.dropped_failed), (0, records), "{s}");
    assert!(
        s.faults >= 3 && s.restarts >= s.faults - 1,
        "each fault threw the instance away: {s}"
    );
    assert_eq!(
        s.state,
        wasmtel::ExporterState::Parked,
        "it kept failing, so it is parked: {s}"
    );
    let error = error_of(s);
    assert!(
        error.contains("plugin fault") && causes.iter().any(|c| error.contains(c)),
        "{s}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");
}

/// How many times `limit` stopped the rogue.
pub fn passed(s: &wasmtel::ExporterStats, limit: wasmtel::Limit) -> u64 {
    s.limits_passed
        .iter()
        .find(|(l, _)| *l == limit)
        .map_or(0, |(_, n)| *n)
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
/// process: a test that calls it runs in a process of its own ([`in_own_process`]).
pub fn capture_log() -> CapturedLog {
    let captured = CapturedLog::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    captured
}
