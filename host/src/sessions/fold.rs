//! Folds records into a [`SessionSummary`], one at a time and in bounded memory: the same fold
//! reads a session's log files and, live, the batches the pipeline exports.

use std::borrow::Cow;
use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use indexmap::{IndexMap, IndexSet};
use rustc_hash::FxHashMap;

use crate::summary::{Count, Dropped, Latency, MAX_NAMES, OTHER, Requests, SessionSummary};
use crate::summary::{Tokens, ToolCalls};

/// What a model is called when an event names none.
const NO_MODEL: &str = "(unknown)";

/// A scalar attribute value, as the fold reads it.
#[derive(Debug)]
pub(crate) enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// An array, a map, bytes or nothing: none of the attributes read is one.
    Other,
}

impl Scalar<'_> {
    fn number(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(x) => Some(*x),
            Scalar::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    fn count(&self) -> Option<u64> {
        self.number().filter(|x| *x >= 0.0).map(|x| x as u64)
    }
}

/// The attributes of an event that the summary reads (Codex's catalog), taken one by one.
#[derive(Debug, Default)]
pub(crate) struct Known<'a> {
    model: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    tool: Option<Cow<'a, str>>,
    duration_ms: Option<f64>,
    input: Option<u64>,
    cached: Option<u64>,
    output: Option<u64>,
    reasoning: Option<u64>,
    status: Option<u16>,
    error: bool,
    success: Option<bool>,
}

impl<'a> Known<'a> {
    /// Whether the attribute `key` is one of those read.
    pub fn wants(key: &str) -> bool {
        matches!(
            key,
            "model"
                | "event.kind"
                | "tool_name"
                | "duration_ms"
                | "input_token_count"
                | "cached_token_count"
                | "output_token_count"
                | "reasoning_token_count"
                | "http.response.status_code"
                | "error.message"
                | "success"
        )
    }

    /// Takes the attribute `key` if it is one of those read (the first of a name counts).
    pub fn take(&mut self, key: &str, value: Scalar<'a>) {
        let str = |v: Scalar<'a>| match v {
            Scalar::Str(s) => Some(s),
            _ => None,
        };
        match key {
            "model" if self.model.is_none() => self.model = str(value),
            "event.kind" if self.kind.is_none() => self.kind = str(value),
            "tool_name" if self.tool.is_none() => self.tool = str(value),
            "duration_ms" => self.duration_ms = self.duration_ms.or(value.number()),
            "input_token_count" => self.input = self.input.or(value.count()),
            "cached_token_count" => self.cached = self.cached.or(value.count()),
            "output_token_count" => self.output = self.output.or(value.count()),
            "reasoning_token_count" => self.reasoning = self.reasoning.or(value.count()),
            "http.response.status_code" => {
                self.status = self
                    .status
                    .or(value.count().and_then(|c| u16::try_from(c).ok()))
            }
            "error.message" => self.error |= !matches!(&value, Scalar::Str(s) if s.is_empty()),
            "success" => {
                self.success = self.success.or(match value {
                    Scalar::Bool(b) => Some(b),
                    Scalar::Str(s) => s.parse().ok(),
                    _ => None,
                })
            }
            _ => {}
        }
    }
}

/// Counts per name, at most [`MAX_NAMES`] of them; the others under [`OTHER`].
#[derive(Default)]
struct Names(FxHashMap<String, u64>);

impl Names {
    fn add(&mut self, name: &str) {
        if let Some(n) = self.0.get_mut(name) {
            *n += 1;
        } else if self.0.len() < MAX_NAMES {
            self.0.insert(name.to_string(), 1);
        } else {
            *self.0.entry(OTHER.to_string()).or_default() += 1;
        }
    }

    /// The most frequent first; of equal counts, by name.
    fn counts(&self) -> Vec<Count> {
        let mut counts: Vec<Count> = self
            .0
            .iter()
            .map(|(name, &count)| Count {
                name: name.clone(),
                count,
            })
            .collect();
        counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        counts
    }
}

/// Durations in milliseconds: a histogram of two significant digits (exact below 256), the
/// exact maximum.
struct Durations {
    histogram: Histogram<u32>,
    max: f64,
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            histogram: Histogram::new(2).expect("2 significant digits are allowed"),
            max: 0.0,
        }
    }
}

impl Durations {
    fn add(&mut self, ms: f64) {
        let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        // The histogram grows to hold the value; past its largest (2^63), it is kept there.
        let value = ms.round() as u64;
        if self.histogram.record(value).is_err() {
            self.histogram.saturating_record(value);
        }
        self.max = self.max.max(ms);
    }

