//! What the `wasmtel` command does: replay a record-format stream through a telemetry pipeline,
//! and check a config.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtel_sdk::encode;
use wasmtel_sdk::model::{KeyValue, Record};

use crate::config::{Config, ExporterConfig};
use crate::error::{CallError, Error};
use crate::exporter::{Batch, Exporter, Signal, Start};
use crate::jsonl::Reader;
use crate::plugin;
use crate::spool::SlotStatus;
use crate::stats::ExporterStats;
use crate::telemetry::{Telemetry, TelemetryBuilder, block_on};

/// What a replay did.
#[derive(Debug)]
pub struct ReplaySummary {
    /// The input's name (a path, or `-`).
    pub input: String,
    /// Events, spans and metrics read (and recorded).
    pub records: u64,
    /// Resource lines read.
    pub resources: u64,
    /// How long the replay took, from reading the input to shutdown.
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
    let started = Instant::now();
    let mut total = 0u64;
    for record in Reader::new(open()?, name) {
        record?;
        total += 1;
    }
    let outputs = builder.sandbox_dirs();
    let telemetry = builder.deterministic_batching().start()?;
    // Every exporter has started: a plugin that writes files has opened (or made) them.
    if let Err(e) = refuse_own_output(name, &outputs) {
        telemetry.shutdown();
        return Err(e);
    }
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

/// Fails if the file `input` is being written: if a writer holds its lock (file-jsonl holds the
/// file it writes, from its start). The writer is named when it is one of `outputs`' exporters
/// (found by the file's device and inode in their sandbox directories).
fn refuse_own_output(input: &str, outputs: &[(String, PathBuf)]) -> Result<(), Error> {
    let Ok(file) = std::fs::File::open(input) else {
        return Ok(()); // standard input, or a name that is not a path
    };
    if !matches!(
        file.try_lock_shared(),
        Err(std::fs::TryLockError::WouldBlock)
    ) {
        return Ok(());
    }
    let writer = writer_of(&file, outputs).unwrap_or_else(|| "another process".to_string());
    Err(Error::InputIsOutput {
        input: input.to_string(),
        writer,
    })
}

/// The exporter of `outputs` whose sandbox directory (or a directory below it, links not
/// followed, 64 at most) holds `file`.
#[cfg(unix)]
fn writer_of(file: &std::fs::File, outputs: &[(String, PathBuf)]) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let same = |path: &std::path::Path| {
        std::fs::metadata(path).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
    };
    for (exporter, dir) in outputs {
        let mut dirs = vec![dir.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if same(&path) {
                    return Some(format!("exporter `{exporter}` ({})", path.display()));
                }
                if entry.file_type().is_ok_and(|t| t.is_dir()) && dirs.len() < 64 {
                    dirs.push(path);
                }
            }
        }
    }
    None
}

#[cfg(not(unix))]
fn writer_of(_: &std::fs::File, _: &[(String, PathBuf)]) -> Option<String> {
    None
}

/// Makes in `to` the directories of `from`, `depth` levels down, without their files: what a
/// plugin's config may name inside its sandbox directory.
fn mirror_dirs(from: &std::path::Path, to: &std::path::Path, depth: u32) {
    if depth == 0 {
        return;
    }
    for entry in std::fs::read_dir(from).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let made = to.join(entry.file_name());
            if std::fs::create_dir(&made).is_ok() {
                mirror_dirs(&entry.path(), &made, depth - 1);
            }
        }
    }
}

/// Loads, instantiates and initializes every exporter of `config`, then shuts it down: what
/// `wasmtel check` prints. One result per exporter, in config order. It writes nothing in the
/// sandbox directories: each plugin sees a temporary directory in their place, with the same
/// subdirectories and no files.
pub fn check(config: &Config, cache_dir: Option<PathBuf>) -> Vec<(String, Result<(), Error>)> {
    check_with(config, cache_dir, None)
        .into_iter()
        .map(|(name, result)| (name, result.map(drop)))
        .collect()
}

/// What [`check_fixture`] sent an exporter that took all of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// The batches exported, each answered `ok`.
    pub batches: usize,
    /// The records they held.
    pub records: usize,
    /// The records left out for being larger than `queue.max_batch_bytes` (the pipeline drops
    /// them so).
    pub too_large: usize,
}

/// [`check`], each exporter then given the records of `fixture` (a file in the record format)
/// as `replay` would batch them, then `flush`: what `wasmtel check --fixture` prints. So real
/// batches meet the sandbox's limits, and the destination: files go to the temporary directory,
/// but HTTP requests go to the hosts the exporter's sandbox allows. The first call that does not
/// return `ok` (an error, retryable or not, or a fault) fails the exporter, named with the batch.
pub fn check_fixture(
    config: &Config,
    cache_dir: Option<PathBuf>,
    fixture: &Path,
) -> Vec<(String, Result<Checked, Error>)> {
    check_with(config, cache_dir, Some(fixture))
}

