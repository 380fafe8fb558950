//! The recording API with the host compiled out (the `runtime` feature off): the same types and
//! calls as the host's, each doing nothing. No config is read, no thread or plugin started, no
//! record kept; every call returns at once, and `Telemetry::stats` and `shutdown` report no
//! exporter. An application's call sites compile unchanged either way.

use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use wasmtel_sdk::encode::AttrValue;
use wasmtel_sdk::model::{Event, KeyValue, Record, Scope, SpanKind, StatusCode, Str, Value};

use crate::context::SpanContext;
use crate::error::{ConfigError, Error};
use crate::settings::OtelSettings;
use crate::stats::ExporterStats;

/// A configuration; with the host compiled out it holds nothing, and reading one reads nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    _private: (),
}

impl Config {
    /// A config; the file is not read.
    pub fn from_file(_path: &Path) -> Result<Config, ConfigError> {
        Ok(Config::default())
    }

    /// A config; the text is not parsed.
    pub fn parse(_text: &str, _file: &Path, _base: &Path) -> Result<Config, ConfigError> {
        Ok(Config::default())
    }

    /// A config with no exporter.
    pub fn empty() -> Config {
        Config::default()
    }

    /// Always false: nothing can run.
    pub fn enabled(&self) -> bool {
        false
    }

    /// The config, still off.
    pub fn with_enabled(self, _enabled: bool) -> Config {
        self
    }

    /// The config; the environment is not read.
    pub fn with_env(self) -> Result<Config, ConfigError> {
        Ok(self)
    }

    /// The config; `var` is not called.
    pub fn with_vars(self, _var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Ok(self)
    }

    /// None.
    pub fn notices(&self) -> &[String] {
        &[]
    }

    /// None: no `[otel]` table is read.
    pub fn otel(&self) -> Option<&OtelSettings> {
        None
    }
}

/// Options for [`Telemetry`]; each is accepted and has no effect.
pub struct TelemetryBuilder {
    _private: (),
}

impl TelemetryBuilder {
    /// The builder; the resource is not kept.
    pub fn resource(self, _attributes: Vec<KeyValue>) -> Self {
        self
    }

    /// The builder.
    pub fn deterministic_batching(self) -> Self {
        self
    }

    /// The builder; no ring is kept.
    pub fn feedback_ring(self, _max_bytes: NonZeroUsize) -> Self {
        self
    }

    /// The builder; no summary is kept.
    pub fn session_summary(self) -> Self {
        self
    }

    /// The builder.
    pub fn cache_dir(self, _dir: Option<PathBuf>) -> Self {
        self
    }

    /// Telemetry that records nothing; never fails.
    pub fn start(self) -> Result<Telemetry, Error> {
        Ok(Telemetry { _private: () })
    }
}

/// Telemetry that records nothing. Every record call returns at once and keeps nothing.
#[derive(Clone)]
pub struct Telemetry {
    _private: (),
}

impl Telemetry {
    /// Telemetry that records nothing; never fails.
    pub fn start(_config: Config) -> Result<Telemetry, Error> {
        Ok(Telemetry { _private: () })
    }

    /// A builder whose options have no effect.
    pub fn builder(_config: Config) -> TelemetryBuilder {
        TelemetryBuilder { _private: () }
    }

    /// Empty: there is no session.
    pub fn session_id(&self) -> &str {
        ""
    }

    /// Does nothing.
    pub fn record(&self, _record: Record) {}

    /// Does nothing.
    pub fn record_blocking(&self, _record: Record) {}

    /// An event builder whose calls do nothing.
    pub fn event(&self, _name: impl Into<Str>) -> EventBuilder<'_> {
        EventBuilder {
            _telemetry: PhantomData,
        }
    }

    /// Does nothing.
    pub fn emit(&self, _event: Event) {}

    /// None: no ring is kept.
    pub fn feedback(&self, _timeout: Duration) -> Option<(FeedbackRing, bool)> {
        None
    }

    /// None: no summary is kept.
    pub fn session_summary(&self) -> Option<crate::summary::SessionSummary> {
        None
    }

    /// A counter that records nothing.
    pub fn counter(&self, _name: &str) -> Counter {
        Counter { _private: () }
    }

    /// An up-down counter that records nothing.
    pub fn up_down_counter(&self, _name: &str) -> UpDownCounter {
        UpDownCounter { _private: () }
    }

    /// A histogram that records nothing.
    pub fn histogram(&self, _name: &str) -> Histogram {
        Histogram { _private: () }
    }

    /// A gauge that records nothing.
    pub fn gauge(&self, _name: &str) -> Gauge {
        Gauge { _private: () }
    }

    /// A span builder whose span records nothing.
    pub fn span(&self, _name: &str) -> SpanBuilder {
        SpanBuilder { parent: None }
    }

    /// None: there are no exporters.
    pub fn stats(&self) -> Vec<ExporterStats> {
        Vec::new()
    }

    /// True at once: nothing is pending.
    pub fn flush(&self, _timeout: Duration) -> bool {
        true
    }

    /// None: there are no exporters.
    pub fn shutdown(&self) -> Vec<ExporterStats> {
        Vec::new()
    }

    /// None: there are no exporters.
    pub fn shutdown_with_timeout(&self, _budget: Duration) -> Vec<ExporterStats> {
        Vec::new()
    }
}

/// The records kept for feedback; with the host compiled out none is ever returned.
#[derive(Clone)]
pub struct FeedbackRing {
    _private: (),
}

impl FeedbackRing {
    /// Empty.
    pub fn jsonl(&self) -> Vec<u8> {
        Vec::new()
    }

    /// Zero.
    pub fn len(&self) -> usize {
        0
    }

