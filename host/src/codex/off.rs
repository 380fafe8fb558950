//! Codex's metrics client and session facade with the host compiled out: the same calls,
//! recording nothing. The client still checks names and tags by Codex's rules, as the host's
//! does whether or not anything is recorded, so a call fails in both builds or in neither.

use std::time::Duration;

use super::Telemetry;
use super::fields::{
    ApiRequest, AuthDetails, AuthRecovery, ConversationStart, PromptInputs, SessionMetadata,
    TokenUsage, ToolResult,
};
use super::tags::{
    MetricsError, SessionTags, check, check_increment, check_tags, validate_metric_name,
    validate_tag,
};
use crate::settings::OtelSettings;

/// Codex's metrics client, recording nothing: a call checks its name and tags (an error as the
/// host's) and returns.
#[derive(Clone)]
pub struct MetricsClient {
    _private: (),
}

impl MetricsClient {
    /// A client that records nothing.
    pub fn new(_telemetry: &Telemetry) -> MetricsClient {
        MetricsClient { _private: () }
    }

    /// The client, once `key` = `value` passes Codex's rules.
    pub fn with_tag(self, key: &str, value: &str) -> Result<MetricsClient, MetricsError> {
        validate_tag(key, value)?;
        Ok(self)
    }

    /// The client, once the session's tags pass Codex's rules.
    pub fn with_session_tags(self, tags: SessionTags) -> Result<MetricsClient, MetricsError> {
        tags.checked()?;
        Ok(self)
    }

    /// The client.
    pub fn without_metadata_tags(self) -> MetricsClient {
        self
    }

    /// Records nothing; checks the name, the tags, and that the counter does not decrease.
    pub fn counter(
        &self,
        name: &str,
        increment: i64,
        tags: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        check_increment(name, increment)?;
        check(name, tags)
    }

    /// Records nothing; checks the name and the tags.
    pub fn histogram(
        &self,
        name: &str,
        _value: i64,
        tags: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        check(name, tags)
    }

    /// Records nothing; checks the name and the tags.
    pub fn record_duration(
        &self,
        name: &str,
        _duration: Duration,
        tags: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        check(name, tags)
    }

    /// Records nothing; checks the name and the tags.
    pub fn record_duration_seconds(
        &self,
        name: &str,
        _duration: Duration,
        tags: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        check(name, tags)
    }

    /// Records nothing; checks the name and the tags.
    pub fn gauge(
        &self,
        name: &str,
        _value: i64,
        tags: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        check(name, tags)
    }

    /// Records nothing; checks the name. The callback is dropped, never called.
    pub fn register_observable_gauge(
        &self,
        name: &str,
        _description: &str,
        _callback: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> Result<(), MetricsError> {
        validate_metric_name(name)
    }

    /// A timer that records nothing, once the name and the tags pass.
    pub fn start_timer(&self, name: &str, tags: &[(&str, &str)]) -> Result<Timer, MetricsError> {
        check(name, tags)?;
        Ok(Timer { _private: () })
    }
}

/// A timer that records nothing.
pub struct Timer {
    _private: (),
}

impl Timer {
    /// Records nothing; checks the tags added (its own passed when it started).
    pub fn record(self, tags: &[(&str, &str)]) -> Result<(), MetricsError> {
        check_tags(tags)
    }
}

/// Codex's session facade, recording nothing: every call returns at once.
#[derive(Clone)]
pub struct SessionTelemetry {
    metrics: MetricsClient,
}

impl SessionTelemetry {
    /// A facade that records nothing.
    pub fn new(
        _telemetry: &Telemetry,
        _metadata: SessionMetadata,
        metrics: MetricsClient,
    ) -> SessionTelemetry {
        SessionTelemetry { metrics }
    }

    /// The facade.
    pub fn with_redaction(
        self,
        _log_user_prompt: bool,
        _tool_result_max_bytes: usize,
    ) -> SessionTelemetry {
        self
    }

    /// The facade.
    pub fn with_otel(self, _settings: &OtelSettings) -> SessionTelemetry {
        self
    }

    /// The metrics client it was given.
    pub fn metrics(&self) -> &MetricsClient {
        &self.metrics
    }

    /// Does nothing.
    pub fn conversation_starts(&self, _start: &ConversationStart) {}

    /// Does nothing.
    pub fn user_prompt(&self, _prompt: &str, _inputs: PromptInputs) {}

    /// Does nothing.
    pub fn api_request(&self, _request: &ApiRequest<'_>) {}

    /// Does nothing.
    pub fn websocket_connect(&self, _request: &ApiRequest<'_>) {}

    /// Does nothing.
    pub fn websocket_request(
        &self,
        _duration: Duration,
        _error: Option<&str>,
        _auth: &AuthDetails<'_>,
    ) {
    }

    /// Does nothing.
    pub fn websocket_event(&self, _kind: &str, _duration: Duration, _error: Option<&str>) {}

    /// Does nothing.
    pub fn auth_recovery(&self, _recovery: &AuthRecovery<'_>) {}

    /// Does nothing.
    pub fn sse_event(
        &self,
        _kind: &str,
        _duration: Duration,
        _error: Option<&str>,
        _usage: Option<TokenUsage>,
    ) {
    }

    /// Does nothing.
    pub fn tool_decision(&self, _tool_name: &str, _call_id: &str, _decision: &str, _source: &str) {}

    /// Does nothing.
    pub fn tool_result(&self, _result: &ToolResult<'_>) {}

    /// Does nothing.
    pub fn sandbox_outcome(
        &self,
        _tool_name: &str,
        _call_id: &str,
        _outcome: &str,
        _initial: Duration,
        _escalated: Option<Duration>,
    ) {
    }

    /// Does nothing.
    pub fn startup_phase(&self, _phase: &str, _status: &str, _duration: Duration) {}

    /// Does nothing.
    pub fn turn_ttft(&self, _duration: Duration) {}

    /// Does nothing.
    pub fn turn_cost(&self, _turn_id: &str, _estimated_usd: f64, _interrupted: bool) {}
}
