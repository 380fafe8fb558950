//! The `wasmtel` command as a user runs it: real binary, real files, the embedded plugins.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../tests/src/fixture.rs"]
mod fixture;
use fixture::fixture;

/// Runs `wasmtel args` in `dir`; returns (success, stdout, stderr).
fn wasmtel(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmtel"))
        .args(args)
        .current_dir(dir)
        .env_remove("WASMTEL_LOG")
        .output()
        .expect("run wasmtel");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Replays the fixture with `dir`'s config.toml; returns (success, stdout, stderr).
fn replay_fixture(dir: &Path) -> (bool, String, String) {
    let fixture = fixture();
    let input = fixture.to_str().expect("utf-8");
    wasmtel(dir, &["replay", "--config", "config.toml", input])
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn replay_on_the_embedded_default_writes_every_record_into_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, stdout, stderr) = wasmtel(dir.path(), &["replay", fixture().to_str().expect("utf-8")]);
    assert!(ok, "{stderr}");
    let written: Vec<PathBuf> = files_under(&dir.path().join("logs"));
    assert_eq!(written.len(), 1, "{written:?}");
    let name = written[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("wasmtel-") && name.ends_with(".jsonl"),
        "{name}"
    );
    let expected = std::fs::read_to_string(fixture()).expect("fixture");
    assert_eq!(
        std::fs::read_to_string(&written[0]).expect("output"),
        expected
    );
    let records = expected.lines().count() - 1;
    assert!(
        stdout.starts_with(&format!(
            "replayed {records} records (and 1 resource) from "
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "session (file-jsonl): {records} exported, 0 dropped"
        )),
        "{stdout}"
    );
}

#[test]
fn replay_reads_standard_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = std::fs::File::open(fixture()).expect("fixture");
    let out = Command::new(env!("CARGO_BIN_EXE_wasmtel"))
        .args(["replay", "-"])
        .current_dir(dir.path())
        .stdin(input)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("from - in"));
    assert_eq!(files_under(&dir.path().join("logs")).len(), 1);
}

/// Runs a replay that must fail: one error line naming what is wrong, a failed exit, and
/// nothing written anywhere in `dir` but the inputs.
fn fails_cleanly(dir: &Path, args: &[&str], expected: &[&str]) {
    let before = files_under(dir);
    let (ok, stdout, stderr) = wasmtel(dir, args);
    assert!(!ok, "must fail: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "one error line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{part:?} not in {stderr:?}");
    }
    assert_eq!(files_under(dir), before, "nothing written");
}

fn with_config(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.toml"), text).expect("write config");
    dir
}

/// Replaying the fixture with the config `text` (and `files` beside it) fails cleanly with an
/// error that contains every part of `expected`.
fn config_fails(text: &str, files: &[(&str, &[u8])], expected: &[&str]) {
    let dir = with_config(text);
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).expect("write");
    }
    let fixture = fixture();
    let input = fixture.to_str().expect("utf-8");
    fails_cleanly(
        dir.path(),
        &["replay", "--config", "config.toml", input],
        expected,
    );
}

#[test]
fn an_unknown_config_key_is_named_with_file_and_line() {
    config_fails(
        "[telemetry]\nenabled = true\n\n[exporters.session]\nplugin = \"file-jsonl\"\nmax_batch = 10\n",
        &[],
        &[
            "config.toml:6:1",
            "`exporters.session.max_batch`",
            "unknown field `max_batch`",
            "expected one of",
        ],
    );
}

#[test]
fn a_wrong_type_is_named_with_its_key_path() {
    config_fails(
        "[exporters.session]\nplugin = \"file-jsonl\"\nqueue = { capacity = \"big\" }\n",
        &[],
        &[
            "config.toml:3:",
            "`exporters.session.queue.capacity`",
            "invalid type: string \"big\"",
        ],
    );
}

#[test]
fn a_bad_value_is_named_with_its_key_path() {
    config_fails(
        "[exporters.session]\nplugin = \"file-jsonl\"\nqueue = { max_batch = 0 }\n",
        &[],
        &[
            "config.toml:3:",
            "`exporters.session.queue.max_batch`",
            "nonzero",
        ],
    );
}