    fn latency(&self) -> Latency {
        let count = self.histogram.len();
        // The histogram gives the highest value its bucket holds; never above the maximum.
        let at = |q| (self.histogram.value_at_quantile(q) as f64).min(self.max);
        Latency {
            count,
            p50: if count == 0 { 0.0 } else { at(0.5) },
            p90: if count == 0 { 0.0 } else { at(0.9) },
            max: self.max,
        }
    }
}

/// One tool's calls.
#[derive(Default)]
struct Tool {
    calls: u64,
    succeeded: u64,
    durations: Durations,
}

/// A series of a `wasmtel.exporter.records` dropped outcome (an exporter, a reason, and, for a
/// cumulative sum, the start of its count: a process that starts again counts afresh): its
/// latest point, or a delta sum's total.
#[derive(Default)]
struct DropSeen {
    time: u64,
    records: u64,
}

/// A drop series: exporter, reason, start (0 for a delta sum).
type DropSeries = (String, String, u64);

/// A summary being folded.
#[derive(Default)]
pub(crate) struct Fold {
    start: Option<u64>,
    end: Option<u64>,
    event_records: u64,
    span_records: u64,
    metric_records: u64,
    events: Names,
    spans: Names,
    models: IndexSet<String>,
    tokens: IndexMap<String, Tokens>,
    requests: u64,
    request_errors: u64,
    statuses: BTreeMap<u16, u64>,
    request_durations: Durations,
    tools: IndexMap<String, Tool>,
    turns: u64,
    drops: BTreeMap<DropSeries, DropSeen>,
}

/// The entry of `key` in `map`, or, past [`MAX_NAMES`] entries, that of [`OTHER`].
fn bounded<'m, V: Default>(map: &'m mut IndexMap<String, V>, key: &str) -> &'m mut V {
    let key = if map.contains_key(key) || map.len() < MAX_NAMES {
        key
    } else {
        OTHER
    };
    match map.get_index_of(key) {
        Some(i) => &mut map[i],
        None => map.entry(key.to_string()).or_default(),
    }
}

impl Fold {
    /// Widens the session's time span to `time`.
    pub fn saw_time(&mut self, time: u64) {
        if time == 0 {
            return;
        }
        self.start = Some(self.start.map_or(time, |s| s.min(time)));
        self.end = Some(self.end.map_or(time, |e| e.max(time)));
    }

    /// An event named `name` at `time`, with the attributes read in `known`.
    pub fn event(&mut self, name: &str, time: u64, known: Known<'_>) {
        self.event_records += 1;
        self.saw_time(time);
        self.events.add(name);
        if let Some(model) = &known.model
            && !self.models.contains(model.as_ref())
            && self.models.len() < MAX_NAMES
        {
            self.models.insert(model.to_string());
        }
        match name {
            "codex.sse_event" if known.kind.as_deref() == Some("response.completed") => {
                let model = known.model.as_deref().unwrap_or(NO_MODEL);
                let tokens = bounded(&mut self.tokens, model);
                let add = |sum: &mut u64, n: Option<u64>| *sum = sum.saturating_add(n.unwrap_or(0));
                tokens.responses += 1;
                add(&mut tokens.input, known.input);
                add(&mut tokens.cached, known.cached);
                add(&mut tokens.output, known.output);
                add(&mut tokens.reasoning, known.reasoning);
                add(
                    &mut tokens.total,
                    Some(
                        known
                            .input
                            .unwrap_or(0)
                            .saturating_add(known.output.unwrap_or(0)),
                    ),
                );
            }
            "codex.api_request" => {
                self.requests += 1;
                let status = known.status.unwrap_or(0);
                *self.statuses.entry(status).or_default() += 1;
                if known.error || status >= 400 {
                    self.request_errors += 1;
                }
                if let Some(ms) = known.duration_ms {
                    self.request_durations.add(ms);
                }
            }
            "codex.tool_result" => {
                let tool = bounded(&mut self.tools, known.tool.as_deref().unwrap_or(""));
                tool.calls += 1;
                tool.succeeded += u64::from(known.success == Some(true));
                if let Some(ms) = known.duration_ms {
                    tool.durations.add(ms);
                }
            }
            "codex.user_prompt" => self.turns += 1,
            _ => {}
        }
    }

    /// A span named `name`, from `start` to `end`.
    pub fn span(&mut self, name: &str, start: u64, end: u64) {
        self.span_records += 1;
        self.saw_time(start);
        self.saw_time(end);
        self.spans.add(name);
    }

