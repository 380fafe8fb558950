//! Codex's `[otel]` table (and `[analytics] enabled`), accepted as Codex accepts it, resolved to
//! wasmtel exporters of the built-in `otlp` and `statsig` plugins: `exporter` to `otel-logs`
//! (events), `trace_exporter` to `otel-traces` (spans), `metrics_exporter` to `otel-metrics`
//! (metrics; Statsig unless it says `none`, and only while `[analytics] enabled`). The rest of
//! the table is kept as [`OtelSettings`] for the application.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use super::{ExporterToml, HttpToml, Invalid, SignalToml};
use crate::context::w3c_member;
use crate::settings::OtelSettings;

/// `[otel]`: every key Codex reads, and no other.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OtelToml {
    #[serde(default)]
    log_user_prompt: bool,
    environment: Option<String>,
    exporter: Option<Spanned<toml::Value>>,
    trace_exporter: Option<Spanned<toml::Value>>,
    metrics_exporter: Option<Spanned<toml::Value>>,
    #[serde(default)]
    span_attributes: IndexMap<String, String>,
    #[serde(default)]
    tracestate: IndexMap<String, IndexMap<String, String>>,
    #[serde(default)]
    tool_result: ToolResultToml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolResultToml {
    #[serde(default = "default_tool_result_max_bytes")]
    max_bytes: usize,
}

impl Default for ToolResultToml {
    fn default() -> Self {
        ToolResultToml {
            max_bytes: default_tool_result_max_bytes(),
        }
    }
}

fn default_tool_result_max_bytes() -> usize {
    2048
}

/// `[analytics]`: whether metrics are exported at all (Codex's default: yes).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnalyticsToml {
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for AnalyticsToml {
    fn default() -> Self {
        AnalyticsToml { enabled: true }
    }
}

pub(super) fn yes() -> bool {
    true
}

/// The exporter kinds of `exporter`, `trace_exporter` and `metrics_exporter`.
enum Kind {
    None,
    Statsig,
    Otlp { grpc: bool, settings: OtlpToml },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OtlpToml {
    endpoint: String,
    #[serde(default)]
    headers: IndexMap<String, String>,
    protocol: Option<String>,
    tls: Option<TlsToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TlsToml {
    ca_certificate: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
    client_private_key: Option<PathBuf>,
}

/// An exporter `[otel]` makes: its name, its table, and the `[otel]` key it comes from.
pub(super) type Made = (String, ExporterToml, String);

/// The exporters of `otel` and its other settings; what it drops is said in `notices`.
pub(super) fn resolve(
    otel: OtelToml,
    analytics: bool,
    notices: &mut Vec<String>,
) -> Result<(Vec<Made>, OtelSettings), Invalid> {
    let mut made = Vec::new();
    let signals = [
        (
            "exporter",
            otel.exporter,
            "otel-logs",
            SignalToml::Events,
            "logs",
        ),
        (
            "trace_exporter",
            otel.trace_exporter,
            "otel-traces",
            SignalToml::Spans,
            "traces",
        ),
        (
            "metrics_exporter",
            otel.metrics_exporter,
            "otel-metrics",
            SignalToml::Metrics,
            "metrics",
        ),
    ];
    for (key, value, name, signal, path) in signals {
        let at = value.as_ref().map_or(0, |v| v.span().start);
        let kind = match value {
            Some(value) => kind(value.get_ref()).map_err(|(sub, message)| Invalid {
                at,
                key: format!("otel.{key}{sub}"),
                message,
            })?,
            // Codex's defaults: metrics to Statsig, nothing else.
            None if signal == SignalToml::Metrics => Kind::Statsig,
            None => Kind::None,
        };
        if signal == SignalToml::Metrics && !analytics {
            continue;
        }
        let span = at..at;
        let exporter = |plugin: &str, config: toml::Table, http: HttpToml| ExporterToml {
            plugin: Spanned::new(span.clone(), plugin.to_string()),
            signals: vec![signal],
            config,
            sandbox: Default::default(),
            http,
            queue: Default::default(),
            metrics: Default::default(),
        };
        let table = match kind {
            Kind::None => continue,
            Kind::Statsig => exporter("statsig", toml::Table::new(), HttpToml::default()),
            Kind::Otlp { grpc, settings } => {
                let mut config = toml::Table::new();
                let protocol = match (grpc, settings.protocol.as_deref()) {
                    (true, _) => "grpc",
                    (false, Some("json")) => "http/json",
                    (false, _) => "http/protobuf",
                };
                config.insert("protocol".into(), protocol.into());
                // The endpoint is used exactly as written: over HTTP, the signal's own URL.
                let endpoint_key = if grpc {
                    "endpoint".to_string()
                } else {
                    format!("{path}_endpoint")
                };
                config.insert(endpoint_key, settings.endpoint.clone().into());
                if !grpc {
                    config.insert("endpoint".into(), settings.endpoint.into());
                }
                let headers: toml::Table = settings
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, toml::Value::String(v)))
                    .collect();
                config.insert("headers".into(), headers.into());
                let file = |p: Option<PathBuf>| p.map(|p| Spanned::new(span.clone(), p));
                let http = match settings.tls {
                    Some(tls) => HttpToml {
                        ca_certificate: file(tls.ca_certificate),
                        client_certificate: file(tls.client_certificate),
                        client_private_key: file(tls.client_private_key),
                        ..HttpToml::default()
                    },
                    None => HttpToml::default(),
                };
                exporter("otlp", config, http)
            }
        };
        made.push((name.to_string(), table, format!("otel.{key}")));
    }
    let span_attributes = otel
        .span_attributes
        .into_iter()
        .filter(|(k, _)| {
            if k.is_empty() {
                notices.push("otel.span_attributes: an entry with an empty key is dropped".into());
            }
            !k.is_empty()
        })
        .collect();
    let mut tracestate = Vec::new();
    for (member, fields) in otel.tracestate {
        let value = fields
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(";");
        match w3c_member(&member, &value) {
            Ok(()) => tracestate.push((member, value)),
            Err(why) => notices.push(format!("otel.tracestate.{member} is dropped: {why}")),
        }
    }
    let settings = OtelSettings {
        environment: otel.environment.unwrap_or_else(|| "dev".into()),
        log_user_prompt: otel.log_user_prompt,
        span_attributes,
        tracestate,
        tool_result_max_bytes: otel.tool_result.max_bytes,
        analytics_enabled: analytics,
    };
    Ok((made, settings))
}

