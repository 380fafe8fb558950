//! wasmtel: a telemetry host whose exporters are sandboxed WebAssembly components.
//!
//! The application records events, metric measurements and spans through [`Telemetry`]; no record
//! call ever blocks. Events and spans go through each configured exporter's bounded queue, where a
//! record that does not fit is dropped and counted ([`Telemetry::stats`]); measurements are folded
//! into their instrument's aggregate by the record call, and never dropped. Each exporter's worker
//! batches its records, collects the aggregated metrics per export interval, and hands the batches
//! to its own instance of its plugin, a component implementing `wasmtel:exporter` (see `wit/`),
//! inside a sandbox: one granted directory, bounded memory, a deadline per call.
//!
//! ```no_run
//! use wasmtel::{Config, KeyValue, Telemetry};
//!
//! let telemetry = Telemetry::start(Config::default())?; // file-jsonl into ./logs
//! telemetry.event("codex.user_prompt").attr("prompt_length", 42).emit();
//! telemetry.counter("codex.tool.call").add(1, &[KeyValue::new("tool", "shell")]);
//! let span = telemetry.span("turn").start();
//! span.end();
//! for exporter in telemetry.shutdown() {
//!     println!("{exporter}");
//! }
//! # Ok::<(), wasmtel::Error>(())
//! ```
//!
//! # Without the host: the `runtime` feature
//!
//! The `runtime` feature (on by default) is the host: wasmtime, tokio and the built-in plugins.
//! Built without it (`default-features = false`), the crate keeps its recording API, and each of
//! its calls records nothing: [`Config`] reads no file or variable and is never enabled,
//! [`Telemetry`] starts nothing and never fails, events, measurements and spans are not kept,
//! `stats` and `shutdown` report no exporter and `feedback` no ring; a span's context is its
//! parent's, passed on, or the invalid one. Codex's metrics client still checks names and tags
//! as the host's does, so its calls fail in both builds or in neither. The types are the same
//! ([`TelemetryLayer`], [`codex`] and the errors included), so an application's call sites
//! compile unchanged in both builds: make `wasmtel/runtime` one of its own features, as
//! `examples/optional-telemetry` does. What only the host does is left out: `replay`, `check`,
//! `check_fixture`, `Checked`, `ReplaySummary`, `spool_status`, `drain_spools`, `SpoolStatus`,
//! `SlotStatus`, `Signal`, `Signals`, `default_cache_dir`, and the
//! `plugin`, `harness`, `jsonl`,
//! `testing` and `otel_sdk` modules (whose features turn `runtime` on).

#![warn(missing_docs)]

// The modules are layers, declared bottom first: each uses only those declared before it
// (`tests/layers.rs` checks the `crate::` paths).
// What both builds share: the errors, the exporters' figures, trace context, `[otel]` settings.
mod error;
mod stats;
pub mod summary;
mod context;
mod settings;
// Without the `runtime` feature, the same API, recording nothing, stands in for the host.
#[cfg(not(feature = "runtime"))]
mod off;
// The host. Data and the exporter seam:
#[cfg(feature = "runtime")]
mod clock;
#[cfg(feature = "runtime")]
mod builtin;
#[cfg(feature = "runtime")]
pub mod jsonl;
#[cfg(feature = "runtime")]
mod exporter;
#[cfg(feature = "runtime")]
mod feedback;
// What a worker exports to: plugin instances, and the in-memory twin.
#[cfg(feature = "runtime")]
pub mod plugin;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
// Aggregation, the spool, and config.
#[cfg(feature = "runtime")]
mod metrics;
#[cfg(feature = "runtime")]
mod spool;
#[cfg(feature = "runtime")]
mod config;
// Session logs read back, and the summary kept live.
#[cfg(feature = "runtime")]
pub mod sessions;
// The worker, the routes to it, and what records through them.
#[cfg(feature = "runtime")]
mod pipeline;
#[cfg(feature = "runtime")]
mod routing;
#[cfg(feature = "runtime")]
mod selfmetrics;
#[cfg(feature = "runtime")]
mod instrument;
// The telemetry host, and the commands built on it.
#[cfg(feature = "runtime")]
mod telemetry;
#[cfg(feature = "runtime")]
mod replay;
// One plugin on a recorded fixture, its output compared with what is expected.
#[cfg(feature = "runtime")]
pub mod harness;
// Codex's surface, on the telemetry host.
#[cfg(feature = "runtime")]
mod layer;
pub mod codex;
#[cfg(feature = "opentelemetry")]
pub mod otel_sdk;

pub use context::SpanContext;
pub use error::{CallError, ConfigError, Error, LoadCause, LoadError, Location, StartError};
pub use settings::OtelSettings;
pub use stats::{ExporterState, ExporterStats, Limit};
pub use summary::SessionSummary;
pub use wasmtel_sdk::encode::AttrValue;
pub use wasmtel_sdk::model;
pub use wasmtel_sdk::model::{
    Event, KeyValue, Metric, MetricData, Number, Scope, Span, SpanKind, StatusCode, Temporality,
    Value,
};

#[cfg(not(feature = "runtime"))]
pub use off::{
    ActiveSpan, Config, Counter, EventBuilder, FeedbackRing, Gauge, Histogram, Observer,
    SpanBuilder, Telemetry, TelemetryBuilder, TelemetryLayer, UpDownCounter,
};
#[cfg(feature = "runtime")]
pub use {
    config::{Config, Signals},
    exporter::Signal,
    feedback::FeedbackRing,
    instrument::{ActiveSpan, Counter, EventBuilder, Gauge, Histogram, SpanBuilder, UpDownCounter},
    layer::TelemetryLayer,
    metrics::Observer,
    plugin::default_cache_dir,
    replay::{
        Checked, ReplaySummary, SpoolStatus, check, check_fixture, drain_spools, replay,
        spool_status,
    },
    spool::SlotStatus,
    telemetry::{Telemetry, TelemetryBuilder},
};
