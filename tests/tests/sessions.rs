//! `wasmtel sessions`: a log directory made by replaying the fixture as three sessions (one
//! rotated into several files, one with another model, one damaged), read back by the command;
//! every figure is checked against what the test computes from the sessions' own lines. And
//! the live summary of `Telemetry::session_summary`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::UNIX_EPOCH;

use serde_json::{Value, json};
use wasmtel_tests::{JSDOM, fixture, wasmtel_command};

/// The sessions, oldest first: A (the fixture, rotated into several files), B (an hour later,
/// another model), C (two hours later, with `wasmtel.*` drops; a garbage line and a partial
/// last line added to its file).
const A: &str = "019a0a00-0000-7000-8000-000000000001";
const B: &str = "019a0b00-0000-7000-8000-000000000002";
const C: &str = "019a0c00-0000-7000-8000-000000000003";

/// C's drops, as wasmtel's self-metrics record them: a cumulative sum, whose latest point
/// counts.
const DROPS: [&str; 2] = [
    r#"{"type":"metric","name":"wasmtel.exporter.records","unit":"{record}","scope":{"name":"wasmtel","version":"0.1.0"},"kind":"sum","temporality":"cumulative","monotonic":true,"points":[{"attributes":{"exporter":"otlp","outcome":"exported"},"start":"2026-11-20T11:00:00.000000000Z","time":"2026-11-20T11:01:00.000000000Z","value":40},{"attributes":{"exporter":"otlp","outcome":"dropped_queue_full"},"start":"2026-11-20T11:00:00.000000000Z","time":"2026-11-20T11:01:00.000000000Z","value":3}]}"#,
    r#"{"type":"metric","name":"wasmtel.exporter.records","unit":"{record}","scope":{"name":"wasmtel","version":"0.1.0"},"kind":"sum","temporality":"cumulative","monotonic":true,"points":[{"attributes":{"exporter":"otlp","outcome":"dropped_queue_full"},"start":"2026-11-20T11:00:00.000000000Z","time":"2026-11-20T11:02:00.000000000Z","value":5},{"attributes":{"exporter":"otlp","outcome":"dropped_failed"},"start":"2026-11-20T11:00:00.000000000Z","time":"2026-11-20T11:02:00.000000000Z","value":2}]}"#,
];

/// Records of C beyond the fixture's: an event without a name (a plain log line), and one whose
/// text would end the timeline page's script if it were not escaped.
const PLAIN: &str = r#"{"type":"event","time":"2026-11-20T11:03:00.000000000Z","severity_number":9,"body":"a plain log line"}"#;
/// An event whose name and attribute would command a terminal (an escape, a bell, a carriage
/// return) if printed as they are.
const CONTROLS: &str = concat!(
    r#"{"type":"event","time":"2026-11-20T11:03:40.000000000Z","name":"evil\u001b]0;x\u0007","#,
    // U+009B as it is: JSON escapes only the controls below U+0020.
    "\"attributes\":{\"k\\r\":\"v\u{9b}\"}}"
);
const HOSTILE: &str = r#"{"type":"event","time":"2026-11-20T11:03:30.000000000Z","name":"hostile","attributes":{"text":"</script><script>window.injected=1</script>"}}"#;

/// A line of another version (a field this one does not know), put into C's file: read by the
/// listing and the summary, left out of a fixture.
const FUTURE: &str = r#"{"type":"event","time":"2026-11-20T11:04:00.000000000Z","name":"codex.future_event","attributes":{},"new_field":1}"#;

/// A damaged line in the middle of C's file, and the start of a line still being written.
const GARBAGE: &str = "this line is not a record";
const PARTIAL: &str = r#"{"type":"event","time":"2026-11-20T11:07:00.0"#;

/// The line of C's file before which the garbage line goes.
const GARBAGE_AT: usize = 5;

/// A log directory of three sessions, and the lines each was replayed from.
struct Logs {
    dir: tempfile::TempDir,
    sources: BTreeMap<&'static str, Vec<String>>,
}

impl Logs {
    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// The records of a session's source: its lines but the resource line.
    fn records(&self, session: &str) -> Vec<Value> {
        self.sources[session][1..]
            .iter()
            .map(|l| serde_json::from_str(l).expect("a source line"))
            .collect()
    }

