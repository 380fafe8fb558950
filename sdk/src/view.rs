//! Typed, allocation-free reading of a batch in the batch layout (documented in
//! `wit/exporter.wit`). [`Batch::new`] checks the whole batch once (every size, tag and string);
//! the views it then gives read it without checking again.

pub use crate::layout::MAX_DEPTH;
use crate::layout::{kind, tag};
use crate::model::{self, Number, SpanId, SpanKind, StatusCode, Temporality, TraceId};

/// Why bytes are not a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutError {
    /// Where the batch stops making sense, in bytes from its start.
    pub offset: usize,
    /// What is wrong there.
    pub reason: &'static str,
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not a batch in the layout of wasmtel:exporter {}: {} at byte {}",
            crate::WIT_VERSION,
            self.reason,
            self.offset
        )
    }
}

impl std::error::Error for LayoutError {}

/// In a module of its own: public to name in [`Item`], out of reach of other crates.
mod cursor {
    /// Reads a batch's bytes in order. `checked` reads check what they read; a cursor over a
    /// batch that [`super::Batch::new`] has checked reads the same fields again without checking.
    #[derive(Clone, Copy, Debug)]
    pub struct Cursor<'a> {
        pub(super) bytes: &'a [u8],
        /// Where `bytes` starts in the batch, for errors.
        pub(super) offset: usize,
        pub(super) checked: bool,
        /// How many lists this cursor's bytes are inside.
        pub(super) depth: u8,
    }
}
use cursor::Cursor;

type Read<T> = Result<T, LayoutError>;

impl<'a> Cursor<'a> {
    /// What is wrong here.
    fn fail<T>(&self, reason: &'static str) -> Read<T> {
        Err(LayoutError {
            offset: self.offset,
            reason,
        })
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        if n > self.bytes.len() {
            return self.fail("a length runs past its end");
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        self.offset += n;
        Ok(head)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Read<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    #[inline(always)]
    fn u8(&mut self) -> Read<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn code(&mut self, cases: u8) -> Read<u8> {
        let at = *self;
        let code = self.u8()?;
        if code < cases {
            Ok(code)
        } else {
            at.fail("an unknown code")
        }
    }

    #[inline(always)]
    fn u32(&mut self) -> Read<usize> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn u64(&mut self) -> Read<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Read<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    fn trace_id(&mut self) -> Read<Option<TraceId>> {
        Ok(Some(u128::from_be_bytes(self.array()?)).filter(|&id| id != 0))
    }

    fn span_id(&mut self) -> Read<Option<SpanId>> {
        Ok(Some(u64::from_be_bytes(self.array()?)).filter(|&id| id != 0))
    }

    #[inline(always)]
    fn bytes(&mut self) -> Read<&'a [u8]> {
        let len = self.u32()?;
        self.take(len)
    }

    #[inline(always)]
    fn str(&mut self) -> Read<&'a str> {
        let at = *self;
        let bytes = self.bytes()?;
        if self.checked {
            utf8(bytes).map_or_else(|| at.fail("text that is not UTF-8"), Ok)
        } else {
            debug_assert!(std::str::from_utf8(bytes).is_ok());
            // SAFETY: this cursor reads a batch that `Batch::new` checked: the checked pass made
            // the same reads (the read code never depends on `checked`), in which these bytes
            // were read as text and found UTF-8.
            Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
        }
    }

    /// The next `size` bytes as a cursor of their own.
    fn sub(&mut self, size: usize) -> Read<Cursor<'a>> {
        let offset = self.offset;
        Ok(Cursor {
            bytes: self.take(size)?,
            offset,
            ..*self
        })
    }

    fn list<T: Item<'a>>(&mut self) -> Read<List<'a, T>> {
        if self.depth >= MAX_DEPTH {
            return self.fail("lists nested deeper than MAX_DEPTH");
        }
        let size = self.u32()?;
        let count = self.u32()?;
        let mut items = self.sub(size)?;
        items.depth += 1;
        let list = List {
            items,
            count,
            item: std::marker::PhantomData,
        };
        if self.checked {
            list.check()?;
        }
        Ok(list)
    }

    fn scope(&mut self) -> Read<Scope<'a>> {
        Ok(Scope {
            name: self.str()?,
            version: self.str()?,
        })
    }

    fn value(&mut self) -> Read<AnyValue<'a>> {
        Ok(match self.code(8)? {
            tag::EMPTY => AnyValue::Empty,
            tag::STRING => AnyValue::Str(self.str()?),
            tag::BOOL => AnyValue::Bool(self.code(2)? == 1),
            tag::INT => AnyValue::Int(i64::from_le_bytes(self.array()?)),
            tag::DOUBLE => AnyValue::Double(self.f64()?),
            tag::BYTES => AnyValue::Bytes(self.bytes()?),
            tag::ARRAY => AnyValue::Array(self.list()?),
            _ => AnyValue::Map(self.list()?),
        })
    }
}

