//! config.toml: `[telemetry]` and any number of `[exporters.NAME]`. Unknown keys, wrong types and
//! bad values are errors naming the file, line, column and key. See the README's config reference.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::builtin::{self, Refusal};
use crate::error::{ConfigError, Error, Location};
use crate::exporter::Signal;
use crate::jsonl::TemporalityText;
use crate::plugin::{
    self, DEFAULT_DISK_BYTES, DEFAULT_HTTP_FIELDS_BYTES, DEFAULT_LIMITS, DEFAULT_LOG_RATE,
    DEFAULT_MAX_HANDLES, DEFAULT_TIMEOUT, HttpOptions, Limits, LogRate, Plugin,
    SCRIPTED_MEMORY_BYTES, Sandbox, Source, Tls,
};
use crate::spool::{SpoolConfig, Sync};
use crate::stats::LimitCounts;

mod env;
pub mod otel;

/// `path` without `.` parts and with `..` taken back where it can be, for comparing directories
/// that may not exist yet.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Checks that each spool directory is its exporter's alone: no other spool's, and not within
/// any plugin's sandbox directory (or holding one), where a plugin could change what is spooled.
/// On a clash, the exporter's index and why.
fn check_spools(exporters: &[ExporterConfig]) -> Result<(), (usize, String)> {
    let absolute = |dir: &Path| lexical(&std::path::absolute(dir).unwrap_or_else(|_| dir.into()));
    for (i, e) in exporters.iter().enumerate() {
        let Some(spool) = &e.pipeline.spool else {
            continue;
        };
        let dir = absolute(&spool.dir);
        let within = |other: &Path| {
            let other = absolute(other);
            dir.starts_with(&other) || other.starts_with(&dir)
        };
        for other in exporters {
            let why = if let Some(theirs) = &other.pipeline.spool
                && other.name != e.name
                && within(&theirs.dir)
            {
                format!("it is also the spool of exporter `{}`", other.name)
            } else if other.sandbox.dir.as_deref().is_some_and(within) {
                format!(
                    "it is within the sandbox directory of exporter `{}` (or holds it), where a \
                     plugin could change what is spooled",
                    other.name
                )
            } else {
                continue;
            };
            return Err((
                i,
                format!("`{}`: {why}: give it a directory of its own", dir.display()),
            ));
        }
    }
    Ok(())
}

/// The name of the exporter used when the config has none.
const DEFAULT_EXPORTER: &str = "session";
const DEFAULT_DIR: &str = "logs";

/// A loaded, validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `[telemetry] enabled`: when false, records are accepted and discarded, and no plugin runs.
    pub(crate) enabled: bool,
    /// The session id handed to every plugin (`{session_id}` in file names); a fresh UUID v7
    /// unless set.
    pub(crate) session_id: Option<String>,
    /// How long shutdown may take in all, flushing every exporter.
    pub(crate) shutdown_timeout: Duration,
    /// How often wasmtel records its own `wasmtel.*` metrics; none: never.
    pub(crate) self_metrics_interval: Option<Duration>,
    /// The exporters, in the order of the file (those of `[otel]` after the others).
    pub(crate) exporters: Vec<ExporterConfig>,
    /// What the config left out or changed, and why: an exporter not configured, an `[otel]`
    /// entry dropped.
    pub(crate) notices: Vec<String>,
    /// Codex's `[otel]` settings beyond its exporters, when the file has the table.
    pub(crate) otel: Option<crate::settings::OtelSettings>,
    /// Resource attributes the environment sets, over the application's.
    pub(crate) resource: Vec<(String, String)>,
    /// The share of traces whose spans are recorded (`[telemetry] trace_sample_rate`,
    /// `CODEX_OTEL_SAMPLE_RATE`).
    pub(crate) sample_rate: f64,
    /// The bound of the feedback ring, if `[telemetry.feedback]` keeps one.
    pub(crate) feedback: Option<usize>,
    /// `[telemetry] session_summary`: whether the session's summary is kept live.
    pub(crate) session_summary: bool,
    /// The text the config was read from, to read again under the environment's layer; none
    /// for a config made in code.
    source: Option<Arc<Text>>,
}

/// A config file's text, where it is, and what its relative paths are relative to.
#[derive(Debug, PartialEq)]
struct Text {
    text: String,
    file: PathBuf,
    base: PathBuf,
}

/// One `[exporters.NAME]` table.
#[derive(Clone, PartialEq)]
pub(crate) struct ExporterConfig {
    /// `NAME` of `[exporters.NAME]`.
    pub name: String,
    /// Its plugin.
    pub plugin: Source,
    /// The signals this exporter receives.
    pub signals: Signals,
    /// The `config` table, as JSON text for the plugin's `init`.
    pub plugin_config: String,
    /// What its plugin may use.
    pub sandbox: Sandbox,
    /// Whether `sandbox.memory_mib` was set; if not, a plugin in JavaScript or Python gets more
    /// than the default (see [`ExporterConfig::sandbox_for`]).
    pub memory_set: bool,
    /// Its queue, batching and metric aggregation.
    pub pipeline: PipelineConfig,
    /// Where the exporter's `plugin` key is, to prefix errors; none for defaults.
    pub location: Option<Location>,
}

