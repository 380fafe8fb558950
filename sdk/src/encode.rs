//! Lays records of [`crate::model`] out in the batch layout (documented in `wit/exporter.wit`):
//! the one encoder of the record model, which the host uses for every batch it sends, and which
//! a plugin's native tests use to make batches for `view::Batch`. Also: [`records_in`], which
//! splits records laid out one after another, and [`put`], a copy of bytes that plugins may use
//! where short copies are many.

use crate::model::{
    Event, HistogramPoint, KeyValue, Metric, MetricData, Number, NumberPoint, Record, Scope, Span,
    Value,
};

use crate::layout::{MAX_DEPTH, kind, tag};

/// A batch: `resource`, then `records` in order (a resource among them is left out).
pub fn batch<'a>(resource: &[KeyValue], records: impl IntoIterator<Item = &'a Record>) -> Vec<u8> {
    let mut out = Vec::new();
    resource_into(&mut out, resource);
    for record in records {
        record_into(&mut out, record);
    }
    out
}

/// Appends the resource record of `attributes` to `out`: how a batch starts.
pub fn resource_into(out: &mut Vec<u8>, attributes: &[KeyValue]) {
    Writer { out, depth: 0 }.sized(kind::RESOURCE, |w| w.attributes(attributes));
}

/// Appends `record` to `out`, as it is in a batch (nothing for a resource).
pub fn record_into(out: &mut Vec<u8>, record: &Record) {
    Writer { out, depth: 0 }.record(record);
}

/// The records appended one after another to `laid` (by [`record_into`] and [`resource_into`]),
/// each whole (its kind and size included) with whether it is a resource's.
///
/// # Panics
/// If `laid` is not such records.
pub fn records_in(laid: &[u8]) -> impl Iterator<Item = (bool, &[u8])> {
    let mut rest = laid;
    std::iter::from_fn(move || {
        let (&kind, after) = rest.split_first()?;
        let size = after
            .first_chunk::<4>()
            .map(|size| u32::from_le_bytes(*size) as usize)
            .and_then(|size| size.checked_add(5))
            .filter(|&size| size <= rest.len())
            .expect("records laid out one after another");
        let (record, after) = rest.split_at(size);
        rest = after;
        Some((kind == kind::RESOURCE, record))
    })
}

/// The attributes of an event being built, laid out as they are added, so that an attribute
/// costs no allocation of its own: the event's record is written from them and its other fields
/// by [`EventAttributes::event_into`].
#[derive(Debug, Default)]
pub struct EventAttributes {
    items: Vec<u8>,
    count: usize,
}

impl EventAttributes {
    /// Attributes laid out in `buffer` (cleared first), which keeps its capacity.
    pub fn in_buffer(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        EventAttributes {
            items: buffer,
            count: 0,
        }
    }

    /// Adds the attribute `key` = `value`. If laying the value out panics (in an
    /// [`AttrValue::into_value`]), the attribute is left out whole.
    #[inline]
    pub fn add(&mut self, key: &str, value: impl AttrValue) {
        /// Cuts the attributes back to where they were, unless the attribute was laid out.
        struct Undo<'a> {
            items: &'a mut Vec<u8>,
            len: usize,
            done: bool,
        }
        impl Drop for Undo<'_> {
            fn drop(&mut self) {
                if !self.done {
                    self.items.truncate(self.len);
                }
            }
        }
        let len = self.items.len();
        let mut undo = Undo {
            items: &mut self.items,
            len,
            done: false,
        };
        let mut w = Writer {
            out: &mut *undo.items,
            depth: 1,
        };
        w.str(key);
        value.lay(&mut w);
        undo.done = true;
        self.count += 1;
    }

    /// Appends the event record of `event`, with these attributes after its own, to `out`.
    pub fn event_into(&self, out: &mut Vec<u8>, event: &Event) {
        Writer { out, depth: 0 }.sized(kind::EVENT, |w| w.event(event, self));
    }

    /// Takes the buffer, for the next event; no attributes are left.
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.count = 0;
        std::mem::take(&mut self.items)
    }
}

