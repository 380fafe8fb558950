//! Per-exporter counters: what was exported, retried, failed and dropped, and why. Updated by
//! the record call and the exporter's worker; read with [`crate::Telemetry::stats`].

/// A sandbox limit, named by its config key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// `sandbox.memory_mib`: linear memory, all memories together.
    Memory,
    /// `sandbox.max_memories`.
    Memories,
    /// `sandbox.max_tables`.
    Tables,
    /// `sandbox.max_table_elements`: all tables together.
    TableElements,
    /// `sandbox.max_handles`: host-side resources held at once.
    Handles,
    /// `sandbox.http_fields_kib`: what one HTTP fields resource (headers, trailers) holds.
    HttpFields,
    /// `sandbox.timeout_ms`: the deadline of one call.
    Timeout,
    /// `sandbox.disk_mib`: what the sandbox directory may hold.
    Disk,
    /// `sandbox.log_lines_per_sec`.
    LogLines,
    /// `sandbox.log_bytes_per_sec`.
    LogBytes,
    /// `sandbox.allow_hosts`: an HTTP request to a host it does not list was refused.
    Hosts,
    /// `http.max_response_kib`: a response body was larger.
    ResponseBytes,
}

impl Limit {
    /// Every limit, in the order of [`ExporterStats::limits_passed`].
    pub const ALL: [Limit; 12] = [
        Limit::Memory,
        Limit::Memories,
        Limit::Tables,
        Limit::TableElements,
        Limit::Handles,
        Limit::HttpFields,
        Limit::Timeout,
        Limit::Disk,
        Limit::LogLines,
        Limit::LogBytes,
        Limit::Hosts,
        Limit::ResponseBytes,
    ];

    /// The config key that sets it, e.g. `sandbox.memory_mib`.
    pub fn key(self) -> &'static str {
        match self {
            Limit::Memory => "sandbox.memory_mib",
            Limit::Memories => "sandbox.max_memories",
            Limit::Tables => "sandbox.max_tables",
            Limit::TableElements => "sandbox.max_table_elements",
            Limit::Handles => "sandbox.max_handles",
            Limit::HttpFields => "sandbox.http_fields_kib",
            Limit::Timeout => "sandbox.timeout_ms",
            Limit::Disk => "sandbox.disk_mib",
            Limit::LogLines => "sandbox.log_lines_per_sec",
            Limit::LogBytes => "sandbox.log_bytes_per_sec",
            Limit::Hosts => "sandbox.allow_hosts",
            Limit::ResponseBytes => "http.max_response_kib",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// Whether an exporter gets its batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExporterState {
    /// Exporting.
    #[default]
    Running,
    /// It kept failing (or failed to start): its batches are dropped and counted, and it is tried
    /// again now and then, waiting twice as long after each failed trial.
    Parked,
    /// Its plugin refused its config in `init`: its batches are dropped and counted.
    Failed,
}

impl std::fmt::Display for ExporterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExporterState::Running => "running",
            ExporterState::Parked => "parked",
            ExporterState::Failed => "failed",
        })
    }
}

#[cfg(feature = "runtime")]
pub(crate) use live::{Counters, LimitCounts};

/// The live counters, updated as the host runs.
#[cfg(feature = "runtime")]
mod live {
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
    use std::sync::{Arc, Mutex};

    use super::{ExporterState, ExporterStats, Limit};

    /// How many times each sandbox limit stopped something of one exporter's plugin (a fault, a
    /// write refused, a log line suppressed). Shared by its instances, which count, and its counters.
    #[derive(Default)]
    pub(crate) struct LimitCounts([AtomicU64; Limit::ALL.len()]);

    impl LimitCounts {
        /// One more time `limit` stopped something.
        pub fn pass(&self, limit: Limit) {
            self.0[limit as usize].fetch_add(1, Relaxed);
        }

        fn snapshot(&self) -> Vec<(Limit, u64)> {
            Limit::ALL
                .into_iter()
                .map(|limit| (limit, self.0[limit as usize].load(Relaxed)))
                .filter(|&(_, n)| n > 0)
                .collect()
        }
    }

    /// Live counters of one exporter.
    #[derive(Default)]
    pub(crate) struct Counters {
        pub records_exported: AtomicU64,
        pub dropped_queue_full: AtomicU64,
        pub dropped_failed: AtomicU64,
        pub dropped_rejected: AtomicU64,
        pub dropped_shutdown: AtomicU64,
        pub dropped_invalid: AtomicU64,
        pub dropped_too_large: AtomicU64,
        pub dropped_spool_full: AtomicU64,
        pub dropped_corrupt: AtomicU64,
        /// The spool's gauges, set by it.
        pub spooled_records: AtomicU64,
        pub spooled_bytes: AtomicU64,
        pub spooled_batches: AtomicU64,
        pub spool_oldest_ms: AtomicU64,
        pub spool_replayed: AtomicU64,
        pub spool_in_doubt: AtomicU64,
        pub spool_skipped_bytes: AtomicU64,
        /// The spool's directory, once it is open.
        pub spool_dir: std::sync::OnceLock<std::path::PathBuf>,
        /// Records the worker has taken from the queue and not yet exported or dropped (an
        /// exporter's stats add those still queued).
        pub pending: AtomicU64,
        pub batches_ok: AtomicU64,
        pub batches_failed: AtomicU64,
        pub batches_retried: AtomicU64,
        pub batches_dropped: AtomicU64,
        pub faults: AtomicU64,
        pub restarts: AtomicU64,
        pub export_nanos: AtomicU64,
        pub limits: Arc<LimitCounts>,
        last_error: Mutex<Option<String>>,
        state: AtomicU8,
    }

