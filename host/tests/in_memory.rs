//! The in-memory exporter of `wasmtel::testing` behind a real `Telemetry`: what an application's
//! own tests see of the records it makes, and the flush deadline with a stuck exporter.

use std::time::Duration;

use wasmtel::testing::{InMemoryExporter, Outcome};
use wasmtel::{Config, KeyValue, MetricData, Number, Signals, Telemetry};

#[test]
fn events_spans_and_aggregated_metrics_reach_the_in_memory_exporter() {
    let exporter = InMemoryExporter::new();
    let telemetry = Telemetry::builder(Config::empty())
        .resource(vec![KeyValue::new("service.name", "test")])
        .in_memory("memory", Signals::ALL, &exporter)
        .start()
        .expect("start");
    telemetry
        .event("codex.user_prompt")
        .attr("prompt_length", 42)
        .emit();
    let calls = telemetry.counter("codex.tool.call");
    calls.add(2, &[KeyValue::new("tool", "shell")]);
    calls.add(3, &[KeyValue::new("tool", "shell")]);
    telemetry.span("turn").start().end();
    assert!(telemetry.flush(Duration::from_secs(10)));

    let events = exporter.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "codex.user_prompt");
    assert_ne!(
        events[0].time_unix_nano, 0,
        "stamped with the time of the call"
    );
    assert_eq!(exporter.spans()[0].name, "turn");
    let metrics = exporter.metrics();
    let MetricData::Sum { points, .. } = &metrics[0].data else {
        panic!("{metrics:?}")
    };
    assert_eq!(points[0].value, Number::Int(5), "folded into one point");
    assert!(
        exporter
            .batches()
            .iter()
            .all(|b| b.resource()[0].value == "test".into()),
        "every batch carries the resource"
    );
    let stats = telemetry.shutdown().remove(0);
    assert_eq!((stats.records_exported, stats.dropped()), (3, 0), "{stats}");
}

#[test]
fn flush_gives_up_at_its_deadline_on_a_stuck_exporter_and_says_so() {
    let stuck = InMemoryExporter::new();
    // Stuck for longer than the flush may take, not so long that shutdown waits for it.
    stuck.script([Outcome::Stall(Duration::from_secs(1))]);
    let healthy = InMemoryExporter::new();
    let telemetry = Telemetry::builder(Config::empty())
        .in_memory("stuck", Signals::ALL, &stuck)
        .in_memory("healthy", Signals::ALL, &healthy)
        .start()
        .expect("start");
    telemetry.event("e").emit();
    assert!(
        !telemetry.flush(Duration::from_millis(200)),
        "the stuck exporter holds the flush past its deadline"
    );
    assert_eq!(
        healthy.events().len(),
        1,
        "the healthy one flushed all the same"
    );
    let stats = telemetry.shutdown();
    assert_eq!(stats[0].records_exported, 1, "{}", stats[0]);
}

#[test]
fn shutdown_with_a_budget_returns_within_it_with_an_exporter_stuck() {
    let stuck = InMemoryExporter::new();
    stuck.script([Outcome::Stall(Duration::from_secs(30))]);
    let telemetry = Telemetry::builder(Config::empty())
        .in_memory("stuck", Signals::ALL, &stuck)
        .start()
        .expect("start");
    telemetry.event("one").emit();
    // Let the worker take the event into its stuck export call.
    std::thread::sleep(Duration::from_millis(1500));
    let started = std::time::Instant::now();
    let stats = telemetry.shutdown_with_timeout(Duration::from_millis(200));
    // The config's own deadline is 5 s: a shutdown under 3 s kept the budget given.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown kept its budget, not the config's 5 s nor the 30 s the exporter is stuck for: {:?}",
        started.elapsed()
    );
    assert_eq!(
        (stats[0].records_exported, stats[0].dropped_shutdown),
        (0, 1),
        "{}",
        stats[0]
    );
}
