//! The record format end to end: the recorded session through the real file-jsonl component.

use std::io::BufReader;

use wasmtel::jsonl::parse_line;
use wasmtel::model::Record;
use wasmtel::{Telemetry, replay};
use wasmtel_tests::{assert_delivered_all, config, diff, fixture, only_jsonl};

fn records(text: &str) -> Vec<Record> {
    text.lines()
        .map(|l| parse_line(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Replays `input` into a file-jsonl exporter writing under `dir/out`, through a queue of
/// `capacity` records; returns what it wrote.
fn replay_into(
    dir: &std::path::Path,
    input: &std::path::Path,
    capacity: usize,
) -> (wasmtel::ReplaySummary, String) {
    let text = format!(
        "[telemetry]\nsession_id = \"replay\"\ndir = \"out\"\n\
         [exporters.file]\nplugin = \"file-jsonl\"\nqueue = {{ capacity = {capacity} }}\n"
    );
    let config = config(dir, &text);
    let open = || std::fs::File::open(input).map(BufReader::new);
    let summary = replay(
        &input.display().to_string(),
        open,
        Telemetry::builder(config),
        |_, _| {},
    )
    .unwrap_or_else(|e| panic!("{}", e.chain()));
    let written = std::fs::read_to_string(only_jsonl(&dir.join("out"))).expect("read output");
    (summary, written)
}

#[test]
fn the_fixture_replays_every_record_and_its_output_replays_byte_for_byte() {
    let original = std::fs::read_to_string(fixture()).expect("the fixture");
    let expected = records(&original);
    assert!(
        expected.len() > 500,
        "a session of a few hundred records or more"
    );

    let first = tempfile::tempdir().expect("tempdir");
    let (summary, written) = replay_into(first.path(), &fixture(), 8192);
    let data = expected
        .iter()
        .filter(|r| !matches!(r, Record::Resource(_)))
        .count() as u64;
    assert_eq!((summary.records, summary.resources), (data, 1));
    let exporter = &summary.exporters[0];
    assert_delivered_all(exporter, data);
    assert_eq!(
        records(&written),
        expected,
        "every record, in order, unchanged"
    );
    assert!(
        written == original,
        "the recorded fixture is reproduced exactly:\n{}",
        diff(&original, &written)
    );

    let second = tempfile::tempdir().expect("tempdir");
    let first_output = only_jsonl(&first.path().join("out"));
    // Through a queue far smaller than a batch (of 512): a replay waits for room, so nothing
    // is dropped, and its batches are still cut the same way.
    let (summary, rewritten) = replay_into(second.path(), &first_output, 3);
    assert_delivered_all(&summary.exporters[0], data);
    assert!(
        rewritten == written,
        "replaying the output through a queue of 3 reproduces it:\n{}",
        diff(&written, &rewritten)
    );
}

#[test]
fn the_fixture_is_what_the_session_generator_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorded =
        std::fs::read_to_string(wasmtel_tests::session::record_into(dir.path())).expect("read");
    let committed = std::fs::read_to_string(fixture()).expect("the fixture");
    assert!(
        recorded == committed,
        "regenerate with `cargo run -p wasmtel-tests --bin make-fixture`:\n{}",
        diff(&committed, &recorded)
    );
}

#[test]
fn replay_covers_the_codex_event_catalog() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (summary, text) = replay_into(tmp.path(), &fixture(), 8192);
    assert_delivered_all(&summary.exporters[0], summary.records);
    let names: std::collections::BTreeSet<String> = records(&text)
        .into_iter()
        .filter_map(|r| match r {
            Record::Event(e) => Some(e.name.into_owned()),
            Record::Metric(m) => Some(m.name),
            Record::Span(s) => Some(format!("span:{}", s.name)),
            Record::Resource(_) => None,
        })
        .collect();
    for name in [
        "codex.conversation_starts",
        "codex.user_prompt",
        "codex.api_request",
        "codex.sse_event",
        "codex.tool_decision",
        "codex.tool_result",
        "codex.tool.call",
        "codex.api_request.duration_ms",
        "codex.turn.token_usage",
        "span:session",
        "span:turn",
        "span:model_request",
        "span:tool_call",
        "span:exec_command",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
}
