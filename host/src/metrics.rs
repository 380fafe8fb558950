//! Metric aggregation: measurements of counters, up-down counters, histograms and gauges are
//! folded into one point per instrument and attribute set, and collected as [`Metric`]s once per
//! export interval, with delta or cumulative temporality.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use wasmtel_sdk::model::{
    HistogramPoint, KeyValue, Metric, MetricData, Number, NumberPoint, Scope, Temporality, Value,
};

/// The default bucket bounds of histograms (OpenTelemetry's).
pub const DEFAULT_BOUNDS: &[f64] = &[
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

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

/// One measurement, on its way from the record call to an exporter's aggregator.
#[derive(Debug)]
pub struct Measurement {
    pub instrument: Arc<Instrument>,
    pub value: Number,
    pub attributes: Vec<KeyValue>,
    pub time_unix_nano: u64,
}

enum PointState {
    Sum(Number),
    Gauge(Number),
    Histogram {
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
        counts: Vec<u64>,
    },
}

struct Point {
    state: PointState,
    /// Updated since the last collection.
    fresh: bool,
}

struct Stream {
    instrument: Arc<Instrument>,
    /// Start of the current interval (delta) or of the stream (cumulative).
    start_unix_nano: u64,
    /// Points by their attribute set, in first-seen order, so output order is stable.
    points: indexmap::IndexMap<AttributeSet, Point>,
    /// Whether a clash with another instrument of the same name was warned about.
    warned: bool,
}

/// An attribute set as the identity of a point: the same keys with the same values, in any
/// order, are one set. Doubles are compared (and hashed) by their bits, so NaN is one value.
#[derive(Clone, Debug)]
struct AttributeSet {
    /// As first recorded: what the point is exported with.
    attributes: Vec<KeyValue>,
    /// Indices into `attributes`, sorted by key.
    sorted: Vec<usize>,
}

impl AttributeSet {
    fn new(attributes: &[KeyValue]) -> Self {
        let mut sorted: Vec<usize> = (0..attributes.len()).collect();
        sorted.sort_by(|a, b| attributes[*a].key.cmp(&attributes[*b].key));
        AttributeSet {
            attributes: attributes.to_vec(),
            sorted,
        }
    }

    fn by_key(&self) -> impl Iterator<Item = &KeyValue> {
        self.sorted.iter().map(|i| &self.attributes[*i])
    }
}

impl PartialEq for AttributeSet {
    fn eq(&self, other: &Self) -> bool {
        self.sorted.len() == other.sorted.len()
            && self
                .by_key()
                .zip(other.by_key())
                .all(|(a, b)| a.key == b.key && same_value(&a.value, &b.value))
    }
}

impl Eq for AttributeSet {}

impl Hash for AttributeSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.sorted.len());
        for kv in self.by_key() {
            kv.key.hash(state);
            hash_value(&kv.value, state);
        }
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(a, b)| a.key == b.key && same_value(&a.value, &b.value))
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

/// Folds measurements into points; one per exporter.
pub struct Aggregator {
    temporality: Temporality,
    streams: Vec<Stream>,
    by_name: HashMap<String, usize>,
}

fn add(a: Number, b: Number) -> Number {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => Number::Int(x.saturating_add(y)),
        _ => Number::Double(a.as_f64() + b.as_f64()),
    }
}

impl Aggregator {
    pub fn new(temporality: Temporality) -> Self {
        Aggregator {
            temporality,
            streams: Vec::new(),
            by_name: HashMap::new(),
        }
    }

    /// True when nothing was measured since the last collection.
    pub fn is_idle(&self) -> bool {
        self.streams
            .iter()
            .all(|s| s.points.values().all(|p| !p.fresh))
    }