/// The key of an error in an exporter `[otel]` made, from the key within the exporter.
pub(super) fn key_of(otel_key: &str, key: &str) -> String {
    let tls = |name: &str| format!("{otel_key}.tls.{name}");
    match key {
        "http.ca_certificate" => tls("ca-certificate"),
        "http.client_certificate" => tls("client-certificate"),
        "http.client_private_key" => tls("client-private-key"),
        other => match other.strip_prefix("config.") {
            Some(inner) => format!("{otel_key}.{inner}"),
            None => format!("{otel_key}.{other}"),
        },
    }
}

/// An exporter kind as Codex writes it; else the key below it that is wrong, and why, with the
/// right form.
fn kind(value: &toml::Value) -> Result<Kind, (String, String)> {
    const FORMS: &str = "write `\"none\"`, `\"statsig\"`, \
        `{ otlp-http = { endpoint = \"https://collector:4318/v1/logs\", protocol = \"binary\" } }` \
        or `{ otlp-grpc = { endpoint = \"https://collector:4317\" } }`";
    match value {
        toml::Value::String(s) => match s.as_str() {
            "none" => Ok(Kind::None),
            "statsig" => Ok(Kind::Statsig),
            "otlp-http" | "otlp-grpc" => Err((
                String::new(),
                format!(
                    "`{s}` needs its settings, as a table: write `{{ {s} = {{ endpoint = \"{}\"{} }} }}`",
                    if s == "otlp-http" {
                        "https://collector:4318/v1/logs"
                    } else {
                        "https://collector:4317"
                    },
                    if s == "otlp-http" {
                        ", protocol = \"binary\""
                    } else {
                        ""
                    }
                ),
            )),
            other => Err((
                String::new(),
                format!("unknown exporter `{other}`: {FORMS}"),
            )),
        },
        toml::Value::Table(table) if table.len() == 1 => {
            let (name, inner) = table.iter().next().expect("one entry");
            let grpc = match name.as_str() {
                "otlp-http" => false,
                "otlp-grpc" => true,
                other => {
                    return Err((
                        String::new(),
                        format!("unknown exporter `{other}`: {FORMS}"),
                    ));
                }
            };
            let settings: OtlpToml = inner
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| (format!(".{name}"), e.message().to_string()))?;
            match (grpc, settings.protocol.as_deref()) {
                (true, None) | (false, Some("binary" | "json")) => {}
                (false, None) => {
                    return Err((
                        format!(".{name}"),
                        "otlp-http needs its `protocol`, as Codex does: write `protocol = \"binary\"` \
                         (protobuf) or `protocol = \"json\"`"
                            .into(),
                    ));
                }
                (true, Some(_)) => {
                    return Err((
                        format!(".{name}.protocol"),
                        "otlp-grpc takes no `protocol`: it is always gRPC".into(),
                    ));
                }
                (false, Some(other)) => {
                    let right = if other.contains("json") {
                        "json"
                    } else {
                        "binary"
                    };
                    return Err((
                        format!(".{name}.protocol"),
                        format!(
                            "`protocol` takes `binary` or `json` (not `{other}`): write `protocol = \"{right}\"`"
                        ),
                    ));
                }
            }
            // As Codex's: a client certificate is for https:// only.
            let mutual = settings
                .tls
                .as_ref()
                .is_some_and(|t| t.client_certificate.is_some());
            if mutual && !settings.endpoint.starts_with("https://") {
                return Err((
                    format!(".{name}.endpoint"),
                    "a client certificate (tls.client-certificate) needs an https:// endpoint"
                        .into(),
                ));
            }
            Ok(Kind::Otlp { grpc, settings })
        }
        _ => Err((String::new(), format!("not an exporter: {FORMS}"))),
    }
}