#[test]
fn a_missing_plugin_file_is_named() {
    config_fails(
        "[exporters.mine]\nplugin = \"plugins/missing.wasm\"\n",
        &[],
        &[
            "config.toml:2: exporter `mine`",
            "missing.wasm",
            "no such file",
        ],
    );
}

#[test]
fn a_component_that_is_not_an_exporter_is_refused() {
    // The smallest valid component: a header and nothing else, so it exports nothing.
    config_fails(
        "[exporters.mine]\nplugin = \"empty.wasm\"\n",
        &[("empty.wasm", b"\0asm\x0d\0\x01\0")],
        &[
            "exporter `mine`",
            "empty.wasm",
            "not a wasmtel exporter",
            "wasmtel:exporter/exporter@0.2.2",
            "its exports: none",
        ],
    );
}

#[test]
fn a_core_module_or_garbage_is_refused_with_what_it_is() {
    let config = "[exporters.mine]\nplugin = \"thing.wasm\"\n";
    config_fails(
        config,
        &[("thing.wasm", b"\0asm\x01\0\0\0")],
        &["thing.wasm", "core WebAssembly module"],
    );
    config_fails(
        config,
        &[("thing.wasm", b"hello, world")],
        &["thing.wasm", "not WebAssembly"],
    );
}

#[test]
fn an_invalid_record_line_is_named_by_number_and_nothing_is_exported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = std::fs::read_to_string(fixture()).expect("fixture");
    let mut lines: Vec<&str> = fixture.lines().collect();
    lines[2] = "{\"type\":\"event\",";
    std::fs::write(dir.path().join("input.jsonl"), lines.join("\n")).expect("write");
    fails_cleanly(
        dir.path(),
        &["replay", "input.jsonl"],
        &["input.jsonl:3: invalid JSON", "EOF"],
    );

    lines[2] = "{\"type\":\"event\",\"time\":\"2026-11-20T09:00:00Z\",\"colour\":\"blue\"}";
    std::fs::write(dir.path().join("input.jsonl"), lines.join("\n")).expect("write");
    fails_cleanly(
        dir.path(),
        &["replay", "input.jsonl"],
        &["input.jsonl:3: invalid record", "unknown field `colour`"],
    );
}

