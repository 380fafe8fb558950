//! Codex's session facade: [`SessionTelemetry`] records the event catalog of Codex's
//! `SessionTelemetry` (`codex.conversation_starts`, `codex.user_prompt`, `codex.api_request`,
//! `codex.websocket_connect`, `codex.websocket_request`, `codex.auth_recovery`,
//! `codex.sse_event`, `codex.tool_decision`, `codex.tool_result`, `codex.sandbox_outcome`,
//! `codex.startup_phase`, `codex.turn_ttft`, `codex.turn_cost`) with the session's metadata on
//! every event, redacted as Codex redacts it, and the metrics Codex records beside them. As
//! Codex routes them, each event is recorded in full detail as an event, and its trace-safe part
//! as an event of the current span.

use std::borrow::Cow;
use std::cell::Cell;
use std::time::{Duration, SystemTime};

use wasmtel_sdk::encode::AttrValue;
use wasmtel_sdk::model::{KeyValue, Value};

use super::fields::{
    ApiRequest, AuthDetails, AuthRecovery, ConversationStart, PromptInputs, SessionMetadata,
    TokenUsage, ToolResult,
};
use super::metrics::MetricsClient;
use super::tags::{truth, with_sanitized};
use crate::exporter::Signal;
use crate::instrument::EventBuilder;
use crate::routing::Recorder;
use crate::telemetry::Telemetry;

