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
            // A byte-order mark may start the input; it is not part of the first record.
            let line = match self.line_number {
                1 => self.line.strip_prefix('\u{feff}').unwrap_or(&self.line),
                _ => &self.line,
            };
            if line.trim().is_empty() {
                continue;
            }
            return Some(
                parse_line(line.trim_end_matches(['\n', '\r'])).map_err(|message| Error::Record {
                    file: self.name.clone(),
                    line: self.line_number,
                    message,
                }),
            );
        }
    }
}

/// The longest error message about a line: a long value is not echoed whole.
const MAX_MESSAGE: usize = 300;

/// Parses one line of the record format.
pub fn parse_line(line: &str) -> Result<Record, String> {
    parse(line).map_err(|mut message| {
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("...");
        }
        message
    })
}

fn parse(line: &str) -> Result<Record, String> {
    check_numbers(line)?;
    if let Some(parsed) = type_first(line) {
        return parsed.into_record();
    }
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

/// A line whose `type` comes first (as file-jsonl writes them), read straight into its kind's
/// fields, without the buffering of every value that finding a tag anywhere in the object takes.
/// None for any other line, or one that does not read: the general reader reads it, or says why
/// not.
fn type_first(line: &str) -> Option<Line> {
    let rest = line.strip_prefix(r#"{"type":""#)?;
    let (kind, rest) = rest.split_once('"')?;
    let fields = match rest.strip_prefix(',') {
        Some(fields) => format!("{{{fields}"),
        None if rest == "}" => "{}".to_string(),
        None => return None,
    };
    match kind {
        "resource" => serde_json::from_str(&fields).ok().map(Line::Resource),
        "event" => serde_json::from_str(&fields).ok().map(Line::Event),
        "span" => serde_json::from_str(&fields).ok().map(Line::Span),
        "metric" => serde_json::from_str(&fields).ok().map(Line::Metric),
        _ => None,
    }
}

/// Checks every number of a line before it is parsed, so that none changes silently: an integer
/// must fit a signed 64-bit integer, and a number with a fraction or exponent must be a finite
/// double that is not a non-zero number rounded to zero. Malformed numbers are left to the JSON
/// parser.
fn check_numbers(line: &str) -> Result<(), String> {
    let bytes = line.as_bytes();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'-' | b'0'..=b'9') => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                check_number(&line[start..i])
                    .map_err(|m| format!("{m} at column {}", line[..start].chars().count() + 1))?;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn check_number(text: &str) -> Result<(), String> {
    let shown: String = text.chars().take(40).collect();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !text.contains(['.', 'e', 'E']) {
        let integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        if integer && text.parse::<i64>().is_err() {
            return Err(format!(
                "integer {shown} does not fit a signed 64-bit integer"
            ));
        }
        return Ok(());
    }
    let mantissa = digits.split(['e', 'E']).next().unwrap_or_default();
    match text.parse::<f64>() {
        Ok(x) if x.is_infinite() => Err(format!("number {shown} is too large for a double")),
        Ok(x) if x == 0.0 && mantissa.bytes().any(|b| matches!(b, b'1'..=b'9')) => Err(format!(
            "number {shown} is too small for a double (it would read as 0)"
        )),
        _ => Ok(()),
    }
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
            Line::Event(e) if e.severity_number > 24 => {
                return Err(format!(
                    "severity_number {} is out of range: OpenTelemetry's are 1 to 24 (0: unset)",
                    e.severity_number
                ));
            }
            Line::Event(e) => Record::Event(Event {
                time_unix_nano: e.time.0,
                name: e.name.into(),
                severity_number: e.severity_number,
                severity_text: e.severity_text.into(),
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
        // Digits past the ninth of the fraction would be cut: only zeros may stand there.
        let beyond_nanos = text
            .split_once('.')
            .map(|(_, fraction)| {
                let digits = fraction.bytes().take_while(u8::is_ascii_digit);
                digits.skip(9).any(|b| b != b'0')
            })
            .unwrap_or(false);
        if beyond_nanos {
            return Err(de::Error::custom(format!(
                "time {text:?} is more precise than a nanosecond"
            )));
        }
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
                        key: key.into(),
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

/// A value (see the README's record format), and how many arrays and maps it nests.
#[derive(Default)]
struct Val(Value, u8);

/// How many arrays and maps a value may nest: what the batch layout carries in the deepest
/// place a value has (the attributes of a span's event or a metric's point).
const MAX_NESTING: u8 = wasmtel_sdk::view::MAX_DEPTH - 2;

impl Val {
    /// An array or map of values that nest `inner` deep.
    fn nesting<E: de::Error>(value: Value, inner: u8) -> Result<Val, E> {
        if inner >= MAX_NESTING {
            return Err(E::custom(format!(
                "arrays and maps nested more than {MAX_NESTING} deep (the most a batch carries)"
            )));
        }
        Ok(Val(value, inner + 1))
    }
}

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
        Ok(Val(Value::Empty, 0))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Val, E> {
        Ok(Val(Value::Bool(b), 0))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Val, E> {
        Ok(Val(Value::Int(i), 0))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Val, E> {
        i64::try_from(u)
            .map(|i| Val(Value::Int(i), 0))
            .map_err(|_| E::custom(format!("integer {u} does not fit a signed 64-bit integer")))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Val, E> {
        Ok(Val(Value::Double(x), 0))
    }
    fn visit_str<E>(self, s: &str) -> Result<Val, E> {
        Ok(Val(Value::String(s.to_string().into()), 0))
    }
    fn visit_string<E>(self, s: String) -> Result<Val, E> {
        Ok(Val(Value::String(s.into()), 0))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let (mut items, mut inner) = (Vec::new(), 0);
        while let Some(v) = seq.next_element::<Val>()? {
            items.push(v.0);
            inner = inner.max(v.1);
        }
        Val::nesting(Value::Array(items), inner)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Val::nesting(Value::Map(Vec::new()), 0);
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
            return Ok(Val(value, 0));
        }
        let value = map.next_value::<Val>()?;
        let mut inner = value.1;
        let mut entries = vec![KeyValue {
            key: first.into(),
            value: value.0,
        }];
        while let Some((key, value)) = map.next_entry::<String, Val>()? {
            inner = inner.max(value.1);
            entries.push(KeyValue {
                key: key.into(),
                value: value.0,
            });
        }
        Val::nesting(Value::Map(entries), inner)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(attributes: &str) -> String {
        format!(
            r#"{{"type":"event","time":"2026-11-20T09:00:00.000000000Z","name":"e","attributes":{attributes}}}"#
        )
    }

    fn value(line: &str) -> Value {
        match parse_line(line) {
            Ok(Record::Event(e)) => e.attributes[0].value.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_line_reads_the_same_wherever_its_type_is() {
        let fixture = include_str!("../../tests/fixtures/codex-session.jsonl");
        for line in fixture.lines() {
            let (kind, fields) = line
                .strip_prefix(r#"{"type":""#)
                .and_then(|rest| rest.split_once("\","))
                .expect("file-jsonl writes the type first");
            // The same fields, the type last: read by the general reader.
            let inner = fields.strip_suffix('}').expect("an object");
            let last = format!("{{{inner},\"type\":\"{kind}\"}}");
            assert!(type_first(&last).is_none(), "{last}");
            assert!(type_first(line).is_some(), "{line}");
            assert_eq!(parse_line(&last), parse_line(line), "{last}");
        }
    }

    #[test]
    fn values_nested_deeper_than_a_batch_carries_are_refused() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let deepest = usize::from(MAX_NESTING);
        let mut value = value(&event(&format!("{{\"x\":{}}}", nested(deepest))));
        for _ in 0..deepest {
            let Value::Array(mut items) = value else {
                panic!("an array")
            };
            value = items.remove(0);
        }
        assert_eq!(value, Value::Int(1));
        let error = parse_line(&event(&format!("{{\"x\":{}}}", nested(deepest + 1))))
            .expect_err("too deep");
        assert!(
            error.contains("arrays and maps nested more than 30 deep"),
            "{error}"
        );
    }

    #[test]
    fn values_are_kept_exactly_or_refused_with_their_column() {
        assert_eq!(
            value(&event(r#"{"x":7.370437700706685e208}"#)),
            Value::Double(7.370437700706685e208)
        );
        assert_eq!(value(&event(r#"{"x":5e-324}"#)), Value::Double(5e-324));
        assert_eq!(
            value(&event(r#"{"x":-9223372036854775808}"#)),
            Value::Int(i64::MIN)
        );
        for (attributes, expected) in [
            (
                r#"{"x":18446744073709551616}"#,
                "integer 18446744073709551616 does not fit a signed 64-bit integer at column",
            ),
            (
                r#"{"x":9223372036854775808}"#,
                "does not fit a signed 64-bit integer",
            ),
            (
                r#"{"x":1e-400}"#,
                "number 1e-400 is too small for a double (it would read as 0) at column 86",
            ),
            (r#"{"x":1e400}"#, "number 1e400 is too large for a double"),
        ] {
            let error = parse_line(&event(attributes)).expect_err(attributes);
            assert!(error.contains(expected), "{error}");
        }
        assert_eq!(
            value(&event(r#"{"x":"1e-400 in a string"}"#)),
            "1e-400 in a string".into()
        );
        assert_eq!(
            value(&event(r#"{"x":0.0e-999}"#)),
            Value::Double(0.0),
            "zero is zero"
        );
    }

    #[test]
    fn severity_and_time_beyond_their_ranges_are_refused() {
        let line = r#"{"type":"event","time":"2026-11-20T09:00:00Z","severity_number":25}"#;
        assert!(parse_line(line).expect_err("25").contains("1 to 24"));
        let precise = r#"{"type":"event","time":"2026-11-20T09:00:00.0000000001Z"}"#;
        assert!(
            parse_line(precise)
                .expect_err("too precise")
                .contains("more precise than a nanosecond")
        );
        let zeros = r#"{"type":"event","time":"2026-11-20T09:00:00.1000000000Z"}"#;
        assert!(parse_line(zeros).is_ok(), "trailing zeros lose nothing");
    }

    #[test]
    fn a_long_bad_value_is_not_echoed_whole() {
        let line = format!(r#"{{"type":"event","time":"{}"}}"#, "x".repeat(1 << 20));
        let error = parse_line(&line).expect_err("a bad time");
        assert!(error.len() < 400, "{} bytes", error.len());
    }

    #[test]
    fn a_byte_order_mark_before_the_first_line_is_skipped() {
        let input = "\u{feff}{\"type\":\"resource\"}\n";
        let records: Vec<Record> = Reader::new(input.as_bytes(), "bom")
            .map(|r| r.expect("valid"))
            .collect();
        assert_eq!(records, [Record::Resource(Vec::new())]);
    }
}