#[test]
fn check_reports_each_exporter() {
    let dir = with_config(
        "[exporters.good]\nplugin = \"file-jsonl\"\n[exporters.bad]\nplugin = \"gone.wasm\"\n",
    );
    let (ok, stdout, _) = wasmtel(dir.path(), &["check", "--config", "config.toml"]);
    assert!(!ok);
    assert!(stdout.contains("good: ok"), "{stdout}");
    assert!(
        stdout.contains("bad: error: config.toml:4: exporter `bad`: plugin `"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = wasmtel(dir.path(), &["check"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "session: ok\n");
}

#[test]
fn values_serde_accepts_but_the_config_does_not_are_located() {
    config_fails(
        "[exporters.otlp]\nplugin = \"file-jsonl\"\nsandbox = { allow_hosts = [\"ok:4318\", \"https://c.example.com/v1/logs\"] }\n",
        &[],
        &[
            "config.toml:3:39",
            "`exporters.otlp.sandbox.allow_hosts[1]`",
            "is not a host",
        ],
    );
    config_fails(
        "[exporters.session]\nplugin = \"file-jsonl\"\nsandbox = { disk_mib = 64 }\n\
         config = { max_total_bytes = 104857600 }\n",
        &[],
        &[
            "config.toml:2:10",
            "`exporters.session.config.max_total_bytes`",
            "104857600 bytes is more than `sandbox.disk_mib` lets the directory hold (64 MiB)",
        ],
    );
    config_fails(
        "[exporters.session]\nplugin = \"filejsonl\"\n",
        &[],
        &[
            "config.toml:2:10",
            "`exporters.session.plugin`",
            "unknown plugin `filejsonl`",
            "file-jsonl",
        ],
    );
}

#[test]
fn a_missing_input_is_named_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    fails_cleanly(
        dir.path(),
        &["replay", "missing.jsonl"],
        &["error: cannot open missing.jsonl: "],
    );
    let (_, _, stderr) = wasmtel(dir.path(), &["replay", "missing.jsonl"]);
    assert_eq!(
        stderr.matches("No such file").count(),
        1,
        "the cause once: {stderr}"
    );
}

#[test]
fn a_disabled_config_says_that_nothing_ran() {
    let dir = with_config("[telemetry]\nenabled = false\n");
    let (ok, stdout, stderr) = replay_fixture(dir.path());
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("no exporter ran: telemetry is disabled"),
        "{stdout}"
    );
    assert!(!dir.path().join("logs").exists(), "nothing written");
}

#[test]
fn strict_counts_drops_only_not_signals_an_exporter_leaves_out() {
    let dir =
        with_config("[exporters.events_only]\nplugin = \"file-jsonl\"\nsignals = [\"events\"]\n");
    let fixture = fixture();
    let args = ["replay", "--strict", "--config", "config.toml"];
    let (ok, stdout, stderr) = wasmtel(
        dir.path(),
        &[&args[..], &[fixture.to_str().expect("utf-8")]].concat(),
    );
    assert!(ok, "nothing was dropped: {stdout}{stderr}");
    assert!(stdout.contains("444 exported, 0 dropped"), "{stdout}");
}

#[test]
fn check_writes_nothing_and_deletes_nothing() {
    let dir = with_config(
        "[telemetry]\nsession_id = \"new\"\nmax_total_bytes = 10\n\
         [exporters.session]\nplugin = \"file-jsonl\"\n",
    );
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    std::fs::write(logs.join("wasmtel-old.jsonl"), "x".repeat(1000)).expect("an old log");
    let (ok, stdout, stderr) = wasmtel(dir.path(), &["check", "--config", "config.toml"]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout, "session: ok\n");
    assert_eq!(
        files_under(&logs),
        [logs.join("wasmtel-old.jsonl")],
        "no new file, and the old one, over budget, is kept"
    );
}

#[test]
fn a_replay_of_the_file_an_exporter_writes_is_refused_naming_both() {
    let dir = with_config("[telemetry]\nsession_id = \"X\"\n");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    let log = logs.join("wasmtel-X.jsonl");
    std::fs::copy(fixture(), &log).expect("a log of session X");
    let before = std::fs::read(&log).expect("read");
    let (ok, stdout, stderr) = wasmtel(
        dir.path(),
        &["replay", "--config", "config.toml", "logs/wasmtel-X.jsonl"],
    );
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("logs/wasmtel-X.jsonl is being written by exporter `session` (")
            && stderr.contains("wasmtel-X.jsonl)"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&log).expect("read"), before, "left as it was");
}

