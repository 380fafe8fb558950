//! `wasmtel check --fixture`: every exporter gets a recorded session's records as real batches,
//! so what `init` alone lets pass (a plugin that fails on data, a destination that is down) is
//! found, named with the batch; records reach the real destination, files a temporary directory.

use std::path::Path;

use wasmtel_tests::receiver::{Decoded, HTTP_PATHS, Receiver};
use wasmtel_tests::{ROGUE, fixture, fixture_records, output_text, wasmtel_command};

fn check(dir: &Path, more: &[&str]) -> (bool, String) {
    let output = wasmtel_command(dir)
        .args(["check", "--config", "config.toml"])
        .args(more)
        .output()
        .expect("run wasmtel");
    (output.status.success(), output_text(&output))
}

#[test]
fn a_fixture_finds_what_init_alone_lets_pass_and_writes_nowhere_the_config_says() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("config.toml"),
        format!(
            "[exporters.files]\nplugin = \"file-jsonl\"\nsandbox = {{ dir = \"logs\" }}\n\
             [exporters.bad]\nplugin = {ROGUE:?}\nconfig = {{ action = \"panic\" }}\n\
             queue = {{ max_batch = 100 }}\n"
        ),
    )
    .expect("write");
    let (ok, text) = check(tmp.path(), &[]);
    assert!(ok, "init alone passes: {text}");
    assert!(
        text.contains("files: ok\n") && text.contains("bad: ok\n"),
        "{text}"
    );

    let fixture = fixture();
    let (ok, text) = check(tmp.path(), &["--fixture", fixture.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    let records = fixture_records();
    assert!(
        text.contains(&format!(
            "files: ok: {records} records in 2 batches exported, then flushed"
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "bad: error: config.toml:5: exporter `bad`: export of batch 1 of 6 (100 records): \
             plugin fault:"
        ) && text.contains("rogue panics on purpose"),
        "{text}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("logs"))
        .map(|d| d.map(|e| e.expect("entry").file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing written in sandbox.dir: {left:?}");
}

#[test]
fn a_fixture_reaches_the_destination_and_a_destination_down_is_named() {
    let receiver = Receiver::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let write = |endpoint: &str| {
        std::fs::write(
            tmp.path().join("config.toml"),
            format!(
                "[exporters.collector]\nplugin = \"otlp\"\nconfig = {{ endpoint = {endpoint:?} }}\n\
                 queue = {{ max_batch = 256 }}\n"
            ),
        )
        .expect("write")
    };
    write(&format!("http://{}", receiver.addr));
    let fixture = fixture();
    let fixture = ["--fixture", fixture.to_str().expect("utf-8")];
    let (ok, text) = check(tmp.path(), &fixture);
    assert!(ok, "{text}");
    let records = fixture_records();
    assert!(
        text.contains(&format!(
            "collector: ok: {records} records in 3 batches exported, then flushed"
        )),
        "{text}"
    );
    let decoded = Decoded::of(&receiver.requests(), HTTP_PATHS);
    let (events, spans, metrics) = decoded.counts();
    assert_eq!(events + spans + metrics, records as usize);

    // Nothing listens there once the receiver is gone.
    let addr = receiver.addr;
    drop(receiver);
    write(&format!("http://{addr}"));
    let (ok, text) = check(tmp.path(), &fixture);
    assert!(!ok, "{text}");
    assert!(
        text.contains("collector: error: config.toml:2: exporter `collector`: export of batch 1 of 3 (256 records): retryable error"),
        "{text}"
    );
}
