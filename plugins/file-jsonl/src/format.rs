//! The record format, written from a batch's views: one JSON object per line. The schema is
//! documented in the repository's README ("Record format"); the host's reader is its inverse.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use wasmtel_sdk::model::{Number, SpanKind, StatusCode, Temporality};
use wasmtel_sdk::view::{
    HistogramPoint, Item, List, MetricData, NumberPoint, Record, Scope, SpanEvent, SpanLink,
};
use wasmtel_sdk::{AnyValue, Attributes};

/// Turns records into lines, with a `resource` line before the first records of a file and at
/// every change of resource.
#[derive(Default)]
pub struct LineWriter {
    buf: Vec<u8>,
    /// The line of the current resource...
    resource: Vec<u8>,
    /// ... and whether the lines so far (in this file) have it.
    resource_written: bool,
}

impl LineWriter {
    /// The lines added since the last [`LineWriter::clear`].
    pub fn lines(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets the lines added, keeping the buffer's capacity for the next batch.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The next lines go to a new file (or the last ones were lost): they start with the
    /// resource line again.
    pub fn new_file(&mut self) {
        self.resource_written = false;
    }

    /// The records that follow are of the resource `attributes` (once per batch).
    pub fn resource(&mut self, attributes: Attributes<'_>) {
        let mut line = Vec::with_capacity(self.resource.len());
        serde_json::to_writer(
            &mut line,
            &ResourceLine {
                ty: "resource",
                attributes: Attrs(attributes),
            },
        )
        .expect("serializing into memory cannot fail");
        line.push(b'\n');
        if line != self.resource {
            self.resource = line;
            self.resource_written = false;
        }
    }

    fn line(&mut self, record: &impl Serialize) {
        serde_json::to_writer(&mut self.buf, record).expect("serializing into memory cannot fail");
        self.buf.push(b'\n');
    }

    /// Adds the line of `record`, after the resource line if the lines so far lack it.
    pub fn record(&mut self, record: Record<'_>) {
        if !self.resource_written {
            self.buf.extend_from_slice(&self.resource);
            self.resource_written = true;
        }
        match record {
            Record::Event(e) => self.line(&EventLine {
                ty: "event",
                time: Time(e.time_unix_nano),
                name: e.name,
                severity_number: e.severity_number,
                severity_text: e.severity_text,
                body: Val(e.body),
                attributes: Attrs(e.attributes),
                trace_id: e.trace_id.map(TraceHex),
                span_id: e.span_id.map(SpanHex),
                scope: ScopeLine::new(e.scope),
            }),
            Record::Span(s) => {
                let status = match s.status {
                    StatusCode::Unset => None,
                    StatusCode::Ok => Some("ok"),
                    StatusCode::Error => Some("error"),
                };
                self.line(&SpanLine {
                    ty: "span",
                    trace_id: TraceHex(s.trace_id),
                    span_id: SpanHex(s.span_id),
                    parent_span_id: s.parent_span_id.map(SpanHex),
                    name: s.name,
                    kind: span_kind(s.kind),
                    start: Time(s.start_time_unix_nano),
                    end: Time(s.end_time_unix_nano),
                    attributes: Attrs(s.attributes),
                    events: SpanEvents(s.events),
                    links: SpanLinks(s.links),
                    status: status.map(|code| StatusLine {
                        code,
                        message: s.status_message,
                    }),
                    scope: ScopeLine::new(s.scope),
                })
            }
            Record::Metric(m) => {
                let (kind, temporality, monotonic, points) = match m.data {
                    MetricData::Sum {
                        points,
                        temporality,
                        monotonic,
                    } => (
                        "sum",
                        Some(temporality_name(temporality)),
                        Some(monotonic),
                        Points::Numbers(points),
                    ),
                    MetricData::Gauge { points } => ("gauge", None, None, Points::Numbers(points)),
                    MetricData::Histogram {
                        points,
                        temporality,
                    } => (
                        "histogram",
                        Some(temporality_name(temporality)),
                        None,
                        Points::Histograms(points),
                    ),
                };
                self.line(&MetricLine {
                    ty: "metric",
                    name: m.name,
                    description: m.description,
                    unit: m.unit,
                    scope: ScopeLine::new(m.scope),
                    kind,
                    temporality,
                    monotonic,
                    points,
                })
            }
        }
    }
}

fn span_kind(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

fn temporality_name(t: Temporality) -> &'static str {
    match t {
        Temporality::Delta => "delta",
        Temporality::Cumulative => "cumulative",
    }
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct ResourceLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    attributes: Attrs<'a>,
}

#[derive(Serialize)]
struct EventLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    time: Time,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    severity_number: u8,
    #[serde(skip_serializing_if = "str::is_empty")]
    severity_text: &'a str,
    #[serde(skip_serializing_if = "Val::is_empty")]
    body: Val<'a>,
    #[serde(skip_serializing_if = "Attrs::is_empty")]
    attributes: Attrs<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<TraceHex>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<SpanHex>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<ScopeLine<'a>>,
}

