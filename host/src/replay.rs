//! What the `wasmtel` command does: replay a record-format stream through a telemetry pipeline,
//! and check a config.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use wasmtel_sdk::model::Record;

use crate::config::Config;
use crate::error::Error;
use crate::exporter::{Exporter, Start};
use crate::jsonl::Reader;
use crate::plugin;
use crate::stats::ExporterStats;
use crate::telemetry::{TelemetryBuilder, block_on};

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
        open().map_err(|source| Error::Io {
            what: format!("cannot open {name}"),
            source,
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

/// Loads, instantiates and initializes every exporter of `config`, then shuts it down: what
/// `wasmtel check` prints. One result per exporter, in config order.
pub fn check(config: &Config, cache_dir: Option<PathBuf>) -> Vec<(String, Result<(), Error>)> {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![("runtime".into(), Err(Error::Runtime(e.into())))],
    };
    let plugins = match plugin::Runtime::new(cache_dir) {
        Ok(p) => p,
        Err(e) => return vec![("runtime".into(), Err(e))],
    };
    let session_id = config.session_id_or_new();
    let results = config
        .exporters
        .iter()
        .map(|exporter| {
            let result = exporter.load(&plugins).and_then(|plugin| {
                let (name, location) = (exporter.name.clone(), exporter.location.clone());
                let setup = exporter.clone().setup(plugin, &session_id);
                block_on(&runtime, async move {
                    let mut instance = setup.start().await.map_err(|source| Error::Start {
                        exporter: name,
                        location,
                        source: Box::new(source),
                    })?;
                    let _ = Exporter::shutdown(&mut instance).await;
                    Ok(())
                })
            });
            (exporter.name.clone(), result)
        })
        .collect();
    runtime.shutdown_background();
    results
}
