//! The sandbox's limits against every way a hostile plugin once took resources from the host.
//! Each attack runs beside a healthy file-jsonl on the fixture, in a process of its own so that
//! the host's peak memory is measured (by the kernel): the healthy output is the whole fixture,
//! the host holds at most a bound more than with a plugin that does nothing, the replay ends
//! within a few deadlines, and the counters name the limit that stopped the plugin.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wasmtel::{ExporterState, Limit};
use wasmtel_tests::{
    MEMORIES, ROGUE, TABLES, assert_delivered_all, beside_a_healthy_exporter,
    beside_a_healthy_exporter_in, error_of, faulted_and_parked, in_own_process, passed,
};

/// What the host may hold beyond a run whose plugin does nothing. Each attack below, unbounded,
/// took between 500 MiB and 12 GiB.
const MEMORY_BOUND_MIB: u64 = 64;

/// The replay's longest wait for one of the rogue's calls (its `timeout_ms` or the default 5 s)
/// times this, plus a margin for a slow machine, bounds the replay.
const DEADLINES: u32 = 4;

fn baseline() {
    let (s, records) = beside_a_healthy_exporter(ROGUE, "action = \"none\"", "", "");
    assert_delivered_all(&s, records);
}

/// The peak memory of a replay beside a plugin that does nothing, measured once; none inside
/// that measured run.
fn baseline_mib() -> Option<u64> {
    static PEAK: OnceLock<Option<u64>> = OnceLock::new();
    *PEAK.get_or_init(|| {
        in_own_process(
            module_path!(),
            "a_plugin_that_does_nothing_sets_the_baseline",
            baseline,
        )
    })
}

#[test]
fn a_plugin_that_does_nothing_sets_the_baseline() {
    if let Some(peak) = baseline_mib() {
        eprintln!("baseline: a peak of {peak} MiB");
    }
}

/// Runs `attack` (in a process of its own, as the test `test`) and checks the host's memory
/// against the baseline. `attack` replays beside a healthy exporter and returns the slowest
/// call the rogue may make.
fn contained(test: &str, attack: impl FnOnce() -> Duration) {
    let peak = in_own_process(module_path!(), test, || {
        let started = Instant::now();
        let deadline = attack();
        let bound = deadline * DEADLINES + Duration::from_secs(10);
        assert!(
            started.elapsed() < bound,
            "the replay took {:?}, more than {bound:?}",
            started.elapsed()
        );
    });
    if let Some(peak) = peak {
        let baseline = baseline_mib().expect("measured from here");
        eprintln!("{test}: a peak of {peak} MiB against {baseline} MiB");
        assert!(
            peak <= baseline + MEMORY_BOUND_MIB,
            "{test}: the host peaked at {peak} MiB, {} MiB more than with a plugin that does nothing",
            peak.saturating_sub(baseline)
        );
    }
}

const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Replays beside `plugin` configured with `rogue` and more `sandbox` keys, without retries, and
/// checks that each of its calls faulted on `limit`, the fault saying `words`.
fn faults_on(plugin: &str, rogue: &str, sandbox: &str, limit: Limit, words: &str) {
    let (s, records) = beside_a_healthy_exporter(
        plugin,
        rogue,
        sandbox,
        "queue = { max_retries = 0, max_batch = 20 }",
    );
    faulted_and_parked(&s, records, &[words]);
    assert_eq!(passed(&s, limit), s.faults, "{s}");
}

#[test]
fn opening_files_without_end_stops_at_max_handles() {
    contained("opening_files_without_end_stops_at_max_handles", || {
        // A million opens, never closed: the host's descriptors are not the plugin's to take.
        faults_on(
            ROGUE,
            "action = \"open_many\", path = \"f.txt\", count = 1000000",
            "",
            Limit::Handles,
            "sandbox.max_handles",
        );
        DEFAULT_DEADLINE
    });
}

