//! The fixture harness: runs one plugin in its sandbox on a recorded fixture and captures what
//! it did (the files it left in its directory, its log, its calls and their outcomes), to compare
//! with an expected directory. It is what `wasmtel test` runs, and a plugin's own tests can run
//! it too:
//!
//! ```no_run
//! let capture = wasmtel::harness::FixtureRun::new("target/my_plugin.wasm", "tests/session.jsonl")
//!     .run()
//!     .expect("the plugin runs");
//! if let Err(mismatch) = capture.compare("tests/expected".as_ref()) {
//!     panic!("{mismatch}");
//! }
//! ```
//!
//! The batches are those `wasmtel replay` cuts from the fixture (by the exporter's
//! `queue.max_batch` and `queue.max_batch_bytes`, a new batch at each change of resource), each
//! exported once: an error is recorded, not retried, and a fault ends the run (the instance and
//! what it held are gone), so that a run is the same every time. `flush` and `shutdown` end it.
//!
//! The expected directory holds `calls.txt` (a line per call: `init: ok`, `export 1 (512
//! records): ok`, ...), `log.txt` (a line per message of the plugin's log, stdout and stderr:
//! `info: ...`), `files/`, a copy of the sandbox directory as the plugin left it, and, if the
//! plugin sent HTTP requests, `requests.txt`: each request (its bodies in OTLP protobuf shown as
//! OTLP JSON, JSON indented) and its answer. No request leaves the process: those to hosts the
//! sandbox allows are answered by a script ([`RESPONSES`], [`FixtureRun::responses`]; else each
//! with a plain success), the others refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, ExporterConfig};
use crate::error::{CallError, Error};
use crate::exporter::Exporter as _;
use crate::plugin;

/// One run of a plugin on a fixture, to be made with [`FixtureRun::run`].
#[derive(Clone, Debug)]
pub struct FixtureRun {
    plugin: String,
    fixture: PathBuf,
    config: Option<PathBuf>,
    responses: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
}

/// What a plugin did in a [`FixtureRun`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Capture {
    /// A line per call: what was called and how it ended.
    pub calls: Vec<String>,
    /// A line per message of the plugin (its log, stdout and stderr): `level: text`.
    pub log: Vec<String>,
    /// The files of its sandbox directory as it left them, by path relative to it (`/`
    /// between names).
    pub files: BTreeMap<String, Vec<u8>>,
    /// The HTTP requests it sent (to hosts its sandbox allows), each with its answer.
    pub requests: Vec<plugin::Exchange>,
}

/// How a [`Capture`] differs from an expected directory: a section per differing file, with a
/// unified diff of its lines (numbered as in the files) or what is missing or extra.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct Mismatch(Vec<String>);

impl FixtureRun {
    /// A run of `plugin` (a built-in's name or a `.wasm` path) on `fixture`, a file in the
    /// record format.
    pub fn new(plugin: impl Into<String>, fixture: impl Into<PathBuf>) -> Self {
        FixtureRun {
            plugin: plugin.into(),
            fixture: fixture.into(),
            config: None,
            responses: None,
            cache_dir: plugin::default_cache_dir(),
        }
    }

    /// Configures the plugin from the config file `path`, which must hold one exporter: its
    /// `config`, `sandbox` and `queue` apply; its `plugin` is replaced by this run's, and its
    /// sandbox directory by a temporary one.
    pub fn config(mut self, path: impl Into<PathBuf>) -> Self {
        self.config = Some(path.into());
        self
    }

    /// Answers the plugin's HTTP requests with the answers of `path` (a `responses.toml`: see
    /// [`RESPONSES`]) instead of a plain success each.
    pub fn responses(mut self, path: impl Into<PathBuf>) -> Self {
        self.responses = Some(path.into());
        self
    }

