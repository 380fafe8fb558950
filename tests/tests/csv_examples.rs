//! The CSV example exporters (`examples/plugins`) in Rust, JavaScript (ComponentizeJS) and Python
//! (componentize-py), each run on the fixture in its sandbox with the default limits: each writes
//! the rows of `examples/plugins/expected/records.csv`, byte for byte.

use std::path::Path;

use wasmtel_tests::{
    CSV_JS, CSV_PYTHON, CSV_RUST, assert_delivered_all, config, diff, exporter, fixture_records,
    replay_fixture,
};

/// Replays the fixture through `plugin` and checks its CSV file against the expected one.
fn writes_the_expected_rows(plugin: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[telemetry]\nsession_id = \"csv\"\n\
         [exporters.csv]\nplugin = {plugin:?}\nsandbox = {{ dir = \"out\" }}\n"
    );
    let summary = replay_fixture(config(tmp.path(), &text));
    let records = fixture_records();
    assert_delivered_all(exporter(&summary, "csv"), records);
    let expected =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins/expected/records.csv");
    let expected = std::fs::read_to_string(expected).expect("the expected rows");
    let got = std::fs::read_to_string(tmp.path().join("out/records.csv")).expect("records.csv");
    assert!(got == expected, "{plugin}: {}", diff(&expected, &got));
}

#[test]
fn the_rust_example_writes_the_expected_rows() {
    writes_the_expected_rows(CSV_RUST);
}

#[test]
fn the_javascript_example_writes_the_expected_rows() {
    writes_the_expected_rows(CSV_JS);
}

#[test]
fn the_python_example_writes_the_expected_rows() {
    writes_the_expected_rows(CSV_PYTHON);
}
