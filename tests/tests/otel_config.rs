//! Codex's `[otel]` table, unchanged, drives `wasmtel replay --config` and `wasmtel check`: OTLP
//! over HTTP (binary and JSON) and gRPC to a receiver on 127.0.0.1, and Statsig (pointed at one
//! too); secrets never show in the output; Codex's pitfalls get errors that show the right form.

use std::process::Output;

use wasmtel_tests::receiver::{Decoded, GRPC_PATHS, Receiver};
use wasmtel_tests::{fixture, output_text, wasmtel_command};

/// A secret that must never be printed.
const SECRET: &str = "s3cr3t-77f1c0de";

/// Runs `wasmtel <args>` in `dir` with the environment `env`.
fn wasmtel(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = wasmtel_command(dir)
        .args(args)
        .envs(env.iter().copied())
        .env("WASMTEL_LOG", "info")
        .output()
        .expect("run wasmtel");
    let text = output_text(&output);
    assert!(
        !text.contains(SECRET),
        "a secret was printed by `wasmtel {}`:\n{text}",
        args.join(" ")
    );
    output
}

/// `wasmtel check` then `wasmtel replay` of the fixture with `config.toml` = `config`; both
/// succeed. Returns the replay's output.
fn check_and_replay(config: &str, env: &[(&str, &str)]) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.toml"), config).expect("write");
    let check = wasmtel(tmp.path(), &["check", "--config", "config.toml"], env);
    assert!(check.status.success(), "check:\n{}", output_text(&check));
    let fixture = fixture();
    let replay = wasmtel(
        tmp.path(),
        &[
            "replay",
            "--strict",
            "--config",
            "config.toml",
            fixture.to_str().expect("a UTF-8 path"),
        ],
        env,
    );
    assert!(replay.status.success(), "replay:\n{}", output_text(&replay));
    output_text(&check) + &output_text(&replay)
}

#[test]
fn otlp_http_binary_and_grpc_from_an_otel_table_reach_the_receiver() {
    let receiver = Receiver::start();
    let addr = receiver.addr;
    let config = format!(
        r#"[otel]
environment = "staging"
log_user_prompt = false
exporter = {{ otlp-http = {{ endpoint = "http://{addr}/custom/logs", protocol = "binary", headers = {{ "x-api-key" = "${{WASMTEL_TEST_KEY}}" }} }} }}
trace_exporter = {{ otlp-grpc = {{ endpoint = "http://{addr}", headers = {{ "x-meta" = "abc" }} }} }}
metrics_exporter = "none"

[otel.span_attributes]
"example.trace_attr" = "enabled"
[otel.tool_result]
max_bytes = 1024
"#
    );
    let output = check_and_replay(&config, &[("WASMTEL_TEST_KEY", SECRET)]);
    assert!(
        output.contains("otel-logs: ok") && output.contains("otel-traces: ok"),
        "{output}"
    );
    let requests = receiver.requests();
    for r in &requests {
        if r.path == "/custom/logs" {
            assert_eq!(r.header("x-api-key"), Some(SECRET));
        } else {
            assert_eq!(r.version, "HTTP/2.0");
            assert_eq!(r.header("x-meta"), Some("abc"));
        }
    }
    // Logs at the URL as written, spans over gRPC; a request to any other path (metrics
    // included: metrics_exporter = "none") fails the decoding.
    let paths = ["/custom/logs", GRPC_PATHS[1], "/no metrics"];
    assert_eq!(
        Decoded::of(&requests, paths).counts(),
        (444, 124, 0),
        "the endpoint is used exactly as written"
    );
}

#[test]
fn otlp_http_json_and_statsig_from_an_otel_table_reach_the_receiver() {
    let receiver = Receiver::start();
    let addr = receiver.addr;
    let config = format!(
        r#"[otel]
exporter = {{ otlp-http = {{ endpoint = "http://{addr}/v1/logs", protocol = "json" }} }}
metrics_exporter = "statsig"

[analytics]
enabled = true
"#
    );
    let endpoint = format!("http://{addr}/otlp/v1/metrics");
    let output = check_and_replay(
        &config,
        &[
            ("STATSIG_SERVER_SDK_SECRET", SECRET),
            ("WASMTEL_STATSIG_ENDPOINT", &endpoint),
        ],
    );
    assert!(output.contains("otel-metrics: ok"), "{output}");
    let requests = receiver.requests();
    let logs: Vec<_> = requests.iter().filter(|r| r.path == "/v1/logs").collect();
    assert!(!logs.is_empty());
    for r in &logs {
        assert_eq!(r.header("content-type"), Some("application/json"));
        serde_json::from_slice::<serde_json::Value>(&r.body).expect("OTLP/JSON");
    }
    let metrics: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/otlp/v1/metrics")
        .collect();
    assert!(!metrics.is_empty(), "Statsig got metrics");
    let mut names = std::collections::BTreeSet::new();
    for r in &metrics {
        assert_eq!(r.header("statsig-api-key"), Some(SECRET));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let json: serde_json::Value = serde_json::from_slice(&r.body).expect("OTLP/JSON");
        for rm in json["resourceMetrics"].as_array().expect("resourceMetrics") {
            for sm in rm["scopeMetrics"].as_array().expect("scopeMetrics") {
                for m in sm["metrics"].as_array().expect("metrics") {
                    names.insert(m["name"].as_str().expect("a name").to_string());
                    for kind in ["sum", "histogram"] {
                        if let Some(t) = m[kind].get("aggregationTemporality") {
                            assert_eq!(t, 1, "delta: {m}");
                        }
                    }
                }
            }
        }
    }
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["codex.turn.unified_exec.running_processes"],
        "the metrics Codex never sends to Statsig are left out"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.path == "/v1/logs" || r.path == "/otlp/v1/metrics"),
        "no traces: trace_exporter defaults to none"
    );
}