    /// Caches the compiled plugin in `dir` (none: no cache) instead of the default.
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Runs the plugin on the fixture and captures what it did. Fails on an invalid fixture or
    /// config, or a plugin that does not load; what the plugin does wrong (an error, a fault,
    /// an `init` that refuses) is captured instead.
    pub fn run(&self) -> Result<Capture, Error> {
        let (exporter, session_id) = self.exporter()?;
        let (resources_and_records, too_large) =
            crate::replay::fixture_batches(&self.fixture, &exporter)?;
        let runtime = plugin::Runtime::new(self.cache_dir.clone())?;
        let plugin = exporter.load(&runtime)?;
        let scratch = tempfile::tempdir().map_err(|source| Error::Io {
            what: "cannot make a temporary directory".into(),
            source,
        })?;
        let dir = scratch.path().join("sandbox");
        let mut sandbox = exporter.sandbox_for(&plugin);
        sandbox.dir = Some(dir.clone());
        // No request leaves a fixture run: those the sandbox allows are answered here.
        let responder = Arc::new(plugin::Responder::new(match &self.responses {
            Some(path) => answers(path)?,
            None => Vec::new(),
        }));
        let lines: plugin::Capture = Default::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(e.into()))?;
        let calls = rt.block_on(async {
            let mut calls = Vec::new();
            if too_large > 0 {
                calls.push(format!(
                    "{too_large} records left out, larger than queue.max_batch_bytes (the \
                     pipeline drops them so)"
                ));
            }
            let started = plugin
                .instantiate_captured(
                    &exporter.name,
                    &sandbox,
                    Some(lines.clone()),
                    Some(responder.clone()),
                )
                .await;
            let mut instance = match started {
                Ok(instance) => instance,
                Err(e) => {
                    calls.push(format!("instantiate: {}", crate::error::chain(&e)));
                    return calls;
                }
            };
            let init = instance
                .init(&exporter.plugin_config, &exporter.name, &session_id)
                .await;
            if !outcome(&mut calls, "init".into(), init) {
                return calls;
            }
            for (n, batch) in resources_and_records.iter().enumerate() {
                let call = format!("export {} ({} records)", n + 1, batch.len());
                let result = instance.export(batch).await;
                let rejected = instance.take_rejected();
                if !outcome(&mut calls, call, result) {
                    return calls;
                }
                if let Some((count, reason)) = rejected {
                    calls.push(format!("  rejected {count}: {reason}"));
                }
            }
            let flushed = instance.flush().await;
            if outcome(&mut calls, "flush".into(), flushed) {
                let shut = instance.shutdown().await;
                outcome(&mut calls, "shutdown".into(), shut);
            }
            calls
        });
        drop(rt);
        let log = std::mem::take(&mut *lines.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Capture {
            calls,
            log,
            files: files_in(&dir).map_err(|source| Error::Io {
                what: format!("cannot read the sandbox directory {}", dir.display()),
                source,
            })?,
            requests: responder.take_exchanges(),
        })
    }

    /// The exporter to run, and the session id its `init` gets: the config's, or one with the
    /// defaults; either way with this run's plugin.
    fn exporter(&self) -> Result<(ExporterConfig, String), Error> {
        let config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::parse(
                "[exporters.test]\nplugin = \"file-jsonl\"\n",
                Path::new("(the default)"),
                Path::new("."),
            )?,
        };
        let session_id = config
            .session_id
            .clone()
            .unwrap_or_else(|| "fixture".to_string());
        let found = config.exporters.len();
        let (Some(mut exporter), 1) = (config.exporters.into_iter().next(), found) else {
            return Err(Error::NotOneExporter {
                config: self.config.clone().unwrap_or_default(),
                found,
            });
        };
        exporter.plugin = plugin::Source::named(&self.plugin);
        if self.config.is_none() {
            // Not file-jsonl's defaults: the plugin's own.
            exporter.plugin_config = "{}".into();
            exporter.sandbox = plugin::Sandbox::default();
        }
        Ok((exporter, session_id))
    }
}

/// Adds the line of a call that ended with `result`; whether the run goes on (not after a
/// fault, nor after `init` failed).
fn outcome(calls: &mut Vec<String>, call: String, result: Result<(), CallError>) -> bool {
    let goes_on = match &result {
        Ok(()) => true,
        Err(CallError::Fault(_)) => false,
        Err(_) => call != "init",
    };
    calls.push(match result {
        Ok(()) => format!("{call}: ok"),
        Err(e) => format!("{call}: {e}"),
    });
    goes_on
}

