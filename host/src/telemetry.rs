//! The telemetry host: the builder that loads every exporter's plugin and starts its worker, the
//! record API, flush and shutdown.

use std::any::Any;
use std::future::Future;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use wasmtel_sdk::model::{Event, KeyValue, Record, Str};

use crate::config::{Config, PipelineConfig, Signals};
use crate::error::{ConfigError, Error, Location};
use crate::exporter::{Signal, Start};
use crate::feedback::{FEEDBACK, FeedbackRing};
use crate::instrument::{Counter, EventBuilder, Gauge, Histogram, SpanBuilder, UpDownCounter};
use crate::metrics::{Reader, Store};
use crate::pipeline::{self, Queue, Worker};
use crate::plugin::{self, default_cache_dir};
use crate::routing::{Recorder, Route, Routes, Sampler};
use crate::selfmetrics;
use crate::sessions::live::{LiveSummary, SUMMARY};
use crate::stats::{Counters, ExporterStats};
use crate::summary::{Dropped, SessionSummary};

/// The telemetry host. Cheap to clone; every clone records into the same pipeline. Dropping the
/// last clone (and the last instrument and span made from it) shuts down as
/// [`Telemetry::shutdown`] does, blocking the dropping thread for at most the config's
/// `shutdown_timeout_ms`.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    routes: Routes,
    /// Every instrument's aggregated points.
    store: Arc<Store>,
    sampler: Sampler,
    /// The feedback ring, and its exporter's queue.
    feedback: Option<(FeedbackRing, Queue)>,
    /// The live session summary, if kept.
    summary: Option<LiveSummary>,
    /// The resource the exporters start with: the application's, with the environment's over it.
    #[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
    resource: Vec<KeyValue>,
    session_id: String,
    shutdown_timeout: Duration,
    workers: Mutex<Vec<JoinHandle<()>>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

/// How long the live summary's records wait to be folded, at most.
const SUMMARY_DELAY: Duration = Duration::from_millis(100);

/// Options for [`Telemetry`] beyond the config file.
pub struct TelemetryBuilder {
    config: Config,
    resource: Vec<KeyValue>,
    deterministic: bool,
    cache_dir: Option<PathBuf>,
    /// The feedback ring's bound, over the config's.
    feedback: Option<NonZeroUsize>,
    /// Whether to keep the live session summary, whatever the config says.
    summary: bool,
    #[cfg(any(test, feature = "testing"))]
    in_memory: Vec<(String, Signals, crate::testing::InMemoryExporter)>,
}

/// What a worker is started with, whatever it exports to.
struct Plan {
    name: String,
    /// The plugin, as the summary names it.
    plugin: String,
    signals: Signals,
    location: Option<Location>,
    pipeline: PipelineConfig,
}

impl Plan {
    /// The plan of an exporter within this process (`what` names it in the summary), with the
    /// default queue and batching.
    fn in_process(name: &str, what: &str, signals: Signals) -> Plan {
        Plan {
            name: name.into(),
            plugin: what.into(),
            signals,
            location: None,
            pipeline: PipelineConfig::default(),
        }
    }
}

impl TelemetryBuilder {
    /// The attributes of the resource (the process) every batch carries, e.g. `service.name`.
    pub fn resource(mut self, attributes: Vec<KeyValue>) -> Self {
        self.resource = attributes;
        self
    }

    /// Cut batches by size only (records and bytes), never by delay: replaying the same input
    /// then makes the same batches. For replays, not for live recording.
    pub fn deterministic_batching(mut self) -> Self {
        self.deterministic = true;
        self
    }

    /// Keeps the most recent records in a feedback ring of `max_bytes` (see
    /// [`Telemetry::feedback`]), whatever the config's `[telemetry.feedback]` says.
    pub fn feedback_ring(mut self, max_bytes: NonZeroUsize) -> Self {
        self.feedback = Some(max_bytes);
        self
    }

    /// Keeps the session's summary live (see [`Telemetry::session_summary`]), whatever the
    /// config's `[telemetry] session_summary` says.
    pub fn session_summary(mut self) -> Self {
        self.summary = true;
        self
    }

    /// Where compiled plugins are cached (none: compile at every start).
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Adds an exporter named `name` that keeps what it is given in `exporter`, with the default
    /// queue and batching, after the config's exporters. Like them, it runs only when the
    /// config's telemetry is enabled.
    #[cfg(any(test, feature = "testing"))]
    pub fn in_memory(
        mut self,
        name: &str,
        signals: Signals,
        exporter: &crate::testing::InMemoryExporter,
    ) -> Self {
        self.in_memory
            .push((name.to_string(), signals, exporter.clone()));
        self
    }

