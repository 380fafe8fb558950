//! Misbehaving plugins, each run beside a healthy file-jsonl exporter on the same replay: the
//! healthy exporter's output is complete, the bad plugin's counters say what happened, and the
//! process goes on.

use wasmtel::{ExporterState, Limit, Telemetry};
use wasmtel_tests::{
    ROGUE, assert_delivered_all, beside_a_healthy_exporter, config, error_of, faulted_and_parked,
    only_jsonl, passed,
};

#[test]
fn a_panic_in_export_is_a_contained_fault() {
    let (s, records) = beside_a_healthy_exporter(
        ROGUE,
        "action = \"panic\"",
        "",
        "queue = { max_retries = 1, max_batch = 20 }",
    );
    faulted_and_parked(&s, records, &["unreachable"]);
    assert!(error_of(&s).contains("rogue panics on purpose"), "{s}");
    assert!(
        s.batches_retried >= 3,
        "a faulted batch is retried on a fresh instance: {s}"
    );
}

#[test]
fn an_infinite_loop_runs_into_its_deadline() {
    let (s, records) = beside_a_healthy_exporter(
        ROGUE,
        "action = \"loop\"",
        ", timeout_ms = 100",
        "queue = { max_retries = 0, max_batch = 20 }",
    );
    faulted_and_parked(&s, records, &["deadline of 100 ms"]);
}

#[test]
fn allocating_until_out_of_memory_stops_at_the_limit() {
    let (s, records) = beside_a_healthy_exporter(
        ROGUE,
        "action = \"oom\"",
        ", memory_mib = 16",
        "queue = { max_retries = 0, max_batch = 20 }",
    );
    // The grow past the limit fails inside the plugin; its allocator then gives up (a trap),
    // and the fault names the limit and its key.
    faulted_and_parked(
        &s,
        records,
        &["after a grow was refused: linear memory would pass sandbox.memory_mib (16 MiB"],
    );
    assert_eq!(passed(&s, Limit::Memory), s.faults, "{s}");
}

#[test]
fn unbounded_recursion_exhausts_the_stack_not_the_host() {
    let (s, records) = beside_a_healthy_exporter(
        ROGUE,
        "action = \"recurse\"",
        "",
        "queue = { max_retries = 0, max_batch = 20 }",
    );
    // The guest's own stack lives in its linear memory: overflowing it is an out-of-bounds access
    // (or, deeper, the host's limit on wasm frames).
    faulted_and_parked(
        &s,
        records,
        &["out of bounds memory access", "call stack exhausted"],
    );
}

#[test]
fn a_trap_inside_init_parks_the_exporter_and_the_others_run() {
    let (s, records) =
        beside_a_healthy_exporter(ROGUE, "action = \"panic\", when = \"init\"", "", "");
    assert_eq!(
        (s.state, s.records_exported, s.dropped_failed),
        (ExporterState::Parked, 0, records),
        "{s}"
    );
    assert!(error_of(&s).contains("init failed: plugin fault"), "{s}");
    // The trap alone says only `unreachable`: the panic's message, written to stderr, is quoted.
    assert!(
        error_of(&s).contains("the plugin's last words: ")
            && error_of(&s).contains("rogue panics on purpose"),
        "{s}"
    );
}

#[test]
fn a_huge_error_string_is_cut() {
    let (s, records) = beside_a_healthy_exporter(ROGUE, "action = \"huge_error\"", "", "");
    assert_eq!((s.dropped_failed, s.faults), (records, 0), "{s}");
    let error = error_of(&s);
    assert!(
        error.len() < 5000,
        "cut to a bounded length, not 10 MiB: {} bytes",
        error.len()
    );
    assert!(
        error.contains("more bytes)"),
        "says it was cut: {}",
        &error[error.len() - 40..]
    );
}

#[test]
fn a_slow_export_that_finishes_in_time_delivers_everything() {
    // 10 ms a call, well inside the call's deadline; the replay's calls together stay inside
    // shutdown's budget.
    let (s, records) = beside_a_healthy_exporter(ROGUE, "action = \"sleep\", ms = 10", "", "");
    assert_eq!(
        (s.records_exported, s.dropped(), s.faults),
        (records, 0, 0),
        "{s}"
    );
    assert!(
        s.export_nanos >= s.batches_ok * 10_000_000,
        "the calls took their time: {s}"
    );
}

