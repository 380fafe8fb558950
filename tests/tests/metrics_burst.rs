//! Measurements never wait in a queue: under a burst that overflows the exporters' queues with
//! events, every counter add still arrives in the exported sums, through the real file-jsonl,
//! and a delta and a cumulative exporter fed from one store export the same totals.

use std::time::Duration;

use wasmtel::jsonl::parse_line;
use wasmtel::model::Record;
use wasmtel::{KeyValue, MetricData, Number, Telemetry, Temporality};
use wasmtel_tests::{config, only_jsonl};

/// The metric points named `name` in the exporter's output: per point, its temporality and
/// value.
fn sums(dir: &std::path::Path, name: &str) -> Vec<(Temporality, i64)> {
    let text = std::fs::read_to_string(only_jsonl(dir)).expect("output");
    text.lines()
        .filter_map(|l| match parse_line(l).expect("valid line") {
            Record::Metric(m) if m.name == name => Some(m),
            _ => None,
        })
        .flat_map(|m| {
            let MetricData::Sum {
                points,
                temporality,
                ..
            } = m.data
            else {
                panic!("a sum: {m:?}")
            };
            points.into_iter().map(move |p| match p.value {
                Number::Int(n) => (temporality, n),
                Number::Double(_) => panic!("an integer sum"),
            })
        })
        .collect()
}

#[test]
fn every_counter_add_of_a_burst_arrives_in_the_exported_sums() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exporter = |name: &str, temporality: &str| {
        format!(
            "[exporters.{name}]\nplugin = \"file-jsonl\"\nsandbox = {{ dir = \"{name}\" }}\n\
             queue = {{ capacity = 16 }}\nmetrics = {{ interval_ms = 20, temporality = \"{temporality}\" }}\n"
        )
    };
    let text = format!(
        "[telemetry]\nsession_id = \"burst\"\n{}{}",
        exporter("delta", "delta"),
        exporter("cumulative", "cumulative")
    );
    let telemetry = Telemetry::start(config(tmp.path(), &text)).expect("start");
    let calls = telemetry.counter("codex.tool.call");
    // Bursts of events and adds, with pauses so that several intervals pass and are exported.
    for round in 0..5 {
        for i in 0..2_000 {
            telemetry.event("codex.tool_result").attr("i", i).emit();
            calls.add(1, &[KeyValue::new("tool", "shell")]);
        }
        calls.add(round, &[KeyValue::new("tool", "apply_patch")]);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(telemetry.flush(Duration::from_secs(10)));
    let stats = telemetry.shutdown();
    for s in &stats {
        assert!(
            s.dropped_queue_full > 0,
            "the burst overflowed the event queue, so the test means something: {s}"
        );
    }
    let delta = sums(&tmp.path().join("delta"), "codex.tool.call");
    let cumulative = sums(&tmp.path().join("cumulative"), "codex.tool.call");
    assert!(delta.iter().all(|(t, _)| *t == Temporality::Delta));
    assert!(
        cumulative
            .iter()
            .all(|(t, _)| *t == Temporality::Cumulative)
    );
    assert!(
        delta.len() > 2,
        "several intervals were exported: {delta:?}"
    );
    let added = 5 * 2_000 + (0..5).sum::<i64>();
    assert_eq!(
        delta.iter().map(|(_, n)| n).sum::<i64>(),
        added,
        "the delta points add up to every add"
    );
    // The last cumulative point of each attribute set is its total.
    let last_two: i64 = cumulative.iter().rev().take(2).map(|(_, n)| n).sum();
    assert_eq!(
        last_two, added,
        "the last cumulative points: {cumulative:?}"
    );
}
