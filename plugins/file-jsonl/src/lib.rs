//! The `file-jsonl` exporter: writes every batch in the wasmtel record format (one JSON object per
//! line, `type` = `resource`, `event`, `span` or `metric`) into a file of its sandbox directory.
//!
//! Config (the exporter's `config` table):
//! - `file`: the file name; `{session_id}` is replaced by the session id.
//!   Default `wasmtel-{session_id}.jsonl`.
//! - `max_total_bytes`: when the files of the directory together pass this size, the oldest of
//!   this exporter's other files are deleted until they fit; other files are counted but never
//!   deleted. A file is this exporter's when its name is `file` with some session id in place of
//!   `{session_id}` (exactly `file`, if it has no `{session_id}`) and it starts with the
//!   `resource` line this exporter writes first. `0` disables pruning. Default 100 MiB.
//! - `max_file_bytes`: once the file being written passes this size, the next batch goes to a
//!   new file, named as `file` with `.1`, `.2`, ... before its extension; so the budget holds for
//!   one long session too. `0`: never. Default: a quarter of `max_total_bytes`.
//! - `dir`: the directory, inside the sandbox. Default `.`, the directory the sandbox grants.
//!
//! One writer per file: the exporter holds the lock of the file it writes (through the host's
//! `wasmtel:exporter/files`), so another exporter, of this process or another, cannot write it
//! too; and it deletes only files that no writer holds.
//!
//! The same code runs natively (see `wasmtel-sdk`), where `dir` is an ordinary path.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use wasmtel_sdk::files::{self, Lock, LockError};
use wasmtel_sdk::{Batch, Context, Error, Exporter, log};

pub use wasmtel_sdk::jsonl::LineWriter;

/// The default size budget of the directory: 100 MiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 100 * 1024 * 1024;

/// How every file this exporter writes starts: the first resource line.
const FIRST_LINE: &[u8] = br#"{"type":"resource""#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    file: String,
    max_total_bytes: u64,
    max_file_bytes: Option<u64>,
    dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            file: "wasmtel-{session_id}.jsonl".into(),
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_file_bytes: None,
            dir: ".".into(),
        }
    }
}

/// The file being written: the handle, its lock, how large it is.
struct Active {
    path: PathBuf,
    file: File,
    /// Its lock; none for a device (such as /dev/null), or where the file system keeps no locks.
    _lock: Option<Lock>,
    /// A regular file, not a device: it grows, so it is rotated.
    regular: bool,
    bytes: u64,
    /// Whether this exporter made the file (it did not exist before).
    made: bool,
}

impl Active {
    /// Opens `path` for appending, holding its lock first.
    fn open(path: PathBuf) -> Result<Active, Error> {
        let existing = fs::metadata(&path).ok();
        let regular = existing.as_ref().is_none_or(|m| m.is_file());
        let lock = match regular {
            true => match files::try_lock(&path) {
                Ok(lock) => Some(lock),
                // Writing without the lock beats not writing; the guarantee is lost, and said so.
                Err(LockError::Unsupported(why)) => {
                    log::warn(&format!(
                        "writing {} without a lock: no other writer is kept out ({why})",
                        path.display()
                    ));
                    None
                }
                Err(e) => {
                    let path = path.display();
                    return Err(Error::permanent(format!("cannot write {path}: {e}")));
                }
            },
            false => None,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::permanent(format!("cannot open {}: {e}", path.display())))?;
        let bytes = match regular {
            true => file.metadata()?.len(),
            false => 0,
        };
        Ok(Active {
            path,
            file,
            _lock: lock,
            regular,
            bytes,
            made: existing.is_none(),
        })
    }
}

/// What a numbered name of `name` has before and after its number.
fn around_number(name: &str) -> (String, String) {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (format!("{stem}."), format!(".{ext}")),
        _ => (format!("{name}."), String::new()),
    }
}

/// `name` with `.n` before its extension: `a.jsonl` gives `a.1.jsonl`; `a` gives `a.1`.
fn numbered(name: &str, n: u64) -> String {
    let (head, tail) = around_number(name);
    format!("{head}{n}{tail}")
}