#[derive(Serialize)]
struct SpanLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    trace_id: TraceHex,
    span_id: SpanHex,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<SpanHex>,
    name: &'a str,
    kind: &'static str,
    start: Time,
    end: Time,
    #[serde(skip_serializing_if = "Attrs::is_empty")]
    attributes: Attrs<'a>,
    #[serde(skip_serializing_if = "SpanEvents::is_empty")]
    events: SpanEvents<'a>,
    #[serde(skip_serializing_if = "SpanLinks::is_empty")]
    links: SpanLinks<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusLine<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<ScopeLine<'a>>,
}

#[derive(Serialize)]
struct SpanEventLine<'a> {
    time: Time,
    name: &'a str,
    #[serde(skip_serializing_if = "Attrs::is_empty")]
    attributes: Attrs<'a>,
}

#[derive(Serialize)]
struct SpanLinkLine<'a> {
    trace_id: TraceHex,
    span_id: SpanHex,
    #[serde(skip_serializing_if = "Attrs::is_empty")]
    attributes: Attrs<'a>,
}

#[derive(Serialize)]
struct StatusLine<'a> {
    code: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
}

#[derive(Serialize)]
struct MetricLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    unit: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<ScopeLine<'a>>,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    temporality: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    monotonic: Option<bool>,
    points: Points<'a>,
}

/// The points of a metric, read from the batch as they are written.
enum Points<'a> {
    Numbers(List<'a, NumberPoint<'a>>),
    Histograms(List<'a, HistogramPoint<'a>>),
}

impl Serialize for Points<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Points::Numbers(points) => s.collect_seq(points.iter().map(|p| PointLine {
                attributes: Attrs(p.attributes),
                start: Time(p.start_time_unix_nano),
                time: Time(p.time_unix_nano),
                value: Some(p.value),
                histogram: None,
            })),
            Points::Histograms(points) => s.collect_seq(points.iter().map(|p| PointLine {
                attributes: Attrs(p.attributes),
                start: Time(p.start_time_unix_nano),
                time: Time(p.time_unix_nano),
                value: None,
                histogram: Some(HistogramFields {
                    count: p.count,
                    sum: Double(p.sum),
                    min: p.min.map(Double),
                    max: p.max.map(Double),
                    bounds: Plain(p.bounds),
                    counts: Plain(p.counts),
                }),
            })),
        }
    }
}

#[derive(Serialize)]
struct PointLine<'a> {
    #[serde(skip_serializing_if = "Attrs::is_empty")]
    attributes: Attrs<'a>,
    start: Time,
    time: Time,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    value: Option<Number>,
    #[serde(flatten)]
    histogram: Option<HistogramFields<'a>>,
}

#[derive(Serialize)]
struct HistogramFields<'a> {
    count: u64,
    sum: Double,
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<Double>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<Double>,
    bounds: Plain<'a, f64>,
    counts: Plain<'a, u64>,
}

