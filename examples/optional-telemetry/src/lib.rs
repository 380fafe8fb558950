//! An application whose telemetry is one of its own cargo features (`telemetry`, on by default,
//! which turns on wasmtel's `runtime`). Its code records a session through wasmtel's Codex surface
//! and never asks which build it is in: with the feature off, the same calls compile to nothing.
//!
//! ```text
//! cargo run -p optional-telemetry [DIR]                        # writes DIR/app.jsonl
//! cargo run -p optional-telemetry --no-default-features [DIR]  # records nothing
//! ```

use std::path::Path;
use std::time::Duration;

use wasmtel::codex::{
    AuthMode, GlobalContext, MetricCatalog, MetricsClient, PromptInputs, SessionMetadata,
    SessionTelemetry, Surface, ToolResult,
};
use wasmtel::{Config, Error, ExporterStats, KeyValue, Telemetry};

/// Records one turn of a session into `dir/app.jsonl` (file-jsonl); each exporter's figures once
/// it is shut down (none when telemetry is compiled out).
pub fn run(dir: &Path) -> Result<Vec<ExporterStats>, Error> {
    let text = format!(
        "[telemetry]\ndir = {dir:?}\n\n\
         [exporters.app]\nplugin = \"file-jsonl\"\nconfig = {{ file = \"app.jsonl\" }}\n",
        dir = dir.display().to_string()
    );
    let config = Config::parse(&text, Path::new("app.toml"), Path::new("."))?;
    let telemetry = Telemetry::builder(config)
        .resource(vec![KeyValue::new("service.name", "optional-telemetry")])
        .start()?;

    let session = SessionTelemetry::new(
        &telemetry,
        SessionMetadata {
            conversation_id: "019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f".into(),
            app_version: "1.0.0".into(),
            originator: "optional_telemetry".into(),
            model: "gpt-5.1-codex".into(),
            ..SessionMetadata::default()
        },
        MetricsClient::new(&telemetry),
    );
    let catalog = MetricCatalog::new(
        &telemetry,
        &GlobalContext {
            surface: Surface::Exec,
            version: "1.0.0".into(),
            auth_mode: AuthMode::ApiKey,
            model: "gpt-5.1-codex".into(),
        },
    )
    .expect("the catalog's tags are valid");

    catalog.session_started(false);
    let turn = telemetry.span("turn").start();
    session.user_prompt("fix the failing test", PromptInputs::default());
    let tool = telemetry.span("tool_call").parent(turn.context()).start();
    session.tool_result(&ToolResult {
        tool_name: "shell",
        call_id: "call-1",
        arguments: "{\"command\":[\"cargo\",\"test\"]}",
        duration: Duration::from_millis(1200),
        success: true,
        output: "test result: ok. 12 passed",
        mcp_server: None,
    });
    tool.end();
    catalog.tool_call("shell", Ok(()), Duration::from_millis(1200));
    telemetry
        .counter("app.turns")
        .add(1, &[KeyValue::new("outcome", "done")]);
    turn.end();
    Ok(telemetry.shutdown())
}
