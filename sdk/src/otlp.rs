//! A batch as OTLP: the export requests of OpenTelemetry's collector services (logs, traces,
//! metrics), as opentelemetry-proto's prost messages, ready to encode as protobuf
//! ([`prost::Message::encode_to_vec`]) or as OTLP/JSON ([`json`]). Behind the SDK's `otlp`
//! feature; the built-in `otlp` plugin is built on it.
//!
//! Events become log records (the event name in `event_name`), spans become spans and metrics
//! become metrics, grouped by scope in the order each scope first appears, each group in the
//! order of the batch; the batch's resource is the requests' resource.
//!
//! ```
//! # use wasmtel_sdk::{encode, model, otlp, Batch};
//! let event = model::Event::new("codex.turn");
//! let bytes = encode::batch(&[], &[model::Record::Event(event)]);
//! let batch = Batch::new(&bytes).expect("laid out");
//! let requests = otlp::Requests::of(&batch, |_| true);
//! assert_eq!(requests.logs().expect("an event").resource_logs[0].scope_logs[0].log_records.len(), 1);
//! assert!(requests.traces().is_none() && requests.metrics().is_none());
//! ```

pub mod json;

pub use opentelemetry_proto::tonic as proto;
use proto::collector::logs::v1::ExportLogsServiceRequest;
use proto::collector::metrics::v1::ExportMetricsServiceRequest;
use proto::collector::trace::v1::ExportTraceServiceRequest;
use proto::common::v1::{self as common, InstrumentationScope};
use proto::logs::v1::{LogRecord, ScopeLogs};
use proto::metrics::v1::{self as metrics, ScopeMetrics};
use proto::resource::v1::Resource;
use proto::trace::v1::{self as trace, ScopeSpans};

use crate::model::{Number, SpanKind, StatusCode, Temporality};
use crate::view::{self, Attributes, Batch, MetricData, Record, Scope};

/// The OTLP export requests of one batch: one per signal that has records in it. Kept from batch
/// to batch ([`Requests::fill`]), they reuse the strings and vectors of the last, so that a
/// batch like the one before converts without allocating.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Requests {
    logs: ExportLogsServiceRequest,
    traces: ExportTraceServiceRequest,
    metrics: ExportMetricsServiceRequest,
    /// The groups (scopes) of each signal in use, with the items each holds.
    used: [Vec<usize>; 3],
}

impl Requests {
    /// The requests of `batch`, with the metrics whose names `keep` keeps.
    pub fn of(batch: &Batch<'_>, keep: impl Fn(&str) -> bool) -> Requests {
        let mut requests = Requests::default();
        requests.fill(batch, keep);
        requests
    }

    /// Makes these the requests of `batch` (with the metrics whose names `keep` keeps), reusing
    /// what they hold.
    pub fn fill(&mut self, batch: &Batch<'_>, keep: impl Fn(&str) -> bool) {
        let logs = one(&mut self.logs.resource_logs);
        let spans = one(&mut self.traces.resource_spans);
        let metrics = one(&mut self.metrics.resource_metrics);
        for (resource, _) in [
            (&mut logs.resource, 0),
            (&mut spans.resource, 1),
            (&mut metrics.resource, 2),
        ] {
            fill_attributes(
                &mut resource.get_or_insert_with(Resource::default).attributes,
                batch.resource(),
            );
        }
        let [used_logs, used_spans, used_metrics] = &mut self.used;
        for used in [&mut *used_logs, &mut *used_spans, &mut *used_metrics] {
            used.clear();
        }
        for record in batch.records() {
            match record {
                Record::Event(e) => {
                    fill_log_record(place(&mut logs.scope_logs, used_logs, e.scope), &e);
                }
                Record::Span(s) => {
                    fill_span(place(&mut spans.scope_spans, used_spans, s.scope), &s)
                }
                Record::Metric(m) if keep(m.name) => {
                    *place(&mut metrics.scope_metrics, used_metrics, m.scope) = metric(&m);
                }
                Record::Metric(_) => {}
            }
        }
        finish(&mut logs.scope_logs, used_logs);
        finish(&mut spans.scope_spans, used_spans);
        finish(&mut metrics.scope_metrics, used_metrics);
    }

