//! The seam between an exporter's worker and what it exports to: a batch of records, the
//! [`Exporter`] that takes it, and the [`Start`] that makes a fresh exporter (at start and after
//! a fault). A plugin instance is one implementation ([`crate::plugin`]); the in-memory exporter
//! of `wasmtel::testing` is another.

use std::future::Future;
use std::sync::Arc;

use wasmtel_sdk::encode;
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
/// produced them, laid out as a plugin is given it (the batch layout of `wit/exporter.wit`).
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Batch {
    resource: Arc<[KeyValue]>,
    laid: Arc<Vec<u8>>,
    len: usize,
}

impl Batch {
    /// A batch already laid out: `laid` starts with the resource record of `resource`, then
    /// holds `len` records.
    pub(crate) fn laid(resource: Arc<[KeyValue]>, laid: Vec<u8>, len: usize) -> Batch {
        Batch {
            resource,
            laid: Arc::new(laid),
            len,
        }
    }

    /// A batch of `records` from `resource` (a resource among the records is left out).
    pub fn of<'a>(resource: &[KeyValue], records: impl IntoIterator<Item = &'a Record>) -> Batch {
        let records: Vec<&Record> = records
            .into_iter()
            .filter(|r| Signal::of(r).is_some())
            .collect();
        let laid = encode::batch(resource, records.iter().copied());
        Batch::laid(resource.into(), laid, records.len())
    }

    /// The attributes of the resource that produced it.
    pub fn resource(&self) -> &[KeyValue] {
        &self.resource
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The batch as a plugin is given it.
    pub fn laid_out(&self) -> &[u8] {
        &self.laid
    }

    /// The batch read through the SDK's views; a layout that does not read back is a permanent
    /// error of the export.
    pub(crate) fn view(&self) -> Result<wasmtel_sdk::Batch<'_>, CallError> {
        wasmtel_sdk::Batch::new(&self.laid)
            .map_err(|e| CallError::Permanent(format!("a batch that does not read back: {e}")))
    }

    /// Its records, in order, read back from the layout (for tests and tools: each call reads
    /// them again).
    pub fn records(&self) -> impl ExactSizeIterator<Item = Record> {
        let batch = wasmtel_sdk::Batch::new(&self.laid).expect("laid out by wasmtel_sdk::encode");
        let records: Vec<Record> = batch.records().map(|r| r.to_model()).collect();
        records.into_iter()
    }
}

/// What a worker exports to: one live instance of an exporter.
pub(crate) trait Exporter: Send + 'static {
    /// Exports one batch.
    fn export(&mut self, batch: &Batch) -> impl Future<Output = Result<(), CallError>> + Send;

    /// The records of the last successful export that its destination refused, and why (an
    /// OTLP collector's partial success); taking them resets them.
    fn take_rejected(&mut self) -> Option<(u64, String)> {
        None
    }

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
