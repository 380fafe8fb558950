//! One HTTP request through `wasi:http`: the host decides whether it may leave, and sends it.

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

/// Where a request goes: an `http://` or `https://` URL, split.
#[derive(Clone, Debug, PartialEq)]
pub struct Url {
    https: bool,
    authority: String,
    path: String,
}

impl Url {
    /// `url` split, or why it is not an `http(s)://host[:port][/path]` URL.
    pub fn parse(url: &str) -> Result<Url, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("`{url}` is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("`{url}` has no host (or has user info)"));
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Url {
            https,
            authority: authority.to_string(),
            path,
        })
    }

    /// This URL's origin with `path` (the service path of gRPC).
    pub fn with_path(&self, path: &str) -> Url {
        Url {
            path: format!("/{}", path.trim_start_matches('/')),
            ..self.clone()
        }
    }

    /// This URL with `suffix` added to its path (one `/` between them).
    pub fn join(&self, suffix: &str) -> Url {
        let base = self.path.trim_end_matches('/');
        Url {
            path: format!("{base}/{}", suffix.trim_start_matches('/')),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Url {
    /// The URL without its query, which may hold a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let path = match self.path.split_once('?') {
            Some((path, _)) => format!("{path}?…"),
            None => self.path.clone(),
        };
        write!(f, "{scheme}://{}{path}", self.authority)
    }
}

/// Why a header cannot be sent, in words.
pub fn header_error(e: &wasi::http::types::HeaderError) -> &'static str {
    match e {
        wasi::http::types::HeaderError::Forbidden => "forbidden",
        wasi::http::types::HeaderError::InvalidSyntax => "invalid",
        wasi::http::types::HeaderError::Immutable => "immutable",
    }
}

/// What came back.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, Vec<u8>)>,
    /// Why the body (or its trailers) could not be read to its end, if it could not: the status
    /// stands, the body is what was read.
    pub unread: Option<String>,
}

impl Reply {
    /// The first value of header (or, failing that, trailer) `name`, as text.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .chain(&self.trailers)
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Why no reply came: the request was refused, or the connection failed.
#[derive(Debug)]
pub struct Failed(pub ErrorCode);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            ErrorCode::HttpRequestDenied => f.write_str(
                "refused by the host: the endpoint's host is not in the exporter's sandbox.allow_hosts",
            ),
            ErrorCode::InternalError(Some(message)) => f.write_str(message),
            ErrorCode::ConnectionRefused => f.write_str("connection refused"),
            ErrorCode::ConnectionTimeout => f.write_str("connection timed out"),
            ErrorCode::HttpResponseTimeout | ErrorCode::ConnectionReadTimeout => {
                f.write_str("no response in time")
            }
            other => write!(f, "{other:?}"),
        }
    }
}

impl Failed {
    /// Whether sending again may help: not when the host refuses the request, the server's
    /// certificate (or this client's) is refused (the host's message starts `TLS `).
    pub fn retryable(&self) -> bool {
        match &self.0 {
            ErrorCode::HttpRequestDenied
            | ErrorCode::HttpRequestUriInvalid
            | ErrorCode::TlsCertificateError
            | ErrorCode::TlsAlertReceived(_) => false,
            ErrorCode::InternalError(Some(message)) => !message.starts_with("TLS "),
            _ => true,
        }
    }
}

/// Sends `POST url` with `headers` and `body`, waiting at most `timeout_ms` for the reply.
pub fn post(
    url: &Url,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    timeout_ms: u64,
) -> Result<Reply, Failed> {
    let internal = |what: &str| Failed(ErrorCode::InternalError(Some(what.to_string())));
    let fields = Fields::from_list(headers)
        .map_err(|e| internal(&format!("headers: {}", header_error(&e))))?;
    let request = OutgoingRequest::new(fields);
    let _ = request.set_method(&Method::Post);
    let _ = request.set_scheme(Some(if url.https {
        &Scheme::Https
    } else {
        &Scheme::Http
    }));
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| Failed(ErrorCode::HttpRequestUriInvalid))?;
    request
        .set_path_with_query(Some(&url.path))
        .map_err(|()| Failed(ErrorCode::HttpRequestUriInvalid))?;
    let outgoing = request.body().map_err(|()| internal("no request body"))?;
    let options = RequestOptions::new();
    let nanos = timeout_ms.saturating_mul(1_000_000);
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));
    let pending = outgoing_handler::handle(request, Some(options)).map_err(Failed)?;
    // The request is under way: its body streams out as it is written.
    {
        let stream = outgoing.write().map_err(|()| internal("no body stream"))?;
        let mut rest = body;
        while !rest.is_empty() {
            let room = match stream.check_write() {
                Ok(0) => {
                    stream.subscribe().block();
                    continue;
                }
                Ok(room) => room,
                Err(e) => return Err(sent_error(e, &pending)),
            };
            let n = rest.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            stream
                .write(&rest[..n])
                .map_err(|e| sent_error(e, &pending))?;
            rest = &rest[n..];
        }
        stream
            .blocking_flush()
            .map_err(|e| sent_error(e, &pending))?;
    }
    OutgoingBody::finish(outgoing, None).map_err(Failed)?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(Failed(code)),
        Some(Err(())) | None => return Err(internal("the response was taken twice")),
    };
    let status = response.status();
    let headers = response.headers().entries();
    let incoming = response
        .consume()
        .map_err(|()| internal("no response body"))?;
    let mut body = Vec::new();
    let mut unread = None;
    {
        let stream = incoming
            .stream()
            .map_err(|()| internal("no response body stream"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    unread = Some(e.to_debug_string());
                    break;
                }
            }
        }
    }
    let mut trailers = Vec::new();
    if unread.is_none() {
        let future = IncomingBody::finish(incoming);
        future.subscribe().block();
        match future.get() {
            Some(Ok(Ok(Some(fields)))) => trailers = fields.entries(),
            Some(Ok(Err(code))) => unread = Some(format!("{code:?}")),
            Some(Ok(Ok(None))) | Some(Err(())) | None => {}
        }
    }
    Ok(Reply {
        status,
        headers,
        body,
        trailers,
        unread,
    })
}

/// Why writing the body failed: the request's own error if it has one by now.
fn sent_error(e: StreamError, pending: &outgoing_handler::FutureIncomingResponse) -> Failed {
    pending.subscribe().block();
    if let Some(Ok(Err(code))) = pending.get() {
        return Failed(code);
    }
    Failed(ErrorCode::InternalError(Some(match e {
        StreamError::Closed => "the connection closed while sending".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    })))
}
