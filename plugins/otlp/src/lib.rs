//! The `otlp` exporter: events as OTLP logs, spans as OTLP traces and metrics as OTLP metrics,
//! sent over OTLP/HTTP (protobuf or JSON) or OTLP/gRPC through `wasi:http`; the host decides
//! which hosts it may reach (`sandbox.allow_hosts`) and how (TLS, pooling, timeouts).
//!
//! Config (the exporter's `config` table):
//! - `endpoint`: the base URL. Over HTTP, `/v1/logs`, `/v1/traces` and `/v1/metrics` are added
//!   to its path; over gRPC, the services' paths. Default `http://localhost:4318`
//!   (`http://localhost:4317` for gRPC).
//! - `logs_endpoint`, `traces_endpoint`, `metrics_endpoint`: a signal's URL, used exactly as
//!   written over HTTP (over gRPC, the service path is still added).
//! - `protocol`: `http/protobuf` (default), `http/json` or `grpc`.
//! - `headers`: a table of headers sent with every request.
//! - `compression`: `none` (default) or `gzip`.
//! - `timeout_ms`: how long one request may take (default 10000).
//! - `skip_metrics`: metric names never sent.
//!
//! Outcomes follow the OTLP specification: HTTP 429, 502, 503 and 504, gRPC UNAVAILABLE,
//! CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, DATA_LOSS, RESOURCE_EXHAUSTED with retry
//! information, and failed connections are retryable (with the server's `Retry-After` or retry
//! delay); anything else is permanent, with the server's message. Rejected records of a partial
//! success are reported to the host, which counts them as dropped.

mod http;

use std::collections::BTreeMap;
use std::io::Write;

use prost::Message;
use serde::Deserialize;
use wasmtel_sdk::otlp::{Requests, json};
use wasmtel_sdk::{Batch, Context, Error, Exporter, log};

use http::{Reply, Url};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    endpoint: Option<String>,
    logs_endpoint: Option<String>,
    traces_endpoint: Option<String>,
    metrics_endpoint: Option<String>,
    #[serde(default)]
    protocol: Protocol,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    compression: Compression,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    skip_metrics: Vec<String>,
}

fn default_timeout_ms() -> u64 {
    10_000
}

#[derive(Deserialize, Clone, Copy, Default, PartialEq)]
enum Protocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
    #[serde(rename = "grpc")]
    Grpc,
}

#[derive(Deserialize, Clone, Copy, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Compression {
    #[default]
    None,
    Gzip,
}

/// One signal's destination.
struct Signal {
    /// `logs`, `traces` or `metrics`, for messages.
    name: &'static str,
    url: Url,
}

struct Otlp {
    protocol: Protocol,
    compression: Compression,
    headers: Vec<(String, Vec<u8>)>,
    timeout_ms: u64,
    skip_metrics: Vec<String>,
    logs: Signal,
    traces: Signal,
    metrics: Signal,
    /// The batch that failed with a retryable error, and what became of its signals then.
    retrying: Option<Retrying>,
    /// The last batch's requests, whose strings and vectors the next one reuses.
    requests: Requests,
}

/// A batch's signals sent so far: a batch sent again after a retryable error skips those done,
/// so a collector gets each record once.
#[derive(Clone, Default)]
struct Progress {
    /// Per signal (logs, traces, metrics): sent, or refused for good.
    done: [bool; 3],
    /// Whether any signal got through.
    delivered: bool,
    /// Records refused for good, and why.
    refused: u64,
    reasons: Vec<String>,
}

struct Retrying {
    /// The batch, by a hash of its bytes and its length.
    fingerprint: (u64, usize),
    progress: Progress,
}

fn fingerprint(batch: &Batch<'_>) -> (u64, usize) {
    use std::hash::Hasher;
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(batch.bytes());
    (hasher.finish(), batch.bytes().len())
}

impl Progress {
    /// Notes the outcome of signal `i`, `count` records; the first retryable error is kept.
    fn note(&mut self, i: usize, count: u64, result: Result<(), Error>, retry: &mut Option<Error>) {
        match result {
            Ok(()) => {
                self.done[i] = true;
                self.delivered = true;
            }
            Err(Error::Permanent(reason)) => {
                self.done[i] = true;
                self.refused += count;
                self.reasons.push(reason);
            }
            Err(e) => {
                retry.get_or_insert(e);
            }
        }
    }
}

