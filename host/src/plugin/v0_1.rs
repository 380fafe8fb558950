//! Plugins built against the released `wasmtel:exporter@0.1` (0.1.0 or 0.1.1, frozen in
//! `wit/released/0.1.1`), run by this host through an adapter: their imports (`log`, `files`)
//! are served by the same host code as this version's, and each batch is split by signal and
//! laid out in 0.1's typed form (strings in one pool, records referring to it by slice and
//! range) for `export-events`, `export-spans` and `export-metrics`, called in that order for the
//! signals the batch holds.
//!
//! Each call has the deadline of one call (`sandbox.timeout_ms`). A call that fails ends the
//! batch, which is retried whole (or, on a permanent error, dropped whole), so the signals whose
//! call succeeded before it are exported again on a retry, and counted dropped though delivered
//! on a permanent error.

use std::time::{Duration, Instant};
use wasmtel_sdk::model::{Number, SpanKind, StatusCode, Temporality};
use wasmtel_sdk::view::{self, AnyValue, Attributes};

use wasmtime::Store;
use wasmtime::component::Resource;

use super::bindings::{self, v0_1};
use super::files::HeldFile;
use super::{CallResult, HostState, within};
use v0_1::types as t;
use v0_1::wasmtel::exporter::{files, log};

/// The exporter interface of 0.1, at the last 0.1 release; wasmtime finds a 0.1.0 plugin's by
/// semver too.
pub(super) const EXPORTER: &str = "wasmtel:exporter/exporter@0.1.1";
/// The last 0.1 release.
pub(super) const VERSION: &str = "0.1.1";

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => bindings::Level::Trace,
            log::Level::Debug => bindings::Level::Debug,
            log::Level::Info => bindings::Level::Info,
            log::Level::Warn => bindings::Level::Warn,
            log::Level::Error => bindings::Level::Error,
        };
        bindings::wasmtel::exporter::log::Host::log(self, level, message);
    }
}

impl t::Host for HostState {}

impl files::Host for HostState {
    fn try_lock(&mut self, path: String) -> Result<Resource<HeldFile>, files::LockError> {
        use bindings::wasmtel::exporter::files::{Host, LockError};
        Host::try_lock(self, path).map_err(|e| match e {
            LockError::Held => files::LockError::Held,
            LockError::Unsupported(why) => files::LockError::Unsupported(why),
            LockError::Failed(why) => files::LockError::Failed(why),
        })
    }

    fn remove_unlocked(&mut self, path: String) -> Result<bool, String> {
        bindings::wasmtel::exporter::files::Host::remove_unlocked(self, path)
    }
}

impl files::HostLock for HostState {
    fn drop(&mut self, lock: Resource<HeldFile>) -> wasmtime::Result<()> {
        bindings::wasmtel::exporter::files::HostLock::drop(self, lock)
    }
}

/// What a 0.1 call answers, its error as this version's.
fn outcome(result: wasmtime::Result<Result<(), v0_1::Error>>) -> CallResult {
    Ok(result?.map_err(|e| match e {
        v0_1::Error::Permanent(message) => bindings::Error::Permanent(message),
        v0_1::Error::Retryable(r) => {
            bindings::Error::Retryable(bindings::exports::wasmtel::exporter::exporter::Retryable {
                message: r.message,
                retry_after_ms: r.retry_after_ms,
            })
        }
    }))
}

/// A 0.1 plugin's instance, seen through this version's calls.
pub(super) struct Adapted(pub(super) v0_1::Plugin);

impl Adapted {
    pub(super) async fn init(
        &self,
        store: &mut Store<HostState>,
        config: &str,
        context: &bindings::Context,
    ) -> CallResult {
        let context = v0_1::Context {
            exporter_name: context.exporter_name.clone(),
            session_id: context.session_id.clone(),
        };
        let api = self.0.wasmtel_exporter_exporter();
        outcome(api.call_init(store, config, &context).await)
    }