#[test]
fn statsig_without_a_key_is_not_configured_and_sends_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Codex's defaults: metrics to Statsig.
    std::fs::write(
        tmp.path().join("config.toml"),
        "[otel]\nenvironment = \"dev\"\n",
    )
    .expect("write");
    let check = wasmtel(tmp.path(), &["check", "--config", "config.toml"], &[]);
    let out = output_text(&check);
    assert!(check.status.success(), "{out}");
    assert!(
        out.contains("otel-metrics")
            && out.contains("not configured")
            && out.contains("STATSIG_SERVER_SDK_SECRET"),
        "{out}"
    );
    // With analytics off, there is no metrics exporter at all.
    std::fs::write(
        tmp.path().join("config.toml"),
        "[otel]\nmetrics_exporter = \"statsig\"\n[analytics]\nenabled = false\n",
    )
    .expect("write");
    let check = wasmtel(
        tmp.path(),
        &["check", "--config", "config.toml"],
        &[("STATSIG_SERVER_SDK_SECRET", SECRET)],
    );
    let out = output_text(&check);
    assert!(out.contains("no exporter is configured"), "{out}");
}

#[test]
fn codex_pitfalls_are_errors_that_show_the_right_form() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (otel, expected) in [
        (
            "exporter = \"otlp-http\"",
            vec![
                "otel.exporter",
                "{ otlp-http = { endpoint = ",
                "protocol = \"binary\"",
            ],
        ),
        (
            "exporter = { otlp-http = { endpoint = \"http://c/v1/logs\", protocol = \"http/json\" } }",
            vec!["otel.exporter.otlp-http.protocol", "protocol = \"json\""],
        ),
        (
            "trace_exporter = { otlp-grpc = { endpoint = \"http://c:4317\", timeout = 5 } }",
            vec!["otel.trace_exporter.otlp-grpc", "unknown field `timeout`"],
        ),
        (
            "exporters = \"none\"",
            vec!["otel.exporters", "unknown field"],
        ),
        (
            "exporter = { otlp-http = { endpoint = \"http://c/v1/logs\" } }",
            vec![
                "otel.exporter.otlp-http",
                "needs its `protocol`",
                "protocol = \"binary\"",
            ],
        ),
        (
            "exporter = { otlp-grpc = { endpoint = \"http://c:4317\", tls = { client-certificate = \"c.pem\", client-private-key = \"k.pem\" } } }",
            vec!["otel.exporter.otlp-grpc.endpoint", "https://"],
        ),
        (
            "metrics_exporter = \"prometheus\"",
            vec![
                "otel.metrics_exporter",
                "unknown exporter `prometheus`",
                "\"statsig\"",
            ],
        ),
        (
            "exporter = { otlp-http = { endpoint = \"http://c/v1/logs\", protocol = \"binary\", tls = { ca-certificate = \"nope.pem\" } } }",
            vec![
                "otel.exporter.tls.ca-certificate",
                "nope.pem",
                "cannot read",
            ],
        ),
    ] {
        let path = tmp.path().join("config.toml");
        std::fs::write(&path, format!("[otel]\n{otel}\n")).expect("write");
        let error = wasmtel::Config::from_file(&path)
            .expect_err(otel)
            .to_string();
        assert!(error.contains("config.toml:2"), "{otel}: {error}");
        for part in expected {
            assert!(error.contains(part), "{otel}: `{part}` missing in: {error}");
        }
    }
}

#[test]
fn header_values_may_name_environment_variables() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("config.toml");
    std::fs::write(
        &path,
        "[exporters.collector]\nplugin = \"otlp\"\nconfig = { headers = { authorization = \"Bearer ${WASMTEL_TEST_UNSET_TOKEN}\" } }\n",
    )
    .expect("write");
    let error = wasmtel::Config::from_file(&path)
        .expect_err("unset")
        .to_string();
    assert!(
        error.contains("exporters.collector.config.headers.authorization")
            && error.contains("`WASMTEL_TEST_UNSET_TOKEN` is not set"),
        "{error}"
    );
}

#[test]
fn a_refused_request_shows_no_secret_either() {
    let receiver = Receiver::start();
    receiver.script((0..8).map(|_| wasmtel_tests::receiver::Answer::status(401, "unknown key")));
    let config = format!(
        "[otel]\nexporter = {{ otlp-http = {{ endpoint = \"http://{}/v1/logs?token={SECRET}\", protocol = \"binary\", headers = {{ authorization = \"Bearer {SECRET}\" }} }} }}\nmetrics_exporter = \"none\"\n",
        receiver.addr
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.toml"), config).expect("write");
    let replay = wasmtel(
        tmp.path(),
        &[
            "replay",
            "--config",
            "config.toml",
            fixture().to_str().expect("a UTF-8 path"),
        ],
        &[],
    );
    let out = output_text(&replay);
    assert!(
        out.contains("HTTP 401") && out.contains("unknown key"),
        "{out}"
    );
    assert!(
        receiver.requests()[0].path.contains(SECRET),
        "the query was sent as written"
    );
}
