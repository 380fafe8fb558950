//! The built-in file-jsonl plugin, run as a component: file naming and the directory budget.

use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, SystemTime};

use wasmtel::{Telemetry, replay};
use wasmtel_tests::{config, fixture};

/// Writes `bytes` bytes at `path`, starting as file-jsonl's files do if `like_a_log`, and makes
/// the file `age_hours` old.
fn write_old_file(path: &Path, bytes: usize, age_hours: u64, like_a_log: bool) {
    let mut content = if like_a_log {
        b"{\"type\":\"resource\",\"attributes\":{}}\n".to_vec()
    } else {
        Vec::new()
    };
    content.resize(bytes, b'x');
    std::fs::write(path, content).expect("write");
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    file.set_modified(SystemTime::now() - Duration::from_secs(age_hours * 3600))
        .expect("set mtime");
}

/// An old log of file-jsonl's.
fn write_old(path: &Path, bytes: usize, age_hours: u64) {
    write_old_file(path, bytes, age_hours, true);
}

/// Replays the fixture with `text` as the config; returns the log directory.
fn replay_with(dir: &Path, text: &str) -> std::path::PathBuf {
    let config = config(dir, text);
    let open = || std::fs::File::open(fixture()).map(BufReader::new);
    let summary = replay("fixture", open, Telemetry::builder(config), |_, _| {}).expect("replay");
    assert_eq!(summary.exporters[0].dropped(), 0, "{summary}");
    dir.join("logs")
}

#[test]
fn only_files_named_exactly_as_the_exporters_and_written_by_it_are_pruned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    // Named as `{session_id}.jsonl` would name them; only the first is a log of file-jsonl's.
    write_old(&logs.join("old.jsonl"), 1000, 30);
    write_old_file(&logs.join("important.jsonl"), 1000, 40, false);
    // Named as `telemetry.jsonl` begins, though not that name.
    write_old(&logs.join("telemetry.jsonl.bak"), 1000, 50);
    replay_with(
        tmp.path(),
        "[telemetry]\nsession_id = \"now\"\nmax_total_bytes = 10\n\
         [exporters.session]\nplugin = \"file-jsonl\"\nconfig = { file = \"{session_id}.jsonl\", max_file_bytes = 0 }\n",
    );
    let exists = |name: &str| logs.join(name).exists();
    assert!(!exists("old.jsonl"), "the exporter's own old log goes");
    assert!(exists("important.jsonl"), "not written by it: kept");
    assert!(
        exists("telemetry.jsonl.bak"),
        "not named by its pattern: kept"
    );
    assert!(exists("now.jsonl"));

    replay_with(
        tmp.path(),
        "[telemetry]\nsession_id = \"x\"\nmax_total_bytes = 10\n\
         [exporters.session]\nplugin = \"file-jsonl\"\nconfig = { file = \"telemetry.jsonl\", max_file_bytes = 0 }\n",
    );
    assert!(
        exists("telemetry.jsonl.bak"),
        "a fixed name matches itself only"
    );
    assert!(exists("telemetry.jsonl"));
}

#[test]
fn over_budget_the_oldest_files_of_the_exporter_are_deleted_and_nothing_else() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    write_old(&logs.join("codex-session-a.jsonl"), 200_000, 30);
    write_old(&logs.join("codex-session-b.jsonl"), 200_000, 20);
    write_old(&logs.join("codex-session-c.jsonl"), 200_000, 10);
    write_old(&logs.join("codex-tui.log"), 300_000, 40);
    let config = config(
        tmp.path(),
        "[telemetry]\nsession_id = \"now\"\nmax_total_bytes = 1000000\n\
         [exporters.session]\nplugin = \"file-jsonl\"\nconfig = { file = \"codex-session-{session_id}.jsonl\", max_file_bytes = 0 }\n",
    );
    let open = || std::fs::File::open(fixture()).map(BufReader::new);
    let summary = replay("fixture", open, Telemetry::builder(config), |_, _| {}).expect("replay");
    assert_eq!(summary.exporters[0].dropped(), 0);

    let active = std::fs::metadata(logs.join("codex-session-now.jsonl"))
        .expect("the active file")
        .len();
    assert!(
        active > 300_000,
        "the fixture is large enough to pass the budget: {active}"
    );
    let exists = |name: &str| logs.join(name).exists();
    assert!(
        exists("codex-tui.log"),
        "a file that is not the exporter's is never deleted"
    );
    assert!(
        !exists("codex-session-a.jsonl"),
        "the oldest of the exporter's files went first"
    );
    let left: u64 = std::fs::read_dir(&logs)
        .expect("ls")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum();
    assert!(
        left <= 1_000_000,
        "the directory fits its budget again: {left}"
    );
    assert!(
        exists("codex-session-c.jsonl"),
        "only as many as needed were deleted"
    );
}

#[test]
fn the_file_name_takes_the_session_id_and_a_plain_name_is_required() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = config(
        tmp.path(),
        "[telemetry]\nsession_id = \"s-42\"\n[exporters.session]\nplugin = \"file-jsonl\"\nconfig = { file = \"run-{session_id}.jsonl\", max_total_bytes = 0 }\n",
    );
    let telemetry = Telemetry::start(good).expect("start");
    telemetry.event("hello").emit();
    telemetry.shutdown();
    let text =
        std::fs::read_to_string(tmp.path().join("logs/run-s-42.jsonl")).expect("named by session");
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.contains("\"name\":\"hello\"")),
        "{text}"
    );

    for (bad, expected) in [
        (
            "config = { file = \"../up.jsonl\" }",
            "`file` must be a plain file name",
        ),
        ("config = { flie = \"x.jsonl\" }", "unknown field `flie`"),
    ] {
        let bad = config(
            tmp.path(),
            &format!("[exporters.session]\nplugin = \"file-jsonl\"\n{bad}\n"),
        );
        // A plugin that refuses its config costs only its own output: the exporter is failed,
        // its records are dropped and counted, and the error says why.
        let telemetry = Telemetry::start(bad).expect("start");
        telemetry.event("lost").emit();
        let stats = telemetry.shutdown().remove(0);
        assert_eq!(
            (stats.state, stats.dropped_failed),
            (wasmtel::ExporterState::Failed, 1),
            "{stats}"
        );
        let error = stats.last_error.unwrap_or_default();
        assert!(
            error.contains("exporter `session`: init failed: permanent error: invalid config"),
            "{error}"
        );
        assert!(error.contains(expected), "{error}");
    }
}

