//! Metric aggregation where measurements are recorded, as OpenTelemetry's SDK does it: every
//! instrument keeps one point per attribute set in the telemetry's [`Store`], and a measurement
//! is folded into its point by the record call itself. No measurement waits in a queue, so none is
//! dropped for want of room, and once an attribute set has been seen, recording allocates
//! nothing. Each exporter's worker collects the points with its own [`Reader`] at its export
//! interval, with its own temporality: delta (what changed since that reader last collected) or
//! cumulative (everything since the instrument's first measurement).

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use indexmap::{Equivalent, IndexMap};
use rustc_hash::FxHasher;
use wasmtel_sdk::model::{
    HistogramPoint, KeyValue, Metric, MetricData, Number, NumberPoint, Scope, Temporality, Value,
};

/// The default bucket bounds of histograms (OpenTelemetry's).
pub const DEFAULT_BOUNDS: &[f64] = &[
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// How many attribute sets an instrument keeps apart (OpenTelemetry's default). Measurements
/// with any further set are folded into one overflow point, whose only attribute is
/// [`OVERFLOW_KEY`]` = true`.
pub const MAX_SETS: usize = 2000;

/// The attribute of the overflow point.
pub const OVERFLOW_KEY: &str = "otel.metric.overflow";

/// What kind of instrument a measurement comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum InstrumentKind {
    /// Monotonic sum.
    Counter,
    /// Non-monotonic sum.
    UpDownCounter,
    /// Last value.
    Gauge,
    /// Explicit-bucket histogram with these upper bounds.
    Histogram(Vec<f64>),
}

/// An instrument's identity.
#[derive(Clone, Debug, PartialEq)]
pub struct Instrument {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub kind: InstrumentKind,
}

impl Instrument {
    /// A histogram's bucket bounds; none for other kinds.
    fn bounds(&self) -> &[f64] {
        match &self.kind {
            InstrumentKind::Histogram(bounds) => bounds,
            _ => &[],
        }
    }
}

/// One measurement, as the record call folds it in.
#[derive(Clone, Copy, Debug)]
pub enum Measure {
    /// Adds to a sum.
    Add(i64),
    /// Sets a gauge, or a sum observed whole (wasmtel's own counters).
    Set(Number),
    /// A histogram's sample.
    Sample(f64),
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every instrument's points, for one telemetry.
pub(crate) struct Store {
    /// How many readers collect from the store; with none, measurements are not kept.
    readers: usize,
    /// Every instrument, in the order of its first use.
    streams: RwLock<Vec<Arc<Stream>>>,
    /// Set at shutdown: later measurements are not collected.
    closed: AtomicBool,
    /// The callbacks of observable instruments, called at every collection.
    callbacks: RwLock<Vec<Arc<Callback>>>,
}

/// An observable instrument's callback, with the stream it observes into.
struct Callback {
    stream: Arc<Stream>,
    observe: Box<dyn Fn(&Observer<'_>) + Send + Sync>,
    /// Whether a panic in it was warned about.
    warned: AtomicBool,
}

/// What an observable gauge's callback observes through: each call sets the gauge's point for
/// its attributes (see [`crate::Gauge::with_callback`]).
pub struct Observer<'a> {
    stream: &'a Stream,
}

impl Observer<'_> {
    /// Sets the gauge's point for `attributes` to `value`.
    pub fn observe(&self, value: f64, attributes: &[KeyValue]) {
        self.stream
            .measure(Measure::Set(Number::Double(value)), attributes);
    }

    /// Sets the gauge's point for `attributes` to the integer `value`.
    pub fn observe_int(&self, value: i64, attributes: &[KeyValue]) {
        self.stream
            .measure(Measure::Set(Number::Int(value)), attributes);
    }
}

impl Store {
    /// A store for `readers` readers, slots `0..readers`.
    pub fn new(readers: usize) -> Arc<Store> {
        Arc::new(Store {
            readers,
            streams: RwLock::default(),
            closed: AtomicBool::new(false),
            callbacks: RwLock::default(),
        })
    }

