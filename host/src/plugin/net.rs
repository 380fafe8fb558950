//! Outbound HTTP for plugins (`wasi:http`): refused for every host the exporter's
//! `sandbox.allow_hosts` does not list, else sent by the exporter's own [`Sender`], a pooled
//! HTTP/1.1 and HTTP/2 client with rustls, within its timeouts, concurrency and response size.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::bindings::Level;
use super::responder::Responder;
use super::stdio::PluginLog;
use crate::error::{causes, chain};
use crate::stats::{Limit, LimitCounts};

/// The most one outgoing body's buffer holds, so that bodies hold at most `sandbox.max_handles`
/// times this.
pub const BODY_BUFFER_BYTES: usize = 64 * 1024;

/// The hosts a plugin may send requests to. Each entry is `host` (any port) or `host:port`;
/// `*.example.com` matches every subdomain of example.com. Hosts compare case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    entries: Arc<[String]>,
}

impl AllowList {
    pub fn new(entries: &[String]) -> Self {
        AllowList {
            entries: entries.iter().map(|e| e.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether a request to `host` on `port` may go out.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.entries.iter().any(|entry| {
            let (pattern, entry_port) = split_port(entry);
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            match pattern.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.')),
                None => host == pattern,
            }
        })
    }
}

/// `host:port` into its parts; a bare host (or a bracketed IPv6 address) has no port.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

/// How the host sends an exporter's HTTP requests: TLS, timeouts and bounds. The default trusts
/// the platform's root certificates, and allows 10 s to connect, 10 s for a response, 8 requests
/// at once and 4 MiB per response body.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpOptions {
    /// Whom to trust, and who the host is to the server.
    pub tls: Tls,
    /// The longest a TCP connection takes to open.
    pub connect_timeout: Duration,
    /// The longest one request may take in all: waiting its turn, connecting (TLS included), the
    /// response's head and its body. A plugin may ask for less (not under 100 ms).
    pub request_timeout: Duration,
    /// Requests of the exporter's instances under way at once, at most; more wait their turn.
    pub max_concurrent: usize,
    /// The most bytes one response body may carry; past it, reading the body fails.
    pub max_response_bytes: u64,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            tls: Tls::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            max_concurrent: 8,
            max_response_bytes: 4 << 20,
        }
    }
}

/// The TLS side of [`HttpOptions`]: the platform's roots by default, or a CA certificate of the
/// config's (which then is the only one trusted), and a client certificate for mutual TLS. Files
/// are read and checked when made ([`Tls::from_files`]), so a bad one is a config error.
#[derive(Clone, Default)]
pub struct Tls {
    files: TlsFiles,
    /// The rustls config of these files; none: the platform's roots, no client certificate.
    config: Option<Arc<rustls::ClientConfig>>,
}

/// Where a [`Tls`] comes from, which is all it shows of itself (never a key).
#[derive(Clone, Debug, Default, PartialEq)]
struct TlsFiles {
    ca_certificate: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
    client_private_key: Option<PathBuf>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.files.fmt(f)
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files
    }
}

/// Why [`Tls::from_files`] failed: which of its files, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TlsError {
    /// Which setting: `ca_certificate`, `client_certificate` or `client_private_key`.
    pub key: &'static str,
    /// What is wrong, naming the file.
    pub message: String,
}

