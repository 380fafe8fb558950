//! Codex's metrics client: [`MetricsClient`], with Codex's rules for names and tags and its
//! session tags.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indexmap::{Equivalent, IndexMap};
use rustc_hash::FxHasher;
use wasmtel_sdk::model::{KeyValue, Scope};

use crate::instrument::{Counter, Gauge, Histogram};
use crate::routing::Recorder;
use crate::telemetry::Telemetry;

/// The bucket bounds of durations in milliseconds ([`MetricsClient::record_duration`]), Codex's.
pub const MILLISECOND_BOUNDS: [f64; 34] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 1250.0, 1500.0, 1750.0,
    2000.0, 2250.0, 2500.0, 3000.0, 3500.0, 4000.0, 4500.0, 5000.0, 6000.0, 7000.0, 7500.0, 8000.0,
    9000.0, 10000.0, 12000.0, 15000.0, 20000.0, 30000.0, 60000.0, 120000.0,
];

/// The bucket bounds of durations in seconds ([`MetricsClient::record_duration_seconds`]),
/// Codex's.
pub const SECOND_BOUNDS: [f64; 21] = [
    0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 12.0,
    15.0, 20.0, 30.0, 60.0, 120.0,
];

/// The originators a metric's `originator` tag may name; any other is `other`.
pub const KNOWN_ORIGINATORS: [&str; 11] = [
    "codex_desktop",
    "codex-app-server",
    "codex_mcp_server",
    "codex_cli_rs",
    "codex-tui",
    "codex_vscode",
    "none",
    "codex_exec",
    "codex-cli",
    "codex_sdk_ts",
    "codex-app-server-sdk",
];

/// A measurement Codex's rules refuse; nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A metric name is empty.
    #[error("a metric name is empty")]
    EmptyMetricName,
    /// A metric name has a character other than ASCII letters, digits, `.`, `_` and `-`.
    #[error("metric name `{name}` has a character other than A-Z, a-z, 0-9, `.`, `_` and `-`")]
    InvalidMetricName {
        /// The name.
        name: String,
    },
    /// A tag key or value is empty.
    #[error("a tag {what} is empty")]
    EmptyTag {
        /// `key`, or `value of KEY`.
        what: String,
    },
    /// A tag key or value has a character other than ASCII letters, digits, `.`, `_`, `/` and
    /// `-`.
    #[error("tag {what} `{text}` has a character other than A-Z, a-z, 0-9, `.`, `_`, `/` and `-`")]
    InvalidTag {
        /// `key`, or `value of KEY`.
        what: String,
        /// The text.
        text: String,
    },
    /// A counter was given a negative increment.
    #[error("counter `{name}` was given {increment}: a counter only grows")]
    NegativeCounterIncrement {
        /// The counter.
        name: String,
        /// The increment.
        increment: i64,
    },
}

/// Whether `name` is a valid metric name: ASCII letters, digits, `.`, `_`, `-`, not empty.
pub fn validate_metric_name(name: &str) -> Result<(), MetricsError> {
    if name.is_empty() {
        return Err(MetricsError::EmptyMetricName);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(MetricsError::InvalidMetricName { name: name.into() });
    }
    Ok(())
}

fn tag_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/')
}

/// Whether `key` = `value` is a valid tag: each ASCII letters, digits, `.`, `_`, `/`, `-`, and
/// not empty.
pub fn validate_tag(key: &str, value: &str) -> Result<(), MetricsError> {
    // What is wrong is named only once something is (a valid tag allocates nothing).
    let what = |is_key: bool| {
        if is_key {
            "key".to_string()
        } else {
            format!("value of {key}")
        }
    };
    for (is_key, text) in [(true, key), (false, value)] {
        if text.is_empty() {
            return Err(MetricsError::EmptyTag { what: what(is_key) });
        }
        if !text.bytes().all(tag_char) {
            return Err(MetricsError::InvalidTag {
                what: what(is_key),
                text: text.into(),
            });
        }
    }
    Ok(())
}

/// `value` made a valid tag value, as Codex makes it: every other character becomes `_`, the
/// ends are trimmed of `_`, and it is cut at 256 bytes; `unspecified` if nothing is left or no
/// letter or digit is.
pub fn sanitize_metric_tag_value(value: &str) -> String {
    sanitized(value).into_owned()
}

/// Calls `f` with `tags`, their values sanitized by Codex's rules (without allocating when
/// they pass already).
pub(crate) fn with_sanitized<const N: usize>(
    tags: [(&str, &str); N],
    f: impl FnOnce(&[(&str, &str)]),
) {
    let values = tags.map(|(_, v)| sanitized(v));
    let mut sanitized_tags = tags;
    for (tag, value) in sanitized_tags.iter_mut().zip(&values) {
        tag.1 = value.as_ref();
    }
    f(&sanitized_tags);
}

