//! A Codex-like session through wasmtel's Codex surface: the session facade, the metrics client
//! and the `tracing` layer, into the file-jsonl plugin (and whatever the environment adds, e.g.
//! `CODEX_OTEL_EXPORTER=otlp`).
//!
//! ```text
//! cargo run -p wasmtel --example codex_session [DIR]
//! ```
//!
//! writes `DIR/codex-session.jsonl` (default `DIR`: `logs`) and prints each exporter's line.

use std::path::Path;
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use wasmtel::codex::{
    ApiRequest, AuthDetails, ConversationStart, MetricsClient, PromptInputs, SessionMetadata,
    SessionTags, SessionTelemetry, TokenUsage, ToolResult,
};
use wasmtel::{Config, ExporterStats, KeyValue, Telemetry, TelemetryLayer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "logs".into());
    for exporter in run(Path::new(&dir), |name| std::env::var(name).ok())? {
        println!("{exporter}");
    }
    println!(
        "wrote {}",
        Path::new(&dir).join("codex-session.jsonl").display()
    );
    Ok(())
}

/// Plays the session into `dir`, with the variables `var` gives over the config; each
/// exporter's figures once it is shut down.
pub fn run(
    dir: &Path,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Vec<ExporterStats>, Box<dyn std::error::Error>> {
    // file-jsonl into `dir`, one file; the environment's layer over it.
    let text = format!(
        "[telemetry]\ndir = {dir:?}\n\n\
         [exporters.session]\nplugin = \"file-jsonl\"\nconfig = {{ file = \"codex-session.jsonl\" }}\n\n\
         [otel]\nlog_user_prompt = false\nmetrics_exporter = \"none\"\n\
         [otel.span_attributes]\n\"deployment.lane\" = \"canary\"\n",
        dir = dir.display().to_string()
    );
    let config =
        Config::parse(&text, Path::new("codex_session.toml"), Path::new("."))?.with_vars(var)?;
    let otel = config.otel().cloned().expect("the [otel] table");
    let telemetry = Telemetry::builder(config)
        .resource(vec![
            KeyValue::new("service.name", "codex_cli_rs"),
            KeyValue::new("service.version", "0.144.0"),
        ])
        .start()?;

    let metrics = MetricsClient::new(&telemetry).with_session_tags(SessionTags {
        auth_mode: Some("Chatgpt".into()),
        session_source: "cli".into(),
        originator: "codex_cli_rs".into(),
        service_name: None,
        model: "gpt-5.1-codex".into(),
        app_version: "0.144.0".into(),
    })?;
    let session = SessionTelemetry::new(
        &telemetry,
        SessionMetadata {
            conversation_id: "019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f".into(),
            app_version: "0.144.0".into(),
            auth_mode: Some("ChatGPT".into()),
            originator: "codex_cli_rs".into(),
            account_id: Some("acct-1".into()),
            account_email: Some("dev@example.com".into()),
            terminal_type: "xterm-256color".into(),
            model: "gpt-5.1-codex".into(),
            slug: "gpt-5.1-codex".into(),
        },
        metrics.clone(),
    )
    .with_otel(&otel);
    let layer = TelemetryLayer::new(&telemetry)
        .with_targets(&["codex_core"])
        .with_span_attributes(&otel.span_attributes);
    let subscriber = tracing_subscriber::registry().with(layer);

    tracing::subscriber::with_default(subscriber, || {
        let conversation = tracing::info_span!(target: "codex_core", "session", thread.id = 1);
        let _in_conversation = conversation.enter();
        session.startup_phase("config", "ok", Duration::from_millis(4));
        session.conversation_starts(&ConversationStart {
            provider_name: "openai".into(),
            reasoning_effort: Some("medium".into()),
            reasoning_summary: "auto".into(),
            context_window: Some(272_000),
            auto_compact_token_limit: None,
            approval_policy: "on-request".into(),
            sandbox_policy: "workspace-write".into(),
            mcp_servers: vec!["github".into()],
        });

        let turn = tracing::info_span!(target: "codex_core", "turn", turn.id = "turn-1");
        let _in_turn = turn.enter();
        session.user_prompt(
            "list the files and fix the failing test",
            PromptInputs {
                text: 1,
                ..PromptInputs::default()
            },
        );
        {
            let request = tracing::info_span!(target: "codex_core", "model_request", attempt = 1);
            let _in_request = request.enter();
            session.api_request(&ApiRequest {
                attempt: 1,
                duration: Duration::from_millis(840),
                status: Some(200),
                endpoint: "/v1/responses",
                auth: AuthDetails {
                    header_attached: true,
                    header_name: Some("Authorization"),
                    ..AuthDetails::default()
                },
                ..ApiRequest::default()
            });
            session.sse_event("response.created", Duration::from_millis(5), None, None);
            session.sse_event(
                "response.completed",
                Duration::from_millis(12),
                None,
                Some(TokenUsage {
                    input: 11_384,
                    output: 734,
                    cached: 8_192,
                    reasoning: 256,
                    ..TokenUsage::default()
                }),
            );
        }
        session.turn_ttft(Duration::from_millis(917));
        {
            let tool = tracing::info_span!(target: "codex_core", "tool_call", tool = "shell");
            let _in_tool = tool.enter();
            session.tool_decision("shell", "call_1", "approved", "config");
            session.tool_result(&ToolResult {
                tool_name: "shell",
                call_id: "call_1",
                arguments: r#"{"command":["cargo","test"]}"#,
                duration: Duration::from_millis(2_310),
                success: true,
                output: &"test result: ok.\n".repeat(200),
                mcp_server: None,
            });
            session.sandbox_outcome(
                "shell",
                "call_1",
                "success",
                Duration::from_millis(2_300),
                None,
            );
        }
        session.turn_cost("turn-1", 0.0123, false);
    });
    Ok(telemetry.shutdown())
}
