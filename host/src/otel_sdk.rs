//! Exporters for the OpenTelemetry SDK (feature `opentelemetry`): [`LogExporter`],
//! [`SpanExporter`] and [`MetricExporter`] implement `opentelemetry_sdk`'s exporter traits and
//! hand every batch the SDK's processors and readers make to wasmtel's exporters, so that an
//! application instrumented with OpenTelemetry (an `SdkLoggerProvider`, `SdkTracerProvider`,
//! `SdkMeterProvider`) exports through any wasmtel plugin without changing its instrumentation.
//!
//! ```
//! use opentelemetry::logs::{LogRecord, Logger, LoggerProvider};
//! use opentelemetry_sdk::logs::SdkLoggerProvider;
//! use wasmtel::{Config, Telemetry};
//!
//! let telemetry = Telemetry::start(Config::empty())?;
//! let provider = SdkLoggerProvider::builder()
//!     .with_batch_exporter(wasmtel::otel_sdk::LogExporter::new(&telemetry))
//!     .build();
//! let logger = provider.logger("codex_otel");
//! let mut record = logger.create_log_record();
//! record.set_event_name("codex.user_prompt");
//! logger.emit(record);
//! provider.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The records go into each exporter's queue as wasmtel's own do, to the exporters that take
//! their signal. Outside an async runtime an export waits for room in a full queue (the SDK's
//! processor holds its next batch meanwhile); inside one it does not wait, and what does not fit
//! is dropped and counted. The SDK's resource (`set_resource`) is merged under wasmtel's (what
//! wasmtel's names keeps wasmtel's value) for what follows. The SDK's `force_flush` and
//! `shutdown` wait for wasmtel's exporters to export what was handed over (a flush of the
//! telemetry, within the SDK's timeout; 5 s for `force_flush`); they do not shut wasmtel down.
//! Metrics come already aggregated, with the SDK's temporality (cumulative unless
//! [`MetricExporter::with_temporality`] says otherwise); exponential histograms have no place in
//! the record format and are counted as invalid.

use std::fmt;
use std::time::{Duration, SystemTime};

use opentelemetry::logs::AnyValue;
use opentelemetry::trace::{SpanId, Status, TraceId};
use opentelemetry::{Array, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData as SdkData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::SpanData;
use wasmtel_sdk::model::{
    Event, HistogramPoint, KeyValue, Metric, MetricData, Number, NumberPoint, Record, Scope, Span,
    SpanEvent, SpanKind, SpanLink, StatusCode, Temporality, Value,
};

use crate::exporter::Signal;
use crate::telemetry::Telemetry;

/// What the three exporters share: the telemetry they hand records to.
#[derive(Clone)]
struct Handoff {
    telemetry: Telemetry,
}

impl Handoff {
    fn new(telemetry: &Telemetry) -> Handoff {
        Handoff {
            telemetry: telemetry.clone(),
        }
    }

    /// Queues `record`, waiting for room outside an async runtime.
    fn record(&self, record: Record) {
        if tokio::runtime::Handle::try_current().is_err() {
            self.telemetry.record_blocking(record);
        } else {
            self.telemetry.record(record);
        }
    }

    /// The SDK's resource under wasmtel's: what wasmtel's resource (the application's, and the
    /// environment's over it) names is kept, what only the SDK's names is added.
    fn resource(&self, resource: &Resource) {
        let ours = self.telemetry.resource();
        let attributes = resource
            .iter()
            .filter(|(key, _)| !ours.iter().any(|kv| kv.key == key.as_str()))
            .map(|(key, value)| KeyValue::new(key.as_str().to_string(), value_of(value)))
            .chain(ours.iter().cloned())
            .collect();
        self.record(Record::Resource(attributes));
    }

    /// Waits, up to `timeout`, until what was handed over is exported.
    fn flush(&self, timeout: Duration) -> OTelSdkResult {
        if self.telemetry.flush(timeout) {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(timeout))
        }
    }
}

macro_rules! debug_as {
    ($($ty:ident),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!("wasmtel::otel_sdk::", stringify!($ty)))
            }
        }
    )*};
}
debug_as!(LogExporter, SpanExporter, MetricExporter);

/// An `opentelemetry_sdk` log exporter into wasmtel: each log record becomes an event, named by
/// its event name.
#[derive(Clone)]
pub struct LogExporter(Handoff);

impl LogExporter {
    /// An exporter into `telemetry`'s exporters.
    pub fn new(telemetry: &Telemetry) -> LogExporter {
        LogExporter(Handoff::new(telemetry))
    }
}

impl opentelemetry_sdk::logs::LogExporter for LogExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        for (record, scope) in batch.iter() {
            self.0.record(Record::Event(event_of(record, scope)));
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.flush(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.resource(resource);
    }
}

/// An `opentelemetry_sdk` span exporter into wasmtel.
#[derive(Clone)]
pub struct SpanExporter(Handoff);

