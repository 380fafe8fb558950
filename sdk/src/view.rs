//! Typed, allocation-free reading of a batch: resolve slices to `&str`, ranges to slices of the
//! batch's lists, values to [`AnyValue`].

use crate::types::{
    EventBatch, HistogramPoint, KeyValue, MetricBatch, NumberPoint, Pool, Range, Slice, Span,
    SpanBatch, SpanEvent, SpanLink, TraceId, Value,
};

/// `list[range]`, or an empty slice where the range does not fit the list.
pub fn items<T>(list: &[T], range: Range) -> &[T] {
    let start = range.start as usize;
    list.get(start..start.saturating_add(range.len as usize))
        .unwrap_or(&[])
}

/// A value of a batch, resolved against its pool.
#[derive(Clone, Copy, Debug)]
pub enum AnyValue<'a> {
    /// No value.
    Empty,
    /// Text.
    Str(&'a str),
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// A float.
    Double(f64),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// An array.
    Array(Values<'a>),
    /// A map (key-value list).
    Map(Attributes<'a>),
}

/// The elements of an array value.
#[derive(Clone, Copy, Debug)]
pub struct Values<'a> {
    pool: &'a Pool,
    items: &'a [Value],
}

/// A list of attributes (or the entries of a map value).
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    pool: &'a Pool,
    items: &'a [KeyValue],
}

impl<'a> Values<'a> {
    /// How many elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// The elements, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = AnyValue<'a>> + 'a {
        let pool = self.pool;
        self.items.iter().map(move |v| pool.value(v))
    }
}

impl<'a> Attributes<'a> {
    /// How many attributes.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// `(key, value)` pairs in the order they were recorded.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, AnyValue<'a>)> + 'a {
        let pool = self.pool;
        self.items
            .iter()
            .map(move |kv| (pool.str(kv.key), pool.value(&kv.value)))
    }
    /// The value of the first attribute named `key`.
    pub fn get(&self, key: &str) -> Option<AnyValue<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

impl Pool {
    /// The bytes of `slice` (empty where it does not fit the pool).
    pub fn bytes(&self, slice: Slice) -> &[u8] {
        let start = slice.offset as usize;
        self.data
            .get(start..start.saturating_add(slice.len as usize))
            .unwrap_or(&[])
    }

    /// The text of `slice`; U+FFFD where the bytes are not UTF-8.
    pub fn str(&self, slice: Slice) -> &str {
        std::str::from_utf8(self.bytes(slice)).unwrap_or("\u{FFFD}")
    }

    /// `attributes[range]`, resolved.
    pub fn attributes(&self, range: Range) -> Attributes<'_> {
        Attributes {
            pool: self,
            items: items(&self.attributes, range),
        }
    }

    /// `value`, resolved.
    pub fn value<'a>(&'a self, value: &Value) -> AnyValue<'a> {
        match *value {
            Value::Empty => AnyValue::Empty,
            Value::String(s) => AnyValue::Str(self.str(s)),
            Value::Boolean(b) => AnyValue::Bool(b),
            Value::Int(i) => AnyValue::Int(i),
            Value::Double(d) => AnyValue::Double(d),
            Value::Bytes(s) => AnyValue::Bytes(self.bytes(s)),
            Value::Array(r) => AnyValue::Array(Values {
                pool: self,
                items: items(&self.values, r),
            }),
            Value::Kvlist(r) => AnyValue::Map(self.attributes(r)),
        }
    }
}

impl TraceId {
    /// The id as one 128-bit number.
    pub fn as_u128(&self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }
}

impl EventBatch {
    /// The resource's attributes.
    pub fn resource(&self) -> Attributes<'_> {
        self.pool.attributes(self.resource)
    }
}

impl SpanBatch {
    /// The resource's attributes.
    pub fn resource(&self) -> Attributes<'_> {
        self.pool.attributes(self.resource)
    }
    /// The events of `span`.
    pub fn events_of(&self, span: &Span) -> &[SpanEvent] {
        items(&self.events, span.events)
    }
    /// The links of `span`.
    pub fn links_of(&self, span: &Span) -> &[SpanLink] {
        items(&self.links, span.links)
    }
}

impl MetricBatch {
    /// The resource's attributes.
    pub fn resource(&self) -> Attributes<'_> {
        self.pool.attributes(self.resource)
    }
    /// `number-points[range]`: the points of a sum or gauge.
    pub fn number_points(&self, range: Range) -> &[NumberPoint] {
        items(&self.number_points, range)
    }
    /// `histogram-points[range]`: the points of a histogram.
    pub fn histogram_points(&self, range: Range) -> &[HistogramPoint] {
        items(&self.histogram_points, range)
    }
    /// The bucket bounds of a histogram point.
    pub fn bounds_of(&self, point: &HistogramPoint) -> &[f64] {
        items(&self.bounds, point.bounds)
    }
    /// The bucket counts of a histogram point.
    pub fn counts_of(&self, point: &HistogramPoint) -> &[u64] {
        items(&self.counts, point.counts)
    }
}
