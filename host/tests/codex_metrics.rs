//! `wasmtel::codex::MetricsClient` behind a real `Telemetry` and the in-memory exporter: Codex's
//! rules for names and tags, its session tags, durations in its buckets, timers.

use std::time::Duration;

use wasmtel::codex::{
    MILLISECOND_BOUNDS, MetricsClient, MetricsError, SessionTags, bounded_originator_tag_value,
    sanitize_metric_tag_value,
};
use wasmtel::testing::InMemoryExporter;

use crate::start;
use wasmtel::{Metric, MetricData, Number, Telemetry, Value};

fn session() -> SessionTags {
    SessionTags {
        auth_mode: Some("Chatgpt".into()),
        session_source: "cli".into(),
        originator: "some new client".into(),
        service_name: None,
        model: "gpt-5.1-codex".into(),
        app_version: "0.144.0".into(),
    }
}

/// The metrics exported once `telemetry` is flushed, by name.
fn exported(telemetry: &Telemetry, exporter: &InMemoryExporter, name: &str) -> Vec<Metric> {
    assert!(telemetry.flush(Duration::from_secs(10)));
    exporter
        .metrics()
        .into_iter()
        .filter(|m| m.name == name)
        .collect()
}

/// A point's attributes as `key=value` texts, in order.
fn tags(attributes: &[wasmtel::KeyValue]) -> Vec<String> {
    attributes
        .iter()
        .map(|kv| match &kv.value {
            Value::String(s) => format!("{}={s}", kv.key),
            other => format!("{}={other:?}", kv.key),
        })
        .collect()
}

#[test]
fn names_tags_and_increments_that_codex_refuses_are_errors_and_record_nothing() {
    let (telemetry, exporter) = start();
    let metrics = MetricsClient::new(&telemetry);
    assert_eq!(
        metrics.counter("", 1, &[]),
        Err(MetricsError::EmptyMetricName)
    );
    assert!(matches!(
        metrics.counter("codex tool", 1, &[]),
        Err(MetricsError::InvalidMetricName { .. })
    ));
    assert!(matches!(
        metrics.counter("codex.tool.call", 1, &[("tool name", "x")]),
        Err(MetricsError::InvalidTag { .. })
    ));
    assert!(matches!(
        metrics.counter("codex.tool.call", 1, &[("tool", "")]),
        Err(MetricsError::EmptyTag { .. })
    ));
    let negative = metrics.counter("codex.tool.call", -2, &[]);
    assert_eq!(
        negative,
        Err(MetricsError::NegativeCounterIncrement {
            name: "codex.tool.call".into(),
            increment: -2
        })
    );
    assert!(negative.unwrap_err().to_string().contains("only grows"));
    assert!(metrics.with_tag("bad key", "v").is_err());
    assert!(exported(&telemetry, &exporter, "codex.tool.call").is_empty());
}

#[test]
fn tag_values_are_sanitized_and_originators_bounded_as_codex_does() {
    assert_eq!(
        sanitize_metric_tag_value("  gpt 5.1 (codex)  "),
        "gpt_5.1__codex"
    );
    assert_eq!(sanitize_metric_tag_value("   "), "unspecified");
    assert_eq!(sanitize_metric_tag_value("///"), "unspecified");
    assert_eq!(sanitize_metric_tag_value("bad value!"), "bad_value");
    assert_eq!(sanitize_metric_tag_value("é-1"), "-1");
    assert_eq!(sanitize_metric_tag_value(&"x".repeat(300)).len(), 256);
    assert_eq!(bounded_originator_tag_value("codex_cli_rs"), "codex_cli_rs");
    assert_eq!(bounded_originator_tag_value("my fork"), "other");
}

#[test]
fn session_and_default_tags_go_on_every_measurement_and_a_calls_own_tags_win() {
    let (telemetry, exporter) = start();
    let metrics = MetricsClient::new(&telemetry)
        .with_tag("env", "dev")
        .expect("a tag")
        .with_session_tags(session())
        .expect("session tags");
    metrics
        .counter("codex.tool.call", 2, &[("tool", "shell"), ("model", "o3")])
        .expect("recorded");
    metrics
        .counter("codex.tool.call", 3, &[("tool", "shell"), ("model", "o3")])
        .expect("recorded");
    metrics
        .clone()
        .without_metadata_tags()
        .counter("codex.tool.call", 1, &[("tool", "shell")])
        .expect("recorded");
    let found = exported(&telemetry, &exporter, "codex.tool.call");
    let MetricData::Sum {
        points, monotonic, ..
    } = &found[0].data
    else {
        panic!("a sum: {found:?}")
    };
    assert!(monotonic);
    let mut seen: Vec<(Vec<String>, Number)> = points
        .iter()
        .map(|p| (tags(&p.attributes), p.value))
        .collect();
    seen.sort_by_key(|(tags, _)| tags.len());
    assert_eq!(
        seen,
        [
            (vec!["env=dev".into(), "tool=shell".into()], Number::Int(1)),
            (
                vec![
                    "env=dev".into(),
                    "auth_mode=Chatgpt".into(),
                    "session_source=cli".into(),
                    "originator=other".into(),
                    "app.version=0.144.0".into(),
                    "tool=shell".into(),
                    "model=o3".into(),
                ],
                Number::Int(5)
            ),
        ]
    );
}

