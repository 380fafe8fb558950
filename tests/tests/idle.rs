//! An idle process is left idle: with a plugin started and nothing to export, the thread that
//! keeps plugin calls' deadlines sleeps instead of ticking a hundred times a second.

use std::time::Duration;

use wasmtel::Telemetry;
use wasmtel_tests::{config, in_own_process};

/// The thread of this process named `name` (its id).
fn thread_named(name: &str) -> String {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    let found: Vec<String> = tasks
        .map(|t| {
            t.expect("a task")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
        .collect();
    assert_eq!(found.len(), 1, "one thread named {name}: {found:?}");
    found[0].clone()
}

/// How often the thread `tid` has slept or waited so far, as the kernel counts it.
fn waits(tid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .expect("voluntary_ctxt_switches")
        .trim()
        .parse()
        .expect("a count")
}

#[test]
fn the_deadline_ticker_sleeps_while_no_plugin_call_runs() {
    let test = "the_deadline_ticker_sleeps_while_no_plugin_call_runs";
    in_own_process(module_path!(), test, || {
        let tmp = tempfile::tempdir().expect("tempdir");
        let telemetry =
            Telemetry::start(config(tmp.path(), "[telemetry]\nsession_id = \"idle\"\n"))
                .expect("start");
        // The plugin's `init` has returned: no call runs until something is exported.
        let ticker = thread_named("wasmtel-epoch");
        let before = waits(&ticker);
        std::thread::sleep(Duration::from_millis(500));
        let woken = waits(&ticker) - before;
        assert!(
            woken <= 3,
            "the ticker woke {woken} times in 0.5 s with no call running (ticking, 50)"
        );
        telemetry.event("e").emit();
        assert!(telemetry.flush(Duration::from_secs(10)), "flushed");
        let s = telemetry.shutdown().remove(0);
        assert_eq!(s.records_exported, 1, "{s}");
    });
}
