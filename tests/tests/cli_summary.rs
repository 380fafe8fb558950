//! `wasmtel replay` with a healthy and a trapping exporter: the replay goes on, the process exits
//! normally, and the summary has a line for each exporter.

use wasmtel_tests::{ROGUE, fixture, wasmtel_command};

#[test]
fn a_replay_with_a_trapping_exporter_ends_with_a_summary_line_for_each() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[exporters.healthy]\nplugin = \"file-jsonl\"\n\
         [exporters.trapping]\nplugin = {ROGUE:?}\nconfig = {{ action = \"panic\" }}\nqueue = {{ max_retries = 1, max_batch = 20 }}\n"
    );
    std::fs::write(tmp.path().join("config.toml"), config).expect("write");
    let run = |extra: &[&str]| {
        wasmtel_command(tmp.path())
            .args(["replay", "--config", "config.toml"])
            .args(extra)
            .arg(fixture())
            .env("WASMTEL_LOG", "off")
            .output()
            .expect("run wasmtel")
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exits normally: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("replayed 583 records (and 1 resource) from "),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("  healthy (file-jsonl): 583 exported, 0 dropped"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("  trapping ("), "{stdout}");
    for part in [
        "PARKED, 0 exported, 583 dropped (queue full 0, failed 583, at shutdown 0)",
        "faults",
        "wasm trap",
    ] {
        assert!(lines[2].contains(part), "{part:?} in {}", lines[2]);
    }

    let strict = run(&["--strict"]);
    assert_eq!(
        strict.status.code(),
        Some(2),
        "--strict says that records were lost"
    );
}