    /// Exports `batch`, a call per signal it holds; the first that fails ends it.
    /// Exports `batch`, a call per signal it holds, each within `timeout` (if any) of its own;
    /// the first that fails ends it.
    pub(super) async fn export(
        &self,
        store: &mut Store<HostState>,
        batch: &view::Batch<'_>,
        timeout: Option<Duration>,
    ) -> CallResult {
        let api = self.0.wasmtel_exporter_exporter();
        let split = Split::of(batch);
        // Each call gets the deadline a 0.1 host gave it.
        let rearm = |store: &mut Store<HostState>| {
            store.data_mut().deadline = timeout.map(|t| Instant::now() + t);
        };
        if let Some(events) = &split.events {
            rearm(store);
            let call = api.call_export_events(&mut *store, events);
            if let Err(e) = outcome(within(timeout, call).await)? {
                return Ok(Err(e));
            }
        }
        if let Some(spans) = &split.spans {
            rearm(store);
            let call = api.call_export_spans(&mut *store, spans);
            if let Err(e) = outcome(within(timeout, call).await)? {
                return Ok(Err(e));
            }
        }
        match &split.metrics {
            Some(metrics) => {
                rearm(store);
                let call = api.call_export_metrics(&mut *store, metrics);
                outcome(within(timeout, call).await)
            }
            None => Ok(Ok(())),
        }
    }

    pub(super) async fn flush(&self, store: &mut Store<HostState>) -> CallResult {
        outcome(self.0.wasmtel_exporter_exporter().call_flush(store).await)
    }

    pub(super) async fn shutdown(&self, store: &mut Store<HostState>) -> CallResult {
        outcome(
            self.0
                .wasmtel_exporter_exporter()
                .call_shutdown(store)
                .await,
        )
    }
}

/// A batch in 0.1's form: one typed batch per signal it holds, each with its own pool.
struct Split {
    events: Option<t::EventBatch>,
    spans: Option<t::SpanBatch>,
    metrics: Option<t::MetricBatch>,
}

impl Split {
    fn of(batch: &view::Batch<'_>) -> Split {
        let mut events: Option<(Pool, Vec<t::Event>)> = None;
        let mut spans: Option<(Pool, t::SpanBatch)> = None;
        let mut metrics: Option<(Pool, t::MetricBatch)> = None;
        let resource = batch.resource();
        for record in batch.records() {
            match record {
                view::Record::Event(event) => {
                    let (pool, list) =
                        events.get_or_insert_with(|| (Pool::with(resource), Vec::new()));
                    list.push(pool.event(&event));
                }
                view::Record::Span(span) => {
                    let (pool, out) =
                        spans.get_or_insert_with(|| (Pool::with(resource), empty_spans()));
                    let span = pool.span(&span, out);
                    out.spans.push(span);
                }
                view::Record::Metric(metric) => {
                    let (pool, out) =
                        metrics.get_or_insert_with(|| (Pool::with(resource), empty_metrics()));
                    let metric = pool.metric(&metric, out);
                    out.metrics.push(metric);
                }
            }
        }
        Split {
            events: events.map(|(pool, events)| t::EventBatch {
                resource: pool.resource,
                pool: pool.done(),
                events,
            }),
            spans: spans.map(|(pool, mut out)| {
                out.resource = pool.resource;
                out.pool = pool.done();
                out
            }),
            metrics: metrics.map(|(pool, mut out)| {
                out.resource = pool.resource;
                out.pool = pool.done();
                out
            }),
        }
    }
}

fn empty_pool() -> t::Pool {
    t::Pool {
        data: Vec::new(),
        values: Vec::new(),
        attributes: Vec::new(),
    }
}

fn empty_spans() -> t::SpanBatch {
    t::SpanBatch {
        resource: range(0, 0),
        pool: empty_pool(),
        spans: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
    }
}

