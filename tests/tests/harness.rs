//! The fixture harness, `wasmtel test` and `wasmtel::harness`: each CSV example passes its fixture
//! test; a one-line change to a plugin's output fails it with a diff pointing at the line;
//! `--update` writes what the plugin did; calls, faults, the plugin's output and its HTTP requests
//! (answered by a script, OTLP bodies decoded) are captured.

use std::path::{Path, PathBuf};
use std::process::Output;

use wasmtel::harness::FixtureRun;
use wasmtel::plugin::Outcome;
use wasmtel_tests::{
    COMPONENTIZE_JS, CSV_JS, CSV_PYTHON, CSV_RUST, ROGUE, fixture, wasmtel_command,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

/// The examples' expected directory.
fn expected() -> PathBuf {
    repo().join("examples/plugins/expected")
}

/// `wasmtel test PLUGIN --fixture (the fixture) --expect EXPECT` with `more` arguments, run in
/// `dir`.
fn wasmtel_test(dir: &Path, plugin: &str, expect: &Path, more: &[&str]) -> (Output, String) {
    let out = wasmtel_command(dir)
        .args(["test", plugin, "--fixture"])
        .arg(fixture())
        .arg("--expect")
        .arg(expect)
        .args(more)
        .output()
        .expect("run wasmtel");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

/// The rogue guest run on the fixture, configured by `text`, written to `config` first.
fn rogue_run(config: &Path, text: &str) -> Result<wasmtel::harness::Capture, wasmtel::Error> {
    std::fs::write(config, text).expect("write the config");
    FixtureRun::new(ROGUE, fixture()).config(config).run()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn every_csv_example_passes_its_fixture_test() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = expected();
    for plugin in [CSV_RUST, CSV_JS, CSV_PYTHON] {
        let (out, stdout) = wasmtel_test(dir.path(), plugin, &expected, &[]);
        assert!(
            out.status.success() && stdout.starts_with(&format!("ok: {plugin} on ")),
            "{plugin}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The same through the library, as a plugin's own tests would.
    let capture = FixtureRun::new(CSV_RUST, fixture()).run().expect("the run");
    assert_eq!(capture.calls.len(), 5, "{:?}", capture.calls);
    capture.compare(&expected).unwrap_or_else(|m| panic!("{m}"));
}

#[test]
fn a_one_line_change_to_a_plugins_output_fails_its_fixture_test_with_a_diff_at_the_line() {
    // The JavaScript example, built again with one line changed: a span's row gets its end for
    // its start.
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = std::fs::read_to_string(repo().join("examples/plugins/csv-js/csv.js"))
        .expect("the example");
    let line = "fields = [r.type, r.start, r.name, r.trace_id, r.span_id, r.end];";
    assert_eq!(
        source.matches(line).count(),
        1,
        "the line is in the example"
    );
    let changed = source.replace(line, &line.replacen("r.start", "r.end", 1));
    let at = tmp.path().join("examples/plugins/csv-js");
    std::fs::create_dir_all(&at).expect("mkdir");
    std::fs::write(at.join("csv.js"), changed).expect("write");
    std::fs::create_dir_all(tmp.path().join("sdk/js")).expect("mkdir");
    std::fs::copy(
        repo().join("sdk/js/wasmtel.js"),
        tmp.path().join("sdk/js/wasmtel.js"),
    )
    .expect("copy the helper library");
    let plugin = tmp.path().join("changed.wasm");
    let built = std::process::Command::new(COMPONENTIZE_JS)
        .current_dir(tmp.path())
        .arg("examples/plugins/csv-js/csv.js")
        .arg("--wit")
        .arg(repo().join("wit"))
        .args(["--world-name", "text-plugin", "-o"])
        .arg(&plugin)
        .output()
        .expect("run ComponentizeJS");
    assert!(built.status.success(), "{built:?}");

    let expected = expected();
    let (out, stdout) = wasmtel_test(tmp.path(), path(&plugin), &expected, &[]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // The line of the first span, found in the expected file.
    let rows = std::fs::read_to_string(expected.join("files/records.csv")).expect("rows");
    let (index, row) = rows
        .lines()
        .enumerate()
        .find(|(_, row)| row.starts_with("span,"))
        .expect("a span");
    let fields: Vec<&str> = row.split(',').collect();
    let mut now = fields.clone();
    now[1] = fields[5];
    let records = expected.join("files/records.csv");
    for wanted in [
        format!(
            "{}:{}: differs (- expected, + actual)",
            records.display(),
            index + 1
        ),
        format!("\n-{row}\n"),
        format!("\n+{}\n", now.join(",")),
        "FAILED: ".to_string(),
    ] {
        assert!(stdout.contains(&wanted), "{wanted:?} in:\n{stdout}");
    }
    // Only the rows differ: not the calls, nor the log.
    assert_eq!(stdout.matches(": differs").count(), 1, "{stdout}");
}

#[test]
fn update_writes_what_the_plugin_did_and_then_the_test_passes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let expect = tmp.path().join("expected");
    std::fs::create_dir_all(expect.join("files/old")).expect("mkdir");
    std::fs::write(expect.join("files/old/stale.csv"), "stale").expect("write");
    std::fs::write(expect.join("calls.txt"), "init: ok\n").expect("write");
    let (out, stdout) = wasmtel_test(tmp.path(), CSV_RUST, &expect, &[]);
    assert_eq!(out.status.code(), Some(1), "the stale file: {stdout}");
    assert!(
        stdout.contains("files/old/stale.csv: expected, but not written")
            && stdout.contains("files/records.csv: written, but not expected")
            && stdout.contains("calls.txt:2: differs")
            && stdout.contains("log.txt: written, but not expected"),
        "{stdout}"
    );
    let (out, stdout) = wasmtel_test(tmp.path(), CSV_RUST, &expect, &["--update"]);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "wrote {}: 5 calls, 1 log lines, 1 files\n",
            expect.display()
        )
    );
    assert!(!expect.join("files/old/stale.csv").exists());
    for name in ["calls.txt", "log.txt", "files/records.csv"] {
        assert_eq!(
            std::fs::read(expect.join(name)).expect("written"),
            std::fs::read(expected().join(name)).expect("expected"),
            "{name}"
        );
    }
    let (out, stdout) = wasmtel_test(tmp.path(), CSV_RUST, &expect, &[]);
    assert!(out.status.success(), "{stdout}");

    // A directory that holds other things and no calls.txt is not written into.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    std::fs::write(elsewhere.join("notes.txt"), "mine").expect("write");
    let (out, _) = wasmtel_test(tmp.path(), CSV_RUST, &elsewhere, &["--update"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("holds other files and no calls.txt"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).expect("ls").count(),
        1,
        "nothing written or deleted"
    );
}

#[test]
fn a_link_the_plugin_leaves_is_recorded_not_followed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("rogue.toml");
    let text = "[exporters.rogue]\nplugin = \"anything.wasm\"\nconfig = { action = \"symlink\", \
                when = \"init\", path = \"../../../../../../../../etc/passwd\" }\n";
    let capture = rogue_run(&config, text).expect("the run");
    assert_eq!(capture.calls[0], "init: ok", "{:?}", capture.calls);
    assert_eq!(
        capture
            .files
            .get("link")
            .map(|b| String::from_utf8_lossy(b).into_owned()),
        Some("(a symbolic link to ../../../../../../../../etc/passwd)\n".to_string()),
        "{:?}",
        capture.files.keys()
    );
}

#[test]
fn calls_errors_faults_and_the_plugins_output_are_captured() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The rogue answers every export with a retryable error; batches of 200 records.
    let config = tmp.path().join("rogue.toml");
    let capture = rogue_run(
        &config,
        "[telemetry]\nsession_id = \"s\"\n\
         [exporters.rogue]\nplugin = \"anything.wasm\"\n\
         config = { action = \"retryable\", ms = 5 }\nqueue = { max_batch = 200 }\n",
    )
    .expect("the run");
    assert_eq!(
        capture.calls,
        [
            "init: ok",
            "export 1 (200 records): retryable error (retry after 5 ms): try again",
            "export 2 (200 records): retryable error (retry after 5 ms): try again",
            "export 3 (183 records): retryable error (retry after 5 ms): try again",
            "flush: ok",
            "shutdown: ok",
        ]
    );
    let capture = rogue_run(
        &config,
        "[exporters.rogue]\nplugin = \"anything.wasm\"\nconfig = { action = \"panic\" }\n",
    )
    .expect("the run");
    assert_eq!(
        capture.calls.len(),
        2,
        "a fault ends the run: {:?}",
        capture.calls
    );
    assert_eq!(capture.calls[0], "init: ok");
    assert!(
        capture.calls[1].starts_with("export 1 (512 records): plugin fault: wasm trap: ")
            && capture.calls[1].contains("rogue panics on purpose"),
        "{:?}",
        capture.calls
    );
    // The panic's message, from stderr, in the captured output.
    assert!(
        capture
            .log
            .iter()
            .any(|l| l == "warn: rogue panics on purpose"),
        "{:?}",
        capture.log
    );

    let error = rogue_run(
        &config,
        "[exporters.a]\nplugin = \"a.wasm\"\n[exporters.b]\nplugin = \"b.wasm\"\n",
    )
    .expect_err("two exporters");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: a fixture run takes a config with exactly one exporter, not 2",
            config.display()
        )
    );
}