#[test]
fn retryable_errors_are_retried_then_dropped_and_counted() {
    let (s, records) = beside_a_healthy_exporter(
        ROGUE,
        "action = \"retryable\", ms = 5",
        "",
        "queue = { max_retries = 2, max_batch = 20 }",
    );
    assert_eq!(
        (s.records_exported, s.dropped_failed, s.faults),
        (0, records, 0),
        "{s}"
    );
    assert!(
        s.batches_retried >= 6 && s.batches_failed >= 9,
        "three attempts for each of three batches: {s}"
    );
    assert!(
        error_of(&s).contains("retryable error (retry after 5 ms): try again"),
        "{s}"
    );
}

#[test]
fn record_calls_never_wait_for_a_stuck_plugin_and_shutdown_keeps_its_deadline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[telemetry]\nsession_id = \"stuck\"\nshutdown_timeout_ms = 2000\n\
         [exporters.stuck]\nplugin = {ROGUE:?}\nconfig = {{ action = \"loop\" }}\n\
         sandbox = {{ timeout_ms = 600000 }}\nqueue = {{ capacity = 100, max_batch = 10, max_delay_ms = 0 }}\n\
         [exporters.healthy]\nplugin = \"file-jsonl\"\nsandbox = {{ dir = \"healthy\" }}\nqueue = {{ capacity = 100000 }}\n"
    );
    let telemetry = Telemetry::start(config(tmp.path(), &text)).expect("start");
    let recorded = 5000u64;
    for i in 0..recorded {
        telemetry.event("codex.tool_result").attr("i", i).emit();
    }
    // Every record call has returned while the stuck plugin is still inside its first call
    // (its deadline is ten minutes away): so none of them waited for it.
    let stuck = telemetry.stats().remove(0);
    assert_eq!(
        (stuck.batches_ok, stuck.batches_failed, stuck.faults),
        (0, 0, 0),
        "{stuck}"
    );
    assert!(
        stuck.dropped_queue_full >= recorded - 100 - 10,
        "its full queue dropped and counted: {stuck}"
    );
    assert!(
        !telemetry.flush(std::time::Duration::from_millis(100)),
        "a flush cannot finish through it"
    );

    let stats = telemetry.shutdown();
    let (healthy, stuck) = (&stats[1], &stats[0]);
    assert_delivered_all(healthy, recorded);
    assert_eq!(
        stuck.records_exported + stuck.dropped(),
        recorded,
        "{stuck}"
    );
    assert!(
        stuck.dropped_shutdown > 0 && error_of(stuck).contains("shutdown deadline (2000 ms)"),
        "{stuck}"
    );
    let written = std::fs::read_to_string(only_jsonl(&tmp.path().join("healthy"))).expect("output");
    assert_eq!(
        written.lines().count() as u64,
        recorded + 1,
        "every event and the resource line"
    );

    // Calls after shutdown: counted, harmless.
    telemetry.event("late").emit();
    telemetry.counter("late").add(1, &[]);
    let after = telemetry.shutdown();
    assert_eq!(after[1].dropped_shutdown, 2, "{}", after[1]);
    assert!(!telemetry.flush(std::time::Duration::from_millis(10)));
}

#[test]
fn a_plugin_asleep_forever_in_init_stops_neither_start_nor_check() {
    let started = std::time::Instant::now();
    let (s, records) = beside_a_healthy_exporter(
        ROGUE,
        "action = \"sleep\", ms = 9223372036854775807, when = \"init\"",
        ", timeout_ms = 300",
        "",
    );
    assert_eq!(
        (s.state, s.dropped_failed),
        (ExporterState::Parked, records),
        "{s}"
    );
    assert!(error_of(&s).contains("deadline of 300 ms"), "{s}");
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[exporters.asleep]\nplugin = {ROGUE:?}\n\
         config = {{ action = \"sleep\", ms = 9223372036854775807, when = \"init\" }}\n\
         sandbox = {{ timeout_ms = 300 }}\n"
    );
    let (name, result) = wasmtel::check(&config(tmp.path(), &text), None).remove(0);
    let error = result.expect_err("init cannot finish").chain();
    assert!(error.contains("deadline of 300 ms"), "{name}: {error}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "a few deadlines, not forever: {:?}",
        started.elapsed()
    );
}