    /// Every exporter's sandbox directory, by exporter name.
    pub(crate) fn sandbox_dirs(&self) -> Vec<(String, PathBuf)> {
        self.config
            .exporters
            .iter()
            .filter_map(|e| Some((e.name.clone(), e.sandbox.dir.clone()?)))
            .collect()
    }

    /// Loads every exporter's plugin, instantiates it in its sandbox, calls its `init`, and starts
    /// its worker. Fails if a plugin cannot be loaded (a config error). A plugin that fails in
    /// `init` does not stop the others: its exporter is parked (tried again later) or, if it
    /// refused its config, failed; see [`Telemetry::stats`].
    pub fn start(mut self) -> Result<Telemetry, Error> {
        for notice in self.config.notices() {
            tracing::warn!("{notice}");
        }
        // `[otel] environment` is the resource's `env`, unless the application set one.
        if let Some(otel) = self.config.otel()
            && !self.resource.iter().any(|kv| kv.key == "env")
        {
            self.resource
                .push(KeyValue::new("env", otel.environment.clone()));
        }
        // The environment's resource attributes (`OTEL_RESOURCE_ATTRIBUTES`,
        // `OTEL_SERVICE_NAME`...) over the application's.
        for (key, value) in &self.config.resource {
            self.resource.retain(|kv| kv.key != key.as_str());
            self.resource
                .push(KeyValue::new(key.clone(), value.clone()));
        }
        let sampler = Sampler::ratio(self.config.sample_rate);
        let config = self.config;
        let ring = self
            .feedback
            .map(NonZeroUsize::get)
            .or(config.feedback)
            .filter(|_| config.enabled)
            .map(FeedbackRing::new);
        let keep_summary = self.summary || config.session_summary;
        // The in-process exporters' names are their own; `key` names what asked for each.
        for (wanted, name, what, key) in [
            (
                ring.is_some(),
                FEEDBACK,
                "the feedback ring",
                "feedback_ring",
            ),
            (
                keep_summary,
                SUMMARY,
                "the session summary",
                "session_summary",
            ),
        ] {
            if wanted && config.enabled && config.exporters.iter().any(|e| e.name == name) {
                return Err(Error::Config(ConfigError {
                    file: "the telemetry builder".into(),
                    location: None,
                    key: Some(key.into()),
                    message: format!(
                        "{what} is the exporter `{name}`, and an exporter of the config has \
                         that name: give it another"
                    ),
                }));
            }
        }
        let session_id = config.session_id_or_new();
        let live = keep_summary
            .then(|| LiveSummary::new(&session_id))
            .filter(|_| config.enabled);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wasmtel")
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(e.into()))?;
        let mut launched = Vec::new();
        let mut store = Store::new(0);
        if config.enabled {
            let plugins = plugin::Runtime::new(self.cache_dir)?;
            // Load every plugin before starting any, so a bad one stops the start before any
            // plugin has run (and, say, created a file).
            let loaded = config
                .exporters
                .into_iter()
                .map(|exporter| Ok((exporter.load(&plugins)?, exporter)))
                .collect::<Result<Vec<_>, Error>>()?;
            let takes_metrics = |signals: &Signals| signals.wants(Signal::Metrics);
            let readers = loaded
                .iter()
                .filter(|(_, e)| takes_metrics(&e.signals))
                .count();
            #[cfg(any(test, feature = "testing"))]
            let readers = readers
                + self
                    .in_memory
                    .iter()
                    .filter(|m| takes_metrics(&m.1))
                    .count();
            let readers = readers + usize::from(ring.is_some());
            store = Store::new(readers);
            let mut slots = 0..;
            for (plugin, exporter) in loaded {
                let plan = Plan {
                    name: exporter.name.clone(),
                    plugin: exporter.plugin.to_string(),
                    signals: exporter.signals,
                    location: exporter.location.clone(),
                    pipeline: exporter.pipeline.clone(),
                };
                let counters = Arc::new(Counters::default());
                let setup = exporter.setup(plugin, &session_id, counters.limits.clone());
                launched.push(launch(
                    &runtime,
                    plan,
                    setup,
                    counters,
                    (&store, &mut slots),
                    &self.resource,
                    self.deterministic,
                ));
            }
            #[cfg(any(test, feature = "testing"))]
            for (name, signals, exporter) in self.in_memory {
                let plan = Plan::in_process(&name, "in-memory", signals);
                launched.push(launch(
                    &runtime,
                    plan,
                    exporter,
                    Arc::default(),
                    (&store, &mut slots),
                    &self.resource,
                    self.deterministic,
                ));
            }
            if let Some(ring) = &ring {
                let plan = Plan::in_process(FEEDBACK, "in-memory ring", Signals::ALL);
                launched.push(launch(
                    &runtime,
                    plan,
                    ring.clone(),
                    Arc::default(),
                    (&store, &mut slots),
                    &self.resource,
                    self.deterministic,
                ));
            }
            if let Some(live) = &live {
                let signals = Signals {
                    metrics: false,
                    ..Signals::ALL
                };
                let mut plan = Plan::in_process(SUMMARY, "in-memory summary", signals);
                plan.pipeline.max_delay = SUMMARY_DELAY;
                launched.push(launch(
                    &runtime,
                    plan,
                    live.clone(),
                    Arc::default(),
                    (&store, &mut slots),
                    &self.resource,
                    self.deterministic,
                ));
            }
        }
        let (routes, workers): (Vec<Route>, Vec<JoinHandle<()>>) = launched.into_iter().unzip();
        let feedback = ring.and_then(|ring| {
            let route = routes.iter().find(|r| r.name == FEEDBACK)?;
            Some((ring, route.queue.clone()))
        });
        let routes = Routes::new(routes);
        if let Some(interval) = config.self_metrics_interval
            && !workers.is_empty()
        {
            runtime.spawn(selfmetrics::run(routes.clone(), store.clone(), interval));
        }
        Ok(Telemetry {
            inner: Arc::new(Inner {
                routes,
                store,
                sampler,
                feedback,
                summary: live,
                resource: self.resource,
                session_id,
                shutdown_timeout: config.shutdown_timeout,
                workers: Mutex::new(workers),
                runtime: Mutex::new(Some(runtime)),
            }),
        })
    }
}

