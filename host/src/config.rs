//! config.toml: `[telemetry]` and any number of `[exporters.NAME]`. Unknown keys, wrong types and
//! bad values are errors naming the file, line, column and key. See the README's config reference.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::error::ConfigError;
use crate::plugin::Sandbox;

/// The name of the exporter used when the config has none.
pub const DEFAULT_EXPORTER: &str = "session";
/// The built-in plugins, by name.
pub const BUILTIN_PLUGINS: &[&str] = &["file-jsonl"];

const DEFAULT_DIR: &str = "logs";
const DEFAULT_MAX_TOTAL_BYTES: u64 = 100 * 1024 * 1024;

/// A loaded, validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `[telemetry] enabled`: when false, records are accepted and discarded, and no plugin runs.
    pub enabled: bool,
    /// The session id handed to every plugin (`{session_id}` in file names); a fresh UUID v7
    /// unless set.
    pub session_id: Option<String>,
    /// How long shutdown may take in all, flushing every exporter.
    pub shutdown_timeout: Duration,
    /// How often wasmtel records its own `wasmtel.*` metrics; none: never.
    pub self_metrics_interval: Option<Duration>,
    /// The exporters, in the order of the file.
    pub exporters: Vec<ExporterConfig>,
}

/// One `[exporters.NAME]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct ExporterConfig {
    /// `NAME` of `[exporters.NAME]`.
    pub name: String,
    /// Its plugin.
    pub plugin: PluginSource,
    /// The signals this exporter receives.
    pub signals: Signals,
    /// The `config` table, as JSON text for the plugin's `init`.
    pub plugin_config: String,
    /// What its plugin may use.
    pub sandbox: Sandbox,
    /// Its queue and batching.
    pub queue: QueueConfig,
    /// Its metric aggregation.
    pub metrics: MetricsConfig,
    /// Where the exporter is defined (`file:line: `), to prefix errors; empty for defaults.
    pub origin: String,
}

/// Where a plugin's component comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum PluginSource {
    /// Embedded in the binary.
    Builtin(&'static str),
    /// A `.wasm` component file.
    File(PathBuf),
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::Builtin(name) => f.write_str(name),
            PluginSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Which signals an exporter receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signals {
    /// Events (log records).
    pub events: bool,
    /// Metrics.
    pub metrics: bool,
    /// Spans.
    pub spans: bool,
}

impl Signals {
    /// Every signal.
    pub const ALL: Signals = Signals {
        events: true,
        metrics: true,
        spans: true,
    };
}

/// What the record call does when an exporter's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Drop the new record and count it.
    DropNewest,
}

/// An exporter's queue and batching.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// Records waiting for the exporter, at most.
    pub capacity: usize,
    /// Records per batch, at most.
    pub max_batch: usize,
    /// Roughly how many bytes of records a batch holds, at most (a larger record goes alone).
    pub max_batch_bytes: usize,
    /// The longest a record waits for its batch to fill.
    pub max_delay: Duration,
    /// What the record call does when the queue is full.
    pub when_full: WhenFull,
    /// How often a failed export is tried again before its batch is dropped.
    pub max_retries: u32,
}

/// How an exporter aggregates metric measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsConfig {
    /// How often aggregated metrics are exported.
    pub interval: Duration,
    /// Delta or cumulative.
    pub temporality: wasmtel_sdk::model::Temporality,
}

impl Default for Config {
    /// The embedded default: one exporter, `session`, the built-in file-jsonl writing into
    /// `./logs`.
    fn default() -> Self {
        let table = TelemetryToml::default();
        let exporter = ExporterToml::default_file();
        Config {
            enabled: true,
            session_id: None,
            shutdown_timeout: Duration::from_millis(table.shutdown_timeout_ms.get()),
            self_metrics_interval: table.self_metrics_interval(),
            exporters: vec![
                exporter
                    .resolve(DEFAULT_EXPORTER, &table, Path::new("."), "")
                    .unwrap_or_else(|e| {
                        unreachable!("the default exporter is valid: {}", e.message)
                    }),
            ],
        }
    }
}

