//! The metric catalog of Codex's telemetry documentation (`codex.features.state`,
//! `codex.session.started`, `codex.task.*`, and the metrics it lists "to be added"), each with
//! its fields and the global context every metric carries: `surface`, `version`, `auth_mode`,
//! `model`.

use std::time::Duration;

use super::tags::{MetricsError, sanitized, truth, with_sanitized};
use super::{MetricsClient, Telemetry};

/// Where a session runs (`surface`, from Codex's `SessionSource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Surface {
    /// `cli`: the terminal UI.
    Cli,
    /// `vscode`: the editor extension.
    Vscode,
    /// `exec`: `codex exec`.
    Exec,
    /// `mcp`: the MCP server.
    Mcp,
    /// `subagent_<name>`: a subagent.
    Subagent(String),
}

/// How the session authenticated (`auth_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// `swic`: signed in with ChatGPT.
    ChatGpt,
    /// `api`: an API key.
    ApiKey,
    /// `unknown`.
    Unknown,
}

/// The global context on every metric of the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalContext {
    /// `surface`.
    pub surface: Surface,
    /// `version`: the binary's version.
    pub version: String,
    /// `auth_mode`.
    pub auth_mode: AuthMode,
    /// `model`: the model in use.
    pub model: String,
}

/// A compaction's kind (`codex.task.compact`'s `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compaction {
    /// `remote`.
    Remote,
    /// `local`.
    Local,
}

/// Codex's metric catalog, each metric a typed call with its fields, every one with the global
/// context, through a [`MetricsClient`] (so Codex's rules for tags hold: a field's text is
/// sanitized as `sanitize_metric_tag_value` does, an error message included). An error message
/// as a `status` makes a point per distinct message: past 2,000 an instrument's measurements
/// fold into its overflow point, counted. Cheap to clone.
#[derive(Clone)]
pub struct MetricCatalog {
    client: MetricsClient,
}

impl MetricCatalog {
    /// The catalog of a session with `context`, recording into `telemetry`. (Its values are
    /// sanitized, so Codex's rules never refuse them.)
    pub fn new(telemetry: &Telemetry, context: &GlobalContext) -> Result<Self, MetricsError> {
        let surface = match &context.surface {
            Surface::Cli => "cli".to_string(),
            Surface::Vscode => "vscode".to_string(),
            Surface::Exec => "exec".to_string(),
            Surface::Mcp => "mcp".to_string(),
            // Sanitized whole, so the prefix counts towards the 256 bytes.
            Surface::Subagent(name) => sanitized(&format!("subagent_{name}")).into_owned(),
        };
        let auth_mode = match context.auth_mode {
            AuthMode::ChatGpt => "swic",
            AuthMode::ApiKey => "api",
            AuthMode::Unknown => "unknown",
        };
        let client = MetricsClient::new(telemetry)
            .with_tag("surface", &surface)?
            .with_tag("version", &sanitized(&context.version))?
            .with_tag("auth_mode", auth_mode)?
            .with_tag("model", &sanitized(&context.model))?;
        Ok(MetricCatalog { client })
    }

    /// Adds one to the counter `name` with `fields` (values sanitized). The names are the
    /// catalog's own and the values sanitized, so Codex's rules hold.
    fn count<const N: usize>(&self, name: &str, fields: [(&str, &str); N]) {
        with_sanitized(fields, |tags| {
            let _ = self.client.counter(name, 1, tags);
        });
    }

    /// `codex.features.state`: a feature whose value differs from its default (one call per
    /// such feature).
    pub fn features_state(&self, key: &str, value: &str) {
        self.count("codex.features.state", [("key", key), ("value", value)]);
    }

    /// `codex.session.started`: a new session, in a Git repository or not.
    pub fn session_started(&self, is_git: bool) {
        self.count("codex.session.started", [("is_git", truth(is_git))]);
    }

    /// `codex.task.compact`: a compaction.
    pub fn task_compact(&self, kind: Compaction) {
        let kind = match kind {
            Compaction::Remote => "remote",
            Compaction::Local => "local",
        };
        self.count("codex.task.compact", [("type", kind)]);
    }

    /// `codex.task.user_shell`: a user shell action (`!` in the TUI).
    pub fn task_user_shell(&self) {
        self.count("codex.task.user_shell", []);
    }

    /// `codex.task.review`: a review.
    pub fn task_review(&self) {
        self.count("codex.task.review", []);
    }

    /// `codex.task.undo`: an undo.
    pub fn task_undo(&self) {
        self.count("codex.task.undo", []);
    }

    /// `codex.approval.requested`: a tool approval request and its result (`approved`: `yes`
    /// or `no`).
    pub fn approval_requested(&self, tool: &str, approved: bool) {
        let fields = [("tool", tool), ("approved", yes_no(approved))];
        self.count("codex.approval.requested", fields);
    }

    /// `codex.conversation.turn.count`: a user/assistant turn.
    pub fn conversation_turn(&self) {
        self.count("codex.conversation.turn.count", []);
    }

    /// `codex.mcp.call`: an MCP tool call, `status` `ok` or its error.
    pub fn mcp_call(&self, result: Result<(), &str>) {
        self.count("codex.mcp.call", [("status", status(result))]);
    }

    /// `codex.model.call.duration_ms`: a model API request's duration, with its provider,
    /// status and attempt.
    pub fn model_call(&self, provider: &str, status: &str, attempt: u32, duration: Duration) {
        let mut digits = itoa::Buffer::new();
        let fields = [
            ("provider", provider),
            ("status", status),
            ("attempt", digits.format(attempt)),
        ];
        with_sanitized(fields, |tags| {
            let _ = self
                .client
                .record_duration("codex.model.call.duration_ms", duration, tags);
        });
    }

    /// `codex.tool.call` and `codex.tool.call.duration_ms`: a tool call, `status` `ok` or its
    /// error, and how long it ran, as the catalog documents them. [`super::SessionTelemetry`]'s
    /// `tool_result` records the same two metrics as Codex records them (tags `tool`,
    /// `success`): record a tool call through one of the two, not both, or it is counted twice.
    pub fn tool_call(&self, tool: &str, result: Result<(), &str>, duration: Duration) {
        let fields = [("tool", tool), ("status", status(result))];
        with_sanitized(fields, |tags| {
            let _ = self.client.counter("codex.tool.call", 1, tags);
            let _ = self
                .client
                .record_duration("codex.tool.call.duration_ms", duration, tags);
        });
    }

    /// `codex.user.feedback.submitted`: a `/feedback` submission.
    pub fn user_feedback_submitted(&self, category: &str, include_logs: bool, success: bool) {
        let fields = [
            ("category", category),
            ("include_logs", truth(include_logs)),
            ("success", truth(success)),
        ];
        self.count("codex.user.feedback.submitted", fields);
    }
}

fn yes_no(yes: bool) -> &'static str {
    if yes { "yes" } else { "no" }
}

fn status(result: Result<(), &str>) -> &str {
    match result {
        Ok(()) => "ok",
        Err(error) => error,
    }
}