#[test]
fn http_fields_hold_a_bounded_number_of_bytes() {
    contained("http_fields_hold_a_bounded_number_of_bytes", || {
        // 100 KB headers do not fit in one fields resource: a fault.
        faults_on(
            ROGUE,
            "action = \"fields\", count = 8000, bytes = 100000",
            "",
            Limit::HttpFields,
            "sandbox.http_fields_kib",
        );
        // 60 KB headers fit, but only in as many fields as sandbox.max_handles.
        faults_on(
            ROGUE,
            "action = \"fields\", count = 8000, bytes = 60000",
            "",
            Limit::Handles,
            "sandbox.max_handles",
        );
        DEFAULT_DEADLINE
    });
}

#[test]
fn a_plugin_blocked_in_a_host_call_is_stopped_at_its_deadline() {
    contained(
        "a_plugin_blocked_in_a_host_call_is_stopped_at_its_deadline",
        || {
            // 20 s asleep through WASI in every export, with 300 ms a call: each call is cut off
            // at its deadline, and the exporter is parked after three.
            faults_on(
                ROGUE,
                "action = \"sleep\", ms = 20000",
                ", timeout_ms = 300",
                Limit::Timeout,
                "deadline of 300 ms (sandbox.timeout_ms)",
            );
            Duration::from_millis(300)
        },
    );
}

#[test]
fn more_memories_than_allowed_fail_at_instantiation() {
    contained("more_memories_than_allowed_fail_at_instantiation", || {
        let (s, records) = beside_a_healthy_exporter(MEMORIES, "", ", memory_mib = 32", "");
        assert_eq!(
            (s.state, s.records_exported, s.dropped_failed),
            (ExporterState::Parked, 0, records),
            "{s}"
        );
        assert!(error_of(&s).contains("sandbox.max_memories"), "{s}");
        assert!(passed(&s, Limit::Memories) >= 1, "{s}");
        DEFAULT_DEADLINE
    });
}

#[test]
fn memory_is_bounded_over_all_memories_together() {
    contained("memory_is_bounded_over_all_memories_together", || {
        // 24 memories allowed, each grown by 16 MiB: the second passes 32 MiB in all.
        let (s, records) = beside_a_healthy_exporter(
            MEMORIES,
            "",
            ", memory_mib = 32, max_memories = 32",
            "queue = { max_retries = 0, max_batch = 20 }",
        );
        faulted_and_parked(
            &s,
            records,
            &["sandbox.memory_mib (32 MiB, all memories together)"],
        );
        assert_eq!(passed(&s, Limit::Memory), s.faults, "{s}");
        DEFAULT_DEADLINE
    });
}

#[test]
fn table_elements_are_bounded_over_all_tables() {
    contained("table_elements_are_bounded_over_all_tables", || {
        // Two tables, each grown by 32 M elements, under memory_mib = 16.
        faults_on(
            TABLES,
            "",
            ", memory_mib = 16",
            Limit::TableElements,
            "sandbox.max_table_elements",
        );
        DEFAULT_DEADLINE
    });
}

#[test]
fn a_flood_of_log_lines_is_suppressed_and_counted() {
    contained("a_flood_of_log_lines_is_suppressed_and_counted", || {
        // 20,000 lines of 4 KiB to the log and as many to stdout, in init (given 20 s); then the
        // exporter works.
        let (s, records) = beside_a_healthy_exporter(
            ROGUE,
            "action = \"flood\", count = 20000, when = \"init\"",
            ", timeout_ms = 20000",
            "",
        );
        assert_delivered_all(&s, records);
        let suppressed = passed(&s, Limit::LogLines) + passed(&s, Limit::LogBytes);
        assert!(
            suppressed > 39_000,
            "nearly all of the 40,000 lines were suppressed: {s}"
        );
        Duration::from_secs(20)
    });
}

