//! A scripted stand-in for the hosts a plugin sends HTTP requests to, for fixture runs
//! (`crate::harness`): each request that `sandbox.allow_hosts` lets through is kept, whole, and
//! answered by the next answer of a script, after that answer's delay, without leaving the
//! process. The request's deadline holds as it would for a real host.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{Error, WasiBody};

/// How the responder answers one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// The status; 0 means 200. A 2xx to a gRPC request carries `grpc-status: 0` (OK) and
    /// gRPC's content type unless its headers set them.
    pub status: u16,
    /// Its headers, in order.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
    /// How long it waits before answering.
    pub delay: Duration,
}

/// The most of a request's body the responder keeps: past it, the request fails (the body is
/// too large to show).
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// One request the plugin sent, and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// `POST`, ...
    pub method: String,
    /// The URI as the plugin gave it.
    pub uri: String,
    /// Its headers, in order, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// Its body (empty if it could not be read whole).
    pub body: Vec<u8>,
    /// What became of it.
    pub outcome: Outcome,
}

/// What became of a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Answered with this status, after this delay.
    Answered(u16, Duration),
    /// The plugin's deadline for it passed before its answer.
    TimedOut,
    /// It failed before an answer: its body could not be read or passed [`MAX_BODY_BYTES`].
    Failed(String),
}

/// Answers requests with a script's answers, in order; the last one answers every request
/// after it, and without a script each request gets a plain success.
#[derive(Debug, Default)]
pub(crate) struct Responder {
    answers: Vec<Answer>,
    exchanges: Mutex<Vec<Exchange>>,
}

impl Responder {
    pub(crate) fn new(answers: Vec<Answer>) -> Responder {
        Responder {
            answers,
            exchanges: Mutex::default(),
        }
    }

    /// The requests so far, in the order they came; they are given away.
    pub(crate) fn take_exchanges(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.exchanges.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Keeps `exchange`; its place.
    fn record(&self, exchange: Exchange) -> usize {
        let mut exchanges = self.exchanges.lock().unwrap_or_else(|e| e.into_inner());
        exchanges.push(exchange);
        exchanges.len() - 1
    }

    /// Sets what became of the exchange at `at`.
    fn settle(&self, at: usize, outcome: Outcome) {
        if let Some(exchange) = self
            .exchanges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(at)
        {
            exchange.outcome = outcome;
        }
    }

    /// Reads `request` whole (up to [`MAX_BODY_BYTES`]), keeps it, and answers it.
    pub(super) async fn respond(
        &self,
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let (parts, body) = request.into_parts();
        let grpc = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let at = self.record(Exchange {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect(),
            body: Vec::new(),
            outcome: Outcome::TimedOut,
        });
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => {
                let why = format!("its body: {e}");
                self.settle(at, Outcome::Failed(why.clone()));
                return Err(Error::InternalError(Some(why)));
            }
        };
        if let Some(exchange) = self
            .exchanges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(at)
        {
            exchange.body = Vec::from(body);
        }
        let answer = self
            .answers
            .get(at)
            .or(self.answers.last())
            .cloned()
            .unwrap_or_default();
        tokio::time::sleep(answer.delay).await;
        let status = if answer.status == 0 {
            200
        } else {
            answer.status
        };
        let mut response = http::Response::builder().status(status);
        let set = |name: &str| {
            answer
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        // A gRPC success is a 2xx with `grpc-status: 0`, unless the script says otherwise.
        if grpc && (200..300).contains(&status) {
            if !set("content-type") {
                response = response.header(http::header::CONTENT_TYPE, "application/grpc");
            }
            if !set("grpc-status") {
                response = response.header("grpc-status", "0");
            }
        }
        for (name, value) in &answer.headers {
            response = response.header(name, value);
        }
        let body = Full::new(Bytes::from(answer.body))
            .map_err(|never| match never {})
            .boxed_unsync();
        match response.body(body) {
            Ok(response) => {
                self.settle(at, Outcome::Answered(status, answer.delay));
                Ok(response)
            }
            Err(e) => {
                let why = format!("a scripted answer: {e}");
                self.settle(at, Outcome::Failed(why.clone()));
                Err(Error::InternalError(Some(why)))
            }
        }
    }
}
