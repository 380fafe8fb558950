//! Lays records of the [`crate::model`] out as the batches that cross into a plugin: every string
//! once in `pool.data`, every nested item in a flat list. The host builds its batches with these
//! functions; a plugin's native tests can build theirs the same way.

use rustc_hash::FxHashMap;

use crate::model::{self, KeyValue, MetricData, Number};
use crate::types::{
    EventBatch, HistogramPoint, MetricBatch, NumberPoint, Pool, Range, Scope, Slice, SpanBatch,
    TraceId, Value,
};

/// Builds a [`Pool`], storing each distinct string once.
#[derive(Default)]
pub struct PoolBuilder {
    pool: Pool,
    interned: FxHashMap<Box<str>, Slice>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            data: Vec::new(),
            values: Vec::new(),
            attributes: Vec::new(),
        }
    }
}

/// Index of the next item of `list`, as a `u32`.
fn next_index<T>(list: &[T]) -> u32 {
    u32::try_from(list.len()).expect("a batch list holds fewer than 2^32 items")
}

/// A range over the items pushed onto `list` since it had `start` items.
pub(crate) fn range_since<T>(list: &[T], start: u32) -> Range {
    Range {
        start,
        len: next_index(list) - start,
    }
}

impl PoolBuilder {
    /// A slice holding `s`; equal strings share their bytes.
    pub fn text(&mut self, s: &str) -> Slice {
        if s.is_empty() {
            return Slice { offset: 0, len: 0 };
        }
        if let Some(slice) = self.interned.get(s) {
            return *slice;
        }
        let slice = self.bytes(s.as_bytes());
        self.interned.insert(s.into(), slice);
        slice
    }

    /// A slice holding `bytes`, not shared.
    pub fn bytes(&mut self, bytes: &[u8]) -> Slice {
        let offset = next_index(&self.pool.data);
        self.pool.data.extend_from_slice(bytes);
        let len = u32::try_from(bytes.len()).expect("a batch holds less than 4 GiB of text");
        Slice { offset, len }
    }

    /// The wire form of `value`, storing what it refers to.
    pub fn value(&mut self, value: &model::Value) -> Value {
        match value {
            model::Value::Empty => Value::Empty,
            model::Value::String(s) => Value::String(self.text(s)),
            model::Value::Bool(b) => Value::Boolean(*b),
            model::Value::Int(i) => Value::Int(*i),
            model::Value::Double(d) => Value::Double(*d),
            model::Value::Bytes(b) => Value::Bytes(self.bytes(b)),
            model::Value::Array(items) => {
                // Elements may themselves be arrays: convert them first, then store them
                // contiguously.
                let items: Vec<Value> = items.iter().map(|v| self.value(v)).collect();
                let start = next_index(&self.pool.values);
                self.pool.values.extend(items);
                Value::Array(range_since(&self.pool.values, start))
            }
            model::Value::Map(entries) => Value::Kvlist(self.attributes(entries)),
        }
    }

    /// Stores `attributes` contiguously and returns their range.
    pub fn attributes(&mut self, attributes: &[KeyValue]) -> Range {
        let converted: Vec<crate::types::KeyValue> = attributes
            .iter()
            .map(|kv| crate::types::KeyValue {
                key: self.text(&kv.key),
                value: self.value(&kv.value),
            })
            .collect();
        let start = next_index(&self.pool.attributes);
        self.pool.attributes.extend(converted);
        range_since(&self.pool.attributes, start)
    }

    /// The wire form of a scope.
    pub fn scope(&mut self, scope: &model::Scope) -> Scope {
        Scope {
            name: self.text(&scope.name),
            version: self.text(&scope.version),
        }
    }

    /// The finished pool.
    pub fn finish(self) -> Pool {
        self.pool
    }
}

/// The wire form of a trace id.
pub fn trace_id(id: model::TraceId) -> TraceId {
    TraceId {
        hi: (id >> 64) as u64,
        lo: id as u64,
    }
}

/// Lays out a batch of events produced by the resource with `resource` attributes.
pub fn event_batch<'a>(
    resource: &[KeyValue],
    events: impl IntoIterator<Item = &'a model::Event>,
) -> EventBatch {
    let mut pool = PoolBuilder::default();
    let resource = pool.attributes(resource);
    let events = events
        .into_iter()
        .map(|e| crate::types::Event {
            time_unix_nano: e.time_unix_nano,
            name: pool.text(&e.name),
            severity_number: e.severity_number,
            severity_text: pool.text(&e.severity_text),
            body: pool.value(&e.body),
            attributes: pool.attributes(&e.attributes),
            trace_id: e.trace_id.map(trace_id),
            span_id: e.span_id,
            scope: pool.scope(&e.scope),
        })
        .collect();
    EventBatch {
        resource,
        pool: pool.finish(),
        events,
    }
}