/// A list of numbers as a JSON array.
struct Plain<'a, T>(List<'a, T>);

impl<'a, T: Item<'a> + Serialize> Serialize for Plain<'a, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

/// A span's events as a JSON array.
struct SpanEvents<'a>(List<'a, SpanEvent<'a>>);

impl SpanEvents<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for SpanEvents<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|e| SpanEventLine {
            time: Time(e.time_unix_nano),
            name: e.name,
            attributes: Attrs(e.attributes),
        }))
    }
}

/// A span's links as a JSON array.
struct SpanLinks<'a>(List<'a, SpanLink<'a>>);

impl SpanLinks<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for SpanLinks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|l| SpanLinkLine {
            trace_id: TraceHex(l.trace_id),
            span_id: SpanHex(l.span_id),
            attributes: Attrs(l.attributes),
        }))
    }
}

fn number<S: Serializer>(value: &Option<Number>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(Number::Int(i)) => s.serialize_i64(*i),
        Some(Number::Double(d)) => Double(*d).serialize(s),
        None => s.serialize_none(),
    }
}

#[derive(Serialize)]
struct ScopeLine<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    version: &'a str,
}

impl<'a> ScopeLine<'a> {
    fn new(scope: Scope<'a>) -> Option<Self> {
        (!scope.is_empty()).then_some(ScopeLine {
            name: scope.name,
            version: scope.version,
        })
    }
}

/// A time as an RFC 3339 UTC string with nanoseconds.
struct Time(u64);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let time = UNIX_EPOCH + Duration::from_nanos(self.0);
        s.collect_str(&humantime::format_rfc3339_nanos(time))
    }
}

/// A trace id as 32 lowercase hex digits.
struct TraceHex(u128);

impl Serialize for TraceHex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:032x}", self.0))
    }
}

/// A span id as 16 lowercase hex digits.
struct SpanHex(u64);

impl Serialize for SpanHex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:016x}", self.0))
    }
}

/// A float: a JSON number when finite, else `{"$double": "NaN" | "Infinity" | "-Infinity"}`.
struct Double(f64);

impl Serialize for Double {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        if d.is_finite() {
            return s.serialize_f64(d);
        }
        let text = if d.is_nan() {
            "NaN"
        } else if d > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("$double", text)?;
        map.end()
    }
}

/// Attributes as a JSON object, in recorded order.
#[derive(Clone, Copy)]
struct Attrs<'a>(Attributes<'a>);

impl Attrs<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Attrs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter() {
            map.serialize_entry(k, &Val(v))?;
        }
        map.end()
    }
}

/// A value as JSON: text, booleans, integers and arrays as themselves, floats as numbers with a
/// fraction or exponent, maps as objects, bytes as `{"$bytes": "<hex>"}`, no value as `null`.
struct Val<'a>(AnyValue<'a>);

impl Val<'_> {
    fn is_empty(&self) -> bool {
        matches!(self.0, AnyValue::Empty)
    }
}

impl Serialize for Val<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AnyValue::Empty => s.serialize_unit(),
            AnyValue::Str(t) => s.serialize_str(t),
            AnyValue::Bool(b) => s.serialize_bool(b),
            AnyValue::Int(i) => s.serialize_i64(i),
            AnyValue::Double(d) => Double(d).serialize(s),
            AnyValue::Bytes(b) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("$bytes", &Hex(b))?;
                map.end()
            }
            AnyValue::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items.iter() {
                    seq.serialize_element(&Val(v))?;
                }
                seq.end()
            }
            AnyValue::Map(attrs) => Attrs(attrs).serialize(s),
        }
    }
}

struct Hex<'a>(&'a [u8]);

impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use std::fmt::Write;
        let mut text = String::with_capacity(self.0.len() * 2);
        for b in self.0 {
            write!(text, "{b:02x}").expect("writing to a String cannot fail");
        }
        s.serialize_str(&text)
    }
}
