//! The record API's handles beyond plain events: metric instruments and spans. Each records
//! through a [`Recorder`] and keeps the telemetry that made it running.

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use wasmtel_sdk::encode::{AttrValue, EventAttributes};
use wasmtel_sdk::model::{
    Event, KeyValue, Number, Record, Scope, Span, SpanEvent, SpanKind, StatusCode, Str, Value,
};

use crate::clock::now_unix_nano;
use crate::context::SpanContext;
use crate::exporter::Signal;
use crate::metrics::{DEFAULT_BOUNDS, Instrument, InstrumentKind, Measure, Observer, Stream};
use crate::pipeline::{give_back, take_room};
use crate::routing::{Recorder, Routes};

macro_rules! instruments {
    ($($(#[$doc:meta])* $ty:ident, $method:ident, $value:ty, $kind:expr, $measure:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            recorder: Recorder,
            instrument: Arc<Instrument>,
            scope: Arc<Scope>,
            /// The instrument's points, found at the first measurement.
            stream: OnceLock<Option<Arc<Stream>>>,
        }

        impl $ty {
            pub(crate) fn new(recorder: Recorder, name: &str) -> Self {
                $ty {
                    recorder,
                    instrument: Arc::new(Instrument {
                        name: name.into(),
                        description: String::new(),
                        unit: String::new(),
                        kind: $kind,
                    }),
                    scope: Arc::default(),
                    stream: OnceLock::new(),
                }
            }

            /// Records `value` with `attributes`, folding it into the instrument's point for
            /// them. Never blocks, and never drops the measurement while telemetry runs.
            pub fn $method(&self, value: $value, attributes: &[KeyValue]) {
                let measure: fn($value) -> Measure = $measure;
                self.recorder.measure(
                    &self.instrument,
                    &self.scope,
                    &self.stream,
                    measure(value),
                    attributes,
                );
            }

            /// Sets the unit (UCUM, e.g. `ms`).
            pub fn with_unit(self, unit: &str) -> Self {
                self.with(|i| i.unit = unit.into())
            }

            /// Sets the description.
            pub fn with_description(self, description: &str) -> Self {
                self.with(|i| i.description = description.into())
            }

            /// Sets the instrumentation scope (default: none), e.g. the meter's name.
            pub fn with_scope(mut self, scope: Scope) -> Self {
                self.scope = Arc::new(scope);
                self.stream = OnceLock::new();
                self
            }

            fn with(mut self, f: impl FnOnce(&mut Instrument)) -> Self {
                f(Arc::make_mut(&mut self.instrument));
                self.stream = OnceLock::new();
                self
            }
        }
    )*};
}

instruments! {
    /// A monotonic sum, e.g. `codex.tool.call`.
    Counter, add, u64, InstrumentKind::Counter,
        |v| Measure::Add(i64::try_from(v).unwrap_or(i64::MAX));
    /// A sum that goes up and down, e.g. running processes.
    UpDownCounter, add, i64, InstrumentKind::UpDownCounter, Measure::Add;
    /// A distribution in explicit buckets, e.g. `codex.api_request.duration_ms`.
    Histogram, record, f64, InstrumentKind::Histogram(DEFAULT_BOUNDS.to_vec()), Measure::Sample;
    /// The last value seen, e.g. memory in use.
    Gauge, record, f64, InstrumentKind::Gauge, |v| Measure::Set(Number::Double(v));
}