impl Config {
    /// Reads and validates `path`. Relative directories in it are relative to its directory.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::parse(&text, path, base)
    }

    /// Validates `text`, the contents of `file`; relative paths are resolved against `base`.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Config, ConfigError> {
        let err = |at: Option<usize>, key: Option<String>, message: String| {
            ConfigError::at(file, text, at, key, message)
        };
        let de = toml::de::Deserializer::parse(text)
            .map_err(|e| err(e.span().map(|s| s.start), None, e.message().to_string()))?;
        let parsed: FileToml = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            err(
                inner.span().map(|s| s.start),
                Some(key),
                inner.message().to_string(),
            )
        })?;
        let table = parsed.telemetry;
        let mut exporters = Vec::new();
        if parsed.exporters.is_empty() {
            let exporter = ExporterToml::default_file();
            exporters.push(
                exporter
                    .resolve(DEFAULT_EXPORTER, &table, base, "")
                    .map_err(|e| err(None, None, e.message))?,
            );
        }
        for (name, exporter) in parsed.exporters {
            let at = exporter.plugin.span().start;
            let line = ConfigError::at(file, text, Some(at), None, String::new())
                .line
                .unwrap_or(0);
            let origin = format!("{}:{line}: ", file.display());
            let resolved = exporter
                .resolve(&name, &table, base, &origin)
                .map_err(|e| {
                    err(
                        Some(e.at),
                        Some(format!("exporters.{name}.{}", e.key)),
                        e.message,
                    )
                })?;
            exporters.push(resolved);
        }
        Ok(Config {
            enabled: table.enabled,
            session_id: table.session_id.clone(),
            shutdown_timeout: Duration::from_millis(table.shutdown_timeout_ms.get()),
            self_metrics_interval: table.self_metrics_interval(),
            exporters,
        })
    }
}

