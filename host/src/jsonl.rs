//! Reads the record format (JSON lines; schema in the README), the inverse of what the
//! file-jsonl plugin writes. Strict: an unknown field, a wrong type or a bad value is an error
//! naming the line.

use std::fmt;
use std::io::BufRead;
use std::time::UNIX_EPOCH;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use wasmtel_sdk::model::{
    Event, HistogramPoint, KeyValue, Metric, MetricData, Number, NumberPoint, Record, Scope, Span,
    SpanEvent, SpanKind, SpanLink, StatusCode, Temporality, Value,
};

use crate::error::Error;

/// The records of a record-format stream, one per non-blank line, each with its line number.
pub struct Reader<R> {
    input: R,
    name: String,
    line_number: u64,
    line: String,
}

impl<R: BufRead> Reader<R> {
    /// Reads `input`; `name` (a path, or `-`) names it in errors.
    pub fn new(input: R, name: &str) -> Self {
        Reader {
            input,
            name: name.to_string(),
            line_number: 0,
            line: String::new(),
        }
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            match self.input.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) => self.line_number += 1,
                Err(e) => {
                    return Some(Err(Error::Io {
                        what: format!("{}:{}", self.name, self.line_number + 1),
                        source: e,
                    }));
                }
            }
            if self.line.trim().is_empty() {
                continue;
            }
            return Some(
                parse_line(self.line.trim_end_matches(['\n', '\r'])).map_err(|message| {
                    Error::Record {
                        file: self.name.clone(),
                        line: self.line_number,
                        message,
                    }
                }),
            );
        }
    }
}

