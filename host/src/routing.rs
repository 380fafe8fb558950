//! Routes: each exporter's queue, the signals it takes and its counters. A record is sent to
//! every route that takes its signal, at the record call; a full queue drops it there and counts
//! it. Measurements go to the metric store instead, which never drops one for want of room.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use wasmtel_sdk::encode;
use wasmtel_sdk::model::{Event, KeyValue, Record, Scope};

use crate::clock::now_unix_nano;

use crate::config::Signals;
use crate::exporter::Signal;
use crate::metrics::{Instrument, Measure, Observer, Store, Stream};
use crate::pipeline::{Queue, Refused, laid};
use crate::stats::{Counters, ExporterStats};

/// One exporter's queue and counters.
#[derive(Clone)]
pub(crate) struct Route {
    pub name: String,
    /// The plugin, as the summary names it.
    pub plugin: String,
    pub signals: Signals,
    /// A record larger than this fits no batch: it is dropped at the record call.
    pub max_record_bytes: usize,
    pub queue: Queue,
    pub counters: Arc<Counters>,
}

impl Route {
    /// A snapshot of the exporter's counters.
    pub fn stats(&self) -> ExporterStats {
        let mut stats = self.counters.snapshot(&self.name, &self.plugin);
        // Records still queued are pending too: the worker counts them once it takes them.
        stats.pending += self.queue.queued();
        stats
    }

    /// Whether the exporter takes records of `signal` (none: a change of resource, for all).
    fn takes(&self, signal: Option<Signal>) -> bool {
        signal.is_none_or(|s| self.signals.wants(s))
    }

    /// Queues `record` (a record of a signal if `signal`, else a change of resource), dropping
    /// and counting it if it is too large or the queue is full (unless `wait`) or gone.
    fn send(&self, signal: bool, record: &[u8], wait: bool) {
        let counters = &self.counters;
        if signal && record.len() > self.max_record_bytes {
            Counters::add(&counters.dropped_too_large, 1);
            return;
        }
        if let Err(refused) = self.queue.send_record(record, !signal, wait) {
            Counters::add(
                match refused {
                    Refused::Full => &counters.dropped_queue_full,
                    Refused::Closed => &counters.dropped_shutdown,
                },
                1,
            );
        }
    }
}

/// Every exporter's route, in config order. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Routes(Arc<[Route]>);

impl Routes {
    pub fn new(routes: Vec<Route>) -> Self {
        Routes(routes.into())
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Route> {
        self.0.iter()
    }

    /// Whether some exporter takes records of `signal`.
    #[inline]
    pub fn takes(&self, signal: Signal) -> bool {
        self.iter().any(|r| r.takes(Some(signal)))
    }

    /// A snapshot of every exporter's counters.
    pub fn stats(&self) -> Vec<ExporterStats> {
        self.iter().map(Route::stats).collect()
    }

    /// Sends the record `lay` lays out to every route that takes `signal` (none: a change of
    /// resource, for all): waiting for room if `wait`, else dropping (and counting) where a
    /// queue is full. A record too large for any of a route's batches is dropped (and counted)
    /// there; a change of resource never is. `lay` is called only if some route takes the
    /// signal.
    #[inline]
    pub fn send(&self, signal: Option<Signal>, lay: impl FnOnce(&mut Vec<u8>), wait: bool) {
        if !self.iter().any(|r| r.takes(signal)) {
            return;
        }
        laid(lay, |record| {
            for route in self.iter().filter(|r| r.takes(signal)) {
                route.send(signal.is_some(), record, wait);
            }
        });
    }

    /// Sends `event`, with a time of 0 set to now, dropping it where a queue is full.
    pub fn event(&self, mut event: Event) {
        if event.time_unix_nano == 0 {
            event.time_unix_nano = now_unix_nano();
        }
        self.record(Record::Event(event), false);
    }

    /// Sends `record`, dropping it where a queue is full (or waiting, if `wait`).
    pub fn record(&self, record: Record, wait: bool) {
        self.send(
            Signal::of(&record),
            |out| match &record {
                Record::Resource(attributes) => encode::resource_into(out, attributes),
                record => encode::record_into(out, record),
            },
            wait,
        );
    }

    /// Counts one record of `signal` as dropped, by `which` of its counters, at every route that
    /// takes the signal.
    pub fn count_drop(
        &self,
        signal: Signal,
        which: impl Fn(&Counters) -> &std::sync::atomic::AtomicU64,
    ) {
        for route in self.iter().filter(|r| r.takes(Some(signal))) {
            Counters::add(which(&route.counters), 1);
        }
    }
}

/// Which traces' spans are recorded: OpenTelemetry's trace-id ratio sampler, for root spans (a
/// child follows its parent). A trace is sampled when its id's lower 64 bits, shifted right by
/// one (63 bits, as OpenTelemetry takes them), fall under the rate's share of 2^63, so every
/// process sampling at a rate picks the same traces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sampler {
    bound: u64,
}

