//! Config layers: a Codex fork's `[telemetry]` with `[telemetry.logs.NAME]` tables works
//! unchanged, and the environment (`CODEX_OTEL_ENABLED`, `OTEL_SDK_DISABLED`) and the command's
//! `--telemetry` / `--no-telemetry` turn it on or off, in that order of precedence; the
//! environment's exporter (`CODEX_OTEL_EXPORTER`, `CODEX_OTEL_ENDPOINT`, `CODEX_OTEL_HEADERS`,
//! `OTEL_EXPORTER_OTLP_*`) sends to a receiver on 127.0.0.1 in place of the file's exporters, its
//! resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) goes over the application's, its
//! sample rate picks traces, and each bad value is an error naming its variable.

use std::path::Path;
use std::process::Output;

use wasmtel::{KeyValue, Telemetry};
use wasmtel_tests::receiver::{GRPC_PATHS, Receiver};
use wasmtel_tests::{config, fixture, only_jsonl, output_text, wasmtel_command};

const SEED_000: &str = r#"[telemetry]
enabled = true
dir = "logs"
max_total_bytes = 104857600

[telemetry.logs.tui]
file = "codex-tui.log"

[telemetry.logs.session]
enabled = true
file = "codex-litellm-session.jsonl"

[telemetry.logs.debug]
enabled = false
"#;

fn wasmtel(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    wasmtel_command(dir)
        .args(args)
        .envs(env.iter().copied())
        .env("WASMTEL_LOG", "warn")
        .output()
        .expect("run wasmtel")
}

/// Replays the fixture with the seed's config in a fresh directory, with `args` and `env`;
/// returns the output and the files written into `logs/`.
fn replay(args: &[&str], env: &[(&str, &str)]) -> (String, Vec<String>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.toml"), SEED_000).expect("write");
    let fixture = fixture();
    let mut all = vec!["replay", "--config", "config.toml"];
    all.extend_from_slice(args);
    all.push(fixture.to_str().expect("a UTF-8 path"));
    let output = wasmtel(tmp.path(), &all, env);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    let mut files: Vec<String> = std::fs::read_dir(tmp.path().join("logs"))
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if let Some(name) = files.first() {
        let written =
            std::fs::read_to_string(tmp.path().join("logs").join(name)).expect("a log file");
        assert_eq!(
            written,
            std::fs::read_to_string(fixture).expect("fixture"),
            "{name} holds the session"
        );
    }
    (text, files)
}