fn empty_metrics() -> t::MetricBatch {
    t::MetricBatch {
        resource: range(0, 0),
        pool: empty_pool(),
        metrics: Vec::new(),
        number_points: Vec::new(),
        histogram_points: Vec::new(),
        bounds: Vec::new(),
        counts: Vec::new(),
    }
}

/// `len` items from `start` (0.1's empty range if none). A batch is less than 4 GiB, so every
/// index fits.
fn range(start: usize, len: usize) -> t::Range {
    t::Range {
        start: if len == 0 { 0 } else { start as u32 },
        len: len as u32,
    }
}

fn trace_id(id: u128) -> t::TraceId {
    t::TraceId {
        hi: (id >> 64) as u64,
        lo: id as u64,
    }
}

/// The pool of one signal's batch as it is filled, with the resource's attributes first.
struct Pool {
    data: Vec<u8>,
    values: Vec<t::Value>,
    attributes: Vec<t::KeyValue>,
    resource: t::Range,
}

impl Pool {
    fn with(resource: Attributes<'_>) -> Pool {
        let mut pool = Pool {
            data: Vec::new(),
            values: Vec::new(),
            attributes: Vec::new(),
            resource: range(0, 0),
        };
        pool.resource = pool.attributes(resource);
        pool
    }

    fn done(self) -> t::Pool {
        t::Pool {
            data: self.data,
            values: self.values,
            attributes: self.attributes,
        }
    }

    fn slice(&mut self, bytes: &[u8]) -> t::Slice {
        if bytes.is_empty() {
            // 0.1's empty slice.
            return t::Slice { offset: 0, len: 0 };
        }
        let offset = self.data.len() as u32;
        self.data.extend_from_slice(bytes);
        t::Slice {
            offset,
            len: bytes.len() as u32,
        }
    }

    fn text(&mut self, text: &str) -> t::Slice {
        self.slice(text.as_bytes())
    }

    fn value(&mut self, value: AnyValue<'_>) -> t::Value {
        match value {
            AnyValue::Empty => t::Value::Empty,
            AnyValue::Str(s) => t::Value::String(self.text(s)),
            AnyValue::Bool(b) => t::Value::Boolean(b),
            AnyValue::Int(i) => t::Value::Int(i),
            AnyValue::Double(d) => t::Value::Double(d),
            AnyValue::Bytes(b) => t::Value::Bytes(self.slice(b)),
            AnyValue::Array(items) => {
                // Nested items first, so that this array's own items stay consecutive.
                let items: Vec<t::Value> = items.iter().map(|v| self.value(v)).collect();
                let start = self.values.len();
                self.values.extend(items);
                t::Value::Array(range(start, self.values.len() - start))
            }
            AnyValue::Map(entries) => t::Value::Kvlist(self.attributes(entries)),
        }
    }

    fn attributes(&mut self, attributes: Attributes<'_>) -> t::Range {
        let items: Vec<t::KeyValue> = attributes
            .iter()
            .map(|(key, value)| t::KeyValue {
                key: self.text(key),
                value: self.value(value),
            })
            .collect();
        let start = self.attributes.len();
        self.attributes.extend(items);
        range(start, self.attributes.len() - start)
    }

    fn scope(&mut self, scope: view::Scope<'_>) -> t::Scope {
        t::Scope {
            name: self.text(scope.name),
            version: self.text(scope.version),
        }
    }

    fn event(&mut self, event: &view::Event<'_>) -> t::Event {
        t::Event {
            time_unix_nano: event.time_unix_nano,
            name: self.text(event.name),
            severity_number: event.severity_number,
            severity_text: self.text(event.severity_text),
            body: self.value(event.body),
            attributes: self.attributes(event.attributes),
            trace_id: event.trace_id.map(trace_id),
            span_id: event.span_id,
            scope: self.scope(event.scope),
        }
    }

