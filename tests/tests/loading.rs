//! Plugins that cannot be loaded: each error says which exporter, which plugin, and what is
//! wrong with it; nothing starts.

use wasmtel::{Telemetry, check};
use wasmtel_tests::{EXTRA_IMPORT, FUTURE_VERSION, INCOMPLETE, RELEASED_0_2_0, ROGUE, config};

/// Starting with `plugin` as the one exporter's plugin fails; returns the error.
fn load_error(plugin: &str) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(
        tmp.path(),
        &format!("[exporters.odd]\nplugin = {plugin:?}\n"),
    );
    let from_check = check(&config, None)
        .remove(0)
        .1
        .expect_err("check fails")
        .chain();
    let error = Telemetry::start(config).err().expect("start fails").chain();
    assert_eq!(error, from_check, "check and start say the same");
    assert!(
        error.contains("config.toml:2: exporter `odd`: plugin `"),
        "{error}"
    );
    assert!(
        std::fs::read_dir(tmp.path()).expect("ls").count() == 1,
        "nothing but the config"
    );
    error
}

#[test]
fn another_version_of_the_interface_is_named() {
    let error = load_error(FUTURE_VERSION);
    assert!(
        error.contains("it implements `wasmtel:exporter/exporter@9.0.0`, but this host implements `wasmtel:exporter/exporter@0.2.2`"),
        "{error}"
    );
}

#[test]
fn an_import_the_host_does_not_provide_is_named() {
    let error = load_error(EXTRA_IMPORT);
    assert!(error.contains("test:extra/telepathy"), "{error}");
}

#[test]
fn missing_export_functions_are_named() {
    let error = load_error(INCOMPLETE);
    assert!(
        error.contains("it does not implement all of `wasmtel:exporter/exporter@0.2.2`"),
        "{error}"
    );
    assert!(error.contains("export-batch"), "{error}");
}

#[test]
fn corrupt_bytes_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(ROGUE).expect("rogue");
    let corrupt = tmp.path().join("corrupt.wasm");
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).expect("write");
    let error = load_error(corrupt.to_str().expect("utf-8"));
    assert!(error.contains("corrupt.wasm"), "{error}");
    assert!(
        error.contains("unexpected end") || error.contains("failed to parse"),
        "{error}"
    );
}

#[test]
fn compiled_plugins_are_cached_and_a_bad_cache_entry_is_compiled_again() {
    use std::os::unix::fs::MetadataExt;
    use wasmtel::plugin::Runtime;

    let cache = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(ROGUE).expect("rogue");
    let load = || {
        Runtime::new(Some(cache.path().to_path_buf()))
            .expect("runtime")
            .load("rogue", &bytes)
            .map(drop)
    };
    let entries = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(cache.path())
            .expect("ls")
            .map(|e| e.expect("entry").path())
            .collect()
    };
    load().expect("compiled");
    let cached = entries();
    assert_eq!(cached.len(), 1, "one compiled plugin: {cached:?}");
    assert!(cached[0].extension().is_some_and(|x| x == "cwasm"));
    let inode = std::fs::metadata(&cached[0]).expect("meta").ino();

    load().expect("loaded from the cache");
    assert_eq!(entries(), cached);
    assert_eq!(
        std::fs::metadata(&cached[0]).expect("meta").ino(),
        inode,
        "a hit does not write"
    );

    std::fs::write(&cached[0], b"not a compiled plugin").expect("spoil");
    load().expect("compiled again");
    let rewritten = std::fs::read(&cached[0]).expect("read");
    assert_ne!(
        rewritten, b"not a compiled plugin",
        "the bad entry is replaced"
    );
}

#[test]
fn a_plugin_built_against_the_released_0_2_0_runs_on_this_host() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("config.toml"),
        format!("[exporters.old]\nplugin = {RELEASED_0_2_0:?}\n"),
    )
    .expect("write");
    let output = wasmtel_tests::wasmtel_command(tmp.path())
        .args(["replay", "--strict", "--config", "config.toml"])
        .arg(wasmtel_tests::fixture())
        .env("WASMTEL_LOG", "info")
        .output()
        .expect("run wasmtel");
    let text = wasmtel_tests::output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("0.2.0 plugin up for old"), "{text}");
    let got: u64 = text
        .lines()
        .filter_map(|l| l.split("0.2.0 plugin got ").nth(1))
        .map(|rest| {
            let count = rest.split_whitespace().next().unwrap_or_default();
            count
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("a count: {rest}"))
        })
        .sum();
    assert_eq!(
        got, 583,
        "every record of the fixture, read by the 0.2.0 layout: {text}"
    );
    assert!(text.contains("583 exported, 0 dropped"), "{text}");
}