/// A value that an attribute is laid out from: text, booleans, integers and floats directly,
/// without a [`Value`] made of them first. Another type implements [`AttrValue::into_value`].
pub trait AttrValue: Sized {
    /// The value as a [`Value`].
    fn into_value(self) -> Value;

    #[doc(hidden)]
    #[inline]
    fn lay(self, w: &mut Writer<'_>) {
        w.value(&self.into_value())
    }
}

/// Types laid out by a writer's method of their own (`lay(value => argument)`), and made a
/// [`Value`] by `into`.
macro_rules! attr_values {
    ($($t:ty: $lay:ident($v:ident => $arg:expr), $into:expr;)*) => {$(
        impl AttrValue for $t {
            fn into_value(self) -> Value {
                let $v = self;
                $into
            }
            #[inline]
            fn lay(self, w: &mut Writer<'_>) {
                let $v = self;
                w.$lay($arg)
            }
        }
    )*};
}

attr_values! {
    // Text of any lifetime: copied into the layout as it is.
    &str: string_value(v => v), Value::String(v.to_owned().into());
    &String: string_value(v => v), v.into();
    String: string_value(v => &v), v.into();
    crate::model::Str: string_value(v => &v), v.into();
    bool: bool_value(v => v), Value::Bool(v);
    i64: int_value(v => v), v.into();
    i32: int_value(v => v.into()), v.into();
    u32: int_value(v => v.into()), v.into();
    u8: int_value(v => v.into()), v.into();
    usize: int_value(v => v as i64), v.into();
    u64: int_value(v => v as i64), v.into();
    f64: double_value(v => v), Value::Double(v);
    f32: double_value(v => v.into()), Value::Double(v.into());
    Value: value(v => &v), v;
    &Value: value(v => v), v.clone();
}

impl AttrValue for Vec<u8> {
    fn into_value(self) -> Value {
        Value::Bytes(self)
    }
}

impl AttrValue for Vec<Value> {
    fn into_value(self) -> Value {
        Value::Array(self)
    }
}

/// Appends `b` to `out`, as `extend_from_slice` does. Up to 32 bytes (most keys, many values)
/// are copied in two overlapping pieces of a fixed size rather than by a call to `memcpy`,
/// which costs more than such a copy (in WebAssembly, `memory.copy` is a call into the host).
#[inline(always)]
pub fn put(out: &mut Vec<u8>, b: &[u8]) {
    /// The first `N` bytes of `b`, then its last `N`, written over each other's overlap.
    #[inline(always)]
    fn ends<const N: usize>(out: &mut Vec<u8>, b: &[u8]) {
        let end = out.len() + b.len();
        out.extend_from_slice(&b[..N]);
        out.truncate(end - N);
        out.extend_from_slice(&b[b.len() - N..]);
    }
    match b.len() {
        0 => {}
        1 => out.push(b[0]),
        2..4 => ends::<2>(out, b),
        4..8 => ends::<4>(out, b),
        8..16 => ends::<8>(out, b),
        16..=32 => ends::<16>(out, b),
        _ => out.extend_from_slice(b),
    }
}

/// In a module of its own: public to name in [`AttrValue`], out of reach of other crates.
mod writer {
    /// Appends to a batch's bytes.
    pub struct Writer<'a> {
        pub(super) out: &'a mut Vec<u8>,
        /// How many lists the bytes being written are inside.
        pub(super) depth: u8,
    }
}
use writer::Writer;

