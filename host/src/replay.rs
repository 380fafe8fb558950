//! Replays a record-format stream through a telemetry pipeline: what `wasmtel replay` does.

use std::io::BufRead;
use std::time::{Duration, Instant};

use wasmtel_sdk::model::Record;

use crate::jsonl::Reader;
use crate::{Error, ExporterStats, TelemetryBuilder};

/// What a replay did.
#[derive(Debug)]
pub struct ReplaySummary {
    /// The input's name (a path, or `-`).
    pub input: String,
    /// Events, spans and metrics read (and recorded).
    pub records: u64,
    /// Resource lines read.
    pub resources: u64,
    /// How long the replay took, from start to shutdown.
    pub elapsed: Duration,
    /// Every exporter's final counters.
    pub exporters: Vec<ExporterStats>,
}

impl ReplaySummary {
    /// The final counters of the exporter named `name`.
    pub fn exporter(&self, name: &str) -> Option<&ExporterStats> {
        self.exporters.iter().find(|e| e.name == name)
    }
}

impl std::fmt::Display for ReplaySummary {
    /// A line for the input, then a line per exporter.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resources = match self.resources {
            1 => " (and 1 resource)".to_string(),
            n if n > 1 => format!(" (and {n} resources)"),
            _ => String::new(),
        };
        write!(
            f,
            "replayed {} records{resources} from {} in {:.2} s",
            self.records,
            self.input,
            self.elapsed.as_secs_f64()
        )?;
        for exporter in &self.exporters {
            write!(f, "\n  {exporter}")?;
        }
        if self.exporters.is_empty() {
            write!(
                f,
                "\n  no exporter ran: telemetry is disabled ([telemetry] enabled = false)"
            )?;
        }
        Ok(())
    }
}

/// Replays the input that `open` opens (it is opened twice): first every line is checked, so
/// that an invalid input exports nothing; then the pipeline of `builder` starts, with batches cut
/// by size only, and every record is recorded, waiting for room rather than dropping. `progress`
/// is called now and then with the records done and the total.
pub fn replay<R: BufRead>(
    name: &str,
    open: impl Fn() -> std::io::Result<R>,
    builder: TelemetryBuilder,
    mut progress: impl FnMut(u64, u64),
) -> Result<ReplaySummary, Error> {
    let open = || {
        open().map_err(|error| Error::Io {
            what: format!("cannot open {name}"),
            error,
        })
    };
    let mut total = 0u64;
    for record in Reader::new(open()?, name) {
        record?;
        total += 1;
    }
    let telemetry = builder.deterministic_batching().start()?;
    let started = Instant::now();
    let (mut records, mut resources) = (0u64, 0u64);
    for record in Reader::new(open()?, name) {
        let record = record?;
        if matches!(record, Record::Resource(_)) {
            resources += 1;
        } else {
            records += 1;
        }
        telemetry.record_blocking(record);
        if (records + resources).is_multiple_of(1024) {
            progress(records + resources, total);
        }
    }
    progress(records + resources, total);
    let exporters = telemetry.shutdown();
    Ok(ReplaySummary {
        input: name.to_string(),
        records,
        resources,
        elapsed: started.elapsed(),
        exporters,
    })
}