    /// Folds in one measurement; false if it was dropped: a measurement whose instrument has the
    /// same name as the first one measured but another kind or unit (warned about once per name).
    pub fn record(&mut self, m: &Measurement) -> bool {
        let index = match self.by_name.get(&m.instrument.name) {
            Some(i) => *i,
            None => {
                self.streams.push(Stream {
                    instrument: m.instrument.clone(),
                    start_unix_nano: m.time_unix_nano,
                    points: indexmap::IndexMap::new(),
                    warned: false,
                });
                self.by_name
                    .insert(m.instrument.name.clone(), self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        let stream = &mut self.streams[index];
        let (first, this) = (&stream.instrument, &m.instrument);
        if first.kind != this.kind || first.unit != this.unit {
            if !stream.warned {
                stream.warned = true;
                tracing::warn!(
                    metric = %this.name,
                    "measurements of a {:?} in `{}` are dropped: the instrument was first used as \
                     a {:?} in `{}`",
                    this.kind,
                    this.unit,
                    first.kind,
                    first.unit
                );
            }
            return false;
        }
        let point = stream
            .points
            .entry(AttributeSet::new(&m.attributes))
            .or_insert_with(|| Point {
                state: match &stream.instrument.kind {
                    InstrumentKind::Counter | InstrumentKind::UpDownCounter => {
                        PointState::Sum(Number::Int(0))
                    }
                    InstrumentKind::Gauge => PointState::Gauge(m.value),
                    InstrumentKind::Histogram(bounds) => PointState::Histogram {
                        count: 0,
                        sum: 0.0,
                        min: f64::INFINITY,
                        max: f64::NEG_INFINITY,
                        counts: vec![0; bounds.len() + 1],
                    },
                },
                fresh: true,
            });
        point.fresh = true;
        match &mut point.state {
            PointState::Sum(total) => *total = add(*total, m.value),
            PointState::Gauge(last) => *last = m.value,
            PointState::Histogram {
                count,
                sum,
                min,
                max,
                counts,
            } => {
                let v = m.value.as_f64();
                let bounds = stream.instrument.bounds();
                // Buckets are (previous bound, bound]; the last is above every bound.
                let bucket = bounds.partition_point(|b| *b < v);
                counts[bucket] += 1;
                *count += 1;
                *sum += v;
                *min = min.min(v);
                *max = max.max(v);
            }
        }
        true
    }

    /// The metrics measured in the interval ending `now` (delta), or since each stream started
    /// (cumulative). Delta resets every point; both skip points not updated since the last call
    /// for delta, and report every point for cumulative.
    pub fn collect(&mut self, now: u64, scope: &Scope) -> Vec<Metric> {
        let delta = self.temporality == Temporality::Delta;
        let mut metrics = Vec::new();
        for stream in &mut self.streams {
            let start = stream.start_unix_nano;
            let mut numbers = Vec::new();
            let mut histograms = Vec::new();
            for (set, point) in &mut stream.points {
                if delta && !point.fresh {
                    continue;
                }
                point.fresh = false;
                let attributes = set.attributes.clone();
                match &mut point.state {
                    PointState::Sum(total) => {
                        numbers.push(NumberPoint {
                            attributes,
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            value: *total,
                        });
                        if delta {
                            *total = Number::Int(0);
                        }
                    }
                    PointState::Gauge(last) => numbers.push(NumberPoint {
                        attributes,
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        value: *last,
                    }),
                    PointState::Histogram {
                        count,
                        sum,
                        min,
                        max,
                        counts,
                    } => {
                        let bounds = stream.instrument.bounds().to_vec();
                        histograms.push(HistogramPoint {
                            attributes,
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            count: *count,
                            sum: *sum,
                            min: (*count > 0).then_some(*min),
                            max: (*count > 0).then_some(*max),
                            bounds,
                            counts: counts.clone(),
                        });
                        if delta {
                            *count = 0;
                            *sum = 0.0;
                            *min = f64::INFINITY;
                            *max = f64::NEG_INFINITY;
                            counts.iter_mut().for_each(|c| *c = 0);
                        }
                    }
                }
            }
            if delta {
                stream.start_unix_nano = now;
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
                scope: scope.clone(),
                data,
            });
        }
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(
        instrument: &Arc<Instrument>,
        value: impl Into<Number>,
        attrs: &[(&str, &str)],
        t: u64,
    ) -> Measurement {
        Measurement {
            instrument: instrument.clone(),
            value: value.into(),
            attributes: attrs.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect(),
            time_unix_nano: t,
        }
    }

    fn instrument(name: &str, kind: InstrumentKind) -> Arc<Instrument> {
        Arc::new(Instrument {
            name: name.into(),
            description: String::new(),
            unit: String::new(),
            kind,
        })
    }

    #[test]
    fn delta_counter_sums_per_attribute_set_and_resets() {
        let calls = instrument("codex.tool.call", InstrumentKind::Counter);
        let mut agg = Aggregator::new(Temporality::Delta);
        agg.record(&measure(
            &calls,
            1u64,
            &[("tool", "shell"), ("success", "true")],
            10,
        ));
        agg.record(&measure(
            &calls,
            2u64,
            &[("success", "true"), ("tool", "shell")],
            20,
        ));
        agg.record(&measure(&calls, 5u64, &[("tool", "apply_patch")], 30));
        let metrics = agg.collect(100, &Scope::default());
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
        assert_eq!(points.len(), 2, "attribute order does not make a new point");
        assert_eq!(points[0].value, Number::Int(3));
        assert_eq!(points[0].start_time_unix_nano, 10);
        assert_eq!(points[1].value, Number::Int(5));
        assert!(agg.is_idle());
        assert!(
            agg.collect(200, &Scope::default()).is_empty(),
            "nothing new, nothing exported"
        );
        agg.record(&measure(&calls, 1u64, &[("tool", "apply_patch")], 250));
        let metrics = agg.collect(300, &Scope::default());
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
    fn cumulative_histogram_keeps_counting_into_buckets() {
        let h = instrument(
            "codex.api_request.duration_ms",
            InstrumentKind::Histogram(vec![10.0, 100.0]),
        );
        let mut agg = Aggregator::new(Temporality::Cumulative);
        for v in [5.0, 10.0, 50.0, 500.0] {
            agg.record(&measure(&h, v, &[], 1));
        }
        agg.collect(2, &Scope::default());
        agg.record(&measure(&h, 1.0, &[], 3));
        let metrics = agg.collect(4, &Scope::default());
        let MetricData::Histogram { points, .. } = &metrics[0].data else {
            panic!()
        };
        let p = &points[0];
        assert_eq!(
            p.counts,
            vec![3, 1, 1],
            "a value equal to a bound falls in that bound's bucket"
        );
        assert_eq!(
            (p.count, p.sum, p.min, p.max),
            (5, 566.0, Some(1.0), Some(500.0))
        );
        assert_eq!(p.start_time_unix_nano, 1);
    }

    #[test]
    fn gauge_reports_last_value_and_mixed_numbers_become_doubles() {
        let g = instrument("codex.turn.memory", InstrumentKind::Gauge);
        let c = instrument("tokens", InstrumentKind::UpDownCounter);
        let mut agg = Aggregator::new(Temporality::Delta);
        agg.record(&measure(&g, 3i64, &[], 1));
        agg.record(&measure(&g, 7i64, &[], 2));
        agg.record(&measure(&c, 2i64, &[], 1));
        agg.record(&measure(&c, -0.5, &[], 2));
        let metrics = agg.collect(5, &Scope::default());
        let MetricData::Gauge { points } = &metrics[0].data else {
            panic!()
        };
        assert_eq!(points[0].value, Number::Int(7));
        let MetricData::Sum {
            points, monotonic, ..
        } = &metrics[1].data
        else {
            panic!()
        };
        assert_eq!((points[0].value, *monotonic), (Number::Double(1.5), false));
    }

    fn points(metric: &Metric) -> Vec<(Vec<KeyValue>, Number)> {
        let MetricData::Sum { points, .. } = &metric.data else {
            panic!("{metric:?}")
        };
        points
            .iter()
            .map(|p| (p.attributes.clone(), p.value))
            .collect()
    }

    #[test]
    fn an_attribute_set_is_its_keys_and_values_in_any_order() {
        let c = instrument("c", InstrumentKind::Counter);
        let mut agg = Aggregator::new(Temporality::Delta);
        let record = |agg: &mut Aggregator, attributes: Vec<KeyValue>| {
            agg.record(&Measurement {
                instrument: c.clone(),
                value: Number::Int(1),
                attributes,
                time_unix_nano: 1,
            })
        };
        let nan = || KeyValue::new("x", f64::NAN);
        let list = |v: i64| KeyValue::new("l", Value::Array(vec![Value::Int(v)]));
        record(&mut agg, vec![nan(), list(1)]);
        record(&mut agg, vec![list(1), nan()]);
        record(&mut agg, vec![list(2), nan()]);
        record(&mut agg, vec![KeyValue::new("x", 1i64)]);
        record(&mut agg, vec![KeyValue::new("x", 1.0)]);
        record(&mut agg, vec![KeyValue::new("x", "1")]);
        let got = points(&agg.collect(2, &Scope::default())[0]);
        let values: Vec<Number> = got.iter().map(|p| p.1).collect();
        assert_eq!(
            values,
            [
                Number::Int(2),
                Number::Int(1),
                Number::Int(1),
                Number::Int(1),
                Number::Int(1)
            ],
            "NaN equals itself, nested values count, 1 and 1.0 and \"1\" differ: {got:?}"
        );
        assert_eq!(
            got[0].0[1].key, "l",
            "a point keeps its first-seen attribute order"
        );
    }

    #[test]
    fn a_measurement_that_clashes_in_kind_or_unit_with_the_first_is_dropped() {
        let mut agg = Aggregator::new(Temporality::Delta);
        let calls = instrument("calls", InstrumentKind::Counter);
        let as_histogram = instrument("calls", InstrumentKind::Histogram(vec![1.0]));
        let mut in_ms = (*calls).clone();
        in_ms.unit = "ms".into();
        assert!(agg.record(&measure(&calls, 1u64, &[], 1)));
        assert!(
            !agg.record(&measure(&as_histogram, 5.0, &[], 2)),
            "another kind"
        );
        assert!(
            !agg.record(&measure(&Arc::new(in_ms), 7u64, &[], 3)),
            "another unit"
        );
        assert!(agg.record(&measure(&calls, 2u64, &[], 4)));
        let metrics = agg.collect(5, &Scope::default());
        assert_eq!(metrics.len(), 1);
        assert_eq!(points(&metrics[0]), [(vec![], Number::Int(3))]);
        assert!(agg.streams[0].warned, "warned, once per instrument");
    }
}