impl SpanExporter {
    /// An exporter into `telemetry`'s exporters.
    pub fn new(telemetry: &Telemetry) -> SpanExporter {
        SpanExporter(Handoff::new(telemetry))
    }
}

impl opentelemetry_sdk::trace::SpanExporter for SpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        for data in batch {
            self.0.record(Record::Span(span_of(data)));
        }
        Ok(())
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.0.flush(FLUSH_TIMEOUT)
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.0.flush(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.resource(resource);
    }
}

/// An `opentelemetry_sdk` push metric exporter into wasmtel (for a `PeriodicReader`).
#[derive(Clone)]
pub struct MetricExporter {
    handoff: Handoff,
    temporality: opentelemetry_sdk::metrics::Temporality,
}

impl MetricExporter {
    /// An exporter into `telemetry`'s exporters, asking the SDK for cumulative sums.
    pub fn new(telemetry: &Telemetry) -> MetricExporter {
        MetricExporter {
            handoff: Handoff::new(telemetry),
            temporality: opentelemetry_sdk::metrics::Temporality::Cumulative,
        }
    }

    /// The exporter asking the SDK for `temporality` (Codex's OTLP exporters ask for delta).
    pub fn with_temporality(
        mut self,
        temporality: opentelemetry_sdk::metrics::Temporality,
    ) -> MetricExporter {
        self.temporality = temporality;
        self
    }
}

impl PushMetricExporter for MetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        for scoped in metrics.scope_metrics() {
            let scope = scope_of(scoped.scope());
            for metric in scoped.metrics() {
                let data = match metric.data() {
                    AggregatedMetrics::F64(d) => data_of(d, Number::Double, |v| v),
                    AggregatedMetrics::U64(d) => data_of(
                        d,
                        |v| Number::Int(i64::try_from(v).unwrap_or(i64::MAX)),
                        |v| v as f64,
                    ),
                    AggregatedMetrics::I64(d) => data_of(d, Number::Int, |v| v as f64),
                };
                match data {
                    Some(data) => self.handoff.record(Record::Metric(Metric {
                        name: metric.name().to_string(),
                        description: metric.description().to_string(),
                        unit: metric.unit().to_string(),
                        scope: scope.clone(),
                        data,
                    })),
                    None => self
                        .handoff
                        .telemetry
                        .recorder()
                        .routes
                        .count_drop(Signal::Metrics, |c| &c.dropped_invalid),
                }
            }
        }
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.handoff.flush(FLUSH_TIMEOUT)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.handoff.flush(timeout)
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        self.temporality
    }
}

/// How long the SDK's `force_flush` waits for wasmtel's exporters.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn scope_of(scope: &InstrumentationScope) -> Scope {
    Scope {
        name: scope.name().to_string(),
        version: scope.version().unwrap_or_default().to_string(),
    }
}

fn trace_id(id: TraceId) -> Option<u128> {
    (id != TraceId::INVALID).then(|| u128::from_be_bytes(id.to_bytes()))
}

fn span_id(id: SpanId) -> Option<u64> {
    (id != SpanId::INVALID).then(|| u64::from_be_bytes(id.to_bytes()))
}

fn attributes_of(attributes: &[opentelemetry::KeyValue]) -> Vec<KeyValue> {
    attributes.iter().map(key_value).collect()
}

fn key_value(kv: &opentelemetry::KeyValue) -> KeyValue {
    KeyValue::new(kv.key.as_str().to_string(), value_of(&kv.value))
}

fn value_of(value: &opentelemetry::Value) -> Value {
    use opentelemetry::Value as V;
    fn array<T: Clone>(items: &[T], f: impl Fn(T) -> Value) -> Value {
        Value::Array(items.iter().cloned().map(f).collect())
    }
    match value {
        V::Bool(b) => Value::Bool(*b),
        V::I64(i) => Value::Int(*i),
        V::F64(f) => Value::Double(*f),
        V::String(s) => Value::String(s.as_str().to_string().into()),
        V::Array(Array::Bool(items)) => array(items, Value::Bool),
        V::Array(Array::I64(items)) => array(items, Value::Int),
        V::Array(Array::F64(items)) => array(items, Value::Double),
        V::Array(Array::String(items)) => {
            array(items, |s| Value::String(s.as_str().to_string().into()))
        }
        other => Value::String(other.to_string().into()),
    }
}

fn any_value(value: &AnyValue) -> Value {
    match value {
        AnyValue::Int(i) => Value::Int(*i),
        AnyValue::Double(f) => Value::Double(*f),
        AnyValue::String(s) => Value::String(s.as_str().to_string().into()),
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::Bytes(bytes) => Value::Bytes(bytes.to_vec()),
        AnyValue::ListAny(items) => Value::Array(items.iter().map(any_value).collect()),
        AnyValue::Map(map) => {
            // In key order: a map's order is the hasher's, not the application's.
            let mut entries: Vec<KeyValue> = map
                .iter()
                .map(|(k, v)| KeyValue::new(k.as_str().to_string(), any_value(v)))
                .collect();
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            Value::Map(entries)
        }
        _ => Value::Empty,
    }
}

