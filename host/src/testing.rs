//! An in-memory exporter, for tests of code that records telemetry and of the pipeline itself:
//! it keeps every batch it accepts, logs every call with the time it came, and can be scripted
//! to fail, stall or fault. Enabled by the `testing` feature.
//!
//! ```
//! use std::time::Duration;
//! use wasmtel::testing::InMemoryExporter;
//! use wasmtel::{Config, Event, Signals, Telemetry};
//!
//! let exporter = InMemoryExporter::new();
//! let telemetry = Telemetry::builder(Config::empty())
//!     .in_memory("memory", Signals::ALL, &exporter)
//!     .start()?;
//! telemetry.event("codex.user_prompt").attr("prompt_length", 42).emit();
//! assert!(telemetry.flush(Duration::from_secs(5)));
//! assert_eq!(exporter.events()[0].name, "codex.user_prompt");
//! # Ok::<(), wasmtel::Error>(())
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use wasmtel_sdk::model::{Event, Metric, Record, Span};

use crate::error::{CallError, StartError};
use crate::exporter::{Batch, Exporter, Start};

/// How the in-memory exporter answers one call.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// Success: an exported batch is kept.
    Ok,
    /// The call fails with this error (a fault included).
    Fail(CallError),
    /// The call waits this long (on tokio's clock), then succeeds.
    Stall(Duration),
}

/// A call the in-memory exporter was given.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Call {
    /// A fresh instance was asked for (at start, or after a fault).
    Start,
    /// A batch of `records` records.
    Export {
        /// How many records it held.
        records: usize,
    },
    /// `flush`.
    Flush,
    /// `shutdown`.
    Shutdown,
}

#[derive(Default)]
struct State {
    accepted: Vec<Batch>,
    calls: Vec<(Instant, Call)>,
    outcomes: VecDeque<Outcome>,
    starts: VecDeque<Option<CallError>>,
}

/// An exporter that keeps what it is given. Clones share everything: keep one to look at what
/// the pipeline exported through another.
#[derive(Clone, Default)]
pub struct InMemoryExporter {
    state: Arc<Mutex<State>>,
}

impl InMemoryExporter {
    /// An exporter that accepts everything until scripted otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers the next calls (export, flush, shutdown), in order, with `outcomes`; later calls
    /// succeed.
    pub fn script(&self, outcomes: impl IntoIterator<Item = Outcome>) {
        self.state().outcomes.extend(outcomes);
    }

    /// Answers the next starts, in order: `None` starts, `Some(error)` fails as `init` would with
    /// `error`; later starts succeed.
    pub fn script_starts(&self, starts: impl IntoIterator<Item = Option<CallError>>) {
        self.state().starts.extend(starts);
    }

    /// Every batch accepted, in order.
    pub fn batches(&self) -> Vec<Batch> {
        self.state().accepted.clone()
    }

    /// Every record accepted, in order.
    pub fn records(&self) -> Vec<Record> {
        self.batches().iter().flat_map(|b| b.records()).collect()
    }

    /// Every event accepted, in order.
    pub fn events(&self) -> Vec<Event> {
        self.records()
            .iter()
            .filter_map(Record::as_event)
            .cloned()
            .collect()
    }

    /// Every span accepted, in order.
    pub fn spans(&self) -> Vec<Span> {
        self.records()
            .iter()
            .filter_map(Record::as_span)
            .cloned()
            .collect()
    }

    /// Every metric accepted, in order.
    pub fn metrics(&self) -> Vec<Metric> {
        self.records()
            .iter()
            .filter_map(Record::as_metric)
            .cloned()
            .collect()
    }

    /// Every call, with the time it came on tokio's clock.
    pub fn calls(&self) -> Vec<(Instant, Call)> {
        self.state().calls.clone()
    }

    /// Logs `call` and answers it as scripted.
    async fn answer(&self, call: Call, batch: Option<&Batch>) -> Result<(), CallError> {
        let outcome = {
            let mut state = self.state();
            state.calls.push((Instant::now(), call));
            state.outcomes.pop_front().unwrap_or(Outcome::Ok)
        };
        match outcome {
            Outcome::Ok => {}
            Outcome::Fail(e) => return Err(e),
            Outcome::Stall(d) => tokio::time::sleep(d).await,
        }
        if let Some(batch) = batch {
            self.state().accepted.push(batch.clone());
        }
        Ok(())
    }
}

impl Exporter for InMemoryExporter {
    async fn export(&mut self, batch: &Batch) -> Result<(), CallError> {
        let call = Call::Export {
            records: batch.len(),
        };
        self.answer(call, Some(batch)).await
    }

    async fn flush(&mut self) -> Result<(), CallError> {
        self.answer(Call::Flush, None).await
    }

    async fn shutdown(&mut self) -> Result<(), CallError> {
        self.answer(Call::Shutdown, None).await
    }
}

impl Start for InMemoryExporter {
    type Exporter = InMemoryExporter;

    async fn start(&self) -> Result<InMemoryExporter, StartError> {
        let failure = {
            let mut state = self.state();
            state.calls.push((Instant::now(), Call::Start));
            state.starts.pop_front().flatten()
        };
        match failure {
            None => Ok(self.clone()),
            Some(e) => Err(StartError::Init(e)),
        }
    }
}