    /// A metric record (its points' times go to [`Fold::saw_time`]).
    pub fn metric(&mut self) {
        self.metric_records += 1;
    }

    /// A point of `wasmtel.exporter.records` with `outcome` `dropped_*`: `records` dropped by
    /// `exporter` from `start` until `time` (since the last point, if `delta`). At most
    /// [`MAX_NAMES`] series are kept; the others count under [`OTHER`].
    pub fn dropped(&mut self, series: DropSeries, time: u64, records: u64, delta: bool) {
        let series = if delta {
            (series.0, series.1, 0)
        } else {
            series
        };
        let series = if self.drops.contains_key(&series) || self.drops.len() < MAX_NAMES {
            series
        } else {
            (OTHER.into(), OTHER.into(), 0)
        };
        let seen = self.drops.entry(series).or_default();
        if delta {
            seen.records = seen.records.saturating_add(records);
        } else if time >= seen.time {
            *seen = DropSeen { time, records };
        }
    }

    /// The summary so far, of the session `session_id`.
    pub fn summary(&self, session_id: &str) -> SessionSummary {
        let tools = {
            let mut tools: Vec<ToolCalls> = self
                .tools
                .iter()
                .map(|(name, t)| ToolCalls {
                    tool: name.clone(),
                    calls: t.calls,
                    succeeded: t.succeeded,
                    duration_ms: t.durations.latency(),
                })
                .collect();
            tools.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.tool.cmp(&b.tool)));
            tools
        };
        SessionSummary {
            session_id: session_id.to_string(),
            start_unix_nano: self.start,
            end_unix_nano: self.end,
            event_records: self.event_records,
            span_records: self.span_records,
            metric_records: self.metric_records,
            events: self.events.counts(),
            spans: self.spans.counts(),
            models: self.models.iter().cloned().collect(),
            tokens: self
                .tokens
                .iter()
                .map(|(model, t)| Tokens {
                    model: model.clone(),
                    ..t.clone()
                })
                .collect(),
            requests: Requests {
                count: self.requests,
                errors: self.request_errors,
                statuses: self.statuses.iter().map(|(s, n)| (*s, *n)).collect(),
                latency_ms: self.request_durations.latency(),
            },
            tools,
            turns: self.turns,
            drops: {
                // The series of one exporter and reason, added up.
                let mut drops: Vec<Dropped> = Vec::new();
                for ((exporter, reason, _), seen) in &self.drops {
                    match drops.last_mut() {
                        Some(d) if d.exporter == *exporter && d.reason == *reason => {
                            d.records = d.records.saturating_add(seen.records)
                        }
                        _ => drops.push(Dropped {
                            exporter: exporter.clone(),
                            reason: reason.clone(),
                            records: seen.records,
                        }),
                    }
                }
                drops.retain(|d| d.records > 0);
                drops
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(start: u64) -> DropSeries {
        ("otlp".into(), "failed".into(), start)
    }

    #[test]
    fn a_cumulative_count_that_starts_again_is_added_to_the_one_before() {
        let mut fold = Fold::default();
        fold.dropped(series(1), 10, 3, false);
        fold.dropped(series(1), 20, 5, false);
        // The process started again: its count starts afresh.
        fold.dropped(series(30), 40, 1, false);
        // An older point of a series does not replace its latest.
        fold.dropped(series(1), 15, 4, false);
        let drops = fold.summary("s").drops;
        assert_eq!(drops.len(), 1);
        assert_eq!(drops[0].records, 6);
    }

    #[test]
    fn delta_counts_add_up_and_totals_saturate() {
        let mut fold = Fold::default();
        fold.dropped(series(1), 10, 2, true);
        fold.dropped(series(5), 20, 3, true);
        assert_eq!(fold.summary("s").drops[0].records, 5);
        let mut known = Known::default();
        known.take("event.kind", Scalar::Str("response.completed".into()));
        known.take("input_token_count", Scalar::Int(i64::MAX));
        known.take("output_token_count", Scalar::Int(i64::MAX));
        fold.event("codex.sse_event", 1, known);
        let mut again = Known::default();
        again.take("event.kind", Scalar::Str("response.completed".into()));
        again.take("input_token_count", Scalar::Float(1e19));
        fold.event("codex.sse_event", 2, again);
        let tokens = &fold.summary("s").tokens[0];
        assert_eq!(tokens.total, u64::MAX);
        assert_eq!(tokens.input, u64::MAX);
    }
}
