//! Lays records of [`crate::model`] out in the batch layout (documented in `wit/exporter.wit`):
//! the one encoder of the record model, which the host uses for every batch it sends, and which
//! a plugin's native tests use to make batches for [`crate::view::Batch`].

use crate::model::{
    Event, HistogramPoint, KeyValue, Metric, MetricData, Number, NumberPoint, Record, Scope, Span,
    Value,
};

/// The kinds of records, as their first byte.
pub(crate) mod kind {
    pub const RESOURCE: u8 = 0;
    pub const EVENT: u8 = 1;
    pub const SPAN: u8 = 2;
    pub const METRIC: u8 = 3;
}

/// The tags of values.
pub(crate) mod tag {
    pub const EMPTY: u8 = 0;
    pub const STRING: u8 = 1;
    pub const BOOL: u8 = 2;
    pub const INT: u8 = 3;
    pub const DOUBLE: u8 = 4;
    pub const BYTES: u8 = 5;
    pub const ARRAY: u8 = 6;
    pub const MAP: u8 = 7;
}

/// A batch: `resource`, then `records` in order (a resource among them is left out).
pub fn batch<'a>(resource: &[KeyValue], records: impl IntoIterator<Item = &'a Record>) -> Vec<u8> {
    let mut out = Vec::new();
    batch_into(&mut out, resource, records);
    out
}

/// [`batch`], written into `out` (cleared first), which keeps its capacity from batch to batch.
pub fn batch_into<'a>(
    out: &mut Vec<u8>,
    resource: &[KeyValue],
    records: impl IntoIterator<Item = &'a Record>,
) {
    out.clear();
    let mut w = Writer { out, depth: 0 };
    w.sized(kind::RESOURCE, |w| w.attributes(resource));
    for record in records {
        w.record(record);
    }
}