impl std::fmt::Debug for ExporterConfig {
    /// Everything but the plugin's config, which may hold secrets (header values, keys).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExporterConfig")
            .field("name", &self.name)
            .field("plugin", &self.plugin)
            .field("signals", &self.signals)
            .field(
                "plugin_config",
                &format_args!("<{} bytes, not shown>", self.plugin_config.len()),
            )
            .field("sandbox", &self.sandbox)
            .field("pipeline", &self.pipeline)
            .field("location", &self.location)
            .finish()
    }
}

impl ExporterConfig {
    /// What names the files this exporter writes, for a built-in that writes files: its plugin,
    /// its sandbox directory (without `.` parts) and the values of the plugin's file keys (`"."`
    /// as none, the default directory).
    fn files(&self) -> Option<(&'static str, PathBuf, Vec<Option<serde_json::Value>>)> {
        let Source::Builtin(builtin) = &self.plugin else {
            return None;
        };
        if builtin.file_keys.is_empty() {
            return None;
        }
        let dir = self.sandbox.dir.as_ref()?;
        let dir: PathBuf = dir
            .components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect();
        let config: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.plugin_config).unwrap_or_default();
        let keys = builtin
            .file_keys
            .iter()
            .map(|k| config.get(*k).filter(|v| v.as_str() != Some(".")).cloned())
            .collect();
        Some((builtin.name, dir, keys))
    }

    /// Loads (compiles, or finds in the cache) this exporter's plugin.
    pub fn load(&self, runtime: &plugin::Runtime) -> Result<Plugin, Error> {
        runtime
            .load_source(&self.plugin)
            .map_err(|source| Error::Load {
                exporter: self.name.clone(),
                location: self.location.clone(),
                source: Box::new(source),
            })
    }

    /// Its sandbox for `plugin`: a plugin in JavaScript or Python gets [`SCRIPTED_MEMORY_BYTES`]
    /// unless `sandbox.memory_mib` was set.
    pub fn sandbox_for(&self, plugin: &Plugin) -> Sandbox {
        let mut sandbox = self.sandbox.clone();
        if !self.memory_set && plugin.scripted() {
            sandbox.limits.memory_bytes = sandbox.limits.memory_bytes.max(SCRIPTED_MEMORY_BYTES);
        }
        sandbox
    }

    /// What starts instances of `plugin`, this exporter's, in its sandbox with its config; the
    /// sandbox limits they run into are counted in `passed`; its sandbox is
    /// [`ExporterConfig::sandbox_for`] the plugin.
    pub fn setup(
        self,
        plugin: Plugin,
        session_id: &str,
        passed: Arc<LimitCounts>,
    ) -> plugin::Setup {
        let sandbox = self.sandbox_for(&plugin);
        plugin.setup(
            &self.name,
            sandbox,
            self.plugin_config,
            session_id.to_string(),
            passed,
        )
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

    /// Whether `signal` is one of them.
    pub fn wants(self, signal: Signal) -> bool {
        match signal {
            Signal::Events => self.events,
            Signal::Spans => self.spans,
            Signal::Metrics => self.metrics,
        }
    }
}

/// What the record call does when an exporter's queue is full: the one value there is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WhenFull {
    /// Drop the new record and count it.
    DropNewest,
}

/// An exporter's queue, batching and metric aggregation: what its worker needs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PipelineConfig {
    /// Records waiting for the exporter, at most.
    pub capacity: usize,
    /// Records per batch, at most.
    pub max_batch: usize,
    /// Roughly how many bytes of records a batch holds, at most (a larger record goes alone).
    pub max_batch_bytes: usize,
    /// The bytes of the records waiting for the exporter, at most (never less than a batch's).
    pub max_bytes: usize,
    /// The longest a record waits for its batch to fill.
    pub max_delay: Duration,
    /// How often a failed export is tried again before its batch is dropped.
    pub max_retries: u32,
    /// How often aggregated metrics are exported.
    pub metrics_interval: Duration,
    /// Delta or cumulative.
    pub temporality: wasmtel_sdk::model::Temporality,
    /// `queue.spool`: batches kept on disk until delivered.
    pub spool: Option<SpoolConfig>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        QueueToml::default().resolve(&MetricsToml::default())
    }
}

impl Default for Config {
    /// The embedded default: one exporter, `session`, the built-in file-jsonl writing into
    /// `./logs`.
    fn default() -> Self {
        Config::parse("", Path::new("the embedded default"), Path::new("."))
            .unwrap_or_else(|e| unreachable!("the default config is valid: {e}"))
    }
}