impl Exporter for Otlp {
    fn init(config: &str, _context: &Context) -> Result<Self, Error> {
        let config: Config = wasmtel_sdk::parse_config(config)?;
        let base = config.endpoint.as_deref().unwrap_or(match config.protocol {
            Protocol::Grpc => "http://localhost:4317",
            _ => "http://localhost:4318",
        });
        let base = Url::parse(base).map_err(|e| Error::permanent(format!("endpoint: {e}")))?;
        let signal = |name: &'static str, own: &Option<String>, service: &str| {
            // Over gRPC, the service's path goes after the endpoint's origin (as tonic does).
            let url = match (own, config.protocol) {
                (Some(url), Protocol::Grpc) => Url::parse(url).map(|u| u.with_path(service)),
                (Some(url), _) => Url::parse(url),
                (None, Protocol::Grpc) => Ok(base.with_path(service)),
                (None, _) => Ok(base.join(&format!("v1/{name}"))),
            }
            .map_err(|e| Error::permanent(format!("{name}_endpoint: {e}")))?;
            Ok::<_, Error>(Signal { name, url })
        };
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        for (name, value) in &config.headers {
            let header = [(name.to_ascii_lowercase(), value.clone().into_bytes())];
            // The host refuses what it would refuse at every request: say so once, now.
            if let Err(e) = wasi::http::types::Fields::from_list(&header) {
                return Err(Error::permanent(format!(
                    "headers: `{name}` cannot be sent ({}): a header the host forbids \
                     (connection, host, ...), or an invalid name or value",
                    http::header_error(&e)
                )));
            }
            headers.extend(header);
        }
        let content_type: &[u8] = match config.protocol {
            Protocol::HttpProtobuf => b"application/x-protobuf",
            Protocol::HttpJson => b"application/json",
            Protocol::Grpc => b"application/grpc",
        };
        headers.push(("content-type".into(), content_type.to_vec()));
        headers.push((
            "user-agent".into(),
            concat!("wasmtel-otlp/", env!("CARGO_PKG_VERSION"))
                .as_bytes()
                .to_vec(),
        ));
        let gzip = config.compression == Compression::Gzip;
        match config.protocol {
            Protocol::Grpc => {
                headers.push(("te".into(), b"trailers".to_vec()));
                headers.push((
                    "grpc-timeout".into(),
                    format!("{}m", config.timeout_ms.min(99_999_999)).into_bytes(),
                ));
                if gzip {
                    headers.push(("grpc-encoding".into(), b"gzip".to_vec()));
                }
            }
            _ if gzip => headers.push(("content-encoding".into(), b"gzip".to_vec())),
            _ => {}
        }
        Ok(Otlp {
            protocol: config.protocol,
            compression: config.compression,
            headers,
            timeout_ms: config.timeout_ms,
            logs: signal(
                "logs",
                &config.logs_endpoint,
                "opentelemetry.proto.collector.logs.v1.LogsService/Export",
            )?,
            traces: signal(
                "traces",
                &config.traces_endpoint,
                "opentelemetry.proto.collector.trace.v1.TraceService/Export",
            )?,
            metrics: signal(
                "metrics",
                &config.metrics_endpoint,
                "opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            )?,
            skip_metrics: config.skip_metrics,
            retrying: None,
            requests: Requests::default(),
        })
    }

    /// Sends each signal of the batch in its own request. A signal refused for good does not
    /// stop the others: its records are reported rejected (all of them refused: a permanent
    /// error). A retryable failure fails the call, and the batch's next try skips the signals
    /// already done.
    fn export(&mut self, batch: &Batch<'_>) -> Result<(), Error> {
        let mut requests = std::mem::take(&mut self.requests);
        requests.fill(batch, |name| !self.skip_metrics.iter().any(|s| s == name));
        let outcome = self.send_all(batch, &requests);
        self.requests = requests;
        outcome
    }
}

impl Otlp {
    /// Sends the requests of `batch` (see [`Otlp::export`]).
    fn send_all(&mut self, batch: &Batch<'_>, requests: &Requests) -> Result<(), Error> {
        let mut progress = match self.retrying.take() {
            Some(r) if r.fingerprint == fingerprint(batch) => r.progress,
            _ => Progress::default(),
        };
        let mut retry = None;
        let [logs_count, spans_count, metrics_count] = requests.counts();
        if let Some(logs) = requests.logs().filter(|_| !progress.done[0]) {
            let result = self.send::<_, ExportLogsServiceResponse>(&self.logs, logs, json::logs);
            progress.note(0, logs_count, result, &mut retry);
        }
        if let Some(traces) = requests.traces().filter(|_| !progress.done[1]) {
            let result =
                self.send::<_, ExportTraceServiceResponse>(&self.traces, traces, json::traces);
            progress.note(1, spans_count, result, &mut retry);
        }
        if let Some(metrics) = requests.metrics().filter(|_| !progress.done[2]) {
            let result =
                self.send::<_, ExportMetricsServiceResponse>(&self.metrics, metrics, json::metrics);
            progress.note(2, metrics_count, result, &mut retry);
        }
        if let Some(error) = retry {
            self.retrying = Some(Retrying {
                fingerprint: fingerprint(batch),
                progress,
            });
            return Err(error);
        }
        if progress.refused > 0 {
            let reasons = progress.reasons.join("; ");
            if !progress.delivered {
                return Err(Error::permanent(reasons));
            }
            wasmtel_sdk::report::rejected(progress.refused, &reasons);
        }
        Ok(())
    }
}