/// A boolean as Codex's tags say it.
pub(crate) fn truth(yes: bool) -> &'static str {
    if yes { "true" } else { "false" }
}

/// [`sanitize_metric_tag_value`], borrowing `value` when it is valid already.
pub(crate) fn sanitized(value: &str) -> Cow<'_, str> {
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 256
        && bytes.iter().all(|&b| tag_char(b))
        && !value.starts_with('_')
        && !value.ends_with('_')
        && bytes.iter().any(u8::is_ascii_alphanumeric);
    if valid {
        return Cow::Borrowed(value);
    }
    let replaced: String = value
        .chars()
        .map(|c| {
            if c.is_ascii() && tag_char(c as u8) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = replaced.trim_matches('_');
    if !trimmed.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return Cow::Borrowed("unspecified");
    }
    Cow::Owned(trimmed[..trimmed.len().min(256)].into())
}

/// The `originator` tag of `originator`: itself (sanitized) if it is one of
/// [`KNOWN_ORIGINATORS`], else `other`.
pub fn bounded_originator_tag_value(originator: &str) -> &'static str {
    let sanitized = sanitize_metric_tag_value(originator);
    KNOWN_ORIGINATORS
        .iter()
        .find(|known| **known == sanitized)
        .copied()
        .unwrap_or("other")
}

/// The tags Codex puts on every metric of a session: `auth_mode`, `session_source`,
/// `originator` (bounded to [`KNOWN_ORIGINATORS`]), `service_name`, `model`, `app.version`, in
/// that order, each sanitized.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionTags {
    /// `auth_mode`, when known.
    pub auth_mode: Option<String>,
    /// `session_source`: `cli`, `exec`, `vscode`, ...
    pub session_source: String,
    /// `originator`.
    pub originator: String,
    /// `service_name`, when set.
    pub service_name: Option<String>,
    /// `model`.
    pub model: String,
    /// `app.version`.
    pub app_version: String,
}

impl SessionTags {
    /// The tags, in Codex's order, sanitized; an unset optional one is left out.
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut tags = Vec::new();
        let mut push = |key: &str, value: Option<&str>| {
            if let Some(value) = value {
                tags.push((key.to_string(), sanitize_metric_tag_value(value)));
            }
        };
        push("auth_mode", self.auth_mode.as_deref());
        push("session_source", Some(&self.session_source));
        push(
            "originator",
            Some(bounded_originator_tag_value(&self.originator)),
        );
        push("service_name", self.service_name.as_deref());
        push("model", Some(&self.model));
        push("app.version", Some(&self.app_version));
        tags
    }
}

/// The instrumentation scope of the client's instruments: Codex's meter, `codex`.
fn meter() -> Scope {
    Scope {
        name: "codex".into(),
        version: String::new(),
    }
}

/// Codex's metrics client, on wasmtel's instruments: names and tags checked as Codex checks
/// them (a bad one is an error, and nothing is recorded), default tags and session tags on every
/// measurement (a call's own tags win over them), instruments made once per name. Cheap to clone;
/// clones share their instruments. Like every wasmtel instrument, it never blocks and never drops
/// a measurement while telemetry runs.
#[derive(Clone)]
pub struct MetricsClient {
    recorder: Recorder,
    /// Default tags, then the session's.
    defaults: Vec<(String, String)>,
    session: Vec<(String, String)>,
    instruments: Arc<Mutex<Instruments>>,
}

/// The client's instruments by name, each made at its first use.
#[derive(Default)]
struct Instruments {
    counters: HashMap<String, Cached<Counter>>,
    /// By unit, then name.
    histograms: HashMap<&'static str, HashMap<String, Cached<Histogram>>>,
    gauges: HashMap<String, Cached<Gauge>>,
}

/// How many tag sets an instrument keeps the attributes of (OpenTelemetry's cardinality limit);
/// the attributes of further sets are built at every call.
const MAX_TAG_SETS: usize = 2000;

/// An instrument, and the attributes of each tag set it was given (the client's tags, then the
/// call's), built once: a call with a tag set seen before allocates nothing.
struct Cached<I> {
    instrument: Arc<I>,
    sets: IndexMap<TagSet, Arc<[KeyValue]>, BuildHasherDefault<FxHasher>>,
}

/// A call's tags, kept as the key of the attributes built for them.
struct TagSet(Box<[(String, String)]>);

/// A call's tags, as given, looked up as a [`TagSet`] without making one.
struct TagQuery<'a>(&'a [(&'a str, &'a str)]);

