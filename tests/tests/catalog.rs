//! Codex's metric catalog (`wasmtel::codex::MetricCatalog`) through the real file-jsonl plugin:
//! each metric's name, kind, fields and values, and the global context (`surface`, `version`,
//! `auth_mode`, `model`) on every point.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use wasmtel::Telemetry;
use wasmtel::codex::{AuthMode, Compaction, GlobalContext, MetricCatalog, Surface};
use wasmtel_tests::{config, only_jsonl};

/// The metrics written, by name: (kind, points as (attributes, value or count)).
fn written(dir: &std::path::Path) -> BTreeMap<String, (String, Vec<(Value, Value)>)> {
    let text = std::fs::read_to_string(only_jsonl(dir)).expect("written");
    let mut metrics = BTreeMap::new();
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).expect("a JSON line");
        if record["type"] != "metric" {
            continue;
        }
        let points = record["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| {
                // A sum's value; a histogram's count, sum and bucket counts.
                let value = match p.get("value") {
                    Some(value) => value.clone(),
                    None => json!([p["count"], p["sum"], p["counts"]]),
                };
                (p["attributes"].clone(), value)
            })
            .collect();
        let name = record["name"].as_str().expect("a name").to_string();
        let kind = format!(
            "{} {}",
            record["kind"].as_str().expect("a kind"),
            record["unit"].as_str().unwrap_or_default()
        );
        let earlier = metrics.insert(name, (kind.trim().to_string(), points));
        assert!(earlier.is_none(), "one record per metric: {line}");
    }
    metrics
}

#[test]
fn the_catalogs_metrics_carry_their_fields_and_the_global_context() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let telemetry = Telemetry::start(config(tmp.path(), "")).expect("start");
    let catalog = MetricCatalog::new(
        &telemetry,
        &GlobalContext {
            surface: Surface::Subagent("review bot".into()),
            version: "0.144.0".into(),
            auth_mode: AuthMode::ChatGpt,
            model: "gpt-5.1-codex".into(),
        },
    )
    .expect("a valid context");
    catalog.features_state("web_search", "enabled");
    catalog.session_started(true);
    catalog.task_compact(Compaction::Remote);
    catalog.task_compact(Compaction::Remote);
    catalog.task_user_shell();
    catalog.task_review();
    catalog.task_undo();
    catalog.approval_requested("shell", false);
    catalog.conversation_turn();
    catalog.mcp_call(Err("connection refused"));
    catalog.model_call("openai", "200", 1, Duration::from_millis(840));
    catalog.tool_call("apply_patch", Ok(()), Duration::from_millis(31));
    catalog.user_feedback_submitted("bug", true, true);
    telemetry.shutdown();

    let context = json!({
        "surface": "subagent_review_bot",
        "version": "0.144.0",
        "auth_mode": "swic",
        "model": "gpt-5.1-codex",
    });
    let with_context = |fields: Value| {
        let mut all = context.clone();
        all.as_object_mut()
            .expect("an object")
            .extend(fields.as_object().expect("an object").clone());
        all
    };
    let sum = |fields: Value, n: u64| ("sum".to_string(), vec![(with_context(fields), json!(n))]);
    // One sample in ms, in Codex's buckets (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, ...).
    let histogram = |fields: Value, ms: f64, bucket: usize| {
        let mut counts = vec![0; wasmtel::codex::MILLISECOND_BOUNDS.len() + 1];
        counts[bucket] = 1;
        (
            "histogram ms".to_string(),
            vec![(with_context(fields), json!([1, ms, counts]))],
        )
    };
    let expected: BTreeMap<String, (String, Vec<(Value, Value)>)> = [
        (
            "codex.features.state",
            sum(json!({"key": "web_search", "value": "enabled"}), 1),
        ),
        ("codex.session.started", sum(json!({"is_git": "true"}), 1)),
        ("codex.task.compact", sum(json!({"type": "remote"}), 2)),
        ("codex.task.user_shell", sum(json!({}), 1)),
        ("codex.task.review", sum(json!({}), 1)),
        ("codex.task.undo", sum(json!({}), 1)),
        (
            "codex.approval.requested",
            sum(json!({"tool": "shell", "approved": "no"}), 1),
        ),
        ("codex.conversation.turn.count", sum(json!({}), 1)),
        (
            "codex.mcp.call",
            sum(json!({"status": "connection_refused"}), 1),
        ),
        (
            "codex.model.call.duration_ms",
            histogram(
                json!({"provider": "openai", "status": "200", "attempt": "1"}),
                840.0,
                10,
            ),
        ),
        (
            "codex.tool.call",
            sum(json!({"tool": "apply_patch", "status": "ok"}), 1),
        ),
        (
            "codex.tool.call.duration_ms",
            histogram(json!({"tool": "apply_patch", "status": "ok"}), 31.0, 4),
        ),
        (
            "codex.user.feedback.submitted",
            sum(
                json!({"category": "bug", "include_logs": "true", "success": "true"}),
                1,
            ),
        ),
    ]
    .into_iter()
    .map(|(name, metric)| (name.to_string(), metric))
    .collect();
    assert_eq!(written(&tmp.path().join("logs")), expected);
}

#[test]
fn every_surface_and_auth_mode_has_its_tag() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let telemetry = Telemetry::start(config(tmp.path(), "")).expect("start");
    let long = "a".repeat(300);
    for (surface, auth_mode) in [
        (Surface::Cli, AuthMode::ApiKey),
        (Surface::Vscode, AuthMode::Unknown),
        (Surface::Exec, AuthMode::ChatGpt),
        (Surface::Mcp, AuthMode::ApiKey),
        (Surface::Subagent(long.clone()), AuthMode::Unknown),
    ] {
        let context = GlobalContext {
            surface,
            version: "0.144.0".into(),
            auth_mode,
            model: "gpt-5.1-codex".into(),
        };
        let catalog = MetricCatalog::new(&telemetry, &context).expect("a context");
        catalog.approval_requested("shell", true);
        catalog.tool_call("shell", Err("exit status 1"), Duration::from_millis(3));
        catalog.task_compact(Compaction::Local);
    }
    telemetry.shutdown();
    let metrics = written(&tmp.path().join("logs"));
    let tags = |name: &str, key: &str| -> Vec<String> {
        let mut values: Vec<String> = metrics[name]
            .1
            .iter()
            .map(|(attributes, _)| attributes[key].as_str().expect("text").to_string())
            .collect();
        values.sort();
        values
    };
    let subagent = format!("subagent_{}", "a".repeat(256 - "subagent_".len()));
    assert_eq!(
        tags("codex.approval.requested", "surface"),
        ["cli", "exec", "mcp", subagent.as_str(), "vscode"]
    );
    assert_eq!(
        tags("codex.approval.requested", "auth_mode"),
        ["api", "api", "swic", "unknown", "unknown"]
    );
    assert_eq!(tags("codex.approval.requested", "approved"), ["yes"; 5]);
    assert_eq!(tags("codex.tool.call", "status"), ["exit_status_1"; 5]);
    assert_eq!(tags("codex.task.compact", "type"), ["local"; 5]);
}
