//! Config layers: a Codex fork's `[telemetry]` with `[telemetry.logs.NAME]` tables works
//! unchanged, and the environment (`CODEX_OTEL_ENABLED`, `OTEL_SDK_DISABLED`) and the command's
//! `--telemetry` / `--no-telemetry` turn it on or off, in that order of precedence.

use std::path::Path;
use std::process::Output;

use wasmtel_tests::{fixture, output_text, wasmtel_command};

const SEED_000: &str = r#"[telemetry]
enabled = true
dir = "logs"
max_total_bytes = 104857600

[telemetry.logs.tui]
file = "codex-tui.log"

[telemetry.logs.session]
enabled = true
file = "codex-litellm-session.jsonl"

[telemetry.logs.debug]
enabled = false
"#;

fn wasmtel(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    wasmtel_command(dir)
        .args(args)
        .envs(env.iter().copied())
        .env("WASMTEL_LOG", "warn")
        .output()
        .expect("run wasmtel")
}

/// Replays the fixture with the seed's config in a fresh directory, with `args` and `env`;
/// returns the output and the files written into `logs/`.
fn replay(args: &[&str], env: &[(&str, &str)]) -> (String, Vec<String>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.toml"), SEED_000).expect("write");
    let fixture = fixture();
    let mut all = vec!["replay", "--config", "config.toml"];
    all.extend_from_slice(args);
    all.push(fixture.to_str().expect("a UTF-8 path"));
    let output = wasmtel(tmp.path(), &all, env);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    let mut files: Vec<String> = std::fs::read_dir(tmp.path().join("logs"))
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if let Some(name) = files.first() {
        let written =
            std::fs::read_to_string(tmp.path().join("logs").join(name)).expect("a log file");
        assert_eq!(
            written,
            std::fs::read_to_string(fixture).expect("fixture"),
            "{name} holds the session"
        );
    }
    (text, files)
}

#[test]
fn a_codex_forks_telemetry_logs_tables_work_unchanged() {
    let (output, files) = replay(&[], &[]);
    assert_eq!(
        files,
        ["codex-litellm-session.jsonl", "codex-tui.log"],
        "{output}"
    );
    assert!(
        output.contains("tui (file-jsonl): 583 exported")
            && output.contains("session (file-jsonl): 583 exported"),
        "{output}"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.toml"), SEED_000).expect("write");
    let check = wasmtel(tmp.path(), &["check", "--config", "config.toml"], &[]);
    let out = output_text(&check);
    assert!(check.status.success(), "{out}");
    assert!(
        out.contains("tui: ok") && out.contains("session: ok") && !out.contains("debug"),
        "{out}"
    );
}

#[test]
fn the_environment_and_the_command_turn_telemetry_off_and_on() {
    for (args, env) in [
        (&["--no-telemetry"][..], &[][..]),
        (&[], &[("CODEX_OTEL_ENABLED", "false")]),
        (&[], &[("OTEL_SDK_DISABLED", "true")]),
    ] {
        let (output, files) = replay(args, env);
        assert!(files.is_empty(), "{args:?} {env:?}: {files:?}\n{output}");
    }
    // The command's switch wins over the environment.
    let (output, files) = replay(&["--telemetry"], &[("CODEX_OTEL_ENABLED", "0")]);
    assert_eq!(files.len(), 2, "{output}");
    // A bad value is an error naming the variable.
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.toml"), SEED_000).expect("write");
    let bad = wasmtel(
        tmp.path(),
        &["check", "--config", "config.toml"],
        &[("CODEX_OTEL_ENABLED", "maybe")],
    );
    let out = output_text(&bad);
    assert!(!bad.status.success(), "{out}");
    assert!(
        out.contains("`CODEX_OTEL_ENABLED`: `maybe` is not true or false"),
        "{out}"
    );
}
