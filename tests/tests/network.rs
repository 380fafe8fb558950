//! Outbound network: a plugin reaches only the hosts its sandbox's `allow_hosts` lists, over
//! wasi:http; raw sockets are closed. A real HTTP server on 127.0.0.1 counts what arrives.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use wasmtel_tests::{ROGUE, assert_delivered_all, config, exporter, replay_fixture};

/// An HTTP server on 127.0.0.1 that answers 200 and counts requests, until dropped.
struct Server {
    port: u16,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("listen");
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let (requests, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (count, halt) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                if let Ok(Some(request)) = server.recv_timeout(std::time::Duration::from_millis(50))
                {
                    count.fetch_add(1, Ordering::Relaxed);
                    let _ = request.respond(tiny_http::Response::empty(200));
                }
            }
        });
        Server {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn rogue(name: &str, action: &str, target: &str, allow: &[String]) -> String {
    format!(
        "[exporters.{name}]\nplugin = {ROGUE:?}\nconfig = {{ action = {action:?}, path = {target:?} }}\n\
         sandbox = {{ allow_hosts = {allow:?} }}\nqueue = {{ max_retries = 0 }}\n"
    )
}

#[test]
fn http_reaches_only_allowed_hosts_and_raw_sockets_are_closed() {
    let server = Server::start();
    let target = format!("127.0.0.1:{}", server.port);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut text =
        "[telemetry]\nsession_id = \"net\"\n[exporters.healthy]\nplugin = \"file-jsonl\"\n"
            .to_string();
    text += &rogue("allowed", "http", &target, std::slice::from_ref(&target));
    text += &rogue("not_listed", "http", &target, &[]);
    text += &rogue("other_port", "http", &target, &["127.0.0.1:1".into()]);
    text += &rogue("raw_tcp", "tcp", &target, std::slice::from_ref(&target));
    let config = config(tmp.path(), &text);
    let summary = replay_fixture(config);
    let stats = |name: &str| exporter(&summary, name);

    let healthy = stats("healthy");
    assert_delivered_all(healthy, summary.records);

    let allowed = stats("allowed");
    assert_delivered_all(allowed, summary.records);
    assert_eq!(
        server.requests.load(Ordering::Relaxed),
        allowed.batches_ok,
        "one request per export call of the allowed plugin, and none from the others"
    );
    for name in ["not_listed", "other_port"] {
        let s = stats(name);
        assert_eq!((s.records_exported, s.faults), (0, 0), "{s}");
        assert!(
            s.last_error
                .as_deref()
                .unwrap_or_default()
                .contains("blocked: ErrorCode::HttpRequestDenied"),
            "{s}"
        );
    }
    let raw = stats("raw_tcp");
    assert_eq!(raw.records_exported, 0, "{raw}");
    assert!(
        raw.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("blocked:"),
        "{raw}"
    );
}
