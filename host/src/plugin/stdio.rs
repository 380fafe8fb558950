//! Plugin diagnostics into the host's `tracing`: the `log` import, and stdout/stderr captured
//! line by line. Every message is tagged with the exporter's name and cut to a bounded length.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::bindings::Level;

/// The longest message taken from a plugin; the rest is cut.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `message` cut to at most [`MAX_MESSAGE_BYTES`], on a character boundary.
pub fn bounded(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES;
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

/// Writes a plugin's message to the host's log.
pub fn log(exporter: &str, level: Level, message: &str) {
    let message = bounded(message);
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
    exporter: Arc<str>,
    stream: &'static str,
}

impl LogStream {
    pub fn new(exporter: Arc<str>, stream: &'static str) -> Self {
        LogStream { exporter, stream }
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
            exporter: self.exporter.clone(),
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
    exporter: Arc<str>,
    level: Level,
    line: Vec<u8>,
}

impl LineLogger {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        if !text.is_empty() {
            log(&self.exporter, self.level, text);
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