/// Starts the worker of `plan` on `runtime`, counting in `counters`: makes its first exporter
/// with `starter` (waiting for it), then spawns it. If the exporter takes metrics, the worker
/// collects them from `store` with the next of the reader `slots`. Returns its route and its task.
fn launch<S: Start>(
    runtime: &tokio::runtime::Runtime,
    plan: Plan,
    starter: S,
    counters: Arc<Counters>,
    (store, slots): (&Arc<Store>, &mut std::ops::RangeFrom<usize>),
    resource: &[KeyValue],
    deterministic: bool,
) -> (Route, JoinHandle<()>) {
    let reader = plan.signals.wants(Signal::Metrics).then(|| {
        let slot = slots.next().expect("slots without end");
        Reader::new(store.clone(), slot, plan.pipeline.temporality)
    });
    let mut worker = Worker::new(
        &plan.name,
        plan.location,
        plan.pipeline.clone(),
        starter,
        counters.clone(),
        resource,
        deterministic,
    );
    // An exporter that cannot start costs only its own output: the worker parks it (or, refusing
    // its config, fails it) and the others run.
    let worker = block_on(runtime, async move {
        worker.start().await;
        worker
    });
    let (queue, inbox) = Queue::new(&plan.pipeline, counters.clone());
    let route = Route {
        name: plan.name,
        plugin: plan.plugin,
        signals: plan.signals,
        max_record_bytes: plan.pipeline.max_batch_bytes,
        queue,
        counters,
    };
    (route, runtime.spawn(worker.run(inbox, reader)))
}

/// Runs `future` on `runtime` and waits for it, from any thread (also from inside another
/// async runtime, where `Runtime::block_on` would panic).
pub(crate) fn block_on<F>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    try_block_on(runtime.handle(), future, None).expect("the telemetry runtime runs until shutdown")
}

/// [`block_on`] through a handle, waiting at most `limit` (if given): `None` if the runtime
/// stopped before `future` finished, or the limit passed (the future goes on).
fn try_block_on<F>(
    handle: &tokio::runtime::Handle,
    future: F,
    limit: Option<Duration>,
) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = tx.send(future.await);
    });
    match limit {
        Some(limit) => rx.recv_timeout(limit).ok(),
        None => rx.recv().ok(),
    }
}

/// How much longer than its own timeout a flush or shutdown waits for the runtime, in case its
/// timers are held up (both threads stuck in a system call, say); then the caller goes on.
const GRACE: Duration = Duration::from_secs(1);

