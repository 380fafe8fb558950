//! The registry of built-in plugins: the one place that knows them. Each is a component embedded
//! at build time with the defaults it takes from `[telemetry]`. Adding a built-in is a crate in
//! `plugins/` (build.rs builds every member of that workspace) and one entry in [`BUILTINS`].

use std::path::{Path, PathBuf};

/// What `[telemetry]` offers the built-ins as defaults.
pub(crate) struct Shared<'a> {
    /// `[telemetry] dir`.
    pub dir: &'a Path,
    /// `[telemetry] max_total_bytes`, when set.
    pub max_total_bytes: Option<u64>,
}

/// A built-in plugin.
pub(crate) struct Builtin {
    /// Its name in `plugin = "..."`.
    pub name: &'static str,
    /// The component.
    pub component: &'static [u8],
    /// Fills in what an exporter of this plugin leaves unset: its sandbox directory and keys of
    /// its `config` table.
    pub defaults: fn(&Shared, &mut Option<PathBuf>, &mut toml::Table),
    /// The keys of its `config` table that, with its sandbox directory, name the files it
    /// writes: two exporters alike in all of them would write the same files.
    pub file_keys: &'static [&'static str],
}

impl std::fmt::Debug for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Builtin {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Every built-in plugin.
pub(crate) const BUILTINS: &[Builtin] = &[Builtin {
    name: "file-jsonl",
    component: include_bytes!(concat!(env!("OUT_DIR"), "/file_jsonl.wasm")),
    // It writes into `[telemetry] dir`, within `[telemetry] max_total_bytes` when that is set.
    defaults: |shared, dir, config| {
        dir.get_or_insert_with(|| shared.dir.to_path_buf());
        if let Some(budget) = shared.max_total_bytes
            && !config.contains_key("max_total_bytes")
        {
            let budget = i64::try_from(budget).unwrap_or(i64::MAX);
            config.insert("max_total_bytes".into(), toml::Value::Integer(budget));
        }
    },
    file_keys: &["dir", "file"],
}];

/// The plugin of the exporter a config gets when it names none.
pub(crate) const DEFAULT: &Builtin = &BUILTINS[0];

/// The built-in named `name`.
pub(crate) fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The names of every built-in, for messages: `a, b`.
pub(crate) fn names() -> String {
    BUILTINS
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}
