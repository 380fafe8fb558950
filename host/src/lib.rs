//! wasmtel: a telemetry host whose exporters are sandboxed WebAssembly components.
//!
//! The application records events, metric measurements and spans through [`Telemetry`]; no record
//! call ever blocks: each configured exporter has a bounded queue, and a record that does not fit
//! is dropped and counted ([`Telemetry::stats`]). Each exporter's worker batches its records,
//! aggregates measurements per export interval, and hands the batches to its own instance of its
//! plugin, a component implementing `wasmtel:exporter` (see `wit/`), inside a sandbox: one granted
//! directory, bounded memory, a deadline per call.
//!
//! ```no_run
//! use wasmtel::{Config, Event, KeyValue, Telemetry};
//!
//! let telemetry = Telemetry::start(Config::default())?; // file-jsonl into ./logs
//! telemetry.event(Event::new("codex.user_prompt").attr("prompt_length", 42));
//! telemetry.counter("codex.tool.call").add(1, &[KeyValue::new("tool", "shell")]);
//! let span = telemetry.span("turn").start();
//! span.end();
//! for exporter in telemetry.shutdown() {
//!     println!("{exporter}");
//! }
//! # Ok::<(), wasmtel::Error>(())
//! ```

#![warn(missing_docs)]

mod api;
mod builtin;
pub mod config;
mod error;
pub mod jsonl;
mod metrics;
mod pipeline;
pub mod plugin;
mod replay;
mod selfmetrics;
mod stats;
mod telemetry;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use api::{ActiveSpan, Counter, Gauge, Histogram, SpanBuilder, SpanContext, UpDownCounter};
pub use config::Config;
pub use error::{ConfigError, Error, LoadError};
pub use replay::{ReplaySummary, replay};
pub use stats::ExporterState;
pub use stats::ExporterStats;
pub use telemetry::{Telemetry, TelemetryBuilder, check};
pub use wasmtel_sdk::model;
pub use wasmtel_sdk::model::{
    Event, KeyValue, Metric, MetricData, Number, Scope, Span, SpanKind, StatusCode, Temporality,
    Value,
};

/// Nanoseconds since the Unix epoch, now.
pub(crate) fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Where compiled plugins are cached: `$WASMTEL_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmtel`, else
/// `$HOME/.cache/wasmtel`. `WASMTEL_CACHE_DIR=` (empty) turns the cache off.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WASMTEL_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wasmtel"))
}