impl Tls {
    /// Reads and checks the PEM files: a CA certificate to trust (instead of the platform's
    /// roots), and a client certificate with its private key (both or neither).
    pub fn from_files(
        ca_certificate: Option<&Path>,
        client_certificate: Option<&Path>,
        client_private_key: Option<&Path>,
    ) -> Result<Tls, TlsError> {
        let files = TlsFiles {
            ca_certificate: ca_certificate.map(Path::to_path_buf),
            client_certificate: client_certificate.map(Path::to_path_buf),
            client_private_key: client_private_key.map(Path::to_path_buf),
        };
        if files == TlsFiles::default() {
            return Ok(Tls::default());
        }
        let roots = match ca_certificate {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certificates(path, "ca_certificate")? {
                    roots.add(cert).map_err(|e| TlsError {
                        key: "ca_certificate",
                        message: format!(
                            "{} holds a certificate rustls refuses: {e}",
                            path.display()
                        ),
                    })?;
                }
                Arc::new(roots)
            }
            None => platform_roots(),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots);
        let config = match (client_certificate, client_private_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = certificates(cert, "client_certificate")?;
                let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError {
                    key: "client_private_key",
                    message: format!("{}: no usable PEM private key: {e}", key.display()),
                })?;
                builder
                    .with_client_auth_cert(chain, private)
                    .map_err(|e| TlsError {
                        key: "client_private_key",
                        message: format!(
                            "{} does not go with the certificate in {}: {e}",
                            key.display(),
                            cert.display()
                        ),
                    })?
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(TlsError {
                    key: if client_certificate.is_some() {
                        "client_private_key"
                    } else {
                        "client_certificate"
                    },
                    message: "client_certificate and client_private_key go together: set both \
                              for mutual TLS, or neither"
                        .into(),
                });
            }
        };
        Ok(Tls {
            files,
            config: Some(Arc::new(config)),
        })
    }

    /// The rustls config, before a connector sets its ALPN protocols.
    fn client_config(&self) -> rustls::ClientConfig {
        static PLATFORM: OnceLock<rustls::ClientConfig> = OnceLock::new();
        match &self.config {
            Some(config) => (**config).clone(),
            None => PLATFORM
                .get_or_init(|| {
                    rustls::ClientConfig::builder_with_provider(provider())
                        .with_safe_default_protocol_versions()
                        .expect("ring supports the default protocol versions")
                        .with_root_certificates(platform_roots())
                        .with_no_client_auth()
                })
                .clone(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of the PEM file `path` (at least one).
fn certificates(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError { key, message };
    let text =
        std::fs::read(path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            err(format!(
                "{} is not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(err(format!(
            "{} holds no certificate (no `-----BEGIN CERTIFICATE-----` block)",
            path.display()
        )));
    }
    Ok(certs)
}

/// The platform's root certificates (read once), or, where it has none, Mozilla's.
fn platform_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::debug!(
                    "no root certificates found on this system ({:?}): trusting Mozilla's",
                    found.errors
                );
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(roots)
        })
        .clone()
}

type Pool = Client<HttpsConnector<HttpConnector<Lookups>>, WasiBody>;

/// The shortest wait a plugin may ask of a request: so that requests given up at once cannot
/// pile up work in the host (name lookups, connections) faster than it ends.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_millis(100);

/// An exporter's HTTP client, shared by its instances: the allow-list, and, made at its first
/// allowed request, a pool of connections (HTTP/1.1, or HTTP/2 where TLS negotiates it) and a
/// pool of HTTP/2 connections for gRPC (negotiated over TLS, prior knowledge over plain HTTP),
/// within the bounds of [`HttpOptions`].
pub(crate) struct Sender {
    allow: AllowList,
    /// What answers the requests instead of their hosts, in a fixture run.
    responder: Option<Arc<Responder>>,
    pools: OnceLock<(Pool, Pool)>,
    permits: Arc<Semaphore>,
    options: HttpOptions,
}

impl Sender {
    pub fn new(allow_hosts: &[String], options: &HttpOptions) -> Sender {
        Sender {
            allow: AllowList::new(allow_hosts),
            responder: None,
            pools: OnceLock::new(),
            permits: Arc::new(Semaphore::new(options.max_concurrent.max(1))),
            options: options.clone(),
        }
    }

    /// This sender, its allowed requests answered by `responder` and not sent.
    pub fn answered_by(mut self, responder: Option<Arc<Responder>>) -> Sender {
        self.responder = responder;
        self
    }

    /// The pool for ordinary requests, or for gRPC's.
    fn pool(&self, grpc: bool) -> &Pool {
        let (pool, grpc_pool) = self.pools.get_or_init(|| {
            let options = &self.options;
            let lookups = Lookups(Arc::new(Semaphore::new(options.max_concurrent.max(1))));
            let connector = || {
                let mut http = HttpConnector::new_with_resolver(lookups.clone());
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_connect_timeout(Some(options.connect_timeout));
                http
            };
            let tls = || {
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(options.tls.client_config())
                    .https_or_http()
            };
            let builder = || {
                let mut builder = Client::builder(TokioExecutor::new());
                builder
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new())
                    .pool_max_idle_per_host(options.max_concurrent.max(1));
                builder
            };
            (
                builder().build(tls().enable_all_versions().wrap_connector(connector())),
                builder()
                    .http2_only(true)
                    .build(tls().enable_http2().wrap_connector(connector())),
            )
        });
        if grpc { grpc_pool } else { pool }
    }
}

/// Name lookups for an exporter's connections, at most `http.max_concurrent` at once: a lookup
/// cannot be stopped, so it holds its place until it ends, even when its request was given up.
#[derive(Clone)]
struct Lookups(Arc<Semaphore>);

impl tower_service::Service<Name> for Lookups {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let places = self.0.clone();
        Box::pin(async move {
            let place = places
                .acquire_owned()
                .await
                .map_err(std::io::Error::other)?;
            let host = name.as_str().to_owned();
            tokio::task::spawn_blocking(move || {
                let _place = place;
                (host.as_str(), 0)
                    .to_socket_addrs()
                    .map(|found| found.collect::<Vec<_>>().into_iter())
            })
            .await
            .map_err(std::io::Error::other)?
        })
    }
}

