//! Routes: each exporter's queue, the signals it takes and its counters. A record or measurement
//! is sent to every route that takes its signal, at the record call; a full queue drops it there
//! and counts it.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::mpsc::{self, error::TrySendError};
use wasmtel_sdk::model::Record;

use crate::config::Signals;
use crate::exporter::Signal;
use crate::metrics::Measurement;
use crate::pipeline::{Item, Message};
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
    pub tx: mpsc::Sender<Message>,
    pub counters: Arc<Counters>,
}

impl Route {
    /// A snapshot of the exporter's counters.
    pub fn stats(&self) -> ExporterStats {
        self.counters.snapshot(&self.name, &self.plugin)
    }

    /// Whether the exporter takes records of `signal` (none: a change of resource, for all).
    fn takes(&self, signal: Option<Signal>) -> bool {
        signal.is_none_or(|s| self.signals.wants(s))
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

    /// A snapshot of every exporter's counters.
    pub fn stats(&self) -> Vec<ExporterStats> {
        self.iter().map(Route::stats).collect()
    }

    /// Sends what `make` builds to every route that takes `signal`: waiting for room if `wait`,
    /// else dropping (and counting) where a queue is full. A record too large for any of a
    /// route's batches is dropped (and counted) there; a change of resource never is. `make` is
    /// called only if some route takes the signal.
    pub fn send(&self, signal: Option<Signal>, make: impl FnOnce() -> Item, wait: bool) {
        let mut routes = self.iter().filter(|r| r.takes(signal)).peekable();
        if routes.peek().is_none() {
            return;
        }
        let item = make();
        for route in routes {
            let counters = &route.counters;
            if signal.is_some() && item.bytes() > route.max_record_bytes {
                Counters::add(&counters.dropped_too_large, 1);
                continue;
            }
            counters.pending.fetch_add(1, Relaxed);
            let message = Message::Item(item.clone());
            let sent = if wait {
                route.tx.blocking_send(message).map_err(|_| false)
            } else {
                route
                    .tx
                    .try_send(message)
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

    /// Sends `record`, dropping it where a queue is full (or waiting, if `wait`).
    pub fn record(&self, record: Record, wait: bool) {
        self.send(Signal::of(&record), || Item::record(record), wait);
    }

    /// Sends a measurement to every exporter that takes metrics.
    pub fn measure(&self, m: Measurement) {
        self.send(
            Some(Signal::Metrics),
            || Item::Measurement(Arc::new(m)),
            false,
        );
    }
}

/// What the record API's handles (instruments, spans) record through: the routes, and whatever
/// owns them, kept alive as long as a handle is.
#[derive(Clone)]
pub(crate) struct Recorder {
    pub routes: Routes,
    _owner: Arc<dyn Any + Send + Sync>,
}

impl Recorder {
    pub fn new(routes: Routes, owner: Arc<dyn Any + Send + Sync>) -> Self {
        Recorder {
            routes,
            _owner: owner,
        }
    }
}
