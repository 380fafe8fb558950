//! The example run as it is, in whichever build the test is compiled in: with `telemetry`, the
//! real file-jsonl plugin writes the turn; without it, the same code records nothing and writes
//! nothing.

use serde_json::Value;

#[test]
fn the_turn_is_written_with_the_feature_and_nothing_is_without() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let stats = optional_telemetry::run(tmp.path()).expect("the example runs");
    let written = tmp.path().join("app.jsonl");
    if !cfg!(feature = "telemetry") {
        assert!(stats.is_empty(), "{stats:?}");
        let entries: Vec<_> = std::fs::read_dir(tmp.path()).expect("dir").collect();
        assert!(entries.is_empty(), "nothing written: {entries:?}");
        return;
    }
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!((stats[0].name.as_str(), stats[0].dropped()), ("app", 0));
    let text = std::fs::read_to_string(&written).expect("app.jsonl written");
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let names = |kind: &str| -> Vec<String> {
        let mut names: Vec<String> = records
            .iter()
            .filter(|r| r["type"] == kind)
            .map(|r| r["name"].as_str().expect("a name").to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("event"), ["codex.tool_result", "codex.user_prompt"]);
    assert_eq!(names("span"), ["tool_call", "turn"]);
    assert_eq!(
        names("metric"),
        [
            "app.turns",
            "codex.session.started",
            "codex.tool.call",
            "codex.tool.call.duration_ms"
        ]
    );
    // `codex.tool.call`: the session facade's point, and the catalog's with its global context.
    let tool_call = records
        .iter()
        .find(|r| r["name"] == "codex.tool.call")
        .expect("codex.tool.call");
    let points = tool_call["points"].as_array().expect("points");
    assert_eq!(points.len(), 2, "{tool_call}");
    assert!(
        points.iter().any(|p| p["attributes"]["surface"] == "exec"
            && p["attributes"]["auth_mode"] == "api"
            && p["attributes"]["tool"] == "shell"
            && p["value"] == 1),
        "{tool_call}"
    );
    assert_eq!(
        stats[0].records_exported,
        records.iter().filter(|r| r["type"] != "resource").count() as u64
    );
}
