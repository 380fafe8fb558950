//! Plugins of the `text-plugin` world take each batch as lines of the record format: the lines
//! file-jsonl writes for the same records.

use wasmtel_tests::{
    TEXT_LINES, assert_delivered_all, config, diff, exporter, fixture_records, only_jsonl,
    replay_fixture,
};

#[test]
fn a_text_plugin_gets_the_lines_file_jsonl_writes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Small batches for the text plugin: every one of them starts with the resource line.
    let text = format!(
        "[telemetry]\nsession_id = \"text\"\n\
         [exporters.session]\nplugin = \"file-jsonl\"\nsandbox = {{ dir = \"jsonl\" }}\n\
         [exporters.text]\nplugin = {TEXT_LINES:?}\nsandbox = {{ dir = \"text\" }}\n\
         queue = {{ max_batch = 50 }}\n"
    );
    let summary = replay_fixture(config(tmp.path(), &text));
    let records = fixture_records();
    assert_delivered_all(exporter(&summary, "session"), records);
    let stats = exporter(&summary, "text");
    assert_delivered_all(stats, records);
    assert!(stats.batches_ok > 2, "{stats}");
    let expected = std::fs::read_to_string(only_jsonl(&tmp.path().join("jsonl"))).expect("jsonl");
    let got = std::fs::read_to_string(tmp.path().join("text/lines.jsonl")).expect("lines");
    assert!(expected == got, "{}", diff(&expected, &got));
}