/// Lays out a batch of spans produced by the resource with `resource` attributes.
pub fn span_batch<'a>(
    resource: &[KeyValue],
    spans: impl IntoIterator<Item = &'a model::Span>,
) -> SpanBatch {
    let mut pool = PoolBuilder::default();
    let resource = pool.attributes(resource);
    let mut events = Vec::new();
    let mut links = Vec::new();
    let spans = spans
        .into_iter()
        .map(|s| {
            let events_start = next_index(&events);
            for e in &s.events {
                events.push(crate::types::SpanEvent {
                    time_unix_nano: e.time_unix_nano,
                    name: pool.text(&e.name),
                    attributes: pool.attributes(&e.attributes),
                });
            }
            let links_start = next_index(&links);
            for l in &s.links {
                links.push(crate::types::SpanLink {
                    trace_id: trace_id(l.trace_id),
                    span_id: l.span_id,
                    attributes: pool.attributes(&l.attributes),
                });
            }
            crate::types::Span {
                trace_id: trace_id(s.trace_id),
                span_id: s.span_id,
                parent_span_id: s.parent_span_id,
                name: pool.text(&s.name),
                kind: s.kind,
                start_time_unix_nano: s.start_time_unix_nano,
                end_time_unix_nano: s.end_time_unix_nano,
                attributes: pool.attributes(&s.attributes),
                events: range_since(&events, events_start),
                links: range_since(&links, links_start),
                status: s.status,
                status_message: pool.text(&s.status_message),
                scope: pool.scope(&s.scope),
            }
        })
        .collect();
    SpanBatch {
        resource,
        pool: pool.finish(),
        spans,
        events,
        links,
    }
}

/// Lays out a batch of metrics produced by the resource with `resource` attributes.
pub fn metric_batch<'a>(
    resource: &[KeyValue],
    metrics: impl IntoIterator<Item = &'a model::Metric>,
) -> MetricBatch {
    let mut pool = PoolBuilder::default();
    let resource = pool.attributes(resource);
    let mut number_points = Vec::new();
    let mut histogram_points = Vec::new();
    let mut bounds = Vec::new();
    let mut counts = Vec::new();
    let mut numbers = |pool: &mut PoolBuilder, points: &[model::NumberPoint]| {
        let start = next_index(&number_points);
        for p in points {
            number_points.push(NumberPoint {
                attributes: pool.attributes(&p.attributes),
                start_time_unix_nano: p.start_time_unix_nano,
                time_unix_nano: p.time_unix_nano,
                value: match p.value {
                    Number::Int(i) => crate::types::Number::Int(i),
                    Number::Double(d) => crate::types::Number::Double(d),
                },
            });
        }
        range_since(&number_points, start)
    };
    let metrics = metrics
        .into_iter()
        .map(|m| {
            let data = match &m.data {
                MetricData::Sum {
                    points,
                    temporality,
                    monotonic,
                } => crate::types::MetricData::Sum(crate::types::Sum {
                    points: numbers(&mut pool, points),
                    temporality: *temporality,
                    monotonic: *monotonic,
                }),
                MetricData::Gauge { points } => {
                    crate::types::MetricData::Gauge(numbers(&mut pool, points))
                }
                MetricData::Histogram {
                    points,
                    temporality,
                } => {
                    let start = next_index(&histogram_points);
                    for p in points {
                        let bounds_start = next_index(&bounds);
                        bounds.extend_from_slice(&p.bounds);
                        let counts_start = next_index(&counts);
                        counts.extend_from_slice(&p.counts);
                        histogram_points.push(HistogramPoint {
                            attributes: pool.attributes(&p.attributes),
                            start_time_unix_nano: p.start_time_unix_nano,
                            time_unix_nano: p.time_unix_nano,
                            count: p.count,
                            sum: p.sum,
                            min: p.min,
                            max: p.max,
                            bounds: range_since(&bounds, bounds_start),
                            counts: range_since(&counts, counts_start),
                        });
                    }
                    crate::types::MetricData::Histogram(crate::types::Histogram {
                        points: range_since(&histogram_points, start),
                        temporality: *temporality,
                    })
                }
            };
            crate::types::Metric {
                name: pool.text(&m.name),
                description: pool.text(&m.description),
                unit: pool.text(&m.unit),
                scope: pool.scope(&m.scope),
                data,
            }
        })
        .collect();
    MetricBatch {
        resource,
        pool: pool.finish(),
        metrics,
        number_points,
        histogram_points,
        bounds,
        counts,
    }
}