impl Sampler {
    /// A sampler recording `rate` (0.0 to 1.0) of traces.
    pub fn ratio(rate: f64) -> Sampler {
        let bound = if rate >= 1.0 {
            u64::MAX
        } else {
            (rate.max(0.0) * (1u64 << 63) as f64) as u64
        };
        Sampler { bound }
    }

    /// Whether the trace `trace_id` is sampled.
    pub fn samples(&self, trace_id: u128) -> bool {
        ((trace_id as u64) >> 1) < self.bound
    }
}

/// What the record API's handles (instruments, spans) record through: the routes, the metric
/// store, the sampler of traces, and whatever owns them, kept alive as long as a handle is.
#[derive(Clone)]
pub(crate) struct Recorder {
    pub routes: Routes,
    store: Arc<Store>,
    pub sampler: Sampler,
    _owner: Arc<dyn Any + Send + Sync>,
}

impl Recorder {
    pub fn new(
        routes: Routes,
        store: Arc<Store>,
        sampler: Sampler,
        owner: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        Recorder {
            routes,
            store,
            sampler,
            _owner: owner,
        }
    }

    /// Whether some exporter collects measurements (with none, they are not kept).
    pub fn takes_metrics(&self) -> bool {
        self.store.has_readers()
    }

    /// Registers `observe` as the callback of the observable `instrument` (in `scope`), called
    /// at every collection until shutdown; nothing when no exporter takes metrics.
    pub fn observe(
        &self,
        instrument: &Instrument,
        scope: &Scope,
        observe: Box<dyn Fn(&Observer<'_>) + Send + Sync>,
    ) {
        if !self.store.has_readers() {
            return;
        }
        match self.store.stream(instrument, scope) {
            Some(stream) => self.store.add_callback(stream, observe),
            None => self
                .routes
                .count_drop(Signal::Metrics, |c| &c.dropped_invalid),
        }
    }

    /// Folds `measure` of `instrument` (in `scope`) into its point for `attributes`; `stream` keeps the
    /// instrument's points once found. A measurement after shutdown, or of an instrument that
    /// clashes with the first of its name, is dropped and counted.
    pub fn measure(
        &self,
        instrument: &Instrument,
        scope: &Scope,
        stream: &OnceLock<Option<Arc<Stream>>>,
        measure: Measure,
        attributes: &[KeyValue],
    ) {
        if !self.store.has_readers() {
            return;
        }
        if self.store.is_closed() {
            return self
                .routes
                .count_drop(Signal::Metrics, |c| &c.dropped_shutdown);
        }
        match stream.get_or_init(|| self.store.stream(instrument, scope)) {
            Some(stream) => stream.measure(measure, attributes),
            None => self
                .routes
                .count_drop(Signal::Metrics, |c| &c.dropped_invalid),
        }
    }
}
