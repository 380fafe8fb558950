//! The native peer of the `otlp` plugin: records of the record format exported by
//! opentelemetry-otlp 0.31 (the crate Codex exports with) over OTLP/HTTP (protobuf or JSON, with
//! a pooled hyper client) or OTLP/gRPC (tonic), for the differential test and the benchmark.
//!
//! Events and spans go straight to the crate's exporters, so their times and ids are the
//! records'; sums and gauges are recorded on the SDK's instruments (whose reader stamps its own
//! times) and collected once. Histograms are left out: their points cannot be recorded back
//! as measurements.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, Key, KeyValue, StringValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use wasmtel_sdk::model::{self, MetricData, Number, Record};

/// How the native exporters send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transport {
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies.
    HttpJson,
    /// OTLP/gRPC.
    Grpc,
}

/// opentelemetry-otlp's HTTP client: a pooled hyper client on a tokio runtime.
#[derive(Clone, Debug)]
struct Hyper {
    client: Client<HttpConnector, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Hyper {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move {
                let response = client.request(request.map(Full::new)).await?;
                let (parts, body) = response.into_parts();
                let body = body.collect().await?.to_bytes();
                Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
            })
            .await?
    }
}

/// The native exporters of one transport to one collector.
pub struct Native {
    runtime: tokio::runtime::Runtime,
    transport: Transport,
    /// `http://host:port`.
    base: String,
    http: Hyper,
}

fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn scope(s: &model::Scope) -> InstrumentationScope {
    let mut builder = InstrumentationScope::builder(s.name.clone());
    if !s.version.is_empty() {
        builder = builder.with_version(s.version.clone());
    }
    builder.build()
}

fn any_value(v: &model::Value) -> Option<AnyValue> {
    Some(match v {
        model::Value::Empty => return None,
        model::Value::String(s) => AnyValue::String(s.to_string().into()),
        model::Value::Bool(b) => AnyValue::Boolean(*b),
        model::Value::Int(i) => AnyValue::Int(*i),
        model::Value::Double(d) => AnyValue::Double(*d),
        model::Value::Bytes(b) => AnyValue::Bytes(Box::new(b.clone())),
        model::Value::Array(values) => {
            AnyValue::ListAny(Box::new(values.iter().filter_map(any_value).collect()))
        }
        model::Value::Map(entries) => AnyValue::Map(Box::new(
            entries
                .iter()
                .filter_map(|kv| Some((Key::from(kv.key.to_string()), any_value(&kv.value)?)))
                .collect(),
        )),
    })
}

/// An attribute as the trace and metrics APIs take it (scalars and arrays of strings, which is
/// what the fixture's spans and metrics hold).
fn key_value(kv: &model::KeyValue) -> KeyValue {
    let value = match &kv.value {
        model::Value::String(s) => Value::String(s.to_string().into()),
        model::Value::Bool(b) => Value::Bool(*b),
        model::Value::Int(i) => Value::I64(*i),
        model::Value::Double(d) => Value::F64(*d),
        model::Value::Array(values) => Value::Array(opentelemetry::Array::String(
            values
                .iter()
                .map(|v| match v {
                    model::Value::String(s) => StringValue::from(s.to_string()),
                    other => panic!("an array of strings, not {other:?}"),
                })
                .collect(),
        )),
        other => panic!("a value the trace API cannot hold: {other:?}"),
    };
    KeyValue::new(kv.key.to_string(), value)
}

