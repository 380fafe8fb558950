//! The telemetry host: starts every exporter's plugin and worker, routes records to their
//! queues, flushes and shuts down.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};
use wasmtel_sdk::model::{Event, KeyValue, Record};

use crate::config::{Config, ExporterConfig, PluginSource, Signals};
use crate::error::{Error, LoadError};
use crate::pipeline::{self, Health, Item, Worker};
use crate::stats::{Counters, ExporterState, ExporterStats};
use crate::{builtin, default_cache_dir, metrics, now_unix_nano, plugin, selfmetrics};
/// Sends what `make` builds to every route that takes `signal`: waiting for room if `wait`, else
/// dropping (and counting) where a queue is full.
pub(crate) fn send(routes: &[Route], signal: Signal, make: impl FnOnce() -> Item, wait: bool) {
    let mut routes = routes
        .iter()
        .filter(|r| signal.wanted_by(r.signals))
        .peekable();
    if routes.peek().is_none() {
        return;
    }
    let item = make();
    for route in routes {
        let item = match &item {
            Item::Record(r) => Item::Record(r.clone()),
            Item::Measurement(m) => Item::Measurement(m.clone()),
            Item::Flush(_) | Item::Shutdown => unreachable!("only records are routed"),
        };
        let counters = &route.counters;
        counters.pending.fetch_add(1, Relaxed);
        let sent = if wait {
            route.tx.blocking_send(item).map_err(|_| false)
        } else {
            route
                .tx
                .try_send(item)
                .map_err(|e| matches!(e, TrySendError::Full(_)))
        };
        if let Err(full) = sent {
            counters.pending.fetch_sub(1, Relaxed);
            let counter = if full {
                &counters.dropped_queue_full
            } else {
                &counters.dropped_shutdown
            };
            Counters::add(counter, 1);
        }
    }
}

/// The telemetry host. Cheap to clone; every clone records into the same pipeline. Dropping the
/// last clone shuts down as [`Telemetry::shutdown`] does, blocking the dropping thread for at most
/// the config's `shutdown_timeout_ms`.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct Route {
    name: String,
    plugin: String,
    signals: Signals,
    tx: mpsc::Sender<Item>,
    counters: Arc<Counters>,
}

impl Route {
    /// A snapshot of the exporter's counters.
    pub(crate) fn stats(&self) -> ExporterStats {
        self.counters.snapshot(&self.name, &self.plugin)
    }
}

struct Inner {
    routes: Vec<Route>,
    session_id: String,
    shutdown_timeout: Duration,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

/// Options for [`Telemetry`] beyond the config file.
pub struct TelemetryBuilder {
    config: Config,
    resource: Vec<KeyValue>,
    deterministic: bool,
    cache_dir: Option<PathBuf>,
}

impl TelemetryBuilder {
    /// The attributes of the resource (the process) every batch carries, e.g. `service.name`.
    pub fn resource(mut self, attributes: Vec<KeyValue>) -> Self {
        self.resource = attributes;
        self
    }

    /// Cut batches by size only (records and bytes), never by delay: replaying the same input then makes the same
    /// batches. For replays, not for live recording.
    pub fn deterministic_batching(mut self) -> Self {
        self.deterministic = true;
        self
    }