/// `bytes` as text, if UTF-8. ASCII (most telemetry text) is recognised eight bytes at a time,
/// which is quicker than `std::str::from_utf8` for short text in WebAssembly.
fn utf8(bytes: &[u8]) -> Option<&str> {
    let words = bytes.chunks_exact(8);
    let tail = words.remainder().iter().fold(0, |w, &b| w | b);
    let ascii = tail < 0x80
        && words
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
            .fold(0, |w, x| w | x)
            & 0x8080_8080_8080_8080
            == 0;
    if ascii {
        // SAFETY: ASCII is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// What a [`List`] holds: the items of the batch layout, read from a cursor. Implemented for
/// them only (the cursor is the SDK's own).
pub trait Item<'a>: Sized + std::fmt::Debug {
    #[doc(hidden)]
    fn read(cursor: &mut Cursor<'a>) -> Read<Self>;
}

/// A list of a batch: attributes, array elements, a span's events and links, a metric's points,
/// a histogram's bounds and counts. Iterating reads its items in order.
#[derive(Clone, Copy, Debug)]
pub struct List<'a, T> {
    items: Cursor<'a>,
    count: usize,
    item: std::marker::PhantomData<T>,
}

impl<'a, T: Item<'a>> List<'a, T> {
    /// How many items.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The items, in order.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter {
            items: self.items,
            left: self.count,
            item: std::marker::PhantomData,
        }
    }

    /// Checks that the items fill the list's bytes exactly. Items that hold lists check those
    /// as they read them.
    fn check(&self) -> Read<()> {
        let mut items = self.items;
        for _ in 0..self.count {
            T::read(&mut items)?;
        }
        if items.bytes.is_empty() {
            Ok(())
        } else {
            items.fail("a list's items do not fill its size")
        }
    }
}

impl<'a, T: Item<'a>> IntoIterator for List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;
    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

impl<'a, T: Item<'a>> IntoIterator for &List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;
    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

/// The items of a [`List`], read in order.
#[derive(Clone, Debug)]
pub struct ListIter<'a, T> {
    items: Cursor<'a>,
    left: usize,
    item: std::marker::PhantomData<T>,
}

impl<'a, T: Item<'a>> Iterator for ListIter<'a, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Checked when the batch was made: a read cannot fail.
        let item = T::read(&mut self.items);
        debug_assert!(item.is_ok(), "{item:?}");
        item.ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<'a, T: Item<'a>> ExactSizeIterator for ListIter<'a, T> {}

/// A value, as OpenTelemetry's `AnyValue`.
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
pub type Values<'a> = List<'a, AnyValue<'a>>;

/// Attributes, or the entries of a map value: `(key, value)` pairs in the order they were
/// recorded.
pub type Attributes<'a> = List<'a, (&'a str, AnyValue<'a>)>;

impl<'a> Attributes<'a> {
    /// The value of the first attribute named `key`.
    pub fn get(&self, key: &str) -> Option<AnyValue<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The attributes, owned.
    pub fn to_model(&self) -> Vec<model::KeyValue> {
        self.iter()
            .map(|(k, v)| model::KeyValue::new(k.to_owned(), v.to_model()))
            .collect()
    }
}

/// Where a record comes from: its instrumentation scope (library or component).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scope<'a> {
    /// Scope name, e.g. `codex`; may be empty.
    pub name: &'a str,
    /// Scope version; may be empty.
    pub version: &'a str,
}

impl Scope<'_> {
    /// Whether both name and version are empty.
    pub fn is_empty(&self) -> bool {
        self.name.is_empty() && self.version.is_empty()
    }
}

/// An event: an OpenTelemetry log record with an event name.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// When it happened, in nanoseconds since the Unix epoch (UTC).
    pub time_unix_nano: u64,
    /// Its name, e.g. `codex.api_request`; may be empty for plain log records.
    pub name: &'a str,
    /// OpenTelemetry's severity number (9 is info; 0 unspecified).
    pub severity_number: u8,
    /// Severity as text, e.g. `INFO`; may be empty.
    pub severity_text: &'a str,
    /// The log body; [`AnyValue::Empty`] when it has none.
    pub body: AnyValue<'a>,
    /// Its attributes.
    pub attributes: Attributes<'a>,
    /// The trace it belongs to, if any.
    pub trace_id: Option<TraceId>,
    /// The span it belongs to, if any.
    pub span_id: Option<SpanId>,
    /// Where it comes from.
    pub scope: Scope<'a>,
}

