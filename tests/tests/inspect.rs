//! `wasmtel inspect` on every built-in and example plugin, and on plugins this host does not run:
//! what each targets, exports and asks for, its language, and whether its compiled form is cached.

use wasmtel::plugin::{Runtime, builtin, builtin_names};
use wasmtel_tests::{CSV_JS, CSV_PYTHON, CSV_RUST, FUTURE_VERSION, TEXT_LINES, wasmtel_command};

/// `wasmtel inspect --json PLUGIN` with its own cache directory: its exit status and its object.
fn inspect(plugin: &str, cache: &std::path::Path) -> (bool, serde_json::Value) {
    let out = wasmtel_command(cache)
        .args(["inspect", "--json", plugin])
        .env("WASMTEL_CACHE_DIR", cache)
        .output()
        .expect("run wasmtel");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{plugin}: not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

/// The names in a list of the inspection: `exports`, or `imports` (with what each is granted).
fn names(json: &serde_json::Value, list: &str) -> Vec<String> {
    json["inspection"][list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {json:#}"))
        .iter()
        .map(|v| match v {
            serde_json::Value::String(name) => name.clone(),
            import => format!("{} = {}", import["name"], import["grant"]),
        })
        .collect()
}

#[test]
fn every_built_in_and_example_plugin_says_what_it_targets_asks_for_and_is_written_in() {
    let cache = tempfile::tempdir().expect("tempdir");
    let exporter = format!("wasmtel:exporter/exporter@{}", wasmtel_sdk::WIT_VERSION);
    let text = format!("wasmtel:exporter/text-batches@{}", wasmtel_sdk::WIT_VERSION);
    let mut plugins: Vec<(&str, &str)> = builtin_names().into_iter().map(|n| (n, "Rust")).collect();
    plugins.extend([
        (CSV_RUST, "Rust"),
        (CSV_JS, "JavaScript"),
        (CSV_PYTHON, "Python"),
        (TEXT_LINES, "Rust"),
    ]);
    for (plugin, language) in plugins {
        let (ok, json) = inspect(plugin, cache.path());
        assert!(ok && json["loads"] == true, "{plugin}: {json:#}");
        let inspection = &json["inspection"];
        assert_eq!(
            inspection["wit_version"],
            wasmtel_sdk::WIT_VERSION,
            "{plugin}"
        );
        assert_eq!(inspection["language"], language, "{plugin}: {json:#}");
        let size = std::fs::metadata(plugin).map_or_else(
            |_| builtin(plugin).expect("a built-in").len() as u64,
            |m| m.len(),
        );
        assert_eq!(inspection["bytes"], size, "{plugin}");
        let exports = names(&json, "exports");
        assert!(exports.contains(&exporter), "{plugin}: {exports:?}");
        let imports = names(&json, "imports");
        assert_eq!(
            imports
                .iter()
                .any(|i| i.starts_with("\"wasmtel:exporter/log@")),
            plugin != TEXT_LINES,
            "every plugin but the test guest logs: {plugin}: {imports:?}"
        );
        assert!(
            !imports.iter().any(|i| i.contains("not provided")),
            "{plugin}: {imports:?}"
        );
        // The capabilities each asks for: files for file-jsonl and the text plugins, HTTP for
        // otlp and statsig; none of the Rust ones asks for sockets.
        let asks = |interface: &str| imports.iter().any(|i| i.contains(interface));
        match plugin {
            "file-jsonl" => assert!(asks("wasi:filesystem/preopens@"), "{imports:?}"),
            "otlp" | "statsig" => assert!(
                asks("\"wasi:http/outgoing-handler@") && !asks("wasi:filesystem/"),
                "{imports:?}"
            ),
            _ => assert!(
                asks("\"wasi:filesystem/preopens@0.2.") && asks("\" = \"sandbox.dir only"),
                "{plugin}: {imports:?}"
            ),
        }
        if language == "Python" {
            assert!(
                asks("\"wasi:sockets/tcp@0.2.9\" = \"refused: TCP, UDP and name lookup are off\""),
                "{imports:?}"
            );
        }
        assert_eq!(
            exports.contains(&text),
            plugin != CSV_RUST && builtin(plugin).is_none(),
            "text-batches: {plugin}: {exports:?}"
        );
        assert_eq!(json["cache"]["cached"], false, "{plugin}: {json:#}");
    }
}

#[test]
fn inspect_tells_whether_the_compiled_plugin_is_cached() {
    let cache = tempfile::tempdir().expect("tempdir");
    let run = || {
        let out = wasmtel_command(cache.path())
            .args(["inspect", "file-jsonl"])
            .env("WASMTEL_CACHE_DIR", cache.path())
            .output()
            .expect("run wasmtel");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let before = run();
    assert!(
        before.contains("compiled:  not yet: its first load compiles it"),
        "{before}"
    );
    let runtime = Runtime::new(Some(cache.path().to_path_buf())).expect("runtime");
    runtime
        .load("file-jsonl", builtin("file-jsonl").expect("built in"))
        .expect("loads");
    let path = runtime
        .cache_path(builtin("file-jsonl").expect("built in"))
        .expect("a cache");
    let after = run();
    assert!(
        after.contains(&format!("compiled:  cached, {}", path.display())),
        "{after}"
    );
    for line in [
        "plugin:    file-jsonl\n",
        &format!(
            "targets:   wasmtel:exporter@{0}: this host implements {0}, the same series\n",
            wasmtel_sdk::WIT_VERSION
        ),
        "language:  Rust\n",
    ] {
        assert!(after.contains(line), "{line:?} in {after}");
    }
}

#[test]
fn a_plugin_this_host_cannot_run_is_said_so_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, json) = inspect(FUTURE_VERSION, dir.path());
    assert!(!ok, "{json:#}");
    assert_eq!(json["loads"], false);
    assert_eq!(
        json["compatibility"],
        format!(
            "it targets wasmtel:exporter@9.0.0; this host implements {}",
            wasmtel_sdk::WIT_VERSION
        )
    );
    std::fs::write(dir.path().join("notes.wasm"), "not wasm").expect("write");
    let out = wasmtel_command(dir.path())
        .args(["inspect", "notes.wasm"])
        .output()
        .expect("run wasmtel");
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: notes.wasm: it is not WebAssembly (no `\\0asm` header)\n"
    );
    let out = wasmtel_command(dir.path())
        .args(["inspect", "nowhere.wasm"])
        .output()
        .expect("run wasmtel");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: cannot read nowhere.wasm (nor is it a built-in plugin: file-jsonl, otlp, statsig): "
        ),
        "{stderr}"
    );
}