use wasmtel_sdk::otlp::proto::collector::logs::v1::ExportLogsServiceResponse;
use wasmtel_sdk::otlp::proto::collector::metrics::v1::ExportMetricsServiceResponse;
use wasmtel_sdk::otlp::proto::collector::trace::v1::ExportTraceServiceResponse;

/// What a collector's answer may say of records it rejected.
trait PartialSuccess: Message + Default {
    /// How many records were rejected, and why.
    fn rejected(&self) -> Option<(i64, &str)>;
    /// The same, from OTLP/JSON.
    fn rejected_json(value: &serde_json::Value) -> Option<(i64, String)> {
        let partial = value.get("partialSuccess")?;
        let count = partial
            .as_object()?
            .iter()
            .find(|(k, _)| k.starts_with("rejected"))
            .and_then(|(_, v)| match v {
                serde_json::Value::String(s) => s.parse().ok(),
                v => v.as_i64(),
            })
            .unwrap_or(0);
        let message = partial
            .get("errorMessage")
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        Some((count, message.to_string()))
    }
}

impl PartialSuccess for ExportLogsServiceResponse {
    fn rejected(&self) -> Option<(i64, &str)> {
        let p = self.partial_success.as_ref()?;
        Some((p.rejected_log_records, &p.error_message))
    }
}

impl PartialSuccess for ExportTraceServiceResponse {
    fn rejected(&self) -> Option<(i64, &str)> {
        let p = self.partial_success.as_ref()?;
        Some((p.rejected_spans, &p.error_message))
    }
}

impl PartialSuccess for ExportMetricsServiceResponse {
    fn rejected(&self) -> Option<(i64, &str)> {
        let p = self.partial_success.as_ref()?;
        Some((p.rejected_data_points, &p.error_message))
    }
}

impl Otlp {
    /// Sends one request and reads the collector's answer.
    fn send<Q: Message, R: PartialSuccess>(
        &self,
        signal: &Signal,
        request: &Q,
        to_json: fn(&Q) -> Vec<u8>,
    ) -> Result<(), Error> {
        let payload = match self.protocol {
            Protocol::HttpJson => to_json(request),
            _ => request.encode_to_vec(),
        };
        let gzip = self.compression == Compression::Gzip;
        let payload = if gzip { gzipped(&payload) } else { payload };
        let body = match self.protocol {
            Protocol::Grpc => grpc_frame(gzip, &payload),
            _ => payload,
        };
        let what = format!("{} to {}", signal.name, signal.url);
        let reply =
            http::post(&signal.url, &self.headers, &body, self.timeout_ms).map_err(|f| {
                let message = format!("{what}: {f}");
                if f.retryable() {
                    Error::retryable(message, None)
                } else {
                    Error::permanent(message)
                }
            })?;
        if let Some(why) = &reply.unread {
            log::warn(&format!(
                "{what}: HTTP {}, but the answer could not be read to its end: {why}",
                reply.status
            ));
        }
        let rejected = match self.protocol {
            Protocol::Grpc => grpc_outcome::<R>(&what, &reply)?,
            Protocol::HttpJson | Protocol::HttpProtobuf => {
                http_outcome(&what, &reply)?;
                if self.protocol == Protocol::HttpJson {
                    serde_json::from_slice(&reply.body)
                        .ok()
                        .and_then(|v| R::rejected_json(&v))
                } else {
                    R::decode(reply.body.as_slice())
                        .ok()
                        .and_then(|r| r.rejected().map(|(n, m)| (n, m.to_string())))
                }
            }
        };
        if let Some((count, message)) = rejected.filter(|(n, m)| *n > 0 || !m.is_empty()) {
            let reason = format!("{what}: the collector rejected {count} of them: {message}");
            if count > 0 {
                wasmtel_sdk::report::rejected(u64::try_from(count).unwrap_or(0), &reason);
            } else {
                log::warn(&reason);
            }
        }
        Ok(())
    }
}