/// The number of `candidate`, if it is `name` numbered.
fn number_of(candidate: &str, name: &str) -> Option<u64> {
    let (head, tail) = around_number(name);
    let n = candidate
        .strip_prefix(head.as_str())?
        .strip_suffix(tail.as_str())?;
    n.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| n.parse().ok())
        .flatten()
}

/// The exporter: one open file, appended to batch by batch.
pub struct FileJsonl {
    dir: PathBuf,
    /// The name of the session's first file; later ones are numbered.
    name: String,
    /// The number of the last numbered file: numbers only grow, so they follow time.
    number: u64,
    /// What the names of this exporter's files start and end with, around a session id; none:
    /// the name is fixed (`file` has no `{session_id}`).
    pattern: Option<(String, String)>,
    active: Active,
    lines: LineWriter,
    max_total_bytes: u64,
    max_file_bytes: u64,
    /// Bytes in the directory at the last scan, plus what was written since.
    dir_bytes: u64,
    /// `dir_bytes` past which the directory is scanned again.
    next_scan: u64,
    /// Whether the directory was found over budget with nothing left to delete.
    warned: bool,
}

impl Exporter for FileJsonl {
    fn init(config: &str, context: &Context) -> Result<Self, Error> {
        let config: Config = wasmtel_sdk::parse_config(config)?;
        if config.file.is_empty() || config.file.contains('/') {
            return Err(Error::permanent(format!(
                "invalid config: `file` must be a plain file name, got {:?}",
                config.file
            )));
        }
        let name = config.file.replace("{session_id}", &context.session_id);
        let pattern = config
            .file
            .split_once("{session_id}")
            .map(|(prefix, suffix)| (prefix.to_string(), suffix.to_string()));
        // A session that goes on after a restart goes on in its last file.
        let number = fs::read_dir(&config.dir)?
            .flatten()
            .filter_map(|e| number_of(e.file_name().to_str()?, &name))
            .max()
            .unwrap_or(0);
        let active = Active::open(config.dir.join(match number {
            0 => name.clone(),
            n => numbered(&name, n),
        }))?;
        let mut exporter = FileJsonl {
            dir: config.dir,
            name,
            number,
            pattern,
            active,
            lines: LineWriter::default(),
            max_total_bytes: config.max_total_bytes,
            max_file_bytes: config.max_file_bytes.unwrap_or(config.max_total_bytes / 4),
            dir_bytes: 0,
            next_scan: 0,
            warned: false,
        };
        if exporter.max_total_bytes != 0 {
            exporter.prune();
        }
        Ok(exporter)
    }

    /// Writes the batch's lines. A file is full at `max_file_bytes`: the lines past it go on in
    /// the next file, even within a batch. (If writing fails after part of a batch went to a
    /// file that filled, its retry writes that part again.)
    fn export(&mut self, batch: &Batch<'_>) -> Result<(), Error> {
        self.lines.resource(batch.resource());
        for record in batch.records() {
            self.lines.record(record);
            let buffered = self.lines.lines().len() as u64;
            if self.max_file_bytes != 0 && self.active.bytes + buffered >= self.max_file_bytes {
                self.write()?;
            }
        }
        self.write()
    }

    /// Flushes; a file this exporter made and never wrote to is not left behind.
    fn shutdown(&mut self) -> Result<(), Error> {
        self.flush()?;
        if self.active.made && self.active.bytes == 0 {
            let _ = fs::remove_file(&self.active.path);
        }
        Ok(())
    }

    /// Makes what was written durable: the file's data reaches the disk.
    fn flush(&mut self) -> Result<(), Error> {
        self.active.file.flush()?;
        match self.active.file.sync_data() {
            // A file that cannot be synced (a device such as /dev/null) has nothing to keep.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
            other => Ok(other?),
        }
    }
}

