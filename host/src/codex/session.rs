//! Codex's session facade: [`SessionTelemetry`] records the event catalog of Codex's
//! `SessionTelemetry` (`codex.conversation_starts`, `codex.user_prompt`, `codex.api_request`,
//! `codex.sse_event`, `codex.tool_decision`, `codex.tool_result`, `codex.sandbox_outcome`,
//! `codex.startup_phase`, `codex.turn_ttft`, `codex.turn_cost`) with the session's metadata on
//! every event, redacted as Codex redacts it, and the metrics Codex records beside them.

use std::time::{Duration, SystemTime};

use wasmtel_sdk::model::Value;

use super::metrics::MetricsClient;
use crate::instrument::EventBuilder;
use crate::routing::Recorder;
use crate::telemetry::Telemetry;

/// What every event of a session carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionMetadata {
    /// `conversation.id`.
    pub conversation_id: String,
    /// `app.version`.
    pub app_version: String,
    /// `auth_mode`, when known.
    pub auth_mode: Option<String>,
    /// `originator`.
    pub originator: String,
    /// `user.account_id`, when known.
    pub account_id: Option<String>,
    /// `user.email`, when known.
    pub account_email: Option<String>,
    /// `terminal.type`.
    pub terminal_type: String,
    /// `model`.
    pub model: String,
    /// `slug`.
    pub slug: String,
}

/// `codex.conversation_starts`: how the conversation is set up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConversationStart {
    /// `provider_name`.
    pub provider_name: String,
    /// `reasoning_effort`, if set.
    pub reasoning_effort: Option<String>,
    /// `reasoning_summary`.
    pub reasoning_summary: String,
    /// `context_window`, if known.
    pub context_window: Option<i64>,
    /// `auto_compact_token_limit`, if set.
    pub auto_compact_token_limit: Option<i64>,
    /// `approval_policy`.
    pub approval_policy: String,
    /// `sandbox_policy`.
    pub sandbox_policy: String,
    /// `mcp_servers`: the configured MCP servers' names.
    pub mcp_servers: Vec<String>,
}

/// The token counts of a completed response (`codex.sse_event` of kind `response.completed`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// `input_token_count`.
    pub input: i64,
    /// `output_token_count`.
    pub output: i64,
    /// `cached_token_count`.
    pub cached: i64,
    /// `cache_write_token_count`.
    pub cache_write: i64,
    /// `reasoning_token_count`.
    pub reasoning: i64,
    /// `tool_token_count`.
    pub tool: i64,
}

/// `codex.tool_result`: a tool call and what came of it.
#[derive(Clone, Copy, Debug)]
pub struct ToolResult<'a> {
    /// `tool_name`.
    pub tool_name: &'a str,
    /// `call_id`.
    pub call_id: &'a str,
    /// `arguments`, as the model sent them.
    pub arguments: &'a str,
    /// `duration_ms`.
    pub duration: Duration,
    /// `success`.
    pub success: bool,
    /// `output`: cut at the facade's `tool_result_max_bytes`, with a notice.
    pub output: &'a str,
    /// `mcp_server`, for an MCP tool.
    pub mcp_server: Option<&'a str>,
}

/// The session facade: Codex's event catalog with the session's metadata on every event
/// (`event.timestamp`, `conversation.id`, `app.version`, `auth_mode`, `originator`,
/// `user.account_id`, `user.email`, `terminal.type`, `model`, `slug`), and the metrics Codex
/// records beside its events (`codex.api_request`, `codex.sse_event`, `codex.tool.call`, with
/// their `.duration_ms`), through a [`MetricsClient`].
///
/// Redacted as Codex redacts: the prompt's text is `[REDACTED]` unless `log_user_prompt`, tool
/// output is cut at `tool_result_max_bytes` (2048 by default) with a notice; header values are
/// never taken. Like every record call, none of its calls blocks.
#[derive(Clone)]
pub struct SessionTelemetry {
    recorder: Recorder,
    metadata: SessionMetadata,
    metrics: MetricsClient,
    log_user_prompt: bool,
    tool_result_max_bytes: usize,
}

/// What a cut tool output ends with.
fn truncation_notice(cut: usize) -> String {
    format!("\n[... {cut} bytes truncated]")
}

impl SessionTelemetry {
    /// The facade of a session with `metadata`, recording into `telemetry`, its metrics through
    /// `metrics`; redacted by Codex's defaults until [`SessionTelemetry::with_redaction`] says
    /// otherwise.
    pub fn new(
        telemetry: &Telemetry,
        metadata: SessionMetadata,
        metrics: MetricsClient,
    ) -> SessionTelemetry {
        SessionTelemetry {
            recorder: telemetry.recorder(),
            metadata,
            metrics,
            log_user_prompt: false,
            tool_result_max_bytes: 2048,
        }
    }