#[test]
fn a_codex_forks_telemetry_logs_tables_work_unchanged() {
    let (output, files) = replay(&[], &[]);
    assert_eq!(
        files,
        ["codex-litellm-session.jsonl", "codex-tui.log"],
        "{output}"
    );
    assert!(
        output.contains("tui (file-jsonl): 583 exported")
            && output.contains("session (file-jsonl): 583 exported"),
        "{output}"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.toml"), SEED_000).expect("write");
    let check = wasmtel(tmp.path(), &["check", "--config", "config.toml"], &[]);
    let out = output_text(&check);
    assert!(check.status.success(), "{out}");
    assert!(
        out.contains("tui: ok") && out.contains("session: ok") && !out.contains("debug"),
        "{out}"
    );
}

#[test]
fn the_environment_and_the_command_turn_telemetry_off_and_on() {
    for (args, env) in [
        (&["--no-telemetry"][..], &[][..]),
        (&[], &[("CODEX_OTEL_ENABLED", "false")]),
        (&[], &[("OTEL_SDK_DISABLED", "true")]),
    ] {
        let (output, files) = replay(args, env);
        assert!(files.is_empty(), "{args:?} {env:?}: {files:?}\n{output}");
    }
    // The command's switch wins over the environment.
    let (output, files) = replay(&["--telemetry"], &[("CODEX_OTEL_ENABLED", "0")]);
    assert_eq!(files.len(), 2, "{output}");
    // A bad value is an error naming the variable.
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.toml"), SEED_000).expect("write");
    let bad = wasmtel(
        tmp.path(),
        &["check", "--config", "config.toml"],
        &[("CODEX_OTEL_ENABLED", "maybe")],
    );
    let out = output_text(&bad);
    assert!(!bad.status.success(), "{out}");
    assert!(
        out.contains("`CODEX_OTEL_ENABLED`: `maybe` is not true or false"),
        "{out}"
    );
}

#[test]
fn the_environments_exporter_replaces_the_files_and_sends_to_its_endpoint() {
    let receiver = Receiver::start();
    let addr = receiver.addr;
    let metrics = format!("http://{addr}/custom/metrics");
    let endpoint = format!("http://{addr}");
    let (output, files) = replay(
        &[],
        &[
            ("CODEX_OTEL_EXPORTER", "otlp"),
            ("CODEX_OTEL_ENDPOINT", &endpoint),
            ("CODEX_OTEL_HEADERS", "x-api-key=k%3D1,x-team=core%20infra"),
            // Overruled by CODEX_OTEL_HEADERS.
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=other"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &metrics),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "4000"),
        ],
    );
    assert!(
        files.is_empty(),
        "the file's exporters are replaced: {files:?}"
    );
    assert!(output.contains("otlp (otlp): 583 exported"), "{output}");
    let requests = receiver.requests();
    let mut paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths, ["/custom/metrics", "/v1/logs", "/v1/traces"]);
    for r in &requests {
        assert_eq!(r.header("x-api-key"), Some("k=1"), "decoded: {}", r.path);
        assert_eq!(r.header("x-team"), Some("core infra"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[test]
fn settings_for_an_exporter_that_is_not_there_are_said() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.toml"), SEED_000).expect("write");
    let check = wasmtel(
        tmp.path(),
        &["check", "--config", "config.toml"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")],
    );
    let out = output_text(&check);
    assert!(check.status.success(), "{out}");
    assert!(
        out.contains("OTEL_EXPORTER_OTLP_ENDPOINT is set, but no exporter sends OTLP"),
        "{out}"
    );
}

#[test]
fn a_bad_value_in_the_environment_is_an_error_naming_its_variable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.toml"), SEED_000).expect("write");
    for (var, value, says) in [
        (
            "CODEX_OTEL_EXPORTER",
            "jaeger",
            "is not an exporter wasmtel has",
        ),
        (
            "CODEX_OTEL_ENDPOINT",
            "localhost:4318/?token=sk-live-1",
            "is not an http:// or https:// URL",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "not a url sk-live-2",
            "is not an http:// or https:// URL",
        ),
        (
            "CODEX_OTEL_HEADERS",
            "x-team=core,authorization: Bearer sk-live-3",
            "member 2 of the list is not `key=value`",
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=sk-live-4%zz",
            "the value of `api-key` has a `%` that is not followed by two hex digits",
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=sk-live-5%+1",
            "not followed by two hex digits",
        ),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http",
            "is not `grpc`, `http/protobuf` or `http/json`",
        ),
        (
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "zstd",
            "is not `gzip` or `none`",
        ),
        (
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "soon",
            "is not a number of milliseconds",
        ),
        ("OTEL_RESOURCE_ATTRIBUTES", "=x", "has an empty key"),
        (
            "CODEX_OTEL_SAMPLE_RATE",
            "1.5",
            "is not a rate from 0.0 to 1.0",
        ),
        ("OTEL_SDK_DISABLED", "nah", "is not true or false"),
    ] {
        let bad = wasmtel(
            tmp.path(),
            &["check", "--config", "config.toml"],
            &[(var, value)],
        );
        let out = output_text(&bad);
        assert!(!bad.status.success(), "{var}={value}: {out}");
        assert!(
            out.contains(&format!("the environment: `{var}`: ")) && out.contains(says),
            "{var}={value}: {out}"
        );
        assert!(!out.contains("sk-live"), "a secret was printed: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
}

/// The spans of `roots` traces (each a root and a child) recorded with `vars` over the default
/// config, and the resource written before them.
fn sampled(vars: &[(&str, &str)], roots: usize) -> (Vec<serde_json::Value>, serde_json::Value) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(tmp.path(), "")
        .with_vars(|name| {
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| value.to_string())
        })
        .expect("a valid environment");
    let telemetry = Telemetry::builder(config)
        .resource(vec![
            KeyValue::new("service.name", "codex_cli_rs"),
            KeyValue::new("host.name", "devbox"),
        ])
        .start()
        .expect("start");
    for _ in 0..roots {
        let turn = telemetry.span("turn").start();
        telemetry
            .span("tool_call")
            .parent(turn.context())
            .start()
            .end();
        turn.end();
    }
    telemetry.shutdown();
    let logs = tmp.path().join("logs");
    if std::fs::read_dir(&logs).map_or(true, |mut d| d.next().is_none()) {
        // Nothing recorded, nothing written.
        return (Vec::new(), serde_json::Value::Null);
    }
    let text = std::fs::read_to_string(only_jsonl(&logs)).expect("read");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let resource = records
        .iter()
        .find(|r| r["type"] == "resource")
        .cloned()
        .unwrap_or_default();
    (
        records
            .into_iter()
            .filter(|r| r["type"] == "span")
            .collect(),
        resource,
    )
}

#[test]
fn the_environments_resource_goes_over_the_applications() {
    let (_, resource) = sampled(
        &[
            ("OTEL_SERVICE_NAME", "codex-ci"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=overruled,deployment.environment=ci%2Fnightly",
            ),
        ],
        1,
    );
    assert_eq!(
        resource["attributes"],
        serde_json::json!({
            "service.name": "codex-ci",
            "host.name": "devbox",
            "deployment.environment": "ci/nightly",
        })
    );
}

#[test]
fn the_sample_rate_records_whole_traces_picked_by_their_ids() {
    let roots = 400;
    let (all, _) = sampled(&[], roots);
    assert_eq!(all.len(), 2 * roots, "a rate of 1 records every span");
    let (none, _) = sampled(&[("CODEX_OTEL_SAMPLE_RATE", "0")], roots);
    assert!(none.is_empty(), "{none:?}");

    let (some, _) = sampled(&[("CODEX_OTEL_SAMPLE_RATE", "0.25")], roots);
    let traces: std::collections::BTreeMap<&str, Vec<&serde_json::Value>> =
        some.iter().fold(Default::default(), |mut traces, span| {
            let id = span["trace_id"].as_str().expect("a trace id");
            traces.entry(id).or_default().push(span);
            traces
        });
    // Whole traces: a child is recorded exactly when its root is.
    for (id, spans) in &traces {
        let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(names, ["tool_call", "turn"], "trace {id}");
        // Picked by the id: its lower 64 bits, shifted right by one, under a quarter of 2^63.
        let low = u64::from_str_radix(&id[16..], 16).expect("hex");
        assert!(low >> 1 < 1 << 61, "trace {id} is over the rate");
    }
    // 400 traces at 1/4: 100 expected, outside 50..150 once in about 10^8 runs.
    assert!((50..150).contains(&traces.len()), "{} traces", traces.len());
}

#[test]
fn a_parent_processs_trace_context_comes_through_traceparent_and_tracestate() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    wasmtel_tests::in_own_process_with_env(
        module_path!(),
        "a_parent_processs_trace_context_comes_through_traceparent_and_tracestate",
        &[
            ("TRACEPARENT", &format!("00-{TRACE}-00f067aa0ba902b7-01")),
            ("TRACESTATE", "vendor=opaque,broken,rojo=00f067aa0ba902b7"),
        ],
        || {
            let parent = wasmtel::SpanContext::from_env().expect("TRACEPARENT");
            assert!(parent.sampled);
            let tmp = tempfile::tempdir().expect("tempdir");
            let telemetry = Telemetry::start(config(tmp.path(), "")).expect("start");
            let span = telemetry.span("exec").parent(parent).start();
            // The configured members first, then the parent's that they do not name.
            let mut headers = http::HeaderMap::new();
            let mut members = vec![("rojo".to_string(), "ours".to_string())];
            members.extend(wasmtel::SpanContext::tracestate_from_env());
            span.context().inject(&mut headers, &members);
            assert_eq!(headers["tracestate"], "rojo=ours,vendor=opaque");
            let context = span.context();
            span.end();
            telemetry.shutdown();
            let text = std::fs::read_to_string(only_jsonl(&tmp.path().join("logs"))).expect("read");
            let span: serde_json::Value = text
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
                .find(|r| r["type"] == "span")
                .expect("the span");
            assert_eq!(span["trace_id"], TRACE);
            assert_eq!(span["parent_span_id"], "00f067aa0ba902b7");
            assert_eq!(
                headers["traceparent"],
                format!("00-{TRACE}-{:016x}-01", context.span_id).as_str()
            );
        },
    );
}

#[test]
fn a_child_of_a_parent_that_was_not_sampled_is_not_recorded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let telemetry = Telemetry::start(config(tmp.path(), "")).expect("start");
    let parent = wasmtel::SpanContext::from_traceparent(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    )
    .expect("a traceparent");
    assert!(!parent.sampled);
    let child = telemetry.span("exec").parent(parent).start();
    assert!(child.context().traceparent().ends_with("-00"), "passed on");
    child.end();
    telemetry.span("sampled").start().end();
    telemetry.shutdown();
    let text = std::fs::read_to_string(only_jsonl(&tmp.path().join("logs"))).expect("read");
    let spans: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(r#""type":"span""#))
        .collect();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert!(spans[0].contains(r#""name":"sampled""#));
}

#[test]
fn the_environments_endpoint_and_transport_win_over_the_files() {
    let endpoint_of = |receiver: &Receiver| format!("http://{}", receiver.addr);
    // An [otel] exporter with its signal's own URL, where nothing listens.
    let otel = "[otel]\nexporter = { otlp-http = { endpoint = \"http://127.0.0.1:9/custom/logs\", \
                protocol = \"binary\" } }\nmetrics_exporter = \"none\"\n";
    for (config, env, paths) in [
        (
            otel,
            vec![("CODEX_OTEL_ENDPOINT", "")],
            vec!["/v1/logs".to_string()],
        ),
        (
            SEED_000,
            vec![
                ("CODEX_OTEL_EXPORTER", "otlp-grpc"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            ],
            {
                let mut paths = GRPC_PATHS.map(String::from).to_vec();
                paths.sort();
                paths
            },
        ),
    ] {
        let receiver = Receiver::start();
        let endpoint = endpoint_of(&receiver);
        // The endpoint variables point at this receiver.
        let env: Vec<(&str, &str)> = env
            .into_iter()
            .map(|(k, v)| (k, if v.is_empty() { endpoint.as_str() } else { v }))
            .collect();
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("config.toml"), config).expect("write");
        let fixture = fixture();
        let args = [
            "replay",
            "--config",
            "config.toml",
            fixture.to_str().expect("a UTF-8 path"),
        ];
        let output = wasmtel(tmp.path(), &args, &env);
        let text = output_text(&output);
        assert!(
            output.status.success() && text.contains(" 0 dropped"),
            "{env:?}: {text}"
        );
        let requests = receiver.requests();
        let mut seen: Vec<String> = requests.iter().map(|r| r.path.clone()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, paths, "{env:?}");
    }
}
