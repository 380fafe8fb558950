//! The library's errors. Each says where (file, line, key, exporter, plugin) and what; its cause,
//! where it has one, is its [`std::error::Error::source`]: `{}` shows one level, and
//! [`Error::chain`] (or anyhow's `{:#}`) the error with every cause, on one line.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A cause from a library whose errors are not one type (wasmtime's, the I/O of a thread).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Anything that stops [`crate::Telemetry`] from starting or a replay from running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An exporter's plugin could not be loaded.
    #[error("{}exporter `{exporter}`", prefix(location))]
    Load {
        /// The exporter's name.
        exporter: String,
        /// The exporter's `plugin` key, when it comes from a file.
        location: Option<Location>,
        /// What is wrong with the plugin.
        #[source]
        source: Box<LoadError>,
    },
    /// An exporter's plugin could not be instantiated or failed in `init`.
    #[error("{}exporter `{exporter}`", prefix(location))]
    Start {
        /// The exporter's name.
        exporter: String,
        /// The exporter's `plugin` key, when it comes from a file.
        location: Option<Location>,
        /// What failed.
        #[source]
        source: Box<StartError>,
    },
    /// A call of `wasmtel check --fixture` did not return `ok`: an export of the fixture's
    /// records, or `flush`.
    #[error("{}exporter `{exporter}`: {call}", prefix(location))]
    Check {
        /// The exporter's name.
        exporter: String,
        /// The exporter's `plugin` key, when it comes from a file.
        location: Option<Location>,
        /// The call, e.g. `export of batch 2 of 3 (291 records)`.
        call: String,
        /// How it ended.
        #[source]
        source: Box<CallError>,
    },
    /// A record-format line is invalid.
    #[error("{file}:{line}: {message}")]
    Record {
        /// The input's name.
        file: String,
        /// The 1-based line number.
        line: u64,
        /// What is wrong with the line.
        message: String,
    },
    /// A replay's input is a file being written: by one of the replay's exporters (which would
    /// read its own output), or by another process.
    #[error(
        "{input} is being written by {writer}: a replay must not read a file being written; \
         replay a copy, or give the exporter another file or directory"
    )]
    InputIsOutput {
        /// The input.
        input: String,
        /// Who writes it: an exporter and its path, or another process.
        writer: String,
    },
    /// Reading input failed.
    #[error("{what}")]
    Io {
        /// What was being read.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Session logs: no session, or more than one, answers to what names it.
    #[error("{0}")]
    Sessions(String),
    /// The runtime could not start.
    #[error("cannot start the plugin runtime")]
    Runtime(#[source] BoxError),
    /// A fixture run's `responses.toml` is invalid.
    #[error("{}: {message}", file.display())]
    Responses {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A fixture run's config does not have exactly one exporter.
    #[error("{config}: a fixture run takes a config with exactly one exporter, not {found}")]
    NotOneExporter {
        /// The config file.
        config: PathBuf,
        /// How many it has.
        found: usize,
    },
}

impl Error {
    /// The error and its causes on one line, each after a `: `.
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// `error` and its causes on one line, each after a `: ` (as anyhow's `{:#}`); a cause whose
/// words are already on the line is not said again.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    for cause in causes(error) {
        let more = cause.to_string();
        if !text.contains(&more) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&more);
        }
    }
    text
}

/// `error` and its causes, outermost first (at most 16); an I/O error's cause is the error it
/// wraps, which its `source` passes over.
pub(crate) fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut causes = vec![error];
    let mut next = error;
    loop {
        let inner = match next.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|i| i as &(dyn std::error::Error + 'static)),
            None => next.source(),
        };
        match inner {
            Some(inner) if causes.len() < 16 => {
                causes.push(inner);
                next = inner;
            }
            _ => return causes,
        }
    }
}

fn prefix(location: &Option<Location>) -> String {
    location
        .as_ref()
        .map_or(String::new(), |l| format!("{l}: "))
}

/// A place in a config file: `file:line` or `file:line:column`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Location {
    /// The config file.
    pub file: PathBuf,
    /// The 1-based line.
    pub line: usize,
    /// The 1-based column, where it matters.
    pub column: Option<usize>,
}

// What the host makes its errors with.
#[cfg(feature = "runtime")]
impl Location {
    /// The location of byte `offset` of `text`, the contents of `file`.
    pub(crate) fn of(file: &std::path::Path, text: &str, offset: usize) -> Location {
        let before = &text[..offset.min(text.len())];
        Location {
            file: file.to_path_buf(),
            line: before.matches('\n').count() + 1,
            column: Some(before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1),
        }
    }

