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
    /// Whether it takes metrics only (the config's `signals` are narrowed to them), with delta
    /// temporality (`metrics.temporality = "cumulative"` is a config error).
    pub metrics_only: bool,
    /// `sandbox.dir`.
    pub dir: Option<PathBuf>,
    /// `sandbox.allow_hosts`.
    pub allow_hosts: Option<Vec<String>>,
    /// `sandbox.timeout_ms`.
    pub timeout: Option<Duration>,
    /// `sandbox.disk_mib`, in bytes; when the config leaves it unset, the default is raised to
    /// this if it is more.
    pub disk_bytes: Option<u64>,
}

/// Why a built-in's exporter cannot run as configured.
#[derive(Debug, PartialEq)]
pub(crate) enum Refusal {
    /// A key of its `config` table is wrong: a config error.
    Invalid {
        /// The key, below `config`, e.g. `headers.x-api-key`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// It lacks what it needs (a key, say): it is left out, and the config says so.
    NotConfigured(String),
}

/// A built-in plugin.
pub(crate) struct Builtin {
    /// Its name in `plugin = "..."`.
    pub name: &'static str,
    /// The component.
    pub component: &'static [u8],
    /// Fills in what an exporter of this plugin leaves unset: its sandbox's grants and keys of
    /// its `config` table; or says why the exporter cannot run as configured.
    pub defaults: fn(&Shared, &mut Grants, &mut toml::Table) -> Result<(), Refusal>,
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
        defaults: file_jsonl_defaults,
        file_keys: &["dir", "file"],
    },
    Builtin {
        name: "otlp",
        component: OTLP,
        defaults: otlp_defaults,
        file_keys: &[],
    },
    Builtin {
        name: "statsig",
        component: OTLP,
        defaults: statsig_defaults,
        file_keys: &[],
    },
];

/// The file-jsonl plugin's default `file`, as the plugin has it.
pub(crate) const FILE_JSONL_DEFAULT_FILE: &str = "wasmtel-{session_id}.jsonl";

/// `file-jsonl` writes into `[telemetry] dir`, within `[telemetry] max_total_bytes` when that is
/// set; and its sandbox holds its budget: it prunes only once the budget is passed, so the
/// quota, when left unset, is raised to the budget and a quarter more (the most one file takes
/// before the next is begun), and a quota set below the budget is a config error.
fn file_jsonl_defaults(
    shared: &Shared,
    grants: &mut Grants,
    config: &mut toml::Table,
) -> Result<(), Refusal> {
    grants.dir.get_or_insert_with(|| shared.dir.to_path_buf());
    if let Some(budget) = shared.max_total_bytes
        && !config.contains_key("max_total_bytes")
    {
        let budget = i64::try_from(budget).unwrap_or(i64::MAX);
        config.insert("max_total_bytes".into(), toml::Value::Integer(budget));
    }
    let Some(budget) = config
        .get("max_total_bytes")
        .and_then(toml::Value::as_integer)
    else {
        return Ok(());
    };
    let budget = u64::try_from(budget).unwrap_or(0);
    match grants.disk_bytes {
        Some(quota) if budget > quota => Err(Refusal::Invalid {
            key: "max_total_bytes".into(),
            message: format!(
                "{budget} bytes is more than `sandbox.disk_mib` lets the directory hold ({} MiB): \
                 writes would be refused before the plugin prunes old files; lower it, or raise \
                 sandbox.disk_mib",
                quota >> 20
            ),
        }),
        Some(_) => Ok(()),
        None => {
            grants.disk_bytes = Some(budget.saturating_add(budget / 4));
            Ok(())
        }
    }
}

/// The `otlp` component, which `statsig` is too, with a preset.
const OTLP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/otlp.wasm"));

/// The `otlp` plugin may reach the hosts of its endpoints (unless `sandbox.allow_hosts` says
/// otherwise), and a call may take as long as its three requests (one per signal) may. Its
/// header values may name environment variables: `${NAME}`.
fn otlp_defaults(_: &Shared, grants: &mut Grants, config: &mut toml::Table) -> Result<(), Refusal> {
    if let Some(toml::Value::Table(headers)) = config.get_mut("headers") {
        for (name, value) in headers.iter_mut() {
            if let toml::Value::String(text) = value {
                *text = expand(text).map_err(|message| Refusal::Invalid {
                    key: format!("headers.{name}"),
                    message,
                })?;
            }
        }
    }
    otlp_grants(grants, config);
    Ok(())
}

