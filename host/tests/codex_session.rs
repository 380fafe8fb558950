//! `wasmtel::codex::SessionTelemetry` behind a real `Telemetry` and the in-memory exporter: the
//! catalog's events with the session's metadata, Codex's redaction, and the metrics recorded
//! beside the events.

use std::time::Duration;

use wasmtel::codex::{
    ApiRequest, AuthDetails, AuthRecovery, ConversationStart, MetricsClient, PromptInputs,
    SessionMetadata, SessionTags, SessionTelemetry, TokenUsage, ToolResult,
};

use crate::start;
use wasmtel::{Config, Event, MetricData, Number, Telemetry, Value};

fn metadata(email: Option<&str>) -> SessionMetadata {
    SessionMetadata {
        conversation_id: "019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f".into(),
        app_version: "0.144.0".into(),
        auth_mode: Some("ChatGPT".into()),
        originator: "codex_cli_rs".into(),
        account_id: email.map(|_| "acct-1".into()),
        account_email: email.map(String::from),
        terminal_type: "xterm-256color".into(),
        model: "gpt-5.1-codex".into(),
        slug: "gpt-5.1-codex".into(),
    }
}

fn facade(telemetry: &Telemetry, email: Option<&str>) -> SessionTelemetry {
    let metrics = MetricsClient::new(telemetry)
        .with_session_tags(SessionTags {
            auth_mode: Some("Chatgpt".into()),
            session_source: "cli".into(),
            originator: "codex_cli_rs".into(),
            service_name: None,
            model: "gpt-5.1-codex".into(),
            app_version: "0.144.0".into(),
        })
        .expect("session tags");
    SessionTelemetry::new(telemetry, metadata(email), metrics)
}

fn attr<'e>(event: &'e Event, key: &str) -> Option<&'e Value> {
    event
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| &kv.value)
}

fn text<'e>(event: &'e Event, key: &str) -> &'e str {
    match attr(event, key) {
        Some(Value::String(s)) => s,
        other => panic!("{key} is not text: {other:?} in {event:?}"),
    }
}

fn tool_result(output: &str) -> ToolResult<'_> {
    ToolResult {
        tool_name: "shell",
        call_id: "call_1",
        arguments: "{\"cmd\":\"ls\"}",
        duration: Duration::from_millis(31),
        success: true,
        output,
        mcp_server: None,
    }
}

#[test]
fn every_event_of_the_catalog_carries_the_sessions_metadata() {
    let (telemetry, exporter) = start();
    let session = facade(&telemetry, Some("dev@example.com"));
    session.conversation_starts(&ConversationStart {
        provider_name: "openai".into(),
        reasoning_effort: Some("medium".into()),
        reasoning_summary: "auto".into(),
        context_window: Some(272_000),
        auto_compact_token_limit: None,
        approval_policy: "on-request".into(),
        sandbox_policy: "workspace-write".into(),
        mcp_servers: vec!["github".into(), "linear".into()],
    });
    session.user_prompt("list the files", PromptInputs::default());
    session.api_request(&ApiRequest {
        attempt: 1,
        duration: Duration::from_millis(840),
        status: Some(200),
        endpoint: "/v1/responses",
        ..ApiRequest::default()
    });
    session.sse_event(
        "response.completed",
        Duration::from_millis(12),
        None,
        Some(TokenUsage {
            input: 11_384,
            output: 734,
            ..TokenUsage::default()
        }),
    );
    session.tool_decision("shell", "call_1", "approved", "config");
    session.tool_result(&tool_result("a\nb\n"));
    session.sandbox_outcome(
        "shell",
        "call_1",
        "success",
        Duration::from_millis(30),
        None,
    );
    session.startup_phase("config", "ok", Duration::from_millis(4));
    session.turn_ttft(Duration::from_millis(917));
    session.turn_cost("turn-1", 0.0123, false);
    assert!(telemetry.flush(Duration::from_secs(10)));
    let events = exporter.events();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "codex.conversation_starts",
            "codex.user_prompt",
            "codex.api_request",
            "codex.sse_event",
            "codex.tool_decision",
            "codex.tool_result",
            "codex.sandbox_outcome",
            "codex.startup_phase",
            "codex.turn_ttft",
            "codex.turn_cost",
        ]
    );
    for event in &events {
        let keys: Vec<&str> = event.attributes.iter().map(|kv| kv.key.as_ref()).collect();
        assert_eq!(
            keys[..10],
            [
                "event.timestamp",
                "conversation.id",
                "app.version",
                "auth_mode",
                "originator",
                "user.account_id",
                "user.email",
                "terminal.type",
                "model",
                "slug",
            ],
            "{event:?}"
        );
        let timestamp = text(event, "event.timestamp");
        assert!(
            timestamp.len() == 24 && timestamp.ends_with('Z'),
            "RFC 3339 with milliseconds: {timestamp}"
        );
    }
    let sse = &events[3];
    assert_eq!(attr(sse, "input_token_count"), Some(&Value::Int(11_384)));
    assert_eq!(text(sse, "event.kind"), "response.completed");
    assert_eq!(
        attr(&events[0], "mcp_servers"),
        Some(&Value::Array(vec![
            Value::String("github".into()),
            Value::String("linear".into())
        ]))
    );
}