/// The events among the first `n` records of the fixture.
fn events_in_first(n: usize) -> usize {
    let text = std::fs::read_to_string(fixture()).expect("fixture");
    text.lines()
        .skip(1)
        .take(n)
        .filter(|l| l.starts_with(r#"{"type":"event""#))
        .count()
}

/// Writes the config `config` (its exporter table's text) as `name` into `dir`, and an expected
/// directory, `dir/expected`, holding only `responses`; returns the expected directory.
fn http_scenario(dir: &Path, name: &str, config: &str, responses: &str) -> PathBuf {
    std::fs::write(dir.join(name), config).expect("write the config");
    let expect = dir.join("expected");
    std::fs::create_dir(&expect).expect("mkdir");
    std::fs::write(expect.join("responses.toml"), responses).expect("write the responses");
    expect
}

#[test]
fn http_requests_are_answered_by_the_script_and_shown_decoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expect = http_scenario(
        dir.path(),
        "otlp.toml",
        "[exporters.c]\nplugin = \"otlp\"\n\
         config = { endpoint = \"http://collector.example:4318\", compression = \"gzip\" }\n\
         queue = { max_batch = 300 }\n",
        "[[answer]]\nstatus = 503\nheaders = { retry-after = \"2\" }\nbody = \"busy\"\n\
         [[answer]]\nstatus = 200\n",
    );
    let config = ["--config", "otlp.toml"];
    let (out, stdout) = wasmtel_test(
        dir.path(),
        "otlp",
        &expect,
        &[&config[..], &["--update"]].concat(),
    );
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.ends_with(", 6 requests\n"), "{stdout}");

    let calls = std::fs::read_to_string(expect.join("calls.txt")).expect("calls.txt");
    assert_eq!(
        calls.lines().nth(1),
        Some(
            "export 1 (300 records): retryable error (retry after 2000 ms): logs to \
             http://collector.example:4318/v1/logs: HTTP 503: busy"
        ),
        "the scripted 503 reaches the plugin, its retry-after header too: {calls}"
    );
    let requests = std::fs::read_to_string(expect.join("requests.txt")).expect("requests.txt");
    let heads: Vec<&str> = requests
        .lines()
        .filter(|l| l.starts_with("POST "))
        .collect();
    assert_eq!(heads.len(), 6, "a request per signal and batch: {heads:?}");
    assert_eq!(heads[0], "POST http://collector.example:4318/v1/logs");
    let first = requests.split("\nPOST ").next().expect("the first request");
    assert!(
        first.contains("\n  content-encoding: gzip\n"),
        "{first:.300}"
    );
    assert!(
        first.contains(" bytes, OTLP logs (protobuf, gzip), as OTLP JSON:\n"),
        "{first:.300}"
    );
    assert!(
        first.ends_with("\n  answered 503 after 0 ms"),
        "{:?}",
        &first[first.len() - 60..]
    );
    // The body decoded: a log record for each event of the first batch.
    assert_eq!(
        first.matches("\"timeUnixNano\"").count(),
        events_in_first(300),
        "every event of the batch, decoded"
    );
    assert!(
        first.contains("\"stringValue\": \"codex_cli_rs\""),
        "{first:.600}"
    );

    // The same run compares equal; another answer makes a difference at its line.
    let (out, stdout) = wasmtel_test(dir.path(), "otlp", &expect, &config);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.ends_with(", 6 requests)\n"), "{stdout}");
    std::fs::write(expect.join("responses.toml"), "[[answer]]\nstatus = 200\n").expect("write");
    let (out, stdout) = wasmtel_test(dir.path(), "otlp", &expect, &config);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:2: differs",
            expect.join("calls.txt").display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}:", expect.join("requests.txt").display()))
            && stdout.contains("-  answered 503 after 0 ms\n+  answered 200 after 0 ms"),
        "{stdout}"
    );
}