/// What one instance's `wasi:http` requests go through: its exporter's [`Sender`]; what the
/// host has to say of them goes to the exporter's log, within the plugin's log rate.
pub(crate) struct Hooks {
    pub sender: Arc<Sender>,
    pub log: Arc<PluginLog>,
    pub passed: Arc<LimitCounts>,
}

type Response = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Hooks {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_BUFFER_BYTES
    }

    /// The pool sets `host` (HTTP/1.1) or `:authority` (HTTP/2) from the URI.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Response {
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_string();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !self.sender.allow.allows(&host, port) {
            self.passed.pass(Limit::Hosts);
            self.log.log(
                Level::Warn,
                &format!("refused an HTTP request to {host}:{port}: not in sandbox.allow_hosts"),
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let sender = self.sender.clone();
        let (log, passed) = (self.log.clone(), self.passed.clone());
        Box::new(async move {
            // One deadline for the whole request: its turn, connecting, the head and the body.
            let limit = options
                .and_then(|o| o.first_byte_timeout)
                .map_or(sender.options.request_timeout, |t| {
                    t.clamp(MIN_REQUEST_TIMEOUT, sender.options.request_timeout)
                });
            let deadline = tokio::time::Instant::now() + limit;
            if let Some(responder) = &sender.responder {
                return match tokio::time::timeout_at(deadline, responder.respond(request)).await {
                    Ok(answer) => answer.map(|response| {
                        let done = Box::new(async { Ok(()) });
                        (response, done as Box<dyn Future<Output = _> + Send>)
                    }),
                    Err(_) => Err(Error::HttpResponseTimeout),
                };
            }
            let grpc = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
            let send = async {
                let permit = sender
                    .permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let response = sender.pool(grpc).request(request).await;
                (permit, response)
            };
            let failed = |what: String| {
                log.log(
                    Level::Warn,
                    &format!("HTTP request to {host}:{port} failed: {what}"),
                );
            };
            let (permit, response) = match tokio::time::timeout_at(deadline, send).await {
                Ok((permit, Ok(response))) => (permit, response),
                Ok((_, Err(e))) => {
                    failed(chain(&e));
                    return Err(client_error(&e));
                }
                Err(_) => {
                    failed(format!("no response within {} ms", limit.as_millis()));
                    return Err(Error::HttpResponseTimeout);
                }
            };
            let (parts, body) = response.into_parts();
            let body = Bounded {
                body,
                left: sender.options.max_response_bytes,
                limit: sender.options.max_response_bytes,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                passed,
                _permit: permit,
            };
            Ok((
                http::Response::from_parts(parts, body.boxed_unsync()),
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// The `wasi:http` error code of a failed request, with the words of what failed where the code
/// alone would not say (TLS).
fn client_error(e: &hyper_util::client::legacy::Error) -> Error {
    let causes = causes(e);
    if let Some(tls) = causes
        .iter()
        .find_map(|c| c.downcast_ref::<rustls::Error>())
    {
        return Error::InternalError(Some(format!("TLS handshake failed: {tls}")));
    }
    for cause in &causes {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Error::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return Error::ConnectionTimeout,
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                    return Error::ConnectionTerminated;
                }
                _ => {}
            }
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>()
            && hyper.is_timeout()
        {
            return Error::ConnectionTimeout;
        }
    }
    Error::InternalError(Some(chain(e)))
}

/// A response body within the exporter's bounds: at most its bytes, read before its deadline;
/// it holds the request's place among the concurrent ones until read or dropped.
struct Bounded {
    body: hyper::body::Incoming,
    left: u64,
    limit: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    passed: Arc<LimitCounts>,
    _permit: OwnedSemaphorePermit,
}

impl hyper::body::Body for Bounded {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                if len > this.left {
                    this.passed.pass(Limit::ResponseBytes);
                    this.left = 0;
                    return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(this.limit)))));
                }
                this.left -= len;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::HttpResponseTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::AllowList;

    #[test]
    fn entries_match_host_port_and_subdomains() {
        let list = AllowList::new(&[
            "collector.example.com".into(),
            "127.0.0.1:4318".into(),
            "*.Statsig.com".into(),
            "[::1]:9000".into(),
        ]);
        assert!(list.allows("collector.example.com", 443));
        assert!(list.allows("COLLECTOR.example.com", 80));
        assert!(!list.allows("evil-collector.example.com", 443));
        assert!(list.allows("127.0.0.1", 4318));
        assert!(!list.allows("127.0.0.1", 4317));
        assert!(list.allows("api.statsig.com", 443));
        assert!(
            !list.allows("statsig.com", 443),
            "a wildcard is for subdomains"
        );
        assert!(!list.allows("notstatsig.com", 443));
        assert!(list.allows("[::1]", 9000));
        assert!(
            !AllowList::default().allows("localhost", 80),
            "nothing by default"
        );
    }
}