    /// Runs `wasmtel` in the directory; panics unless it succeeds.
    fn run(&self, args: &[&str]) -> Output {
        let output = self.try_run(args);
        assert!(
            output.status.success(),
            "wasmtel {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn try_run(&self, args: &[&str]) -> Output {
        wasmtel_command(self.dir.path())
            .args(args)
            .env("WASMTEL_LOG", "off")
            .output()
            .expect("run wasmtel")
    }

    fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8(self.run(args).stdout).expect("UTF-8")
    }
}

/// Replays `lines` as the session `id` into `dir`/logs, its files `max_file_bytes` at most.
fn replay(dir: &Path, id: &str, lines: &[String], max_file_bytes: u64) {
    let input = dir.join(format!("{id}.source"));
    std::fs::write(&input, lines.join("\n") + "\n").expect("write the source");
    let config = dir.join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!(
            "[telemetry]\nsession_id = \"{id}\"\ndir = \"logs\"\n\
             [exporters.session]\nplugin = \"file-jsonl\"\nconfig = {{ max_file_bytes = {max_file_bytes} }}\n"
        ),
    )
    .expect("write the config");
    let output = wasmtel_command(dir)
        .arg("replay")
        .arg("--strict")
        .arg("--config")
        .arg(&config)
        .arg(&input)
        .env("WASMTEL_LOG", "off")
        .output()
        .expect("run wasmtel");
    assert!(
        output.status.success(),
        "{}",
        wasmtel_tests::output_text(&output)
    );
}

fn make_logs() -> Logs {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture: Vec<String> = std::fs::read_to_string(fixture())
        .expect("fixture")
        .lines()
        .map(String::from)
        .collect();
    let shifted = |hour: &str| -> Vec<String> {
        fixture
            .iter()
            .map(|l| l.replace("T09:", &format!("T{hour}:")))
            .collect()
    };
    let b: Vec<String> = shifted("10")
        .into_iter()
        .map(|l| l.replace("\"model\":\"gpt-5.1-codex\"", "\"model\":\"gpt-5-mini\""))
        .collect();
    let mut c = shifted("11");
    c.extend([DROPS[0], DROPS[1], PLAIN, CONTROLS, HOSTILE].map(String::from));
    replay(dir.path(), A, &fixture, 100_000);
    replay(dir.path(), B, &b, 0);
    replay(dir.path(), C, &c, 0);
    // C's file, damaged: a garbage line in the middle, a last line still being written.
    let c_file = dir.path().join(format!("logs/wasmtel-{C}.jsonl"));
    let written = std::fs::read_to_string(&c_file).expect("C's file");
    let mut lines: Vec<&str> = written.lines().collect();
    lines.insert(GARBAGE_AT - 1, GARBAGE);
    lines.push(FUTURE);
    std::fs::write(&c_file, lines.join("\n") + "\n" + PARTIAL).expect("damage C");
    // What C's log holds: its source, and the line of another version.
    c.push(FUTURE.into());
    Logs {
        dir,
        sources: BTreeMap::from([(A, fixture), (B, b), (C, c)]),
    }
}

/// Nanoseconds since the epoch of an RFC 3339 time.
fn nanos(text: &str) -> u64 {
    humantime::parse_rfc3339(text)
        .expect("a time")
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64
}

/// Every time a record holds: an event's, a span's start and end, its points'.
fn times(record: &Value) -> Vec<u64> {
    let mut times: Vec<u64> = ["time", "start", "end"]
        .iter()
        .filter(|_| record["type"] != "metric")
        .filter_map(|k| record[*k].as_str().map(nanos))
        .collect();
    for point in record["points"].as_array().into_iter().flatten() {
        times.push(nanos(point["time"].as_str().expect("a point's time")));
    }
    times
}

/// The time a record is filtered by: an event's, a span's start, a metric's latest point.
fn filter_time(record: &Value) -> u64 {
    match record["type"].as_str() {
        Some("metric") => times(record).into_iter().max().expect("points"),
        Some("span") => nanos(record["start"].as_str().expect("start")),
        _ => nanos(record["time"].as_str().expect("time")),
    }
}

fn files_of(logs: &Logs, id: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(logs.logs())
        .expect("logs")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains(id))
        .collect();
    files.sort();
    files
}

