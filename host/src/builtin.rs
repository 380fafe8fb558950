//! The registry of built-in plugins: the one place that knows them. Each is a component embedded
//! at build time with the defaults it takes from `[telemetry]`. Adding a built-in is a crate in
//! `plugins/` (build.rs builds every member of that workspace) and one entry in [`BUILTINS`].

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `[telemetry]` offers the built-ins as defaults.
pub(crate) struct Shared<'a> {
    /// `[telemetry] dir`.
    pub dir: &'a Path,
    /// `[telemetry] max_total_bytes`, when set.
    pub max_total_bytes: Option<u64>,
}

/// What a built-in may grant its exporter when the config leaves it unset.
#[derive(Default)]
pub(crate) struct Grants {
    /// `sandbox.dir`.
    pub dir: Option<PathBuf>,
    /// `sandbox.allow_hosts`.
    pub allow_hosts: Option<Vec<String>>,
    /// `sandbox.timeout_ms`.
    pub timeout: Option<Duration>,
}

/// A built-in plugin.
pub(crate) struct Builtin {
    /// Its name in `plugin = "..."`.
    pub name: &'static str,
    /// The component.
    pub component: &'static [u8],
    /// Fills in what an exporter of this plugin leaves unset: its sandbox's grants and keys of
    /// its `config` table.
    pub defaults: fn(&Shared, &mut Grants, &mut toml::Table),
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
pub(crate) const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "file-jsonl",
        component: include_bytes!(concat!(env!("OUT_DIR"), "/file_jsonl.wasm")),
        // It writes into `[telemetry] dir`, within `[telemetry] max_total_bytes` when that is set.
        defaults: |shared, grants, config| {
            grants.dir.get_or_insert_with(|| shared.dir.to_path_buf());
            if let Some(budget) = shared.max_total_bytes
                && !config.contains_key("max_total_bytes")
            {
                let budget = i64::try_from(budget).unwrap_or(i64::MAX);
                config.insert("max_total_bytes".into(), toml::Value::Integer(budget));
            }
        },
        file_keys: &["dir", "file"],
    },
    Builtin {
        name: "otlp",
        component: include_bytes!(concat!(env!("OUT_DIR"), "/otlp.wasm")),
        defaults: otlp_defaults,
        file_keys: &[],
    },
];

/// The `otlp` plugin may reach the hosts of its endpoints (unless `sandbox.allow_hosts` says
/// otherwise), and a call may take as long as its three requests (one per signal) may.
fn otlp_defaults(_: &Shared, grants: &mut Grants, config: &mut toml::Table) {
    let text = |key: &str| config.get(key).and_then(toml::Value::as_str);
    let grpc = text("protocol") == Some("grpc");
    let base = text("endpoint").unwrap_or(if grpc {
        "http://localhost:4317"
    } else {
        "http://localhost:4318"
    });
    let mut hosts: Vec<String> = Vec::new();
    for url in [
        Some(base),
        text("logs_endpoint"),
        text("traces_endpoint"),
        text("metrics_endpoint"),
    ]
    .into_iter()
    .flatten()
    {
        // A bad URL is the plugin's to report, from its `init`.
        if let Ok(uri) = url.parse::<http::Uri>()
            && let Some(authority) = uri.authority()
        {
            let port = authority
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                });
            let host = format!("{}:{port}", authority.host());
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    grants.allow_hosts.get_or_insert(hosts);
    let timeout_ms = config
        .get("timeout_ms")
        .and_then(toml::Value::as_integer)
        .and_then(|ms| u64::try_from(ms).ok())
        .unwrap_or(10_000);
    grants.timeout.get_or_insert(Duration::from_millis(
        timeout_ms.saturating_mul(3).saturating_add(5_000),
    ));
}

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