    /// Registers `observe`, to be called into `stream` at every collection until shutdown.
    pub fn add_callback(
        &self,
        stream: Arc<Stream>,
        observe: Box<dyn Fn(&Observer<'_>) + Send + Sync>,
    ) {
        write(&self.callbacks).push(Arc::new(Callback {
            stream,
            observe,
            warned: AtomicBool::new(false),
        }));
    }

    /// Forgets every callback (at shutdown), and what they hold.
    pub fn clear_callbacks(&self) {
        write(&self.callbacks).clear();
    }

    /// Calls every observable instrument's callback. A callback that panics is warned about
    /// once and called again next time; the others run.
    fn call_back(&self) {
        let callbacks: Vec<Arc<Callback>> = read(&self.callbacks).clone();
        for callback in callbacks {
            let observer = Observer {
                stream: &callback.stream,
            };
            let call = std::panic::AssertUnwindSafe(|| (callback.observe)(&observer));
            if std::panic::catch_unwind(call).is_err()
                && !callback.warned.swap(true, Ordering::Relaxed)
            {
                tracing::warn!(
                    metric = %callback.stream.instrument.name,
                    "the callback of an observable gauge panicked; its observations are missing"
                );
            }
        }
    }

    /// Whether the store was closed: measurements are no longer collected.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Whether nothing collects measurements (and so nothing is lost by not keeping them).
    pub fn has_readers(&self) -> bool {
        self.readers > 0
    }

    /// Stops keeping measurements.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// The stream of `instrument` in `scope`, made at its first use. Another instrument of the
    /// same name and scope but another kind or unit gets none (warned about once).
    pub fn stream(&self, instrument: &Instrument, scope: &Scope) -> Option<Arc<Stream>> {
        let find = |streams: &[Arc<Stream>]| {
            streams
                .iter()
                .find(|s| s.instrument.name == instrument.name && s.scope == *scope)
                .cloned()
        };
        let existing = find(&read(&self.streams));
        let stream = match existing {
            Some(stream) => stream,
            None => {
                let mut streams = write(&self.streams);
                match find(&streams) {
                    Some(stream) => stream,
                    None => {
                        let stream = Arc::new(Stream::new(instrument, scope, self.readers));
                        streams.push(stream.clone());
                        return Some(stream);
                    }
                }
            }
        };
        let first = &stream.instrument;
        if first.kind == instrument.kind && first.unit == instrument.unit {
            return Some(stream);
        }
        if !stream.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                metric = %instrument.name,
                "measurements of a {:?} in `{}` are dropped: the instrument was first used as a \
                 {:?} in `{}`",
                instrument.kind,
                instrument.unit,
                first.kind,
                first.unit
            );
        }
        None
    }

    /// Sets every point of `metric` (a sum or a gauge) as observed now: how wasmtel's own
    /// counters, kept elsewhere, enter the store.
    pub fn observe(&self, metric: &Metric) {
        let (kind, points) = match &metric.data {
            MetricData::Sum {
                points, monotonic, ..
            } => (
                if *monotonic {
                    InstrumentKind::Counter
                } else {
                    InstrumentKind::UpDownCounter
                },
                points,
            ),
            MetricData::Gauge { points } => (InstrumentKind::Gauge, points),
            MetricData::Histogram { .. } => return,
        };
        let instrument = Instrument {
            name: metric.name.clone(),
            description: metric.description.clone(),
            unit: metric.unit.clone(),
            kind,
        };
        if let Some(stream) = self.stream(&instrument, &metric.scope) {
            for point in points {
                stream.measure(Measure::Set(point.value), &point.attributes);
            }
        }
    }

    /// How many measurements went to an overflow point, by instrument name.
    pub fn overflows(&self) -> Vec<(String, u64)> {
        read(&self.streams)
            .iter()
            .map(|s| {
                (
                    s.instrument.name.clone(),
                    s.overflowed.load(Ordering::Relaxed),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// One instrument's points.
pub(crate) struct Stream {
    instrument: Instrument,
    scope: Scope,
    /// The first use, where a cumulative point starts.
    start_unix_nano: u64,
    readers: usize,
    points: RwLock<IndexMap<AttributeSet, Point, BuildHasherDefault<FxHasher>>>,
    /// Measurements folded into the overflow point.
    overflowed: AtomicU64,
    /// Where the overflow point is among the points, once there is one.
    overflow_at: std::sync::OnceLock<usize>,
    /// Whether a clash with another instrument of the same name was warned about.
    warned: AtomicBool,
}

impl Stream {
    fn new(instrument: &Instrument, scope: &Scope, readers: usize) -> Stream {
        Stream {
            instrument: instrument.clone(),
            scope: scope.clone(),
            start_unix_nano: crate::clock::now_unix_nano(),
            readers,
            points: RwLock::default(),
            overflowed: AtomicU64::new(0),
            overflow_at: std::sync::OnceLock::new(),
            warned: AtomicBool::new(false),
        }
    }

    /// Folds `measure` into the point of `attributes`.
    pub fn measure(&self, measure: Measure, attributes: &[KeyValue]) {
        let lookup = Lookup::new(attributes);
        {
            let points = read(&self.points);
            if let Some(point) = points.get(&lookup) {
                return point.fold(measure, self.instrument.bounds());
            }
            if let Some(&at) = self.overflow_at.get()
                && let Some((_, point)) = points.get_index(at)
            {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
                return point.fold(measure, self.instrument.bounds());
            }
        }
        let mut points = write(&self.points);
        let mut set = AttributeSet::new(attributes);
        let full = points.len() >= MAX_SETS && !points.contains_key(&set);
        if full {
            if self.overflowed.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    metric = %self.instrument.name,
                    "more than {MAX_SETS} attribute sets: further sets are counted together, \
                     as {OVERFLOW_KEY} = true"
                );
            }
            set = AttributeSet::new(&[overflow()]);
        }
        let (kind, readers) = (&self.instrument.kind, self.readers);
        let entry = points.entry(set);
        let at = entry.index();
        entry
            .or_insert_with(|| Point::new(kind, measure, readers))
            .fold(measure, self.instrument.bounds());
        if full {
            let _ = self.overflow_at.set(at);
        }
    }
}

fn overflow() -> KeyValue {
    KeyValue::new(OVERFLOW_KEY, true)
}

/// An attribute set as the identity of a point: the same keys with the same values, in any
/// order, are one set. A key given twice keeps its last value. Doubles are compared (and hashed)
/// by their bits, so NaN is one value.
#[derive(Clone, Debug)]
struct AttributeSet {
    /// In the order first recorded: what the point is exported with.
    attributes: Vec<KeyValue>,
    hash: u64,
}

impl AttributeSet {
    fn new(attributes: &[KeyValue]) -> Self {
        let mut unique: Vec<KeyValue> = Vec::with_capacity(attributes.len());
        for kv in attributes {
            match unique.iter_mut().find(|u| u.key == kv.key) {
                Some(u) => u.value = kv.value.clone(),
                None => unique.push(kv.clone()),
            }
        }
        let hash = set_hash(&unique);
        AttributeSet {
            attributes: unique,
            hash,
        }
    }
}

impl PartialEq for AttributeSet {
    fn eq(&self, other: &Self) -> bool {
        Lookup::new(&self.attributes).equivalent(other)
    }
}

impl Eq for AttributeSet {}

impl Hash for AttributeSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Attributes as given to a record call, looked up as an [`AttributeSet`] without making one.
struct Lookup<'a> {
    attributes: &'a [KeyValue],
    hash: u64,
}

impl<'a> Lookup<'a> {
    fn new(attributes: &'a [KeyValue]) -> Self {
        Lookup {
            attributes,
            hash: set_hash(attributes),
        }
    }
}

impl Hash for Lookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Equivalent<AttributeSet> for Lookup<'_> {
    /// The same attributes in any order. A set's keys are unique, so with as many attributes
    /// as the set, each in the set and each of the set's among them, these are the set's. Most
    /// call sites give their attributes in one order, which is tried first.
    fn equivalent(&self, set: &AttributeSet) -> bool {
        let (given, kept) = (self.attributes, &set.attributes);
        given.len() == kept.len()
            && (given.iter().zip(kept).all(|(a, b)| same(a, b))
                || given.iter().all(|a| kept.iter().any(|b| same(a, b)))
                    && kept.iter().all(|b| given.iter().any(|a| same(a, b))))
    }
}