    impl Counters {
        pub fn add(counter: &AtomicU64, n: u64) {
            counter.fetch_add(n, Relaxed);
        }

        /// Counts `n` records fewer pending; never below zero (a worker aborted at shutdown may
        /// finish a batch after what it held was counted as dropped and `pending` set to zero).
        pub fn done(&self, n: u64) {
            let _ = self
                .pending
                .fetch_update(Relaxed, Relaxed, |p| Some(p.saturating_sub(n)));
        }

        /// A batch of `n` records was given up on (its records still to be settled as no
        /// longer pending).
        pub fn dropped_batch(&self, n: u64) {
            Counters::add(&self.batches_dropped, 1);
            Counters::add(&self.dropped_failed, n);
        }

        pub fn set_error(&self, error: String) {
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
        }

        pub fn set_state(&self, state: ExporterState) {
            self.state.store(state as u8, Relaxed);
        }

        fn state(&self) -> ExporterState {
            match self.state.load(Relaxed) {
                s if s == ExporterState::Parked as u8 => ExporterState::Parked,
                s if s == ExporterState::Failed as u8 => ExporterState::Failed,
                _ => ExporterState::Running,
            }
        }

        pub fn snapshot(&self, name: &str, plugin: &str) -> ExporterStats {
            let get = |c: &AtomicU64| c.load(Relaxed);
            ExporterStats {
                name: name.to_string(),
                plugin: plugin.to_string(),
                state: self.state(),
                records_exported: get(&self.records_exported),
                dropped_queue_full: get(&self.dropped_queue_full),
                dropped_failed: get(&self.dropped_failed),
                dropped_rejected: get(&self.dropped_rejected),
                dropped_shutdown: get(&self.dropped_shutdown),
                dropped_invalid: get(&self.dropped_invalid),
                dropped_too_large: get(&self.dropped_too_large),
                dropped_spool_full: get(&self.dropped_spool_full),
                dropped_corrupt: get(&self.dropped_corrupt),
                spooled: get(&self.spooled_records),
                spooled_bytes: get(&self.spooled_bytes),
                spooled_batches: get(&self.spooled_batches),
                spool_oldest_unix_ms: get(&self.spool_oldest_ms),
                spool_replayed: get(&self.spool_replayed),
                spool_in_doubt: get(&self.spool_in_doubt),
                spool_skipped_bytes: get(&self.spool_skipped_bytes),
                spool: self.spool_dir.get().cloned(),
                pending: get(&self.pending),
                batches_ok: get(&self.batches_ok),
                batches_failed: get(&self.batches_failed),
                batches_retried: get(&self.batches_retried),
                batches_dropped: get(&self.batches_dropped),
                faults: get(&self.faults),
                restarts: get(&self.restarts),
                export_nanos: get(&self.export_nanos),
                limits_passed: self.limits.snapshot(),
                last_error: self
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            }
        }
    }
}