/// A finished span.
#[derive(Clone, Copy, Debug)]
pub struct Span<'a> {
    /// Its trace.
    pub trace_id: TraceId,
    /// Its id.
    pub span_id: SpanId,
    /// Its parent; none for a root span.
    pub parent_span_id: Option<SpanId>,
    /// Its name.
    pub name: &'a str,
    /// What it stands for.
    pub kind: SpanKind,
    /// Its start, in nanoseconds since the Unix epoch (UTC).
    pub start_time_unix_nano: u64,
    /// Its end, in nanoseconds since the Unix epoch (UTC).
    pub end_time_unix_nano: u64,
    /// Its attributes.
    pub attributes: Attributes<'a>,
    /// What happened during it.
    pub events: List<'a, SpanEvent<'a>>,
    /// Its links to other spans.
    pub links: List<'a, SpanLink<'a>>,
    /// Its outcome.
    pub status: StatusCode,
    /// The status's description; empty unless the status is an error.
    pub status_message: &'a str,
    /// Where it comes from.
    pub scope: Scope<'a>,
}

/// Something that happened during a span.
#[derive(Clone, Copy, Debug)]
pub struct SpanEvent<'a> {
    /// When, in nanoseconds since the Unix epoch (UTC).
    pub time_unix_nano: u64,
    /// What.
    pub name: &'a str,
    /// Its attributes.
    pub attributes: Attributes<'a>,
}

/// A link from a span to another span.
#[derive(Clone, Copy, Debug)]
pub struct SpanLink<'a> {
    /// The other span's trace.
    pub trace_id: TraceId,
    /// The other span.
    pub span_id: SpanId,
    /// The link's attributes.
    pub attributes: Attributes<'a>,
}

/// A metric stream: an instrument's identity and its points for one export.
#[derive(Clone, Copy, Debug)]
pub struct Metric<'a> {
    /// Its name, e.g. `codex.tool.call`.
    pub name: &'a str,
    /// Its description; may be empty.
    pub description: &'a str,
    /// Its unit, UCUM style, e.g. `ms`; may be empty.
    pub unit: &'a str,
    /// Where it comes from.
    pub scope: Scope<'a>,
    /// Its points.
    pub data: MetricData<'a>,
}

/// What a metric's points are.
#[derive(Clone, Copy, Debug)]
pub enum MetricData<'a> {
    /// A sum: the data of counters (monotonic) and up-down counters.
    Sum {
        /// Its points.
        points: List<'a, NumberPoint<'a>>,
        /// Whether a point covers the time since the previous export or since its start.
        temporality: Temporality,
        /// Whether it only grows (a counter).
        monotonic: bool,
    },
    /// A gauge: the last value seen.
    Gauge {
        /// Its points.
        points: List<'a, NumberPoint<'a>>,
    },
    /// A histogram with explicit bucket bounds.
    Histogram {
        /// Its points.
        points: List<'a, HistogramPoint<'a>>,
        /// Whether a point covers the time since the previous export or since its start.
        temporality: Temporality,
    },
}

/// One data point of a sum or a gauge.
#[derive(Clone, Copy, Debug)]
pub struct NumberPoint<'a> {
    /// Its attributes.
    pub attributes: Attributes<'a>,
    /// Start of the interval it covers, in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// When it was taken.
    pub time_unix_nano: u64,
    /// Its value.
    pub value: Number,
}

/// One data point of a histogram.
#[derive(Clone, Copy, Debug)]
pub struct HistogramPoint<'a> {
    /// Its attributes.
    pub attributes: Attributes<'a>,
    /// Start of the interval it covers, in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// When it was taken.
    pub time_unix_nano: u64,
    /// How many values were recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest value recorded, if any.
    pub min: Option<f64>,
    /// The largest value recorded, if any.
    pub max: Option<f64>,
    /// Upper bucket bounds, ascending.
    pub bounds: List<'a, f64>,
    /// Counts per bucket, one more than there are bounds.
    pub counts: List<'a, u64>,
}

impl<'a> Item<'a> for AnyValue<'a> {
    fn read(c: &mut Cursor<'a>) -> Read<Self> {
        c.value()
    }
}

impl<'a> Item<'a> for (&'a str, AnyValue<'a>) {
    fn read(c: &mut Cursor<'a>) -> Read<Self> {
        Ok((c.str()?, c.value()?))
    }
}