    /// The same place, without its column.
    pub(crate) fn line_only(mut self) -> Location {
        self.column = None;
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if let Some(column) = self.column {
            write!(f, ":{column}")?;
        }
        Ok(())
    }
}

/// A config file error, located.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}: {message}", where_(file, location), key_prefix(key))]
#[non_exhaustive]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// Where in it, when known.
    pub location: Option<Location>,
    /// The dotted key path, e.g. `exporters.session.queue.capacity`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

fn where_(file: &std::path::Path, location: &Option<Location>) -> String {
    match location {
        Some(l) => l.to_string(),
        None => file.display().to_string(),
    }
}

fn key_prefix(key: &Option<String>) -> String {
    match key {
        Some(k) if !k.is_empty() && k != "." => format!(": `{k}`"),
        _ => String::new(),
    }
}

// What the host makes its errors with.
#[cfg(feature = "runtime")]
impl ConfigError {
    /// `message` about the text at byte offset `at` of `text` (the file's contents).
    pub(crate) fn at(
        file: &std::path::Path,
        text: &str,
        at: Option<usize>,
        key: Option<String>,
        message: String,
    ) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            location: at.map(|offset| Location::of(file, text, offset)),
            key,
            message,
        }
    }
}

/// A plugin that cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}`")]
#[non_exhaustive]
pub struct LoadError {
    /// The plugin: a built-in name or a path.
    pub plugin: String,
    /// What is wrong with it.
    #[source]
    pub cause: LoadCause,
}

/// Why a plugin cannot be loaded: not found, not a component, not an exporter, or importing what
/// the host does not provide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadCause {
    /// The file does not exist.
    #[error("no such file")]
    NotFound,
    /// The file cannot be read.
    #[error("cannot read")]
    Read(#[source] std::io::Error),
    /// The bytes are not a WebAssembly component.
    #[error("{0}")]
    NotAComponent(&'static str),
    /// wasmtime cannot compile it.
    #[error("cannot compile")]
    Compile(#[source] BoxError),
    /// It exports another version of the exporter interface.
    #[error("it implements `{found}`, but this host implements `{expected}`")]
    OtherVersion {
        /// What it exports.
        found: String,
        /// What this host implements.
        expected: String,
    },
    /// It does not export the exporter interface at all.
    #[error(
        "it is not a wasmtel exporter: it does not export `{expected}` (its exports: {exports})"
    )]
    NotAnExporter {
        /// What this host implements.
        expected: String,
        /// What it exports, comma-separated, or `none`.
        exports: String,
    },
    /// It imports what the host does not provide.
    #[error(
        "it imports what this host does not provide (WASI 0.2 with wasi:http, as far as the \
         sandbox grants, and `{log}`)"
    )]
    Imports {
        /// The host's log interface, with its version.
        log: String,
        /// wasmtime's error, naming the import.
        #[source]
        source: BoxError,
    },
    /// It exports the interface without all of its functions.
    #[error("it does not implement all of `{expected}`")]
    Incomplete {
        /// What this host implements.
        expected: String,
        /// wasmtime's error, naming what is missing.
        #[source]
        source: BoxError,
    },
}

/// Why an exporter's plugin did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The sandbox or the instance could not be created.
    #[error("cannot instantiate its plugin")]
    Instantiate(#[source] BoxError),
    /// The plugin's `init` failed.
    #[error("init failed")]
    Init(#[source] CallError),
}

// What the host makes its errors with.
#[cfg(feature = "runtime")]
impl StartError {
    /// The plugin refused its config: starting it again would fail the same way.
    pub(crate) fn is_permanent(&self) -> bool {
        matches!(self, StartError::Init(CallError::Permanent(_)))
    }
}

/// Why a call into an exporter failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The exporter refused: the batch is dropped (or, from `init`, the exporter is failed).
    #[error("permanent error: {0}")]
    Permanent(String),
    /// Worth trying again, after `retry_after` if the exporter says.
    #[error("retryable error{}: {message}", retry_after_text(retry_after))]
    Retryable {
        /// What went wrong.
        message: String,
        /// How long to wait before the next try.
        retry_after: Option<Duration>,
    },
    /// The exporter trapped, ran past its deadline or out of memory: the instance is unusable.
    #[error("plugin fault: {0}")]
    Fault(String),
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    retry_after.map_or(String::new(), |d| {
        format!(" (retry after {} ms)", d.as_millis())
    })
}