#[test]
fn list_gives_the_sessions_newest_first_with_their_figures() {
    let logs = make_logs();
    assert!(files_of(&logs, A).len() >= 3, "A is rotated");
    // The default config's directory, ./logs, as `--dir logs`.
    let listed: Value =
        serde_json::from_str(&logs.stdout(&["sessions", "list", "--json"])).expect("JSON");
    let ids: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [C, B, A], "newest first");
    for session in listed.as_array().expect("array") {
        let id = session["id"].as_str().expect("id");
        let records = logs.records(id);
        let all: Vec<u64> = records.iter().flat_map(times).collect();
        let (start, end) = (*all.iter().min().unwrap(), *all.iter().max().unwrap());
        assert_eq!(
            nanos(session["start"].as_str().expect("start")) / 1_000_000,
            start / 1_000_000,
            "{id}'s start"
        );
        assert_eq!(session["duration_ms"], (end - start) / 1_000_000, "{id}");
        let events = records.iter().filter(|r| r["type"] == "event").count();
        assert_eq!(session["events"], events, "{id}'s events");
        let mut models: Vec<&str> = Vec::new();
        for r in &records {
            if let Some(m) = r["attributes"]["model"].as_str()
                && r["type"] == "event"
                && !models.contains(&m)
            {
                models.push(m);
            }
        }
        assert_eq!(session["models"], json!(models), "{id}'s models");
        let files = files_of(&logs, id);
        let bytes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).expect("size").len())
            .sum();
        assert_eq!(session["bytes"], bytes, "{id}'s size");
        let listed_files: Vec<PathBuf> = session["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| logs.dir.path().join(f["path"].as_str().expect("path")))
            .collect();
        assert_eq!(listed_files.len(), files.len(), "{id}'s files");
    }
    assert_eq!(listed[2]["models"], json!(["gpt-5.1-codex"]));
    assert_eq!(listed[1]["models"], json!(["gpt-5-mini"]));

    // As a table, with --limit and --dir.
    let table = logs.stdout(&["sessions", "list", "--limit", "2", "--dir", "logs"]);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert!(rows[0].starts_with("SESSION"), "{table}");
    assert!(rows[1].starts_with(C) && rows[2].starts_with(B), "{table}");
    assert!(rows[1].contains("2026-11-20T11:00:00.000Z"), "{table}");
    assert!(rows[3].contains("1 older session (--limit 0"), "{table}");
    // The damaged lines of the sessions listed are told on standard error.
    let stderr =
        String::from_utf8(logs.run(&["sessions", "list", "--limit", "1"]).stderr).expect("UTF-8");
    assert!(
        stderr.contains("skipped: 1 invalid lines, 1 partial last lines"),
        "{stderr}"
    );
}