    /// The facade with `[otel] log_user_prompt` and `tool_result.max_bytes`.
    pub fn with_redaction(
        mut self,
        log_user_prompt: bool,
        tool_result_max_bytes: usize,
    ) -> SessionTelemetry {
        self.log_user_prompt = log_user_prompt;
        self.tool_result_max_bytes = tool_result_max_bytes;
        self
    }

    /// The facade redacted as a config's `[otel]` table says (`log_user_prompt`,
    /// `tool_result.max_bytes`).
    pub fn with_otel(self, settings: &crate::config::otel::OtelSettings) -> SessionTelemetry {
        self.with_redaction(settings.log_user_prompt, settings.tool_result_max_bytes)
    }

    /// The metrics client it records through.
    pub fn metrics(&self) -> &MetricsClient {
        &self.metrics
    }

    /// An event named `name` with the session's metadata.
    fn event(&self, name: &'static str) -> EventBuilder<'_> {
        let m = &self.metadata;
        let mut event = EventBuilder::new(&self.recorder.routes, name);
        let timestamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        event
            .attr("event.timestamp", timestamp.as_str())
            .attr("conversation.id", m.conversation_id.as_str())
            .attr("app.version", m.app_version.as_str());
        if let Some(auth_mode) = &m.auth_mode {
            event.attr("auth_mode", auth_mode.as_str());
        }
        event.attr("originator", m.originator.as_str());
        if let Some(account_id) = &m.account_id {
            event.attr("user.account_id", account_id.as_str());
        }
        if let Some(email) = &m.account_email {
            event.attr("user.email", email.as_str());
        }
        event
            .attr("terminal.type", m.terminal_type.as_str())
            .attr("model", m.model.as_str())
            .attr("slug", m.slug.as_str());
        event
    }

    /// `codex.conversation_starts`.
    pub fn conversation_starts(&self, start: &ConversationStart) {
        let mut event = self.event("codex.conversation_starts");
        event.attr("provider_name", start.provider_name.as_str());
        if let Some(effort) = &start.reasoning_effort {
            event.attr("reasoning_effort", effort.as_str());
        }
        event.attr("reasoning_summary", start.reasoning_summary.as_str());
        if let Some(window) = start.context_window {
            event.attr("context_window", window);
        }
        if let Some(limit) = start.auto_compact_token_limit {
            event.attr("auto_compact_token_limit", limit);
        }
        let servers: Vec<Value> = start
            .mcp_servers
            .iter()
            .map(|s| Value::String(s.clone().into()))
            .collect();
        event
            .attr("approval_policy", start.approval_policy.as_str())
            .attr("sandbox_policy", start.sandbox_policy.as_str())
            .attr("mcp_servers", Value::Array(servers))
            .emit();
    }

    /// `codex.user_prompt`: its length, and its text only if `log_user_prompt`.
    pub fn user_prompt(&self, prompt: &str) {
        let text = if self.log_user_prompt {
            prompt
        } else {
            "[REDACTED]"
        };
        self.event("codex.user_prompt")
            .attr("prompt_length", prompt.chars().count())
            .attr("prompt", text)
            .emit();
    }

    /// `codex.api_request`, and the `codex.api_request` counter and `.duration_ms` histogram
    /// (tags `status`, `success`).
    pub fn api_request(
        &self,
        attempt: u64,
        duration: Duration,
        status: Option<u16>,
        error: Option<&str>,
        endpoint: &str,
    ) {
        let mut event = self.event("codex.api_request");
        event
            .attr("duration_ms", duration_ms(duration))
            .attr("attempt", attempt)
            .attr("endpoint", endpoint);
        if let Some(status) = status {
            event.attr("http.response.status_code", u32::from(status));
        }
        if let Some(error) = error {
            event.attr("error.message", error);
        }
        event.emit();
        let status = status.map_or_else(|| "none".to_string(), |s| s.to_string());
        let success = if error.is_none() { "true" } else { "false" };
        let tags = [("status", status.as_str()), ("success", success)];
        // Names and tags are Codex's own, so they pass its rules.
        let _ = self.metrics.counter("codex.api_request", 1, &tags);
        let _ = self
            .metrics
            .record_duration("codex.api_request.duration_ms", duration, &tags);
    }

    /// `codex.sse_event` of `kind`, with the token counts of a completed response; and the
    /// `codex.sse_event` counter and `.duration_ms` histogram (tags `kind`, `success`).
    pub fn sse_event(
        &self,
        kind: &str,
        duration: Duration,
        error: Option<&str>,
        usage: Option<TokenUsage>,
    ) {
        let mut event = self.event("codex.sse_event");
        event
            .attr("event.kind", kind)
            .attr("duration_ms", duration_ms(duration));
        if let Some(error) = error {
            event.attr("error.message", error);
        }
        if let Some(u) = usage {
            event
                .attr("input_token_count", u.input)
                .attr("output_token_count", u.output)
                .attr("cached_token_count", u.cached)
                .attr("cache_write_token_count", u.cache_write)
                .attr("reasoning_token_count", u.reasoning)
                .attr("tool_token_count", u.tool);
        }
        event.emit();
        let kind = super::metrics::sanitize_metric_tag_value(kind);
        let success = if error.is_none() { "true" } else { "false" };
        let tags = [("kind", kind.as_str()), ("success", success)];
        let _ = self.metrics.counter("codex.sse_event", 1, &tags);
        let _ = self
            .metrics
            .record_duration("codex.sse_event.duration_ms", duration, &tags);
    }

    /// `codex.tool_decision`: `decision` (approved, denied, ...) by `source` (`config`, `user`,
    /// `automated_reviewer`).
    pub fn tool_decision(&self, tool_name: &str, call_id: &str, decision: &str, source: &str) {
        self.event("codex.tool_decision")
            .attr("tool_name", tool_name)
            .attr("call_id", call_id)
            .attr("decision", decision)
            .attr("source", source)
            .emit();
    }

    /// `codex.tool_result`, its output cut at `tool_result_max_bytes` with a notice; and the
    /// `codex.tool.call` counter and `.duration_ms` histogram (tags `tool`, `success`).
    pub fn tool_result(&self, result: &ToolResult<'_>) {
        let output = result.output;
        let (shown, truncated) = if output.len() > self.tool_result_max_bytes {
            let mut end = self.tool_result_max_bytes;
            while !output.is_char_boundary(end) {
                end -= 1;
            }
            (
                format!(
                    "{}{}",
                    &output[..end],
                    truncation_notice(output.len() - end)
                ),
                true,
            )
        } else {
            (output.to_string(), false)
        };
        let mut event = self.event("codex.tool_result");
        event
            .attr("tool_name", result.tool_name)
            .attr("call_id", result.call_id)
            .attr("arguments", result.arguments)
            .attr("duration_ms", duration_ms(result.duration))
            .attr("success", result.success)
            .attr("output", shown.as_str())
            .attr("output_truncated", truncated);
        if let Some(server) = result.mcp_server {
            event.attr("mcp_server", server);
        }
        event.emit();
        let tool = super::metrics::sanitize_metric_tag_value(result.tool_name);
        let tags = [
            ("tool", tool.as_str()),
            ("success", if result.success { "true" } else { "false" }),
        ];
        let _ = self.metrics.counter("codex.tool.call", 1, &tags);
        let _ = self
            .metrics
            .record_duration("codex.tool.call.duration_ms", result.duration, &tags);
    }

    /// `codex.sandbox_outcome`.
    pub fn sandbox_outcome(
        &self,
        tool_name: &str,
        call_id: &str,
        outcome: &str,
        initial: Duration,
        escalated: Option<Duration>,
    ) {
        let mut event = self.event("codex.sandbox_outcome");
        event
            .attr("tool_name", tool_name)
            .attr("call_id", call_id)
            .attr("outcome", outcome)
            .attr("initial_duration_ms", duration_ms(initial));
        if let Some(escalated) = escalated {
            event.attr("escalated_duration_ms", duration_ms(escalated));
        }
        event.emit();
    }

    /// `codex.startup_phase`.
    pub fn startup_phase(&self, phase: &str, status: &str, duration: Duration) {
        self.event("codex.startup_phase")
            .attr("startup.phase", phase)
            .attr("startup.status", status)
            .attr("duration_ms", duration_ms(duration))
            .emit();
    }

    /// `codex.turn_ttft`: the time to the first token of a turn.
    pub fn turn_ttft(&self, duration: Duration) {
        self.event("codex.turn_ttft")
            .attr("duration_ms", duration_ms(duration))
            .emit();
    }

    /// `codex.turn_cost`: a turn's estimated cost.
    pub fn turn_cost(&self, turn_id: &str, estimated_usd: f64, interrupted: bool) {
        self.event("codex.turn_cost")
            .attr("turn.id", turn_id)
            .attr("usage.estimated_usd", estimated_usd)
            .attr("turn.interrupted", interrupted)
            .emit();
    }
}

/// A duration in whole milliseconds, as Codex's events carry it.
fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