impl Gauge {
    /// Makes the gauge observable: `callback` is called at every collection of metrics (each
    /// exporter's `metrics.interval_ms`, `flush`, shutdown), on an exporter's worker, and sets
    /// the gauge's points through the [`Observer`] it is given, e.g. the memory in use. Keep it
    /// quick. It is called until telemetry shuts down; a callback that panics is warned about
    /// and called again next time. A callback that holds the telemetry (a clone of it, or an
    /// instrument, client or facade made from it) keeps it running until
    /// [`crate::Telemetry::shutdown`] is called: dropping the other handles does not shut it
    /// down then.
    pub fn with_callback(self, callback: impl Fn(&Observer<'_>) + Send + Sync + 'static) -> Self {
        self.recorder
            .observe(&self.instrument, &self.scope, Box::new(callback));
        self
    }

    /// Records an integer `value` with `attributes` (exported as an integer point).
    pub fn record_int(&self, value: i64, attributes: &[KeyValue]) {
        self.recorder.measure(
            &self.instrument,
            &self.scope,
            &self.stream,
            Measure::Set(Number::Int(value)),
            attributes,
        );
    }
}

impl Histogram {
    /// Sets the upper bucket bounds (ascending; bounds that are not finite numbers are left out,
    /// as the last bucket already holds everything above the others); the default is
    /// OpenTelemetry's.
    pub fn with_bounds(self, bounds: &[f64]) -> Self {
        let mut bounds = bounds.to_vec();
        bounds.retain(|b| b.is_finite());
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        self.with(|i| i.kind = InstrumentKind::Histogram(bounds))
    }
}

/// An event being built at its record call: [`EventBuilder::emit`] records it. When no exporter
/// takes events (telemetry disabled, say), nothing is built: no call of the builder allocates or
/// converts its arguments, and `emit` does nothing. Its calls chain on the builder in place
/// (`telemetry.event("x").attr("k", 1).emit()`). Attributes are laid out in the batch layout as
/// they are added, keys and values copied from wherever they are (no attribute allocates), and
/// `emit` lays the event out once and copies it into every exporter's queue.
#[must_use = "an event is recorded by `emit`"]
pub struct EventBuilder<'t> {
    routes: &'t Routes,
    event: Option<Building>,
}

/// An event being built: its fields but its attributes, and its attributes laid out.
struct Building {
    event: Event,
    attributes: EventAttributes,
}

impl Building {
    /// An event named `name`, its attributes laid out in the thread's room.
    #[inline(never)]
    fn new(name: Str) -> Building {
        Building {
            event: Event::new(name),
            attributes: EventAttributes::in_buffer(take_room(&ATTRIBUTES)),
        }
    }

    /// Drops an event built but never emitted: `.emit()` forgotten at the end of a chain is a
    /// mistake at its call site, which the log says once per process.
    #[cold]
    #[inline(never)]
    fn not_emitted(mut self) {
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                event = %self.event.name,
                "an event was built with `event(..)` but never recorded: `.emit()` is missing"
            );
        }
        give_back(&ATTRIBUTES, self.attributes.take_buffer());
    }
}

/// Lays an attribute out: a call of its own, so that a builder that builds nothing (telemetry
/// disabled) stays a test per `attr`, however many attributes its chain adds.
#[inline(never)]
fn add(attributes: &mut EventAttributes, key: &str, value: impl AttrValue) {
    attributes.add(key, value);
}

