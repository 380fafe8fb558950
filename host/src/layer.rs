//! A `tracing-subscriber` layer: `tracing` spans and events (of the targets it selects) become
//! wasmtel spans and events, with their fields as attributes and their parents kept.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//! use wasmtel::{Config, Telemetry, TelemetryLayer};
//!
//! let telemetry = Telemetry::start(Config::empty())?;
//! let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(&telemetry));
//! tracing::subscriber::with_default(subscriber, || {
//!     let turn = tracing::info_span!("turn", model = "gpt-5.1-codex");
//!     let _in_turn = turn.enter();
//!     tracing::info!(event.name = "codex.turn_ttft", duration_ms = 917);
//! });
//! # Ok::<(), wasmtel::Error>(())
//! ```

use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use wasmtel_sdk::model::{KeyValue, Scope, Value};

use crate::context::SpanContext;
use crate::instrument::{ActiveSpan, EventBuilder, SpanBuilder};
use crate::routing::Recorder;
use crate::telemetry::Telemetry;

/// Turns `tracing` spans into wasmtel spans (a span's parent is its `tracing` parent, its scope
/// its target, its fields its attributes, with the layer's span attributes after them; a field
/// that holds a credential, such as `authorization`, `api_key`, `http.request.header.cookie` or
/// `token`, is recorded as `[REDACTED]`) and
/// `tracing` events into wasmtel events (named by their `event.name` field, else by their
/// message; their other fields as attributes; in the span they happen in). Only the targets it
/// selects: all by default, or those under the prefixes given to
/// [`TelemetryLayer::with_targets`].
pub struct TelemetryLayer {
    recorder: Recorder,
    targets: Vec<String>,
    span_attributes: Vec<KeyValue>,
}

/// The wasmtel span of a `tracing` span, kept in its extensions until it closes.
struct Recorded(Mutex<Option<ActiveSpan>>);

impl Recorded {
    /// Runs `f` on the span, unless it has ended.
    fn with<R>(&self, f: impl FnOnce(&mut ActiveSpan) -> R) -> Option<R> {
        let mut active = self.0.lock().unwrap_or_else(|e| e.into_inner());
        active.as_mut().map(f)
    }
}

impl TelemetryLayer {
    /// A layer recording into `telemetry`, every target.
    pub fn new(telemetry: &Telemetry) -> TelemetryLayer {
        TelemetryLayer {
            recorder: telemetry.recorder(),
            targets: Vec::new(),
            span_attributes: Vec::new(),
        }
    }

    /// The layer with only the targets under these prefixes (`codex_otel` takes
    /// `codex_otel::log_only` too).
    pub fn with_targets(mut self, prefixes: &[&str]) -> TelemetryLayer {
        self.targets = prefixes.iter().map(|p| p.to_string()).collect();
        self
    }

    /// The layer with these attributes added to every span (`[otel] span_attributes`).
    pub fn with_span_attributes(mut self, attributes: &[(String, String)]) -> TelemetryLayer {
        self.span_attributes = attributes
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        self
    }

