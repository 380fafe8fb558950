//! One exporter's worker: takes records from the exporter's bounded queue, cuts batches (by
//! size, by delay, at a change of resource), aggregates measurements per interval, and exports
//! through the exporter's own plugin instance, retrying and restarting it per policy.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use wasmtel_sdk::encode;
use wasmtel_sdk::model::{KeyValue, Record, Scope};

use crate::config::ExporterConfig;
use crate::metrics::{Aggregator, Measurement};
use crate::now_unix_nano;
use crate::plugin::{Batch, CallError, Instance, Plugin, PluginError};
use crate::stats::{Counters, ExporterState};

/// What travels through an exporter's queue.
pub(crate) enum Item {
    Record(Arc<Record>),
    Measurement(Arc<Measurement>),
    /// Export what is buffered, flush the plugin, then answer.
    Flush(oneshot::Sender<()>),
    /// Export what is buffered, shut the plugin down, and stop.
    Shutdown,
}

impl Item {
    /// How many records the item stands for, in the counters.
    pub fn records(&self) -> u64 {
        matches!(self, Item::Record(_) | Item::Measurement(_)) as u64
    }
}

/// The records of the batch being filled, and roughly how many bytes they take.
#[derive(Default)]
struct Buffer {
    records: Vec<Arc<Record>>,
    bytes: usize,
}

impl Buffer {
    /// Adds a record that takes `bytes`.
    fn push(&mut self, record: Arc<Record>, bytes: usize) {
        self.bytes += bytes;
        self.records.push(record);
    }

    fn take(&mut self) -> Vec<Arc<Record>> {
        self.bytes = 0;
        std::mem::take(&mut self.records)
    }
}

/// Everything a worker needs.
pub(crate) struct Worker {
    pub config: ExporterConfig,
    pub plugin: Plugin,
    pub instance: Option<Instance>,
    pub session_id: String,
    pub counters: Arc<Counters>,
    pub resource: Vec<KeyValue>,
    /// Cut batches by size only, never by delay (replay), so that a replay is deterministic.
    pub deterministic: bool,
    pub health: Health,
}

/// Whether an exporter gets its batches.
pub(crate) enum Health {
    /// Batches are exported; `failures` batches in a row were given up on.
    Running { failures: u32 },
    /// The exporter kept failing: batches are dropped until `until`, then one is tried once.
    Parked { until: Instant, backoff: Duration },
    /// The plugin refused its config: every batch is dropped.
    Failed,
}

/// The first delay after a fault before a fresh instance is made; doubled per fault in a row.
const RESTART_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Batches given up on in a row before the exporter is parked.
const PARK_AFTER: u32 = 3;
/// How long an exporter is parked at first; doubled each time a trial fails.
pub(crate) const FIRST_PARK: Duration = Duration::from_secs(5);
const MAX_PARK: Duration = Duration::from_secs(600);