impl FileJsonl {
    /// Appends the lines of the last batch to the file, then moves on to a new file if this one
    /// is full, and prunes if over budget. Once the batch is written, nothing fails it: trouble
    /// with the next file or with pruning is logged.
    fn write(&mut self) -> Result<(), Error> {
        let written = self.active.file.write_all(self.lines.lines());
        let len = self.lines.lines().len() as u64;
        self.lines.clear();
        if written.is_err() {
            // The lines are lost (the batch's retry makes them again): the next ones start with
            // the resource line.
            self.lines.new_file();
        }
        written?;
        self.active.bytes += len;
        self.dir_bytes += len;
        if self.max_file_bytes != 0
            && self.active.bytes >= self.max_file_bytes
            && self.active.regular
            && let Err(e) = self.next_file()
        {
            log::warn(&format!(
                "writing on in {}: {e:?}",
                self.active.path.display()
            ));
        }
        if self.max_total_bytes != 0 && self.dir_bytes > self.next_scan {
            self.prune();
        }
        Ok(())
    }

    /// Writes on in the next numbered file of the session, which starts with its resource line.
    fn next_file(&mut self) -> Result<(), Error> {
        self.active.file.flush()?;
        let next = loop {
            self.number += 1;
            let path = self.dir.join(numbered(&self.name, self.number));
            if !path.exists() {
                break path;
            }
        };
        self.active = Active::open(next)?;
        self.lines.new_file();
        Ok(())
    }

    /// Whether `path` is one of this exporter's files: named as `file` says (numbered, or not),
    /// and starting with the `resource` line it writes first (so a file someone else named alike
    /// is not).
    fn is_ours(&self, path: &Path) -> bool {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        let named = match &self.pattern {
            Some((prefix, suffix)) => {
                name.len() > prefix.len() + suffix.len()
                    && name.starts_with(prefix.as_str())
                    && name.ends_with(suffix.as_str())
            }
            None => name == self.name || number_of(name, &self.name).is_some(),
        };
        let mut start = [0u8; FIRST_LINE.len()];
        named
            && File::open(path)
                .and_then(|mut f| f.read_exact(&mut start))
                .is_ok_and(|()| start == *FIRST_LINE)
    }

    /// Deletes the oldest files of this exporter that no writer holds (the one being written is
    /// held), until the directory's files fit in `max_total_bytes`. Files that vanish while it
    /// looks (another process pruned them) are passed over.
    fn prune(&mut self) {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => return log::warn(&format!("cannot prune {}: {e}", self.dir.display())),
        };
        let mut files = Vec::new();
        let mut total = 0u64;
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            total += meta.len();
            let path = entry.path();
            if path.file_name() != self.active.path.file_name() && self.is_ours(&path) {
                files.push((meta.modified().ok(), path, meta.len()));
            }
        }
        if self.max_total_bytes != 0 && total > self.max_total_bytes {
            files.sort();
            for (_, path, len) in files {
                if total <= self.max_total_bytes {
                    break;
                }
                match files::remove_unlocked(&path) {
                    Ok(true) => {
                        log::info(&format!("pruned {} ({len} bytes)", path.display()));
                        total -= len;
                    }
                    Ok(false) => {
                        log::debug(&format!("kept {}: another writer holds it", path.display()))
                    }
                    Err(e) => log::warn(&format!("cannot prune {e}")),
                }
            }
        }
        // Scan again once the budget is passed; if it cannot be met, after another 1/16 of it.
        self.next_scan = if total > self.max_total_bytes {
            total.saturating_add(self.max_total_bytes / 16)
        } else {
            self.max_total_bytes
        };
        if self.max_total_bytes != 0 && total > self.max_total_bytes && !self.warned {
            self.warned = true;
            log::warn(&format!(
                "{} holds {total} bytes, over max_total_bytes = {}, and nothing more of this \
                 exporter's can be deleted (files being written are kept)",
                self.dir.display(),
                self.max_total_bytes
            ));
        }
        self.dir_bytes = total;
    }
}

wasmtel_sdk::export!(FileJsonl);