#[test]
fn prompts_are_redacted_unless_configured_and_tool_output_is_cut_with_a_notice() {
    let (telemetry, exporter) = start();
    let session = facade(&telemetry, None);
    session.user_prompt("my secret plan", PromptInputs::default());
    session.tool_result(&tool_result(&"x".repeat(5000)));
    session.tool_result(&tool_result("short"));
    let config = Config::parse(
        "[otel]\nlog_user_prompt = true\nmetrics_exporter = \"none\"\n[otel.tool_result]\nmax_bytes = 10\n",
        "config.toml".as_ref(),
        ".".as_ref(),
    )
    .expect("config");
    let open = session.clone().with_otel(config.otel().expect("[otel]"));
    open.user_prompt("my secret plan", PromptInputs::default());
    open.tool_result(&tool_result("0123456789abcdef"));
    assert!(telemetry.flush(Duration::from_secs(10)));
    let events = exporter.events();
    assert_eq!(text(&events[0], "prompt"), "[REDACTED]");
    assert_eq!(attr(&events[0], "prompt_length"), Some(&Value::Int(14)));
    assert!(
        attr(&events[0], "user.email").is_none(),
        "no email when none is known"
    );
    let cut = text(&events[1], "output");
    assert!(
        cut.starts_with(&"x".repeat(2048)) && cut.ends_with("[... 2952 bytes truncated]"),
        "{cut}"
    );
    assert_eq!(
        attr(&events[1], "output_truncated"),
        Some(&Value::Bool(true))
    );
    assert_eq!(text(&events[2], "output"), "short");
    assert_eq!(
        attr(&events[2], "output_truncated"),
        Some(&Value::Bool(false))
    );
    assert_eq!(text(&events[3], "prompt"), "my secret plan");
    assert_eq!(
        text(&events[4], "output"),
        "0123456789\n[... 6 bytes truncated]"
    );
}

#[test]
fn tool_results_and_api_requests_are_counted_with_the_session_tags() {
    let (telemetry, exporter) = start();
    let session = facade(&telemetry, None);
    session.tool_result(&tool_result("ok"));
    session.tool_result(&tool_result("ok"));
    session.api_request(&ApiRequest {
        attempt: 1,
        duration: Duration::from_millis(90),
        status: Some(429),
        error: Some("rate limited"),
        endpoint: "/v1/responses",
        auth: AuthDetails::default(),
    });
    assert!(telemetry.flush(Duration::from_secs(10)));
    let metrics = exporter.metrics();
    let sum = |name: &str| -> Vec<(Vec<String>, Number)> {
        metrics
            .iter()
            .filter(|m| m.name == name)
            .flat_map(|m| match &m.data {
                MetricData::Sum { points, .. } => points.clone(),
                other => panic!("a sum: {other:?}"),
            })
            .map(|p| {
                let tags = p
                    .attributes
                    .iter()
                    .map(|kv| format!("{}={:?}", kv.key, kv.value))
                    .collect();
                (tags, p.value)
            })
            .collect()
    };
    let calls = sum("codex.tool.call");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, Number::Int(2));
    assert!(
        calls[0].0.iter().any(|t| t == "tool=String(\"shell\")"),
        "{calls:?}"
    );
    assert!(
        calls[0].0.iter().any(|t| t.starts_with("originator=")),
        "session tags: {calls:?}"
    );
    let requests = sum("codex.api_request");
    assert!(
        requests[0].0.iter().any(|t| t == "status=String(\"429\")")
            && requests[0]
                .0
                .iter()
                .any(|t| t == "success=String(\"false\")"),
        "{requests:?}"
    );
    assert!(
        metrics
            .iter()
            .any(|m| m.name == "codex.tool.call.duration_ms" && m.unit == "ms"),
        "durations in ms"
    );
}