#[test]
fn durations_go_into_codexs_buckets_and_a_timer_records_when_dropped() {
    let (telemetry, exporter) = start();
    let metrics = MetricsClient::new(&telemetry);
    metrics
        .record_duration(
            "codex.api_request.duration_ms",
            Duration::from_millis(183),
            &[],
        )
        .expect("recorded");
    {
        let _timer = metrics
            .start_timer("codex.api_request.duration_ms", &[])
            .expect("a timer");
        std::thread::sleep(Duration::from_millis(20));
    }
    metrics
        .start_timer("codex.api_request.duration_ms", &[("status", "200")])
        .expect("a timer")
        .record(&[("success", "true")])
        .expect("recorded");
    let found = exported(&telemetry, &exporter, "codex.api_request.duration_ms");
    assert_eq!(found[0].unit, "ms");
    let MetricData::Histogram { points, .. } = &found[0].data else {
        panic!("a histogram: {found:?}")
    };
    assert_eq!(points[0].bounds, MILLISECOND_BOUNDS);
    let untagged = points
        .iter()
        .find(|p| p.attributes.is_empty())
        .expect("the untagged point");
    assert_eq!(
        untagged.count, 2,
        "the recorded duration and the dropped timer"
    );
    assert!(untagged.min.expect("a min") >= 20.0 && untagged.max == Some(183.0));
    let tagged = points
        .iter()
        .find(|p| !p.attributes.is_empty())
        .expect("the timer recorded with tags");
    assert_eq!(tags(&tagged.attributes), ["status=200", "success=true"]);
    assert_eq!(tagged.count, 1, "recorded once, not again when dropped");
}

#[test]
fn a_gauge_keeps_its_last_integer_value() {
    let (telemetry, exporter) = start();
    let metrics = MetricsClient::new(&telemetry);
    metrics
        .gauge("codex.turn.unified_exec.running_processes", 3, &[])
        .expect("recorded");
    metrics
        .gauge("codex.turn.unified_exec.running_processes", 2, &[])
        .expect("recorded");
    let found = exported(
        &telemetry,
        &exporter,
        "codex.turn.unified_exec.running_processes",
    );
    let MetricData::Gauge { points } = &found[0].data else {
        panic!("a gauge: {found:?}")
    };
    assert_eq!(points[0].value, Number::Int(2));
}

#[test]
fn an_observable_gauge_is_observed_at_every_collection_and_a_panicking_one_harms_no_other() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    let (telemetry, exporter) = start();
    let metrics = MetricsClient::new(&telemetry)
        .with_session_tags(session())
        .expect("session tags");
    let running = Arc::new(AtomicI64::new(3));
    let seen = running.clone();
    metrics
        .register_observable_gauge(
            "codex.turn.unified_exec.running_processes",
            "processes running",
            move || seen.load(Ordering::Relaxed),
        )
        .expect("registered");
    let _broken = telemetry
        .gauge("broken")
        .with_callback(|_| panic!("a broken callback"));
    assert!(
        metrics
            .register_observable_gauge("bad name!", "", || 0)
            .is_err()
    );
    let mut values = Vec::new();
    for now in [3, 5, 0] {
        running.store(now, Ordering::Relaxed);
        let found = exported(
            &telemetry,
            &exporter,
            "codex.turn.unified_exec.running_processes",
        );
        let last = found.last().expect("observed");
        assert_eq!(last.scope.name, "codex");
        assert_eq!(last.description, "processes running");
        let MetricData::Gauge { points } = &last.data else {
            panic!("a gauge: {last:?}")
        };
        assert!(tags(&points[0].attributes).contains(&"model=gpt-5.1-codex".to_string()));
        values.push((found.len(), points[0].value));
    }
    assert_eq!(
        values,
        [
            (1, Number::Int(3)),
            (2, Number::Int(5)),
            (3, Number::Int(0))
        ],
        "once per collection, with the value then"
    );
}
