//! The built-in `otlp` exporter against a real receiver on 127.0.0.1 (HTTP/1.1 and HTTP/2, plain
//! and TLS): what arrives decodes to the fixture, over OTLP/HTTP protobuf and JSON and OTLP/gRPC;
//! connections are reused; TLS trusts the configured CA and presents the client certificate;
//! answers are honoured as the OTLP specification says.

use std::time::Duration;

use prost::Message;
use wasmtel_tests::receiver::{
    Answer, Decoded, GRPC_PATHS, HTTP_PATHS, Received, Receiver, ServerTls, TestPki, refusing,
};
use wasmtel_tests::{config, error_of, exporter, replay_fixture};

/// The fixture's events, spans and metric records.
const EVENTS: usize = 444;
const SPANS: usize = 124;
const METRICS: usize = 15;

/// Replays the fixture into one `otlp` exporter whose exporter table (below its name) is
/// `table`; returns its counters.
fn replay(dir: &std::path::Path, table: &str) -> wasmtel::ExporterStats {
    let text = format!(
        "[telemetry]\nsession_id = \"otlp\"\n[exporters.collector]\nplugin = \"otlp\"\n{table}\n"
    );
    let summary = replay_fixture(config(dir, &text));
    exporter(&summary, "collector").clone()
}

#[test]
fn http_protobuf_carries_every_record_over_few_connections() {
    let receiver = Receiver::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let stats = replay(
        tmp.path(),
        &format!(
            "config = {{ endpoint = \"http://{}\", headers = {{ x-tenant = \"t1\" }} }}\nqueue = {{ max_batch = 32 }}",
            receiver.addr
        ),
    );
    assert_eq!(
        (stats.records_exported, stats.dropped()),
        ((EVENTS + SPANS + METRICS) as u64, 0),
        "{stats}"
    );
    let requests = receiver.requests();
    let decoded = Decoded::of(&requests, HTTP_PATHS);
    assert_eq!(decoded.counts(), (EVENTS, SPANS, METRICS));
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(
            r.header("x-tenant"),
            Some("t1"),
            "configured headers are sent"
        );
    }
    // The first event, as the fixture has it.
    let first = &decoded.logs[0].resource_logs[0];
    let resource = first.resource.as_ref().expect("a resource");
    assert!(
        resource
            .attributes
            .iter()
            .any(|kv| kv.key == "service.name"),
        "the resource is kept"
    );
    let scope = &first.scope_logs[0];
    assert_eq!(
        scope
            .scope
            .as_ref()
            .map(|s| (s.name.as_str(), s.version.as_str())),
        Some(("codex_otel", "0.144.0")),
        "the scope, with its version"
    );
    let event = &scope.log_records[0];
    assert_eq!(event.event_name, "codex.conversation_starts");
    assert_eq!(event.time_unix_nano, 1_795_165_200_000_000_000);
    assert_eq!(event.severity_number, 9);
    assert_eq!(
        event.trace_id,
        [
            0x0d, 0x83, 0xb3, 0xe2, 0x9a, 0x21, 0x48, 0x7a, 0x54, 0xc4, 0x4c, 0x79, 0xf1, 0xfe,
            0x9d, 0x67
        ]
    );
    // Many requests, few connections: the host's pool keeps them open.
    assert!(requests.len() >= 20, "{} requests", requests.len());
    assert!(
        receiver.connections() <= 2,
        "{} connections for {} requests",
        receiver.connections(),
        requests.len()
    );
}

