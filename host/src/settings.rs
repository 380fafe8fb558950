//! What a config says beyond its exporters, for the application to apply.

/// Codex's `[otel]` settings beyond its exporters, for the application to apply.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OtelSettings {
    /// `environment`: the resource's `env` (default `dev`).
    pub environment: String,
    /// `log_user_prompt`: whether prompt text is recorded (else `[REDACTED]`).
    pub log_user_prompt: bool,
    /// `span_attributes`: added to every span, in order (entries with an empty key dropped).
    pub span_attributes: Vec<(String, String)>,
    /// `tracestate`: each member with its fields, as W3C `member=field:value;...` (invalid
    /// entries dropped).
    pub tracestate: Vec<(String, String)>,
    /// `tool_result.max_bytes`: where tool output is cut in events (default 2048).
    pub tool_result_max_bytes: usize,
    /// `[analytics] enabled`: whether metrics are exported.
    pub analytics_enabled: bool,
}
