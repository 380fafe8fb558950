//! A scripted stand-in for the hosts a plugin sends HTTP requests to, for fixture runs
//! (`crate::harness`): each request that `sandbox.allow_hosts` lets through is kept, whole, and
//! answered by the next answer of a script, after that answer's delay, without leaving the
//! process. The request's deadline holds as it would for a real host.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, WasiBody};

/// How the responder answers one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// The status; 0 means 200, or for a gRPC request, 200 with `grpc-status: 0` (OK).
    pub status: u16,
    /// Its headers, in order.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
    /// How long it waits before answering.
    pub delay: Duration,
}

/// One request the plugin sent, and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// `POST`, ...
    pub method: String,
    /// The URI as the plugin gave it.
    pub uri: String,
    /// Its headers, in order, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
    /// The status it was answered with, and after how long; none if the plugin's deadline for
    /// it passed first.
    pub answered: Option<(u16, Duration)>,
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

    /// The requests so far, in the order they came.
    pub(crate) fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads `request` whole, keeps it, and answers it.
    pub(super) async fn respond(
        &self,
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await?.to_bytes();
        let grpc = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let at = {
            let mut exchanges = self.exchanges.lock().unwrap_or_else(|e| e.into_inner());
            exchanges.push(Exchange {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                    .collect(),
                body: body.to_vec(),
                answered: None,
            });
            exchanges.len() - 1
        };
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
        if grpc && answer.status == 0 && answer.headers.is_empty() {
            response = response
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header("grpc-status", "0");
        }
        for (name, value) in &answer.headers {
            response = response.header(name, value);
        }
        let body = Full::new(Bytes::from(answer.body))
            .map_err(|never| match never {})
            .boxed_unsync();
        let response = response
            .body(body)
            .map_err(|e| Error::InternalError(Some(format!("a scripted answer: {e}"))))?;
        if let Some(exchange) = self
            .exchanges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(at)
        {
            exchange.answered = Some((status, answer.delay));
        }
        Ok(response)
    }
}
