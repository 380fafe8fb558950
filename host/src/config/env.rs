//! The environment's layer over the config file: Codex's `CODEX_OTEL_*` variables and the
//! standard `OTEL_*` ones. Each value is checked as it is read, and a bad one is an error naming
//! its variable; what the layer says is then applied to the file's exporters before they are
//! checked, as if the file had said it.

use std::path::PathBuf;

use toml::Spanned;

use super::ExporterToml;
use crate::error::ConfigError;

/// `CODEX_OTEL_EXPORTER`: the one exporter, in place of the file's.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Exporter {
    None,
    Otlp { grpc: bool },
    File,
}

/// A value and the variable it came from.
type From<T> = Option<(&'static str, T)>;

/// What the environment says over the file.
#[derive(Clone, Debug, Default)]
pub(crate) struct EnvLayer {
    /// `CODEX_OTEL_ENABLED`, unless `OTEL_SDK_DISABLED=true` (off whatever else says).
    pub enabled: Option<bool>,
    exporter: From<Exporter>,
    /// The `otlp` plugin's `config` keys, and the variables they came from.
    otlp: Vec<(&'static str, &'static str, toml::Value)>,
    /// Headers for every `otlp` exporter, over the file's.
    headers: From<Vec<(String, String)>>,
    /// `http.ca_certificate`, `http.client_certificate`, `http.client_private_key`.
    tls: [From<PathBuf>; 3],
    /// Resource attributes, over the application's.
    pub resource: Vec<(String, String)>,
    /// `CODEX_OTEL_SAMPLE_RATE`.
    pub sample_rate: Option<f64>,
}

/// An error about the variable `name`.
fn bad(name: &str, message: String) -> ConfigError {
    ConfigError {
        file: PathBuf::from("the environment"),
        location: None,
        key: Some(name.into()),
        message,
    }
}

/// `%XX` escapes decoded, as in `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`.
fn percent_decoded(name: &str, text: &str) -> Result<String, ConfigError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return Err(bad(
                    name,
                    format!("`{text}` has a `%` that is not followed by two hex digits"),
                ));
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(name, format!("`{text}` does not decode to UTF-8")))
}

/// A `key=value,key=value` list (the W3C baggage form the OpenTelemetry variables use), values
/// percent-decoded; empty members are skipped.
fn pairs(name: &str, text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|member| !member.is_empty())
        .map(|member| {
            let Some((key, value)) = member.split_once('=') else {
                return Err(bad(
                    name,
                    format!("`{member}` is not `key=value` (write `key1=value1,key2=value2`)"),
                ));
            };
            let key = percent_decoded(name, key.trim())?;
            if key.is_empty() {
                return Err(bad(name, format!("`{member}` has an empty key")));
            }
            Ok((key, percent_decoded(name, value.trim())?))
        })
        .collect()
}

/// An absolute `http://` or `https://` URL.
fn url(name: &str, text: &str) -> Result<String, ConfigError> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| bad(name, format!("`{text}` is not a URL: {e}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(text.to_string()),
        _ => Err(bad(
            name,
            format!("`{text}` is not an http:// or https:// URL with a host"),
        )),
    }
}