/// What `dir` holds as the quota counts it: its files' bytes and 4 KiB an entry.
fn usage(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("the rogue's directory")
        .map(|e| {
            let meta = e.expect("entry").metadata().expect("metadata");
            4096 + if meta.is_file() { meta.len() } else { 0 }
        })
        .sum()
}

/// Replays (in `dir`) beside the rogue doing `action` at init, with more `sandbox` keys, and
/// checks that a write past its disk quota was refused inside it, which it failed on, saying
/// `said`. Returns what it said.
fn refused_past_the_quota(dir: &Path, action: &str, sandbox: &str, said: &str) -> String {
    let (s, records) = beside_a_healthy_exporter_in(
        dir,
        ROGUE,
        &format!("{action}, when = \"init\""),
        sandbox,
        "",
    );
    assert_eq!(
        (s.state, s.dropped_failed),
        (ExporterState::Failed, records),
        "{action}: {s}"
    );
    let error = error_of(&s);
    assert!(
        error.contains("blocked: ") && error.contains(said),
        "{action}: {s}"
    );
    assert!(passed(&s, Limit::Disk) >= 1, "{action}: {s}");
    error.to_string()
}

#[test]
fn writes_past_the_disk_quota_fail_inside_the_plugin() {
    contained("writes_past_the_disk_quota_fail_inside_the_plugin", || {
        // 300 MiB (or 300,000 files) into a directory of 8 MiB: through a stream (directly, and
        // through std::fs), through `descriptor.write`, by `set-size`, by creating files, in
        // files each renamed onto itself, and in files each removed while held open.
        // Each leaves the directory holding at least the MiB given: up to the quota, but for
        // one `set-size` refused as a whole.
        // What the plugin is told: `insufficient-space` from `wasi:filesystem` (ENOSPC: "No space
        // left on device", through std::fs), but for a stream write through std::fs, which
        // wasi-libc reports as an I/O error.
        for (action, said, least_mib) in [
            (
                "fill_stream\", path = \"big\", count = 300",
                "insufficient-space",
                7,
            ),
            ("fill_std\", path = \"big\", count = 300", "I/O error", 7),
            (
                "fill_at\", path = \"big\", count = 300",
                "insufficient-space",
                7,
            ),
            (
                "fill_size\", path = \"big\", count = 300",
                "insufficient-space",
                0,
            ),
            (
                "files\", path = \"f\", count = 300000",
                "No space left on device",
                7,
            ),
            ("self_rename\", path = \"f\", count = 300", "I/O error", 7),
            ("unlink_open\", path = \"f\", count = 300", "I/O error", 0),
        ] {
            let action = format!("action = \"{action}");
            let tmp = tempfile::tempdir().expect("tempdir");
            let error = refused_past_the_quota(tmp.path(), &action, ", disk_mib = 8", said);
            let used = usage(&tmp.path().join("rogue"));
            assert!(
                used <= 8 << 20 && used >= least_mib << 20,
                "{action}: the directory holds {used} bytes, of 8 MiB"
            );
            // What the plugin wrote before it was refused, where it says (files it removed
            // while they were open no longer show in the directory).
            if let Some((_, after)) = error.split_once(" after ") {
                let mib: u64 = after.trim_end_matches(" MiB").parse().expect("MiB written");
                assert!(mib <= 8, "{action}: {mib} MiB written, in 8: {error}");
            }
        }
        // Within the quota, so long as what goes and what lands are counted as they are, nothing
        // is refused:
        for action in [
            // 50 MiB written through 8 MiB, each write renamed over the last and removed at the
            // end;
            "churn\", path = \"f\", count = 50",
            // writes through a stream, each landed when the call returns (so that the next call,
            // a `set-size` say, counts the file as it is);
            "stream_lands\", path = \"f\", count = 100",
            // 50 MiB in files each removed while open, two kept open at once: a file's bytes
            // come back when it is closed.
            "unlink_open\", path = \"f\", count = 50, hold = 2",
        ] {
            let (s, records) = beside_a_healthy_exporter(
                ROGUE,
                &format!("action = \"{action}, when = \"init\""),
                ", disk_mib = 8",
                "",
            );
            assert_delivered_all(&s, records);
            assert_eq!(passed(&s, Limit::Disk), 0, "{action}: {s}");
        }
        DEFAULT_DEADLINE
    });
}