/// `payload` compressed with gzip.
fn gzipped(payload: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(payload.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(payload).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// A gRPC message: its compressed flag, its length (big-endian), then the message.
fn grpc_frame(compressed: bool, message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(u8::from(compressed));
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// The outcome of an OTLP/HTTP answer.
fn http_outcome(what: &str, reply: &Reply) -> Result<(), Error> {
    let status = reply.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = server_message(reply);
    let message = format!(
        "{what}: HTTP {status}{}{message}",
        if message.is_empty() { "" } else { ": " }
    );
    match status {
        429 | 502 | 503 | 504 => Err(Error::retryable(message, retry_after_ms(reply))),
        _ => Err(Error::permanent(message)),
    }
}

/// What an error answer says: a `google.rpc.Status` message (protobuf), a JSON object's
/// `message`, or its text; at most 512 bytes of it.
fn server_message(reply: &Reply) -> String {
    let content_type = reply.field("content-type").unwrap_or_default();
    let message = if content_type.contains("protobuf") {
        Status::decode(reply.body.as_slice())
            .map(|s| s.message)
            .unwrap_or_default()
    } else if content_type.contains("json") {
        serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned())
    } else {
        String::from_utf8_lossy(&reply.body).into_owned()
    };
    cut(message.trim(), 512)
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// `Retry-After` in seconds, as milliseconds (an HTTP date is left to the host's backoff).
fn retry_after_ms(reply: &Reply) -> Option<u64> {
    let seconds: u64 = reply.field("retry-after")?.trim().parse().ok()?;
    Some(seconds.saturating_mul(1000))
}

/// The outcome of an OTLP/gRPC answer, and the partial success it reports.
fn grpc_outcome<R: PartialSuccess>(
    what: &str,
    reply: &Reply,
) -> Result<Option<(i64, String)>, Error> {
    if reply.status != 200 {
        // 429, 502, 503, 504 are worth another try, as over HTTP.
        http_outcome(what, reply)?;
        return Err(Error::permanent(format!(
            "{what}: HTTP {} instead of a gRPC answer",
            reply.status
        )));
    }
    // No status: gRPC's UNKNOWN, which is not worth another try.
    let Some(code) = reply
        .field("grpc-status")
        .and_then(|c| c.trim().parse::<u32>().ok())
    else {
        return Err(Error::permanent(format!(
            "{what}: gRPC status UNKNOWN: the answer has no grpc-status"
        )));
    };
    if code == 0 {
        let message = reply.body.get(5..).unwrap_or_default();
        let compressed = reply.body.first() == Some(&1);
        let decoded = if compressed {
            // An answer is a few bytes: read at most 1 MiB of what it unzips to.
            let mut out = Vec::new();
            let unzipped = std::io::Read::take(flate2::read::GzDecoder::new(message), 1 << 20);
            std::io::Read::read_to_end(&mut { unzipped }, &mut out)
                .ok()
                .map(|_| out)
        } else {
            Some(message.to_vec())
        };
        return Ok(decoded
            .and_then(|m| R::decode(m.as_slice()).ok())
            .and_then(|r| r.rejected().map(|(n, m)| (n, m.to_string()))));
    }
    let message = percent_decoded(reply.field("grpc-message").unwrap_or_default());
    let details = reply
        .field("grpc-status-details-bin")
        .and_then(|d| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(d.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| Status::decode(bytes.as_slice()).ok());
    let retry_delay = details.as_ref().and_then(Status::retry_delay_ms);
    let text = format!(
        "{what}: gRPC status {} ({code}): {message}",
        grpc_code_name(code)
    );
    match code {
        // CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS.
        1 | 4 | 10 | 11 | 14 | 15 => Err(Error::retryable(text, retry_delay)),
        // RESOURCE_EXHAUSTED: only when the server says when to come back.
        8 if retry_delay.is_some() => Err(Error::retryable(text, retry_delay)),
        _ => Err(Error::permanent(text)),
    }
}

fn grpc_code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|c| NAMES.get(c))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// `grpc-message` decoded (it is percent-encoded).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `google.rpc.Status`: what a failed OTLP request says (in an HTTP body, or gRPC's
/// `grpc-status-details-bin`).
#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<Duration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
struct Duration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

impl Status {
    /// The delay of its `RetryInfo` detail, if it has one.
    fn retry_delay_ms(&self) -> Option<u64> {
        let info = self
            .details
            .iter()
            .find(|d| d.type_url.ends_with("/google.rpc.RetryInfo"))?;
        let delay = RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
        let ms = (delay.seconds.max(0) as u64)
            .saturating_mul(1000)
            .saturating_add(delay.nanos.max(0) as u64 / 1_000_000);
        Some(ms)
    }
}

wasmtel_sdk::export!(Otlp);