impl Worker {
    pub async fn run(mut self, mut rx: mpsc::Receiver<Item>) {
        let mut batch = Buffer::default();
        let mut aggregator = Aggregator::new(self.config.metrics.temporality);
        let mut batch_deadline: Option<tokio::time::Instant> = None;
        let mut interval = tokio::time::interval(self.config.metrics.interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        let (max_batch, max_bytes) = (
            self.config.queue.max_batch,
            self.config.queue.max_batch_bytes,
        );
        loop {
            let deadline = batch_deadline;
            tokio::select! {
                item = rx.recv() => match item {
                    Some(Item::Record(record)) => {
                        if let Record::Resource(attributes) = &*record {
                            self.export(&mut batch).await;
                            self.resource = attributes.clone();
                            self.counters.pending.fetch_sub(1, Relaxed);
                            continue;
                        }
                        // A record that would take the batch past its byte cap starts the next.
                        let bytes = record.approx_size();
                        if !batch.records.is_empty() && batch.bytes + bytes > max_bytes {
                            self.export(&mut batch).await;
                        }
                        if batch.records.is_empty() && !self.deterministic {
                            batch_deadline = Some(tokio::time::Instant::now() + self.config.queue.max_delay);
                        }
                        batch.push(record, bytes);
                        if batch.records.len() >= max_batch || batch.bytes >= max_bytes {
                            self.export(&mut batch).await;
                            batch_deadline = None;
                        }
                    }
                    Some(Item::Measurement(m)) => {
                        aggregator.record(&m);
                        self.counters.pending.fetch_sub(1, Relaxed);
                    }
                    Some(Item::Flush(done)) => {
                        self.collect(&mut aggregator, &mut batch);
                        self.export(&mut batch).await;
                        batch_deadline = None;
                        self.flush().await;
                        let _ = done.send(());
                    }
                    Some(Item::Shutdown) | None => {
                        self.collect(&mut aggregator, &mut batch);
                        self.export(&mut batch).await;
                        self.shutdown().await;
                        rx.close();
                        while let Ok(item) = rx.try_recv() {
                            let n = item.records();
                            Counters::add(&self.counters.dropped_shutdown, n);
                            self.counters.pending.fetch_sub(n, Relaxed);
                        }
                        return;
                    }
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    self.export(&mut batch).await;
                    batch_deadline = None;
                }
                _ = interval.tick() => {
                    if !aggregator.is_idle() {
                        self.collect(&mut aggregator, &mut batch);
                        self.export(&mut batch).await;
                        batch_deadline = None;
                    }
                }
            }
        }
    }

    /// Adds the aggregated metrics to the batch.
    fn collect(&self, aggregator: &mut Aggregator, batch: &mut Buffer) {
        let scope = Scope::default();
        for metric in aggregator.collect(now_unix_nano(), &scope) {
            let record = Record::Metric(metric);
            let bytes = record.approx_size();
            batch.push(Arc::new(record), bytes);
            self.counters.pending.fetch_add(1, Relaxed);
        }
    }

    /// Exports and empties `batch`: events, then spans, then metrics, one call each.
    async fn export(&mut self, batch: &mut Buffer) {
        if batch.records.is_empty() {
            return;
        }
        let records = batch.take();
        let (mut events, mut spans, mut metrics) = (Vec::new(), Vec::new(), Vec::new());
        for record in &records {
            match &**record {
                Record::Event(e) => events.push(e),
                Record::Span(s) => spans.push(s),
                Record::Metric(m) => metrics.push(m),
                Record::Resource(_) => unreachable!("a resource ends the batch instead"),
            }
        }
        if !events.is_empty() {
            let n = events.len() as u64;
            self.deliver(Batch::from(encode::event_batch(&self.resource, events)), n)
                .await;
        }
        if !spans.is_empty() {
            let n = spans.len() as u64;
            self.deliver(Batch::from(encode::span_batch(&self.resource, spans)), n)
                .await;
        }
        if !metrics.is_empty() {
            let n = metrics.len() as u64;
            self.deliver(
                Batch::from(encode::metric_batch(&self.resource, metrics)),
                n,
            )
            .await;
        }
    }

    /// Sends one batch of `n` records, retrying per policy; counts the outcome. A parked
    /// exporter drops the batch, unless its parking time is over: then the batch is its one
    /// trial.
    async fn deliver(&mut self, batch: Batch, n: u64) {
        let max_retries = match self.health {
            Health::Running { .. } => self.config.queue.max_retries,
            Health::Parked { until, .. } if Instant::now() >= until => 0,
            Health::Parked { .. } | Health::Failed => {
                self.drop_batch(n);
                return;
            }
        };
        let c = self.counters.clone();
        let mut attempt = 0u32;
        let message = loop {
            if attempt > 0 {
                Counters::add(&c.batches_retried, 1);
            }
            let instance = match self.live_instance().await {
                Ok(instance) => instance,
                Err(e) => break e,
            };
            let started = Instant::now();
            let result = instance.export(&batch).await;
            Counters::add(&c.export_nanos, started.elapsed().as_nanos() as u64);
            let error = match result {
                Ok(()) => {
                    Counters::add(&c.batches_ok, 1);
                    Counters::add(&c.records_exported, n);
                    c.pending.fetch_sub(n, Relaxed);
                    self.recovered();
                    return;
                }
                Err(e) => e,
            };
            Counters::add(&c.batches_failed, 1);
            let message = format!("{} batch of {n}: {error}", batch.signal());
            c.set_error(message.clone());
            let wait = match &error {
                CallError::Plugin(PluginError::Permanent(_)) => break message,
                CallError::Plugin(PluginError::Retryable(r)) => r
                    .retry_after_ms
                    .map(Duration::from_millis)
                    .unwrap_or_else(|| backoff(attempt)),
                CallError::Fault(_) => {
                    Counters::add(&c.faults, 1);
                    self.instance = None;
                    backoff(attempt)
                }
            };
            if attempt >= max_retries {
                break message;
            }
            tracing::warn!(exporter = %self.config.name, "{message}; retrying in {} ms", wait.as_millis());
            attempt += 1;
            tokio::time::sleep(wait.min(MAX_BACKOFF)).await;
        };
        tracing::error!(exporter = %self.config.name, "dropped {n} records: {message}");
        self.drop_batch(n);
        self.failed();
    }

    /// Counts a batch of `n` records as dropped.
    fn drop_batch(&self, n: u64) {
        let c = &self.counters;
        Counters::add(&c.batches_dropped, 1);
        Counters::add(&c.dropped_failed, n);
        c.pending.fetch_sub(n, Relaxed);
    }

    /// A batch was exported: a parked exporter runs again.
    fn recovered(&mut self) {
        if !matches!(self.health, Health::Running { failures: 0 }) {
            if matches!(self.health, Health::Parked { .. }) {
                tracing::info!(exporter = %self.config.name, "exporter recovered");
            }
            self.set_health(Health::Running { failures: 0 });
        }
    }

    /// A batch was given up on: after a few in a row, or after a failed trial, park.
    fn failed(&mut self) {
        let backoff = match self.health {
            Health::Running { failures } if failures + 1 < PARK_AFTER => {
                self.health = Health::Running {
                    failures: failures + 1,
                };
                return;
            }
            Health::Running { .. } => FIRST_PARK,
            Health::Parked { backoff, .. } => (backoff * 2).min(MAX_PARK),
            Health::Failed => return,
        };
        tracing::error!(
            exporter = %self.config.name,
            "exporter parked for {} s: its batches are dropped (and counted) until it is tried again",
            backoff.as_secs()
        );
        self.set_health(Health::Parked {
            until: Instant::now() + backoff,
            backoff,
        });
    }

    fn set_health(&mut self, health: Health) {
        self.counters.set_state(match health {
            Health::Running { .. } => ExporterState::Running,
            Health::Parked { .. } => ExporterState::Parked,
            Health::Failed => ExporterState::Failed,
        });
        self.health = health;
    }

    /// The instance, made afresh (and initialized) after a fault or a failed start.
    async fn live_instance(&mut self) -> Result<&mut Instance, String> {
        if self.instance.is_none() {
            Counters::add(&self.counters.restarts, 1);
            let fresh = crate::telemetry::start_instance(
                self.plugin.clone(),
                self.config.clone(),
                self.session_id.clone(),
            );
            match fresh.await {
                Ok(instance) => self.instance = Some(instance),
                Err(e) => {
                    let message = format!("restart failed: {e}");
                    self.counters.set_error(message.clone());
                    return Err(message);
                }
            }
        }
        Ok(self.instance.as_mut().expect("just made"))
    }

    async fn flush(&mut self) {
        if let Some(instance) = &mut self.instance
            && let Err(e) = instance.flush().await
        {
            self.note_call_error("flush", e);
        }
    }

    async fn shutdown(&mut self) {
        if let Some(instance) = &mut self.instance
            && let Err(e) = instance.shutdown().await
        {
            self.note_call_error("shutdown", e);
        }
        self.instance = None;
    }

    fn note_call_error(&mut self, call: &str, e: CallError) {
        let message = format!("{call}: {e}");
        tracing::warn!(exporter = %self.config.name, "{message}");
        if matches!(e, CallError::Fault(_)) {
            Counters::add(&self.counters.faults, 1);
            self.instance = None;
        }
        self.counters.set_error(message);
    }
}

/// Exponential backoff: 50 ms, 100 ms, 200 ms, ... capped at 30 s.
fn backoff(attempt: u32) -> Duration {
    RESTART_BACKOFF
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF)
}