/// The session facade: Codex's event catalog with the session's metadata on every event
/// (`event.timestamp`, `conversation.id`, `app.version`, `auth_mode`, `originator`,
/// `user.account_id`, `user.email`, `terminal.type`, `model`, `slug`), and the metrics Codex
/// records beside its events (`codex.api_request`, `codex.sse_event`, `codex.tool.call`,
/// `codex.websocket.request`, `codex.websocket.event`, with their `.duration_ms`), through a
/// [`MetricsClient`].
///
/// Routed as Codex routes: every event is recorded in full; and all but `codex.tool_decision`
/// and `codex.turn_cost` also as an event of the current span (a `tracing` span recorded by a
/// [`crate::TelemetryLayer`]) with only their trace-safe fields: no `user.*`, no prompt, no
/// tool arguments or output (their lengths instead), no MCP server.
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
    pub fn with_otel(self, settings: &crate::settings::OtelSettings) -> SessionTelemetry {
        self.with_redaction(settings.log_user_prompt, settings.tool_result_max_bytes)
    }

    /// The metrics client it records through.
    pub fn metrics(&self) -> &MetricsClient {
        &self.metrics
    }

    /// Records the catalog event `name`: in full, with the session's metadata and what
    /// `fields` writes to its log record, in the current span; and, unless `log_only`, on the
    /// current span, with the metadata but `user.*` and what `fields` writes to its trace
    /// record.
    fn record(&self, name: &'static str, log_only: bool, fields: impl Fn(&mut Sink<'_, '_>)) {
        let routes = &self.recorder.routes;
        if !routes.takes(Signal::Events) && !routes.takes(Signal::Spans) {
            // Telemetry off, say: nothing to build.
            return;
        }
        let mut within = None;
        crate::layer::in_current_span(|span| {
            within = Some(span.context());
            if !log_only && span.is_recording() {
                let mut attributes = Vec::new();
                let mut trace = Sink::Trace(&mut attributes);
                self.metadata(&mut trace);
                fields(&mut trace);
                span.push_event(name.into(), attributes);
            }
        });
        let mut event = EventBuilder::new(&self.recorder.routes, name);
        if event.is_building() {
            let mut log = Sink::Log(&mut event);
            self.metadata(&mut log);
            fields(&mut log);
            if let Some(context) = within {
                event.in_span(context);
            }
            event.emit();
        }
    }

    /// The session's metadata; `user.*` on log records only.
    fn metadata(&self, sink: &mut Sink<'_, '_>) {
        let m = &self.metadata;
        with_timestamp(|timestamp| sink.put("event.timestamp", timestamp));
        sink.put("conversation.id", m.conversation_id.as_str())
            .put("app.version", m.app_version.as_str())
            .some("auth_mode", m.auth_mode.as_deref())
            .put("originator", m.originator.as_str());
        if sink.is_log() {
            sink.some("user.account_id", m.account_id.as_deref())
                .some("user.email", m.account_email.as_deref());
        }
        sink.put("terminal.type", m.terminal_type.as_str())
            .put("model", m.model.as_str())
            .put("slug", m.slug.as_str());
    }

    /// `codex.conversation_starts`; the MCP servers' names on its log record, their count on
    /// its trace record.
    pub fn conversation_starts(&self, start: &ConversationStart) {
        self.record("codex.conversation_starts", false, |s| {
            s.put("provider_name", start.provider_name.as_str())
                .some("reasoning_effort", start.reasoning_effort.as_deref())
                .put("reasoning_summary", start.reasoning_summary.as_str())
                .some("context_window", start.context_window)
                .some("auto_compact_token_limit", start.auto_compact_token_limit)
                .put("approval_policy", start.approval_policy.as_str())
                .put("sandbox_policy", start.sandbox_policy.as_str());
            if s.is_log() {
                let servers: Vec<Value> = start
                    .mcp_servers
                    .iter()
                    .map(|s| Value::String(s.clone().into()))
                    .collect();
                s.put("mcp_servers", servers);
            } else {
                s.put("mcp_server_count", start.mcp_servers.len());
            }
        });
    }

    /// `codex.user_prompt`: its length; its text on the log record only if `log_user_prompt`
    /// (else `[REDACTED]`); what it is made of on the trace record.
    pub fn user_prompt(&self, prompt: &str, inputs: PromptInputs) {
        self.record("codex.user_prompt", false, |s| {
            s.put("prompt_length", prompt.chars().count());
            if s.is_log() {
                let text = if self.log_user_prompt {
                    prompt
                } else {
                    "[REDACTED]"
                };
                s.put("prompt", text);
            } else {
                s.put("text_input_count", inputs.text)
                    .put("image_input_count", inputs.images)
                    .put("local_image_input_count", inputs.local_images);
            }
        });
    }

    /// `codex.api_request`, and the `codex.api_request` counter and `.duration_ms` histogram
    /// (tags `status`, `success`).
    pub fn api_request(&self, request: &ApiRequest<'_>) {
        self.record("codex.api_request", false, |s| {
            s.request(request);
        });
        let mut digits = itoa::Buffer::new();
        let status = request
            .status
            .map_or("none", |status| digits.format(status));
        self.counted(
            ["codex.api_request", "codex.api_request.duration_ms"],
            request.duration,
            [
                ("status", status),
                ("success", truth(request.error.is_none())),
            ],
        );
    }

    /// `codex.websocket_connect`: a request's fields, with `success`.
    pub fn websocket_connect(&self, request: &ApiRequest<'_>) {
        self.record("codex.websocket_connect", false, |s| {
            s.request(request).put("success", request.error.is_none());
        });
    }

    /// `codex.websocket_request`, and the `codex.websocket.request` counter and `.duration_ms`
    /// histogram (tag `success`).
    pub fn websocket_request(
        &self,
        duration: Duration,
        error: Option<&str>,
        auth: &AuthDetails<'_>,
    ) {
        self.record("codex.websocket_request", false, |s| {
            s.put("duration_ms", duration_ms(duration))
                .put("success", error.is_none())
                .some("error.message", error)
                .auth(auth);
        });
        self.counted(
            [
                "codex.websocket.request",
                "codex.websocket.request.duration_ms",
            ],
            duration,
            [("success", truth(error.is_none()))],
        );
    }

    /// A message on a websocket: the `codex.websocket.event` counter and `.duration_ms`
    /// histogram (tags `kind`, `success`); metrics only, as in Codex.
    pub fn websocket_event(&self, kind: &str, duration: Duration, error: Option<&str>) {
        self.counted(
            ["codex.websocket.event", "codex.websocket.event.duration_ms"],
            duration,
            [("kind", kind), ("success", truth(error.is_none()))],
        );
    }

    /// `codex.auth_recovery`.
    pub fn auth_recovery(&self, recovery: &AuthRecovery<'_>) {
        self.record("codex.auth_recovery", false, |s| {
            s.put("auth.mode", recovery.mode)
                .put("auth.step", recovery.step)
                .put("auth.outcome", recovery.outcome)
                .some("auth.request_id", recovery.request_id)
                .some("auth.cf_ray", recovery.cf_ray)
                .some("auth.error", recovery.error)
                .some("auth.error_code", recovery.error_code)
                .some("auth.recovery_reason", recovery.recovery_reason)
                .put("auth.state_changed", recovery.state_changed);
        });
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
        self.record("codex.sse_event", false, |s| {
            s.put("event.kind", kind)
                .put("duration_ms", duration_ms(duration))
                .some("error.message", error);
            if let Some(u) = usage {
                s.put("input_token_count", u.input)
                    .put("output_token_count", u.output)
                    .put("cached_token_count", u.cached)
                    .put("cache_write_token_count", u.cache_write)
                    .put("reasoning_token_count", u.reasoning)
                    .put("tool_token_count", u.tool);
            }
        });
        self.counted(
            ["codex.sse_event", "codex.sse_event.duration_ms"],
            duration,
            [("kind", kind), ("success", truth(error.is_none()))],
        );
    }

    /// `codex.tool_decision`: `decision` (approved, denied, ...) by `source` (`config`, `user`,
    /// `automated_reviewer`); a log record only.
    pub fn tool_decision(&self, tool_name: &str, call_id: &str, decision: &str, source: &str) {
        self.record("codex.tool_decision", true, |s| {
            s.put("tool_name", tool_name)
                .put("call_id", call_id)
                .put("decision", decision)
                .put("source", source);
        });
    }

    /// `codex.tool_result`: the arguments, the output (cut at `tool_result_max_bytes` with a
    /// notice) and the MCP server on its log record, their lengths, the output's line count and
    /// the tool's origin on its trace record; and the `codex.tool.call` counter and
    /// `.duration_ms` histogram (tags `tool`, `success`).
    pub fn tool_result(&self, result: &ToolResult<'_>) {
        let output = result.output;
        let truncated = output.len() > self.tool_result_max_bytes;
        self.record("codex.tool_result", false, |s| {
            s.put("tool_name", result.tool_name)
                .put("call_id", result.call_id)
                .put("duration_ms", duration_ms(result.duration))
                .put("success", result.success)
                .put("output_truncated", truncated);
            if s.is_log() {
                let shown = if truncated {
                    Cow::Owned(cut(output, self.tool_result_max_bytes))
                } else {
                    Cow::Borrowed(output)
                };
                s.put("arguments", result.arguments)
                    .put("output", shown.as_ref())
                    .some("mcp_server", result.mcp_server);
            } else {
                let origin = if result.mcp_server.is_some() {
                    "mcp"
                } else {
                    "builtin"
                };
                s.put("arguments_length", result.arguments.len())
                    .put("output_length", output.len())
                    .put("output_line_count", output.lines().count())
                    .put("tool_origin", origin);
            }
        });
        self.counted(
            ["codex.tool.call", "codex.tool.call.duration_ms"],
            result.duration,
            [
                ("tool", result.tool_name),
                ("success", truth(result.success)),
            ],
        );
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
        self.record("codex.sandbox_outcome", false, |s| {
            s.put("tool_name", tool_name)
                .put("call_id", call_id)
                .put("outcome", outcome)
                .put("initial_duration_ms", duration_ms(initial))
                .some("escalated_duration_ms", escalated.map(duration_ms));
        });
    }

    /// `codex.startup_phase`.
    pub fn startup_phase(&self, phase: &str, status: &str, duration: Duration) {
        self.record("codex.startup_phase", false, |s| {
            s.put("startup.phase", phase)
                .put("startup.status", status)
                .put("duration_ms", duration_ms(duration));
        });
    }

    /// `codex.turn_ttft`: the time to the first token of a turn.
    pub fn turn_ttft(&self, duration: Duration) {
        self.record("codex.turn_ttft", false, |s| {
            s.put("duration_ms", duration_ms(duration));
        });
    }

    /// `codex.turn_cost`: a turn's estimated cost; a log record only.
    pub fn turn_cost(&self, turn_id: &str, estimated_usd: f64, interrupted: bool) {
        self.record("codex.turn_cost", true, |s| {
            s.put("turn.id", turn_id)
                .put("usage.estimated_usd", estimated_usd)
                .put("turn.interrupted", interrupted);
        });
    }

    /// Counts one in the counter of `[counter, histogram]` and records `duration` in the
    /// histogram, with `tags` (their values sanitized by Codex's rules). Nothing is built when
    /// no exporter takes metrics.
    fn counted<const N: usize>(
        &self,
        [counter, histogram]: [&'static str; 2],
        duration: Duration,
        tags: [(&'static str, &str); N],
    ) {
        if !self.metrics.takes_metrics() {
            return;
        }
        // The names are Codex's own and the values sanitized, so they pass its rules.
        with_sanitized(tags, |tags| {
            let _ = self.metrics.counter(counter, 1, tags);
            let _ = self.metrics.record_duration(histogram, duration, tags);
        });
    }
}

/// Where a catalog event's fields are written: its log record (in full, an event) or its trace
/// record (the trace-safe part, an event of the current span).
enum Sink<'b, 't> {
    Log(&'b mut EventBuilder<'t>),
    Trace(&'b mut Vec<KeyValue>),
}

impl Sink<'_, '_> {
    /// Whether this is the log record (else the trace record).
    fn is_log(&self) -> bool {
        matches!(self, Sink::Log(_))
    }

    /// Writes a field.
    fn put(&mut self, key: &'static str, value: impl AttrValue) -> &mut Self {
        match self {
            Sink::Log(event) => {
                event.attr(key, value);
            }
            Sink::Trace(fields) => fields.push(KeyValue::new(key, value.into_value())),
        }
        self
    }

    /// Writes a field if it has a value.
    fn some(&mut self, key: &'static str, value: Option<impl AttrValue>) -> &mut Self {
        if let Some(value) = value {
            self.put(key, value);
        }
        self
    }

    /// A request's fields.
    fn request(&mut self, request: &ApiRequest<'_>) -> &mut Self {
        self.put("duration_ms", duration_ms(request.duration))
            .put("attempt", request.attempt)
            .put("endpoint", request.endpoint)
            .some("http.response.status_code", request.status.map(u32::from))
            .some("error.message", request.error)
            .auth(&request.auth)
    }

    /// The `auth.*` fields that are set.
    fn auth(&mut self, auth: &AuthDetails<'_>) -> &mut Self {
        self.put("auth.header_attached", auth.header_attached)
            .some("auth.header_name", auth.header_name)
            .put(
                "auth.retry_after_unauthorized",
                auth.retry_after_unauthorized,
            )
            .some("auth.recovery_mode", auth.recovery_mode)
            .some("auth.recovery_phase", auth.recovery_phase)
            .some("auth.request_id", auth.request_id)
            .some("auth.cf_ray", auth.cf_ray)
            .some("auth.error", auth.error)
            .some("auth.error_code", auth.error_code)
            .some("auth.agent_id", auth.agent_id)
            .some("auth.task_id", auth.task_id)
            .some("auth.connection_reused", auth.connection_reused)
    }
}

/// `output` cut to at most `max` bytes (at a character's start), with a notice of the rest.
fn cut(output: &str, max: usize) -> String {
    let mut end = max;
    while !output.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}{}",
        &output[..end],
        truncation_notice(output.len() - end)
    )
}

/// Calls `f` with the time now as Codex's `event.timestamp`: RFC 3339 in UTC, with
/// milliseconds. Formatted once per millisecond per thread, without allocating.
fn with_timestamp<R>(f: impl FnOnce(&str) -> R) -> R {
    use std::io::Write;
    thread_local! {
        static LAST: Cell<(u128, [u8; 24], usize)> = const { Cell::new((0, [0; 24], 0)) };
    }
    let now = SystemTime::now();
    let ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    LAST.with(|last| {
        let (at, mut text, mut len) = last.get();
        if at != ms || len == 0 {
            let mut cursor = std::io::Cursor::new(&mut text[..]);
            let _ = write!(cursor, "{}", humantime::format_rfc3339_millis(now));
            len = usize::try_from(cursor.position()).unwrap_or(0);
            last.set((ms, text, len));
        }
        f(std::str::from_utf8(&text[..len]).unwrap_or_default())
    })
}

/// A duration in whole milliseconds, as Codex's events carry it.
fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