impl Telemetry {
    /// Starts the pipeline of `config` with an empty resource and the default plugin cache.
    pub fn start(config: Config) -> Result<Telemetry, Error> {
        Telemetry::builder(config).start()
    }

    /// A builder, for a resource and other options.
    pub fn builder(config: Config) -> TelemetryBuilder {
        TelemetryBuilder {
            config,
            resource: Vec::new(),
            deterministic: false,
            cache_dir: default_cache_dir(),
            feedback: None,
            summary: false,
            #[cfg(any(test, feature = "testing"))]
            in_memory: Vec::new(),
        }
    }

    /// The session id handed to the plugins.
    pub fn session_id(&self) -> &str {
        &self.inner.session_id
    }

    /// Records any record as is: events, spans, already-aggregated metrics, or a change of
    /// resource. Never blocks: a record that does not fit an exporter's queue is dropped there
    /// and counted.
    pub fn record(&self, record: Record) {
        self.inner.routes.record(record, false);
    }

    /// Records `record`, waiting for room in every queue instead of dropping: for replays.
    /// Must not be called from inside an async runtime.
    pub fn record_blocking(&self, record: Record) {
        self.inner.routes.record(record, true);
    }

    /// Starts an event named `name`, to record with [`EventBuilder::emit`]:
    /// `telemetry.event("codex.user_prompt").attr("prompt_length", 42).emit()`. When no exporter
    /// takes events, this and every call of the builder do nothing.
    #[inline]
    pub fn event(&self, name: impl Into<Str>) -> EventBuilder<'_> {
        EventBuilder::new(&self.inner.routes, name)
    }

    /// Records an event built beforehand; a time of 0 is set to now. Never blocks.
    pub fn emit(&self, event: Event) {
        self.inner.routes.event(event);
    }

    /// The feedback ring (`[telemetry.feedback]`, [`TelemetryBuilder::feedback_ring`]): the most
    /// recent records, for a bug report, in the record format by [`FeedbackRing::jsonl`]; and
    /// whether everything recorded before this call is in it: the ring's exporter takes what
    /// is queued for it first, within `timeout` (the other exporters are not waited for).
    /// Recording goes on. None without a ring, or with telemetry disabled.
    pub fn feedback(&self, timeout: Duration) -> Option<(FeedbackRing, bool)> {
        let (ring, queue) = self.inner.feedback.as_ref()?;
        let complete = self.flush_queues(vec![queue.clone()], timeout);
        Some((ring.clone(), complete))
    }

    /// The session's summary so far (see [`SessionSummary`]): its events and spans, as the
    /// pipeline gives them to a summary beside the exporters, and the records each exporter
    /// dropped, from its counters. It lags the record calls by at most a batch's delay (100
    /// ms); it reads no file. None unless kept (`[telemetry] session_summary = true`,
    /// [`TelemetryBuilder::session_summary`]), or with telemetry disabled. Metrics are not
    /// counted in it.
    pub fn session_summary(&self) -> Option<SessionSummary> {
        let mut summary = self.inner.summary.as_ref()?.summary();
        summary.drops = self
            .stats()
            .iter()
            .flat_map(|s| {
                s.drops()
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(reason, n)| Dropped {
                        exporter: s.name.clone(),
                        reason: reason.trim_start_matches("dropped_").into(),
                        records: n,
                    })
            })
            .collect();
        Some(summary)
    }

    /// The resource the exporters started with.
    #[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
    pub(crate) fn resource(&self) -> &[KeyValue] {
        &self.inner.resource
    }

    /// What instruments and spans record through; they keep this telemetry running.
    pub(crate) fn recorder(&self) -> Recorder {
        let owner: Arc<dyn Any + Send + Sync> = self.inner.clone();
        Recorder::new(
            self.inner.routes.clone(),
            self.inner.store.clone(),
            self.inner.sampler,
            owner,
        )
    }

    /// A [`Counter`] named `name`: a monotonic sum.
    pub fn counter(&self, name: &str) -> Counter {
        Counter::new(self.recorder(), name)
    }

    /// An [`UpDownCounter`] named `name`: a sum that goes up and down.
    pub fn up_down_counter(&self, name: &str) -> UpDownCounter {
        UpDownCounter::new(self.recorder(), name)
    }

    /// A [`Histogram`] named `name`, with OpenTelemetry's default buckets.
    pub fn histogram(&self, name: &str) -> Histogram {
        Histogram::new(self.recorder(), name)
    }

    /// A [`Gauge`] named `name`: the last value recorded.
    pub fn gauge(&self, name: &str) -> Gauge {
        Gauge::new(self.recorder(), name)
    }

    /// A new span named `name`: a root span unless given a parent.
    pub fn span(&self, name: &str) -> SpanBuilder {
        SpanBuilder::new(self.recorder(), name)
    }

    /// A snapshot of every exporter's counters, in config order.
    pub fn stats(&self) -> Vec<ExporterStats> {
        self.inner.routes.stats()
    }

    /// Exports everything recorded so far (aggregated metrics included) and flushes every
    /// exporter; waits at most `timeout`. Returns false if it timed out.
    pub fn flush(&self, timeout: Duration) -> bool {
        let queues = self.inner.routes.iter().map(|r| r.queue.clone()).collect();
        self.flush_queues(queues, timeout)
    }

    /// Flushes the exporters of `queues`; whether they all finished within `timeout`.
    fn flush_queues(&self, queues: Vec<Queue>, timeout: Duration) -> bool {
        let Some(handle) = self.runtime_handle() else {
            return false;
        };
        // Every exporter flushes at once: a stuck one holds back no other.
        let all = async move {
            let each: Vec<_> = queues
                .into_iter()
                .map(|queue| tokio::spawn(pipeline::flush(queue)))
                .collect();
            for exporter in each {
                let _ = exporter.await;
            }
        };
        try_block_on(
            &handle,
            async move { tokio::time::timeout(timeout, all).await.is_ok() },
            Some(timeout.saturating_add(GRACE)),
        )
        .unwrap_or(false)
    }

    fn runtime_handle(&self) -> Option<tokio::runtime::Handle> {
        let runtime = self.inner.runtime.lock().unwrap_or_else(|e| e.into_inner());
        runtime.as_ref().map(|rt| rt.handle().clone())
    }

    /// Exports what is queued, shuts every exporter down, and stops, within the config's
    /// `shutdown_timeout_ms`. Records not delivered by then are counted as dropped. Returns every
    /// exporter's final counters. Later calls return the counters again; records recorded after
    /// shutdown are dropped and counted.
    pub fn shutdown(&self) -> Vec<ExporterStats> {
        self.inner.shutdown(self.inner.shutdown_timeout);
        self.stats()
    }

    /// [`Telemetry::shutdown`] within `budget` instead of the config's `shutdown_timeout_ms`:
    /// for an exit that must not wait longer, whether the exporters' destinations answer or not
    /// (a TUI's 500 ms, say).
    pub fn shutdown_with_timeout(&self, budget: Duration) -> Vec<ExporterStats> {
        self.inner.shutdown(budget);
        self.stats()
    }
}