#[test]
fn http_json_with_gzip_follows_the_otlp_json_mapping() {
    let receiver = Receiver::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let stats = replay(
        tmp.path(),
        &format!(
            "config = {{ endpoint = \"http://{}/otlp/\", protocol = \"http/json\", compression = \"gzip\" }}",
            receiver.addr
        ),
    );
    assert_eq!(stats.dropped(), 0, "{stats}");
    let requests = receiver.requests();
    let mut counts = (0, 0, 0);
    for r in &requests {
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        let json: serde_json::Value = serde_json::from_slice(&r.payload()).expect("JSON");
        let items = |resources: &str, scopes: &str, items: &str| -> Vec<serde_json::Value> {
            json[resources]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r[scopes].as_array().cloned().unwrap_or_default())
                .flat_map(|s| s[items].as_array().cloned().unwrap_or_default())
                .collect()
        };
        match r.path.as_str() {
            "/otlp/v1/logs" => {
                let logs = items("resourceLogs", "scopeLogs", "logRecords");
                let first = &logs[0];
                assert!(
                    first["timeUnixNano"].is_string(),
                    "int64s are strings: {first}"
                );
                let trace_id = first["traceId"].as_str().expect("a hex trace id");
                assert_eq!(trace_id.len(), 32);
                assert!(
                    trace_id
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                );
                assert!(first["severityNumber"].is_number(), "enums are numbers");
                counts.0 += logs.len();
            }
            "/otlp/v1/traces" => {
                let spans = items("resourceSpans", "scopeSpans", "spans");
                assert!(spans[0]["spanId"].as_str().is_some_and(|s| s.len() == 16));
                counts.1 += spans.len();
            }
            "/otlp/v1/metrics" => {
                let metrics = items("resourceMetrics", "scopeMetrics", "metrics");
                for m in &metrics {
                    if let Some(points) = m["sum"]["dataPoints"].as_array() {
                        for p in points {
                            assert!(
                                p.get("asInt").is_none_or(serde_json::Value::is_string),
                                "asInt is a string: {p}"
                            );
                        }
                    }
                    if let Some(points) = m["histogram"]["dataPoints"].as_array() {
                        assert!(points[0]["count"].is_string(), "{m}");
                        assert!(points[0]["bucketCounts"][0].is_string(), "{m}");
                    }
                }
                counts.2 += metrics.len();
            }
            other => panic!("a request to {other}"),
        }
    }
    assert_eq!(counts, (EVENTS, SPANS, METRICS));
}

#[test]
fn grpc_goes_over_http2_with_prior_knowledge() {
    let receiver = Receiver::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let stats = replay(
        tmp.path(),
        &format!(
            "config = {{ endpoint = \"http://{}\", protocol = \"grpc\", compression = \"gzip\" }}\nqueue = {{ max_batch = 64 }}",
            receiver.addr
        ),
    );
    assert_eq!(stats.dropped(), 0, "{stats}");
    let requests = receiver.requests();
    for r in &requests {
        assert_eq!(r.version, "HTTP/2.0");
        assert_eq!(r.header("content-type"), Some("application/grpc"));
        assert_eq!(r.header("te"), Some("trailers"));
    }
    let decoded = Decoded::of(&requests, GRPC_PATHS);
    assert_eq!(decoded.counts(), (EVENTS, SPANS, METRICS));
    assert_eq!(
        receiver.connections(),
        1,
        "one HTTP/2 connection carries them all"
    );
}

#[test]
fn tls_trusts_the_configured_ca_and_presents_the_client_certificate() {
    let pki = TestPki::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, text: &str| {
        std::fs::write(tmp.path().join(name), text).expect("write");
    };
    file("ca.pem", &pki.ca);
    file("client.pem", &pki.client_cert);
    file("client-key.pem", &pki.client_key);
    let receiver = Receiver::start_tls(ServerTls {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: Some(pki.ca.clone()),
    });
    let endpoint = format!("https://localhost:{}", receiver.addr.port());

    // The CA and the client certificate: everything arrives, over HTTP/2 (ALPN) for gRPC and
    // HTTP/1.1 or 2 for HTTP.
    for protocol in ["http/protobuf", "grpc"] {
        let stats = replay(
            tmp.path(),
            &format!(
                "config = {{ endpoint = {endpoint:?}, protocol = {protocol:?} }}\n\
                 http = {{ ca_certificate = \"ca.pem\", client_certificate = \"client.pem\", \
                 client_private_key = \"client-key.pem\" }}"
            ),
        );
        assert_eq!(stats.dropped(), 0, "{protocol}: {stats}");
    }
    let paths = |requests: &[Received]| {
        requests
            .iter()
            .filter(|r| r.path.contains("Export"))
            .count()
    };
    assert!(paths(&receiver.requests()) >= 3, "gRPC requests arrived");

    // Without the client certificate, the receiver refuses the handshake.
    let before = receiver.requests().len();
    let stats = replay(
        tmp.path(),
        &format!(
            "config = {{ endpoint = {endpoint:?} }}\nhttp = {{ ca_certificate = \"ca.pem\" }}\nqueue = {{ max_retries = 0 }}"
        ),
    );
    assert_eq!(stats.records_exported, 0, "{stats}");
    assert_eq!(receiver.requests().len(), before, "nothing got through");
    assert!(
        receiver.handshakes_failed() > 0,
        "the receiver refused the handshake: {stats}"
    );

    // Without the CA, the host refuses the server's certificate, and says so.
    let stats = replay(
        tmp.path(),
        &format!("config = {{ endpoint = {endpoint:?} }}\nqueue = {{ max_retries = 0 }}"),
    );
    assert_eq!(stats.records_exported, 0, "{stats}");
    let error = error_of(&stats);
    assert!(
        error.contains("TLS") && error.contains("certificate"),
        "a clear TLS error: {error}"
    );
}

