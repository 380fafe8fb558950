//! What wasmtel tells about itself: `wasmtel.*` metrics through the normal pipeline, and plugin
//! diagnostics (the log import, stdout, stderr) in the host's log.

use std::time::{Duration, Instant};

use wasmtel::jsonl::parse_line;
use wasmtel::model::Record;
use wasmtel::{MetricData, Number, Telemetry};
use wasmtel_tests::{ROGUE, capture_log, config, in_own_process, only_jsonl};

/// The value of the point of `metric` whose attributes include every pair of `want`.
fn value(metric: &wasmtel::Metric, want: &[(&str, &str)]) -> Option<Number> {
    let MetricData::Sum { points, .. } = &metric.data else {
        return None;
    };
    points
        .iter()
        .find(|p| {
            want.iter().all(|(k, v)| {
                p.attributes
                    .iter()
                    .any(|kv| kv.key == *k && kv.value == wasmtel::Value::from(v.to_string()))
            })
        })
        .map(|p| p.value)
}

#[test]
fn self_metrics_count_every_exporters_outcomes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[telemetry]\nsession_id = \"self\"\nself_metrics_interval_ms = 50\n\
         [exporters.healthy]\nplugin = \"file-jsonl\"\nqueue = {{ max_delay_ms = 10 }}\n\
         metrics = {{ interval_ms = 50, temporality = \"cumulative\" }}\n\
         [exporters.bad]\nplugin = {ROGUE:?}\nsignals = [\"events\"]\nconfig = {{ action = \"read\", path = \"/etc/passwd\" }}\n\
         queue = {{ max_delay_ms = 10, max_retries = 0 }}\n"
    );
    let telemetry = Telemetry::start(config(tmp.path(), &text)).expect("start");
    for i in 0..10 {
        telemetry.event("codex.user_prompt").attr("i", i).emit();
    }
    let file = only_jsonl(&tmp.path().join("logs"));
    let wanted = |record: &Record| match record {
        Record::Metric(m) if m.name == "wasmtel.exporter.records" => {
            value(m, &[("exporter", "bad"), ("outcome", "dropped_failed")]) == Some(Number::Int(10))
        }
        _ => false,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let text = std::fs::read_to_string(&file).expect("read");
        if let Some(record) = text
            .lines()
            .map(|l| parse_line(l).expect("valid"))
            .find(|r| wanted(r))
        {
            break record;
        }
        assert!(
            Instant::now() < deadline,
            "no wasmtel.exporter.records with bad's 10 drops in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let Record::Metric(metric) = found else {
        unreachable!()
    };
    assert_eq!(metric.scope.name, "wasmtel");
    assert_eq!(
        value(&metric, &[("exporter", "bad"), ("outcome", "exported")]),
        Some(Number::Int(0))
    );
    assert!(
        matches!(value(&metric, &[("exporter", "healthy"), ("outcome", "exported")]), Some(Number::Int(n)) if n >= 10)
    );
    telemetry.shutdown();
}

/// In a process of its own: it sets the process's log subscriber.
#[test]
fn plugin_output_goes_to_the_host_log_tagged_with_the_exporter() {
    in_own_process(
        module_path!(),
        "plugin_output_goes_to_the_host_log_tagged_with_the_exporter",
        plugin_output_is_logged,
    );
}

fn plugin_output_is_logged() {
    let captured = capture_log();
    let tmp = tempfile::tempdir().expect("tempdir");
    let text =
        format!("[exporters.chatty]\nplugin = {ROGUE:?}\nconfig = {{ action = \"print\" }}\n");
    let telemetry = Telemetry::start(config(tmp.path(), &text)).expect("start");
    telemetry.event("hello").emit();
    let stats = telemetry.shutdown();
    assert_eq!(stats[0].records_exported, 1, "{}", stats[0]);
    let log = captured.text();
    for (level, line) in [
        ("INFO", "rogue says hello on stdout"),
        ("WARN", "rogue says hello on stderr"),
        ("WARN", "rogue logs through the host"),
    ] {
        let found = log
            .lines()
            .find(|l| l.contains(line))
            .unwrap_or_else(|| panic!("{line:?} not in:\n{log}"));
        assert!(
            found.contains(level) && found.contains("exporter=\"chatty\""),
            "{found}"
        );
    }
}
