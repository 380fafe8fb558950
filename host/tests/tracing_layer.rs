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

#[test]
fn w3c_trace_context_round_trips_through_headers_and_a_child_span_joins_the_trace() {
    use wasmtel::SpanContext;
    let (telemetry, exporter) = start();
    let parent = telemetry.span("request").start();
    let context = parent.context();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "tracestate",
        "other=1,example=old".parse().expect("a value"),
    );
    context.inject(
        &mut headers,
        &[("example".into(), "alpha:one;beta:two".into())],
    );
    assert_eq!(
        headers["traceparent"],
        format!("00-{:032x}-{:016x}-01", context.trace_id, context.span_id)
    );
    assert_eq!(
        headers["tracestate"], "example=alpha:one;beta:two,other=1",
        "the configured member first, replacing its old value; the others kept"
    );
    let received = SpanContext::extract(&headers).expect("a traceparent");
    assert_eq!(received, context);
    // The other side makes its span a child of the received context.
    telemetry.span("handle").parent(received).start().end();
    parent.end();
    assert!(telemetry.flush(Duration::from_secs(10)));
    let spans = exporter.spans();
    let handle = spans.iter().find(|s| s.name == "handle").expect("handle");
    assert_eq!(
        (handle.trace_id, handle.parent_span_id),
        (context.trace_id, Some(context.span_id))
    );

    for bad in [
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
    ] {
        assert_eq!(SpanContext::from_traceparent(bad), None, "{bad:?}");
    }
    let good =
        SpanContext::from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .expect("valid");
    assert_eq!(good.span_id, 0xb7ad6b7169203331);
}

#[test]
fn credentials_in_tracing_fields_are_never_recorded() {
    let (telemetry, exporter) = start();
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(&telemetry));
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!(
            "request",
            http.request.header.authorization = "Bearer sk-live-123",
            endpoint = "/v1/responses"
        );
        let _in_request = request.enter();
        tracing::info!(
            api_key = "sk-live-456",
            x_api_key = "sk-live-789",
            openai_api_key = "sk-live-1",
            auth_token = "sk-live-2",
            client_secret = "sk-live-3",
            input_token_count = 11384,
            "sent"
        );
        request.record("endpoint", "/v1/responses?retry=1");
    });
    assert!(telemetry.flush(Duration::from_secs(10)));
    let recorded = format!("{:?}{:?}", exporter.spans(), exporter.events());
    assert!(!recorded.contains("sk-live"), "{recorded}");
    let events = exporter.events();
    let value = |key: &str| {
        events[0]
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(value("api_key"), Some(Value::String("[REDACTED]".into())));
    assert_eq!(
        value("input_token_count"),
        Some(Value::Int(11384)),
        "not a credential"
    );
    assert!(
        recorded.contains("/v1/responses?retry=1"),
        "other fields kept"
    );
}