impl Config {
    /// Reads and validates `path`. Relative directories in it are relative to its directory.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            location: None,
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
        let mut config = Config::parse_under(text, file, base, &env::EnvLayer::default())?;
        config.source = Some(Arc::new(Text {
            text: text.into(),
            file: file.into(),
            base: base.into(),
        }));
        Ok(config)
    }

    /// Validates `text` as [`Config::parse`] does, with what `layer` says over it.
    fn parse_under(
        text: &str,
        file: &Path,
        base: &Path,
        layer: &env::EnvLayer,
    ) -> Result<Config, ConfigError> {
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
        let mut table = parsed.telemetry;
        // `[telemetry.logs.NAME]`: each a file-jsonl exporter NAME in the telemetry directory.
        let logs: Vec<otel::Made> = std::mem::take(&mut table.logs)
            .into_iter()
            .filter(|(_, log)| log.get_ref().enabled)
            .map(|(name, log)| {
                let at = log.span().start;
                let file = log
                    .into_inner()
                    .file
                    .unwrap_or_else(|| format!("{name}-{{session_id}}.jsonl"));
                let mut config = toml::Table::new();
                config.insert("file".into(), file.into());
                let exporter = ExporterToml {
                    plugin: Spanned::new(at..at, builtin::DEFAULT.name.to_string()),
                    config,
                    ..ExporterToml::default_exporter()
                };
                let key = format!("telemetry.logs.{name}");
                (name, exporter, key)
            })
            .collect();
        let any_logs = !logs.is_empty();
        let mut exporters = Vec::new();
        let mut notices = Vec::new();
        if parsed.exporters.is_empty() && parsed.otel.is_none() && !any_logs {
            let exporter = ExporterToml::default_exporter();
            exporters.extend(
                exporter
                    .resolve(DEFAULT_EXPORTER, &table, base, None)
                    .map_err(|e| err(None, None, e.message))?,
            );
        }
        let (otel_exporters, settings) = match parsed.otel {
            Some(otel) => {
                let (found, settings) = otel::resolve(otel, parsed.analytics.enabled, &mut notices)
                    .map_err(|e| err(Some(e.at), Some(e.key), e.message))?;
                (found, Some(settings))
            }
            None => (Vec::new(), None),
        };
        let mut writers = std::collections::HashMap::new();
        // Where each exporter's table starts, in the order of `exporters`.
        let mut starts = Vec::new();
        let mut named: Vec<(String, ExporterToml, Option<String>)> = parsed
            .exporters
            .into_iter()
            .map(|(name, exporter)| (name, exporter, None))
            .chain(
                logs.into_iter()
                    .chain(otel_exporters)
                    .map(|(name, exporter, key)| (name, exporter, Some(key))),
            )
            .collect();
        if layer.changes_exporters() {
            // The default exporter is the file's too: the environment may replace it.
            if !exporters.is_empty() {
                exporters.clear();
                named.push((
                    DEFAULT_EXPORTER.into(),
                    ExporterToml::default_exporter(),
                    None,
                ));
            }
            layer.apply(&mut named, &mut notices);
        }
        starts.resize(exporters.len(), 0);
        for (name, exporter, otel_key) in named {
            let at = exporter.plugin.span().start;
            if let Some(made_by) = &otel_key
                && exporters.iter().any(|e: &ExporterConfig| e.name == name)
            {
                return Err(err(
                    Some(at),
                    Some(made_by.clone()),
                    format!(
                        "another exporter is named `{name}` (an `[exporters.{name}]` table, or \
                         `[telemetry.logs.{name}]`): give one of them another name"
                    ),
                ));
            }
            let location = Location::of(file, text, at).line_only();
            let resolved = exporter
                .resolve(&name, &table, base, Some(location))
                .map_err(|e| {
                    let key = match &otel_key {
                        Some(key) => otel::key_of(key, &e.key),
                        None => format!("exporters.{name}.{}", e.key),
                    };
                    err(Some(e.at), Some(key), e.message)
                })?;
            let resolved = match resolved {
                Ok(resolved) => resolved,
                Err(why) => {
                    let what = otel_key.unwrap_or_else(|| format!("exporters.{name}"));
                    notices.push(format!(
                        "exporter `{name}` ({what}) is not configured and sends nothing: {why}"
                    ));
                    continue;
                }
            };
            // One writer per file: two exporters must not append to the same files.
            if let Some(files) = resolved.files()
                && let Some(first) = writers.insert(files, name.clone())
            {
                return Err(err(
                    Some(at),
                    Some(format!("exporters.{name}")),
                    format!(
                        "it would write the same files as exporter `{first}` (the same plugin, \
                         sandbox directory and file names): give one of them another \
                         `sandbox.dir` or `config.file`"
                    ),
                ));
            }
            starts.push(at);
            exporters.push(resolved);
        }
        check_spools(&exporters).map_err(|(i, message)| {
            let name = &exporters[i].name;
            err(
                Some(starts[i]),
                Some(format!("exporters.{name}.queue.spool.dir")),
                message,
            )
        })?;
        if let Some(feedback) = &table.feedback
            && feedback.get_ref().enabled
            && exporters
                .iter()
                .any(|e| e.name == crate::feedback::FEEDBACK)
        {
            return Err(err(
                Some(feedback.span().start),
                Some("telemetry.feedback".into()),
                "the feedback ring is the exporter `feedback`, and another exporter has that name: \
                 give it another"
                    .into(),
            ));
        }
        let rate = *table.trace_sample_rate.get_ref();
        if !(0.0..=1.0).contains(&rate) {
            return Err(err(
                Some(table.trace_sample_rate.span().start),
                Some("telemetry.trace_sample_rate".into()),
                format!("`{rate}` is not a rate from 0.0 to 1.0"),
            ));
        }
        let mut config = table.config(exporters);
        config.notices = notices;
        config.otel = settings;
        Ok(config)
    }

    /// The exporters that have a spool, with it.
    pub(crate) fn spools(&self) -> impl Iterator<Item = (&str, &SpoolConfig)> {
        self.exporters
            .iter()
            .filter_map(|e| Some((e.name.as_str(), e.pipeline.spool.as_ref()?)))
    }

    /// The config with only the exporters that have a spool.
    pub(crate) fn only_spooled(mut self) -> Config {
        self.exporters.retain(|e| e.pipeline.spool.is_some());
        self
    }

    /// A config with no exporter at all: records are accepted and discarded (but for exporters
    /// added to the [`crate::TelemetryBuilder`]).
    pub fn empty() -> Config {
        TelemetryToml::default().config(Vec::new())
    }

    /// `[telemetry] enabled`: when false, records are accepted and discarded, and no plugin runs.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The config turned on or off, over what the file and the environment say (a
    /// `--telemetry` / `--no-telemetry` flag, say).
    pub fn with_enabled(mut self, enabled: bool) -> Config {
        self.enabled = enabled;
        self
    }

    /// The config with what the process's environment says over the file (see
    /// [`Config::with_vars`]).
    pub fn with_env(self) -> Result<Config, ConfigError> {
        self.with_vars(|name| std::env::var(name).ok())
    }

    /// The config with what the variables `var` gives say over the file (each documented in
    /// the README's config reference): `CODEX_OTEL_ENABLED` turns telemetry on or off and
    /// `OTEL_SDK_DISABLED=true` off whatever else says; `CODEX_OTEL_EXPORTER` replaces the file's
    /// exporters; `CODEX_OTEL_ENDPOINT`, `CODEX_OTEL_HEADERS` and the `OTEL_EXPORTER_OTLP_*`
    /// variables set every `otlp` exporter's endpoint, headers, protocol, compression, timeout
    /// and certificates; `CODEX_OTEL_SERVICE_NAME`, `OTEL_SERVICE_NAME` and
    /// `OTEL_RESOURCE_ATTRIBUTES` set the resource over the application's; and
    /// `CODEX_OTEL_SAMPLE_RATE` the share of traces recorded. A bad value is an error naming the
    /// variable; a value that makes a bad config, one naming the file.
    pub fn with_vars(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let layer = env::EnvLayer::read(var)?;
        if let Some(enabled) = layer.enabled {
            self.enabled = enabled;
        }
        if layer.changes_exporters() {
            if let Some(source) = &self.source {
                let layered =
                    Config::parse_under(&source.text, &source.file, &source.base, &layer)?;
                self.exporters = layered.exporters;
                self.notices = layered.notices;
            } else {
                self.notices.push(
                    "the environment's exporter settings (CODEX_OTEL_EXPORTER, \
                     OTEL_EXPORTER_OTLP_*) do not apply to a config made in code"
                        .into(),
                );
            }
        }
        for (key, value) in layer.resource {
            self.resource.retain(|(k, _)| *k != key);
            self.resource.push((key, value));
        }
        if let Some(rate) = layer.sample_rate {
            self.sample_rate = rate;
        }
        Ok(self)
    }

    /// What the config left out or changed, and why (an exporter that is not configured, an
    /// `[otel]` entry dropped); `wasmtel check` and `replay` print them, and
    /// [`crate::Telemetry`] logs them when it starts.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Codex's `[otel]` settings (beyond the exporters it makes), if the file has the table.
    pub fn otel(&self) -> Option<&crate::settings::OtelSettings> {
        self.otel.as_ref()
    }

    /// Where the file-jsonl exporters write: each one's directory (its sandbox directory, and
    /// the `dir` of its config) and its file name, with `{session_id}` where the id goes.
    pub(crate) fn session_logs(&self) -> Vec<(PathBuf, String)> {
        self.exporters
            .iter()
            .filter_map(|e| {
                let (name, dir, keys) = e.files()?;
                if name != builtin::DEFAULT.name {
                    return None;
                }
                let key = |i: usize| {
                    keys.get(i)
                        .and_then(|v| v.as_ref()?.as_str().map(String::from))
                };
                let file = key(1).unwrap_or_else(|| builtin::FILE_JSONL_DEFAULT_FILE.into());
                Some((key(0).map_or(dir.clone(), |sub| dir.join(sub)), file))
            })
            .collect()
    }

    /// The configured session id, or a fresh UUID v7.
    pub(crate) fn session_id_or_new(&self) -> String {
        self.session_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
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
    /// Codex's table, accepted as Codex accepts it.
    otel: Option<otel::OtelToml>,
    #[serde(default)]
    analytics: otel::AnalyticsToml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TelemetryToml {
    enabled: bool,
    dir: PathBuf,
    max_total_bytes: Option<u64>,
    session_id: Option<String>,
    shutdown_timeout_ms: NonZeroU64,
    self_metrics_interval_ms: u64,
    trace_sample_rate: Spanned<f64>,
    /// `[telemetry.feedback]`: the most recent records, in memory.
    feedback: Option<Spanned<FeedbackToml>>,
    session_summary: bool,
    /// `[telemetry.logs.NAME]`: file-jsonl exporters in `dir`, as a Codex fork configures them.
    logs: IndexMap<String, Spanned<LogToml>>,
}

/// `[telemetry.feedback]`: a ring of the most recent records, in memory.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackToml {
    #[serde(default = "otel::yes")]
    enabled: bool,
    #[serde(default = "default_feedback_bytes")]
    max_bytes: NonZeroUsize,
}