impl Inner {
    fn shutdown(&self, budget: Duration) {
        let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        // Measurements from here on are not collected: they are counted as dropped.
        self.store.close();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let routes = self.routes.clone();
        // Every exporter shuts down at once, all within one deadline: one stuck exporter does
        // not hold back the others.
        let stopped = async move {
            let deadline = tokio::time::Instant::now() + budget;
            let each: Vec<_> = routes
                .iter()
                .zip(workers)
                .map(|(route, worker)| {
                    let (queue, counters) = (route.queue.clone(), route.counters.clone());
                    tokio::spawn(async move {
                        pipeline::stop(queue, worker, &counters, deadline, budget).await
                    })
                })
                .collect();
            for exporter in each {
                let _ = exporter.await;
            }
        };
        if try_block_on(
            runtime.handle(),
            stopped,
            Some(budget.saturating_add(GRACE)),
        )
        .is_none()
        {
            // What an exporter still held is not counted by it: it shows as pending.
            for route in self.routes.iter() {
                let pending = route
                    .counters
                    .pending
                    .load(std::sync::atomic::Ordering::Relaxed);
                if pending > 0 {
                    let message = format!(
                        "shutdown did not end within its {} ms and {} ms more, with {pending} \
                         records pending; left to stop in the background",
                        budget.as_millis(),
                        GRACE.as_millis()
                    );
                    tracing::error!(exporter = %route.name, "{message}");
                    route.counters.set_error(message);
                }
            }
        }
        // Callbacks may hold this telemetry (a client they read through): let it go.
        self.store.clear_callbacks();
        runtime.shutdown_background();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown(self.shutdown_timeout);
    }
}
