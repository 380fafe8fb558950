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
//! assert_eq!(requests.logs.expect("an event").resource_logs[0].scope_logs[0].log_records.len(), 1);
//! assert!(requests.traces.is_none() && requests.metrics.is_none());
//! ```

pub mod json;

pub use opentelemetry_proto::tonic as proto;
use proto::collector::logs::v1::ExportLogsServiceRequest;
use proto::collector::metrics::v1::ExportMetricsServiceRequest;
use proto::collector::trace::v1::ExportTraceServiceRequest;
use proto::common::v1::{self as common, InstrumentationScope};
use proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use proto::metrics::v1::{self as metrics, ResourceMetrics, ScopeMetrics};
use proto::resource::v1::Resource;
use proto::trace::v1::{self as trace, ResourceSpans, ScopeSpans};

use crate::model::{Number, SpanKind, StatusCode, Temporality};
use crate::view::{self, Attributes, Batch, MetricData, Record, Scope};

/// The OTLP export requests of one batch: one per signal that has records in it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Requests {
    /// Its events, as log records.
    pub logs: Option<ExportLogsServiceRequest>,
    /// Its spans.
    pub traces: Option<ExportTraceServiceRequest>,
    /// Its metrics, those that `keep` kept.
    pub metrics: Option<ExportMetricsServiceRequest>,
}

impl Requests {
    /// The requests of `batch`, with the metrics whose names `keep` keeps.
    pub fn of(batch: &Batch<'_>, keep: impl Fn(&str) -> bool) -> Requests {
        let mut logs = Scoped::default();
        let mut spans = Scoped::default();
        let mut metrics = Scoped::default();
        for record in batch.records() {
            match record {
                Record::Event(e) => logs.push(e.scope, log_record(&e)),
                Record::Span(s) => spans.push(s.scope, span(&s)),
                Record::Metric(m) if keep(m.name) => metrics.push(m.scope, metric(&m)),
                Record::Metric(_) => {}
            }
        }
        let resource = || {
            Some(Resource {
                attributes: attributes(batch.resource()),
                ..Default::default()
            })
        };
        Requests {
            logs: logs.finish(|scope_logs| ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: resource(),
                    scope_logs: scope_logs
                        .into_iter()
                        .map(|(scope, log_records)| ScopeLogs {
                            scope,
                            log_records,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
            }),
            traces: spans.finish(|scope_spans| ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: resource(),
                    scope_spans: scope_spans
                        .into_iter()
                        .map(|(scope, spans)| ScopeSpans {
                            scope,
                            spans,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
            }),
            metrics: metrics.finish(|scope_metrics| ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: resource(),
                    scope_metrics: scope_metrics
                        .into_iter()
                        .map(|(scope, metrics)| ScopeMetrics {
                            scope,
                            metrics,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
            }),
        }
    }
}

/// Items grouped by scope (none for an empty one), the scopes in the order they first appear.
struct Scoped<T> {
    groups: Vec<(Option<InstrumentationScope>, Vec<T>)>,
}

impl<T> Default for Scoped<T> {
    fn default() -> Self {
        Scoped { groups: Vec::new() }
    }
}

impl<T> Scoped<T> {
    fn push(&mut self, scope: Scope<'_>, item: T) {
        let same = |group: &Option<InstrumentationScope>| match group {
            Some(g) => g.name == scope.name && g.version == scope.version,
            None => scope.is_empty(),
        };
        match self.groups.iter_mut().rev().find(|(g, _)| same(g)) {
            Some((_, items)) => items.push(item),
            None => {
                let group = (!scope.is_empty()).then(|| InstrumentationScope {
                    name: scope.name.to_owned(),
                    version: scope.version.to_owned(),
                    ..Default::default()
                });
                self.groups.push((group, vec![item]));
            }
        }
    }

    fn finish<R>(
        self,
        request: impl FnOnce(Vec<(Option<InstrumentationScope>, Vec<T>)>) -> R,
    ) -> Option<R> {
        (!self.groups.is_empty()).then(|| request(self.groups))
    }
}

fn log_record(e: &view::Event<'_>) -> LogRecord {
    LogRecord {
        time_unix_nano: e.time_unix_nano,
        observed_time_unix_nano: e.time_unix_nano,
        severity_number: i32::from(e.severity_number),
        severity_text: e.severity_text.to_owned(),
        body: match e.body {
            view::AnyValue::Empty => None,
            body => Some(any_value(body)),
        },
        attributes: attributes(e.attributes),
        trace_id: e
            .trace_id
            .map_or_else(Vec::new, |t| t.to_be_bytes().to_vec()),
        span_id: e
            .span_id
            .map_or_else(Vec::new, |s| s.to_be_bytes().to_vec()),
        event_name: e.name.to_owned(),
        ..Default::default()
    }
}

fn span(s: &view::Span<'_>) -> trace::Span {
    trace::Span {
        trace_id: s.trace_id.to_be_bytes().to_vec(),
        span_id: s.span_id.to_be_bytes().to_vec(),
        parent_span_id: s
            .parent_span_id
            .map_or_else(Vec::new, |p| p.to_be_bytes().to_vec()),
        name: s.name.to_owned(),
        kind: match s.kind {
            SpanKind::Internal => trace::span::SpanKind::Internal,
            SpanKind::Server => trace::span::SpanKind::Server,
            SpanKind::Client => trace::span::SpanKind::Client,
            SpanKind::Producer => trace::span::SpanKind::Producer,
            SpanKind::Consumer => trace::span::SpanKind::Consumer,
        } as i32,
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: attributes(s.attributes),
        events: s
            .events
            .iter()
            .map(|e| trace::span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.to_owned(),
                attributes: attributes(e.attributes),
                ..Default::default()
            })
            .collect(),
        links: s
            .links
            .iter()
            .map(|l| trace::span::Link {
                trace_id: l.trace_id.to_be_bytes().to_vec(),
                span_id: l.span_id.to_be_bytes().to_vec(),
                attributes: attributes(l.attributes),
                ..Default::default()
            })
            .collect(),
        status: Some(trace::Status {
            message: s.status_message.to_owned(),
            code: match s.status {
                StatusCode::Unset => trace::status::StatusCode::Unset,
                StatusCode::Ok => trace::status::StatusCode::Ok,
                StatusCode::Error => trace::status::StatusCode::Error,
            } as i32,
        }),
        ..Default::default()
    }
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
