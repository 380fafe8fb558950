//! The seam between an exporter's worker and what it exports to: a batch of records, the
//! [`Exporter`] that takes it, and the [`Start`] that makes a fresh exporter (at start and after
//! a fault). A plugin instance is one implementation ([`crate::plugin`]); the in-memory exporter
//! of `wasmtel::testing` is another.

use std::future::Future;
use std::sync::Arc;

use wasmtel_sdk::model::{KeyValue, Record};

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
}

/// A batch: records of any signal in the order they were recorded, with the resource that
/// produced them. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Batch {
    resource: Arc<[KeyValue]>,
    records: Arc<[Arc<Record>]>,
}

impl Batch {
    /// A batch of `records` (none of them a resource).
    pub(crate) fn new(resource: Arc<[KeyValue]>, records: Vec<Arc<Record>>) -> Batch {
        debug_assert!(records.iter().all(|r| Signal::of(r).is_some()));
        Batch {
            resource,
            records: records.into(),
        }
    }

    /// A batch of `records` from `resource` (a resource among the records is left out).
    pub fn of(resource: &[KeyValue], records: impl IntoIterator<Item = Record>) -> Batch {
        let records = records
            .into_iter()
            .filter(|r| Signal::of(r).is_some())
            .map(Arc::new)
            .collect();
        Batch::new(resource.into(), records)
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
