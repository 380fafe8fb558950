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
    let ring = telemetry.feedback(Duration::from_secs(10)).expect("a ring");
    let taken = String::from_utf8(ring.jsonl()).expect("UTF-8");
    assert_eq!(
        ring.len() as u64 + ring.dropped(),
        500,
        "every record kept or counted"
    );
    assert!(ring.dropped() > 0, "more than the ring holds was recorded");

    // Taking does not stop recording.
    record(&telemetry, 500, 510);
    let later = telemetry.feedback(Duration::from_secs(10)).expect("a ring");
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
    // From code.
    let coded = Telemetry::builder(config(tmp.path(), ""))
        .feedback_ring(1 << 20)
        .start()
        .expect("start");
    coded.event("one").emit();
    let ring = coded.feedback(Duration::from_secs(10)).expect("a ring");
    assert_eq!(ring.len(), 1);
    coded.shutdown();
    // Its name is taken.
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
}