fn same(a: &KeyValue, b: &KeyValue) -> bool {
    same_str(&a.key, &b.key) && same_value(&a.value, &b.value)
}

/// Whether two strings are equal; at once when both are the same literal.
fn same_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

/// A hash of `attributes` that does not depend on their order.
fn set_hash(attributes: &[KeyValue]) -> u64 {
    attributes.iter().fold(attributes.len() as u64, |sum, kv| {
        let mut state = FxHasher::default();
        kv.key.hash(&mut state);
        hash_value(&kv.value, &mut state);
        sum.wrapping_add(state.finish())
    })
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        (Value::String(x), Value::String(y)) => same_str(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

fn hash_value<H: Hasher>(value: &Value, state: &mut H) {
    std::mem::discriminant(value).hash(state);
    match value {
        Value::Empty => {}
        Value::String(s) => s.hash(state),
        Value::Bool(b) => b.hash(state),
        Value::Int(i) => i.hash(state),
        Value::Double(d) => d.to_bits().hash(state),
        Value::Bytes(b) => b.hash(state),
        Value::Array(items) => {
            state.write_usize(items.len());
            items.iter().for_each(|v| hash_value(v, state));
        }
        Value::Map(entries) => {
            state.write_usize(entries.len());
            for kv in entries {
                kv.key.hash(state);
                hash_value(&kv.value, state);
            }
        }
    }
}

/// One attribute set's aggregate.
struct Point {
    /// Raised by every measurement, after it is folded in: a reader tells by it what changed.
    version: AtomicU64,
    cell: Cell,
}

enum Cell {
    /// A sum of integers.
    Int(AtomicI64),
    /// A gauge's last value, or a sum observed whole.
    Value(Mutex<Number>),
    Histogram(Mutex<Histogram>),
}

struct Histogram {
    count: u64,
    sum: f64,
    counts: Vec<u64>,
    /// The least and greatest sample since each reader last took them, by reader slot.
    extremes: Vec<(f64, f64)>,
}

const NO_EXTREMES: (f64, f64) = (f64::INFINITY, f64::NEG_INFINITY);

fn add(a: Number, b: Number) -> Number {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => Number::Int(x.saturating_add(y)),
        _ => Number::Double(a.as_f64() + b.as_f64()),
    }
}

fn sub(a: Number, b: Number) -> Number {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => Number::Int(x.saturating_sub(y)),
        _ => Number::Double(a.as_f64() - b.as_f64()),
    }
}