thread_local! {
    /// The room a recording thread lays its events' attributes out in.
    static ATTRIBUTES: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

impl<'t> EventBuilder<'t> {
    /// An event named `name`, built only if some route takes events.
    #[inline(always)]
    pub(crate) fn new(routes: &'t Routes, name: impl Into<Str>) -> Self {
        if !routes.takes(Signal::Events) {
            return EventBuilder {
                routes,
                event: None,
            };
        }
        EventBuilder {
            routes,
            event: Some(Building::new(name.into())),
        }
    }

    /// Whether the event is being built (some route takes events), so `emit` records it.
    #[inline]
    pub(crate) fn is_building(&self) -> bool {
        self.event.is_some()
    }

    #[inline]
    fn with(&mut self, f: impl FnOnce(&mut Event)) -> &mut Self {
        if let Some(building) = &mut self.event {
            f(&mut building.event);
        }
        self
    }

    /// Adds an attribute: a key (text) and a value (text, a boolean, an integer, a float, a
    /// [`Value`]); neither is converted or kept, only copied into the event's layout.
    #[inline]
    pub fn attr(&mut self, key: impl AsRef<str>, value: impl AttrValue) -> &mut Self {
        if let Some(building) = &mut self.event {
            add(&mut building.attributes, key.as_ref(), value);
        }
        self
    }

    /// Sets the severity: an OpenTelemetry severity number and its text (the default is 9,
    /// `INFO`).
    #[inline]
    pub fn severity(&mut self, number: u8, text: impl Into<Str>) -> &mut Self {
        self.with(|e| {
            e.severity_number = number;
            e.severity_text = text.into();
        })
    }

    /// Sets the body.
    #[inline]
    pub fn body(&mut self, body: impl Into<Value>) -> &mut Self {
        self.with(|e| e.body = body.into())
    }

    /// Sets the time, in nanoseconds since the Unix epoch (the default is the time of `emit`).
    #[inline]
    pub fn at(&mut self, time_unix_nano: u64) -> &mut Self {
        self.with(|e| e.time_unix_nano = time_unix_nano)
    }

    /// Places the event in the span of `context`.
    #[inline]
    pub fn in_span(&mut self, context: SpanContext) -> &mut Self {
        self.with(|e| {
            e.trace_id = Some(context.trace_id);
            e.span_id = Some(context.span_id);
        })
    }

    /// Sets the instrumentation scope.
    #[inline]
    pub fn scope(&mut self, scope: Scope) -> &mut Self {
        self.with(|e| e.scope = scope)
    }

    /// Records the event (as [`crate::Telemetry::emit`] does); a builder records once.
    #[inline]
    pub fn emit(&mut self) {
        // The event is laid out and dropped where it is: it is not moved.
        if let Some(Building { event, attributes }) = &mut self.event {
            if event.time_unix_nano == 0 {
                event.time_unix_nano = now_unix_nano();
            }
            let lay = |out: &mut Vec<u8>| attributes.event_into(out, event);
            self.routes.send(Some(Signal::Events), lay, false);
            give_back(&ATTRIBUTES, attributes.take_buffer());
            self.event = None;
        }
    }
}

impl Drop for EventBuilder<'_> {
    /// An event built but never emitted is a mistake at its call site (`.emit()` forgotten at
    /// the end of a chain): the log says so, once per process.
    #[inline(always)]
    fn drop(&mut self) {
        // Tested before taking: a builder that built nothing (telemetry disabled) is only read.
        if self.event.is_some()
            && let Some(building) = self.event.take()
        {
            building.not_emitted();
        }
    }
}

fn random_u64() -> u64 {
    loop {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            // No system randomness: mix the clock, which is unique enough for ids.
            return now_unix_nano() | 1;
        }
        let id = u64::from_le_bytes(bytes);
        if id != 0 {
            return id;
        }
    }
}

/// A span being set up; [`SpanBuilder::start`] starts it.
pub struct SpanBuilder {
    recorder: Recorder,
    name: String,
    kind: SpanKind,
    parent: Option<SpanContext>,
    attributes: Vec<KeyValue>,
    scope: Scope,
}

impl SpanBuilder {
    /// A root span named `name`, unless given a parent.
    pub(crate) fn new(recorder: Recorder, name: &str) -> Self {
        SpanBuilder {
            recorder,
            name: name.into(),
            kind: SpanKind::Internal,
            parent: None,
            attributes: Vec::new(),
            scope: Scope::default(),
        }
    }