#[test]
fn each_event_puts_its_trace_safe_part_on_the_current_span_and_nothing_sensitive() {
    use tracing_subscriber::layer::SubscriberExt;

    let (telemetry, exporter) = start();
    let session = facade(&telemetry, Some("dev@example.com")).with_redaction(true, 2048);
    let subscriber = tracing_subscriber::registry().with(wasmtel::TelemetryLayer::new(&telemetry));
    tracing::subscriber::with_default(subscriber, || {
        // Outside every span: the events alone.
        session.turn_ttft(Duration::from_millis(5));
        let turn = tracing::info_span!("turn");
        let _in_turn = turn.enter();
        session.user_prompt(
            "my secret plan",
            PromptInputs {
                text: 1,
                images: 2,
                local_images: 0,
            },
        );
        session.tool_decision("shell", "call_1", "approved", "user");
        session.tool_result(&ToolResult {
            mcp_server: Some("github"),
            ..tool_result("line 1\nline 2\n")
        });
        session.websocket_connect(&ApiRequest {
            attempt: 1,
            duration: Duration::from_millis(70),
            status: Some(101),
            endpoint: "/v1/responses",
            auth: AuthDetails {
                header_attached: true,
                header_name: Some("Authorization"),
                connection_reused: Some(false),
                ..AuthDetails::default()
            },
            ..ApiRequest::default()
        });
        session.websocket_request(
            Duration::from_millis(300),
            Some("closed"),
            &AuthDetails::default(),
        );
        session.websocket_event("response.created", Duration::from_millis(3), None);
        session.auth_recovery(&AuthRecovery {
            mode: "chatgpt",
            step: "refresh_token",
            outcome: "recovered",
            state_changed: true,
            ..AuthRecovery::default()
        });
        session.turn_cost("turn-1", 0.01, false);
    });
    assert!(telemetry.flush(Duration::from_secs(10)));

    // Every event in full, as a log record.
    let events = exporter.events();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "codex.turn_ttft",
            "codex.user_prompt",
            "codex.tool_decision",
            "codex.tool_result",
            "codex.websocket_connect",
            "codex.websocket_request",
            "codex.auth_recovery",
            "codex.turn_cost",
        ]
    );
    assert_eq!(text(&events[1], "prompt"), "my secret plan");
    assert_eq!(text(&events[3], "mcp_server"), "github");
    assert_eq!(text(&events[4], "auth.header_name"), "Authorization");
    assert_eq!(
        attr(&events[4], "http.response.status_code"),
        Some(&Value::Int(101))
    );
    assert_eq!(text(&events[6], "auth.step"), "refresh_token");

    // The trace-safe part of all but tool_decision and turn_cost on the span they happen in.
    let spans = exporter.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let on_span: Vec<&str> = spans[0].events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        on_span,
        [
            "codex.user_prompt",
            "codex.tool_result",
            "codex.websocket_connect",
            "codex.websocket_request",
            "codex.auth_recovery",
        ]
    );
    let field = |event: usize, key: &str| {
        spans[0].events[event]
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.clone())
    };
    for (i, event) in spans[0].events.iter().enumerate() {
        for secret in [
            "prompt",
            "user.email",
            "user.account_id",
            "arguments",
            "output",
            "mcp_server",
        ] {
            assert_eq!(field(i, secret), None, "{secret} on a span: {event:?}");
        }
        assert!(field(i, "conversation.id").is_some(), "metadata: {event:?}");
    }
    assert_eq!(field(0, "prompt_length"), Some(Value::Int(14)));
    assert_eq!(field(0, "image_input_count"), Some(Value::Int(2)));
    assert_eq!(field(1, "output_line_count"), Some(Value::Int(2)));
    assert_eq!(field(1, "arguments_length"), Some(Value::Int(12)));
    assert_eq!(field(1, "tool_origin"), Some(Value::String("mcp".into())));
    assert_eq!(field(2, "success"), Some(Value::Bool(true)));
    assert_eq!(
        field(3, "error.message"),
        Some(Value::String("closed".into()))
    );

    // The websocket metrics, the event of a message as a metric only.
    let metrics = exporter.metrics();
    for name in [
        "codex.websocket.request",
        "codex.websocket.request.duration_ms",
        "codex.websocket.event",
        "codex.websocket.event.duration_ms",
    ] {
        assert!(metrics.iter().any(|m| m.name == name), "{name}");
    }
}

#[test]
fn a_span_keeps_128_events_and_counts_the_rest() {
    use tracing_subscriber::layer::SubscriberExt;

    let (telemetry, exporter) = start();
    let session = facade(&telemetry, None);
    let subscriber = tracing_subscriber::registry().with(wasmtel::TelemetryLayer::new(&telemetry));
    tracing::subscriber::with_default(subscriber, || {
        let turn = tracing::info_span!("turn");
        let _in_turn = turn.enter();
        for _ in 0..200 {
            session.sse_event("response.output_text.delta", Duration::ZERO, None, None);
        }
    });
    assert!(telemetry.flush(Duration::from_secs(10)));
    assert_eq!(exporter.events().len(), 200, "every event as a log record");
    let spans = exporter.spans();
    assert_eq!(spans[0].events.len(), 128);
    let dropped = spans[0]
        .attributes
        .iter()
        .find(|kv| kv.key == "wasmtel.span.dropped_events")
        .map(|kv| kv.value.clone());
    assert_eq!(dropped, Some(Value::Int(72)));
}