impl Item<'_> for f64 {
    fn read(c: &mut Cursor<'_>) -> Read<Self> {
        c.f64()
    }
}

impl Item<'_> for u64 {
    fn read(c: &mut Cursor<'_>) -> Read<Self> {
        c.u64()
    }
}

impl<'a> Item<'a> for SpanEvent<'a> {
    fn read(c: &mut Cursor<'a>) -> Read<Self> {
        Ok(SpanEvent {
            time_unix_nano: c.u64()?,
            name: c.str()?,
            attributes: c.list()?,
        })
    }
}

impl<'a> Item<'a> for SpanLink<'a> {
    fn read(c: &mut Cursor<'a>) -> Read<Self> {
        Ok(SpanLink {
            trace_id: c.trace_id()?.unwrap_or_default(),
            span_id: c.span_id()?.unwrap_or_default(),
            attributes: c.list()?,
        })
    }
}

impl<'a> Item<'a> for NumberPoint<'a> {
    fn read(c: &mut Cursor<'a>) -> Read<Self> {
        let start_time_unix_nano = c.u64()?;
        let time_unix_nano = c.u64()?;
        let at = *c;
        let value = match c.value()? {
            AnyValue::Int(i) => Number::Int(i),
            AnyValue::Double(d) => Number::Double(d),
            _ => return at.fail("a point's value that is not a number"),
        };
        Ok(NumberPoint {
            start_time_unix_nano,
            time_unix_nano,
            value,
            attributes: c.list()?,
        })
    }
}

impl<'a> Item<'a> for HistogramPoint<'a> {
    fn read(c: &mut Cursor<'a>) -> Read<Self> {
        let start_time_unix_nano = c.u64()?;
        let time_unix_nano = c.u64()?;
        let count = c.u64()?;
        let sum = c.f64()?;
        let has = c.code(4)?;
        let (min, max) = (c.f64()?, c.f64()?);
        Ok(HistogramPoint {
            start_time_unix_nano,
            time_unix_nano,
            count,
            sum,
            min: (has & 1 != 0).then_some(min),
            max: (has & 2 != 0).then_some(max),
            bounds: c.list()?,
            counts: c.list()?,
            attributes: c.list()?,
        })
    }
}

const SPAN_KINDS: [SpanKind; 5] = [
    SpanKind::Internal,
    SpanKind::Server,
    SpanKind::Client,
    SpanKind::Producer,
    SpanKind::Consumer,
];
const STATUS_CODES: [StatusCode; 3] = [StatusCode::Unset, StatusCode::Ok, StatusCode::Error];
const TEMPORALITIES: [Temporality; 2] = [Temporality::Delta, Temporality::Cumulative];

impl<'a> Cursor<'a> {
    fn event(&mut self) -> Read<Event<'a>> {
        let time_unix_nano = self.u64()?;
        let severity_number = self.u8()?;
        let trace_id = self.trace_id()?;
        let span_id = self.span_id()?;
        Ok(Event {
            time_unix_nano,
            severity_number,
            trace_id,
            span_id,
            name: self.str()?,
            severity_text: self.str()?,
            scope: self.scope()?,
            body: self.value()?,
            attributes: self.list()?,
        })
    }

    fn span(&mut self) -> Read<Span<'a>> {
        let trace_id = self.trace_id()?.unwrap_or_default();
        let span_id = self.span_id()?.unwrap_or_default();
        let parent_span_id = self.span_id()?;
        let kind = SPAN_KINDS[self.code(5)? as usize];
        let status = STATUS_CODES[self.code(3)? as usize];
        let start_time_unix_nano = self.u64()?;
        let end_time_unix_nano = self.u64()?;
        Ok(Span {
            trace_id,
            span_id,
            parent_span_id,
            kind,
            status,
            start_time_unix_nano,
            end_time_unix_nano,
            name: self.str()?,
            status_message: self.str()?,
            scope: self.scope()?,
            attributes: self.list()?,
            events: self.list()?,
            links: self.list()?,
        })
    }

    fn metric(&mut self) -> Read<Metric<'a>> {
        let data = self.code(3)?;
        let temporality = TEMPORALITIES[self.code(2)? as usize];
        let monotonic = self.code(2)? == 1;
        let name = self.str()?;
        let description = self.str()?;
        let unit = self.str()?;
        let scope = self.scope()?;
        let data = match data {
            0 => MetricData::Sum {
                points: self.list()?,
                temporality,
                monotonic,
            },
            1 => MetricData::Gauge {
                points: self.list()?,
            },
            _ => MetricData::Histogram {
                points: self.list()?,
                temporality,
            },
        };
        Ok(Metric {
            name,
            description,
            unit,
            scope,
            data,
        })
    }

    /// The resource record, which starts a batch.
    fn resource(&mut self) -> Read<Attributes<'a>> {
        let at = *self;
        if self.u8()? != kind::RESOURCE {
            return at.fail("a first record that is not the resource");
        }
        let size = self.u32()?;
        self.sub(size)?.list()
    }

    /// The next record; none for one of a kind this SDK does not know.
    fn record(&mut self) -> Read<Option<Record<'a>>> {
        let at = *self;
        let kind = self.u8()?;
        let size = self.u32()?;
        let mut body = self.sub(size)?;
        Ok(Some(match kind {
            kind::EVENT => Record::Event(body.event()?),
            kind::SPAN => Record::Span(body.span()?),
            kind::METRIC => Record::Metric(body.metric()?),
            kind::RESOURCE => return at.fail("a second resource"),
            _ => return Ok(None),
        }))
    }
}