/// What an `otlp` exporter may reach (the hosts of the endpoints it uses) and how long a call
/// may take (its three requests, one per signal, and 5 s).
fn otlp_grants(grants: &mut Grants, config: &toml::Table) {
    let text = |key: &str| config.get(key).and_then(toml::Value::as_str);
    let grpc = text("protocol") == Some("grpc");
    let base = text("endpoint").unwrap_or(if grpc {
        "http://localhost:4317"
    } else {
        "http://localhost:4318"
    });
    let own = [
        text("logs_endpoint"),
        text("traces_endpoint"),
        text("metrics_endpoint"),
    ];
    // The base endpoint is used for a signal without its own, and for every signal over gRPC.
    let base = (grpc || own.contains(&None)).then_some(base);
    let mut hosts: Vec<String> = Vec::new();
    for url in own.into_iter().chain([base]).flatten() {
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

/// Where `statsig` sends metrics unless its `endpoint` or `$WASMTEL_STATSIG_ENDPOINT` says
/// otherwise: Codex's.
pub(crate) const STATSIG_ENDPOINT: &str = "https://ab.chatgpt.com/otlp/v1/metrics";
/// The environment variable that holds the Statsig key unless `api_key_env` names another.
pub(crate) const STATSIG_KEY_ENV: &str = "STATSIG_SERVER_SDK_SECRET";
/// The metrics Codex never sends to Statsig.
pub(crate) const STATSIG_SKIPPED_METRICS: [&str; 9] = [
    "codex.api_request",
    "codex.api_request.duration_ms",
    "codex.conversation.turn.count",
    "codex.responses_api_engine_iapi_ttft.duration_ms",
    "codex.responses_api_engine_service_tbt.duration_ms",
    "codex.responses_api_engine_service_ttft.duration_ms",
    "codex.tool.call",
    "codex.tool.call.duration_ms",
    "codex.turn.token_usage",
];

/// `statsig`: metrics only, as OTLP/HTTP JSON with delta temporality, to Codex's endpoint, with
/// the key of `api_key` (which may be `${NAME}`) or of the environment variable `api_key_env`
/// names (`STATSIG_SERVER_SDK_SECRET` by default) in the `statsig-api-key` header; without a
/// key it is not configured. Its config keys: `endpoint`, `api_key`, `api_key_env`,
/// `timeout_ms`.
fn statsig_defaults(
    _: &Shared,
    grants: &mut Grants,
    config: &mut toml::Table,
) -> Result<(), Refusal> {
    const KEYS: [&str; 4] = ["endpoint", "api_key", "api_key_env", "timeout_ms"];
    if let Some(key) = config.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(Refusal::Invalid {
            key: key.clone(),
            message: format!(
                "unknown key `{key}` for statsig: it takes {}",
                KEYS.join(", ")
            ),
        });
    }
    let text = |config: &toml::Table, key: &str| -> Result<Option<String>, Refusal> {
        match config.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(Refusal::Invalid {
                key: key.into(),
                message: format!("`{key}` takes a string, not {}", other.type_str()),
            }),
        }
    };
    let env = text(config, "api_key_env")?.unwrap_or_else(|| STATSIG_KEY_ENV.into());
    let key = match text(config, "api_key")? {
        Some(key) => Some(expand(&key).map_err(|message| Refusal::Invalid {
            key: "api_key".into(),
            message,
        })?),
        None => std::env::var(&env).ok(),
    }
    .filter(|k| !k.trim().is_empty());
    let Some(key) = key else {
        return Err(Refusal::NotConfigured(format!(
            "no Statsig key: set `api_key` in its config, or the environment variable `{env}`"
        )));
    };
    let endpoint = text(config, "endpoint")?
        .or_else(|| std::env::var("WASMTEL_STATSIG_ENDPOINT").ok())
        .unwrap_or_else(|| STATSIG_ENDPOINT.into());
    let mut preset = toml::Table::new();
    preset.insert("protocol".into(), "http/json".into());
    preset.insert("endpoint".into(), endpoint.clone().into());
    preset.insert("metrics_endpoint".into(), endpoint.into());
    let mut headers = toml::Table::new();
    headers.insert("statsig-api-key".into(), key.into());
    preset.insert("headers".into(), headers.into());
    preset.insert(
        "skip_metrics".into(),
        toml::Value::Array(STATSIG_SKIPPED_METRICS.iter().map(|&m| m.into()).collect()),
    );
    if let Some(timeout) = config.get("timeout_ms") {
        preset.insert("timeout_ms".into(), timeout.clone());
    }
    *config = preset;
    grants.metrics_only = true;
    otlp_grants(grants, config);
    Ok(())
}

/// `text` with each `${NAME}` replaced by the environment variable `NAME` (and `$${` by a
/// literal `${`); an unset one is an error naming it (never a value).
fn expand(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(
                "`${` without its `}`: write `${NAME}` to use the environment variable NAME".into(),
            );
        };
        let name = &after[..end];
        match std::env::var(name) {
            Ok(value) => out.push_str(&value),
            Err(_) => return Err(format!("the environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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
