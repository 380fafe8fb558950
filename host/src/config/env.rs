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
    /// `otlp`: the protocol `OTEL_EXPORTER_OTLP_PROTOCOL` says (else HTTP protobuf);
    /// `otlp-http`: HTTP whatever it says (JSON if it says `http/json`); `otlp-grpc`: gRPC.
    Otlp {
        transport: Option<Transport>,
    },
    File,
}

/// The transport `CODEX_OTEL_EXPORTER` names, over `OTEL_EXPORTER_OTLP_PROTOCOL`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Http,
    Grpc,
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

/// `%XX` escapes decoded, as in `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`;
/// an error says what is wrong with `what` (never the text, which may be a secret).
fn percent_decoded(name: &str, what: &str, text: &str) -> Result<String, ConfigError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
            let (Some(high), Some(low)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                return Err(bad(
                    name,
                    format!("{what} has a `%` that is not followed by two hex digits"),
                ));
            };
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(name, format!("{what} does not decode to UTF-8")))
}

/// A `key=value,key=value` list (the W3C baggage form the OpenTelemetry variables use), values
/// percent-decoded; empty members are skipped. An error names a member by its place and key,
/// never its value (a header's may be a secret).
fn pairs(name: &str, text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|member| !member.is_empty())
        .enumerate()
        .map(|(i, member)| {
            let place = format!("member {} of the list", i + 1);
            let Some((key, value)) = member.split_once('=') else {
                return Err(bad(
                    name,
                    format!("{place} is not `key=value` (write `key1=value1,key2=value2`)"),
                ));
            };
            let key = percent_decoded(name, &format!("the key of {place}"), key.trim())?;
            if key.is_empty() {
                return Err(bad(name, format!("{place} has an empty key")));
            }
            let what = format!("the value of `{key}`");
            Ok((key, percent_decoded(name, &what, value.trim())?))
        })
        .collect()
}

/// An absolute `http://` or `https://` URL; an error does not repeat it (it may hold a token).
fn url(name: &str, text: &str) -> Result<String, ConfigError> {
    let uri: http::Uri = text.parse().map_err(|e| {
        bad(
            name,
            format!("the value is not an http:// or https:// URL ({e})"),
        )
    })?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(text.to_string()),
        _ => Err(bad(
            name,
            "the value is not an http:// or https:// URL with a host".into(),
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
                "otlp" => Exporter::Otlp { transport: None },
                "otlp-http" => Exporter::Otlp {
                    transport: Some(Transport::Http),
                },
                "otlp-grpc" => Exporter::Otlp {
                    transport: Some(Transport::Grpc),
                },
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
                Exporter::Otlp { .. } => {
                    exporters.push((
                        "otlp".into(),
                        made("otlp", toml::Table::new()),
                        Some(name.into()),
                    ));
                }
                Exporter::File => exporters.push((
                    super::DEFAULT_EXPORTER.into(),
                    made(crate::builtin::DEFAULT.name, toml::Table::new()),
                    Some(name.into()),
                )),
            }
        }
        let mut reached = false;
        for (_, exporter, made_by) in exporters
            .iter_mut()
            .filter(|(_, e, _)| e.plugin.get_ref() == "otlp")
        {
            reached = true;
            // A base endpoint from the environment replaces the file's, the signals' own URLs
            // included (`[otel]` writes those): the environment's signal URLs follow.
            if self.otlp.iter().any(|(key, _, _)| *key == "endpoint") {
                for key in ["logs_endpoint", "traces_endpoint", "metrics_endpoint"] {
                    exporter.config.remove(key);
                }
            }
            for (key, _, value) in &self.otlp {
                exporter.config.insert((*key).into(), value.clone());
            }
            // `CODEX_OTEL_EXPORTER`'s transport, over `OTEL_EXPORTER_OTLP_PROTOCOL`, for the
            // exporter it makes.
            if let (Some((_, Exporter::Otlp { transport })), Some("CODEX_OTEL_EXPORTER")) =
                (self.exporter, made_by.as_deref())
            {
                let said = exporter.config.get("protocol").and_then(|p| p.as_str());
                let protocol = match (transport, said) {
                    (Some(Transport::Grpc), _) => Some("grpc"),
                    (Some(Transport::Http), Some("http/json")) => None,
                    (Some(Transport::Http), _) => Some("http/protobuf"),
                    (None, _) => None,
                };
                if let Some(protocol) = protocol {
                    exporter.config.insert("protocol".into(), protocol.into());
                }
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