    /// How many records the requests hold: events, spans, and the metrics kept.
    pub fn counts(&self) -> [u64; 3] {
        self.used
            .each_ref()
            .map(|groups| groups.iter().sum::<usize>() as u64)
    }

    /// The batch's events, as log records; none if it has none.
    pub fn logs(&self) -> Option<&ExportLogsServiceRequest> {
        (!self.used[0].is_empty()).then_some(&self.logs)
    }

    /// The batch's spans; none if it has none.
    pub fn traces(&self) -> Option<&ExportTraceServiceRequest> {
        (!self.used[1].is_empty()).then_some(&self.traces)
    }

    /// The batch's metrics that were kept; none if there are none.
    pub fn metrics(&self) -> Option<&ExportMetricsServiceRequest> {
        (!self.used[2].is_empty()).then_some(&self.metrics)
    }
}

/// The one item of `items`, made if missing.
fn one<T: Default>(items: &mut Vec<T>) -> &mut T {
    items.truncate(1);
    if items.is_empty() {
        items.push(T::default());
    }
    &mut items[0]
}

/// A group of one scope's items: `ScopeLogs`, `ScopeSpans`, `ScopeMetrics`.
trait Group: Default {
    type Item: Default;
    fn scope(&mut self) -> &mut Option<InstrumentationScope>;
    fn items(&mut self) -> &mut Vec<Self::Item>;
}

macro_rules! group {
    ($group:ty, $item:ty, $items:ident) => {
        impl Group for $group {
            type Item = $item;
            fn scope(&mut self) -> &mut Option<InstrumentationScope> {
                &mut self.scope
            }
            fn items(&mut self) -> &mut Vec<$item> {
                &mut self.$items
            }
        }
    };
}
group!(ScopeLogs, LogRecord, log_records);
group!(ScopeSpans, trace::Span, spans);
group!(ScopeMetrics, metrics::Metric, metrics);

/// The next item of the group of `scope` (the groups in use and their items counted in `used`,
/// the scopes in the order they first appear; an empty scope is none), reused if there is one.
fn place<'g, G: Group>(
    groups: &'g mut Vec<G>,
    used: &mut Vec<usize>,
    scope: Scope<'_>,
) -> &'g mut G::Item {
    let same = |group: &mut G| match group.scope() {
        Some(g) => g.name == scope.name && g.version == scope.version,
        None => scope.is_empty(),
    };
    let found = (0..used.len()).rev().find(|&i| same(&mut groups[i]));
    let i = found.unwrap_or_else(|| {
        let i = used.len();
        if groups.len() == i {
            groups.push(G::default());
        }
        let slot = groups[i].scope();
        if scope.is_empty() {
            *slot = None;
        } else {
            let s = slot.get_or_insert_with(InstrumentationScope::default);
            set(&mut s.name, scope.name);
            set(&mut s.version, scope.version);
        }
        used.push(0);
        i
    });
    let n = used[i];
    used[i] += 1;
    let items = groups[i].items();
    if items.len() == n {
        items.push(G::Item::default());
    }
    &mut items[n]
}

/// Drops the groups and items beyond those in use.
fn finish<G: Group>(groups: &mut Vec<G>, used: &[usize]) {
    groups.truncate(used.len());
    for (group, &n) in groups.iter_mut().zip(used) {
        group.items().truncate(n);
    }
}

/// `target` made `text`, in the room it has.
fn set(target: &mut String, text: &str) {
    target.clear();
    target.push_str(text);
}