#[test]
fn a_delayed_answer_meets_the_request_deadline_and_grpc_is_decoded_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The first request waits past its deadline; the others get gRPC's OK.
    let expect = http_scenario(
        dir.path(),
        "grpc.toml",
        "[exporters.c]\nplugin = \"otlp\"\n\
         config = { endpoint = \"http://collector.example:4317\", protocol = \"grpc\" }\n\
         http = { request_timeout_ms = 300 }\n",
        "[[answer]]\ndelay_ms = 2000\n[[answer]]\n",
    );
    let capture = FixtureRun::new("otlp", fixture())
        .config(dir.path().join("grpc.toml"))
        .responses(expect.join("responses.toml"))
        .run()
        .expect("the run");
    assert!(
        capture.calls[1].starts_with("export 1 (") && capture.calls[1].contains("retryable error"),
        "{:?}",
        capture.calls
    );
    let first = &capture.requests[0];
    assert_eq!(
        first.uri,
        "http://collector.example:4317/opentelemetry.proto.collector.logs.v1.LogsService/Export"
    );
    assert_eq!(
        first.outcome,
        Outcome::TimedOut,
        "its deadline passed first"
    );
    assert!(
        capture.requests[1..]
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Answered(200, _))),
        "{:?}",
        capture.requests.iter().map(|r| &r.uri).collect::<Vec<_>>()
    );
    capture.write(&expect).expect("write");
    let requests = std::fs::read_to_string(expect.join("requests.txt")).expect("requests.txt");
    assert!(
        requests.contains("  not answered: the request's deadline passed first\n"),
        "{requests:.400}"
    );
    for signal in ["logs", "traces", "metrics"] {
        assert!(
            requests.contains(&format!(
                " bytes, OTLP {signal} (protobuf), as OTLP JSON:\n"
            )),
            "{signal}"
        );
    }
    assert!(
        std::fs::read_to_string(expect.join("responses.toml"))
            .expect("kept")
            .contains("delay_ms"),
        "the script is left as it was"
    );

    std::fs::write(expect.join("responses.toml"), "[[answer]]\nstatus = 42\n").expect("write");
    let (out, stdout) = wasmtel_test(dir.path(), "otlp", &expect, &["--config", "grpc.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains(
            "responses.toml: answer 1: status 42 is not a final HTTP status (200 to 599)"
        ),
        "{stderr}"
    );
}
