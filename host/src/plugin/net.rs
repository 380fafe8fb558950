//! Outbound HTTP for plugins (`wasi:http`), refused for every host the exporter's
//! `sandbox.allow_hosts` does not list.

use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

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

impl WasiHttpHooks for AllowList {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_BUFFER_BYTES
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
        if !self.allows(&host, port) {
            tracing::warn!(target: "wasmtel::plugin", "refused an HTTP request to {host}:{port}: not in sandbox.allow_hosts");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
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
