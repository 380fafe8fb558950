//! A real OTLP receiver on 127.0.0.1 for the tests: an HTTP/1.1 and HTTP/2 server (hyper), over
//! plain TCP or TLS (rustls, optionally requiring a client certificate), that keeps every request
//! it gets, counts its connections, and answers as scripted: the scripted answers first, in
//! order, then `200` (gRPC: status 0) with an empty body.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::net::TcpListener;
use wasmtel_sdk::otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use wasmtel_sdk::otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use wasmtel_sdk::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;

/// One request, as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// `POST`, ...
    pub method: String,
    /// The path (and query).
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its body, as sent.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
    /// The status it was answered with.
    pub answered: u16,
}

impl Received {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The message it carries: the body unzipped (`content-encoding: gzip`), or, for gRPC, the
    /// one message of its frame, unzipped if its flag says so.
    pub fn payload(&self) -> Vec<u8> {
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/grpc"))
        {
            assert!(self.body.len() >= 5, "a gRPC frame: {:?}", self.body);
            let len = u32::from_be_bytes(self.body[1..5].try_into().expect("4 bytes")) as usize;
            assert_eq!(self.body.len(), 5 + len, "one gRPC message");
            let message = &self.body[5..];
            return if self.body[0] == 1 {
                gunzip(message)
            } else {
                message.to_vec()
            };
        }
        if self.header("content-encoding") == Some("gzip") {
            return gunzip(&self.body);
        }
        self.body.clone()
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out)
        .expect("gzip data");
    out
}

/// How the receiver answers one request.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Trailers (gRPC's status goes there).
    pub trailers: Vec<(String, String)>,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Answer {
    /// An answer with `status` and a text body.
    pub fn status(status: u16, body: &str) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
            ..Answer::default()
        }
    }

    /// The answer with one more header.
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A gRPC answer with status `code` and `message`, no response message.
    pub fn grpc(code: u32, message: &str) -> Answer {
        Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/grpc".into())],
            trailers: vec![
                ("grpc-status".into(), code.to_string()),
                ("grpc-message".into(), message.into()),
            ],
            ..Answer::default()
        }
    }
}

/// TLS for the receiver: its certificate chain and key (PEM), and the CA whose client
/// certificates it requires, if it does.
pub struct ServerTls {
    /// The server's certificate, PEM.
    pub cert: String,
    /// Its private key, PEM.
    pub key: String,
    /// The CA (PEM) that must have signed a client's certificate; none: no client certificate.
    pub client_ca: Option<String>,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Received>>,
    connections: AtomicU64,
    handshakes_failed: AtomicU64,
    script: Mutex<VecDeque<Answer>>,
}

/// A running receiver; it stops when dropped.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// An address on 127.0.0.1 that refuses connections: held by the returned socket, bound but not
/// listening, so that nothing else takes it meanwhile (drop the socket, then
/// [`Receiver::start_at`] starts a receiver there).
pub fn refusing() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind on 127.0.0.1");
    let addr = socket.local_addr().expect("an address");
    (socket, addr)
}

impl Receiver {
    /// A receiver over plain TCP.
    pub fn start() -> Receiver {
        Receiver::start_with(None, "127.0.0.1:0".parse().expect("an address"))
    }

    /// A receiver over plain TCP at `addr` (where an earlier one was, say).
    pub fn start_at(addr: SocketAddr) -> Receiver {
        Receiver::start_with(None, addr)
    }

    /// A receiver over TLS.
    pub fn start_tls(tls: ServerTls) -> Receiver {
        Receiver::start_with(Some(tls), "127.0.0.1:0".parse().expect("an address"))
    }

    fn start_with(tls: Option<ServerTls>, addr: SocketAddr) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = runtime
            .block_on(TcpListener::bind(addr))
            .expect("listen on 127.0.0.1");
        let addr = listener.local_addr().expect("an address");
        let acceptor = tls.map(|tls| tokio_rustls::TlsAcceptor::from(Arc::new(server_config(tls))));
        let state = Arc::new(State::default());
        runtime.spawn(serve(listener, acceptor, state.clone()));
        Receiver {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    /// Answers the next requests with `answers`, in order (then the default again).
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.script.lock().expect("script").extend(answers);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().expect("requests").clone()
    }