#[test]
fn a_bad_certificate_file_is_a_config_error_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("junk.pem"), "not a certificate").expect("write");
    for (key, file, expected) in [
        ("ca_certificate", "missing.pem", "cannot read"),
        ("ca_certificate", "junk.pem", "holds no certificate"),
        ("client_certificate", "junk.pem", "client_private_key"),
    ] {
        let path = tmp.path().join("config.toml");
        std::fs::write(
            &path,
            format!("[exporters.collector]\nplugin = \"otlp\"\nhttp = {{ {key} = \"{file}\" }}\n"),
        )
        .expect("write");
        let error = wasmtel::Config::from_file(&path)
            .expect_err("a bad PEM file")
            .to_string();
        assert!(
            error.contains(expected) && error.contains("config.toml"),
            "{key} = {file}: {error}"
        );
        if expected != "client_private_key" {
            assert!(error.contains(file) && error.contains(key), "{error}");
        }
    }
}

#[test]
fn retry_after_is_honoured_and_nothing_is_lost() {
    let receiver = Receiver::start();
    receiver.script([Answer::status(503, "busy").header("retry-after", "2")]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let stats = replay(
        tmp.path(),
        &format!(
            "config = {{ endpoint = \"http://{}\" }}\nsignals = [\"events\"]",
            receiver.addr
        ),
    );
    assert_eq!(
        (stats.records_exported, stats.dropped()),
        (EVENTS as u64, 0),
        "{stats}"
    );
    let requests = receiver.requests();
    assert!(requests.len() >= 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "the second try waited for Retry-After: {waited:?}"
    );
    assert_eq!(
        requests[0].body, requests[1].body,
        "the same batch was sent again"
    );
    let decoded = Decoded::of(&requests[1..], HTTP_PATHS);
    assert_eq!(decoded.counts().0, EVENTS);
}

#[test]
fn a_bad_request_is_dropped_and_counted_with_the_servers_message() {
    let receiver = Receiver::start();
    receiver.script([Answer::status(400, "attribute `model` is too long")]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let stats = replay(
        tmp.path(),
        &format!(
            "config = {{ endpoint = \"http://{}\" }}\nsignals = [\"events\"]\nqueue = {{ max_batch = 100 }}",
            receiver.addr
        ),
    );
    assert_eq!(
        stats.dropped_failed, 100,
        "one batch of 100 dropped: {stats}"
    );
    assert_eq!(stats.records_exported, EVENTS as u64 - 100, "{stats}");
    assert_eq!(
        receiver.requests().len(),
        5,
        "no retry of a permanent failure"
    );
    let error = error_of(&stats);
    assert!(
        error.contains("HTTP 400") && error.contains("attribute `model` is too long"),
        "{error}"
    );
}

#[test]
fn a_host_off_the_allow_list_is_refused_by_the_host_and_reported() {
    let receiver = Receiver::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let stats = replay(
        tmp.path(),
        &format!(
            "config = {{ endpoint = \"http://{}\" }}\nsandbox = {{ allow_hosts = [\"127.0.0.1:1\"] }}\n\
             signals = [\"events\"]\nqueue = {{ max_retries = 0 }}",
            receiver.addr
        ),
    );
    assert_eq!(stats.records_exported, 0, "{stats}");
    assert!(receiver.requests().is_empty(), "nothing left the host");
    assert!(
        error_of(&stats).contains("sandbox.allow_hosts"),
        "the plugin reports the refusal: {stats}"
    );
    let refused = stats
        .limits_passed
        .iter()
        .find(|(limit, _)| *limit == wasmtel::Limit::Hosts)
        .map(|(_, n)| *n);
    assert!(refused >= Some(1), "refusals are counted: {stats}");
}

#[test]
fn what_waits_through_an_outage_arrives_and_what_overflows_is_counted() {
    // The receiver is not there yet: connections to it are refused.
    let (held, addr) = refusing();
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[telemetry]\nsession_id = \"outage\"\nshutdown_timeout_ms = 30000\n\
         [exporters.collector]\nplugin = \"otlp\"\nsignals = [\"events\"]\n\
         config = {{ endpoint = \"http://{addr}\" }}\nqueue = {{ capacity = 100, max_batch = 50, max_delay_ms = 10 }}\n"
    );
    let telemetry = wasmtel::Telemetry::start(config(tmp.path(), &text)).expect("start");
    for i in 0..400 {
        telemetry.event("codex.tool_result").attr("i", i).emit();
        std::thread::sleep(Duration::from_micros(100));
    }
    std::thread::sleep(Duration::from_secs(10));
    drop(held);
    let receiver = Receiver::start_at(addr);
    assert!(telemetry.flush(Duration::from_secs(40)), "flushed");
    let stats = telemetry.shutdown().remove(0);
    let arrived = Decoded::of(&receiver.requests(), HTTP_PATHS).counts().0 as u64;
    assert_eq!(arrived, stats.records_exported, "{stats}");
    assert!(
        (100..=150).contains(&arrived),
        "what the queue held (100) and the batch being retried (50) arrived: {stats}"
    );
    assert_eq!(
        (stats.dropped_queue_full, stats.dropped_failed),
        (400 - arrived, 0),
        "the rest was dropped at the full queue, and counted: {stats}"
    );
}

#[test]
fn records_a_collector_rejects_in_a_partial_success_are_counted_as_dropped() {
    use wasmtel_sdk::otlp::proto::collector::logs::v1::{
        ExportLogsPartialSuccess, ExportLogsServiceResponse,
    };
    let receiver = Receiver::start();
    let partial = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 7,
            error_message: "7 records too old".into(),
        }),
    };
    receiver.script([Answer {
        status: 200,
        headers: vec![("content-type".into(), "application/x-protobuf".into())],
        body: partial.encode_to_vec(),
        ..Answer::default()
    }]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let stats = replay(
        tmp.path(),
        &format!(
            "config = {{ endpoint = \"http://{}\" }}\nsignals = [\"events\"]",
            receiver.addr
        ),
    );
    assert_eq!(
        (
            stats.records_exported,
            stats.dropped_rejected,
            stats.dropped()
        ),
        (EVENTS as u64 - 7, 7, 7),
        "{stats}"
    );
    assert!(
        error_of(&stats).contains("7 records too old"),
        "the collector's message is kept: {stats}"
    );
    assert!(stats.to_string().contains("rejected 7"), "{stats}");
}