    fn selects(&self, target: &str) -> bool {
        self.targets.is_empty()
            || self.targets.iter().any(|prefix| {
                target
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
    }
}

/// The fields of a span or event, as attributes; its `message` and `event.name` apart.
#[derive(Default)]
struct Fields {
    attributes: Vec<KeyValue>,
    message: Option<String>,
    name: Option<String>,
}

/// Whether a field named `name` holds a credential (an `Authorization` header, an API key, a
/// token, a password, a cookie): its value is never recorded. The last part of a dotted name is
/// compared, ignoring case and taking `-` for `_`: a name of the list, or one ending in
/// `_api_key`, `_token`, `_secret`, `_password` or `_private_key`. Allocates nothing.
fn secret(name: &str) -> bool {
    const NAMES: [&str; 15] = [
        "authorization",
        "proxy_authorization",
        "api_key",
        "apikey",
        "cookie",
        "set_cookie",
        "password",
        "passwd",
        "secret",
        "token",
        "bearer",
        "credentials",
        "private_key",
        "session_key",
        "client_secret",
    ];
    const ENDINGS: [&str; 5] = ["_api_key", "_token", "_secret", "_password", "_private_key"];
    let last = name.rsplit('.').next().unwrap_or_default().as_bytes();
    // `last` read as lowercase with `_` for `-`, against a lowercase pattern.
    let same = |a: &[u8], pattern: &str| {
        a.len() == pattern.len()
            && a.iter().zip(pattern.bytes()).all(|(&a, p)| {
                let a = if a == b'-' {
                    b'_'
                } else {
                    a.to_ascii_lowercase()
                };
                a == p
            })
    };
    NAMES.iter().any(|n| same(last, n))
        || ENDINGS
            .iter()
            .any(|e| last.len() > e.len() && same(&last[last.len() - e.len()..], e))
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if secret(field.name()) {
            let redacted = Value::String("[REDACTED]".into());
            self.attributes.push(KeyValue::new(field.name(), redacted));
            return;
        }
        match (field.name(), value) {
            ("message", Value::String(s)) => self.message = Some(s.into_owned()),
            ("event.name", Value::String(s)) => self.name = Some(s.into_owned()),
            (key, value) => self.attributes.push(KeyValue::new(key, value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string().into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.put(field, Value::Int(v)),
            Err(_) => self.put(field, Value::String(value.to_string().into())),
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::Double(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}").into()));
    }
}

/// The wasmtel span context of the `tracing` span `id`, if this layer recorded it.
fn context_of<S>(ctx: &Context<'_, S>, id: &Id) -> Option<SpanContext>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let span = ctx.span(id)?;
    let extensions = span.extensions();
    extensions
        .get::<Recorded>()?
        .with(|active| active.context())
}

/// Runs `f` on the wasmtel span of the current `tracing` span (or of its nearest ancestor a
/// [`TelemetryLayer`] recorded), if there is one: how the session facade puts the trace-safe
/// part of its events on the span they happen in. Needs the layer over `tracing-subscriber`'s
/// registry; without one, or outside every span, `f` is not called.
pub(crate) fn in_current_span(f: impl FnOnce(&mut ActiveSpan)) {
    let mut f = Some(f);
    tracing::dispatcher::get_default(|dispatch| {
        let Some(id) = dispatch.current_span().id().cloned() else {
            return;
        };
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            return;
        };
        let Some(span) = registry.span(&id) else {
            return;
        };
        for span in span.scope() {
            let extensions = span.extensions();
            if let Some(recorded) = extensions.get::<Recorded>() {
                if let Some(f) = f.take() {
                    recorded.with(f);
                }
                return;
            }
        }
    });
}

impl<S> tracing_subscriber::Layer<S> for TelemetryLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let metadata = attrs.metadata();
        if !self.selects(metadata.target()) {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let mut builder = SpanBuilder::new(self.recorder.clone(), metadata.name()).scope(Scope {
            name: metadata.target().to_string(),
            version: String::new(),
        });
        // The nearest ancestor this layer recorded is the parent.
        let parent = span
            .scope()
            .skip(1)
            .find_map(|ancestor| context_of(&ctx, &ancestor.id()));
        if let Some(parent) = parent {
            builder = builder.parent(parent);
        }
        for kv in fields
            .attributes
            .into_iter()
            .chain(self.span_attributes.clone())
        {
            builder = builder.attr(kv.key, kv.value);
        }
        let active = builder.start();
        span.extensions_mut()
            .insert(Recorded(Mutex::new(Some(active))));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let extensions = span.extensions();
        if let Some(recorded) = extensions.get::<Recorded>() {
            let mut fields = Fields::default();
            values.record(&mut fields);
            recorded.with(|active| {
                for kv in fields.attributes {
                    active.set_attr(kv.key, kv.value);
                }
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if !self.selects(metadata.target()) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let name = fields
            .name
            .clone()
            .or_else(|| fields.message.clone())
            .unwrap_or_else(|| metadata.name().to_string());
        let mut builder = EventBuilder::new(&self.recorder.routes, name);
        let (number, text) = match *metadata.level() {
            tracing::Level::TRACE => (1, "TRACE"),
            tracing::Level::DEBUG => (5, "DEBUG"),
            tracing::Level::INFO => (9, "INFO"),
            tracing::Level::WARN => (13, "WARN"),
            tracing::Level::ERROR => (17, "ERROR"),
        };
        builder.severity(number, text).scope(Scope {
            name: metadata.target().to_string(),
            version: String::new(),
        });
        if fields.name.is_some()
            && let Some(message) = fields.message
        {
            builder.body(Value::String(message.into()));
        }
        for kv in fields.attributes {
            builder.attr(kv.key.as_ref(), kv.value);
        }
        let within = ctx
            .event_scope(event)
            .and_then(|mut scope| scope.find_map(|span| context_of(&ctx, &span.id())));
        if let Some(context) = within {
            builder.in_span(context);
        }
        builder.emit();
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let active = span
            .extensions_mut()
            .remove::<Recorded>()
            .and_then(|recorded| recorded.0.into_inner().ok().flatten());
        if let Some(active) = active {
            active.end();
        }
    }
}