/// A record of a batch.
#[derive(Clone, Copy, Debug)]
pub enum Record<'a> {
    /// An event.
    Event(Event<'a>),
    /// A finished span.
    Span(Span<'a>),
    /// A metric's points.
    Metric(Metric<'a>),
}

/// A batch, checked: the resource that produced it and its records, in the order they were
/// recorded.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    bytes: &'a [u8],
    resource: Attributes<'a>,
    records: Cursor<'a>,
    len: usize,
}

impl<'a> Batch<'a> {
    /// Checks `bytes` as a batch (every size, code and string, and lists nested at most
    /// [`MAX_DEPTH`] deep), once.
    pub fn new(bytes: &'a [u8]) -> Result<Batch<'a>, LayoutError> {
        let mut c = Cursor {
            bytes,
            offset: 0,
            checked: true,
            depth: 0,
        };
        let resource = c.resource()?;
        let records = c;
        let mut len = 0;
        while !c.bytes.is_empty() {
            if c.record()?.is_some() {
                len += 1;
            }
        }
        let unchecked = |c: Cursor<'a>| Cursor {
            checked: false,
            ..c
        };
        Ok(Batch {
            bytes,
            resource: List {
                items: unchecked(resource.items),
                ..resource
            },
            records: unchecked(records),
            len,
        })
    }

    /// The batch as it crossed, in the batch layout (to tell a batch sent again from another,
    /// say).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The attributes of the resource (the process) that produced it.
    pub fn resource(&self) -> Attributes<'a> {
        self.resource
    }

    /// How many records it holds (of the kinds this SDK knows).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its records, in the order they were recorded.
    pub fn records(&self) -> Records<'a> {
        Records {
            records: self.records,
            left: self.len,
        }
    }

    /// Its events, in order.
    pub fn events(&self) -> impl Iterator<Item = Event<'a>> + 'a {
        self.records().filter_map(|r| match r {
            Record::Event(e) => Some(e),
            _ => None,
        })
    }

    /// Its spans, in order.
    pub fn spans(&self) -> impl Iterator<Item = Span<'a>> + 'a {
        self.records().filter_map(|r| match r {
            Record::Span(s) => Some(s),
            _ => None,
        })
    }

    /// Its metrics, in order.
    pub fn metrics(&self) -> impl Iterator<Item = Metric<'a>> + 'a {
        self.records().filter_map(|r| match r {
            Record::Metric(m) => Some(m),
            _ => None,
        })
    }
}