#[test]
fn a_stalled_answer_times_out_and_an_oversized_one_is_cut_and_counted() {
    let receiver = Receiver::start();
    receiver.script([
        Answer {
            delay: Duration::from_secs(5),
            ..Answer::status(200, "")
        },
        Answer::status(200, &"x".repeat(200 * 1024)),
    ]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let stats = replay(
        tmp.path(),
        &format!(
            "config = {{ endpoint = \"http://{}\" }}\nsignals = [\"events\"]\n\
             http = {{ request_timeout_ms = 300, max_response_kib = 64 }}\n",
            receiver.addr
        ),
    );
    // The stalled answer failed a try; the oversized one is a 200 (the records arrived), cut
    // where the host allows and counted.
    assert_eq!(
        (
            stats.records_exported,
            stats.dropped(),
            stats.batches_failed
        ),
        (EVENTS as u64, 0, 1),
        "{stats}"
    );
    assert_eq!(
        stats.faults, 0,
        "a slow or large answer is not a fault: {stats}"
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited < Duration::from_secs(3),
        "the stalled request was given up after http.request_timeout_ms: {waited:?}"
    );
    let cut = stats
        .limits_passed
        .iter()
        .find(|(limit, _)| *limit == wasmtel::Limit::ResponseBytes);
    assert_eq!(cut.map(|(_, n)| *n), Some(1), "{stats}");
}

#[test]
fn a_batch_sent_again_skips_the_signals_already_delivered() {
    // The first batch's logs go through, its spans get a 503: the retry sends spans and
    // metrics only, so the collector gets every record once.
    let receiver = Receiver::start();
    receiver.script([Answer::status(200, ""), Answer::status(503, "busy")]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let stats = replay(
        tmp.path(),
        &format!("config = {{ endpoint = \"http://{}\" }}", receiver.addr),
    );
    assert_eq!(stats.dropped(), 0, "{stats}");
    let mut requests = receiver.requests();
    requests.retain(|r| r.answered == 200);
    let decoded = Decoded::of(&requests, HTTP_PATHS);
    assert_eq!(
        decoded.counts(),
        (EVENTS, SPANS, METRICS),
        "each record once"
    );
    assert_eq!(stats.batches_failed, 1, "{stats}");

    // A signal refused for good does not stop the others: its records are counted rejected.
    let receiver = Receiver::start();
    receiver.script([
        Answer::status(200, ""),
        Answer::status(400, "spans refused"),
    ]);
    let stats = replay(
        tmp.path(),
        &format!("config = {{ endpoint = \"http://{}\" }}", receiver.addr),
    );
    let mut requests = receiver.requests();
    requests.retain(|r| r.answered == 200);
    let (events, spans, metrics) = Decoded::of(&requests, HTTP_PATHS).counts();
    assert_eq!(
        (events, metrics),
        (EVENTS, METRICS),
        "logs and metrics all arrived"
    );
    let refused = (SPANS - spans) as u64;
    assert!(refused > 0);
    assert_eq!(
        (
            stats.dropped_rejected,
            stats.dropped(),
            stats.records_exported
        ),
        (
            refused,
            refused,
            (EVENTS + SPANS + METRICS) as u64 - refused
        ),
        "{stats}"
    );
    assert!(error_of(&stats).contains("spans refused"), "{stats}");
}

#[test]
fn grpc_statuses_from_trailers_are_retried_or_dropped_as_the_spec_says() {
    let receiver = Receiver::start();
    receiver.script([
        // UNAVAILABLE: retried.
        Answer::grpc(14, "try%20later"),
        // RESOURCE_EXHAUSTED without retry information: dropped.
        Answer::grpc(8, "quota"),
        // INVALID_ARGUMENT: dropped, with the message decoded.
        Answer::grpc(3, "bad%20attribute"),
    ]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let stats = replay(
        tmp.path(),
        &format!(
            "config = {{ endpoint = \"http://{}\", protocol = \"grpc\" }}\nsignals = [\"events\"]\n\
             queue = {{ max_batch = 100 }}",
            receiver.addr
        ),
    );
    // Batch 1: UNAVAILABLE, then through; batch 2: RESOURCE_EXHAUSTED; batch 3: INVALID_ARGUMENT;
    // batches 4 and 5 through.
    assert_eq!(
        (
            stats.records_exported,
            stats.dropped_failed,
            stats.batches_retried
        ),
        (EVENTS as u64 - 200, 200, 1),
        "{stats}"
    );
    assert_eq!(receiver.requests().len(), 6);
    let error = error_of(&stats);
    assert!(
        error.contains("INVALID_ARGUMENT") && error.contains("bad attribute"),
        "{error}"
    );
}

#[test]
fn shutdown_with_a_budget_keeps_it_whether_the_backend_stalls_or_is_gone() {
    // A backend that takes 30 s to answer, and one where nothing listens.
    let stalled = Receiver::start();
    stalled.script(std::iter::repeat_n(
        Answer {
            delay: Duration::from_secs(30),
            ..Answer::status(200, "")
        },
        8,
    ));
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("its address");
    for endpoint in [stalled.addr, gone] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "[exporters.collector]\nplugin = \"otlp\"\n\
             config = {{ endpoint = \"http://{endpoint}\" }}\n"
        );
        let telemetry = wasmtel::Telemetry::start(config(tmp.path(), &text)).expect("start");
        for i in 0..100 {
            telemetry.event("codex.tool_result").attr("i", i).emit();
        }
        // Let the worker take the batch into its export call.
        std::thread::sleep(Duration::from_millis(1500));
        let started = std::time::Instant::now();
        let stats = telemetry.shutdown_with_timeout(Duration::from_millis(200));
        // The config's own deadline is 5 s, the request's 10 s: under 3 s kept the budget.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{endpoint}: shutdown took {:?}",
            started.elapsed()
        );
        assert_eq!(stats[0].records_exported, 0, "{}", stats[0]);
        assert_eq!(stats[0].dropped(), 100, "counted, not lost: {}", stats[0]);
    }
}
