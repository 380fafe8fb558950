//! What the session facade's calls are given: the session's metadata, and each event's fields.

use std::time::Duration;

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

/// The words a prompt is made of (`codex.user_prompt`'s trace-safe counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PromptInputs {
    /// `text_input_count`.
    pub text: u32,
    /// `image_input_count`.
    pub images: u32,
    /// `local_image_input_count`.
    pub local_images: u32,
}

/// How a request was authenticated: the `auth.*` fields of `codex.api_request`,
/// `codex.websocket_connect` and `codex.websocket_request`. It names headers, never their
/// values. `auth.header_attached` and `auth.retry_after_unauthorized` are always written; the
/// optional fields only when set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthDetails<'a> {
    /// `auth.header_attached`: whether an authorization header was sent.
    pub header_attached: bool,
    /// `auth.header_name`: which (`Authorization`, `api-key`...).
    pub header_name: Option<&'a str>,
    /// `auth.retry_after_unauthorized`: whether this is the retry after a 401.
    pub retry_after_unauthorized: bool,
    /// `auth.recovery_mode`.
    pub recovery_mode: Option<&'a str>,
    /// `auth.recovery_phase`.
    pub recovery_phase: Option<&'a str>,
    /// `auth.request_id`: the server's request id.
    pub request_id: Option<&'a str>,
    /// `auth.cf_ray`: the edge's ray id.
    pub cf_ray: Option<&'a str>,
    /// `auth.error`.
    pub error: Option<&'a str>,
    /// `auth.error_code`.
    pub error_code: Option<&'a str>,
    /// `auth.agent_id`.
    pub agent_id: Option<&'a str>,
    /// `auth.task_id`.
    pub task_id: Option<&'a str>,
    /// `auth.connection_reused` (websockets).
    pub connection_reused: Option<bool>,
}

/// `codex.api_request` and `codex.websocket_connect`: one attempt at a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApiRequest<'a> {
    /// `attempt`: 1 for the first.
    pub attempt: u64,
    /// `duration_ms`.
    pub duration: Duration,
    /// `http.response.status_code`, if a response came.
    pub status: Option<u16>,
    /// `error.message`, if it failed.
    pub error: Option<&'a str>,
    /// `endpoint`.
    pub endpoint: &'a str,
    /// `auth.*`.
    pub auth: AuthDetails<'a>,
}

/// `codex.auth_recovery`: a step of recovering from an authentication failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthRecovery<'a> {
    /// `auth.mode`.
    pub mode: &'a str,
    /// `auth.step`.
    pub step: &'a str,
    /// `auth.outcome`.
    pub outcome: &'a str,
    /// `auth.request_id`.
    pub request_id: Option<&'a str>,
    /// `auth.cf_ray`.
    pub cf_ray: Option<&'a str>,
    /// `auth.error`.
    pub error: Option<&'a str>,
    /// `auth.error_code`.
    pub error_code: Option<&'a str>,
    /// `auth.recovery_reason`.
    pub recovery_reason: Option<&'a str>,
    /// `auth.state_changed`.
    pub state_changed: bool,
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