#[test]
fn an_old_log_replays_from_the_log_directory_even_under_budget_pressure() {
    // The old log is the exporter's and over budget: pruning may take its name, not the replay.
    let dir = with_config("[telemetry]\nsession_id = \"new\"\nmax_total_bytes = 1000\n");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    std::fs::copy(fixture(), logs.join("wasmtel-old.jsonl")).expect("an old log");
    let (ok, stdout, stderr) = wasmtel(
        dir.path(),
        &[
            "replay",
            "--config",
            "config.toml",
            "logs/wasmtel-old.jsonl",
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("583 exported, 0 dropped"), "{stdout}");
}

#[test]
fn two_exporters_that_would_write_one_file_are_a_config_error() {
    config_fails(
        "[exporters.events]\nplugin = \"file-jsonl\"\nsignals = [\"events\"]\n\
         [exporters.rest]\nplugin = \"file-jsonl\"\nsignals = [\"spans\", \"metrics\"]\n",
        &[],
        &["config.toml:5:10: `exporters.rest`: it would write the same files as exporter `events`"],
    );
    let dir = with_config(
        "[exporters.events]\nplugin = \"file-jsonl\"\nsignals = [\"events\"]\n\
         [exporters.rest]\nplugin = \"file-jsonl\"\nsignals = [\"spans\", \"metrics\"]\n\
         config = { file = \"rest-{session_id}.jsonl\" }\n",
    );
    let (ok, stdout, stderr) = wasmtel(dir.path(), &["check", "--config", "config.toml"]);
    assert!(ok, "another file name is another file: {stdout}{stderr}");
}

#[test]
fn concurrent_replays_into_one_directory_with_a_tiny_budget_delete_no_live_file() {
    let text = "[telemetry]\nmax_total_bytes = 1000\n\
                [exporters.session]\nplugin = \"file-jsonl\"\nconfig = { max_file_bytes = 0 }\n";
    let dir = with_config(text);
    // A long input, so that the processes overlap: the fixture five times over.
    let fixture = std::fs::read_to_string(fixture()).expect("fixture");
    std::fs::write(dir.path().join("long.jsonl"), fixture.repeat(5)).expect("input");
    let records = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with("{\"type\":\"resource\""))
            .map(str::to_string)
            .collect()
    };
    // This process writes a session of its own there too, live all along.
    let config = wasmtel::Config::from_file(&dir.path().join("config.toml")).expect("config");
    let live = wasmtel::Telemetry::builder(config)
        .cache_dir(None)
        .start()
        .expect("start");
    live.event("before").emit();
    assert!(live.flush(std::time::Duration::from_secs(10)));
    // Each process records its own session (a fresh id) into the same directory.
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_wasmtel"))
            .args(["replay", "--config", "config.toml", "long.jsonl"])
            .current_dir(dir.path())
            .env_remove("WASMTEL_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run wasmtel")
    };
    let (a, b) = (start(), start());
    for child in [a, b] {
        let out = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(" 0 dropped"), "{stdout}");
    }
    live.event("after").emit();
    let stats = live.shutdown().remove(0);
    assert_eq!((stats.records_exported, stats.dropped()), (2, 0), "{stats}");
    let logs = dir.path().join("logs");
    let own = logs.join(format!("wasmtel-{}.jsonl", live.session_id()));
    let own = std::fs::read_to_string(&own).expect("the live file was not deleted");
    assert_eq!(
        records(&own).len(),
        2,
        "both events, in the file that was live: {own}"
    );
    // The last process to finish wrote a live file to the end: it is there, whole. (The first
    // one's file, closed, may go to the budget.)
    let expected = records(&fixture.repeat(5));
    let complete = files_under(&logs)
        .iter()
        .filter(|p| records(&std::fs::read_to_string(p).expect("read")) == expected)
        .count();
    assert!(complete >= 1, "{:?}", files_under(&logs));
}

#[test]
fn a_second_process_writing_a_live_file_is_refused_naming_it() {
    let dir = with_config("[telemetry]\nsession_id = \"X\"\n");
    let config = wasmtel::Config::from_file(&dir.path().join("config.toml")).expect("config");
    let live = wasmtel::Telemetry::builder(config)
        .cache_dir(None)
        .start()
        .expect("start");
    let (ok, stdout, stderr) = replay_fixture(dir.path());
    assert!(ok, "a broken exporter costs only its own output: {stderr}");
    assert!(
        stdout.contains("session (file-jsonl): FAILED, 0 exported, 583 dropped")
            && stdout.contains("wasmtel-X.jsonl")
            && stdout.contains("another writer"),
        "{stdout}"
    );
    live.event("mine").emit();
    assert_eq!(live.shutdown()[0].records_exported, 1);
    let written = std::fs::read_to_string(dir.path().join("logs/wasmtel-X.jsonl")).expect("log");
    assert_eq!(
        written.lines().count(),
        2,
        "only the live writer's lines: {written}"
    );
}

#[test]
fn standard_input_is_read_in_bounded_memory() {
    use std::io::Write;
    // 64 lines of 1 MiB each, then an invalid line: the check fails at the end, after reading it
    // all, before any plugin starts.
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("big.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).expect("create"));
    let big = "x".repeat(1 << 20);
    for _ in 0..64 {
        writeln!(
            file,
            r#"{{"type":"event","time":"2026-11-20T09:00:00Z","name":"big","body":"{big}"}}"#
        )
        .expect("write");
    }
    writeln!(file, "not a record").expect("write");
    drop(file);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmtel"))
        .args(["replay", "-"])
        .current_dir(dir.path())
        .stdin(std::fs::File::open(&input).expect("input"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run wasmtel");
    // The peak resident size, as the kernel keeps it, read until the process ends.
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().expect("wait").is_none() {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("-:65: invalid JSON"), "{stderr}");
    assert!(peak_kib > 0, "the peak was read");
    assert!(
        peak_kib < 40 * 1024,
        "64 MiB of input, but a peak of {} MiB: it must not be held in memory",
        peak_kib / 1024
    );
}
