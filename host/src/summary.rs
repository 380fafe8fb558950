//! A session's summary: what `wasmtel sessions summary` prints from a session's log files, and
//! what [`crate::Telemetry::session_summary`] keeps live from the records as they are exported.
//! Plain data, in both builds.

/// A session's summary: its records counted by name, Codex's token usage per model, its API
/// requests and tool calls with their latencies, its turns, and what wasmtel dropped.
///
/// Read from Codex's event catalog: tokens from `codex.sse_event` with `event.kind` =
/// `response.completed` (`input_token_count`, `cached_token_count`, `output_token_count`,
/// `reasoning_token_count`; total = input + output, as Codex counts it: cached input is part of
/// the input, reasoning part of the output), per its `model`; requests from `codex.api_request`
/// (`http.response.status_code`, `error.message`, `duration_ms`); tool calls from
/// `codex.tool_result` (`tool_name`, `success`, `duration_ms`); a turn per `codex.user_prompt`.
///
/// Memory is bounded whatever the session's size: at most [`MAX_NAMES`] names are kept per
/// list, the rest are counted under [`OTHER`], and latencies are kept in histograms of whole
/// milliseconds with 1 % precision (exact below 256 ms).
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "runtime", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SessionSummary {
    /// The session's id.
    pub session_id: String,
    /// The earliest time of a record (an event's time, a span's start, a metric point's time),
    /// in nanoseconds since the Unix epoch; none before the first record.
    pub start_unix_nano: Option<u64>,
    /// The latest (an event's time, a span's end, a metric point's time).
    pub end_unix_nano: Option<u64>,
    /// Events read.
    pub event_records: u64,
    /// Spans read.
    pub span_records: u64,
    /// Metric records read.
    pub metric_records: u64,
    /// Events per name, the most frequent first.
    pub events: Vec<Count>,
    /// Spans per name, the most frequent first.
    pub spans: Vec<Count>,
    /// The values of the events' `model` attribute, in the order first seen.
    pub models: Vec<String>,
    /// Token usage per model, in the order first seen.
    pub tokens: Vec<Tokens>,
    /// API requests.
    pub requests: Requests,
    /// Tool calls per tool, the most called first.
    pub tools: Vec<ToolCalls>,
    /// Turns: `codex.user_prompt` events.
    pub turns: u64,
    /// Records wasmtel dropped, per exporter and reason: live, from its counters; from logs,
    /// the last of its `wasmtel.exporter.records` metric's dropped outcomes.
    pub drops: Vec<Dropped>,
}

/// At most this many names per list of a [`SessionSummary`]; the others count as [`OTHER`].
pub const MAX_NAMES: usize = 1000;

/// The name under which what is past [`MAX_NAMES`] is counted.
pub const OTHER: &str = "(other)";

/// A name and how many times it was seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "runtime", derive(serde::Serialize))]
pub struct Count {
    /// The name.
    pub name: String,
    /// How many.
    pub count: u64,
}

/// Token usage of one model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "runtime", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Tokens {
    /// The model (the `model` attribute).
    pub model: String,
    /// Completed responses counted.
    pub responses: u64,
    /// Input tokens, cached ones included.
    pub input: u64,
    /// Cached input tokens.
    pub cached: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// Input plus output.
    pub total: u64,
}

/// The API requests of a session.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "runtime", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Requests {
    /// Requests.
    pub count: u64,
    /// Those that failed: a status of 400 or more, or an `error.message`.
    pub errors: u64,
    /// Requests per HTTP status code (0: none given), lowest code first.
    pub statuses: Vec<(u16, u64)>,
    /// Their `duration_ms`.
    pub latency_ms: Latency,
}

/// The calls of one tool.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "runtime", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ToolCalls {
    /// The tool (`tool_name`).
    pub tool: String,
    /// Calls.
    pub calls: u64,
    /// Those whose `success` is true.
    pub succeeded: u64,
    /// Their `duration_ms`.
    pub duration_ms: Latency,
}

impl ToolCalls {
    /// The share of calls that succeeded, 0.0 to 1.0 (1.0 for none).
    pub fn success_rate(&self) -> f64 {
        match self.calls {
            0 => 1.0,
            calls => self.succeeded as f64 / calls as f64,
        }
    }
}

/// Durations in milliseconds: how many, and their median, 90th percentile and maximum
/// (percentiles in whole milliseconds within 1 %, exact below 256; the maximum exact).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "runtime", derive(serde::Serialize))]
pub struct Latency {
    /// Durations seen.
    pub count: u64,
    /// Their median.
    pub p50: f64,
    /// Their 90th percentile.
    pub p90: f64,
    /// The longest, exactly.
    pub max: f64,
}

/// Records an exporter dropped for a reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "runtime", derive(serde::Serialize))]
pub struct Dropped {
    /// The exporter.
    pub exporter: String,
    /// Why: `queue_full`, `failed`, `too_large`, `shutdown`, `invalid`...
    pub reason: String,
    /// How many records.
    pub records: u64,
}

impl SessionSummary {
    /// An empty summary of the session `session_id`.
    pub fn new(session_id: impl Into<String>) -> SessionSummary {
        SessionSummary {
            session_id: session_id.into(),
            ..SessionSummary::default()
        }
    }

    /// The session's duration so far, from its first record's time to its last.
    pub fn duration(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_nanos(
            self.end_unix_nano?.saturating_sub(self.start_unix_nano?),
        ))
    }

    /// Records of every kind.
    pub fn records(&self) -> u64 {
        self.event_records + self.span_records + self.metric_records
    }

    /// Token usage of every model together.
    pub fn total_tokens(&self) -> Tokens {
        let mut all = Tokens::default();
        for t in &self.tokens {
            all.responses += t.responses;
            all.input += t.input;
            all.cached += t.cached;
            all.output += t.output;
            all.reasoning += t.reasoning;
            all.total += t.total;
        }
        all
    }
}