#[test]
fn a_long_session_goes_on_in_numbered_files_and_the_budget_holds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The fixture writes about 250 kB: with a 100 kB budget, files of 25 kB.
    let logs = replay_with(
        tmp.path(),
        "[telemetry]\nsession_id = \"long\"\nmax_total_bytes = 100000\n",
    );
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_by_key(|n| {
        n.trim_start_matches("wasmtel-long")
            .trim_end_matches(".jsonl")
            .trim_start_matches('.')
            .parse::<u64>()
            .unwrap_or(0)
    });
    assert!(names.len() > 1, "{names:?}");
    let last = names.last().expect("a file");
    assert!(
        last.starts_with("wasmtel-long.") && last.ends_with(".jsonl"),
        "numbered before the extension: {names:?}"
    );
    let mut total = 0;
    let mut kept = String::new();
    for name in &names {
        let text = std::fs::read_to_string(logs.join(name)).expect("read");
        assert!(
            text.starts_with("{\"type\":\"resource\""),
            "{name} starts a file: {text:.80}"
        );
        for line in text.lines() {
            wasmtel::jsonl::parse_line(line).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        total += text.len();
        kept += &text;
    }
    assert!(
        total <= 100_000 + 25_000,
        "within the budget but for the file being written: {total}"
    );
    // What is kept is the newest part of the session, whole.
    let fixture = std::fs::read_to_string(fixture()).expect("fixture");
    let events: Vec<&str> = kept
        .lines()
        .filter(|l| !l.contains("\"type\":\"resource\""))
        .collect();
    assert!(
        fixture.ends_with(&(events.join("\n") + "\n")),
        "the newest records, in order"
    );
}

#[test]
fn a_second_writer_of_a_file_is_refused_and_the_first_writes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = "[telemetry]\nsession_id = \"same\"\n";
    let first = Telemetry::start(config(tmp.path(), text)).expect("start");
    let second = Telemetry::start(config(tmp.path(), text)).expect("start");
    first.event("one").emit();
    second.event("two").emit();
    let (first, second) = (first.shutdown().remove(0), second.shutdown().remove(0));
    assert_eq!(first.records_exported, 1, "{first}");
    assert_eq!(
        (second.state, second.dropped_failed),
        (wasmtel::ExporterState::Failed, 1),
        "{second}"
    );
    let error = second.last_error.unwrap_or_default();
    assert!(
        error.contains("wasmtel-same.jsonl") && error.contains("another writer"),
        "{error}"
    );
    let written = std::fs::read_to_string(tmp.path().join("logs/wasmtel-same.jsonl")).expect("log");
    assert_eq!(
        written.lines().count(),
        2,
        "the resource and the first writer's event: {written}"
    );
}

/// Records 20,000 events of about 200 bytes through the one exporter of the config `text` (in
/// `dir`), and checks that all were exported and no limit of its sandbox stopped anything.
fn record_4_mb(dir: &Path, text: &str) {
    let telemetry = Telemetry::start(config(dir, text)).expect("start");
    let filler = "x".repeat(150);
    for i in 0..20_000u64 {
        telemetry
            .event("codex.tool_result")
            .attr("i", i)
            .attr("output", &filler)
            .emit();
    }
    let stats = telemetry.shutdown().remove(0);
    assert_eq!(
        (stats.records_exported, stats.dropped()),
        (20_000, 0),
        "{stats}"
    );
    assert!(stats.limits_passed.is_empty(), "{stats}");
}

#[test]
fn a_long_session_within_its_budget_never_runs_into_the_disk_quota() {
    // 4 MB of events through a directory of 1 MiB: file-jsonl's budget (512 KiB, in files of
    // 128 KiB) keeps it below the quota by deleting its oldest files, and the quota counts the
    // deletions, so nothing is refused.
    let tmp = tempfile::tempdir().expect("tempdir");
    record_4_mb(
        tmp.path(),
        "[telemetry]\nsession_id = \"long\"\nmax_total_bytes = 524288\n\
         [exporters.session]\nplugin = \"file-jsonl\"\nconfig = { max_file_bytes = 131072 }\n\
         sandbox = { disk_mib = 1 }\nqueue = { capacity = 100000 }\n",
    );
    let held: u64 = std::fs::read_dir(tmp.path().join("logs"))
        .expect("logs")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum();
    assert!(held < 1 << 20, "{held} bytes");
}

#[test]
fn writes_to_a_device_take_nothing_of_the_disk_quota() {
    // 4 MB of events into /dev/null under a quota of 1 MiB: only regular files hold disk.
    let tmp = tempfile::tempdir().expect("tempdir");
    record_4_mb(
        tmp.path(),
        "[telemetry]\nsession_id = \"null\"\n\
         [exporters.null]\nplugin = \"file-jsonl\"\nconfig = { file = \"null\", max_total_bytes = 0 }\n\
         sandbox = { dir = \"/dev\", disk_mib = 1 }\nqueue = { capacity = 100000 }\n",
    );
}