/// A value serde accepted but the config does not: where, which key (below the exporter), why.
struct Invalid {
    at: usize,
    key: String,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    telemetry: TelemetryToml,
    #[serde(default)]
    /// In the order of the file.
    exporters: IndexMap<String, ExporterToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TelemetryToml {
    enabled: bool,
    dir: PathBuf,
    max_total_bytes: u64,
    session_id: Option<String>,
    shutdown_timeout_ms: NonZeroU64,
    self_metrics_interval_ms: u64,
}

impl TelemetryToml {
    fn self_metrics_interval(&self) -> Option<Duration> {
        (self.self_metrics_interval_ms > 0)
            .then(|| Duration::from_millis(self.self_metrics_interval_ms))
    }
}

impl Default for TelemetryToml {
    fn default() -> Self {
        TelemetryToml {
            enabled: true,
            dir: DEFAULT_DIR.into(),
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            session_id: None,
            shutdown_timeout_ms: NonZeroU64::new(5000).expect("nonzero"),
            self_metrics_interval_ms: 0,
        }
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum SignalToml {
    Events,
    Metrics,
    Spans,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExporterToml {
    plugin: Spanned<String>,
    #[serde(default = "all_signals")]
    signals: Vec<SignalToml>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    sandbox: SandboxToml,
    #[serde(default)]
    queue: QueueToml,
    #[serde(default)]
    metrics: MetricsToml,
}

fn all_signals() -> Vec<SignalToml> {
    vec![SignalToml::Events, SignalToml::Metrics, SignalToml::Spans]
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct SandboxToml {
    dir: Option<PathBuf>,
    allow_hosts: Vec<Spanned<String>>,
    memory_mib: Option<NonZeroU32>,
    timeout_ms: Option<NonZeroU64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct QueueToml {
    capacity: NonZeroUsize,
    max_batch: NonZeroUsize,
    max_batch_bytes: NonZeroUsize,
    max_delay_ms: u64,
    when_full: WhenFull,
    max_retries: u32,
}

impl Default for QueueToml {
    fn default() -> Self {
        QueueToml {
            capacity: NonZeroUsize::new(8192).expect("nonzero"),
            max_batch: NonZeroUsize::new(512).expect("nonzero"),
            max_batch_bytes: NonZeroUsize::new(4 * 1024 * 1024).expect("nonzero"),
            max_delay_ms: 1000,
            when_full: WhenFull::DropNewest,
            max_retries: 3,
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum TemporalityToml {
    Delta,
    Cumulative,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MetricsToml {
    interval_ms: NonZeroU64,
    temporality: TemporalityToml,
}

impl Default for MetricsToml {
    fn default() -> Self {
        MetricsToml {
            interval_ms: NonZeroU64::new(60_000).expect("nonzero"),
            temporality: TemporalityToml::Delta,
        }
    }
}

/// The default of `sandbox.memory_mib`.
pub const DEFAULT_MEMORY_MIB: u32 = 64;
/// The default of `sandbox.timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;

impl ExporterToml {
    /// The exporter of a config that has none: the built-in file-jsonl.
    fn default_file() -> Self {
        ExporterToml {
            plugin: Spanned::new(0..0, "file-jsonl".to_string()),
            signals: all_signals(),
            config: toml::Table::new(),
            sandbox: SandboxToml::default(),
            queue: QueueToml::default(),
            metrics: MetricsToml::default(),
        }
    }

    /// Checks what serde cannot and applies the defaults that depend on `[telemetry]`.
    fn resolve(
        self,
        name: &str,
        table: &TelemetryToml,
        base: &Path,
        origin: &str,
    ) -> Result<ExporterConfig, Invalid> {
        let plugin_at = self.plugin.span().start;
        let plugin_name = self.plugin.into_inner();
        let plugin = match BUILTIN_PLUGINS.iter().find(|b| **b == plugin_name) {
            Some(builtin) => PluginSource::Builtin(builtin),
            None if plugin_name.ends_with(".wasm") || plugin_name.contains('/') => {
                PluginSource::File(base.join(&plugin_name))
            }
            None => {
                return Err(Invalid {
                    at: plugin_at,
                    key: "plugin".into(),
                    message: format!(
                        "unknown plugin `{plugin_name}`: name a built-in ({}) or a path to a .wasm component",
                        BUILTIN_PLUGINS.join(", ")
                    ),
                });
            }
        };
        for (i, host) in self.sandbox.allow_hosts.iter().enumerate() {
            let text = host.get_ref();
            if text.is_empty() || text.contains("://") || text.contains('/') || text.contains('@') {
                return Err(Invalid {
                    at: host.span().start,
                    key: format!("sandbox.allow_hosts[{i}]"),
                    message: format!(
                        "`{text}` is not a host: write `host`, `host:port` or `*.domain`, without scheme or path"
                    ),
                });
            }
        }
        let mut config = self.config;
        let mut dir = self.sandbox.dir;
        // The built-in file exporter writes into `[telemetry] dir` within `[telemetry]
        // max_total_bytes` unless its own tables say otherwise.
        if plugin == PluginSource::Builtin("file-jsonl") {
            dir.get_or_insert_with(|| table.dir.clone());
            if !config.contains_key("max_total_bytes") {
                let budget = i64::try_from(table.max_total_bytes).unwrap_or(i64::MAX);
                config.insert("max_total_bytes".into(), toml::Value::Integer(budget));
            }
        }
        let signals = Signals {
            events: self.signals.contains(&SignalToml::Events),
            metrics: self.signals.contains(&SignalToml::Metrics),
            spans: self.signals.contains(&SignalToml::Spans),
        };
        let plugin_config = serde_json::to_string(&config).map_err(|e| Invalid {
            at: plugin_at,
            key: "config".into(),
            message: e.to_string(),
        })?;
        let memory_mib = self
            .sandbox
            .memory_mib
            .map_or(DEFAULT_MEMORY_MIB, NonZeroU32::get);
        Ok(ExporterConfig {
            name: name.to_string(),
            plugin,
            signals,
            plugin_config,
            sandbox: Sandbox {
                dir: dir.map(|d| base.join(d)),
                memory_bytes: usize::try_from(u64::from(memory_mib) << 20).unwrap_or(usize::MAX),
                timeout: Duration::from_millis(
                    self.sandbox
                        .timeout_ms
                        .map_or(DEFAULT_TIMEOUT_MS, NonZeroU64::get),
                ),
                allow_hosts: self
                    .sandbox
                    .allow_hosts
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
            },
            queue: QueueConfig {
                capacity: self.queue.capacity.get(),
                max_batch: self.queue.max_batch.get(),
                max_batch_bytes: self.queue.max_batch_bytes.get(),
                max_delay: Duration::from_millis(self.queue.max_delay_ms),
                when_full: self.queue.when_full,
                max_retries: self.queue.max_retries,
            },
            metrics: MetricsConfig {
                interval: Duration::from_millis(self.metrics.interval_ms.get()),
                temporality: match self.metrics.temporality {
                    TemporalityToml::Delta => wasmtel_sdk::model::Temporality::Delta,
                    TemporalityToml::Cumulative => wasmtel_sdk::model::Temporality::Cumulative,
                },
            },
            origin: origin.to_string(),
        })
    }
}