fn event_of(record: &SdkLogRecord, scope: &InstrumentationScope) -> Event {
    let context = record.trace_context();
    Event {
        time_unix_nano: record
            .timestamp()
            .or(record.observed_timestamp())
            .map_or(0, nanos),
        name: record.event_name().unwrap_or_default().into(),
        severity_number: record.severity_number().map_or(0, |s| s as u8),
        severity_text: record.severity_text().unwrap_or_default().into(),
        body: record.body().map_or(Value::Empty, any_value),
        attributes: record
            .attributes_iter()
            .map(|(k, v)| KeyValue::new(k.as_str().to_string(), any_value(v)))
            .collect(),
        trace_id: context.and_then(|c| trace_id(c.trace_id)),
        span_id: context.and_then(|c| span_id(c.span_id)),
        scope: scope_of(scope),
    }
}

fn span_of(data: SpanData) -> Span {
    use opentelemetry::trace::SpanKind as K;
    let (status, status_message) = match data.status {
        Status::Unset => (StatusCode::Unset, String::new()),
        Status::Ok => (StatusCode::Ok, String::new()),
        Status::Error { description } => (StatusCode::Error, description.into_owned()),
    };
    Span {
        trace_id: trace_id(data.span_context.trace_id()).unwrap_or_default(),
        span_id: span_id(data.span_context.span_id()).unwrap_or_default(),
        parent_span_id: span_id(data.parent_span_id),
        name: data.name.into_owned(),
        kind: match data.span_kind {
            K::Client => SpanKind::Client,
            K::Server => SpanKind::Server,
            K::Producer => SpanKind::Producer,
            K::Consumer => SpanKind::Consumer,
            K::Internal => SpanKind::Internal,
        },
        start_time_unix_nano: nanos(data.start_time),
        end_time_unix_nano: nanos(data.end_time),
        attributes: attributes_of(&data.attributes),
        events: data
            .events
            .events
            .iter()
            .map(|e| SpanEvent {
                time_unix_nano: nanos(e.timestamp),
                name: e.name.to_string(),
                attributes: attributes_of(&e.attributes),
            })
            .collect(),
        links: data
            .links
            .links
            .iter()
            .map(|l| SpanLink {
                trace_id: trace_id(l.span_context.trace_id()).unwrap_or_default(),
                span_id: span_id(l.span_context.span_id()).unwrap_or_default(),
                attributes: attributes_of(&l.attributes),
            })
            .collect(),
        status,
        status_message,
        scope: scope_of(&data.instrumentation_scope),
    }
}

/// The points of an aggregation, its numbers made by `number` (and `float`, for histograms);
/// none for an exponential histogram.
fn data_of<T: Copy>(
    data: &SdkData<T>,
    number: impl Fn(T) -> Number,
    float: impl Fn(T) -> f64,
) -> Option<MetricData> {
    use opentelemetry_sdk::metrics::Temporality as SdkTemporality;
    let temporality = |t: SdkTemporality| match t {
        SdkTemporality::Delta => Temporality::Delta,
        _ => Temporality::Cumulative,
    };
    let points = |start: u64, time: u64, points: &mut dyn Iterator<Item = (Vec<KeyValue>, T)>| {
        points
            .map(|(attributes, value)| NumberPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: time,
                value: number(value),
            })
            .collect()
    };
    let attributes = |kvs: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| -> Vec<KeyValue> {
        kvs.map(key_value).collect()
    };
    Some(match data {
        SdkData::Gauge(gauge) => MetricData::Gauge {
            points: points(
                gauge.start_time().map_or(0, nanos),
                nanos(gauge.time()),
                &mut gauge
                    .data_points()
                    .map(|p| (attributes(&mut p.attributes()), p.value())),
            ),
        },
        SdkData::Sum(sum) => MetricData::Sum {
            points: points(
                nanos(sum.start_time()),
                nanos(sum.time()),
                &mut sum
                    .data_points()
                    .map(|p| (attributes(&mut p.attributes()), p.value())),
            ),
            temporality: temporality(sum.temporality()),
            monotonic: sum.is_monotonic(),
        },
        SdkData::Histogram(histogram) => MetricData::Histogram {
            points: histogram
                .data_points()
                .map(|p| HistogramPoint {
                    attributes: attributes(&mut p.attributes()),
                    start_time_unix_nano: nanos(histogram.start_time()),
                    time_unix_nano: nanos(histogram.time()),
                    count: p.count(),
                    sum: float(p.sum()),
                    min: p.min().map(&float),
                    max: p.max().map(&float),
                    bounds: p.bounds().collect(),
                    counts: p.bucket_counts().collect(),
                })
                .collect(),
            temporality: temporality(histogram.temporality()),
        },
        SdkData::ExponentialHistogram(_) => return None,
    })
}