/// `target` made the bytes of `id` (none: empty), in the room it has.
fn set_id(target: &mut Vec<u8>, id: Option<&[u8]>) {
    target.clear();
    target.extend_from_slice(id.unwrap_or_default());
}

fn fill_log_record(r: &mut LogRecord, e: &view::Event<'_>) {
    r.time_unix_nano = e.time_unix_nano;
    r.observed_time_unix_nano = e.time_unix_nano;
    r.severity_number = i32::from(e.severity_number);
    set(&mut r.severity_text, e.severity_text);
    match e.body {
        view::AnyValue::Empty => r.body = None,
        body => fill_any(r.body.get_or_insert_with(Default::default), body),
    }
    fill_attributes(&mut r.attributes, e.attributes);
    r.dropped_attributes_count = 0;
    r.flags = 0;
    set_id(
        &mut r.trace_id,
        e.trace_id.map(u128::to_be_bytes).as_ref().map(|b| &b[..]),
    );
    set_id(
        &mut r.span_id,
        e.span_id.map(u64::to_be_bytes).as_ref().map(|b| &b[..]),
    );
    set(&mut r.event_name, e.name);
}

fn fill_span(t: &mut trace::Span, s: &view::Span<'_>) {
    set_id(&mut t.trace_id, Some(&s.trace_id.to_be_bytes()));
    set_id(&mut t.span_id, Some(&s.span_id.to_be_bytes()));
    t.trace_state.clear();
    set_id(
        &mut t.parent_span_id,
        s.parent_span_id
            .map(u64::to_be_bytes)
            .as_ref()
            .map(|b| &b[..]),
    );
    t.flags = 0;
    set(&mut t.name, s.name);
    let kind = match s.kind {
        SpanKind::Internal => trace::span::SpanKind::Internal,
        SpanKind::Server => trace::span::SpanKind::Server,
        SpanKind::Client => trace::span::SpanKind::Client,
        SpanKind::Producer => trace::span::SpanKind::Producer,
        SpanKind::Consumer => trace::span::SpanKind::Consumer,
    };
    t.kind = kind as i32;
    t.start_time_unix_nano = s.start_time_unix_nano;
    t.end_time_unix_nano = s.end_time_unix_nano;
    fill_attributes(&mut t.attributes, s.attributes);
    t.dropped_attributes_count = 0;
    t.events.truncate(s.events.len());
    for (i, e) in s.events.iter().enumerate() {
        if t.events.len() == i {
            t.events.push(Default::default());
        }
        let event = &mut t.events[i];
        event.time_unix_nano = e.time_unix_nano;
        set(&mut event.name, e.name);
        fill_attributes(&mut event.attributes, e.attributes);
    }
    t.dropped_events_count = 0;
    t.links.truncate(s.links.len());
    for (i, l) in s.links.iter().enumerate() {
        if t.links.len() == i {
            t.links.push(Default::default());
        }
        let link = &mut t.links[i];
        set_id(&mut link.trace_id, Some(&l.trace_id.to_be_bytes()));
        set_id(&mut link.span_id, Some(&l.span_id.to_be_bytes()));
        fill_attributes(&mut link.attributes, l.attributes);
    }
    t.dropped_links_count = 0;
    let code = match s.status {
        StatusCode::Unset => trace::status::StatusCode::Unset,
        StatusCode::Ok => trace::status::StatusCode::Ok,
        StatusCode::Error => trace::status::StatusCode::Error,
    };
    let status = t.status.get_or_insert_with(Default::default);
    status.code = code as i32;
    set(&mut status.message, s.status_message);
}

fn temporality(t: Temporality) -> i32 {
    let t = match t {
        Temporality::Delta => metrics::AggregationTemporality::Delta,
        Temporality::Cumulative => metrics::AggregationTemporality::Cumulative,
    };
    t as i32
}

