//! `examples/codex_session.rs`, run as it is: the file it writes through the real file-jsonl
//! plugin holds exactly the catalog's events with the session's metadata (in the spans they
//! happen in), the metrics with the session's tags, and the spans with their parents and the
//! trace-safe events on them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

#[allow(dead_code)]
#[path = "../examples/codex_session.rs"]
mod codex_session;

fn by_type<'r>(records: &'r [Value], kind: &str) -> Vec<&'r Value> {
    records.iter().filter(|r| r["type"] == kind).collect()
}

#[test]
fn the_example_writes_the_catalogs_events_metrics_and_spans() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // None of the environment's variables: the test sees the same wherever it runs.
    let stats = codex_session::run(tmp.path(), |_| None).expect("the example runs");
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].dropped(), 0, "{}", stats[0]);
    let text = std::fs::read_to_string(tmp.path().join("codex-session.jsonl")).expect("written");
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();

    assert_eq!(
        by_type(&records, "resource")[0]["attributes"],
        json!({"service.name": "codex_cli_rs", "service.version": "0.144.0", "env": "dev"})
    );

    // The spans: session > turn > model_request, tool_call; each with the span attribute.
    let spans = by_type(&records, "span");
    let span = |name: &str| {
        *spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no span {name}"))
    };
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["model_request", "tool_call", "turn", "session"]);
    let (session, turn) = (span("session"), span("turn"));
    assert!(session.get("parent_span_id").is_none());
    assert_eq!(turn["parent_span_id"], session["span_id"]);
    for child in ["model_request", "tool_call"] {
        assert_eq!(span(child)["parent_span_id"], turn["span_id"], "{child}");
        assert_eq!(span(child)["trace_id"], session["trace_id"]);
    }
    for s in &spans {
        assert_eq!(s["attributes"]["deployment.lane"], "canary", "{s}");
    }

    // The events: the catalog, in order, each with the metadata, in the span it happened in.
    let events = by_type(&records, "event");
    let in_span: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            let within = spans
                .iter()
                .find(|s| s["span_id"] == e["span_id"])
                .and_then(|s| s["name"].as_str())
                .unwrap_or("none");
            (e["name"].as_str().expect("a name"), within)
        })
        .collect();
    assert_eq!(
        in_span,
        [
            ("codex.startup_phase", "session"),
            ("codex.conversation_starts", "session"),
            ("codex.user_prompt", "turn"),
            ("codex.api_request", "model_request"),
            ("codex.sse_event", "model_request"),
            ("codex.sse_event", "model_request"),
            ("codex.turn_ttft", "turn"),
            ("codex.tool_decision", "tool_call"),
            ("codex.tool_result", "tool_call"),
            ("codex.sandbox_outcome", "tool_call"),
            ("codex.turn_cost", "turn"),
        ]
    );
    for e in &events {
        let a = &e["attributes"];
        assert_eq!(a["conversation.id"], "019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f");
        assert_eq!(a["user.email"], "dev@example.com", "{e}");
        for key in [
            "event.timestamp",
            "app.version",
            "auth_mode",
            "originator",
            "terminal.type",
            "model",
            "slug",
        ] {
            assert!(a.get(key).is_some(), "{key} in {e}");
        }
    }
    let event = |name: &str| *events.iter().find(|e| e["name"] == name).expect(name);
    assert_eq!(
        event("codex.user_prompt")["attributes"]["prompt"],
        "[REDACTED]"
    );
    let output = event("codex.tool_result")["attributes"]["output"]
        .as_str()
        .expect("output");
    assert!(output.ends_with("[... 1352 bytes truncated]"), "{output}");
    assert_eq!(
        event("codex.api_request")["attributes"]["auth.header_name"],
        "Authorization"
    );

    // The trace-safe part on the spans: no user.*, no prompt, no output.
    let on = |name: &str| -> Vec<&str> {
        span(name)["events"]
            .as_array()
            .map(|events| events.iter().filter_map(|e| e["name"].as_str()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        on("session"),
        ["codex.startup_phase", "codex.conversation_starts"]
    );
    assert_eq!(on("turn"), ["codex.user_prompt", "codex.turn_ttft"]);
    assert_eq!(
        on("model_request"),
        ["codex.api_request", "codex.sse_event", "codex.sse_event"]
    );
    assert_eq!(
        on("tool_call"),
        ["codex.tool_result", "codex.sandbox_outcome"]
    );
    for s in &spans {
        let text = s.to_string();
        for secret in [
            "dev@example.com",
            "acct-1",
            "test result",
            "[REDACTED]",
            "cargo",
        ] {
            assert!(!text.contains(secret), "{secret} on span {}", s["name"]);
        }
    }

    // The metrics, with the session's tags, in Codex's meter.
    let metrics: BTreeMap<&str, &Value> = by_type(&records, "metric")
        .into_iter()
        .map(|m| (m["name"].as_str().expect("a name"), m))
        .collect();
    assert_eq!(
        metrics.keys().copied().collect::<Vec<_>>(),
        [
            "codex.api_request",
            "codex.api_request.duration_ms",
            "codex.sse_event",
            "codex.sse_event.duration_ms",
            "codex.tool.call",
            "codex.tool.call.duration_ms",
        ]
    );
    for (name, m) in &metrics {
        assert_eq!(m["scope"]["name"], "codex", "{name}");
        for point in m["points"].as_array().expect("points") {
            let tags = &point["attributes"];
            assert_eq!(tags["originator"], "codex_cli_rs", "{name}");
            assert_eq!(tags["session_source"], "cli", "{name}");
            assert_eq!(tags["model"], "gpt-5.1-codex", "{name}");
        }
    }
    let calls = &metrics["codex.tool.call"]["points"][0];
    assert_eq!(calls["attributes"]["tool"], "shell");
    assert_eq!(calls["value"], 1);
    let sse: Vec<(&str, i64)> = metrics["codex.sse_event"]["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| {
            (
                p["attributes"]["kind"].as_str().expect("kind"),
                p["value"].as_i64().expect("n"),
            )
        })
        .collect();
    assert_eq!(sse, [("response.created", 1), ("response.completed", 1)]);
}
