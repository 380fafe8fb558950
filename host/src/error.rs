//! The library's errors: each says where (file, line, key, exporter, plugin) and what.

use std::path::PathBuf;

/// Anything that stops [`crate::Telemetry`] from starting or a replay from running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An exporter's plugin could not be loaded.
    #[error("{origin}exporter `{exporter}`: {error}")]
    Load {
        /// The exporter's name.
        exporter: String,
        /// `file:line: ` of the exporter's `plugin` key, when it comes from a file.
        origin: String,
        /// What is wrong with the plugin.
        error: LoadError,
    },
    /// An instance of an exporter's plugin could not be created.
    #[error("exporter `{exporter}`: cannot instantiate its plugin: {reason}")]
    Instantiate {
        /// The exporter's name.
        exporter: String,
        /// Why.
        reason: String,
    },
    /// An exporter's plugin failed in `init`.
    #[error("{origin}exporter `{exporter}`: init failed: {reason}")]
    Init {
        /// The exporter's name.
        exporter: String,
        /// `file:line: ` of the exporter's `plugin` key, when it comes from a file.
        origin: String,
        /// The plugin's error or fault.
        reason: String,
        /// The plugin answered with a permanent error (it refuses its config), rather than a
        /// fault or a retryable error.
        permanent: bool,
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
    /// Reading input failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being read.
        what: String,
        /// Why it failed.
        error: std::io::Error,
    },
    /// The runtime could not start.
    #[error("cannot start the plugin runtime: {0}")]
    Runtime(String),
}

/// A config file error, located.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{}: {message}", file.display(), location(*line, *column), key_prefix(key))]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line and column, where known.
    pub line: Option<usize>,
    /// 1-based column, where known.
    pub column: Option<usize>,
    /// The dotted key path, e.g. `exporters.session.queue.capacity`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn key_prefix(key: &Option<String>) -> String {
    match key {
        Some(k) if !k.is_empty() && k != "." => format!(": `{k}`"),
        _ => String::new(),
    }
}

impl ConfigError {
    /// `message` about the text at byte offset `at` of `text` (the file's contents).
    pub(crate) fn at(
        file: &std::path::Path,
        text: &str,
        at: Option<usize>,
        key: Option<String>,
        message: String,
    ) -> Self {
        let (line, column) = match at {
            Some(offset) => {
                let before = &text[..offset.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            key,
            message,
        }
    }
}

/// A plugin that cannot be loaded: not found, not a component, not an exporter, or importing
/// what the host does not provide.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("plugin `{plugin}`: {reason}")]
pub struct LoadError {
    /// The plugin: a built-in name or a path.
    pub plugin: String,
    /// What is wrong with it.
    pub reason: String,
}