fn metric(m: &view::Metric<'_>) -> metrics::Metric {
    let numbers = |points: view::List<'_, view::NumberPoint<'_>>| -> Vec<metrics::NumberDataPoint> {
        points
            .iter()
            .map(|p| metrics::NumberDataPoint {
                attributes: attributes(p.attributes),
                start_time_unix_nano: p.start_time_unix_nano,
                time_unix_nano: p.time_unix_nano,
                value: Some(match p.value {
                    Number::Int(i) => metrics::number_data_point::Value::AsInt(i),
                    Number::Double(d) => metrics::number_data_point::Value::AsDouble(d),
                }),
                ..Default::default()
            })
            .collect()
    };
    let data = match m.data {
        MetricData::Sum {
            points,
            temporality: t,
            monotonic,
        } => metrics::metric::Data::Sum(metrics::Sum {
            data_points: numbers(points),
            aggregation_temporality: temporality(t),
            is_monotonic: monotonic,
        }),
        MetricData::Gauge { points } => metrics::metric::Data::Gauge(metrics::Gauge {
            data_points: numbers(points),
        }),
        MetricData::Histogram {
            points,
            temporality: t,
        } => metrics::metric::Data::Histogram(metrics::Histogram {
            data_points: points
                .iter()
                .map(|p| metrics::HistogramDataPoint {
                    attributes: attributes(p.attributes),
                    start_time_unix_nano: p.start_time_unix_nano,
                    time_unix_nano: p.time_unix_nano,
                    count: p.count,
                    sum: Some(p.sum),
                    bucket_counts: p.counts.iter().collect(),
                    explicit_bounds: p.bounds.iter().collect(),
                    min: p.min,
                    max: p.max,
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: temporality(t),
        }),
    };
    metrics::Metric {
        name: m.name.to_owned(),
        description: m.description.to_owned(),
        unit: m.unit.to_owned(),
        data: Some(data),
        ..Default::default()
    }
}

/// Attributes as OTLP key-values.
pub fn attributes(attributes: Attributes<'_>) -> Vec<common::KeyValue> {
    attributes
        .iter()
        .map(|(key, value)| common::KeyValue {
            key: key.to_owned(),
            value: Some(any_value(value)),
        })
        .collect()
}

/// A value as OTLP's `AnyValue` (empty: no value).
pub fn any_value(value: view::AnyValue<'_>) -> common::AnyValue {
    use common::any_value::Value;
    common::AnyValue {
        value: match value {
            view::AnyValue::Empty => None,
            view::AnyValue::Str(s) => Some(Value::StringValue(s.to_owned())),
            view::AnyValue::Bool(b) => Some(Value::BoolValue(b)),
            view::AnyValue::Int(i) => Some(Value::IntValue(i)),
            view::AnyValue::Double(d) => Some(Value::DoubleValue(d)),
            view::AnyValue::Bytes(b) => Some(Value::BytesValue(b.to_vec())),
            view::AnyValue::Array(values) => Some(Value::ArrayValue(common::ArrayValue {
                values: values.iter().map(any_value).collect(),
            })),
            view::AnyValue::Map(entries) => Some(Value::KvlistValue(common::KeyValueList {
                values: self::attributes(entries),
            })),
        },
    }
}

/// `target` made `attributes`, reusing its keys and string values.
fn fill_attributes(target: &mut Vec<common::KeyValue>, attributes: Attributes<'_>) {
    target.truncate(attributes.len());
    for (i, (key, value)) in attributes.iter().enumerate() {
        if target.len() == i {
            target.push(common::KeyValue::default());
        }
        let kv = &mut target[i];
        set(&mut kv.key, key);
        fill_any(kv.value.get_or_insert_with(Default::default), value);
    }
}

/// `target` made `value`, reusing its string if both are strings.
fn fill_any(target: &mut common::AnyValue, value: view::AnyValue<'_>) {
    use common::any_value::Value;
    match (&mut target.value, value) {
        (Some(Value::StringValue(s)), view::AnyValue::Str(text)) => set(s, text),
        _ => *target = any_value(value),
    }
}

#[cfg(test)]
mod tests {
    use super::Requests;
    use crate::model::{
        Event, KeyValue, Metric, MetricData, Number, NumberPoint, Record, Scope, Span, SpanEvent,
        SpanKind, SpanLink, StatusCode, Temporality, Value,
    };
    use crate::{Batch, encode};

    fn scope(name: &str) -> Scope {
        Scope {
            name: name.into(),
            version: "1".into(),
        }
    }

    fn event(name: &'static str, scope_name: &str, attributes: Vec<KeyValue>) -> Record {
        let mut e = Event::new(name);
        e.time_unix_nano = 7;
        e.scope = scope(scope_name);
        e.attributes = attributes;
        e.trace_id = Some(1);
        Record::Event(e)
    }

    fn span(name: &str, events: usize) -> Record {
        Record::Span(Span {
            trace_id: 2,
            span_id: 3,
            parent_span_id: Some(4),
            name: name.into(),
            kind: SpanKind::Client,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: vec![KeyValue::new("k", "v")],
            events: (0..events)
                .map(|i| SpanEvent {
                    time_unix_nano: i as u64,
                    name: format!("e{i}"),
                    attributes: vec![KeyValue::new("i", i as i64)],
                })
                .collect(),
            links: vec![SpanLink {
                trace_id: 5,
                span_id: 6,
                attributes: Vec::new(),
            }],
            status: StatusCode::Error,
            status_message: "bad".into(),
            scope: scope("spans"),
        })
    }

    #[test]
    fn requests_refilled_by_another_batch_are_that_batchs_requests() {
        let a = [
            event(
                "a1",
                "x",
                vec![
                    KeyValue::new("s", "long string value"),
                    KeyValue::new("n", 1),
                ],
            ),
            event(
                "a2",
                "y",
                vec![KeyValue::new("arr", Value::Array(vec![Value::Int(1)]))],
            ),
            event("a3", "x", vec![KeyValue::new("s", "t")]),
            span("one", 3),
            span("two", 0),
        ];
        let mut body = Event::new("b1");
        body.body = Value::String("a body".into());
        body.attributes = vec![KeyValue::new("s", 5), KeyValue::new("t", "u")];
        let b = [
            Record::Event(body),
            span("three", 1),
            Record::Metric(Metric {
                name: "m".into(),
                description: String::new(),
                unit: String::new(),
                scope: scope("x"),
                data: MetricData::Sum {
                    points: vec![NumberPoint {
                        attributes: Vec::new(),
                        start_time_unix_nano: 1,
                        time_unix_nano: 2,
                        value: Number::Int(3),
                    }],
                    temporality: Temporality::Delta,
                    monotonic: true,
                },
            }),
        ];
        let (a, b) = (
            encode::batch(&[KeyValue::new("service.name", "a")], &a),
            encode::batch(&[], &b),
        );
        let (a, b) = (Batch::new(&a).expect("a"), Batch::new(&b).expect("b"));
        let mut requests = Requests::of(&a, |_| true);
        requests.fill(&b, |_| true);
        assert_eq!(requests, Requests::of(&b, |_| true));
        requests.fill(&a, |_| true);
        assert_eq!(requests, Requests::of(&a, |_| true));
        assert!(requests.metrics().is_none(), "a has no metrics");
        assert_eq!(requests.counts(), [3, 2, 0]);
        let logs = requests.logs().expect("a has events");
        let scopes: Vec<_> = logs.resource_logs[0]
            .scope_logs
            .iter()
            .map(|s| {
                (
                    s.scope.as_ref().map(|s| s.name.as_str()),
                    s.log_records.len(),
                )
            })
            .collect();
        assert_eq!(
            scopes,
            [(Some("x"), 2), (Some("y"), 1)],
            "grouped by scope, in order"
        );
    }
}