/// The records of a [`Batch`], in order.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    records: Cursor<'a>,
    left: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;
    fn next(&mut self) -> Option<Record<'a>> {
        while self.left > 0 {
            // Checked when the batch was made: a read cannot fail.
            if let Some(record) = self.records.record().ok()? {
                self.left -= 1;
                return Some(record);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Records<'_> {}

/// Owned copies of the views, as records of [`crate::model`]: for tests, and for exporters that
/// keep what they are given.
impl<'a> Record<'a> {
    /// The record, owned.
    pub fn to_model(&self) -> model::Record {
        match self {
            Record::Event(e) => model::Record::Event(model::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.to_owned().into(),
                severity_number: e.severity_number,
                severity_text: e.severity_text.to_owned().into(),
                body: e.body.to_model(),
                attributes: attributes(e.attributes),
                trace_id: e.trace_id,
                span_id: e.span_id,
                scope: e.scope.to_model(),
            }),
            Record::Span(s) => model::Record::Span(model::Span {
                trace_id: s.trace_id,
                span_id: s.span_id,
                parent_span_id: s.parent_span_id,
                name: s.name.to_owned(),
                kind: s.kind,
                start_time_unix_nano: s.start_time_unix_nano,
                end_time_unix_nano: s.end_time_unix_nano,
                attributes: attributes(s.attributes),
                events: s
                    .events
                    .iter()
                    .map(|e| model::SpanEvent {
                        time_unix_nano: e.time_unix_nano,
                        name: e.name.to_owned(),
                        attributes: attributes(e.attributes),
                    })
                    .collect(),
                links: s
                    .links
                    .iter()
                    .map(|l| model::SpanLink {
                        trace_id: l.trace_id,
                        span_id: l.span_id,
                        attributes: attributes(l.attributes),
                    })
                    .collect(),
                status: s.status,
                status_message: s.status_message.to_owned(),
                scope: s.scope.to_model(),
            }),
            Record::Metric(m) => {
                let numbers = |points: List<'a, NumberPoint<'a>>| {
                    points
                        .iter()
                        .map(|p| model::NumberPoint {
                            attributes: attributes(p.attributes),
                            start_time_unix_nano: p.start_time_unix_nano,
                            time_unix_nano: p.time_unix_nano,
                            value: p.value,
                        })
                        .collect()
                };
                let data = match m.data {
                    MetricData::Sum {
                        points,
                        temporality,
                        monotonic,
                    } => model::MetricData::Sum {
                        points: numbers(points),
                        temporality,
                        monotonic,
                    },
                    MetricData::Gauge { points } => model::MetricData::Gauge {
                        points: numbers(points),
                    },
                    MetricData::Histogram {
                        points,
                        temporality,
                    } => model::MetricData::Histogram {
                        points: points
                            .iter()
                            .map(|p| model::HistogramPoint {
                                attributes: attributes(p.attributes),
                                start_time_unix_nano: p.start_time_unix_nano,
                                time_unix_nano: p.time_unix_nano,
                                count: p.count,
                                sum: p.sum,
                                min: p.min,
                                max: p.max,
                                bounds: p.bounds.iter().collect(),
                                counts: p.counts.iter().collect(),
                            })
                            .collect(),
                        temporality,
                    },
                };
                model::Record::Metric(model::Metric {
                    name: m.name.to_owned(),
                    description: m.description.to_owned(),
                    unit: m.unit.to_owned(),
                    scope: m.scope.to_model(),
                    data,
                })
            }
        }
    }
}

impl AnyValue<'_> {
    /// The value, owned.
    pub fn to_model(&self) -> model::Value {
        match *self {
            AnyValue::Empty => model::Value::Empty,
            AnyValue::Str(s) => model::Value::String(s.to_owned().into()),
            AnyValue::Bool(b) => model::Value::Bool(b),
            AnyValue::Int(i) => model::Value::Int(i),
            AnyValue::Double(d) => model::Value::Double(d),
            AnyValue::Bytes(b) => model::Value::Bytes(b.to_vec()),
            AnyValue::Array(items) => {
                model::Value::Array(items.iter().map(|v| v.to_model()).collect())
            }
            AnyValue::Map(entries) => model::Value::Map(attributes(entries)),
        }
    }
}

impl Scope<'_> {
    fn to_model(self) -> model::Scope {
        model::Scope {
            name: self.name.to_owned(),
            version: self.version.to_owned(),
        }
    }
}