    /// Where compiled plugins are cached (none: compile at every start).
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Loads every exporter's plugin, instantiates it in its sandbox, calls its `init`, and starts
    /// its worker. Fails if a plugin cannot be loaded (a config error). A plugin that fails in
    /// `init` does not stop the others: its exporter is parked (tried again later) or, if it
    /// refused its config, failed; see [`Telemetry::stats`].
    pub fn start(self) -> Result<Telemetry, Error> {
        let config = self.config;
        let session_id = config
            .session_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wasmtel")
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let mut routes = Vec::new();
        let mut workers = Vec::new();
        if config.enabled {
            let plugins = plugin::Runtime::new(self.cache_dir)
                .map_err(|e| Error::Runtime(format!("{e:#}")))?;
            // Load every plugin before starting any, so a bad one stops the start before any
            // plugin has run (and, say, created a file).
            let loaded = config
                .exporters
                .into_iter()
                .map(|exporter| Ok((load(&plugins, &exporter)?, exporter)))
                .collect::<Result<Vec<_>, Error>>()?;
            for (plugin, exporter) in loaded {
                // An exporter that cannot start costs only its own output: it is parked (or,
                // refusing its config, failed) and the others run.
                let counters = Arc::new(Counters::default());
                let started = block_on(
                    &runtime,
                    start_instance(plugin.clone(), exporter.clone(), session_id.clone()),
                );
                let (instance, health) = match started {
                    Ok(instance) => (Some(instance), Health::Running { failures: 0 }),
                    Err(e) => {
                        tracing::error!(exporter = %exporter.name, "{e}");
                        counters.set_error(e.to_string());
                        if matches!(
                            e,
                            Error::Init {
                                permanent: true,
                                ..
                            }
                        ) {
                            counters.set_state(ExporterState::Failed);
                            (None, Health::Failed)
                        } else {
                            counters.set_state(ExporterState::Parked);
                            let until = std::time::Instant::now() + pipeline::FIRST_PARK;
                            (
                                None,
                                Health::Parked {
                                    until,
                                    backoff: pipeline::FIRST_PARK,
                                },
                            )
                        }
                    }
                };
                let (tx, rx) = mpsc::channel(exporter.queue.capacity);
                routes.push(Route {
                    name: exporter.name.clone(),
                    plugin: exporter.plugin.to_string(),
                    signals: exporter.signals,
                    tx,
                    counters: counters.clone(),
                });
                let worker = Worker {
                    config: exporter,
                    plugin,
                    instance,
                    health,
                    session_id: session_id.clone(),
                    counters,
                    resource: self.resource.clone(),
                    deterministic: self.deterministic,
                };
                workers.push(runtime.spawn(worker.run(rx)));
            }
        }
        if let Some(interval) = config.self_metrics_interval
            && !routes.is_empty()
        {
            runtime.spawn(selfmetrics::run(routes.clone(), interval));
        }
        Ok(Telemetry {
            inner: Arc::new(Inner {
                routes,
                session_id,
                shutdown_timeout: config.shutdown_timeout,
                workers: Mutex::new(workers),
                runtime: Mutex::new(Some(runtime)),
            }),
        })
    }
}

/// Loads an exporter's plugin: the embedded bytes of a built-in, or a component file.
fn load(plugins: &plugin::Runtime, exporter: &ExporterConfig) -> Result<plugin::Plugin, Error> {
    let err = |source: LoadError| Error::Load {
        exporter: exporter.name.clone(),
        origin: exporter.origin.clone(),
        error: source,
    };
    let what = exporter.plugin.to_string();
    let bytes = match &exporter.plugin {
        PluginSource::Builtin(name) => std::borrow::Cow::Borrowed(
            builtin::bytes(name).expect("config accepts only built-in names"),
        ),
        PluginSource::File(path) => std::borrow::Cow::Owned(std::fs::read(path).map_err(|e| {
            err(LoadError {
                plugin: what.clone(),
                reason: if e.kind() == std::io::ErrorKind::NotFound {
                    "no such file".to_string()
                } else {
                    format!("cannot read: {e}")
                },
            })
        })?),
    };
    plugins.load(&what, &bytes).map_err(err)
}

pub(crate) async fn start_instance(
    plugin: plugin::Plugin,
    exporter: ExporterConfig,
    session_id: String,
) -> Result<plugin::Instance, Error> {
    let mut instance = plugin
        .instantiate(&exporter.name, &exporter.sandbox)
        .await?;
    instance
        .init(&exporter.plugin_config, &exporter.name, &session_id)
        .await
        .map_err(|e| Error::Init {
            exporter: exporter.name.clone(),
            origin: exporter.origin.clone(),
            reason: e.to_string(),
            permanent: matches!(
                e,
                plugin::CallError::Plugin(plugin::PluginError::Permanent(_))
            ),
        })?;
    Ok(instance)
}

/// Runs `future` on `runtime` and waits for it, from any thread (also from inside another
/// async runtime, where `Runtime::block_on` would panic).
fn block_on<F>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    try_block_on(runtime.handle(), future).expect("the telemetry runtime runs until shutdown")
}

/// [`block_on`] through a handle: `None` if the runtime stopped before `future` finished.
fn try_block_on<F>(handle: &tokio::runtime::Handle, future: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().ok()
}