/// The records `events --json` wrote (the resource lines left out).
fn json_records(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| !l.starts_with(r#"{"type":"resource""#))
        .collect()
}

#[test]
fn every_filter_of_events_picks_what_the_lines_hold() {
    let logs = make_logs();
    let source = &logs.sources[B];
    let records = logs.records(B);
    let pick = |keep: &dyn Fn(&Value, &str) -> bool| -> Vec<&str> {
        records
            .iter()
            .zip(&source[1..])
            .filter(|(r, l)| keep(r, l))
            .map(|(_, l)| l.as_str())
            .collect()
    };
    // A prefix of only B's id names it.
    let events = |args: &[&str]| {
        let mut all = vec!["sessions", "events", &B[..6], "--json"];
        all.extend(args);
        logs.stdout(&all)
    };

    let out = events(&["--types", "codex.api_request"]);
    assert!(out.starts_with(&source[0]), "the resource line first");
    assert_eq!(
        json_records(&out),
        pick(&|r, _| r["name"] == "codex.api_request")
    );
    let out = events(&["--types", "span,codex.sse_*"]);
    assert_eq!(
        json_records(&out),
        pick(&|r, _| r["type"] == "span"
            || r["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("codex.sse_")))
    );
    let out = events(&["--contains", "rate limited"]);
    let expected = pick(&|_, l| l.contains("rate limited"));
    assert!(!expected.is_empty());
    assert_eq!(json_records(&out), expected);
    // Text with a quote matches as JSON writes it in a string.
    let out = events(&["--contains", "{\"query\":"]);
    let expected = pick(&|_, l| l.contains(r#"{\"query\":"#));
    assert!(!expected.is_empty());
    assert_eq!(json_records(&out), expected);

    let start = records.iter().flat_map(times).min().expect("a time");
    let (since, until) = (start + 60_000_000_000, start + 120_000_000_000);
    let out = events(&["--since", "+1m", "--until", "+2m"]);
    let expected = pick(&|r, _| (since..=until).contains(&filter_time(r)));
    assert!(!expected.is_empty() && expected.len() < records.len() / 2);
    assert_eq!(json_records(&out), expected);
    let out = events(&[
        "--since",
        "2026-11-20T10:01:00Z",
        "--until",
        "2026-11-20T10:02:00",
    ]);
    assert_eq!(json_records(&out), expected, "RFC 3339, UTC without a zone");

    // Compact lines, cut to the width; and the header.
    let text = logs.stdout(&["sessions", "events", B, "--width", "60", "--header"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("session {B}"));
    let body: Vec<&str> = lines
        .iter()
        .skip_while(|l| !l.starts_with("TIME"))
        .skip(1)
        .copied()
        .collect();
    assert_eq!(body.len(), records.len(), "{text}");
    assert!(body.iter().all(|l| l.chars().count() <= 60), "{text}");
    assert!(
        body[0].starts_with("10:00:00.000  event   codex.conversation_starts"),
        "{}",
        body[0]
    );
    // Failed spans say so, with their message.
    let failed = records
        .iter()
        .filter(|r| r["type"] == "span" && r["status"]["code"] == "error")
        .count();
    assert!(failed > 0);
    let spans = logs.stdout(&["sessions", "events", B, "--types", "span", "--width", "0"]);
    assert_eq!(spans.matches(" ERROR ").count(), failed, "{spans}");
    assert!(
        spans.contains(r#" ERROR "error: command failed\nexit status 101" "#),
        "the message, its newline escaped: {spans}"
    );
    // --width 0 cuts nothing.
    let uncut = logs.stdout(&["sessions", "events", B, "--width", "0"]);
    assert!(uncut.lines().any(|l| l.chars().count() > 250), "{uncut}");
    let full = logs.stdout(&["sessions", "events", B, "--types", "codex.api_request"]);
    let first = full.lines().next().expect("a line");
    assert!(
        first.contains("duration_ms=862")
            && first.contains("http.response.status_code=200")
            && !first.contains("conversation.id"),
        "the attributes that tell, not the session's metadata: {first}"
    );

    // Bad names and times are refused, saying why.
    let bad = logs.try_run(&["sessions", "events", "019a0"]);
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("is the start of 3 sessions' ids"), "{said}");
    let bad = logs.try_run(&["sessions", "events", "nope"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no session \"nope\" in logs"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let bad = logs.try_run(&["sessions", "events", B, "--since", "yesterday"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--since yesterday: not a time"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn events_json_of_a_rotated_session_is_its_fixture_and_replays_byte_for_byte() {
    let logs = make_logs();
    // Of C, the lines a replay would refuse are left out and named: the garbage line, and the
    // line of another version.
    let output = logs.run(&["sessions", "events", "latest", "--json"]);
    let out = String::from_utf8(output.stdout).expect("UTF-8");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let source = &logs.sources[C];
    let expected: Vec<&str> = source[1..]
        .iter()
        .filter(|l| l.as_str() != FUTURE)
        .map(String::as_str)
        .collect();
    assert_eq!(json_records(&out), expected, "latest is C");
    assert!(
        stderr.contains("skipped: 2 invalid lines, 1 partial"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown field `new_field`"), "{stderr}");

    let out = logs.run(&["sessions", "events", A, "--json"]).stdout;
    let fixture = std::fs::read(fixture()).expect("fixture");
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&fixture),
        "A's files, read in order, are the fixture it was replayed from"
    );
    // Replayed as a fixture, it is written again byte for byte.
    let again = logs.dir.path().join("again.jsonl");
    std::fs::write(&again, &out).expect("write");
    std::fs::create_dir(logs.dir.path().join("replayed")).expect("dir");
    std::fs::write(
        logs.dir.path().join("replayed.toml"),
        "[telemetry]\ndir = \"replayed\"\nsession_id = \"again\"\n",
    )
    .expect("config");
    logs.run(&[
        "replay",
        "--strict",
        "--config",
        "replayed.toml",
        "again.jsonl",
    ]);
    let written =
        std::fs::read(logs.dir.path().join("replayed/wasmtel-again.jsonl")).expect("replayed");
    assert_eq!(written, out);
}

/// The nearest-rank quantile `q` of `values`.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((q * values.len() as f64).ceil() as usize).max(1) - 1]
}

/// Whether `got` is `exact` within the summary's 1 %.
fn near(got: &Value, exact: f64) -> bool {
    let got = got.as_f64().expect("a number");
    (got - exact).abs() <= exact * 0.01 + 1.0
}

#[test]
fn summary_figures_are_the_sums_of_the_lines() {
    let logs = make_logs();
    let output = logs.run(&["sessions", "summary", C, "--json"]);
    let value: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let s = &value["summary"];
    let records = logs.records(C);
    let events: Vec<&Value> = records.iter().filter(|r| r["type"] == "event").collect();
    let named = |name: &'static str| events.iter().filter(move |e| e["name"] == name);
    let attr = |e: &Value, k: &str| e["attributes"][k].clone();

    // Counts per event name, and of each type.
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &events {
        *counts.entry(e["name"].as_str().unwrap_or("")).or_default() += 1;
    }
    let got: BTreeMap<&str, u64> = s["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, counts);
    for (kind, field) in [
        ("event", "event_records"),
        ("span", "span_records"),
        ("metric", "metric_records"),
    ] {
        assert_eq!(
            s[field],
            records.iter().filter(|r| r["type"] == kind).count(),
            "{field}"
        );
    }
    // Tokens of the completed responses.
    let completed: Vec<&&Value> = named("codex.sse_event")
        .filter(|e| attr(e, "event.kind") == "response.completed")
        .collect();
    let sum = |k: &str| -> u64 {
        completed
            .iter()
            .map(|e| attr(e, k).as_u64().unwrap_or(0))
            .sum()
    };
    let tokens = &s["tokens"][0];
    assert_eq!(tokens["model"], "gpt-5.1-codex");
    assert_eq!(tokens["responses"], completed.len());
    assert_eq!(tokens["input"], sum("input_token_count"));
    assert_eq!(tokens["cached"], sum("cached_token_count"));
    assert_eq!(tokens["output"], sum("output_token_count"));
    assert_eq!(tokens["reasoning"], sum("reasoning_token_count"));
    assert_eq!(
        tokens["total"],
        sum("input_token_count") + sum("output_token_count")
    );
    // API requests.
    let requests: Vec<&&Value> = named("codex.api_request").collect();
    let r = &s["requests"];
    assert_eq!(r["count"], requests.len());
    let errors = requests
        .iter()
        .filter(|e| {
            attr(e, "http.response.status_code").as_u64().unwrap_or(0) >= 400
                || !attr(e, "error.message").is_null()
        })
        .count();
    assert!(errors > 0);
    assert_eq!(r["errors"], errors);
    let mut statuses: BTreeMap<u64, u64> = BTreeMap::new();
    for e in &requests {
        *statuses
            .entry(attr(e, "http.response.status_code").as_u64().unwrap_or(0))
            .or_default() += 1;
    }
    let got: BTreeMap<u64, u64> = r["statuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
        .collect();
    assert_eq!(got, statuses);
    let mut latencies: Vec<f64> = requests
        .iter()
        .map(|e| attr(e, "duration_ms").as_f64().expect("duration"))
        .collect();
    let latency = &r["latency_ms"];
    assert_eq!(latency["count"], latencies.len());
    assert!(
        near(&latency["p50"], quantile(&mut latencies, 0.5)),
        "{latency}"
    );
    assert!(
        near(&latency["p90"], quantile(&mut latencies, 0.9)),
        "{latency}"
    );
    assert_eq!(latency["max"], quantile(&mut latencies, 1.0));
    // Tool calls per tool.
    let tools = s["tools"].as_array().expect("tools");
    let mut by_tool: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in named("codex.tool_result") {
        by_tool
            .entry(attr(e, "tool_name").as_str().expect("tool").into())
            .or_default()
            .push(e);
    }
    assert_eq!(tools.len(), by_tool.len());
    for tool in tools {
        let calls = &by_tool[tool["tool"].as_str().expect("tool")];
        assert_eq!(tool["calls"], calls.len());
        let ok = calls
            .iter()
            .filter(|e| attr(e, "success") == "true")
            .count();
        assert_eq!(tool["succeeded"], ok, "{tool}");
        let mut durations: Vec<f64> = calls
            .iter()
            .map(|e| attr(e, "duration_ms").as_f64().expect("duration"))
            .collect();
        assert!(
            near(&tool["duration_ms"]["p50"], quantile(&mut durations, 0.5)),
            "{tool}"
        );
        assert_eq!(tool["duration_ms"]["max"], quantile(&mut durations, 1.0));
    }
    // Turns, times, drops and the damaged lines.
    assert_eq!(s["turns"], named("codex.user_prompt").count());
    let all: Vec<u64> = records.iter().flat_map(times).collect();
    assert_eq!(s["start_unix_nano"], *all.iter().min().unwrap());
    assert_eq!(s["end_unix_nano"], *all.iter().max().unwrap());
    assert_eq!(
        s["drops"],
        json!([
            { "exporter": "otlp", "reason": "failed", "records": 2 },
            { "exporter": "otlp", "reason": "queue_full", "records": 5 },
        ])
    );
    assert_eq!(value["skipped"]["invalid"], 1);
    assert_eq!(value["skipped"]["partial"], 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("wasmtel-{C}.jsonl:{GARBAGE_AT}: skipped: ")),
        "the garbage line is named by file and line: {stderr}"
    );

    // Control characters from the logs are printed escaped, never as they are.
    for args in [&["sessions", "summary", C][..], &["sessions", "events", C]] {
        let shown = logs.stdout(args);
        assert!(
            !shown.contains(['\u{1b}', '\u{7}', '\r', '\u{9b}']),
            "{args:?} printed a control character"
        );
        assert!(shown.contains(r"evil\u{1b}]0;x\u{7}"), "{args:?}: {shown}");
    }
    let evil = logs.stdout(&["sessions", "events", C, "--types", "evil*"]);
    assert!(evil.contains(r#"k\u{d}="v\u{9b}""#), "{evil}");

    // The same as text.
    let text = logs.stdout(&["sessions", "summary", C]);
    for part in [
        format!("session   {C}"),
        format!("records   {} events", events.len()),
        format!("API requests  {} ({errors} errors)", requests.len()),
        "otlp                     queue_full              5".to_string(),
    ] {
        assert!(text.contains(&part), "{part:?} in\n{text}");
    }
}

#[test]
fn the_timeline_page_holds_every_span_and_event_and_runs_without_errors() {
    let logs = make_logs();
    let page = logs.dir.path().join("c.html");
    let said = logs.stdout(&["sessions", "timeline", C, "-o", "c.html"]);
    assert!(said.starts_with("wrote c.html"), "{said}");
    let html = std::fs::read_to_string(&page).expect("the page");
    // Self-contained: nothing is fetched.
    for fetch in [
        "src=",
        "href=",
        "<link",
        "@import",
        "url(",
        "fetch(",
        "XMLHttpRequest",
    ] {
        assert!(!html.contains(fetch), "the page holds {fetch:?}");
    }
    let records = logs.records(C);
    let count = |kind: &str| records.iter().filter(|r| r["type"] == kind).count();
    let (spans, events) = (count("span"), count("event"));
    // The records it carries are those of the session's files.
    let data = html
        .split_once(r#"<script type="application/json" id="data">"#)
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .expect("the page's data")
        .0;
    let data: Value = serde_json::from_str(data).expect("the data is JSON");
    assert_eq!(data["session"], C);
    let carried: Vec<&Value> = data["records"]
        .as_array()
        .expect("records")
        .iter()
        .collect();
    assert_eq!(carried.len(), spans + events);
    let turns = records
        .iter()
        .filter(|r| r["name"] == "codex.user_prompt")
        .count();
    let failed = records
        .iter()
        .filter(|r| r["type"] == "span" && r["status"]["code"] == "error")
        .count();

    // Its script draws every span and every event, without an error: in jsdom always, and in
    // Chromium where it is installed.
    let run = std::process::Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/pages/run-page.cjs"))
        .arg(&page)
        .args(["[data-span-id]", "[data-event]", "[data-turn]", ".bar.err"])
        .env("JSDOM", JSDOM)
        .output()
        .expect("node runs");
    assert!(run.status.success(), "{}", wasmtel_tests::output_text(&run));
    let drawn: Value = serde_json::from_slice(&run.stdout).expect("JSON");
    assert_eq!(drawn["errors"], json!([]), "{drawn}");
    assert_eq!(drawn["body"]["data-errors"], "0", "{drawn}");
    assert_eq!(drawn["counts"]["[data-span-id]"], spans, "{drawn}");
    assert_eq!(drawn["counts"]["[data-event]"], events, "{drawn}");
    assert_eq!(drawn["counts"]["[data-turn]"], turns, "{drawn}");
    assert_eq!(
        drawn["counts"][".bar.err"], failed,
        "failed spans are red: {drawn}"
    );
    assert_eq!(
        drawn["injected"],
        Value::Null,
        "a record's text ran as a script"
    );

    let chromium = Path::new("/usr/bin/chromium");
    if chromium.exists() {
        let profile = tempfile::tempdir().expect("profile");
        let dom = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium runs");
        let dom = String::from_utf8_lossy(&dom.stdout);
        let body = format!(r#"<body data-spans="{spans}" data-events="{events}" data-errors="0">"#);
        assert!(dom.contains(&body), "Chromium drew: {:.300}", dom);
    } else {
        eprintln!("no /usr/bin/chromium: the page ran in jsdom only");
    }
}

#[test]
fn the_live_summary_is_the_summary_of_the_logs_and_counts_drops() {
    let logs = make_logs();
    let (from_logs, _) = {
        let value: Value =
            serde_json::from_slice(&logs.run(&["sessions", "summary", B, "--json"]).stdout)
                .expect("JSON");
        (value["summary"].clone(), ())
    };
    // B's records, recorded live into a telemetry whose only exporter takes batches of at most
    // 300 bytes.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = wasmtel_tests::config(
        dir.path(),
        &format!(
            "[telemetry]\nsession_id = \"{B}\"\n\
             [exporters.tiny]\nplugin = \"file-jsonl\"\nsandbox = {{ dir = \"{}\" }}\n\
             queue = {{ max_batch_bytes = 300 }}\n",
            dir.path().display()
        ),
    );
    let telemetry = wasmtel::Telemetry::builder(config)
        .session_summary()
        .start()
        .expect("start");
    let source = logs.dir.path().join(format!("{B}.source"));
    let reader = wasmtel::jsonl::Reader::new(
        std::io::BufReader::new(std::fs::File::open(&source).expect("source")),
        "B",
    );
    for record in reader {
        telemetry.record(record.expect("a record"));
    }
    assert!(telemetry.flush(std::time::Duration::from_secs(30)));
    let live = telemetry.session_summary().expect("kept");
    let live = serde_json::to_value(&live).expect("serializes");
    // All but metrics (not routed to the summary) and drops (the live counters').
    for field in [
        "session_id",
        "start_unix_nano",
        "end_unix_nano",
        "event_records",
        "span_records",
        "events",
        "spans",
        "models",
        "tokens",
        "requests",
        "tools",
        "turns",
    ] {
        assert_eq!(live[field], from_logs[field], "{field}");
    }
    let stats = telemetry.stats();
    let tiny = stats.iter().find(|s| s.name == "tiny").expect("tiny");
    // Records laid out larger than a batch may be are dropped at the record call, whatever the
    // timing: the summary tells them as the exporter's counters do.
    assert!(tiny.dropped_too_large > 0, "{tiny:?}");
    assert_eq!(tiny.dropped(), tiny.dropped_too_large, "{tiny:?}");
    assert_eq!(
        live["drops"],
        json!([{ "exporter": "tiny", "reason": "too_large", "records": tiny.dropped_too_large }]),
    );
    telemetry.shutdown();

    // The summary's exporter has a name of its own.
    let clash = wasmtel_tests::config(
        dir.path(),
        "[telemetry]\nsession_summary = true\n[exporters.session-summary]\nplugin = \"file-jsonl\"\n",
    );
    let error = wasmtel::Telemetry::start(clash)
        .err()
        .expect("a clash")
        .to_string();
    assert!(
        error.contains("session_summary") && error.contains("`session-summary`"),
        "{error}"
    );
}