/// Hashes tags: the same for a [`TagSet`] and the [`TagQuery`] of the same tags.
fn hash_tags<'t, H: Hasher>(tags: impl Iterator<Item = (&'t str, &'t str)>, state: &mut H) {
    for (key, value) in tags {
        state.write(key.as_bytes());
        state.write_u8(0xff);
        state.write(value.as_bytes());
        state.write_u8(0xff);
    }
}

impl Hash for TagSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_tags(self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())), state);
    }
}

impl PartialEq for TagSet {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for TagSet {}

impl Hash for TagQuery<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_tags(self.0.iter().copied(), state);
    }
}

impl Equivalent<TagSet> for TagQuery<'_> {
    fn equivalent(&self, set: &TagSet) -> bool {
        self.0.len() == set.0.len()
            && self
                .0
                .iter()
                .zip(&set.0)
                .all(|((k, v), (key, value))| k == key && v == value)
    }
}

impl MetricsClient {
    /// A client recording into `telemetry`, with no default tags.
    pub fn new(telemetry: &Telemetry) -> MetricsClient {
        MetricsClient {
            recorder: telemetry.recorder(),
            defaults: Vec::new(),
            session: Vec::new(),
            instruments: Arc::default(),
        }
    }

    /// The client with `key` = `value` on every measurement.
    pub fn with_tag(mut self, key: &str, value: &str) -> Result<MetricsClient, MetricsError> {
        validate_tag(key, value)?;
        self.defaults.retain(|(k, _)| k != key);
        self.defaults.push((key.into(), value.into()));
        // Its attributes differ from its clones': it keeps its own.
        self.instruments = Arc::default();
        Ok(self)
    }

    /// The client with the session's tags on every measurement.
    pub fn with_session_tags(mut self, tags: SessionTags) -> Result<MetricsClient, MetricsError> {
        let tags = tags.tags();
        for (key, value) in &tags {
            validate_tag(key, value)?;
        }
        self.session = tags;
        self.instruments = Arc::default();
        Ok(self)
    }

    /// The client without the session's tags (Codex's `with_metrics_without_metadata_tags`).
    pub fn without_metadata_tags(mut self) -> MetricsClient {
        self.session.clear();
        self.instruments = Arc::default();
        self
    }