fn check_with(
    config: &Config,
    cache_dir: Option<PathBuf>,
    fixture: Option<&Path>,
) -> Vec<(String, Result<Checked, Error>)> {
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
            let scratch = tempfile::tempdir().map_err(|source| Error::Io {
                what: "cannot make a temporary directory".into(),
                source,
            });
            let result = scratch.and_then(|scratch| {
                let plugin = exporter.load(&plugins)?;
                let (name, location) = (exporter.name.clone(), exporter.location.clone());
                let mut exporter = exporter.clone();
                if let Some(dir) = &exporter.sandbox.dir {
                    mirror_dirs(dir, scratch.path(), 3);
                    exporter.sandbox.dir = Some(scratch.path().to_path_buf());
                }
                let (batches, too_large) = match fixture {
                    Some(fixture) => fixture_batches(fixture, &exporter)?,
                    None => (Vec::new(), 0),
                };
                let flush = fixture.is_some();
                let setup = exporter.setup(plugin, &session_id, Default::default());
                block_on(&runtime, async move {
                    let mut instance = setup.start().await.map_err(|source| Error::Start {
                        exporter: name.clone(),
                        location: location.clone(),
                        source: Box::new(source),
                    })?;
                    let failed = |call: String, source: CallError| Error::Check {
                        exporter: name.clone(),
                        location: location.clone(),
                        call,
                        source: Box::new(source),
                    };
                    let mut checked = Checked {
                        too_large,
                        ..Checked::default()
                    };
                    for (n, batch) in batches.iter().enumerate() {
                        let call = || {
                            format!(
                                "export of batch {} of {} ({} records)",
                                n + 1,
                                batches.len(),
                                batch.len()
                            )
                        };
                        instance
                            .export(batch)
                            .await
                            .map_err(|e| failed(call(), e))?;
                        if let Some((count, reason)) = instance.take_rejected() {
                            return Err(failed(
                                call(),
                                CallError::Permanent(format!("{count} records rejected: {reason}")),
                            ));
                        }
                        checked.batches += 1;
                        checked.records += batch.len();
                    }
                    if flush {
                        instance
                            .flush()
                            .await
                            .map_err(|e| failed("flush".into(), e))?;
                    }
                    let _ = Exporter::shutdown(&mut instance).await;
                    Ok(checked)
                })
            });
            (exporter.name.clone(), result)
        })
        .collect();
    runtime.shutdown_background();
    results
}

/// The records of `fixture` (a file in the record format), as batches cut as `replay` cuts them
/// for `exporter`: by its `queue.max_batch` and `queue.max_batch_bytes`, a new batch at each change
/// of resource, only the signals it takes; and how many records were left out, as the pipeline
/// drops them, for being larger than `queue.max_batch_bytes`.
pub(crate) fn fixture_batches(
    fixture: &Path,
    exporter: &ExporterConfig,
) -> Result<(Vec<Batch>, usize), Error> {
    let name = fixture.display().to_string();
    let file = std::fs::File::open(fixture).map_err(|source| Error::Io {
        what: format!("cannot open {name}"),
        source,
    })?;
    let (max_batch, max_bytes) = (
        exporter.pipeline.max_batch,
        exporter.pipeline.max_batch_bytes,
    );
    let mut batches = Vec::new();
    let mut resource: Vec<KeyValue> = Vec::new();
    let (mut records, mut bytes, mut laid) = (Vec::new(), 0usize, Vec::new());
    let mut too_large = 0;
    let mut cut = |resource: &[KeyValue], records: &mut Vec<Record>, bytes: &mut usize| {
        if !records.is_empty() {
            batches.push(Batch::of(resource, records.iter()));
            records.clear();
        }
        *bytes = 0;
    };
    for record in crate::jsonl::Reader::new(std::io::BufReader::new(file), &name) {
        let record = record?;
        match Signal::of(&record) {
            None => {
                let Record::Resource(attributes) = record else {
                    continue;
                };
                if attributes != resource {
                    cut(&resource, &mut records, &mut bytes);
                    resource = attributes;
                }
            }
            Some(signal) if exporter.signals.wants(signal) => {
                laid.clear();
                encode::record_into(&mut laid, &record);
                if laid.len() > max_bytes {
                    too_large += 1;
                    continue;
                }
                if !records.is_empty() && bytes + laid.len() > max_bytes {
                    cut(&resource, &mut records, &mut bytes);
                }
                records.push(record);
                bytes += laid.len();
                if records.len() >= max_batch || bytes >= max_bytes {
                    cut(&resource, &mut records, &mut bytes);
                }
            }
            Some(_) => {}
        }
    }
    cut(&resource, &mut records, &mut bytes);
    Ok((batches, too_large))
}

/// What one exporter's spool holds (`wasmtel spool status`).
#[derive(Debug)]
#[non_exhaustive]
pub struct SpoolStatus {
    /// The exporter.
    pub exporter: String,
    /// Its spool directory.
    pub dir: PathBuf,
    /// Each slot's figures, or why they could not be read.
    pub slots: Result<Vec<SlotStatus>, String>,
}

/// What the spool of each exporter of `config` that has one holds, read without taking it
/// from a process that runs.
pub fn spool_status(config: &Config) -> Vec<SpoolStatus> {
    config
        .spools()
        .map(|(name, spool)| SpoolStatus {
            exporter: name.to_string(),
            dir: spool.dir.clone(),
            slots: crate::spool::status(&spool.dir).map_err(|e| e.to_string()),
        })
        .collect()
}

/// How often [`drain_spools`] looks whether the spools are empty.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// Starts the exporters of `config` that have a spool, sends what their spools hold (the slots
/// no running process holds), and stops once they are empty or `timeout` has passed since they
/// started, shutting down within what is left of it (at least a second). Returns their final
/// counters: what is still `spooled` stays for a later start.
pub fn drain_spools(
    config: Config,
    timeout: Duration,
    cache_dir: Option<PathBuf>,
) -> Result<Vec<ExporterStats>, Error> {
    let telemetry = Telemetry::builder(config.only_spooled())
        .cache_dir(cache_dir)
        .start()?;
    // From the start on: loading the plugins is not sending.
    let end = Instant::now() + timeout;
    while Instant::now() < end
        && telemetry
            .stats()
            .iter()
            .any(|s| s.spool.is_some() && (s.spooled > 0 || s.pending > 0))
    {
        std::thread::sleep(DRAIN_POLL);
    }
    let left = end.saturating_duration_since(Instant::now());
    Ok(telemetry.shutdown_with_timeout(left.max(Duration::from_secs(1))))
}
