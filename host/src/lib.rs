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

#![warn(missing_docs)]

// The modules are layers, declared bottom first: each uses only those declared before it
// (`tests/layers.rs` checks the `crate::` paths).
// Data, errors and the exporter seam:
mod clock;
mod error;
mod stats;
mod builtin;
pub mod jsonl;
mod exporter;
mod feedback;
// What a worker exports to: plugin instances, and the in-memory twin.
pub mod plugin;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
// Aggregation and config.
mod metrics;
mod config;
// The worker, the routes to it, and what records through them.
mod pipeline;
mod routing;
mod selfmetrics;
mod instrument;
// The telemetry host, and the commands built on it.
mod telemetry;
mod replay;
// Codex's surface, on the telemetry host.
mod layer;
pub mod codex;
#[cfg(feature = "opentelemetry")]
pub mod otel_sdk;

pub use config::otel::OtelSettings;
pub use config::{Config, Signals};
pub use error::{CallError, ConfigError, Error, LoadCause, LoadError, Location, StartError};
pub use exporter::Signal;
pub use feedback::FeedbackRing;
pub use instrument::{
    ActiveSpan, Counter, EventBuilder, Gauge, Histogram, SpanBuilder, SpanContext, UpDownCounter,
};
pub use layer::TelemetryLayer;
pub use metrics::Observer;
pub use plugin::default_cache_dir;
pub use replay::{ReplaySummary, check, replay};
pub use stats::{ExporterState, ExporterStats, Limit};
pub use telemetry::{Telemetry, TelemetryBuilder};
pub use wasmtel_sdk::encode::AttrValue;
pub use wasmtel_sdk::model;
pub use wasmtel_sdk::model::{
    Event, KeyValue, Metric, MetricData, Number, Scope, Span, SpanKind, StatusCode, Temporality,
    Value,
};