/// Every file under `dir`, by path relative to it; none if it does not exist. Links are not
/// followed: a symbolic link is recorded as a line that names its target, and what is neither a
/// link nor a regular file or directory (a FIFO, a socket) as a line that says so.
fn files_in(dir: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    if !dir.exists() {
        return Ok(files);
    }
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(at) = dirs.pop() {
        for entry in std::fs::read_dir(&at)? {
            let entry = entry?;
            let (path, kind) = (entry.path(), entry.file_type()?);
            if kind.is_dir() {
                dirs.push(path);
                continue;
            }
            let Ok(relative) = path.strip_prefix(dir) else {
                continue;
            };
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let bytes = if kind.is_file() {
                std::fs::read(&path)?
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path)?;
                format!("(a symbolic link to {})\n", target.display()).into_bytes()
            } else {
                b"(neither a file nor a directory)\n".to_vec()
            };
            files.insert(name, bytes);
        }
    }
    Ok(files)
}

/// The expected directory's text files besides `files/`.
const CALLS: &str = "calls.txt";
const LOG: &str = "log.txt";
const FILES: &str = "files";
/// The HTTP requests of a run, decoded where they are OTLP or JSON (only if there are any).
const REQUESTS: &str = "requests.txt";
/// What answers the plugin's HTTP requests, if an expected directory holds it (it is input, not
/// compared): `[[answer]]` tables, each `status` (default 200; for gRPC, 200 with
/// `grpc-status: 0`), `headers` (a table), `body` (text) and `delay_ms`. The requests get them in
/// order, and the last answers every request after it.
pub const RESPONSES: &str = "responses.toml";

/// A `responses.toml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    #[serde(default)]
    answer: Vec<ScriptAnswer>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptAnswer {
    #[serde(default)]
    status: u16,
    #[serde(default)]
    headers: indexmap::IndexMap<String, String>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    delay_ms: u64,
}

