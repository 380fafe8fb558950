//! Codex's metrics client: [`MetricsClient`], with Codex's rules for names and tags and its
//! session tags (see `tags`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indexmap::{Equivalent, IndexMap};
use rustc_hash::FxHasher;
use wasmtel_sdk::model::{KeyValue, Scope};

use super::tags::{
    MILLISECOND_BOUNDS, MetricsError, SECOND_BOUNDS, SessionTags, check, check_increment,
    validate_metric_name, validate_tag,
};
use crate::instrument::{Counter, Gauge, Histogram};
use crate::routing::Recorder;
use crate::telemetry::Telemetry;

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
        self.session = tags.checked()?;
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
        check(name, tags)?;
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
        let increment = check_increment(name, increment)?;
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
        check(name, tags)?;
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