fn default_feedback_bytes() -> NonZeroUsize {
    NonZeroUsize::new(crate::feedback::DEFAULT_FEEDBACK_BYTES).expect("nonzero")
}

/// `[telemetry.logs.NAME]`: a log file in the telemetry directory.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogToml {
    #[serde(default = "otel::yes")]
    enabled: bool,
    file: Option<String>,
}

impl TelemetryToml {
    /// The config of this table and `exporters`.
    fn config(self, exporters: Vec<ExporterConfig>) -> Config {
        Config {
            enabled: self.enabled,
            session_id: self.session_id,
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms.get()),
            self_metrics_interval: (self.self_metrics_interval_ms > 0)
                .then(|| Duration::from_millis(self.self_metrics_interval_ms)),
            exporters,
            notices: Vec::new(),
            otel: None,
            resource: Vec::new(),
            sample_rate: *self.trace_sample_rate.get_ref(),
            feedback: self
                .feedback
                .map(Spanned::into_inner)
                .filter(|f| f.enabled)
                .map(|f| f.max_bytes.get()),
            session_summary: self.session_summary,
            source: None,
        }
    }
}

impl Default for TelemetryToml {
    fn default() -> Self {
        TelemetryToml {
            enabled: true,
            dir: DEFAULT_DIR.into(),
            // Unset: file-jsonl's own default.
            max_total_bytes: None,
            session_id: None,
            shutdown_timeout_ms: NonZeroU64::new(5000).expect("nonzero"),
            self_metrics_interval_ms: 0,
            trace_sample_rate: Spanned::new(0..0, 1.0),
            feedback: None,
            session_summary: false,
            logs: IndexMap::new(),
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
    http: HttpToml,
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
    allow_hosts: Option<Vec<Spanned<String>>>,
    memory_mib: Option<NonZeroU32>,
    max_memories: Option<NonZeroUsize>,
    max_tables: Option<NonZeroUsize>,
    max_table_elements: Option<NonZeroUsize>,
    max_handles: Option<NonZeroUsize>,
    disk_mib: Option<NonZeroU64>,
    http_fields_kib: Option<NonZeroU32>,
    timeout_ms: Option<NonZeroU64>,
    log_lines_per_sec: Option<u32>,
    log_bytes_per_sec: Option<u64>,
}

/// How the host sends the plugin's HTTP requests.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct HttpToml {
    ca_certificate: Option<Spanned<PathBuf>>,
    client_certificate: Option<Spanned<PathBuf>>,
    client_private_key: Option<Spanned<PathBuf>>,
    connect_timeout_ms: Option<NonZeroU64>,
    request_timeout_ms: Option<NonZeroU64>,
    max_concurrent: Option<NonZeroUsize>,
    max_response_kib: Option<NonZeroU64>,
}

impl HttpToml {
    /// The options of this table; its files (relative to `base`) are read and checked.
    fn resolve(self, base: &Path) -> Result<HttpOptions, Invalid> {
        let path = |file: &Option<Spanned<PathBuf>>| file.as_ref().map(|f| base.join(f.get_ref()));
        let (ca, cert, key) = (
            path(&self.ca_certificate),
            path(&self.client_certificate),
            path(&self.client_private_key),
        );
        let tls = Tls::from_files(ca.as_deref(), cert.as_deref(), key.as_deref()).map_err(|e| {
            let file = match e.key {
                "ca_certificate" => &self.ca_certificate,
                "client_certificate" => &self.client_certificate,
                _ => &self.client_private_key,
            };
            let at = file
                .as_ref()
                .or(self.client_certificate.as_ref())
                .or(self.client_private_key.as_ref())
                .map_or(0, |f| f.span().start);
            Invalid {
                at,
                key: format!("http.{}", e.key),
                message: e.message,
            }
        })?;
        let default = HttpOptions::default();
        let ms = |v: Option<NonZeroU64>, or: Duration| {
            v.map_or(or, |ms| Duration::from_millis(ms.get()))
        };
        Ok(HttpOptions {
            tls,
            connect_timeout: ms(self.connect_timeout_ms, default.connect_timeout),
            request_timeout: ms(self.request_timeout_ms, default.request_timeout),
            max_concurrent: self
                .max_concurrent
                .map_or(default.max_concurrent, NonZeroUsize::get),
            max_response_bytes: self
                .max_response_kib
                .map_or(default.max_response_bytes, |kib| {
                    kib.get().saturating_mul(1024)
                }),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct QueueToml {
    capacity: NonZeroUsize,
    max_batch: NonZeroUsize,
    max_batch_bytes: NonZeroUsize,
    max_bytes: NonZeroUsize,
    max_delay_ms: u64,
    /// Accepted so that a config can say so; [`WhenFull`] has one value.
    #[serde(rename = "when_full")]
    _when_full: WhenFull,
    max_retries: u32,
    spool: Option<SpoolToml>,
}

/// `queue.spool`: `{}` turns it on with the defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SpoolToml {
    /// Relative to the config's directory; `spool/<exporter>` unless set (the exporter's name
    /// with any character but letters, digits, `-`, `_` and `.` as `_`).
    dir: Option<PathBuf>,
    max_mib: NonZeroU64,
    sync: SyncText,
    sync_interval_ms: NonZeroU64,
}

impl Default for SpoolToml {
    fn default() -> Self {
        SpoolToml {
            dir: None,
            max_mib: NonZeroU64::new(256).expect("nonzero"),
            sync: SyncText::Interval,
            sync_interval_ms: NonZeroU64::new(500).expect("nonzero"),
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum SyncText {
    Batch,
    Interval,
    Never,
}

impl SpoolToml {
    fn resolve(&self, exporter: &str, base: &Path) -> SpoolConfig {
        SpoolConfig {
            dir: match &self.dir {
                Some(dir) => base.join(dir),
                // The name as one plain file name, whatever it holds (`/`, `..`).
                None => {
                    let mut safe: String = exporter
                        .chars()
                        .map(|c| match c {
                            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
                            _ => '_',
                        })
                        .collect();
                    if safe.chars().all(|c| c == '.') {
                        safe = safe.replace('.', "_");
                    }
                    base.join("spool").join(safe)
                }
            },
            max_bytes: self.max_mib.get().saturating_mul(1 << 20),
            sync: match self.sync {
                SyncText::Batch => Sync::Batch,
                SyncText::Interval => {
                    Sync::Interval(Duration::from_millis(self.sync_interval_ms.get()))
                }
                SyncText::Never => Sync::Never,
            },
        }
    }
}

impl QueueToml {
    fn resolve(&self, metrics: &MetricsToml) -> PipelineConfig {
        PipelineConfig {
            capacity: self.capacity.get(),
            max_batch: self.max_batch.get(),
            max_batch_bytes: self.max_batch_bytes.get(),
            max_bytes: self.max_bytes.max(self.max_batch_bytes).get(),
            max_delay: Duration::from_millis(self.max_delay_ms),
            max_retries: self.max_retries,
            metrics_interval: Duration::from_millis(metrics.interval_ms.get()),
            temporality: metrics.temporality.into(),
            spool: None,
        }
    }
}

impl Default for QueueToml {
    fn default() -> Self {
        QueueToml {
            capacity: NonZeroUsize::new(8192).expect("nonzero"),
            max_batch: NonZeroUsize::new(512).expect("nonzero"),
            max_batch_bytes: NonZeroUsize::new(4 * 1024 * 1024).expect("nonzero"),
            max_bytes: NonZeroUsize::new(64 * 1024 * 1024).expect("nonzero"),
            max_delay_ms: 1000,
            _when_full: WhenFull::DropNewest,
            max_retries: 10,
            spool: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MetricsToml {
    interval_ms: NonZeroU64,
    temporality: TemporalityText,
}

impl Default for MetricsToml {
    fn default() -> Self {
        MetricsToml {
            interval_ms: NonZeroU64::new(60_000).expect("nonzero"),
            temporality: TemporalityText::Delta,
        }
    }
}

impl ExporterToml {
    /// The exporter of a config that has none: the default built-in.
    fn default_exporter() -> Self {
        ExporterToml {
            plugin: Spanned::new(0..0, builtin::DEFAULT.name.to_string()),
            signals: all_signals(),
            config: toml::Table::new(),
            sandbox: SandboxToml::default(),
            http: HttpToml::default(),
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
        location: Option<Location>,
    ) -> Result<Result<ExporterConfig, String>, Invalid> {
        let plugin_at = self.plugin.span().start;
        let plugin_name = self.plugin.into_inner();
        let plugin = match builtin::find(&plugin_name) {
            Some(builtin) => Source::Builtin(builtin),
            None if plugin_name.ends_with(".wasm") || plugin_name.contains('/') => {
                Source::File(base.join(&plugin_name))
            }
            None => {
                return Err(Invalid {
                    at: plugin_at,
                    key: "plugin".into(),
                    message: format!(
                        "unknown plugin `{plugin_name}`: name a built-in ({}) or a path to a .wasm component",
                        builtin::names()
                    ),
                });
            }
        };
        for (i, host) in self.sandbox.allow_hosts.iter().flatten().enumerate() {
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
        let http = self.http.resolve(base)?;
        let mut config = self.config;
        let s = &self.sandbox;
        let limits = Limits {
            memory_bytes: s.memory_mib.map_or(DEFAULT_LIMITS.memory_bytes, |mib| {
                usize::try_from(u64::from(mib.get()) << 20).unwrap_or(usize::MAX)
            }),
            memories: s
                .max_memories
                .map_or(DEFAULT_LIMITS.memories, NonZeroUsize::get),
            tables: s
                .max_tables
                .map_or(DEFAULT_LIMITS.tables, NonZeroUsize::get),
            table_elements: s
                .max_table_elements
                .map_or(DEFAULT_LIMITS.table_elements, NonZeroUsize::get),
        };
        let max_handles = s.max_handles.map_or(DEFAULT_MAX_HANDLES, NonZeroUsize::get);
        let http_fields_bytes = s.http_fields_kib.map_or(DEFAULT_HTTP_FIELDS_BYTES, |kib| {
            usize::try_from(u64::from(kib.get()) << 10).unwrap_or(usize::MAX)
        });
        let mut grants = builtin::Grants {
            metrics_only: false,
            dir: self.sandbox.dir,
            allow_hosts: self
                .sandbox
                .allow_hosts
                .map(|hosts| hosts.into_iter().map(Spanned::into_inner).collect()),
            timeout: self
                .sandbox
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.get())),
            disk_bytes: self
                .sandbox
                .disk_mib
                .map(|mib| mib.get().saturating_mul(1 << 20)),
        };
        if let Source::Builtin(builtin) = &plugin {
            let shared = builtin::Shared {
                dir: &table.dir,
                max_total_bytes: table.max_total_bytes,
            };
            match (builtin.defaults)(&shared, &mut grants, &mut config) {
                Ok(()) => {}
                Err(Refusal::Invalid { key, message }) => {
                    return Err(Invalid {
                        at: plugin_at,
                        key: format!("config.{key}"),
                        message,
                    });
                }
                Err(Refusal::NotConfigured(why)) => return Ok(Err(why)),
            }
        }
        if grants.metrics_only && matches!(self.metrics.temporality, TemporalityText::Cumulative) {
            return Err(Invalid {
                at: plugin_at,
                key: "metrics.temporality".into(),
                message: format!("`{plugin_name}` sends delta temporality only"),
            });
        }
        let signals = Signals {
            events: !grants.metrics_only && self.signals.contains(&SignalToml::Events),
            metrics: self.signals.contains(&SignalToml::Metrics),
            spans: !grants.metrics_only && self.signals.contains(&SignalToml::Spans),
        };
        let plugin_config = serde_json::to_string(&config).map_err(|e| Invalid {
            at: plugin_at,
            key: "config".into(),
            message: e.to_string(),
        })?;
        Ok(Ok(ExporterConfig {
            name: name.to_string(),
            plugin,
            signals,
            plugin_config,
            sandbox: Sandbox {
                dir: grants.dir.map(|d| base.join(d)),
                limits,
                max_handles,
                http_fields_bytes,
                disk_bytes: match self.sandbox.disk_mib {
                    Some(_) => grants.disk_bytes.unwrap_or(DEFAULT_DISK_BYTES),
                    None => grants.disk_bytes.unwrap_or(0).max(DEFAULT_DISK_BYTES),
                },
                timeout: grants.timeout.unwrap_or(DEFAULT_TIMEOUT),
                allow_hosts: grants.allow_hosts.unwrap_or_default(),
                http,
                log_rate: LogRate {
                    lines: self
                        .sandbox
                        .log_lines_per_sec
                        .unwrap_or(DEFAULT_LOG_RATE.lines),
                    bytes: self
                        .sandbox
                        .log_bytes_per_sec
                        .unwrap_or(DEFAULT_LOG_RATE.bytes),
                },
            },
            memory_set: self.sandbox.memory_mib.is_some(),
            pipeline: PipelineConfig {
                spool: self
                    .queue
                    .spool
                    .as_ref()
                    .map(|spool| spool.resolve(name, base)),
                ..self.queue.resolve(&self.metrics)
            },
            location,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quota of each exporter of `text`.
    fn quotas(text: &str) -> Vec<u64> {
        let config = Config::parse(text, Path::new("config.toml"), Path::new(".")).unwrap();
        config
            .exporters
            .iter()
            .map(|e| e.sandbox.disk_bytes)
            .collect()
    }

    #[test]
    fn a_spool_has_defaults_and_a_directory_no_plugin_or_other_spool_shares() {
        let parse = |text: &str| Config::parse(text, Path::new("config.toml"), Path::new("/c"));
        let config = parse(
            "[exporters.a]\nplugin = \"otlp\"\nconfig = { endpoint = \"http://h\" }\nqueue = { spool = {} }\n",
        )
        .unwrap();
        let named = parse(
            "[exporters.\"../x\"]\nplugin = \"otlp\"\nconfig = { endpoint = \"http://h\" }\nqueue = { spool = {} }\n",
        )
        .unwrap();
        let dir = &named.exporters[0].pipeline.spool.as_ref().unwrap().dir;
        assert_eq!(dir, Path::new("/c/spool/.._x"), "a name is one file name");
        let spool = config.exporters[0].pipeline.spool.clone().unwrap();
        assert_eq!(
            spool,
            SpoolConfig {
                dir: "/c/spool/a".into(),
                max_bytes: 256 << 20,
                sync: Sync::Interval(Duration::from_millis(500)),
            }
        );
        let otlp = "plugin = \"otlp\"\nconfig = { endpoint = \"http://h\" }";
        let clashes = [
            (
                format!(
                    "[exporters.a]\n{otlp}\nqueue = {{ spool = {{ dir = \"s\" }} }}\n[exporters.b]\n{otlp}\nqueue = {{ spool = {{ dir = \"./s/../s\" }} }}\n"
                ),
                "exporters.a.queue.spool.dir`: `/c/s`: it is also the spool of exporter `b`",
            ),
            (
                format!(
                    "[exporters.a]\nplugin = \"file-jsonl\"\nsandbox = {{ dir = \"out\" }}\n[exporters.b]\n{otlp}\nqueue = {{ spool = {{ dir = \"out/spool\", sync = \"batch\" }} }}\n"
                ),
                "it is within the sandbox directory of exporter `a`",
            ),
            // A spool declared before the exporter whose sandbox holds it.
            (
                format!(
                    "[exporters.b]\n{otlp}\nqueue = {{ spool = {{ dir = \"logs/spool\" }} }}\n[telemetry.logs.x]\n"
                ),
                "`exporters.b.queue.spool.dir`: `/c/logs/spool`: it is within the sandbox directory of exporter `x`",
            ),
            (
                format!(
                    "[exporters.a]\n{otlp}\nqueue = {{ spool = {{ sync = \"sometimes\" }} }}\n"
                ),
                "unknown variant `sometimes`, expected one of `batch`, `interval`, `never`",
            ),
        ];
        for (text, want) in clashes {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn the_disk_quota_left_unset_holds_file_jsonls_budget() {
        let mib = |n: u64| n << 20;
        // The default budget (100 MiB) fits the default quota; a larger one raises it to the
        // budget and a quarter; a quota set is kept, and other plugins keep the default.
        assert_eq!(quotas(""), [DEFAULT_DISK_BYTES]);
        assert_eq!(
            quotas("[telemetry]\nmax_total_bytes = 419430400\n"),
            [mib(500)]
        );
        assert_eq!(
            quotas(
                "[exporters.a]\nplugin = \"file-jsonl\"\nconfig = { max_total_bytes = 1048576 }\n\
                 [exporters.b]\nplugin = \"file-jsonl\"\nsandbox = { disk_mib = 600 }\n\
                 config = { max_total_bytes = 419430400, file = \"b.jsonl\" }\n\
                 [exporters.c]\nplugin = \"otlp\"\nconfig = { endpoint = \"http://127.0.0.1:4318\" }\n"
            ),
            [DEFAULT_DISK_BYTES, mib(600), DEFAULT_DISK_BYTES]
        );
    }
}