/// Parses one line of the record format.
pub fn parse_line(line: &str) -> Result<Record, String> {
    let parsed: Line = serde_json::from_str(line).map_err(|e| {
        let text = e.to_string();
        let text = text.replace(" at line 1 column", " at column");
        match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("invalid JSON: {text}")
            }
            _ => format!("invalid record: {text}"),
        }
    })?;
    parsed.into_record()
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Resource(ResourceLine),
    Event(EventLine),
    Span(SpanLine),
    Metric(MetricLine),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceLine {
    #[serde(default)]
    attributes: Attrs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine {
    time: Time,
    #[serde(default)]
    name: String,
    #[serde(default)]
    severity_number: u8,
    #[serde(default)]
    severity_text: String,
    #[serde(default)]
    body: Val,
    #[serde(default)]
    attributes: Attrs,
    trace_id: Option<TraceHex>,
    span_id: Option<SpanHex>,
    scope: Option<ScopeLine>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeLine {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpanLine {
    trace_id: TraceHex,
    span_id: SpanHex,
    parent_span_id: Option<SpanHex>,
    name: String,
    kind: SpanKindLine,
    start: Time,
    end: Time,
    #[serde(default)]
    attributes: Attrs,
    #[serde(default)]
    events: Vec<SpanEventLine>,
    #[serde(default)]
    links: Vec<SpanLinkLine>,
    status: Option<StatusLine>,
    scope: Option<ScopeLine>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum SpanKindLine {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpanEventLine {
    time: Time,
    name: String,
    #[serde(default)]
    attributes: Attrs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpanLinkLine {
    trace_id: TraceHex,
    span_id: SpanHex,
    #[serde(default)]
    attributes: Attrs,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum StatusCodeLine {
    Unset,
    Ok,
    Error,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusLine {
    code: StatusCodeLine,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum MetricKind {
    Sum,
    Gauge,
    Histogram,
}

/// A temporality as the record format and the config write it: `delta` or `cumulative`.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TemporalityText {
    Delta,
    Cumulative,
}

impl From<TemporalityText> for Temporality {
    fn from(t: TemporalityText) -> Temporality {
        match t {
            TemporalityText::Delta => Temporality::Delta,
            TemporalityText::Cumulative => Temporality::Cumulative,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricLine {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    unit: String,
    scope: Option<ScopeLine>,
    kind: MetricKind,
    temporality: Option<TemporalityText>,
    monotonic: Option<bool>,
    points: Vec<PointLine>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointLine {
    #[serde(default)]
    attributes: Attrs,
    start: Time,
    time: Time,
    value: Option<Num>,
    count: Option<u64>,
    sum: Option<Num>,
    min: Option<Num>,
    max: Option<Num>,
    bounds: Option<Vec<f64>>,
    counts: Option<Vec<u64>>,
}

fn scope(s: Option<ScopeLine>) -> Scope {
    s.map(|s| Scope {
        name: s.name,
        version: s.version,
    })
    .unwrap_or_default()
}

impl Line {
    fn into_record(self) -> Result<Record, String> {
        Ok(match self {
            Line::Resource(r) => Record::Resource(r.attributes.0),
            Line::Event(e) => Record::Event(Event {
                time_unix_nano: e.time.0,
                name: e.name,
                severity_number: e.severity_number,
                severity_text: e.severity_text,
                body: e.body.0,
                attributes: e.attributes.0,
                trace_id: e.trace_id.map(|t| t.0),
                span_id: e.span_id.map(|s| s.0),
                scope: scope(e.scope),
            }),
            Line::Span(s) => Record::Span(Span {
                trace_id: s.trace_id.0,
                span_id: s.span_id.0,
                parent_span_id: s.parent_span_id.map(|p| p.0),
                name: s.name,
                kind: match s.kind {
                    SpanKindLine::Internal => SpanKind::Internal,
                    SpanKindLine::Server => SpanKind::Server,
                    SpanKindLine::Client => SpanKind::Client,
                    SpanKindLine::Producer => SpanKind::Producer,
                    SpanKindLine::Consumer => SpanKind::Consumer,
                },
                start_time_unix_nano: s.start.0,
                end_time_unix_nano: s.end.0,
                attributes: s.attributes.0,
                events: s
                    .events
                    .into_iter()
                    .map(|e| SpanEvent {
                        time_unix_nano: e.time.0,
                        name: e.name,
                        attributes: e.attributes.0,
                    })
                    .collect(),
                links: s
                    .links
                    .into_iter()
                    .map(|l| SpanLink {
                        trace_id: l.trace_id.0,
                        span_id: l.span_id.0,
                        attributes: l.attributes.0,
                    })
                    .collect(),
                status: match s.status.as_ref().map(|st| &st.code) {
                    None | Some(StatusCodeLine::Unset) => StatusCode::Unset,
                    Some(StatusCodeLine::Ok) => StatusCode::Ok,
                    Some(StatusCodeLine::Error) => StatusCode::Error,
                },
                status_message: s.status.map(|st| st.message).unwrap_or_default(),
                scope: scope(s.scope),
            }),
            Line::Metric(m) => Record::Metric(m.into_metric()?),
        })
    }
}

impl MetricLine {
    fn into_metric(self) -> Result<Metric, String> {
        let name = self.name;
        let err = |what: &str| format!("metric `{name}`: {what}");
        let temporality = self.temporality.map(Temporality::from);
        let histogram = self.kind == MetricKind::Histogram;
        for p in &self.points {
            let has_histogram_fields = p.count.is_some()
                || p.sum.is_some()
                || p.min.is_some()
                || p.max.is_some()
                || p.bounds.is_some()
                || p.counts.is_some();
            if histogram && p.value.is_some() {
                return Err(err("a histogram point has no `value`"));
            }
            if !histogram && has_histogram_fields {
                return Err(err(
                    "only histogram points have count, sum, min, max, bounds and counts",
                ));
            }
        }
        let numbers = |points: Vec<PointLine>| -> Result<Vec<NumberPoint>, String> {
            points
                .into_iter()
                .map(|p| {
                    Ok(NumberPoint {
                        attributes: p.attributes.0,
                        start_time_unix_nano: p.start.0,
                        time_unix_nano: p.time.0,
                        value: p.value.ok_or_else(|| err("a point needs a `value`"))?.0,
                    })
                })
                .collect()
        };
        let data = match self.kind {
            MetricKind::Sum => MetricData::Sum {
                temporality: temporality.ok_or_else(|| err("a sum needs `temporality`"))?,
                monotonic: self
                    .monotonic
                    .ok_or_else(|| err("a sum needs `monotonic`"))?,
                points: numbers(self.points)?,
            },
            MetricKind::Gauge => {
                if temporality.is_some() || self.monotonic.is_some() {
                    return Err(err("a gauge has no `temporality` or `monotonic`"));
                }
                MetricData::Gauge {
                    points: numbers(self.points)?,
                }
            }
            MetricKind::Histogram => {
                if self.monotonic.is_some() {
                    return Err(err("a histogram has no `monotonic`"));
                }
                let temporality =
                    temporality.ok_or_else(|| err("a histogram needs `temporality`"))?;
                let points = self
                    .points
                    .into_iter()
                    .map(|p| {
                        let bounds = p
                            .bounds
                            .ok_or_else(|| err("a histogram point needs `bounds`"))?;
                        let counts = p
                            .counts
                            .ok_or_else(|| err("a histogram point needs `counts`"))?;
                        if counts.len() != bounds.len() + 1 {
                            return Err(err("a histogram point has one more count than bounds"));
                        }
                        Ok(HistogramPoint {
                            attributes: p.attributes.0,
                            start_time_unix_nano: p.start.0,
                            time_unix_nano: p.time.0,
                            count: p
                                .count
                                .ok_or_else(|| err("a histogram point needs `count`"))?,
                            sum: p
                                .sum
                                .ok_or_else(|| err("a histogram point needs `sum`"))?
                                .0
                                .as_f64(),
                            min: p.min.map(|n| n.0.as_f64()),
                            max: p.max.map(|n| n.0.as_f64()),
                            bounds,
                            counts,
                        })
                    })
                    .collect::<Result<_, String>>()?;
                MetricData::Histogram {
                    points,
                    temporality,
                }
            }
        };
        Ok(Metric {
            name,
            description: self.description,
            unit: self.unit,
            scope: scope(self.scope),
            data,
        })
    }
}

/// An RFC 3339 UTC time, as nanoseconds since the Unix epoch.
struct Time(u64);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let time = humantime::parse_rfc3339(&text)
            .map_err(|e| de::Error::custom(format!("invalid time {text:?}: {e} (expected RFC 3339 UTC, e.g. 2026-01-02T03:04:05.123456789Z)")))?;
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| de::Error::custom(format!("time {text:?} is before 1970")))?;
        u64::try_from(nanos.as_nanos())
            .map(Time)
            .map_err(|_| de::Error::custom(format!("time {text:?} is after 2554")))
    }
}

fn hex<'de, D: Deserializer<'de>>(d: D, digits: usize, what: &str) -> Result<u128, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    if text.len() != digits || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(de::Error::custom(format!(
            "invalid {what} {text:?}: expected {digits} hex digits"
        )));
    }
    let id = u128::from_str_radix(&text, 16).map_err(de::Error::custom)?;
    if id == 0 {
        return Err(de::Error::custom(format!("invalid {what}: all zero")));
    }
    Ok(id)
}

struct TraceHex(u128);

impl<'de> Deserialize<'de> for TraceHex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex(d, 32, "trace id").map(TraceHex)
    }
}

struct SpanHex(u64);

impl<'de> Deserialize<'de> for SpanHex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex(d, 16, "span id").map(|id| SpanHex(id as u64))
    }
}

/// Attributes: a JSON object, in order, duplicates kept.
#[derive(Default)]
struct Attrs(Vec<KeyValue>);

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Attrs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attrs, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((key, value)) = map.next_entry::<String, Val>()? {
                    out.push(KeyValue {
                        key,
                        value: value.0,
                    });
                }
                Ok(Attrs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A number: a JSON integer, a JSON number with a fraction or exponent, or `{"$double": ...}`.
struct Num(Number);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Val::deserialize(d)?.0 {
            Value::Int(i) => Ok(Num(Number::Int(i))),
            Value::Double(x) => Ok(Num(Number::Double(x))),
            _ => Err(de::Error::custom("expected a number")),
        }
    }
}

/// A value (see the README's record format).
#[derive(Default)]
struct Val(Value);

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_unit<E>(self) -> Result<Val, E> {
        Ok(Val(Value::Empty))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Val, E> {
        Ok(Val(Value::Bool(b)))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Val, E> {
        Ok(Val(Value::Int(i)))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Val, E> {
        i64::try_from(u)
            .map(|i| Val(Value::Int(i)))
            .map_err(|_| E::custom(format!("integer {u} does not fit a signed 64-bit integer")))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Val, E> {
        Ok(Val(Value::Double(x)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Val, E> {
        Ok(Val(Value::String(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Val, E> {
        Ok(Val(Value::String(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Val>()? {
            items.push(v.0);
        }
        Ok(Val(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok(Val(Value::Map(Vec::new())));
        };
        let special = match first.as_str() {
            "$bytes" => {
                let text: String = map.next_value()?;
                Some(decode_hex(&text).map(Value::Bytes).ok_or_else(|| {
                    de::Error::custom(format!("invalid $bytes {text:?}: expected hex digits"))
                })?)
            }
            "$double" => {
                let text: String = map.next_value()?;
                Some(Value::Double(match text.as_str() {
                    "NaN" => f64::NAN,
                    "Infinity" => f64::INFINITY,
                    "-Infinity" => f64::NEG_INFINITY,
                    _ => {
                        return Err(de::Error::custom(format!(
                            "invalid $double {text:?}: expected NaN, Infinity or -Infinity"
                        )));
                    }
                }))
            }
            _ => None,
        };
        if let Some(value) = special {
            if map.next_key::<de::IgnoredAny>()?.is_some() {
                return Err(de::Error::custom(format!(
                    "`{first}` must be the only key of its object"
                )));
            }
            return Ok(Val(value));
        }
        let mut entries = vec![KeyValue {
            key: first,
            value: map.next_value::<Val>()?.0,
        }];
        while let Some((key, value)) = map.next_entry::<String, Val>()? {
            entries.push(KeyValue {
                key,
                value: value.0,
            });
        }
        Ok(Val(Value::Map(entries)))
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}
