//! Pruning deletes only what file-jsonl can prove it wrote and no writer holds, for generated
//! directories: names near the exporter's pattern and far from it, files that start as its files
//! do and files that do not, some held by another writer. (file-jsonl runs natively here, with the
//! system's locks standing in for the host's.)

use std::collections::BTreeSet;
use std::path::Path;

use proptest::prelude::*;
use wasmtel_sdk::{Context, Exporter};

const LOG: &str = "{\"type\":\"resource\",\"attributes\":{}}\n";

/// A name: built around the pattern's parts, or not.
fn name() -> impl Strategy<Value = String> {
    let id = "[a-z0-9.-]{0,6}";
    prop_oneof![
        id.prop_map(|id| format!("wasmtel-{id}.jsonl")),
        id.prop_map(|id| format!("{id}.jsonl")),
        id.prop_map(|id| format!("wasmtel-{id}.jsonl.bak")),
        (0..5u8).prop_map(|n| format!("telemetry.{n}.jsonl")),
        Just("telemetry.jsonl".to_string()),
        "[a-z]{1,6}\\.(txt|log|json)",
    ]
}

/// The exporter's files, said independently of the plugin: `file`'s parts around a non-empty
/// session id, or a fixed name and its numbered names.
fn named_as(pattern: &str, name: &str) -> bool {
    match pattern.split_once("{session_id}") {
        Some((prefix, suffix)) => {
            name.len() > prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        }
        None => {
            let (stem, ext) = pattern.rsplit_once('.').expect("an extension");
            name == pattern
                || name
                    .strip_prefix(&format!("{stem}."))
                    .and_then(|n| n.strip_suffix(&format!(".{ext}")))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }
    }
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn pruning_deletes_only_the_exporters_own_files_that_no_writer_holds(
        files in prop::collection::btree_map(name(), (any::<bool>(), any::<bool>()), 0..12),
        pattern in prop::sample::select(vec![
            "wasmtel-{session_id}.jsonl",
            "{session_id}.jsonl",
            "telemetry.jsonl",
        ]),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut held = Vec::new();
        for (name, (like_a_log, hold)) in &files {
            let path = dir.path().join(name);
            let content = if *like_a_log { format!("{LOG}{}", "x".repeat(100)) } else { "x".repeat(100) };
            std::fs::write(&path, content).expect("write");
            if *hold {
                held.push(wasmtel_sdk::files::try_lock(&path).expect("held by a writer"));
            }
        }
        let before = names_in(dir.path());
        let config = serde_json::json!({
            "file": pattern,
            "max_total_bytes": 1,
            "max_file_bytes": 0,
            "dir": dir.path(),
        });
        let context = Context { exporter_name: "p".into(), session_id: "now".into() };
        let started = file_jsonl::FileJsonl::init(&config.to_string(), &context);
        let after = names_in(dir.path());
        drop(held);
        for name in before.difference(&after) {
            let (like_a_log, hold) = files[name];
            prop_assert!(named_as(pattern, name), "{name} is not named as {pattern}");
            prop_assert!(like_a_log, "{name} does not start as file-jsonl's files do");
            prop_assert!(!hold, "{name} was held by a writer");
        }
        // What must go went: every unheld file of the exporter's, but the one it writes (the
        // session's last numbered file, if it has one, else its first).
        let first = pattern.replace("{session_id}", "now");
        let active = (1..10u8)
            .rev()
            .map(|n| first.replacen(".jsonl", &format!(".{n}.jsonl"), 1))
            .find(|name| before.contains(name))
            .unwrap_or(first);
        // (An exporter whose file another writer holds does not start, and prunes nothing.)
        for (name, (like_a_log, hold)) in &files {
            if started.is_ok() && named_as(pattern, name) && *like_a_log && !*hold && *name != active {
                prop_assert!(!after.contains(name), "{name} is the exporter's and over budget");
            }
        }
        if let Ok(mut exporter) = started {
            exporter.shutdown().expect("shutdown");
        }
    }
}
