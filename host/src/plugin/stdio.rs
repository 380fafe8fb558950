//! Plugin diagnostics into the host's `tracing`: the `log` import, and stdout/stderr captured
//! line by line. Every message is tagged with the exporter's name and cut to a bounded length.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::bindings::Level;
use crate::stats::{Limit, LimitCounts};

/// The longest message taken from a plugin; the rest is cut.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `message` cut to at most [`MAX_MESSAGE_BYTES`], on a character boundary.
pub fn bounded(message: &str) -> &str {
    cut(message, MAX_MESSAGE_BYTES)
}

/// `message` cut to at most `max` bytes, at a character's boundary.
fn cut(message: &str, max: usize) -> &str {
    if message.len() <= max {
        return message;
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// `message` cut to at most [`MAX_MESSAGE_BYTES`], saying how much was cut.
pub fn bounded_owned(mut message: String) -> String {
    let keep = bounded(&message).len();
    if keep < message.len() {
        let cut = message.len() - keep;
        message.truncate(keep);
        message.push_str(&format!("... ({cut} more bytes)"));
    }
    message
}

/// How much of one instance's output reaches the host's log: at most so many lines and bytes a
/// second; the rest is counted, and said in one line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogRate {
    /// Lines a second.
    pub lines: u32,
    /// Bytes a second.
    pub bytes: u64,
}

/// One instance's messages into the host's log (the `log` import, stdout and stderr), tagged with
/// the exporter's name, within its [`LogRate`].
pub struct PluginLog {
    exporter: Arc<str>,
    rate: LogRate,
    passed: Arc<LimitCounts>,
    window: std::sync::Mutex<Window>,
    /// The last few warnings and errors (stderr among them) since [`PluginLog::last_words`] was
    /// last called, suppressed or not: what a fault's message quotes.
    last: std::sync::Mutex<std::collections::VecDeque<String>>,
    /// Every message, before its rate is applied, if a fixture harness captures them.
    capture: Option<Capture>,
}

/// What a fixture harness captures of a plugin's output: each message as `level: text`.
pub type Capture = Arc<std::sync::Mutex<Vec<String>>>;

/// The most messages a capture keeps; past it, one line says that more were not kept.
const CAPTURED_LINES: usize = 100_000;

/// How many lines [`PluginLog::last_words`] keeps, and how long each may be.
const LAST_LINES: usize = 3;
const LAST_LINE_BYTES: usize = 200;

/// The current second: what was written, and what was suppressed.
struct Window {
    start: std::time::Instant,
    lines: u32,
    bytes: u64,
    suppressed_lines: u64,
    suppressed_bytes: u64,
}

impl PluginLog {
    pub fn new(
        exporter: Arc<str>,
        rate: LogRate,
        passed: Arc<LimitCounts>,
        capture: Option<Capture>,
    ) -> Self {
        PluginLog {
            exporter,
            rate,
            passed,
            window: std::sync::Mutex::new(Window {
                start: std::time::Instant::now(),
                lines: 0,
                bytes: 0,
                suppressed_lines: 0,
                suppressed_bytes: 0,
            }),
            last: Default::default(),
            capture,
        }
    }

    /// The last warnings and errors the plugin wrote since the last call of this, oldest first,
    /// joined by ` / ` (empty if none).
    pub fn last_words(&self) -> String {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let words: Vec<String> = last.drain(..).collect();
        words.join(" / ")
    }

    /// Forgets the warnings and errors kept for [`PluginLog::last_words`] (as a call starts).
    pub fn forget_last_words(&self) {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Writes `message` to the host's log, unless this second's rate is spent.
    pub fn log(&self, level: Level, message: &str) {
        let message = bounded(message);
        if let Some(capture) = &self.capture {
            let mut lines = capture.lock().unwrap_or_else(|e| e.into_inner());
            match lines.len() {
                n if n < CAPTURED_LINES => lines.push(format!("{}: {message}", level_name(level))),
                CAPTURED_LINES => lines.push("(more lines, not kept)".into()),
                _ => {}
            }
        }
        if matches!(level, Level::Warn | Level::Error) {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.len() == LAST_LINES {
                last.pop_front();
            }
            // On one line, whatever the plugin wrote: control characters escaped.
            let line: String = cut(message, LAST_LINE_BYTES)
                .chars()
                .flat_map(|c| match c.is_control() {
                    true => c.escape_default().collect::<Vec<_>>(),
                    false => vec![c],
                })
                .collect();
            last.push_back(line);
        }
        {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            if w.start.elapsed() >= std::time::Duration::from_secs(1) {
                self.say_suppressed(&mut w);
                w.start = std::time::Instant::now();
                (w.lines, w.bytes) = (0, 0);
            }
            let len = message.len() as u64;
            if w.lines >= self.rate.lines || w.bytes + len > self.rate.bytes {
                self.passed.pass(if w.lines >= self.rate.lines {
                    Limit::LogLines
                } else {
                    Limit::LogBytes
                });
                w.suppressed_lines += 1;
                w.suppressed_bytes += len;
                return;
            }
            w.lines += 1;
            w.bytes += len;
        }
        emit(&self.exporter, level, message);
    }

    fn say_suppressed(&self, w: &mut Window) {
        if w.suppressed_lines > 0 {
            let message = format!(
                "{} lines ({} bytes) of this plugin's output suppressed: over its rate of {} lines \
                 and {} bytes a second",
                w.suppressed_lines, w.suppressed_bytes, self.rate.lines, self.rate.bytes
            );
            emit(&self.exporter, Level::Warn, &message);
            (w.suppressed_lines, w.suppressed_bytes) = (0, 0);
        }
    }
}

impl Drop for PluginLog {
    /// What was suppressed last is said too.
    fn drop(&mut self) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        self.say_suppressed(&mut w);
    }
}

/// A level as the WIT names it.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// Writes a plugin's message to the host's log.
fn emit(exporter: &str, level: Level, message: &str) {
    match level {
        Level::Trace => tracing::trace!(target: "wasmtel::plugin", exporter, "{message}"),
        Level::Debug => tracing::debug!(target: "wasmtel::plugin", exporter, "{message}"),
        Level::Info => tracing::info!(target: "wasmtel::plugin", exporter, "{message}"),
        Level::Warn => tracing::warn!(target: "wasmtel::plugin", exporter, "{message}"),
        Level::Error => tracing::error!(target: "wasmtel::plugin", exporter, "{message}"),
    }
}

/// A plugin's stdout or stderr: each line becomes a log message (info for stdout, warn for
/// stderr).
pub struct LogStream {
    log: Arc<PluginLog>,
    stream: &'static str,
}

impl LogStream {
    pub fn new(log: Arc<PluginLog>, stream: &'static str) -> Self {
        LogStream { log, stream }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            log: self.log.clone(),
            level: if self.stream == "stderr" {
                Level::Warn
            } else {
                Level::Info
            },
            line: Vec::new(),
        })
    }
}

struct LineLogger {
    log: Arc<PluginLog>,
    level: Level,
    line: Vec<u8>,
}

impl LineLogger {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        if !text.is_empty() {
            self.log.log(self.level, text);
        }
        self.line.clear();
    }
}

impl AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        for &b in buf {
            if b == b'\n' {
                self.emit();
            } else if self.line.len() < MAX_MESSAGE_BYTES {
                self.line.push(b);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.line.is_empty() {
            self.emit();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