impl Point {
    /// A point of `kind` for `readers` readers, whose first measurement is `first`.
    fn new(kind: &InstrumentKind, first: Measure, readers: usize) -> Point {
        let cell = match (kind, first) {
            (InstrumentKind::Histogram(bounds), _) => Cell::Histogram(Mutex::new(Histogram {
                count: 0,
                sum: 0.0,
                counts: vec![0; bounds.len() + 1],
                extremes: vec![NO_EXTREMES; readers],
            })),
            (InstrumentKind::Counter | InstrumentKind::UpDownCounter, Measure::Add(_))
            | (_, Measure::Set(Number::Int(_))) => Cell::Int(AtomicI64::new(0)),
            _ => Cell::Value(Mutex::new(Number::Int(0))),
        };
        Point {
            version: AtomicU64::new(0),
            cell,
        }
    }

    fn fold(&self, measure: Measure, bounds: &[f64]) {
        match (&self.cell, measure) {
            (Cell::Int(total), Measure::Add(n)) => {
                total.fetch_add(n, Ordering::Relaxed);
            }
            (Cell::Int(total), Measure::Set(n)) => {
                let n = match n {
                    Number::Int(i) => i,
                    Number::Double(d) => d as i64,
                };
                total.store(n, Ordering::Relaxed);
            }
            (Cell::Value(value), Measure::Add(n)) => {
                let mut value = lock(value);
                *value = add(*value, Number::Int(n));
            }
            (Cell::Value(value), Measure::Set(n)) => *lock(value) = n,
            (Cell::Histogram(h), Measure::Sample(v)) => {
                let mut h = lock(h);
                // Buckets are (previous bound, bound]; the last is above every bound.
                let bucket = bounds.partition_point(|b| *b < v);
                h.counts[bucket] += 1;
                h.count += 1;
                h.sum += v;
                for (min, max) in &mut h.extremes {
                    *min = min.min(v);
                    *max = max.max(v);
                }
            }
            // A measurement of another kind than its instrument's: the handles make none.
            _ => return,
        }
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// One exporter's view of the store: what it collected last, to report deltas from.
pub(crate) struct Reader {
    store: Arc<Store>,
    /// Which of each histogram's extremes are this reader's.
    slot: usize,
    temporality: Temporality,
    /// By stream, in the store's order.
    seen: Vec<Seen>,
}

/// What a reader collected of one stream.
#[derive(Default)]
struct Seen {
    /// Where the next delta interval starts.
    start: u64,
    /// By point, in the stream's order.
    points: Vec<Last>,
}

/// What a reader collected of one point: its version and cumulative values then.
#[derive(Default)]
struct Last {
    version: u64,
    value: Option<Number>,
    count: u64,
    sum: f64,
    counts: Vec<u64>,
}

impl Reader {
    /// The reader of slot `slot` of `store`.
    pub fn new(store: Arc<Store>, slot: usize, temporality: Temporality) -> Reader {
        Reader {
            store,
            slot,
            temporality,
            seen: Vec::new(),
        }
    }

    /// Whether anything was measured since the last collection (never, with observable
    /// instruments, which observe at every collection).
    pub fn is_idle(&self) -> bool {
        if !read(&self.store.callbacks).is_empty() {
            return false;
        }
        let streams = read(&self.store.streams);
        streams.iter().enumerate().all(|(i, stream)| {
            let seen = self.seen.get(i);
            let points = read(&stream.points);
            points.values().enumerate().all(|(j, point)| {
                let last = seen.and_then(|s| s.points.get(j)).map_or(0, |l| l.version);
                point.version.load(Ordering::Acquire) == last
            })
        })
    }

    /// The metrics measured in the interval ending `now` (delta: only points that changed in
    /// it), or since each instrument's first use (cumulative: every point).
    pub fn collect(&mut self, now: u64) -> Vec<Metric> {
        self.store.call_back();
        let delta = self.temporality == Temporality::Delta;
        let streams: Vec<Arc<Stream>> = read(&self.store.streams).clone();
        let mut metrics = Vec::new();
        for (i, stream) in streams.iter().enumerate() {
            if self.seen.len() <= i {
                self.seen.push(Seen {
                    start: stream.start_unix_nano,
                    points: Vec::new(),
                });
            }
            let seen = &mut self.seen[i];
            let start = if delta {
                seen.start
            } else {
                stream.start_unix_nano
            };
            let (mut numbers, mut histograms) = (Vec::new(), Vec::new());
            let points = read(&stream.points);
            seen.points.resize_with(points.len(), Last::default);
            for ((set, point), last) in points.iter().zip(&mut seen.points) {
                let version = point.version.load(Ordering::Acquire);
                if delta && version == last.version {
                    continue;
                }
                last.version = version;
                let attributes = set.attributes.clone();
                let value = match &point.cell {
                    Cell::Int(total) => Number::Int(total.load(Ordering::Relaxed)),
                    Cell::Value(value) => *lock(value),
                    Cell::Histogram(h) => {
                        let mut h = lock(h);
                        let (min, max) = h.extremes[self.slot];
                        if delta {
                            h.extremes[self.slot] = NO_EXTREMES;
                        }
                        let (count, sum) = if delta {
                            (h.count - last.count, h.sum - last.sum)
                        } else {
                            (h.count, h.sum)
                        };
                        last.counts.resize(h.counts.len(), 0);
                        let counts = h
                            .counts
                            .iter()
                            .zip(&mut last.counts)
                            .map(|(now, then)| {
                                let n = if delta { now - *then } else { *now };
                                *then = *now;
                                n
                            })
                            .collect();
                        (last.count, last.sum) = (h.count, h.sum);
                        drop(h);
                        histograms.push(HistogramPoint {
                            attributes,
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            count,
                            sum,
                            min: (min <= max).then_some(min),
                            max: (min <= max).then_some(max),
                            bounds: stream.instrument.bounds().to_vec(),
                            counts,
                        });
                        continue;
                    }
                };
                numbers.push(NumberPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: now,
                    value: match stream.instrument.kind {
                        InstrumentKind::Gauge => value,
                        _ => since(last, value, delta),
                    },
                });
            }
            drop(points);
            if delta {
                seen.start = now;
            }
            let instrument = &stream.instrument;
            let data = match &instrument.kind {
                InstrumentKind::Counter | InstrumentKind::UpDownCounter if !numbers.is_empty() => {
                    MetricData::Sum {
                        points: numbers,
                        temporality: self.temporality,
                        monotonic: instrument.kind == InstrumentKind::Counter,
                    }
                }
                InstrumentKind::Gauge if !numbers.is_empty() => {
                    MetricData::Gauge { points: numbers }
                }
                InstrumentKind::Histogram(_) if !histograms.is_empty() => MetricData::Histogram {
                    points: histograms,
                    temporality: self.temporality,
                },
                _ => continue,
            };
            metrics.push(Metric {
                name: instrument.name.clone(),
                description: instrument.description.clone(),
                unit: instrument.unit.clone(),
                scope: stream.scope.clone(),
                data,
            });
        }
        metrics
    }
}

/// A sum's value to report, `total` now: what it grew by since `last` (delta) or all of it.
fn since(last: &mut Last, total: Number, delta: bool) -> Number {
    let before = last.value.replace(total).unwrap_or(Number::Int(0));
    if delta { sub(total, before) } else { total }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instrument(name: &str, kind: InstrumentKind) -> Instrument {
        Instrument {
            name: name.into(),
            description: String::new(),
            unit: String::new(),
            kind,
        }
    }

    fn stream(store: &Store, name: &str, kind: InstrumentKind) -> Arc<Stream> {
        store
            .stream(&instrument(name, kind), &Scope::default())
            .expect("a new instrument")
    }

    fn attrs(pairs: &[(&'static str, &'static str)]) -> Vec<KeyValue> {
        pairs.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect()
    }

    /// The points of a sum or gauge: attributes and value.
    fn numbers(metric: &Metric) -> Vec<(Vec<KeyValue>, Number)> {
        let (MetricData::Sum { points, .. } | MetricData::Gauge { points }) = &metric.data else {
            panic!("{metric:?}")
        };
        points
            .iter()
            .map(|p| (p.attributes.clone(), p.value))
            .collect()
    }

    #[test]
    fn a_delta_reader_reports_what_changed_since_it_last_collected() {
        let store = Store::new(1);
        let calls = stream(&store, "codex.tool.call", InstrumentKind::Counter);
        let mut reader = Reader::new(store.clone(), 0, Temporality::Delta);
        calls.measure(
            Measure::Add(1),
            &attrs(&[("tool", "shell"), ("success", "true")]),
        );
        calls.measure(
            Measure::Add(2),
            &attrs(&[("success", "true"), ("tool", "shell")]),
        );
        calls.measure(Measure::Add(5), &attrs(&[("tool", "apply_patch")]));
        assert!(!reader.is_idle());
        let metrics = reader.collect(100);
        let MetricData::Sum {
            points,
            monotonic,
            temporality,
        } = &metrics[0].data
        else {
            panic!("{metrics:?}")
        };
        assert!(*monotonic);
        assert_eq!(*temporality, Temporality::Delta);
        assert_eq!(
            numbers(&metrics[0]),
            [
                (
                    attrs(&[("tool", "shell"), ("success", "true")]),
                    Number::Int(3)
                ),
                (attrs(&[("tool", "apply_patch")]), Number::Int(5))
            ],
            "attribute order does not make a new point"
        );
        assert_eq!(points[0].start_time_unix_nano, calls.start_unix_nano);
        assert!(reader.is_idle());
        assert!(
            reader.collect(200).is_empty(),
            "nothing new, nothing exported"
        );
        calls.measure(Measure::Add(1), &attrs(&[("tool", "apply_patch")]));
        let metrics = reader.collect(300);
        let MetricData::Sum { points, .. } = &metrics[0].data else {
            panic!()
        };
        assert_eq!(
            (
                points.len(),
                points[0].value,
                points[0].start_time_unix_nano
            ),
            (1, Number::Int(1), 200)
        );
    }

    #[test]
    fn a_cumulative_histogram_keeps_counting_into_buckets() {
        let store = Store::new(2);
        let h = stream(
            &store,
            "codex.api_request.duration_ms",
            InstrumentKind::Histogram(vec![10.0, 100.0]),
        );
        let mut cumulative = Reader::new(store.clone(), 0, Temporality::Cumulative);
        let mut delta = Reader::new(store.clone(), 1, Temporality::Delta);
        for v in [5.0, 10.0, 50.0, 500.0] {
            h.measure(Measure::Sample(v), &[]);
        }
        cumulative.collect(2);
        delta.collect(2);
        h.measure(Measure::Sample(1.0), &[]);
        let point = |metrics: Vec<Metric>| {
            let MetricData::Histogram { points, .. } = &metrics[0].data else {
                panic!("{metrics:?}")
            };
            let p = &points[0];
            (p.counts.clone(), p.count, p.sum, p.min, p.max)
        };
        assert_eq!(
            point(cumulative.collect(4)),
            (vec![3, 1, 1], 5, 566.0, Some(1.0), Some(500.0)),
            "a value equal to a bound falls in that bound's bucket"
        );
        assert_eq!(
            point(delta.collect(4)),
            (vec![1, 0, 0], 1, 1.0, Some(1.0), Some(1.0)),
            "each reader has its own extremes"
        );
    }

    #[test]
    fn a_gauge_reports_its_last_value_and_observed_sums_are_set_whole() {
        let store = Store::new(1);
        let g = stream(&store, "codex.turn.memory", InstrumentKind::Gauge);
        let mut reader = Reader::new(store.clone(), 0, Temporality::Delta);
        g.measure(Measure::Set(Number::Double(3.0)), &[]);
        g.measure(Measure::Set(Number::Double(7.0)), &[]);
        let observed = |total: f64| Metric {
            name: "wasmtel.exporter.export.time".into(),
            description: String::new(),
            unit: "s".into(),
            scope: Scope::default(),
            data: MetricData::Sum {
                points: vec![NumberPoint {
                    attributes: vec![],
                    start_time_unix_nano: 0,
                    time_unix_nano: 0,
                    value: Number::Double(total),
                }],
                temporality: Temporality::Cumulative,
                monotonic: true,
            },
        };
        store.observe(&observed(1.5));
        let metrics = reader.collect(5);
        assert_eq!(numbers(&metrics[0]), [(vec![], Number::Double(7.0))]);
        assert_eq!(numbers(&metrics[1]), [(vec![], Number::Double(1.5))]);
        store.observe(&observed(2.0));
        let metrics = reader.collect(6);
        assert_eq!(metrics.len(), 1, "the gauge did not change: {metrics:?}");
        assert_eq!(
            numbers(&metrics[0]),
            [(vec![], Number::Double(0.5))],
            "a delta reader reports what an observed sum grew by"
        );
    }

    #[test]
    fn a_gauge_set_as_an_integer_reports_its_last_value_to_a_delta_reader() {
        // As wasmtel's own `wasmtel.exporter.pending` is set.
        let store = Store::new(1);
        let g = stream(&store, "pending", InstrumentKind::Gauge);
        let mut reader = Reader::new(store.clone(), 0, Temporality::Delta);
        for (value, t) in [(5, 1), (3, 2)] {
            g.measure(Measure::Set(Number::Int(value)), &[]);
            assert_eq!(
                numbers(&reader.collect(t)[0]),
                [(vec![], Number::Int(value))]
            );
        }
    }

    #[test]
    fn an_attribute_set_is_its_keys_and_values_in_any_order() {
        let store = Store::new(1);
        let c = stream(&store, "c", InstrumentKind::Counter);
        let mut reader = Reader::new(store.clone(), 0, Temporality::Delta);
        let nan = || KeyValue::new("x", f64::NAN);
        let list = |v: i64| KeyValue::new("l", Value::Array(vec![Value::Int(v)]));
        for set in [
            vec![nan(), list(1)],
            vec![list(1), nan()],
            vec![list(2), nan()],
            vec![KeyValue::new("x", 1i64)],
            vec![KeyValue::new("x", 1.0)],
            vec![KeyValue::new("x", "1")],
            // A key given twice keeps its last value.
            vec![KeyValue::new("x", "0"), KeyValue::new("x", "1")],
        ] {
            c.measure(Measure::Add(1), &set);
        }
        let got = numbers(&reader.collect(2)[0]);
        let values: Vec<i64> = got
            .iter()
            .map(|p| match p.1 {
                Number::Int(n) => n,
                Number::Double(_) => panic!("{got:?}"),
            })
            .collect();
        assert_eq!(
            values,
            [2, 1, 1, 1, 2],
            "NaN equals itself, nested values count, 1 and 1.0 and \"1\" differ: {got:?}"
        );
        assert_eq!(got[0].0[1].key, "l", "a point keeps its first-seen order");
    }

    #[test]
    fn an_instrument_that_clashes_in_kind_or_unit_with_the_first_gets_no_stream() {
        let store = Store::new(1);
        let calls = instrument("calls", InstrumentKind::Counter);
        let scope = Scope::default();
        assert!(store.stream(&calls, &scope).is_some());
        let as_histogram = instrument("calls", InstrumentKind::Histogram(vec![1.0]));
        assert!(
            store.stream(&as_histogram, &scope).is_none(),
            "another kind"
        );
        let mut in_ms = calls.clone();
        in_ms.unit = "ms".into();
        assert!(store.stream(&in_ms, &scope).is_none(), "another unit");
        assert!(store.stream(&calls, &scope).is_some(), "the same again");
        let other = Scope {
            name: "wasmtel".into(),
            version: String::new(),
        };
        assert!(
            store.stream(&as_histogram, &other).is_some(),
            "the same name in another scope is another instrument"
        );
    }

    #[test]
    fn past_the_cardinality_limit_measurements_fold_into_the_overflow_point() {
        let store = Store::new(1);
        let c = stream(&store, "c", InstrumentKind::Counter);
        let mut reader = Reader::new(store.clone(), 0, Temporality::Cumulative);
        for i in 0..MAX_SETS as i64 + 500 {
            c.measure(Measure::Add(1), &[KeyValue::new("i", i)]);
        }
        c.measure(Measure::Add(1), &[KeyValue::new("i", 0i64)]);
        let got = numbers(&reader.collect(1)[0]);
        assert_eq!(got.len(), MAX_SETS + 1);
        assert_eq!(got[0], (vec![KeyValue::new("i", 0i64)], Number::Int(2)));
        assert_eq!(
            got[MAX_SETS],
            (vec![KeyValue::new(OVERFLOW_KEY, true)], Number::Int(500)),
            "every measurement past the limit is counted"
        );
        assert_eq!(store.overflows(), [("c".to_string(), 500)]);
    }

    #[test]
    fn delta_and_cumulative_readers_of_one_store_see_the_same_totals() {
        let store = Store::new(2);
        let c = stream(&store, "c", InstrumentKind::UpDownCounter);
        let mut delta = Reader::new(store.clone(), 0, Temporality::Delta);
        let mut cumulative = Reader::new(store.clone(), 1, Temporality::Cumulative);
        let (mut summed, mut last) = (0, 0);
        for interval in 1..=5i64 {
            for n in [interval, -2, 7] {
                c.measure(Measure::Add(n), &attrs(&[("k", "v")]));
            }
            if let Some(m) = delta.collect(interval as u64).first() {
                summed += match numbers(m)[0].1 {
                    Number::Int(n) => n,
                    Number::Double(_) => unreachable!(),
                };
            }
            last = match numbers(&cumulative.collect(interval as u64)[0])[0].1 {
                Number::Int(n) => n,
                Number::Double(_) => unreachable!(),
            };
            assert_eq!(summed, last, "after interval {interval}");
        }
        assert_eq!(last, (1..=5).sum::<i64>() + 5 * 5);
    }

    #[test]
    fn adds_from_many_threads_sum_exactly() {
        let store = Store::new(1);
        let c = stream(&store, "c", InstrumentKind::Counter);
        let mut reader = Reader::new(store.clone(), 0, Temporality::Delta);
        let mut total = 0;
        std::thread::scope(|scope| {
            for t in 0..8 {
                let c = c.clone();
                scope.spawn(move || {
                    for i in 0..20_000 {
                        let set = [KeyValue::new("thread", t % 3), KeyValue::new("odd", i % 2)];
                        c.measure(Measure::Add(1), &set);
                    }
                });
            }
            // Collecting while they add loses nothing either.
            for t in 0..50 {
                total += sum(&reader.collect(t));
                std::thread::yield_now();
            }
        });
        total += sum(&reader.collect(100));
        assert_eq!(total, 8 * 20_000);
    }

    fn sum(metrics: &[Metric]) -> i64 {
        metrics
            .iter()
            .flat_map(numbers)
            .map(|(_, n)| match n {
                Number::Int(n) => n,
                Number::Double(_) => unreachable!(),
            })
            .sum()
    }
}
