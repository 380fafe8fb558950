//! Codex's telemetry surface on wasmtel: [`MetricsClient`], the metrics client Codex's code calls
//! (`counter`, `histogram`, `gauge`, `record_duration`, timers), with Codex's rules for names and
//! tags and its session tags; and [`SessionTelemetry`], the session facade that records Codex's
//! event catalog with the session's metadata, redacted as Codex redacts it.
//!
//! ```
//! use std::time::Duration;
//! use wasmtel::codex::{MetricsClient, SessionTags};
//! use wasmtel::{Config, Telemetry};
//!
//! let telemetry = Telemetry::start(Config::empty())?;
//! let metrics = MetricsClient::new(&telemetry).with_session_tags(SessionTags {
//!     auth_mode: Some("Chatgpt".into()),
//!     session_source: "cli".into(),
//!     originator: "codex_cli_rs".into(),
//!     service_name: None,
//!     model: "gpt-5.1-codex".into(),
//!     app_version: "0.144.0".into(),
//! })?;
//! metrics.counter("codex.tool.call", 1, &[("tool", "shell"), ("success", "true")])?;
//! metrics.record_duration("codex.tool.call.duration_ms", Duration::from_millis(31), &[])?;
//! assert!(metrics.counter("codex.tool.call", -1, &[]).is_err(), "a counter only grows");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod catalog;
mod fields;
#[cfg(feature = "runtime")]
mod metrics;
#[cfg(not(feature = "runtime"))]
mod off;
#[cfg(feature = "runtime")]
mod session;
mod tags;

#[cfg(not(feature = "runtime"))]
use crate::off::Telemetry;
#[cfg(feature = "runtime")]
use crate::telemetry::Telemetry;

pub use catalog::{AuthMode, Compaction, GlobalContext, MetricCatalog, Surface};
pub use fields::{
    ApiRequest, AuthDetails, AuthRecovery, ConversationStart, PromptInputs, SessionMetadata,
    TokenUsage, ToolResult,
};
#[cfg(feature = "runtime")]
pub use metrics::{MetricsClient, Timer};
#[cfg(not(feature = "runtime"))]
pub use off::{MetricsClient, SessionTelemetry, Timer};
#[cfg(feature = "runtime")]
pub use session::SessionTelemetry;
pub use tags::{
    KNOWN_ORIGINATORS, MILLISECOND_BOUNDS, MetricsError, SECOND_BOUNDS, SessionTags,
    bounded_originator_tag_value, sanitize_metric_tag_value, validate_metric_name, validate_tag,
};