/// Loads, instantiates and initializes every exporter of `config`, then shuts it down: what
/// `wasmtel check` prints. One result per exporter, in config order.
pub fn check(config: &Config, cache_dir: Option<PathBuf>) -> Vec<(String, Result<(), Error>)> {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![("runtime".into(), Err(Error::Runtime(e.to_string())))],
    };
    let plugins = match plugin::Runtime::new(cache_dir) {
        Ok(p) => p,
        Err(e) => return vec![("runtime".into(), Err(e))],
    };
    let session_id = config
        .session_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let results = config
        .exporters
        .iter()
        .map(|exporter| {
            let result = load(&plugins, exporter).and_then(|plugin| {
                let (exporter, session_id) = (exporter.clone(), session_id.clone());
                block_on(&runtime, async move {
                    let mut instance = start_instance(plugin, exporter, session_id).await?;
                    let _ = instance.shutdown().await;
                    Ok(())
                })
            });
            (exporter.name.clone(), result)
        })
        .collect();
    runtime.shutdown_background();
    results
}

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
        self.route(
            record_signal(&record),
            || Item::Record(Arc::new(record)),
            false,
        );
    }

    /// Records `record`, waiting for room in every queue instead of dropping: for replays.
    /// Must not be called from inside an async runtime.
    pub fn record_blocking(&self, record: Record) {
        self.route(
            record_signal(&record),
            || Item::Record(Arc::new(record)),
            true,
        );
    }

    /// Records an event; a time of 0 is set to now.
    pub fn event(&self, mut event: Event) {
        if event.time_unix_nano == 0 {
            event.time_unix_nano = now_unix_nano();
        }
        self.record(Record::Event(event));
    }

    pub(crate) fn measure(&self, m: metrics::Measurement) {
        self.route(Signal::Metrics, || Item::Measurement(Arc::new(m)), false);
    }

    /// Sends what `make` builds to every exporter that takes `signal`.
    fn route(&self, signal: Signal, make: impl FnOnce() -> Item, wait: bool) {
        send(&self.inner.routes, signal, make, wait);
    }

    /// A snapshot of every exporter's counters, in config order.
    pub fn stats(&self) -> Vec<ExporterStats> {
        self.inner.routes.iter().map(Route::stats).collect()
    }

    /// Exports everything recorded so far (aggregated metrics included) and flushes every
    /// plugin; waits at most `timeout`. Returns false if it timed out.
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(handle) = self.runtime_handle() else {
            return false;
        };
        let senders: Vec<_> = self.inner.routes.iter().map(|r| r.tx.clone()).collect();
        // Every exporter flushes at once: a stuck one holds back no other.
        let all = async move {
            let each: Vec<_> = senders
                .into_iter()
                .map(|sender| {
                    tokio::spawn(async move {
                        let (done, wait) = tokio::sync::oneshot::channel();
                        if sender.send(Item::Flush(done)).await.is_ok() {
                            let _ = wait.await;
                        }
                    })
                })
                .collect();
            for exporter in each {
                let _ = exporter.await;
            }
        };
        try_block_on(&handle, async move {
            tokio::time::timeout(timeout, all).await.is_ok()
        })
        .unwrap_or(false)
    }

    fn runtime_handle(&self) -> Option<tokio::runtime::Handle> {
        let runtime = self.inner.runtime.lock().unwrap_or_else(|e| e.into_inner());
        runtime.as_ref().map(|rt| rt.handle().clone())
    }

    /// Exports what is queued, shuts every plugin down, and stops, within the config's
    /// `shutdown_timeout_ms`. Records not delivered by then are counted as dropped. Returns every
    /// exporter's final counters. Later calls return the counters again; records recorded after
    /// shutdown are dropped and counted.
    pub fn shutdown(&self) -> Vec<ExporterStats> {
        self.inner.shutdown();
        self.stats()
    }
}

impl Inner {
    fn shutdown(&self) {
        let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let senders: Vec<_> = self.routes.iter().map(|r| r.tx.clone()).collect();
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        // Every exporter shuts down at once, each within the deadline: one stuck exporter does
        // not hold back the others.
        let finished = block_on(&runtime, async move {
            let each: Vec<_> = senders
                .into_iter()
                .zip(workers)
                .map(|(sender, worker)| {
                    tokio::spawn(async move {
                        let abort = worker.abort_handle();
                        let stopped = async {
                            let _ = sender.send(Item::Shutdown).await;
                            let _ = worker.await;
                        };
                        let done = tokio::time::timeout_at(deadline, stopped).await.is_ok();
                        if !done {
                            abort.abort();
                        }
                        done
                    })
                })
                .collect();
            let mut finished = Vec::new();
            for exporter in each {
                finished.push(exporter.await.unwrap_or(false));
            }
            finished
        });
        for (route, done) in self.routes.iter().zip(finished) {
            if !done {
                let c = &route.counters;
                let undelivered = c.pending.swap(0, Relaxed);
                Counters::add(&c.dropped_shutdown, undelivered);
                c.set_error(format!(
                    "shutdown deadline ({} ms) passed with {undelivered} records undelivered",
                    self.shutdown_timeout.as_millis()
                ));
            }
        }
        runtime.shutdown_background();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Signal {
    Events,
    Spans,
    Metrics,
    /// A change of resource goes to every exporter.
    All,
}

impl Signal {
    fn wanted_by(self, signals: Signals) -> bool {
        match self {
            Signal::Events => signals.events,
            Signal::Spans => signals.spans,
            Signal::Metrics => signals.metrics,
            Signal::All => true,
        }
    }
}

fn record_signal(record: &Record) -> Signal {
    match record {
        Record::Resource(_) => Signal::All,
        Record::Event(_) => Signal::Events,
        Record::Span(_) => Signal::Spans,
        Record::Metric(_) => Signal::Metrics,
    }
}
