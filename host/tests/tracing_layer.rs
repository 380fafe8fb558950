//! `wasmtel::TelemetryLayer`: `tracing` spans and events, from instrumented async functions,
//! arrive as wasmtel spans and events with their parents, fields and targets.

use std::time::Duration;

use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use wasmtel::{TelemetryLayer, Value};

use crate::start;

#[tracing::instrument(target = "codex_core", fields(model = "gpt-5.1-codex"))]
async fn turn(id: u64) {
    tool_call("shell").await;
    tracing::event!(target: "codex_otel", tracing::Level::INFO, event.name = "codex.turn_ttft", duration_ms = 917, "first token");
}

#[tracing::instrument(target = "codex_core")]
async fn tool_call(tool: &str) {
    tokio::task::yield_now().await;
    tracing::debug!(target: "codex_core", output_length = 42u64, "tool done");
}

#[test]
fn instrumented_async_functions_give_spans_with_their_parents_and_events_in_them() {
    let (telemetry, exporter) = start();
    let layer = TelemetryLayer::new(&telemetry)
        .with_targets(&["codex_core", "codex_otel"])
        .with_span_attributes(&[("example.trace_attr".into(), "enabled".into())]);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(turn(7).instrument(tracing::info_span!(target: "codex_core", "session")));
        tracing::info!(target: "elsewhere", "not selected");
    });
    assert!(telemetry.flush(Duration::from_secs(10)));
    let spans = exporter.spans();
    let by_name = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {spans:?}"))
    };
    let (session, turn, tool) = (by_name("session"), by_name("turn"), by_name("tool_call"));
    assert_eq!(session.parent_span_id, None, "the root");
    assert_eq!(turn.parent_span_id, Some(session.span_id));
    assert_eq!(tool.parent_span_id, Some(turn.span_id));
    assert!(
        turn.trace_id == session.trace_id && tool.trace_id == session.trace_id,
        "one trace"
    );
    assert_eq!(turn.scope.name, "codex_core");
    let attr = |s: &wasmtel::Span, key: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(attr(turn, "id"), Some(Value::Int(7)));
    assert_eq!(
        attr(turn, "model"),
        Some(Value::String("gpt-5.1-codex".into()))
    );
    assert_eq!(attr(tool, "tool"), Some(Value::String("shell".into())));
    assert_eq!(
        attr(tool, "example.trace_attr"),
        Some(Value::String("enabled".into())),
        "span_attributes on every span"
    );
    assert!(
        tool.end_time_unix_nano >= tool.start_time_unix_nano && tool.end_time_unix_nano > 0,
        "ended when closed"
    );

    let events = exporter.events();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(
        names,
        ["tool done", "codex.turn_ttft"],
        "the selected targets only"
    );
    let ttft = &events[1];
    assert_eq!(
        ttft.span_id,
        Some(turn.span_id),
        "in the span it happened in"
    );
    assert_eq!(ttft.trace_id, Some(turn.trace_id));
    assert_eq!(ttft.body, Value::String("first token".into()));
    assert_eq!(ttft.severity_number, 9);
    assert_eq!(events[0].span_id, Some(tool.span_id));
    assert_eq!(events[0].severity_text, "DEBUG");
}