impl Writer<'_> {
    #[inline]
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    #[inline]
    fn u32(&mut self, v: usize) {
        let v = u32::try_from(v).expect("a batch holds less than 4 GiB");
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    #[inline]
    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    #[inline]
    fn f64(&mut self, v: f64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        self.out.reserve(4 + b.len());
        self.u32(b.len());
        put(self.out, b);
    }

    #[inline]
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    #[inline]
    fn trace_id(&mut self, id: Option<u128>) {
        self.out
            .extend_from_slice(&id.unwrap_or_default().to_be_bytes());
    }

    #[inline]
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
    fn list<T>(&mut self, items: &[T], item: impl FnMut(&mut Self, &T)) {
        self.list_then(items, item, &EventAttributes::default());
    }

    /// [`Writer::list`], with the items of `more` (laid out already) after those of `items`.
    fn list_then<T>(
        &mut self,
        items: &[T],
        mut item: impl FnMut(&mut Self, &T),
        more: &EventAttributes,
    ) {
        let at = self.size();
        self.u32(items.len() + more.count);
        let start = self.out.len();
        self.depth += 1;
        for x in items {
            item(self, x);
        }
        self.depth -= 1;
        self.out.extend_from_slice(&more.items);
        self.set_size_from(at, start);
    }

    /// Room for a size, set by [`Writer::set_size`]: where it is.
    #[inline]
    fn size(&mut self) -> usize {
        self.out.extend_from_slice(&[0; 4]);
        self.out.len() - 4
    }

    /// The size at `at` becomes the length of what follows it.
    #[inline]
    fn set_size(&mut self, at: usize) {
        self.set_size_from(at, at + 4);
    }

    /// The size at `at` becomes the length of what follows `start`.
    #[inline]
    fn set_size_from(&mut self, at: usize, start: usize) {
        let size = u32::try_from(self.out.len() - start).expect("a batch holds less than 4 GiB");
        self.out[at..at + 4].copy_from_slice(&size.to_le_bytes());
    }

    fn attributes(&mut self, attributes: &[KeyValue]) {
        self.attributes_then(attributes, &EventAttributes::default());
    }

    /// `attributes`, then those of `more`.
    fn attributes_then(&mut self, attributes: &[KeyValue], more: &EventAttributes) {
        let kv = |w: &mut Self, kv: &KeyValue| {
            w.str(&kv.key);
            w.value(&kv.value);
        };
        self.list_then(attributes, kv, more);
    }

    #[inline]
    fn string_value(&mut self, s: &str) {
        self.u8(tag::STRING);
        self.str(s);
    }

    #[inline]
    fn bool_value(&mut self, b: bool) {
        self.u8(tag::BOOL);
        self.u8(u8::from(b));
    }

    #[inline]
    fn int_value(&mut self, i: i64) {
        self.u8(tag::INT);
        self.out.extend_from_slice(&i.to_le_bytes());
    }

    #[inline]
    fn double_value(&mut self, d: f64) {
        self.u8(tag::DOUBLE);
        self.f64(d);
    }

    /// A value; an array or map that would nest lists deeper than the layout allows is empty.
    fn value(&mut self, value: &Value) {
        match value {
            Value::Array(_) | Value::Map(_) if self.depth >= MAX_DEPTH => self.u8(tag::EMPTY),
            Value::Empty => self.u8(tag::EMPTY),
            Value::String(s) => self.string_value(s),
            Value::Bool(b) => self.bool_value(*b),
            Value::Int(i) => self.int_value(*i),
            Value::Double(d) => self.double_value(*d),
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
            Record::Event(e) => {
                self.sized(kind::EVENT, |w| w.event(e, &EventAttributes::default()))
            }
            Record::Span(s) => self.sized(kind::SPAN, |w| w.span(s)),
            Record::Metric(m) => self.sized(kind::METRIC, |w| w.metric(m)),
        }
    }

    /// An event, with the attributes of `more` after its own.
    fn event(&mut self, e: &Event, more: &EventAttributes) {
        self.u64(e.time_unix_nano);
        self.u8(e.severity_number);
        self.trace_id(e.trace_id);
        self.span_id(e.span_id);
        self.str(&e.name);
        self.str(&e.severity_text);
        self.scope(&e.scope);
        self.value(&e.body);
        self.attributes_then(&e.attributes, more);
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
            Number::Int(i) => self.int_value(i),
            Number::Double(d) => self.double_value(d),
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
