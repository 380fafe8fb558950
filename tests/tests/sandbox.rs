//! A plugin that reaches outside the one directory its sandbox grants gets an error inside the
//! sandbox; the host and the other exporters go on.

use wasmtel_tests::{
    ROGUE, assert_delivered_all, config, exporter, fixture, only_jsonl, replay_fixture,
};

fn rogue(name: &str, action: &str, path: &str, dir: Option<&str>) -> String {
    let sandbox = dir
        .map(|d| format!("sandbox = {{ dir = {d:?} }}\n"))
        .unwrap_or_default();
    format!(
        "[exporters.{name}]\nplugin = {ROGUE:?}\nconfig = {{ action = {action:?}, path = {path:?} }}\n{sandbox}"
    )
}

#[test]
fn escapes_from_the_sandbox_directory_fail_inside_the_plugin_and_the_rest_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let secret = root.join("secret.txt");
    std::fs::write(&secret, "secret\n").expect("write secret");
    // A link planted in a plugin's own directory, pointing outside it.
    std::fs::create_dir(root.join("linked")).expect("mkdir");
    std::os::unix::fs::symlink(&secret, root.join("linked/link")).expect("symlink");
    let escaped_abs = root.join("escaped-abs.txt");

    let mut text = "[telemetry]\nsession_id = \"sandbox\"\n[exporters.healthy]\nplugin = \"file-jsonl\"\nsandbox = { dir = \"healthy\" }\n".to_string();
    text += &rogue("read_etc_passwd", "read", "/etc/passwd", Some("r1"));
    text += &rogue("read_dotdot", "read", "../secret.txt", Some("r2"));
    text += &rogue("write_dotdot", "write", "../escaped.txt", Some("r3"));
    text += &rogue(
        "write_absolute",
        "write",
        &escaped_abs.display().to_string(),
        Some("r4"),
    );
    text += &rogue("read_symlink", "read", "link", Some("linked"));
    text += &rogue("read_without_dir", "read", "secret.txt", None);
    text += &rogue("environment", "env", "", None);
    let config = config(root, &text);

    let summary = replay_fixture(config);
    let stats = |name: &str| exporter(&summary, name);

    let healthy = stats("healthy");
    assert_delivered_all(healthy, summary.records);
    let written =
        std::fs::read_to_string(only_jsonl(&root.join("healthy"))).expect("healthy output");
    assert_eq!(
        written,
        std::fs::read_to_string(fixture()).expect("fixture")
    );

    for name in [
        "read_etc_passwd",
        "read_dotdot",
        "write_dotdot",
        "write_absolute",
        "read_symlink",
        "read_without_dir",
        "environment",
    ] {
        let s = stats(name);
        assert_eq!(s.records_exported, 0, "{s}");
        assert_eq!(
            s.dropped_failed, summary.records,
            "every batch failed and was counted: {s}"
        );
        assert_eq!(s.faults, 0, "an I/O error is not a fault: {s}");
        let error = s.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("permanent error: blocked:"),
            "the sandbox refused it: {s}"
        );
    }
    assert!(
        !root.join("escaped.txt").exists() && !escaped_abs.exists(),
        "nothing written outside"
    );
    assert_eq!(
        std::fs::read_to_string(&secret).expect("secret"),
        "secret\n"
    );
    let entries = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("the sandbox directory {dir} was made: {e}"))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        entries("r3"),
        Vec::<String>::new(),
        "nothing written inside either"
    );
    // The link is there and leads to a readable file: the read failed because it leads outside.
    assert_eq!(
        std::fs::read_to_string(root.join("linked/link")).expect("the link, from outside"),
        "secret\n"
    );
    let refused = stats("read_symlink").last_error.clone().unwrap_or_default();
    assert!(
        !refused.contains("No such file"),
        "the link was found and refused: {refused}"
    );
}

#[test]
fn a_probe_inside_the_directory_succeeds_so_the_escape_tests_can_fail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(tmp.path().join("own")).expect("mkdir");
    std::fs::write(tmp.path().join("own/mine.txt"), "mine").expect("write");
    let mut text = String::from("[telemetry]\nsession_id = \"inside\"\n");
    text += &rogue("read_own", "read", "mine.txt", Some("own"));
    text += &rogue("write_own", "write", "written.txt", Some("own"));
    let config = config(tmp.path(), &text);
    let summary = replay_fixture(config);
    for s in &summary.exporters {
        assert_delivered_all(s, summary.records);
    }
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("own/written.txt")).expect("written"),
        "escaped\n"
    );
}