/// The answers of the `responses.toml` at `path`.
fn answers(path: &Path) -> Result<Vec<plugin::Answer>, Error> {
    let bad = |message: String| Error::Responses {
        file: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let script: Script = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    script
        .answer
        .into_iter()
        .enumerate()
        .map(|(n, a)| {
            if a.status != 0 && !(200..=599).contains(&a.status) {
                return Err(bad(format!(
                    "answer {}: status {} is not a final HTTP status (200 to 599)",
                    n + 1,
                    a.status
                )));
            }
            for (name, value) in &a.headers {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                    || http::HeaderValue::from_str(value).is_err()
                {
                    return Err(bad(format!(
                        "answer {}: `{name}: {value}` is not a valid HTTP header",
                        n + 1
                    )));
                }
            }
            Ok(plugin::Answer {
                status: a.status,
                headers: a.headers.into_iter().collect(),
                body: a.body.into_bytes(),
                delay: std::time::Duration::from_millis(a.delay_ms),
            })
        })
        .collect()
}

/// A request and its answer as lines of `requests.txt`: the request line, its headers, its body
/// (OTLP protobuf, gRPC-framed or not, shown as OTLP JSON; JSON shown indented; other text as
/// it is; gzip undone), then the answer.
fn request_lines(exchange: &plugin::Exchange, out: &mut Vec<String>) {
    out.push(format!("{} {}", exchange.method, exchange.uri));
    let header = |name: &str| {
        exchange
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    for (name, value) in &exchange.headers {
        if secret(name) {
            out.push(format!("  {name}: (not shown: {} bytes)", value.len()));
        } else {
            out.push(format!("  {name}: {value}"));
        }
    }
    let (shown, text) = body_text(
        &exchange.uri,
        header("content-type").unwrap_or_default(),
        header("content-encoding").or(header("grpc-encoding")),
        &exchange.body,
    );
    out.push(format!("  body: {} bytes{shown}", exchange.body.len()));
    out.extend(text.lines().map(|l| format!("    {l}")));
    out.push(match &exchange.outcome {
        plugin::Outcome::Answered(status, delay) => {
            format!("  answered {status} after {} ms", delay.as_millis())
        }
        plugin::Outcome::TimedOut => {
            "  not answered: the request's deadline passed first".to_string()
        }
        plugin::Outcome::Failed(why) => format!("  not answered: {why}"),
    });
}

/// Whether the header `name` (lowercase) carries a credential, not to be written into an
/// expected directory (which is usually committed).
fn secret(name: &str) -> bool {
    matches!(name, "authorization" | "proxy-authorization" | "cookie")
        || ["key", "token", "secret", "password", "auth"]
            .iter()
            .any(|w| name.contains(w))
}

/// The most a gzip body is decompressed to, to be shown.
const MAX_DECODED_BYTES: u64 = 64 << 20;

/// What a request body is (after its size, e.g. `, OTLP logs (protobuf, gzip) as OTLP JSON:`)
/// and its text.
fn body_text(
    uri: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: &[u8],
) -> (String, String) {
    use prost::Message as _;
    use std::io::Read as _;
    use wasmtel_sdk::otlp::{json, proto};

    let mut how = Vec::new();
    let mut bytes = body.to_vec();
    let grpc = content_type.starts_with("application/grpc");
    if grpc {
        // One message: a compressed flag, a big-endian length, the message.
        match bytes.get(..5) {
            Some(head) if head[1..5] == ((bytes.len() - 5) as u32).to_be_bytes() => {
                if head[0] == 1 {
                    how.push("gzip");
                }
                bytes.drain(..5);
            }
            _ => return (", not one gRPC message".into(), String::new()),
        }
    }
    if encoding == Some("gzip") && !(grpc && how.is_empty()) {
        let mut out = Vec::new();
        let gzip = flate2::read::GzDecoder::new(bytes.as_slice());
        match gzip.take(MAX_DECODED_BYTES + 1).read_to_end(&mut out) {
            Ok(_) if out.len() as u64 > MAX_DECODED_BYTES => {
                return (
                    format!(", gzip of more than {MAX_DECODED_BYTES} bytes: not shown"),
                    String::new(),
                );
            }
            Ok(_) => bytes = out,
            Err(e) => {
                return (
                    format!(", gzip that does not decompress: {e}"),
                    String::new(),
                );
            }
        }
        if !how.contains(&"gzip") {
            how.push("gzip");
        }
    }
    let path = uri.split('?').next().unwrap_or_default();
    // OTLP/HTTP's paths, and OTLP/gRPC's services.
    let signal = [
        ("logs", "logs"),
        ("traces", "trace"),
        ("metrics", "metrics"),
    ]
    .into_iter()
    .find(|(http, grpc)| {
        path.ends_with(&format!("/v1/{http}")) || path.contains(&format!(".{grpc}.v1."))
    })
    .map(|(signal, _)| signal);
    let protobuf = grpc || content_type.starts_with("application/x-protobuf");
    let pretty = |json: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(json)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
    };
    let how = if how.is_empty() {
        String::new()
    } else {
        format!(", {}", how.join(", "))
    };
    if let (true, Some(signal)) = (protobuf, signal) {
        let json = match signal {
            "logs" => proto::collector::logs::v1::ExportLogsServiceRequest::decode(&bytes[..])
                .map(|r| json::logs(&r)),
            "traces" => proto::collector::trace::v1::ExportTraceServiceRequest::decode(&bytes[..])
                .map(|r| json::traces(&r)),
            _ => proto::collector::metrics::v1::ExportMetricsServiceRequest::decode(&bytes[..])
                .map(|r| json::metrics(&r)),
        };
        return match json.map(|j| pretty(&j)) {
            Ok(Some(text)) => (
                format!(", OTLP {signal} (protobuf{how}), as OTLP JSON:"),
                text,
            ),
            Ok(None) | Err(_) => (
                format!(", protobuf{how} that does not decode as an OTLP {signal} request"),
                String::new(),
            ),
        };
    }
    if let Some(text) = pretty(&bytes) {
        return (format!(", JSON{how}:"), text);
    }
    match String::from_utf8(bytes) {
        Ok(text) if !text.is_empty() => (format!(", text{how}:"), text),
        Ok(_) => (String::new(), String::new()),
        Err(_) => (format!(", binary{how}"), String::new()),
    }
}

impl Capture {
    /// The capture as the files of an expected directory: `calls.txt`, `log.txt`, and each
    /// file under `files/`.
    fn expected_files(&self) -> BTreeMap<String, Vec<u8>> {
        let text = |lines: &[String]| {
            let mut text = lines.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            text.into_bytes()
        };
        let mut out = BTreeMap::from([
            (CALLS.to_string(), text(&self.calls)),
            (LOG.to_string(), text(&self.log)),
        ]);
        if !self.requests.is_empty() {
            let mut lines = Vec::new();
            for exchange in &self.requests {
                request_lines(exchange, &mut lines);
            }
            out.insert(REQUESTS.to_string(), text(&lines));
        }
        for (name, bytes) in &self.files {
            out.insert(format!("{FILES}/{name}"), bytes.clone());
        }
        out
    }

    /// Makes `dir` the expected directory of this capture: writes `calls.txt`, `log.txt` and
    /// `files/` afresh (what `files/` held is deleted; links are replaced, never followed).
    /// Refuses a directory that holds other things and no `calls.txt`: it is not an expected
    /// directory.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let holds = |name: &str| std::fs::symlink_metadata(dir.join(name)).is_ok();
        // A directory that holds only the answers to give is a new expected directory.
        let empty = std::fs::read_dir(dir)
            .map_or(true, |d| d.flatten().all(|e| e.file_name() == RESPONSES));
        if !empty && !holds(CALLS) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} holds other files and no {CALLS}: it is not an expected directory \
                     (name a new or empty one)",
                    dir.display()
                ),
            ));
        }
        match std::fs::symlink_metadata(dir.join(FILES)) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(dir.join(FILES))?,
            Ok(_) => std::fs::remove_file(dir.join(FILES))?,
            Err(_) => {}
        }
        if holds(REQUESTS) {
            std::fs::remove_file(dir.join(REQUESTS))?;
        }
        for (name, bytes) in &self.expected_files() {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if std::fs::symlink_metadata(&path).is_ok() {
                std::fs::remove_file(&path)?;
            }
            std::fs::write(path, bytes)?;
        }
        Ok(())
    }

    /// Compares this capture with the expected directory `dir`: `Ok` if every file is the same,
    /// else each difference.
    pub fn compare(&self, dir: &Path) -> Result<(), Mismatch> {
        let mut expected = files_in(dir).map_err(|e| {
            Mismatch(vec![format!(
                "cannot read the expected directory {}: {e} (write it with --update)",
                dir.display()
            )])
        })?;
        expected.remove(RESPONSES);
        let actual = self.expected_files();
        let mut differences = Vec::new();
        let names: std::collections::BTreeSet<&String> =
            expected.keys().chain(actual.keys()).collect();
        for name in names {
            let shown = dir.join(name).display().to_string();
            match (expected.get(name), actual.get(name)) {
                (Some(e), Some(a)) if e == a => {}
                (Some(e), Some(a)) => differences.push(difference(&shown, e, a)),
                (Some(_), None) => differences.push(format!("{shown}: expected, but not written")),
                (None, Some(_)) => differences.push(format!("{shown}: written, but not expected")),
                (None, None) => {}
            }
        }
        if differences.is_empty() {
            Ok(())
        } else {
            Err(Mismatch(differences))
        }
    }
}

/// How the file `name` differs: a unified diff of its lines, numbered as in the files, if both
/// are text; else their sizes.
fn difference(name: &str, expected: &[u8], actual: &[u8]) -> String {
    match (std::str::from_utf8(expected), std::str::from_utf8(actual)) {
        (Ok(e), Ok(a)) => {
            let diff = similar::TextDiff::from_lines(e, a);
            let first = diff
                .ops()
                .iter()
                .find(|op| op.tag() != similar::DiffTag::Equal)
                .map_or(1, |op| op.old_range().start + 1);
            format!(
                "{name}:{first}: differs (- expected, + actual)\n{}",
                diff.unified_diff()
                    .context_radius(2)
                    .header("expected", "actual")
            )
        }
        _ => format!(
            "{name}: differs (binary: {} bytes expected, {} written)",
            expected.len(),
            actual.len()
        ),
    }
}