/// A snapshot of one exporter's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExporterStats {
    /// The exporter's name in the config.
    pub name: String,
    /// Its plugin (built-in name or path).
    pub plugin: String,
    /// Whether it gets its batches.
    pub state: ExporterState,
    /// Records the plugin accepted.
    pub records_exported: u64,
    /// Records dropped by the record call because the exporter's queue was full.
    pub dropped_queue_full: u64,
    /// Records dropped because their batch failed for good (permanent error, or retries spent).
    pub dropped_failed: u64,
    /// Records that the plugin reports its destination refused, in batches otherwise exported
    /// (an OTLP collector's partial success).
    pub dropped_rejected: u64,
    /// Records dropped because they were recorded after shutdown or not delivered by its deadline.
    pub dropped_shutdown: u64,
    /// Measurements dropped because their instrument clashes in kind or unit with the first
    /// instrument of the same name.
    pub dropped_invalid: u64,
    /// Records dropped at the record call because they are larger than any of the exporter's
    /// batches may be (`queue.max_batch_bytes`).
    pub dropped_too_large: u64,
    /// Records of the oldest spooled batches, dropped because the spool held `queue.spool.max_mib`.
    pub dropped_spool_full: u64,
    /// Spooled records found cut or damaged on disk (a torn tail after a crash, a bad checksum).
    pub dropped_corrupt: u64,
    /// Records in the spool (`queue.spool`), not yet delivered: kept on disk, not dropped.
    pub spooled: u64,
    /// The spool's bytes on disk, frames included.
    pub spooled_bytes: u64,
    /// The spool's batches.
    pub spooled_batches: u64,
    /// When the oldest spooled batch was written, in ms since the Unix epoch; 0 if none.
    pub spool_oldest_unix_ms: u64,
    /// Records an earlier run left spooled, found at start (sent before the new ones).
    pub spool_replayed: u64,
    /// Of those, records of a batch that was being exported when that run stopped: they may
    /// arrive twice.
    pub spool_in_doubt: u64,
    /// Bytes of the spool skipped at start because they did not read: a cut or damaged tail.
    pub spool_skipped_bytes: u64,
    /// The spool's directory, if the exporter has one open.
    pub spool: Option<std::path::PathBuf>,
    /// Records in the queue or in a batch under way.
    pub pending: u64,
    /// Export calls that succeeded.
    pub batches_ok: u64,
    /// Export calls that failed (each attempt counts).
    pub batches_failed: u64,
    /// Export calls that were attempts after a failure.
    pub batches_retried: u64,
    /// Batches given up on.
    pub batches_dropped: u64,
    /// Traps, deadline overruns and memory exhaustion.
    pub faults: u64,
    /// Fresh instances made after a fault or a failed start.
    pub restarts: u64,
    /// Time spent in export calls (laying out the batch for the plugin included), in nanoseconds.
    pub export_nanos: u64,
    /// The sandbox limits its plugin ran into, and how many times each stopped something (a
    /// fault, a write refused, a log line suppressed); only those that did.
    pub limits_passed: Vec<(Limit, u64)>,
    /// The last error or fault, if any.
    pub last_error: Option<String>,
}

impl ExporterStats {
    /// Records dropped per reason, each named as its field (`dropped_queue_full`, ...) and as
    /// the `outcome` of the `wasmtel.exporter.records` metric.
    pub fn drops(&self) -> [(&'static str, u64); 8] {
        [
            ("dropped_queue_full", self.dropped_queue_full),
            ("dropped_failed", self.dropped_failed),
            ("dropped_rejected", self.dropped_rejected),
            ("dropped_shutdown", self.dropped_shutdown),
            ("dropped_invalid", self.dropped_invalid),
            ("dropped_too_large", self.dropped_too_large),
            ("dropped_spool_full", self.dropped_spool_full),
            ("dropped_corrupt", self.dropped_corrupt),
        ]
    }

    /// Every record dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.drops().iter().map(|(_, n)| n).sum()
    }
}

impl std::fmt::Display for ExporterStats {
    /// One line: `name (plugin): N exported, N dropped (...), ...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): ", self.name, self.plugin)?;
        if self.state != ExporterState::Running {
            write!(f, "{}, ", self.state.to_string().to_uppercase())?;
        }
        write!(
            f,
            "{} exported, {} dropped",
            self.records_exported,
            self.dropped()
        )?;
        if self.dropped() > 0 {
            write!(
                f,
                " (queue full {}, failed {}, at shutdown {}",
                self.dropped_queue_full, self.dropped_failed, self.dropped_shutdown
            )?;
            if self.dropped_rejected > 0 {
                write!(f, ", rejected {}", self.dropped_rejected)?;
            }
            if self.dropped_invalid > 0 {
                write!(f, ", invalid {}", self.dropped_invalid)?;
            }
            if self.dropped_too_large > 0 {
                write!(f, ", too large {}", self.dropped_too_large)?;
            }
            if self.dropped_spool_full > 0 {
                write!(f, ", spool full {}", self.dropped_spool_full)?;
            }
            if self.dropped_corrupt > 0 {
                write!(f, ", damaged in the spool {}", self.dropped_corrupt)?;
            }
            f.write_str(")")?;
        }
        write!(f, ", {} batches ok", self.batches_ok)?;
        if self.batches_failed > 0 {
            write!(
                f,
                ", {} failed calls, {} retries",
                self.batches_failed, self.batches_retried
            )?;
        }
        if self.faults > 0 {
            write!(f, ", {} faults, {} restarts", self.faults, self.restarts)?;
        }
        if !self.limits_passed.is_empty() {
            f.write_str(", limits passed:")?;
            for (limit, n) in &self.limits_passed {
                write!(f, " {limit} {n}")?;
            }
        }
        if self.pending > 0 {
            write!(f, ", {} pending", self.pending)?;
        }
        if self.spooled > 0 {
            write!(f, ", {} spooled", self.spooled)?;
        }
        if self.spool_replayed > 0 {
            write!(f, ", {} from an earlier run", self.spool_replayed)?;
            if self.spool_in_doubt > 0 {
                write!(f, " ({} may arrive twice)", self.spool_in_doubt)?;
            }
        }
        if self.spool_skipped_bytes > 0 {
            write!(
                f,
                ", {} spool bytes skipped as damaged",
                self.spool_skipped_bytes
            )?;
        }
        if let Some(e) = &self.last_error {
            write!(f, "; last error: {e}")?;
        }
        Ok(())
    }
}