    /// How many connections were accepted (TCP, before any TLS handshake).
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// How many TLS handshakes failed.
    pub fn handshakes_failed(&self) -> u64 {
        self.state.handshakes_failed.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` until `done` holds of the requests received; returns them.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let end = Instant::now() + limit;
        loop {
            let requests = self.requests();
            if done(&requests) || Instant::now() > end {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn server_config(tls: ServerTls) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(tls.cert.as_bytes())
        .collect::<Result<_, _>>()
        .expect("the server's certificate");
    let key = PrivateKeyDer::from_pem_slice(tls.key.as_bytes()).expect("the server's key");
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(cert.expect("the client CA")).expect("a CA");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("a client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .expect("the server's certificate and key");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

async fn serve(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let serving = state.clone();
            let service = hyper::service::service_fn(move |request| {
                let state = serving.clone();
                async move { Ok::<_, Infallible>(answer(&state, request).await) }
            });
            let server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match acceptor {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        let _ = server.serve_connection(TokioIo::new(stream), service).await;
                    }
                    Err(_) => {
                        state.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                    }
                },
                None => {
                    let _ = server.serve_connection(TokioIo::new(stream), service).await;
                }
            }
        });
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(state: &State, request: http::Request<Incoming>) -> http::Response<Body> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let grpc = parts
        .headers
        .get("content-type")
        .is_some_and(|c| c.as_bytes().starts_with(b"application/grpc"));
    let scripted = state.script.lock().expect("script").pop_front();
    let answer = scripted.unwrap_or_else(|| {
        if grpc {
            Answer {
                body: vec![0, 0, 0, 0, 0],
                ..Answer::grpc(0, "")
            }
        } else {
            Answer {
                status: 200,
                ..Answer::default()
            }
        }
    });
    state.requests.lock().expect("requests").push(Received {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string()),
        version: format!("{:?}", parts.version),
        headers: parts.headers,
        body,
        at: Instant::now(),
        answered: answer.status,
    });
    tokio::time::sleep(answer.delay).await;
    let mut response = http::Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    let mut trailers = http::HeaderMap::new();
    for (name, value) in &answer.trailers {
        trailers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("a trailer name"),
            value.parse().expect("a trailer value"),
        );
    }
    let body = Full::new(Bytes::from(answer.body));
    let body = if trailers.is_empty() {
        body.boxed()
    } else {
        body.with_trailers(async move { Some(Ok(trailers)) })
            .boxed()
    };
    response.body(body).expect("a response")
}

/// Certificates made for a test: a CA, a server certificate it signed for `localhost` and
/// `127.0.0.1`, and a client certificate it signed; all PEM.
pub struct TestPki {
    /// The CA's certificate.
    pub ca: String,
    /// The server's certificate.
    pub server_cert: String,
    /// The server's key.
    pub server_key: String,
    /// The client's certificate.
    pub client_cert: String,
    /// The client's key.
    pub client_key: String,
}

impl TestPki {
    /// Makes a fresh set.
    pub fn new() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("a key");
        let mut ca_params = CertificateParams::new(Vec::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wasmtel test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("the CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let signed = |names: Vec<String>| {
            let key = KeyPair::generate().expect("a key");
            let cert = CertificateParams::new(names)
                .expect("params")
                .signed_by(&key, &issuer)
                .expect("signed");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = signed(vec!["localhost".into(), "127.0.0.1".into()]);
        let (client_cert, client_key) = signed(vec!["wasmtel-client".into()]);
        TestPki {
            ca: ca_cert.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

/// What the requests carried: log records, spans and metrics, in the order sent.
#[derive(Default)]
pub struct Decoded {
    /// The logs requests.
    pub logs: Vec<ExportLogsServiceRequest>,
    /// The traces requests.
    pub traces: Vec<ExportTraceServiceRequest>,
    /// The metrics requests.
    pub metrics: Vec<ExportMetricsServiceRequest>,
}

impl Decoded {
    /// The requests to `paths` (logs, traces, metrics) decoded; a request to another path
    /// fails the test.
    pub fn of(requests: &[Received], paths: [&str; 3]) -> Decoded {
        let mut decoded = Decoded::default();
        for r in requests {
            let payload = r.payload();
            match r.path.as_str() {
                p if p == paths[0] => decoded.logs.push(
                    ExportLogsServiceRequest::decode(payload.as_slice()).expect("a logs request"),
                ),
                p if p == paths[1] => decoded.traces.push(
                    ExportTraceServiceRequest::decode(payload.as_slice())
                        .expect("a traces request"),
                ),
                p if p == paths[2] => decoded.metrics.push(
                    ExportMetricsServiceRequest::decode(payload.as_slice())
                        .expect("a metrics request"),
                ),
                other => panic!("a request to {other}"),
            }
        }
        decoded
    }

    /// How many log records, spans and metrics they carried.
    pub fn counts(&self) -> (usize, usize, usize) {
        let logs = self
            .logs
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        let spans = self
            .traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        let metrics = self
            .metrics
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .map(|s| s.metrics.len())
            .sum();
        (logs, spans, metrics)
    }
}

/// OTLP/HTTP's paths: logs, traces, metrics.
pub const HTTP_PATHS: [&str; 3] = ["/v1/logs", "/v1/traces", "/v1/metrics"];

/// OTLP/gRPC's paths: logs, traces, metrics.
pub const GRPC_PATHS: [&str; 3] = [
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
];