    /// Makes the span a child of `parent` (same trace).
    pub fn parent(mut self, parent: SpanContext) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Sets the kind (default: internal).
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// Adds an attribute.
    pub fn attr(mut self, key: impl Into<Str>, value: impl Into<Value>) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    /// Sets the instrumentation scope (default: none).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Starts the span now. Whether it is recorded when it ends is the sampler's choice: a
    /// child's is its parent's; a root's, its trace id's (see `trace_sample_rate`).
    pub fn start(self) -> ActiveSpan {
        let trace_id = self.parent.map_or_else(
            || (u128::from(random_u64()) << 64) | u128::from(random_u64()),
            |p| p.trace_id,
        );
        let sampled = self
            .parent
            .map_or_else(|| self.recorder.sampler.samples(trace_id), |p| p.sampled);
        ActiveSpan {
            sampled,
            dropped_events: 0,
            recorder: self.recorder,
            span: Some(Span {
                trace_id,
                span_id: random_u64(),
                parent_span_id: self.parent.map(|p| p.span_id),
                name: self.name,
                kind: self.kind,
                start_time_unix_nano: now_unix_nano(),
                end_time_unix_nano: 0,
                attributes: self.attributes,
                events: Vec::new(),
                links: Vec::new(),
                status: StatusCode::Unset,
                status_message: String::new(),
                scope: self.scope,
            }),
        }
    }
}

/// The events a span keeps, as OpenTelemetry's default span limits (128); those past it are
/// counted in the span's `wasmtel.span.dropped_events` attribute.
const MAX_SPAN_EVENTS: usize = 128;

/// The attribute that counts a span's events past [`MAX_SPAN_EVENTS`].
const DROPPED_EVENTS_KEY: &str = "wasmtel.span.dropped_events";

/// A started span. It is recorded when it ends (by [`ActiveSpan::end`] or when dropped), if
/// its trace is sampled.
pub struct ActiveSpan {
    recorder: Recorder,
    sampled: bool,
    /// Events past [`MAX_SPAN_EVENTS`].
    dropped_events: u64,
    span: Option<Span>,
}

impl ActiveSpan {
    fn span(&mut self) -> &mut Span {
        self.span
            .as_mut()
            .expect("a span is only taken when it ends")
    }

    /// The span's identity, for children and for events recorded within it.
    pub fn context(&self) -> SpanContext {
        let span = self
            .span
            .as_ref()
            .expect("a span is only taken when it ends");
        SpanContext {
            trace_id: span.trace_id,
            span_id: span.span_id,
            sampled: self.sampled,
        }
    }

    /// Adds an attribute.
    pub fn set_attr(&mut self, key: impl Into<Str>, value: impl Into<Value>) {
        self.span().attributes.push(KeyValue::new(key, value));
    }

    /// Adds an event to the span, now: up to 128 (OpenTelemetry's limit); those past them are
    /// counted in the span's `wasmtel.span.dropped_events` attribute.
    pub fn add_event(&mut self, name: &str, attributes: &[KeyValue]) {
        self.push_event(name.into(), attributes.to_vec());
    }

    /// Adds an event to the span, now, taking its name and attributes.
    /// Past [`MAX_SPAN_EVENTS`] an event is counted, not kept; on a span not recorded, nothing.
    pub(crate) fn push_event(&mut self, name: String, attributes: Vec<KeyValue>) {
        if !self.sampled {
            return;
        }
        if self.span().events.len() >= MAX_SPAN_EVENTS {
            self.dropped_events += 1;
            return;
        }
        self.span().events.push(SpanEvent {
            time_unix_nano: now_unix_nano(),
            name,
            attributes,
        });
    }

    /// Whether the span is recorded when it ends (its trace is sampled).
    pub(crate) fn is_recording(&self) -> bool {
        self.sampled
    }

    /// Sets the outcome, with a description for errors.
    pub fn set_status(&mut self, status: StatusCode, message: &str) {
        let span = self.span();
        span.status = status;
        span.status_message = message.into();
    }

    /// Ends the span now and records it.
    pub fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(mut span) = self.span.take()
            && self.sampled
        {
            span.end_time_unix_nano = now_unix_nano();
            if self.dropped_events > 0 {
                span.attributes
                    .push(KeyValue::new(DROPPED_EVENTS_KEY, self.dropped_events));
            }
            self.recorder.routes.record(Record::Span(span), false);
        }
    }
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        self.finish();
    }
}
