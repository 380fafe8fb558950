//! The live session summary: an exporter of the pipeline, beside the configured ones, that
//! folds each batch of events and spans into the summary as it is exported.

use std::sync::{Arc, Mutex, MutexGuard};

use wasmtel_sdk::view::{AnyValue, Record};

use super::fold::{Fold, Known, Scalar};
use crate::error::{CallError, StartError};
use crate::exporter::{Batch, Exporter, Start};
use crate::summary::SessionSummary;

/// The name of the live summary's exporter.
pub(crate) const SUMMARY: &str = "session-summary";

/// The summary being folded. Cheap to clone; clones share it.
#[derive(Clone)]
pub(crate) struct LiveSummary {
    fold: Arc<Mutex<Fold>>,
    session_id: Arc<str>,
}

impl LiveSummary {
    pub fn new(session_id: &str) -> LiveSummary {
        LiveSummary {
            fold: Arc::default(),
            session_id: session_id.into(),
        }
    }

    fn fold(&self) -> MutexGuard<'_, Fold> {
        self.fold.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The summary of what it folded so far.
    pub fn summary(&self) -> SessionSummary {
        self.fold().summary(&self.session_id)
    }
}

/// An attribute's value as the fold reads it.
fn scalar<'a>(value: AnyValue<'a>) -> Scalar<'a> {
    match value {
        AnyValue::Str(s) => Scalar::Str(s.into()),
        AnyValue::Int(i) => Scalar::Int(i),
        AnyValue::Double(x) => Scalar::Float(x),
        AnyValue::Bool(b) => Scalar::Bool(b),
        _ => Scalar::Other,
    }
}

impl Exporter for LiveSummary {
    async fn export(&mut self, batch: &Batch) -> Result<(), CallError> {
        let view = batch.view()?;
        let mut fold = self.fold();
        for record in view.records() {
            match record {
                Record::Event(event) => {
                    let mut known = Known::default();
                    for (key, value) in event.attributes.iter() {
                        if Known::wants(key) {
                            known.take(key, scalar(value));
                        }
                    }
                    fold.event(event.name, event.time_unix_nano, known);
                }
                Record::Span(span) => fold.span(
                    span.name,
                    span.start_time_unix_nano,
                    span.end_time_unix_nano,
                ),
                // Not routed here: metrics are aggregated for the exporters that take them.
                Record::Metric(_) => fold.metric(),
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), CallError> {
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<(), CallError> {
        Ok(())
    }
}

impl Start for LiveSummary {
    type Exporter = LiveSummary;

    async fn start(&self) -> Result<LiveSummary, StartError> {
        Ok(self.clone())
    }
}