/// What the tree at `path` takes on the disk: the blocks of its files and directories.
fn blocks(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).expect("metadata");
    let below: u64 = if meta.is_dir() {
        std::fs::read_dir(path)
            .expect("directory")
            .map(|e| blocks(&e.expect("entry").path()))
            .sum()
    } else {
        0
    };
    meta.blocks() * 512 + below
}

/// Whether a directory in `dir` keeps the size its list of names took once the names are
/// removed, as on ext4 (not on tmpfs).
fn directories_keep_their_size(dir: &Path) -> bool {
    let probe = dir.join("probe");
    std::fs::create_dir(&probe).expect("probe");
    let names: Vec<_> = (0..200).map(|n| probe.join(format!("{n:0>250}"))).collect();
    for name in &names {
        std::fs::File::create(name).expect("name");
    }
    for name in &names {
        std::fs::remove_file(name).expect("remove");
    }
    let kept = blocks(&probe) > 4096;
    std::fs::remove_dir(&probe).expect("probe removed");
    kept
}

#[test]
fn the_lists_of_names_in_directories_count_against_the_disk_quota() {
    contained(
        "the_lists_of_names_in_directories_count_against_the_disk_quota",
        || {
            let tmp = tempfile::tempdir().expect("tempdir");
            if !directories_keep_their_size(tmp.path()) {
                eprintln!("skipped: directories here give back what their names took");
                return DEFAULT_DEADLINE;
            }
            // 100 directories, each of which held 1,000 names of 250 bytes (a quarter of a MiB
            // of list each), all removed: unbounded, 25 MiB in a directory of 8 MiB.
            let error = refused_past_the_quota(
                tmp.path(),
                "action = \"names\", path = \"d\", count = 100",
                ", disk_mib = 8, timeout_ms = 60000",
                "No space left on device",
            );
            let used = blocks(&tmp.path().join("rogue"));
            eprintln!("{error}; the directory takes {used} bytes");
            assert!(
                used <= 8 << 20,
                "the directory takes {used} bytes of the disk, of 8 MiB"
            );
            Duration::from_secs(60)
        },
    );
}

#[test]
fn exporters_sharing_a_directory_share_its_quota() {
    // Two exporters, both started, then each writing 6 MiB at every export into one directory of
    // 8 MiB: both cannot fit, and the directory holds no more than its quota.
    let tmp = tempfile::tempdir().expect("tempdir");
    let rogue = |name: &str, file: &str| {
        format!(
            "[exporters.{name}]\nplugin = {ROGUE:?}\nsandbox = {{ dir = \"shared\", disk_mib = 8 }}\n\
             config = {{ action = \"fill_std\", path = {file:?}, count = 6 }}\n"
        )
    };
    let text = format!(
        "[telemetry]\nsession_id = \"shared\"\n{}{}",
        rogue("first", "a"),
        rogue("second", "b")
    );
    let summary = wasmtel_tests::replay_fixture(wasmtel_tests::config(tmp.path(), &text));
    let refused: u64 = summary
        .exporters
        .iter()
        .map(|s| passed(s, Limit::Disk))
        .sum();
    assert!(refused >= 1, "{summary:?}");
    let failed = summary.exporters.iter().find(|s| s.dropped_failed > 0);
    assert!(
        failed.is_some_and(|s| error_of(s).contains("I/O error")),
        "{summary:?}"
    );
    let used = usage(&tmp.path().join("shared"));
    assert!(
        used <= 8 << 20,
        "the directory holds {used} bytes, of 8 MiB"
    );
}
