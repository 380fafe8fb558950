//! The seam between an exporter's worker and what it exports to: a batch of one signal, the
//! [`Exporter`] that takes it, and the [`Start`] that makes a fresh exporter (at start and after
//! a fault). A plugin instance is one implementation ([`crate::plugin`]); the in-memory exporter
//! of `wasmtel::testing` is another.

use std::future::Future;
use std::sync::Arc;

use wasmtel_sdk::model::{Event, KeyValue, Metric, Record, Span};

use crate::error::{CallError, StartError};

/// The three signals an exporter can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Signal {
    /// Events (log records).
    Events,
    /// Spans.
    Spans,
    /// Metrics.
    Metrics,
}

impl Signal {
    /// The signal of a record; none for a change of resource, which goes to every exporter.
    pub(crate) fn of(record: &Record) -> Option<Signal> {
        match record {
            Record::Resource(_) => None,
            Record::Event(_) => Some(Signal::Events),
            Record::Span(_) => Some(Signal::Spans),
            Record::Metric(_) => Some(Signal::Metrics),
        }
    }

    /// The singular name, for messages: `event`, `span`, `metric`.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Signal::Events => "event",
            Signal::Spans => "span",
            Signal::Metrics => "metric",
        }
    }
}

/// A batch of records of one signal, with the resource that produced them. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Batch {
    signal: Signal,
    resource: Arc<[KeyValue]>,
    records: Arc<[Arc<Record>]>,
}

impl Batch {
    /// A batch of `records`, all of `signal`.
    pub(crate) fn new(
        signal: Signal,
        resource: Arc<[KeyValue]>,
        records: Vec<Arc<Record>>,
    ) -> Batch {
        debug_assert!(records.iter().all(|r| Signal::of(r) == Some(signal)));
        Batch {
            signal,
            resource,
            records: records.into(),
        }
    }

    /// A batch of events.
    pub fn events(resource: &[KeyValue], events: impl IntoIterator<Item = Event>) -> Batch {
        Batch::of(
            Signal::Events,
            resource,
            events.into_iter().map(Record::Event),
        )
    }

    /// A batch of spans.
    pub fn spans(resource: &[KeyValue], spans: impl IntoIterator<Item = Span>) -> Batch {
        Batch::of(Signal::Spans, resource, spans.into_iter().map(Record::Span))
    }

    /// A batch of metrics.
    pub fn metrics(resource: &[KeyValue], metrics: impl IntoIterator<Item = Metric>) -> Batch {
        Batch::of(
            Signal::Metrics,
            resource,
            metrics.into_iter().map(Record::Metric),
        )
    }

    fn of(signal: Signal, resource: &[KeyValue], records: impl Iterator<Item = Record>) -> Batch {
        Batch::new(signal, resource.into(), records.map(Arc::new).collect())
    }

    /// Its signal.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The attributes of the resource that produced it.
    pub fn resource(&self) -> &[KeyValue] {
        &self.resource
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether `other` is this very batch (a clone of it), not just an equal one.
    pub(crate) fn same(&self, other: &Batch) -> bool {
        Arc::ptr_eq(&self.records, &other.records)
    }

    /// Its records, in order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = &Record> {
        self.records.iter().map(|r| &**r)
    }
}

/// What a worker exports to: one live instance of an exporter.
pub(crate) trait Exporter: Send + 'static {
    /// Exports one batch.
    fn export(&mut self, batch: &Batch) -> impl Future<Output = Result<(), CallError>> + Send;

    /// Makes what was exported durable or sent.
    fn flush(&mut self) -> impl Future<Output = Result<(), CallError>> + Send;

    /// The last call.
    fn shutdown(&mut self) -> impl Future<Output = Result<(), CallError>> + Send;
}

/// Makes a fresh, initialized [`Exporter`]: once at start, and again after each fault.
pub(crate) trait Start: Send + Sync + 'static {
    /// What it makes.
    type Exporter: Exporter;

    /// Makes one.
    fn start(&self) -> impl Future<Output = Result<Self::Exporter, StartError>> + Send;
}
