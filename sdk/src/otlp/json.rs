//! OTLP/JSON: the export requests in the JSON encoding of the OTLP specification (lowerCamelCase
//! names, trace and span ids as lowercase hex, 64-bit integers as decimal strings, enums as
//! numbers, bytes as base64, fields with their default values left out).
//!
//! Written here, from the prost messages, because opentelemetry-proto 0.31's serde support
//! departs from the specification (some 64-bit integers as JSON numbers, NaN unwritable); the
//! tests check this writer against the specification's rules and, through the `otlp` plugin,
//! against opentelemetry-otlp's own JSON.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::proto::collector::logs::v1::ExportLogsServiceRequest;
use super::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use super::proto::collector::trace::v1::ExportTraceServiceRequest;
use super::proto::common::v1::{self as common, InstrumentationScope};
use super::proto::metrics::v1 as metrics;
use super::proto::resource::v1::Resource;
use super::proto::trace::v1 as trace;

/// A logs request as OTLP/JSON.
pub fn logs(request: &ExportLogsServiceRequest) -> Vec<u8> {
    let resource_logs = request.resource_logs.iter().map(|r| {
        resourced(
            &r.resource,
            &r.schema_url,
            "scopeLogs",
            r.scope_logs.iter().map(|s| {
                scoped(
                    &s.scope,
                    &s.schema_url,
                    "logRecords",
                    s.log_records.iter().map(|l| {
                        let mut o = Map::new();
                        u64s(&mut o, "timeUnixNano", l.time_unix_nano);
                        u64s(&mut o, "observedTimeUnixNano", l.observed_time_unix_nano);
                        nonzero(&mut o, "severityNumber", l.severity_number.into());
                        text(&mut o, "severityText", &l.severity_text);
                        if let Some(body) = &l.body {
                            o.insert("body".into(), any_value(body));
                        }
                        attributed(&mut o, &l.attributes, l.dropped_attributes_count);
                        nonzero(&mut o, "flags", l.flags.into());
                        hex(&mut o, "traceId", &l.trace_id);
                        hex(&mut o, "spanId", &l.span_id);
                        text(&mut o, "eventName", &l.event_name);
                        Value::Object(o)
                    }),
                )
            }),
        )
    });
    to_vec(json!({ "resourceLogs": resource_logs.collect::<Vec<_>>() }))
}

/// A traces request as OTLP/JSON.
pub fn traces(request: &ExportTraceServiceRequest) -> Vec<u8> {
    let resource_spans = request.resource_spans.iter().map(|r| {
        resourced(
            &r.resource,
            &r.schema_url,
            "scopeSpans",
            r.scope_spans
                .iter()
                .map(|s| scoped(&s.scope, &s.schema_url, "spans", s.spans.iter().map(span))),
        )
    });
    to_vec(json!({ "resourceSpans": resource_spans.collect::<Vec<_>>() }))
}

/// A metrics request as OTLP/JSON.
pub fn metrics(request: &ExportMetricsServiceRequest) -> Vec<u8> {
    let resource_metrics = request.resource_metrics.iter().map(|r| {
        resourced(
            &r.resource,
            &r.schema_url,
            "scopeMetrics",
            r.scope_metrics.iter().map(|s| {
                scoped(
                    &s.scope,
                    &s.schema_url,
                    "metrics",
                    s.metrics.iter().map(metric),
                )
            }),
        )
    });
    to_vec(json!({ "resourceMetrics": resource_metrics.collect::<Vec<_>>() }))
}