    /// True.
    pub fn is_empty(&self) -> bool {
        true
    }

    /// Zero.
    pub fn dropped(&self) -> u64 {
        0
    }
}

/// An event builder whose calls do nothing.
#[must_use = "an event is recorded by `emit`"]
pub struct EventBuilder<'t> {
    _telemetry: PhantomData<&'t Telemetry>,
}

// As the host's builder, so that its borrow of the telemetry ends where the host's does.
impl Drop for EventBuilder<'_> {
    fn drop(&mut self) {}
}

impl EventBuilder<'_> {
    /// Does nothing.
    pub fn attr(&mut self, _key: impl AsRef<str>, _value: impl AttrValue) -> &mut Self {
        self
    }

    /// Does nothing.
    pub fn severity(&mut self, _number: u8, _text: impl Into<Str>) -> &mut Self {
        self
    }

    /// Does nothing.
    pub fn body(&mut self, _body: impl Into<Value>) -> &mut Self {
        self
    }

    /// Does nothing.
    pub fn at(&mut self, _time_unix_nano: u64) -> &mut Self {
        self
    }

    /// Does nothing.
    pub fn in_span(&mut self, _context: SpanContext) -> &mut Self {
        self
    }

    /// Does nothing.
    pub fn scope(&mut self, _scope: Scope) -> &mut Self {
        self
    }

    /// Does nothing.
    pub fn emit(&mut self) {}
}

/// The instruments, each a handle whose calls do nothing.
macro_rules! instruments {
    ($($(#[$doc:meta])* $ty:ident, $method:ident, $value:ty;)*) => {$(
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            _private: (),
        }

        impl $ty {
            /// Does nothing.
            pub fn $method(&self, _value: $value, _attributes: &[KeyValue]) {}

            /// The instrument.
            pub fn with_unit(self, _unit: &str) -> Self {
                self
            }

            /// The instrument.
            pub fn with_description(self, _description: &str) -> Self {
                self
            }

            /// The instrument.
            pub fn with_scope(self, _scope: Scope) -> Self {
                self
            }
        }
    )*};
}

instruments! {
    /// A counter that records nothing.
    Counter, add, u64;
    /// An up-down counter that records nothing.
    UpDownCounter, add, i64;
    /// A histogram that records nothing.
    Histogram, record, f64;
    /// A gauge that records nothing.
    Gauge, record, f64;
}

impl Gauge {
    /// The gauge; the callback is dropped, never called.
    pub fn with_callback(self, _callback: impl Fn(&Observer<'_>) + Send + Sync + 'static) -> Self {
        self
    }

    /// Does nothing.
    pub fn record_int(&self, _value: i64, _attributes: &[KeyValue]) {}
}

impl Histogram {
    /// The histogram.
    pub fn with_bounds(self, _bounds: &[f64]) -> Self {
        self
    }
}

/// What an observable gauge's callback is given; with the host compiled out no callback is
/// called.
pub struct Observer<'a> {
    _collection: PhantomData<&'a ()>,
}

impl Observer<'_> {
    /// Does nothing.
    pub fn observe(&self, _value: f64, _attributes: &[KeyValue]) {}

    /// Does nothing.
    pub fn observe_int(&self, _value: i64, _attributes: &[KeyValue]) {}
}

/// A span builder whose span records nothing.
pub struct SpanBuilder {
    parent: Option<SpanContext>,
}

impl SpanBuilder {
    /// The builder; the parent's context becomes the span's (see [`ActiveSpan::context`]).
    pub fn parent(self, parent: SpanContext) -> Self {
        SpanBuilder {
            parent: Some(parent),
        }
    }

    /// The builder.
    pub fn kind(self, _kind: SpanKind) -> Self {
        self
    }

    /// The builder.
    pub fn attr(self, _key: impl Into<Str>, _value: impl Into<Value>) -> Self {
        self
    }

    /// The builder.
    pub fn scope(self, _scope: Scope) -> Self {
        self
    }

    /// A span that records nothing.
    pub fn start(self) -> ActiveSpan {
        ActiveSpan {
            context: self.parent.unwrap_or(SpanContext::new(0, 0, false)),
        }
    }
}

/// A span that records nothing.
pub struct ActiveSpan {
    context: SpanContext,
}

impl ActiveSpan {
    /// As OpenTelemetry's no-op spans: the parent's context, passed on unchanged (so a trace
    /// that came in goes on to children and other processes); without a parent, the invalid
    /// context (zero ids, not sampled), which [`SpanContext::from_traceparent`] refuses.
    pub fn context(&self) -> SpanContext {
        self.context
    }

    /// Does nothing.
    pub fn set_attr(&mut self, _key: impl Into<Str>, _value: impl Into<Value>) {}

    /// Does nothing.
    pub fn add_event(&mut self, _name: &str, _attributes: &[KeyValue]) {}

    /// Does nothing.
    pub fn set_status(&mut self, _status: StatusCode, _message: &str) {}

    /// Does nothing.
    pub fn end(self) {}
}

/// A `tracing-subscriber` layer that records nothing.
pub struct TelemetryLayer {
    _private: (),
}

impl TelemetryLayer {
    /// A layer that records nothing.
    pub fn new(_telemetry: &Telemetry) -> TelemetryLayer {
        TelemetryLayer { _private: () }
    }

    /// The layer.
    pub fn with_targets(self, _prefixes: &[&str]) -> TelemetryLayer {
        self
    }

    /// The layer.
    pub fn with_span_attributes(self, _attributes: &[(String, String)]) -> TelemetryLayer {
        self
    }
}

impl<S> tracing_subscriber::Layer<S> for TelemetryLayer where S: Subscriber + for<'a> LookupSpan<'a> {}
