//! The feedback ring (`[telemetry.feedback]`): it keeps exactly the newest records within its
//! bytes, beside a real file-jsonl exporter given the same records; what it gives back is a
//! fixture that `wasmtel replay` writes out again byte for byte; taking it does not stop
//! recording.

use std::time::Duration;

use wasmtel::Telemetry;
use wasmtel_tests::{config, only_jsonl, output_text, wasmtel_command};

const RING: usize = 8192;

fn record(telemetry: &Telemetry, from: u64, to: u64) {
    for i in from..to {
        telemetry
            .event("codex.tool_result")
            .attr("call_id", format!("call_{i}"))
            .attr("output", "x".repeat((i % 7) as usize * 10))
            .emit();
    }
}

#[test]
fn the_ring_keeps_exactly_the_newest_records_as_a_fixture_that_replays_byte_for_byte() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[telemetry.feedback]\nmax_bytes = {RING}\n\
         [exporters.all]\nplugin = \"file-jsonl\"\nsandbox = {{ dir = \"all\" }}\n"
    );
    let telemetry = Telemetry::builder(config(tmp.path(), &text))
        .resource(vec![wasmtel::KeyValue::new("service.name", "codex_cli_rs")])
        .start()
        .expect("start");
    record(&telemetry, 0, 500);
    let (ring, complete) = telemetry.feedback(Duration::from_secs(10)).expect("a ring");
    assert!(complete, "the ring took everything recorded");
    let taken = String::from_utf8(ring.jsonl()).expect("UTF-8");
    assert_eq!(
        ring.len() as u64 + ring.dropped(),
        500,
        "every record kept or counted"
    );
    assert!(ring.dropped() > 0, "more than the ring holds was recorded");

    // Taking does not stop recording.
    record(&telemetry, 500, 510);
    let (later, _) = telemetry.feedback(Duration::from_secs(10)).expect("a ring");
    assert!(
        String::from_utf8(later.jsonl())
            .expect("UTF-8")
            .contains("\"call_509\""),
        "the ring goes on"
    );
    telemetry.shutdown();

    // Exactly the newest records, as the file-jsonl exporter wrote them, after their resource.
    let all = std::fs::read_to_string(only_jsonl(&tmp.path().join("all"))).expect("written");
    let all: Vec<&str> = all.lines().collect();
    let (resource, records): (Vec<&str>, Vec<&str>) = taken
        .lines()
        .partition(|l| l.starts_with(r#"{"type":"resource""#));
    assert_eq!(resource, [all[0]], "one resource line, first");
    assert!(taken.starts_with(all[0]));
    let newest = &all[all.len() - 10 - records.len()..all.len() - 10];
    assert_eq!(records, newest, "the newest records, byte for byte");
    let bytes: usize = records.iter().map(|l| l.len() + 1).sum();
    assert!(
        bytes <= RING,
        "{bytes} bytes of records in a ring of {RING}"
    );
    assert!(bytes + 300 > RING, "the ring is filled: {bytes}");

    // A fixture: replayed into file-jsonl, it is written out again byte for byte.
    let replay_dir = tmp.path().join("replay");
    std::fs::create_dir(&replay_dir).expect("mkdir");
    std::fs::write(replay_dir.join("feedback.jsonl"), &taken).expect("write");
    let output = wasmtel_command(&replay_dir)
        .args(["replay", "--strict", "feedback.jsonl"])
        .output()
        .expect("run wasmtel");
    assert!(output.status.success(), "{}", output_text(&output));
    let replayed = std::fs::read_to_string(only_jsonl(&replay_dir.join("logs"))).expect("replayed");
    assert_eq!(replayed, taken);
}

#[test]
fn without_a_ring_or_with_telemetry_off_there_is_none() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plain = Telemetry::start(config(tmp.path(), "")).expect("start");
    assert!(plain.feedback(Duration::from_secs(1)).is_none());
    plain.shutdown();
    let off = Telemetry::start(config(
        tmp.path(),
        "[telemetry]\nenabled = false\n[telemetry.feedback]\n",
    ))
    .expect("start");
    assert!(off.feedback(Duration::from_secs(1)).is_none());
    off.shutdown();
}

#[test]
fn runs_of_each_resource_keep_their_resource_line_and_a_record_larger_than_the_ring_is_counted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let max = std::num::NonZeroUsize::new(4096).expect("nonzero");
    let telemetry = Telemetry::builder(config(tmp.path(), ""))
        .feedback_ring(max)
        .start()
        .expect("start");
    let resource = |name: &str| {
        wasmtel::model::Record::Resource(vec![wasmtel::KeyValue::new(
            "service.name",
            name.to_string(),
        )])
    };
    // Resource A, then B, then A again: three runs, each after its resource line.
    for (service, event) in [("a", "first"), ("b", "second"), ("a", "third")] {
        telemetry.record_blocking(resource(service));
        telemetry.event(event).emit();
        assert!(telemetry.flush(Duration::from_secs(10)), "flushed");
    }
    telemetry
        .event("too large")
        .attr("output", "x".repeat(8192))
        .emit();
    let (ring, complete) = telemetry.feedback(Duration::from_secs(10)).expect("a ring");
    assert!(complete);
    let taken = String::from_utf8(ring.jsonl()).expect("UTF-8");
    let kinds: Vec<String> = taken
        .lines()
        .map(|l| {
            let record: serde_json::Value = serde_json::from_str(l).expect("JSON");
            match record["type"].as_str() {
                Some("resource") => format!("resource {}", record["attributes"]["service.name"]),
                _ => format!("event {}", record["name"]),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "resource \"a\"",
            "event \"first\"",
            "resource \"b\"",
            "event \"second\"",
            "resource \"a\"",
            "event \"third\"",
        ]
    );
    assert_eq!(
        (ring.len(), ring.dropped()),
        (3, 1),
        "the large one counted"
    );
    telemetry.shutdown();
}

#[test]
fn the_feedback_exporters_name_is_its_own() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("config.toml"),
        "[telemetry.feedback]\n[exporters.feedback]\nplugin = \"file-jsonl\"\n",
    )
    .expect("write");
    let error = wasmtel::Config::from_file(&tmp.path().join("config.toml"))
        .expect_err("a clash")
        .to_string();
    assert!(
        error.contains("config.toml:1") && error.contains("telemetry.feedback"),
        "{error}"
    );
    // From code, too.
    let clash = config(
        tmp.path(),
        "[exporters.feedback]\nplugin = \"file-jsonl\"\n",
    );
    let error = Telemetry::builder(clash)
        .feedback_ring(std::num::NonZeroUsize::new(1024).expect("nonzero"))
        .start()
        .err()
        .expect("a clash")
        .to_string();
    assert!(error.contains("feedback_ring"), "{error}");
}
