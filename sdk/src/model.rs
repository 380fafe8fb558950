//! The owned telemetry data model: what an application records and what a record-format line
//! holds. `encode` lays records out as the batches that cross into a plugin.
//!
//! Each type and field is the owned twin of a view of the same name in `view`, where
//! they are documented: times are nanoseconds since the Unix epoch, ids are big-endian numbers,
//! `attributes` keep their recorded order.

use std::borrow::Cow;

/// What a span stands for, as OpenTelemetry's `SpanKind`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SpanKind {
    #[default]
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// The outcome of a span, as OpenTelemetry's status code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

/// Whether a point covers the time since the previous export (`Delta`) or since its start
/// time, which stays fixed (`Cumulative`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Temporality {
    Delta,
    Cumulative,
}

/// A string of a key or a value: borrowed for the program's life (a literal, built without an
/// allocation) or owned.
pub type Str = Cow<'static, str>;

/// A value, as OpenTelemetry's `AnyValue`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    /// No value.
    #[default]
    Empty,
    String(Str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<KeyValue>),
}

macro_rules! value_from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant((v $(as $cast)?).into())
            }
        }
    )*};
}
value_from!(
    String => String, &'static str => String, Str => String, bool => Bool,
    i64 => Int, i32 => Int, u32 => Int, u8 => Int, usize => Int as i64, u64 => Int as i64,
    f64 => Double, f32 => Double, Vec<u8> => Bytes, Vec<Value> => Array,
);

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::String(v.clone().into())
    }
}

/// One attribute.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    pub key: Str,
    pub value: Value,
}

impl KeyValue {
    /// An attribute from anything that converts into a key and a [`Value`]. A literal key or
    /// string value (`&'static str`) is kept without an allocation; a borrowed string that
    /// lives less long is passed owned (`name.to_string()`, or a `&String`).
    pub fn new(key: impl Into<Str>, value: impl Into<Value>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// The instrumentation scope a record comes from; empty by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub name: String,
    pub version: String,
}

/// A W3C trace id (16 bytes, big-endian).
pub type TraceId = u128;
/// A W3C span id (8 bytes, big-endian); never zero.
pub type SpanId = u64;

/// An event: an OpenTelemetry log record with an event name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    pub time_unix_nano: u64,
    pub name: Str,
    /// OpenTelemetry severity number (0 unspecified, 9 info, 13 warn, 17 error, ...).
    pub severity_number: u8,
    pub severity_text: Str,
    pub body: Value,
    pub attributes: Vec<KeyValue>,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub scope: Scope,
}

/// Something that happened during a span.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanEvent {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Vec<KeyValue>,
}

/// A link to another span.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub attributes: Vec<KeyValue>,
}

/// A finished span.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Vec<KeyValue>,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
    pub status: StatusCode,
    pub status_message: String,
    pub scope: Scope,
}

/// A number as an instrument recorded it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Double(f64),
}

impl Number {
    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Double(d) => d,
        }
    }
}

macro_rules! number_from {
    ($($t:ty => $variant:ident as $cast:ty),* $(,)?) => {$(
        impl From<$t> for Number {
            fn from(v: $t) -> Self {
                Number::$variant(v as $cast)
            }
        }
    )*};
}
number_from!(i64 => Int as i64, i32 => Int as i64, u32 => Int as i64, u64 => Int as i64,
    usize => Int as i64, f64 => Double as f64, f32 => Double as f64);

/// A data point of a sum or gauge.
#[derive(Clone, Debug, PartialEq)]
pub struct NumberPoint {
    pub attributes: Vec<KeyValue>,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub value: Number,
}

/// A data point of an explicit-bucket histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramPoint {
    pub attributes: Vec<KeyValue>,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub count: u64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Upper bucket bounds, ascending.
    pub bounds: Vec<f64>,
    /// Counts per bucket: `bounds.len() + 1` of them.
    pub counts: Vec<u64>,
}

/// The points of a metric.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricData {
    Sum {
        points: Vec<NumberPoint>,
        temporality: Temporality,
        monotonic: bool,
    },
    Gauge {
        points: Vec<NumberPoint>,
    },
    Histogram {
        points: Vec<HistogramPoint>,
        temporality: Temporality,
    },
}

/// A metric stream with its points for one export.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub scope: Scope,
    pub data: MetricData,
}

/// One line of the record format.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// The attributes of the resource that produced the records that follow.
    Resource(Vec<KeyValue>),
    Event(Event),
    Span(Span),
    Metric(Metric),
}

impl Event {
    /// An event named `name` with severity info and no attributes; the host stamps the time
    /// when it is left at 0.
    pub fn new(name: impl Into<Str>) -> Self {
        Event {
            name: name.into(),
            severity_number: 9,
            severity_text: "INFO".into(),
            ..Event::default()
        }
    }

    /// Adds an attribute.
    pub fn attr(mut self, key: impl Into<Str>, value: impl Into<Value>) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    /// Sets the severity: an OpenTelemetry severity number and its text.
    pub fn severity(mut self, number: u8, text: impl Into<Str>) -> Self {
        self.severity_number = number;
        self.severity_text = text.into();
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Value>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the time, in nanoseconds since the Unix epoch.
    pub fn at(mut self, time_unix_nano: u64) -> Self {
        self.time_unix_nano = time_unix_nano;
        self
    }
}

impl Record {
    /// The event, if the record is one.
    pub fn as_event(&self) -> Option<&Event> {
        if let Record::Event(e) = self {
            Some(e)
        } else {
            None
        }
    }

    /// The span, if the record is one.
    pub fn as_span(&self) -> Option<&Span> {
        if let Record::Span(s) = self {
            Some(s)
        } else {
            None
        }
    }

    /// The metric, if the record is one.
    pub fn as_metric(&self) -> Option<&Metric> {
        if let Record::Metric(m) = self {
            Some(m)
        } else {
            None
        }
    }
}