/// Appends to the batch's bytes.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// How many lists the bytes being written are inside.
    depth: u8,
}

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    fn u32(&mut self, v: usize) {
        let v = u32::try_from(v).expect("a batch holds less than 4 GiB");
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn f64(&mut self, v: f64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len());
        self.out.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn trace_id(&mut self, id: Option<u128>) {
        self.out
            .extend_from_slice(&id.unwrap_or_default().to_be_bytes());
    }

    fn span_id(&mut self, id: Option<u64>) {
        self.out
            .extend_from_slice(&id.unwrap_or_default().to_be_bytes());
    }

    /// A record: its kind, then its size, then its body as `body` writes it.
    fn sized(&mut self, kind: u8, body: impl FnOnce(&mut Self)) {
        self.u8(kind);
        let at = self.size();
        body(self);
        self.set_size(at);
    }

    /// A list of `items`, each written by `item`: its size, its count, then the items.
    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        let at = self.size();
        self.u32(items.len());
        let start = self.out.len();
        self.depth += 1;
        for x in items {
            item(self, x);
        }
        self.depth -= 1;
        self.set_size_from(at, start);
    }

    /// Room for a size, set by [`Writer::set_size`]: where it is.
    fn size(&mut self) -> usize {
        self.out.extend_from_slice(&[0; 4]);
        self.out.len() - 4
    }

    /// The size at `at` becomes the length of what follows it.
    fn set_size(&mut self, at: usize) {
        self.set_size_from(at, at + 4);
    }

    /// The size at `at` becomes the length of what follows `start`.
    fn set_size_from(&mut self, at: usize, start: usize) {
        let size = u32::try_from(self.out.len() - start).expect("a batch holds less than 4 GiB");
        self.out[at..at + 4].copy_from_slice(&size.to_le_bytes());
    }

    fn attributes(&mut self, attributes: &[KeyValue]) {
        self.list(attributes, |w, kv| {
            w.str(&kv.key);
            w.value(&kv.value);
        });
    }

    /// A value; an array or map that would nest lists deeper than the layout allows is empty.
    fn value(&mut self, value: &Value) {
        match value {
            Value::Array(_) | Value::Map(_) if self.depth >= crate::view::MAX_DEPTH => {
                self.u8(tag::EMPTY)
            }
            Value::Empty => self.u8(tag::EMPTY),
            Value::String(s) => {
                self.u8(tag::STRING);
                self.str(s);
            }
            Value::Bool(b) => {
                self.u8(tag::BOOL);
                self.u8(u8::from(*b));
            }
            Value::Int(i) => {
                self.u8(tag::INT);
                self.out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Double(d) => {
                self.u8(tag::DOUBLE);
                self.f64(*d);
            }
            Value::Bytes(b) => {
                self.u8(tag::BYTES);
                self.bytes(b);
            }
            Value::Array(items) => {
                self.u8(tag::ARRAY);
                self.list(items, |w, v| w.value(v));
            }
            Value::Map(entries) => {
                self.u8(tag::MAP);
                self.attributes(entries);
            }
        }
    }

    fn scope(&mut self, scope: &Scope) {
        self.str(&scope.name);
        self.str(&scope.version);
    }

    fn record(&mut self, record: &Record) {
        match record {
            Record::Resource(_) => {}
            Record::Event(e) => self.sized(kind::EVENT, |w| w.event(e)),
            Record::Span(s) => self.sized(kind::SPAN, |w| w.span(s)),
            Record::Metric(m) => self.sized(kind::METRIC, |w| w.metric(m)),
        }
    }

    fn event(&mut self, e: &Event) {
        self.u64(e.time_unix_nano);
        self.u8(e.severity_number);
        self.trace_id(e.trace_id);
        self.span_id(e.span_id);
        self.str(&e.name);
        self.str(&e.severity_text);
        self.scope(&e.scope);
        self.value(&e.body);
        self.attributes(&e.attributes);
    }

    fn span(&mut self, s: &Span) {
        self.trace_id(Some(s.trace_id));
        self.span_id(Some(s.span_id));
        self.span_id(s.parent_span_id);
        self.u8(s.kind as u8);
        self.u8(s.status as u8);
        self.u64(s.start_time_unix_nano);
        self.u64(s.end_time_unix_nano);
        self.str(&s.name);
        self.str(&s.status_message);
        self.scope(&s.scope);
        self.attributes(&s.attributes);
        self.list(&s.events, |w, e| {
            w.u64(e.time_unix_nano);
            w.str(&e.name);
            w.attributes(&e.attributes);
        });
        self.list(&s.links, |w, l| {
            w.trace_id(Some(l.trace_id));
            w.span_id(Some(l.span_id));
            w.attributes(&l.attributes);
        });
    }

    fn metric(&mut self, m: &Metric) {
        let (data, temporality, monotonic) = match &m.data {
            MetricData::Sum {
                temporality,
                monotonic,
                ..
            } => (0, *temporality as u8, u8::from(*monotonic)),
            MetricData::Gauge { .. } => (1, 0, 0),
            MetricData::Histogram { temporality, .. } => (2, *temporality as u8, 0),
        };
        self.u8(data);
        self.u8(temporality);
        self.u8(monotonic);
        self.str(&m.name);
        self.str(&m.description);
        self.str(&m.unit);
        self.scope(&m.scope);
        match &m.data {
            MetricData::Sum { points, .. } | MetricData::Gauge { points } => {
                self.list(points, Self::number_point)
            }
            MetricData::Histogram { points, .. } => self.list(points, Self::histogram_point),
        }
    }

    fn number_point(&mut self, p: &NumberPoint) {
        self.u64(p.start_time_unix_nano);
        self.u64(p.time_unix_nano);
        match p.value {
            Number::Int(i) => self.value(&Value::Int(i)),
            Number::Double(d) => self.value(&Value::Double(d)),
        }
        self.attributes(&p.attributes);
    }

    fn histogram_point(&mut self, p: &HistogramPoint) {
        self.u64(p.start_time_unix_nano);
        self.u64(p.time_unix_nano);
        self.u64(p.count);
        self.f64(p.sum);
        self.u8(u8::from(p.min.is_some()) | u8::from(p.max.is_some()) << 1);
        self.f64(p.min.unwrap_or_default());
        self.f64(p.max.unwrap_or_default());
        self.list(&p.bounds, |w, b| w.f64(*b));
        self.list(&p.counts, |w, c| w.u64(*c));
        self.attributes(&p.attributes);
    }
}