fn attributes(attributes: Attributes<'_>) -> Vec<model::KeyValue> {
    attributes.to_model()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;
    use crate::model::{KeyValue, Value};

    fn records() -> (Vec<KeyValue>, Vec<model::Record>) {
        let attrs = vec![
            KeyValue::new("s", "text ünïcode"),
            KeyValue::new("b", true),
            KeyValue::new("i", -7i64),
            KeyValue::new("d", f64::NAN.copysign(-1.0)),
            KeyValue::new("x", vec![0u8, 255]),
            KeyValue::new(
                "a",
                Value::Array(vec![
                    Value::Empty,
                    Value::Map(vec![KeyValue::new("k", 1i64)]),
                ]),
            ),
        ];
        let event = model::Event::new("codex.tool_result")
            .at(1_700_000_000_123_456_789)
            .body("a body")
            .attr("tool", "shell");
        let event = model::Event {
            attributes: attrs.clone(),
            trace_id: Some(u128::MAX - 1),
            span_id: Some(42),
            scope: model::Scope {
                name: "codex".into(),
                version: "1.2".into(),
            },
            ..event
        };
        let span = model::Span {
            trace_id: 1 << 100,
            span_id: 7,
            parent_span_id: None,
            name: "turn".into(),
            kind: SpanKind::Client,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes: attrs.clone(),
            events: vec![model::SpanEvent {
                time_unix_nano: 15,
                name: "retry".into(),
                attributes: attrs.clone(),
            }],
            links: vec![model::SpanLink {
                trace_id: 3,
                span_id: 4,
                attributes: vec![],
            }],
            status: StatusCode::Error,
            status_message: "failed".into(),
            scope: model::Scope::default(),
        };
        let sum = model::Metric {
            name: "codex.tool.call".into(),
            description: "calls".into(),
            unit: "1".into(),
            scope: model::Scope::default(),
            data: model::MetricData::Sum {
                points: vec![model::NumberPoint {
                    attributes: attrs.clone(),
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    value: Number::Int(5),
                }],
                temporality: Temporality::Cumulative,
                monotonic: true,
            },
        };
        let histogram = model::Metric {
            data: model::MetricData::Histogram {
                points: vec![model::HistogramPoint {
                    attributes: vec![],
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    count: 3,
                    sum: 4.5,
                    min: None,
                    max: Some(2.0),
                    bounds: vec![1.0, 10.0],
                    counts: vec![1, 1, 1],
                }],
                temporality: Temporality::Delta,
            },
            ..sum.clone()
        };
        let gauge = model::Metric {
            data: model::MetricData::Gauge {
                points: vec![model::NumberPoint {
                    attributes: vec![],
                    start_time_unix_nano: 0,
                    time_unix_nano: 2,
                    value: Number::Double(0.25),
                }],
            },
            ..sum.clone()
        };
        let records = [
            model::Record::Event(event),
            model::Record::Span(span),
            model::Record::Metric(sum),
            model::Record::Metric(histogram),
            model::Record::Metric(gauge),
        ];
        (attrs, records.to_vec())
    }

    /// Records compared through their debug text, where NaN equals NaN.
    fn text(records: &[model::Record]) -> String {
        format!("{records:?}")
    }

    #[test]
    fn every_record_reads_back_as_it_was_laid_out() {
        let (resource, records) = records();
        let bytes = encode::batch(&resource, &records);
        let batch = Batch::new(&bytes).expect("a batch");
        assert_eq!(batch.len(), records.len());
        assert_eq!(
            format!("{:?}", attributes(batch.resource())),
            format!("{resource:?}")
        );
        let back: Vec<_> = batch.records().map(|r| r.to_model()).collect();
        assert_eq!(text(&back), text(&records));
        assert_eq!(batch.events().count(), 1);
        assert_eq!(batch.spans().count(), 1);
        assert_eq!(batch.metrics().count(), 3);
    }

    #[test]
    fn the_example_of_the_wit_documentation_is_what_the_encoder_writes() {
        let wit = include_str!("../../wit/exporter.wit");
        let example = wit
            .split_once("in hex:")
            .and_then(|(_, rest)| rest.split("```").nth(1))
            .expect("the example in wit/exporter.wit");
        let mut documented = Vec::new();
        for line in example.lines() {
            let words = line.trim_start_matches("///").split_whitespace();
            for word in words.take_while(|w| w.bytes().all(|b| b.is_ascii_hexdigit())) {
                for pair in word.as_bytes().chunks(2) {
                    let pair = std::str::from_utf8(pair).expect("ASCII");
                    documented.push(u8::from_str_radix(pair, 16).expect("hex"));
                }
            }
        }
        let event = model::Event {
            time_unix_nano: 1,
            name: "e".into(),
            attributes: vec![KeyValue::new("k", 2i64)],
            ..model::Event::default()
        };
        let laid_out = encode::batch(&[], &[model::Record::Event(event)]);
        assert_eq!(laid_out, documented);
    }

    #[test]
    fn records_of_unknown_kinds_and_fields_added_at_the_end_are_passed_over() {
        let (resource, records) = records();
        let mut bytes = encode::batch(&resource, &records[..1]);
        // A record of a kind from a later version, then the event with a field added at the end.
        bytes.extend_from_slice(&[9, 3, 0, 0, 0, 1, 2, 3]);
        let event = encode::batch(&[], &records[..1]);
        let empty = encode::batch(&[], &[]).len();
        let mut later = event[empty..].to_vec();
        let size = u32::from_le_bytes(later[1..5].try_into().unwrap()) + 2;
        later[1..5].copy_from_slice(&size.to_le_bytes());
        later.extend_from_slice(&[0xAA, 0xBB]);
        bytes.extend_from_slice(&later);
        let batch = Batch::new(&bytes).expect("a batch");
        let back: Vec<_> = batch.records().map(|r| r.to_model()).collect();
        assert_eq!(text(&back), text(&[records[0].clone(), records[0].clone()]));
    }

    #[test]
    fn values_nested_past_the_limit_are_laid_out_empty_and_refused_when_read() {
        let mut deep = Value::Int(1);
        for _ in 0..40 {
            deep = Value::Array(vec![deep]);
        }
        let bytes = encode::batch(&[KeyValue::new("deep", deep)], &[]);
        let batch = Batch::new(&bytes).expect("laid out within the limit");
        let mut value = batch.resource().get("deep").expect("the attribute");
        let mut depth = 1; // the resource's attributes
        while let AnyValue::Array(items) = value {
            depth += 1;
            value = items.iter().next().expect("one element");
        }
        assert_eq!((depth, value.to_model()), (MAX_DEPTH, Value::Empty));
        // By hand, a resource whose one attribute nests `arrays` arrays.
        let batch = |arrays: usize| {
            let mut value = vec![tag::INT, 1, 0, 0, 0, 0, 0, 0, 0];
            for _ in 0..arrays {
                let mut array = vec![tag::ARRAY];
                array.extend_from_slice(&(value.len() as u32).to_le_bytes());
                array.extend_from_slice(&1u32.to_le_bytes());
                array.extend_from_slice(&value);
                value = array;
            }
            let mut kv = vec![1, 0, 0, 0, b'a'];
            kv.extend_from_slice(&value);
            let mut body = (kv.len() as u32).to_le_bytes().to_vec();
            body.extend_from_slice(&1u32.to_le_bytes());
            body.extend_from_slice(&kv);
            let mut bytes = vec![kind::RESOURCE];
            bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&body);
            bytes
        };
        let limit = usize::from(MAX_DEPTH) - 1;
        assert!(Batch::new(&batch(limit)).is_ok());
        let refused = Batch::new(&batch(limit + 1)).map(|_| ()).unwrap_err();
        assert_eq!(refused.reason, "lists nested deeper than MAX_DEPTH");
    }

    #[test]
    fn text_is_checked_as_utf8_at_every_length_and_place() {
        for len in 0..20 {
            let ascii = "a".repeat(len);
            assert_eq!(utf8(ascii.as_bytes()), Some(ascii.as_str()));
            for at in 0..len {
                let mut bad = ascii.clone().into_bytes();
                bad[at] = 0xff;
                assert_eq!(utf8(&bad), None, "0xff at {at} of {len}");
                let good = format!("{}é{}", &ascii[..at], &ascii[at..]);
                assert_eq!(utf8(good.as_bytes()), Some(good.as_str()));
            }
        }
    }

    #[test]
    fn attributes_laid_out_as_an_event_is_built_read_as_its_attributes() {
        struct Panics;
        impl encode::AttrValue for Panics {
            fn into_value(self) -> Value {
                panic!("a value that cannot be made")
            }
        }
        let mut attributes = encode::EventAttributes::in_buffer(Vec::new());
        attributes.add("s", "text");
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            attributes.add("lost", Panics);
        }));
        assert!(failed.is_err());
        attributes.add("i", 7u64);
        attributes.add("v", Value::Array(vec![Value::Bool(true)]));
        let event = model::Event::new("e").attr("own", 1i64);
        let mut laid = Vec::new();
        encode::resource_into(&mut laid, &[]);
        attributes.event_into(&mut laid, &event);
        let batch = Batch::new(&laid).expect("a batch");
        let expected = event
            .clone()
            .attr("s", "text")
            .attr("i", 7i64)
            .attr("v", Value::Array(vec![Value::Bool(true)]));
        let back: Vec<_> = batch.records().map(|r| r.to_model()).collect();
        assert_eq!(text(&back), text(&[model::Record::Event(expected.clone())]));
        assert_eq!(laid, encode::batch(&[], &[model::Record::Event(expected)]));
    }

    #[test]
    fn damaged_bytes_are_refused_or_read_without_panicking() {
        let (resource, records) = records();
        let bytes = encode::batch(&resource, &records);
        let read_all = |b: &[u8]| {
            if let Ok(batch) = Batch::new(b) {
                for r in batch.records() {
                    let _ = r.to_model();
                }
                true
            } else {
                false
            }
        };
        let mut accepted = 0;
        for cut in 0..bytes.len() {
            accepted += usize::from(read_all(&bytes[..cut]));
        }
        // Only the cuts at the end of a record are batches: the resource, then each record.
        assert_eq!(accepted, records.len());
        for at in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xFF] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                read_all(&damaged);
            }
        }
        assert_eq!(
            Batch::new(&[1, 0, 0, 0, 0]).map(|_| ()),
            Err(LayoutError {
                offset: 0,
                reason: "a first record that is not the resource"
            })
        );
    }
}