    fn span(&mut self, span: &view::Span<'_>, out: &mut t::SpanBatch) -> t::Span {
        let events: Vec<t::SpanEvent> = span
            .events
            .iter()
            .map(|e| t::SpanEvent {
                time_unix_nano: e.time_unix_nano,
                name: self.text(e.name),
                attributes: self.attributes(e.attributes),
            })
            .collect();
        let links: Vec<t::SpanLink> = span
            .links
            .iter()
            .map(|l| t::SpanLink {
                trace_id: trace_id(l.trace_id),
                span_id: l.span_id,
                attributes: self.attributes(l.attributes),
            })
            .collect();
        let events_at = range(out.events.len(), events.len());
        out.events.extend(events);
        let links_at = range(out.links.len(), links.len());
        out.links.extend(links);
        t::Span {
            trace_id: trace_id(span.trace_id),
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            name: self.text(span.name),
            kind: match span.kind {
                SpanKind::Internal => t::SpanKind::Internal,
                SpanKind::Server => t::SpanKind::Server,
                SpanKind::Client => t::SpanKind::Client,
                SpanKind::Producer => t::SpanKind::Producer,
                SpanKind::Consumer => t::SpanKind::Consumer,
            },
            start_time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            attributes: self.attributes(span.attributes),
            events: events_at,
            links: links_at,
            status: match span.status {
                StatusCode::Unset => t::StatusCode::Unset,
                StatusCode::Ok => t::StatusCode::Ok,
                StatusCode::Error => t::StatusCode::Error,
            },
            status_message: self.text(span.status_message),
            scope: self.scope(span.scope),
        }
    }

    fn metric(&mut self, metric: &view::Metric<'_>, out: &mut t::MetricBatch) -> t::Metric {
        let temporality = |t: Temporality| match t {
            Temporality::Delta => t::Temporality::Delta,
            Temporality::Cumulative => t::Temporality::Cumulative,
        };
        let data = match metric.data {
            view::MetricData::Sum {
                points,
                temporality: tempo,
                monotonic,
            } => t::MetricData::Sum(t::Sum {
                points: self.number_points(points, out),
                temporality: temporality(tempo),
                monotonic,
            }),
            view::MetricData::Gauge { points } => {
                t::MetricData::Gauge(self.number_points(points, out))
            }
            view::MetricData::Histogram {
                points,
                temporality: tempo,
            } => {
                let points: Vec<t::HistogramPoint> = points
                    .iter()
                    .map(|p| {
                        let bounds = range(out.bounds.len(), p.bounds.len());
                        out.bounds.extend(p.bounds.iter());
                        let counts = range(out.counts.len(), p.counts.len());
                        out.counts.extend(p.counts.iter());
                        t::HistogramPoint {
                            attributes: self.attributes(p.attributes),
                            start_time_unix_nano: p.start_time_unix_nano,
                            time_unix_nano: p.time_unix_nano,
                            count: p.count,
                            sum: p.sum,
                            min: p.min,
                            max: p.max,
                            bounds,
                            counts,
                        }
                    })
                    .collect();
                let at = range(out.histogram_points.len(), points.len());
                out.histogram_points.extend(points);
                t::MetricData::Histogram(t::Histogram {
                    points: at,
                    temporality: temporality(tempo),
                })
            }
        };
        t::Metric {
            name: self.text(metric.name),
            description: self.text(metric.description),
            unit: self.text(metric.unit),
            scope: self.scope(metric.scope),
            data,
        }
    }

    fn number_points(
        &mut self,
        points: view::List<'_, view::NumberPoint<'_>>,
        out: &mut t::MetricBatch,
    ) -> t::Range {
        let points: Vec<t::NumberPoint> = points
            .iter()
            .map(|p| t::NumberPoint {
                attributes: self.attributes(p.attributes),
                start_time_unix_nano: p.start_time_unix_nano,
                time_unix_nano: p.time_unix_nano,
                value: match p.value {
                    Number::Int(i) => t::Number::Int(i),
                    Number::Double(d) => t::Number::Double(d),
                },
            })
            .collect();
        let at = range(out.number_points.len(), points.len());
        out.number_points.extend(points);
        at
    }
}