fn to_vec(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

/// `{"resource": .., "<field>": [..], "schemaUrl": ..}`.
fn resourced(
    resource: &Option<Resource>,
    schema_url: &str,
    field: &str,
    scopes: impl Iterator<Item = Value>,
) -> Value {
    let head = resource.as_ref().map(|r| {
        let mut o = Map::new();
        attributed(&mut o, &r.attributes, r.dropped_attributes_count);
        ("resource", o)
    });
    group(head, schema_url, field, scopes)
}

/// `{"scope": .., "<field>": [..], "schemaUrl": ..}`.
fn scoped(
    scope: &Option<InstrumentationScope>,
    schema_url: &str,
    field: &str,
    items: impl Iterator<Item = Value>,
) -> Value {
    let head = scope.as_ref().map(|s| {
        let mut o = Map::new();
        text(&mut o, "name", &s.name);
        text(&mut o, "version", &s.version);
        attributed(&mut o, &s.attributes, s.dropped_attributes_count);
        ("scope", o)
    });
    group(head, schema_url, field, items)
}

/// `{"<head>": .., "<field>": [..], "schemaUrl": ..}`.
fn group(
    head: Option<(&str, Map<String, Value>)>,
    schema_url: &str,
    field: &str,
    items: impl Iterator<Item = Value>,
) -> Value {
    let mut o = Map::new();
    if let Some((key, head)) = head {
        o.insert(key.into(), Value::Object(head));
    }
    o.insert(field.into(), Value::Array(items.collect()));
    text(&mut o, "schemaUrl", schema_url);
    Value::Object(o)
}

/// `attributes` and `droppedAttributesCount`, each unless empty.
fn attributed(o: &mut Map<String, Value>, attributes: &[common::KeyValue], dropped: u32) {
    key_values(o, "attributes", attributes);
    nonzero(o, "droppedAttributesCount", dropped.into());
}

fn span(s: &trace::Span) -> Value {
    let mut o = Map::new();
    hex(&mut o, "traceId", &s.trace_id);
    hex(&mut o, "spanId", &s.span_id);
    text(&mut o, "traceState", &s.trace_state);
    hex(&mut o, "parentSpanId", &s.parent_span_id);
    nonzero(&mut o, "flags", s.flags.into());
    text(&mut o, "name", &s.name);
    nonzero(&mut o, "kind", s.kind.into());
    u64s(&mut o, "startTimeUnixNano", s.start_time_unix_nano);
    u64s(&mut o, "endTimeUnixNano", s.end_time_unix_nano);
    attributed(&mut o, &s.attributes, s.dropped_attributes_count);
    if !s.events.is_empty() {
        let events = s.events.iter().map(|e| {
            let mut o = Map::new();
            u64s(&mut o, "timeUnixNano", e.time_unix_nano);
            text(&mut o, "name", &e.name);
            attributed(&mut o, &e.attributes, e.dropped_attributes_count);
            Value::Object(o)
        });
        o.insert("events".into(), Value::Array(events.collect()));
    }
    nonzero(&mut o, "droppedEventsCount", s.dropped_events_count.into());
    if !s.links.is_empty() {
        let links = s.links.iter().map(|l| {
            let mut o = Map::new();
            hex(&mut o, "traceId", &l.trace_id);
            hex(&mut o, "spanId", &l.span_id);
            text(&mut o, "traceState", &l.trace_state);
            attributed(&mut o, &l.attributes, l.dropped_attributes_count);
            nonzero(&mut o, "flags", l.flags.into());
            Value::Object(o)
        });
        o.insert("links".into(), Value::Array(links.collect()));
    }
    nonzero(&mut o, "droppedLinksCount", s.dropped_links_count.into());
    if let Some(status) = &s.status {
        let mut st = Map::new();
        text(&mut st, "message", &status.message);
        nonzero(&mut st, "code", status.code.into());
        o.insert("status".into(), Value::Object(st));
    }
    Value::Object(o)
}

fn metric(m: &metrics::Metric) -> Value {
    let mut o = Map::new();
    text(&mut o, "name", &m.name);
    text(&mut o, "description", &m.description);
    text(&mut o, "unit", &m.unit);
    match &m.data {
        Some(metrics::metric::Data::Sum(sum)) => {
            let mut d = Map::new();
            d.insert("dataPoints".into(), number_points(&sum.data_points));
            nonzero(
                &mut d,
                "aggregationTemporality",
                sum.aggregation_temporality.into(),
            );
            if sum.is_monotonic {
                d.insert("isMonotonic".into(), Value::Bool(true));
            }
            o.insert("sum".into(), Value::Object(d));
        }
        Some(metrics::metric::Data::Gauge(gauge)) => {
            o.insert(
                "gauge".into(),
                json!({ "dataPoints": number_points(&gauge.data_points) }),
            );
        }
        Some(metrics::metric::Data::Histogram(histogram)) => {
            let points = histogram.data_points.iter().map(|p| {
                let mut o = Map::new();
                key_values(&mut o, "attributes", &p.attributes);
                u64s(&mut o, "startTimeUnixNano", p.start_time_unix_nano);
                u64s(&mut o, "timeUnixNano", p.time_unix_nano);
                o.insert("count".into(), Value::String(p.count.to_string()));
                if let Some(sum) = p.sum {
                    o.insert("sum".into(), double(sum));
                }
                let counts = p.bucket_counts.iter().map(|c| Value::String(c.to_string()));
                o.insert("bucketCounts".into(), Value::Array(counts.collect()));
                let bounds = p.explicit_bounds.iter().map(|b| double(*b));
                o.insert("explicitBounds".into(), Value::Array(bounds.collect()));
                nonzero(&mut o, "flags", p.flags.into());
                if let Some(min) = p.min {
                    o.insert("min".into(), double(min));
                }
                if let Some(max) = p.max {
                    o.insert("max".into(), double(max));
                }
                Value::Object(o)
            });
            let mut d = Map::new();
            d.insert("dataPoints".into(), Value::Array(points.collect()));
            nonzero(
                &mut d,
                "aggregationTemporality",
                histogram.aggregation_temporality.into(),
            );
            o.insert("histogram".into(), Value::Object(d));
        }
        // The batch layout has no other kinds.
        Some(_) | None => {}
    }
    Value::Object(o)
}

fn number_points(points: &[metrics::NumberDataPoint]) -> Value {
    let points = points.iter().map(|p| {
        let mut o = Map::new();
        key_values(&mut o, "attributes", &p.attributes);
        u64s(&mut o, "startTimeUnixNano", p.start_time_unix_nano);
        u64s(&mut o, "timeUnixNano", p.time_unix_nano);
        match p.value {
            Some(metrics::number_data_point::Value::AsInt(i)) => {
                o.insert("asInt".into(), Value::String(i.to_string()));
            }
            Some(metrics::number_data_point::Value::AsDouble(d)) => {
                o.insert("asDouble".into(), double(d));
            }
            None => {}
        }
        nonzero(&mut o, "flags", p.flags.into());
        Value::Object(o)
    });
    Value::Array(points.collect())
}

fn key_values(o: &mut Map<String, Value>, field: &str, key_values: &[common::KeyValue]) {
    if !key_values.is_empty() {
        o.insert(field.into(), key_value_list(key_values));
    }
}

fn key_value_list(key_values: &[common::KeyValue]) -> Value {
    let items = key_values.iter().map(|kv| {
        let mut o = Map::new();
        o.insert("key".into(), Value::String(kv.key.clone()));
        if let Some(value) = &kv.value {
            o.insert("value".into(), any_value(value));
        }
        Value::Object(o)
    });
    Value::Array(items.collect())
}

fn any_value(value: &common::AnyValue) -> Value {
    use common::any_value::Value as V;
    match &value.value {
        None => json!({}),
        Some(V::StringValue(s)) => json!({ "stringValue": s }),
        Some(V::BoolValue(b)) => json!({ "boolValue": b }),
        Some(V::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(V::DoubleValue(d)) => json!({ "doubleValue": double(*d) }),
        Some(V::BytesValue(b)) => {
            json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        Some(V::ArrayValue(a)) => {
            json!({ "arrayValue": { "values": a.values.iter().map(any_value).collect::<Vec<_>>() } })
        }
        Some(V::KvlistValue(kv)) => {
            json!({ "kvlistValue": { "values": key_value_list(&kv.values) } })
        }
    }
}

/// A double as JSON: a number, or the strings `NaN`, `Infinity` and `-Infinity`.
fn double(d: f64) -> Value {
    if d.is_nan() {
        Value::String("NaN".into())
    } else if d.is_infinite() {
        Value::String(if d > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        json!(d)
    }
}

fn u64s(o: &mut Map<String, Value>, field: &str, value: u64) {
    if value != 0 {
        o.insert(field.into(), Value::String(value.to_string()));
    }
}

fn nonzero(o: &mut Map<String, Value>, field: &str, value: i64) {
    if value != 0 {
        o.insert(field.into(), Value::from(value));
    }
}

fn text(o: &mut Map<String, Value>, field: &str, value: &str) {
    if !value.is_empty() {
        o.insert(field.into(), Value::String(value.into()));
    }
}

fn hex(o: &mut Map<String, Value>, field: &str, id: &[u8]) {
    if !id.is_empty() {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        o.insert(field.into(), Value::String(hex));
    }
}