impl Native {
    /// Exporters to the collector at `base` (`http://host:port`).
    pub fn new(base: &str, transport: Transport) -> Native {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let http = Hyper {
            client: Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(HttpConnector::new()),
            runtime: runtime.handle().clone(),
        };
        Native {
            runtime,
            transport,
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    fn protocol(&self) -> opentelemetry_otlp::Protocol {
        match self.transport {
            Transport::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
            _ => opentelemetry_otlp::Protocol::HttpBinary,
        }
    }

    /// Exports `records` (events and spans as they are, sums and gauges through instruments)
    /// with `resource`.
    pub fn export(&self, resource: &[model::KeyValue], records: &[Record]) {
        let _inside = self.runtime.enter();
        let resource = Resource::builder_empty()
            .with_attributes(resource.iter().map(key_value))
            .build();
        self.export_logs(&resource, records);
        self.export_spans(&resource, records);
        self.export_metrics(&resource, records);
    }

    /// Its logs exporter (to `<base>/v1/logs`, or the gRPC service).
    pub fn log_exporter(&self) -> opentelemetry_otlp::LogExporter {
        let _inside = self.runtime.enter();
        let builder = opentelemetry_otlp::LogExporter::builder();
        match self.transport {
            Transport::Grpc => builder.with_tonic().with_endpoint(&self.base).build(),
            _ => builder
                .with_http()
                .with_http_client(self.http.clone())
                .with_protocol(self.protocol())
                .with_endpoint(format!("{}/v1/logs", self.base))
                .build(),
        }
        .expect("a log exporter")
    }

    fn export_logs(&self, resource: &Resource, records: &[Record]) {
        let events: Vec<&model::Event> = records
            .iter()
            .filter_map(|r| match r {
                Record::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        if events.is_empty() {
            return;
        }
        let mut exporter = self.log_exporter();
        exporter.set_resource(resource);
        let provider = SdkLoggerProvider::builder().build();
        let logger = provider.logger("native");
        let made: Vec<_> = events
            .iter()
            .map(|e| {
                let mut record = logger.create_log_record();
                record.set_timestamp(time(e.time_unix_nano));
                record.set_observed_timestamp(time(e.time_unix_nano));
                if let Some(severity) = severity(e.severity_number) {
                    record.set_severity_number(severity);
                }
                if !e.severity_text.is_empty() {
                    record.set_severity_text(leak(&e.severity_text));
                }
                if let Some(body) = any_value(&e.body) {
                    record.set_body(body);
                }
                if !e.name.is_empty() {
                    record.set_event_name(leak(&e.name));
                }
                for kv in &e.attributes {
                    if let Some(value) = any_value(&kv.value) {
                        record.add_attribute(Key::from(kv.key.to_string()), value);
                    }
                }
                if let (Some(trace), Some(span)) = (e.trace_id, e.span_id) {
                    record.set_trace_context(
                        TraceId::from_bytes(trace.to_be_bytes()),
                        SpanId::from_bytes(span.to_be_bytes()),
                        None,
                    );
                }
                (record, scope(&e.scope))
            })
            .collect();
        let pairs: Vec<_> = made.iter().map(|(r, s)| (r, s)).collect();
        self.runtime
            .block_on(exporter.export(LogBatch::new(&pairs)))
            .expect("the native logs export");
    }

    fn export_spans(&self, resource: &Resource, records: &[Record]) {
        let spans: Vec<SpanData> = records
            .iter()
            .filter_map(|r| match r {
                Record::Span(s) => Some(span_data(s)),
                _ => None,
            })
            .collect();
        if spans.is_empty() {
            return;
        }
        let builder = opentelemetry_otlp::SpanExporter::builder();
        let mut exporter = match self.transport {
            Transport::Grpc => builder.with_tonic().with_endpoint(&self.base).build(),
            _ => builder
                .with_http()
                .with_http_client(self.http.clone())
                .with_protocol(self.protocol())
                .with_endpoint(format!("{}/v1/traces", self.base))
                .build(),
        }
        .expect("a span exporter");
        exporter.set_resource(resource);
        self.runtime
            .block_on(exporter.export(spans))
            .expect("the native traces export");
    }

    fn export_metrics(&self, resource: &Resource, records: &[Record]) {
        let builder = opentelemetry_otlp::MetricExporter::builder();
        let exporter = match self.transport {
            Transport::Grpc => builder
                .with_tonic()
                .with_temporality(Temporality::Delta)
                .with_endpoint(&self.base)
                .build(),
            _ => builder
                .with_http()
                .with_http_client(self.http.clone())
                .with_protocol(self.protocol())
                .with_temporality(Temporality::Delta)
                .with_endpoint(format!("{}/v1/metrics", self.base))
                .build(),
        }
        .expect("a metric exporter");
        let reader = PeriodicReader::builder(exporter)
            .with_interval(Duration::from_secs(3600))
            .build();
        let provider = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(reader)
            .build();
        for record in records {
            let Record::Metric(m) = record else { continue };
            let meter = provider.meter_with_scope(scope(&m.scope));
            let attributes =
                |p: &model::NumberPoint| p.attributes.iter().map(key_value).collect::<Vec<_>>();
            match &m.data {
                MetricData::Sum {
                    points,
                    monotonic: true,
                    ..
                } => {
                    let counter = meter
                        .u64_counter(m.name.clone())
                        .with_unit(m.unit.clone())
                        .with_description(m.description.clone())
                        .build();
                    for p in points {
                        let Number::Int(n) = p.value else {
                            panic!("an integer counter")
                        };
                        counter.add(n as u64, &attributes(p));
                    }
                }
                MetricData::Sum { points, .. } => {
                    let counter = meter
                        .i64_up_down_counter(m.name.clone())
                        .with_unit(m.unit.clone())
                        .with_description(m.description.clone())
                        .build();
                    for p in points {
                        let Number::Int(n) = p.value else {
                            panic!("an integer sum")
                        };
                        counter.add(n, &attributes(p));
                    }
                }
                MetricData::Gauge { points } => {
                    let gauge = meter
                        .i64_gauge(m.name.clone())
                        .with_unit(m.unit.clone())
                        .with_description(m.description.clone())
                        .build();
                    for p in points {
                        let Number::Int(n) = p.value else {
                            panic!("an integer gauge")
                        };
                        gauge.record(n, &attributes(p));
                    }
                }
                MetricData::Histogram { .. } => {}
            }
        }
        provider.force_flush().expect("the native metrics export");
        provider.shutdown().expect("shut down");
    }
}

fn severity(n: u8) -> Option<Severity> {
    use Severity::*;
    const ALL: [Severity; 24] = [
        Trace, Trace2, Trace3, Trace4, Debug, Debug2, Debug3, Debug4, Info, Info2, Info3, Info4,
        Warn, Warn2, Warn3, Warn4, Error, Error2, Error3, Error4, Fatal, Fatal2, Fatal3, Fatal4,
    ];
    ALL.get(usize::from(n).checked_sub(1)?).copied()
}

fn span_data(s: &model::Span) -> SpanData {
    let mut events = SpanEvents::default();
    events.events = s
        .events
        .iter()
        .map(|e| {
            opentelemetry::trace::Event::new(
                e.name.clone(),
                time(e.time_unix_nano),
                e.attributes.iter().map(key_value).collect(),
                0,
            )
        })
        .collect();
    let mut links = SpanLinks::default();
    links.links = s
        .links
        .iter()
        .map(|l| {
            opentelemetry::trace::Link::new(
                SpanContext::new(
                    TraceId::from_bytes(l.trace_id.to_be_bytes()),
                    SpanId::from_bytes(l.span_id.to_be_bytes()),
                    TraceFlags::default(),
                    false,
                    TraceState::default(),
                ),
                l.attributes.iter().map(key_value).collect(),
                0,
            )
        })
        .collect();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(s.trace_id.to_be_bytes()),
            SpanId::from_bytes(s.span_id.to_be_bytes()),
            TraceFlags::default(),
            false,
            TraceState::default(),
        ),
        parent_span_id: s
            .parent_span_id
            .map_or(SpanId::INVALID, |p| SpanId::from_bytes(p.to_be_bytes())),
        parent_span_is_remote: false,
        span_kind: match s.kind {
            model::SpanKind::Internal => SpanKind::Internal,
            model::SpanKind::Server => SpanKind::Server,
            model::SpanKind::Client => SpanKind::Client,
            model::SpanKind::Producer => SpanKind::Producer,
            model::SpanKind::Consumer => SpanKind::Consumer,
        },
        name: Cow::Owned(s.name.clone()),
        start_time: time(s.start_time_unix_nano),
        end_time: time(s.end_time_unix_nano),
        attributes: s.attributes.iter().map(key_value).collect(),
        dropped_attributes_count: 0,
        events,
        links,
        status: match s.status {
            model::StatusCode::Unset => Status::Unset,
            model::StatusCode::Ok => Status::Ok,
            model::StatusCode::Error => Status::error(s.status_message.clone()),
        },
        instrumentation_scope: scope(&s.scope),
    }
}