    /// The attributes of a measurement: the default and session tags, then `tags`, which win.
    fn attributes(&self, tags: &[(&str, &str)]) -> Vec<KeyValue> {
        let inherited = self
            .defaults
            .iter()
            .chain(&self.session)
            .filter(|(k, _)| !tags.iter().any(|(key, _)| key == k))
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
        inherited
            .chain(
                tags.iter()
                    .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string())),
            )
            .collect()
    }

    /// Whether some exporter takes its measurements (with none, the client records nothing).
    pub(crate) fn takes_metrics(&self) -> bool {
        self.recorder.takes_metrics()
    }

    /// Records with `record` into the instrument `name` of the map `of` picks (made by `make`
    /// at its first use), once `name` and `tags` pass Codex's rules; nothing when no exporter
    /// takes metrics. The client's lock is held to find the instrument and the attributes of
    /// `tags`, not while recording.
    fn measure<I>(
        &self,
        name: &str,
        tags: &[(&str, &str)],
        of: impl FnOnce(&mut Instruments) -> &mut HashMap<String, Cached<I>>,
        make: impl FnOnce(&Recorder) -> I,
        record: impl FnOnce(&I, &[KeyValue]),
    ) -> Result<(), MetricsError> {
        validate_metric_name(name)?;
        for (key, value) in tags {
            validate_tag(key, value)?;
        }
        if !self.recorder.takes_metrics() {
            return Ok(());
        }
        let (instrument, attributes) = {
            let mut instruments = self.instruments.lock().unwrap_or_else(|e| e.into_inner());
            let by_name = of(&mut instruments);
            if !by_name.contains_key(name) {
                let instrument = Arc::new(make(&self.recorder));
                let sets = IndexMap::default();
                by_name.insert(name.to_string(), Cached { instrument, sets });
            }
            let cached = by_name.get_mut(name).expect("made above");
            let attributes = match cached.sets.get(&TagQuery(tags)) {
                Some(attributes) => attributes.clone(),
                None => {
                    let attributes: Arc<[KeyValue]> = self.attributes(tags).into();
                    if cached.sets.len() < MAX_TAG_SETS {
                        let set = tags.iter().map(|(k, v)| (k.to_string(), v.to_string()));
                        cached
                            .sets
                            .insert(TagSet(set.collect()), attributes.clone());
                    }
                    attributes
                }
            };
            (cached.instrument.clone(), attributes)
        };
        record(&instrument, &attributes);
        Ok(())
    }

    /// Adds `increment` to the counter `name`; a negative increment is an error.
    pub fn counter(
        &self,
        name: &str,
        increment: i64,
        tags: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        let Ok(increment) = u64::try_from(increment) else {
            validate_metric_name(name)?;
            return Err(MetricsError::NegativeCounterIncrement {
                name: name.into(),
                increment,
            });
        };
        self.measure(
            name,
            tags,
            |i| &mut i.counters,
            |recorder| Counter::new(recorder.clone(), name).with_scope(meter()),
            |counter, attributes| counter.add(increment, attributes),
        )
    }

    /// Records `value` into the histogram `name` (OpenTelemetry's default buckets).
    pub fn histogram(
        &self,
        name: &str,
        value: i64,
        tags: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        self.sample(name, "", &[], value as f64, tags)
    }

    /// Records `duration`, in milliseconds, into the histogram `name` (unit `ms`, Codex's
    /// buckets: [`MILLISECOND_BOUNDS`]).
    pub fn record_duration(
        &self,
        name: &str,
        duration: Duration,
        tags: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        let ms = duration.as_secs_f64() * 1000.0;
        self.sample(name, "ms", &MILLISECOND_BOUNDS, ms, tags)
    }

    /// Records `duration`, in seconds, into the histogram `name` (unit `s`, Codex's buckets:
    /// [`SECOND_BOUNDS`]).
    pub fn record_duration_seconds(
        &self,
        name: &str,
        duration: Duration,
        tags: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        self.sample(name, "s", &SECOND_BOUNDS, duration.as_secs_f64(), tags)
    }

    fn sample(
        &self,
        name: &str,
        unit: &'static str,
        bounds: &[f64],
        value: f64,
        tags: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        self.measure(
            name,
            tags,
            |i| i.histograms.entry(unit).or_default(),
            |recorder| {
                let histogram = Histogram::new(recorder.clone(), name).with_scope(meter());
                match unit {
                    "" => histogram,
                    unit => histogram.with_unit(unit).with_bounds(bounds),
                }
            },
            |histogram, attributes| histogram.record(value, attributes),
        )
    }

    /// Sets the gauge `name` to `value`.
    pub fn gauge(&self, name: &str, value: i64, tags: &[(&str, &str)]) -> Result<(), MetricsError> {
        self.measure(
            name,
            tags,
            |i| &mut i.gauges,
            |recorder| Gauge::new(recorder.clone(), name).with_scope(meter()),
            |gauge, attributes| gauge.record_int(value, attributes),
        )
    }

    /// Registers the observable gauge `name` (Codex's `register_observable_gauge_with_description`):
    /// `callback` is called at every collection of metrics, and its value recorded with the
    /// client's default and session tags. It is called until telemetry shuts down; keep it quick.
    pub fn register_observable_gauge(
        &self,
        name: &str,
        description: &str,
        callback: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> Result<(), MetricsError> {
        validate_metric_name(name)?;
        let attributes = self.attributes(&[]);
        let _ = Gauge::new(self.recorder.clone(), name)
            .with_description(description)
            .with_scope(meter())
            .with_callback(move |observer| observer.observe_int(callback(), &attributes));
        Ok(())
    }

    /// A timer that records the time from now until it is dropped (or [`Timer::record`]) into
    /// the histogram `name`, in milliseconds, as [`MetricsClient::record_duration`] does.
    pub fn start_timer(&self, name: &str, tags: &[(&str, &str)]) -> Result<Timer, MetricsError> {
        validate_metric_name(name)?;
        for (key, value) in tags {
            validate_tag(key, value)?;
        }
        Ok(Timer {
            client: self.clone(),
            name: name.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            started: Instant::now(),
            recorded: false,
        })
    }
}

/// Records the time since it started when dropped (see [`MetricsClient::start_timer`]).
pub struct Timer {
    client: MetricsClient,
    name: String,
    tags: Vec<(String, String)>,
    started: Instant,
    recorded: bool,
}

impl Timer {
    /// Records now, with `tags` added to its own; dropping it afterwards records nothing more.
    pub fn record(mut self, tags: &[(&str, &str)]) -> Result<(), MetricsError> {
        self.recorded = true;
        let mut all: Vec<(&str, &str)> = self
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.extend_from_slice(tags);
        self.client
            .record_duration(&self.name, self.started.elapsed(), &all)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if !self.recorded {
            let tags: Vec<(&str, &str)> = self
                .tags
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            // Its name and tags were checked when it started.
            let _ = self
                .client
                .record_duration(&self.name, self.started.elapsed(), &tags);
        }
    }
}
