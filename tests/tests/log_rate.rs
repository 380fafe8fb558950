//! A plugin that floods its log, stdout and stderr reaches the host's log only within its rate;
//! the rest is counted and said in one line.

use wasmtel::Telemetry;
use wasmtel_tests::{ROGUE, capture_log, config, in_own_process};

/// In a process of its own: it sets the process's log subscriber.
#[test]
fn a_flood_of_plugin_output_is_cut_to_its_rate_and_counted() {
    in_own_process(
        module_path!(),
        "a_flood_of_plugin_output_is_cut_to_its_rate_and_counted",
        flood,
    );
}

fn flood() {
    let captured = capture_log();
    let tmp = tempfile::tempdir().expect("tempdir");
    // 160 MB of output: on a loaded machine its export can outlast the default 5 s call and
    // shutdown budgets, which are not what this test is about.
    let text = format!(
        "[telemetry]\nshutdown_timeout_ms = 120000\n\
         [exporters.flood]\nplugin = {ROGUE:?}\nconfig = {{ action = \"flood\", count = 20000 }}\n\
         sandbox = {{ log_lines_per_sec = 50, timeout_ms = 120000 }}\n"
    );
    let started = std::time::Instant::now();
    let telemetry = Telemetry::start(config(tmp.path(), &text)).expect("start");
    telemetry.event("one").emit();
    let stats = telemetry.shutdown();
    let seconds = started.elapsed().as_secs() + 1;
    assert_eq!(stats[0].records_exported, 1, "{}", stats[0]);
    let log = captured.text();
    let flood = log.lines().filter(|l| l.contains("flood xxx")).count();
    // 4 KiB lines within 64 KiB a second: 16 lines a second, of 40,000.
    assert!(
        flood >= 1 && flood as u64 <= 16 * seconds,
        "{flood} flood lines reached the log in {seconds} s"
    );
    let suppressed: u64 = stats[0].limits_passed.iter().map(|(_, n)| n).sum();
    assert_eq!(
        suppressed,
        40_000 - flood as u64,
        "every line held back is counted: {}",
        stats[0]
    );
    assert!(
        stats[0].to_string().contains("limits passed: sandbox.log_"),
        "{}",
        stats[0]
    );
    let said = log
        .lines()
        .find(|l| l.contains("of this plugin's output suppressed"))
        .unwrap_or_else(|| panic!("no word of what was suppressed in:\n{:.2000}", log));
    assert!(
        said.contains("exporter=\"flood\"") && said.contains("lines ("),
        "{said}"
    );
}
