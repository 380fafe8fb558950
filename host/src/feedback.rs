//! The feedback ring: an exporter that keeps the session's most recent records in memory,
//! bounded in bytes, the oldest dropped first, for a bug report to attach (Codex's `/feedback`
//! attaches "the most recent in-memory logs for the session"). [`FeedbackRing::jsonl`] gives
//! them in the record format at any time, a valid fixture, and recording goes on.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use wasmtel_sdk::jsonl::LineWriter;

use crate::error::{CallError, StartError};
use crate::exporter::{Batch, Exporter, Start};

/// The default bound of a feedback ring: 4 MiB of record lines.
pub(crate) const DEFAULT_FEEDBACK_BYTES: usize = 4 << 20;

/// The name of the feedback ring's exporter.
pub(crate) const FEEDBACK: &str = "feedback";

/// The most recent records, as lines of the record format. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct FeedbackRing {
    ring: Arc<Mutex<Ring>>,
}

struct Ring {
    max_bytes: usize,
    /// The bytes of the record lines held.
    bytes: usize,
    lines: VecDeque<Line>,
    /// Records dropped to stay within `max_bytes`: the oldest, or one larger than the ring.
    dropped: u64,
}

/// A record's line, and the line of the resource that produced it.
struct Line {
    resource: Arc<[u8]>,
    text: Box<[u8]>,
}

impl FeedbackRing {
    /// A ring of at most `max_bytes` of record lines.
    pub(crate) fn new(max_bytes: usize) -> FeedbackRing {
        FeedbackRing {
            ring: Arc::new(Mutex::new(Ring {
                max_bytes,
                bytes: 0,
                lines: VecDeque::new(),
                dropped: 0,
            })),
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The records it holds, oldest first, in the record format: each run of records after the
    /// line of its resource. Replayable as it is (`wasmtel replay`).
    pub fn jsonl(&self) -> Vec<u8> {
        let ring = self.ring();
        let mut out = Vec::with_capacity(ring.bytes + 256);
        let mut resource: Option<&Arc<[u8]>> = None;
        for line in &ring.lines {
            if resource.is_none_or(|r| !Arc::ptr_eq(r, &line.resource) && **r != *line.resource) {
                out.extend_from_slice(&line.resource);
                resource = Some(&line.resource);
            }
            out.extend_from_slice(&line.text);
        }
        out
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.ring().lines.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many records it dropped to stay within its bytes: the oldest, to make room, and any
    /// record larger than the whole ring. (Records its exporter's queue dropped in a burst are
    /// counted in its [`crate::ExporterStats`], as any exporter's are.)
    pub fn dropped(&self) -> u64 {
        self.ring().dropped
    }
}

impl Ring {
    /// Keeps `text`, dropping the oldest lines until it fits.
    fn push(&mut self, resource: &Arc<[u8]>, text: Box<[u8]>) {
        if text.len() > self.max_bytes {
            self.dropped += 1;
            return;
        }
        while self.bytes + text.len() > self.max_bytes {
            let Some(oldest) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= oldest.text.len();
            self.dropped += 1;
        }
        self.bytes += text.len();
        self.lines.push_back(Line {
            resource: resource.clone(),
            text,
        });
    }
}

/// The ring's exporter: lays each batch's records out as lines into the ring.
pub(crate) struct RingExporter {
    ring: FeedbackRing,
    lines: LineWriter,
    /// The line of the last batch's resource, shared by its records.
    resource: Arc<[u8]>,
    /// A batch's lines, laid out before the ring is locked.
    laid: Vec<Box<[u8]>>,
}

impl Exporter for RingExporter {
    async fn export(&mut self, batch: &Batch) -> Result<(), CallError> {
        let view = batch.view()?;
        self.lines.resource(view.resource());
        if *self.lines.resource_line() != *self.resource {
            self.resource = self.lines.resource_line().into();
        }
        // Laid out first: the ring is locked only to take the lines.
        self.laid.clear();
        for record in view.records() {
            self.laid.push(self.lines.record_line(record).into());
        }
        let mut ring = self.ring.ring();
        for text in self.laid.drain(..) {
            ring.push(&self.resource, text);
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

impl Start for FeedbackRing {
    type Exporter = RingExporter;

    async fn start(&self) -> Result<RingExporter, StartError> {
        Ok(RingExporter {
            ring: self.clone(),
            lines: LineWriter::default(),
            resource: Arc::from(&[][..]),
            laid: Vec::new(),
        })
    }
}