impl EnvLayer {
    /// The layer of the variables `var` gives.
    pub fn read(var: impl Fn(&str) -> Option<String>) -> Result<EnvLayer, ConfigError> {
        // Set and not blank: an empty variable says nothing.
        let get = |name: &'static str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(|v| (name, v))
        };
        let first = |names: &[&'static str]| names.iter().find_map(|n| get(n));
        let flag = |name: &'static str| -> Result<Option<bool>, ConfigError> {
            get(name)
                .map(|(_, value)| match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => Ok(true),
                    "false" | "0" | "no" | "off" => Ok(false),
                    _ => Err(bad(name, format!("`{value}` is not true or false"))),
                })
                .transpose()
        };
        let mut layer = EnvLayer {
            enabled: flag("CODEX_OTEL_ENABLED")?,
            ..EnvLayer::default()
        };
        if flag("OTEL_SDK_DISABLED")? == Some(true) {
            layer.enabled = Some(false);
        }
        if let Some((name, value)) = get("CODEX_OTEL_EXPORTER") {
            let exporter = match value.to_ascii_lowercase().as_str() {
                "none" => Exporter::None,
                "otlp" | "otlp-http" => Exporter::Otlp { grpc: false },
                "otlp-grpc" => Exporter::Otlp { grpc: true },
                "file" => Exporter::File,
                _ => {
                    return Err(bad(
                        name,
                        format!(
                            "`{value}` is not an exporter wasmtel has: write `otlp` (OTLP over \
                             HTTP), `otlp-grpc`, `file` (JSON lines in the telemetry directory) \
                             or `none`"
                        ),
                    ));
                }
            };
            layer.exporter = Some((name, exporter));
        }
        let otlp = &mut layer.otlp;
        if let Some((name, value)) = first(&["CODEX_OTEL_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"])
        {
            otlp.push(("endpoint", name, url(name, &value)?.into()));
        }
        for (name, key) in [
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "logs_endpoint"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "traces_endpoint"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "metrics_endpoint"),
        ] {
            if let Some((name, value)) = get(name) {
                otlp.push((key, name, url(name, &value)?.into()));
            }
        }
        if let Some((name, value)) = get("OTEL_EXPORTER_OTLP_PROTOCOL") {
            if !matches!(value.as_str(), "grpc" | "http/protobuf" | "http/json") {
                return Err(bad(
                    name,
                    format!("`{value}` is not `grpc`, `http/protobuf` or `http/json`"),
                ));
            }
            otlp.push(("protocol", name, value.into()));
        }
        if let Some((name, value)) = get("OTEL_EXPORTER_OTLP_COMPRESSION") {
            if !matches!(value.as_str(), "gzip" | "none") {
                return Err(bad(name, format!("`{value}` is not `gzip` or `none`")));
            }
            otlp.push(("compression", name, value.into()));
        }
        if let Some((name, value)) = get("OTEL_EXPORTER_OTLP_TIMEOUT") {
            let ms: i64 =
                value.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                    bad(name, format!("`{value}` is not a number of milliseconds"))
                })?;
            otlp.push(("timeout_ms", name, ms.into()));
        }
        if let Some((name, value)) = first(&["CODEX_OTEL_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"]) {
            layer.headers = Some((name, pairs(name, &value)?));
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        for (i, name) in [
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ]
        .into_iter()
        .enumerate()
        {
            layer.tls[i] = get(name).map(|(name, path)| (name, cwd.join(path)));
        }
        if let Some((name, value)) = get("OTEL_RESOURCE_ATTRIBUTES") {
            layer.resource = pairs(name, &value)?;
        }
        if let Some((_, service)) = first(&["CODEX_OTEL_SERVICE_NAME", "OTEL_SERVICE_NAME"]) {
            layer.resource.retain(|(k, _)| k != "service.name");
            layer.resource.push(("service.name".into(), service));
        }
        if let Some((name, value)) = get("CODEX_OTEL_SAMPLE_RATE") {
            let rate = value
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| bad(name, format!("`{value}` is not a rate from 0.0 to 1.0")))?;
            layer.sample_rate = Some(rate);
        }
        Ok(layer)
    }

    /// Whether the layer changes the exporters (so the file is read again under it).
    pub fn changes_exporters(&self) -> bool {
        self.exporter.is_some()
            || !self.otlp.is_empty()
            || self.headers.is_some()
            || self.tls.iter().any(Option::is_some)
    }

    /// Applies the layer to the exporters the file makes (name, table, the key that made it):
    /// `CODEX_OTEL_EXPORTER` replaces them all, then the OTLP settings go to every exporter of
    /// the `otlp` plugin. Settings that reach no exporter are said in `notices`.
    pub(super) fn apply(
        &self,
        exporters: &mut Vec<(String, ExporterToml, Option<String>)>,
        notices: &mut Vec<String>,
    ) {
        if let Some((name, exporter)) = self.exporter {
            let made = |plugin: &str, config: toml::Table| ExporterToml {
                plugin: Spanned::new(0..0, plugin.to_string()),
                config,
                ..ExporterToml::default_exporter()
            };
            exporters.clear();
            match exporter {
                Exporter::None => {}
                Exporter::Otlp { grpc } => {
                    let mut config = toml::Table::new();
                    if grpc {
                        config.insert("protocol".into(), "grpc".into());
                    }
                    exporters.push(("otlp".into(), made("otlp", config), Some(name.into())));
                }
                Exporter::File => exporters.push((
                    super::DEFAULT_EXPORTER.into(),
                    made(crate::builtin::DEFAULT.name, toml::Table::new()),
                    Some(name.into()),
                )),
            }
        }
        let mut reached = false;
        for (_, exporter, _) in exporters
            .iter_mut()
            .filter(|(_, e, _)| e.plugin.get_ref() == "otlp")
        {
            reached = true;
            for (key, _, value) in &self.otlp {
                exporter.config.insert((*key).into(), value.clone());
            }
            if let Some((_, headers)) = &self.headers {
                let table = exporter
                    .config
                    .entry("headers")
                    .or_insert_with(|| toml::Table::new().into());
                if let toml::Value::Table(table) = table {
                    for (key, value) in headers {
                        table.retain(|k, _| !k.eq_ignore_ascii_case(key));
                        // Literal: `${` in a value from the environment is not expanded.
                        table.insert(key.clone(), value.replace("${", "$${").into());
                    }
                }
            }
            let http = &mut exporter.http;
            let files = [
                &mut http.ca_certificate,
                &mut http.client_certificate,
                &mut http.client_private_key,
            ];
            for (file, from) in files.into_iter().zip(&self.tls) {
                if let Some((_, path)) = from {
                    *file = Some(Spanned::new(0..0, path.clone()));
                }
            }
        }
        if !reached {
            let names: Vec<&str> = self
                .otlp
                .iter()
                .map(|(_, name, _)| *name)
                .chain(self.headers.iter().map(|(name, _)| *name))
                .chain(self.tls.iter().flatten().map(|(name, _)| *name))
                .collect();
            if !names.is_empty() {
                notices.push(format!(
                    "{} {} set, but no exporter sends OTLP: set CODEX_OTEL_EXPORTER=otlp (or \
                     configure an exporter of the `otlp` plugin) to send there",
                    names.join(", "),
                    if names.len() == 1 { "is" } else { "are" }
                ));
            }
        }
    }
}
