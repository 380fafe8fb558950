//! What a plugin's component says of itself, read without compiling it: the `wasmtel:exporter`
//! version it targets, its exports, the imports it asks for (the capabilities it wants, before
//! any config grants them), and the language and tools that made it.

use wasmtime::wasmparser::{Parser, Payload, ProducersSectionReader};

/// A plugin's component, as [`inspect`] reads it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Inspection {
    /// Its size, in bytes.
    pub bytes: u64,
    /// The version of the `wasmtel:exporter` package whose `exporter` it exports, if it does.
    pub wit_version: Option<String>,
    /// Its exports, by name.
    pub exports: Vec<String>,
    /// Its imports, each with what this host grants for it.
    pub imports: Vec<Import>,
    /// The language it was written in, as its producers sections tell.
    pub language: Option<String>,
    /// The tools that made it (`processed-by` of its producers sections), as `name version`.
    pub tools: Vec<String>,
}

/// One import of a component and what the host grants for it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Import {
    /// The import's name, e.g. `wasi:filesystem/preopens@0.2.3`.
    pub name: String,
    /// What this host gives it, and the config key that grants more, if any.
    pub grant: &'static str,
}

/// Reads `bytes` as a component, without compiling it. Fails on what is not a component (saying
/// what it is instead) and on a component that does not parse.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, String> {
    super::check_header(bytes).map_err(str::to_string)?;
    let mut inspection = Inspection {
        bytes: bytes.len() as u64,
        wit_version: None,
        exports: Vec::new(),
        imports: Vec::new(),
        language: None,
        tools: Vec::new(),
    };
    let mut languages: Vec<String> = Vec::new();
    // A core module importing from CPython's library: componentize-py names no tool of its own.
    let mut python = false;
    // Nested modules and components have imports and exports too: only the outermost count.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("it does not parse as a component: {e}"))?;
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let name = import.map_err(|e| e.to_string())?.name.name.to_string();
                    inspection.imports.push(Import {
                        grant: grant(&name),
                        name,
                    });
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let name = export.map_err(|e| e.to_string())?.name.name.to_string();
                    if let Some(version) = name.strip_prefix("wasmtel:exporter/exporter@") {
                        inspection.wit_version = Some(version.to_string());
                    }
                    inspection.exports.push(name);
                }
            }
            Payload::ImportSection(reader) if !python => {
                python = reader
                    .into_imports()
                    .flatten()
                    .any(|i| i.module.starts_with("libpython"));
            }
            Payload::CustomSection(section) if section.name() == "producers" => {
                let reader = wasmtime::wasmparser::BinaryReader::new(section.data(), 0);
                let Ok(fields) = ProducersSectionReader::new(reader) else {
                    continue;
                };
                for field in fields.into_iter().flatten() {
                    let into = match field.name {
                        "language" => &mut languages,
                        "processed-by" => &mut inspection.tools,
                        _ => continue,
                    };
                    for value in field.values.into_iter().flatten() {
                        // A version's first word: `clang 21.1.4-wasi-sdk`, not its build's URL.
                        let version = value.version.split(' ').next().unwrap_or_default();
                        let text = format!("{} {version}", value.name).trim_end().to_string();
                        if !into.contains(&text) {
                            into.push(text);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    inspection.language = if python {
        Some("Python".into())
    } else {
        language(&languages, &inspection.tools)
    };
    Ok(inspection)
}

/// The language a component was written in: JavaScript if a componentizing tool for it made
/// it, else the languages its modules name, but for the C of a libc linked into another.
fn language(languages: &[String], tools: &[String]) -> Option<String> {
    let javascript = ["componentize-js", "componentizejs", "starlingmonkey", "jco"];
    if tools.iter().any(|t| {
        let t = t.to_ascii_lowercase();
        javascript.iter().any(|w| t.contains(w))
    }) {
        return Some("JavaScript".into());
    }
    let own: Vec<&str> = languages
        .iter()
        .map(|l| l.split(' ').next().unwrap_or_default())
        .filter(|l| !l.starts_with('C') || l.starts_with("C#"))
        .collect();
    match (own.is_empty(), languages.is_empty()) {
        (false, _) => Some(own.join(", ")),
        (true, false) => Some(languages.join(", ")),
        (true, true) => None,
    }
}

/// What this host grants a component that imports `name`.
fn grant(name: &str) -> &'static str {
    let interface = name.split('@').next().unwrap_or(name);
    match interface {
        "wasmtel:exporter/log" => "the host's log, within sandbox.log_lines_per_sec",
        "wasmtel:exporter/files" => "locks on files of sandbox.dir",
        "wasmtel:exporter/report" => "counts of records a backend rejected",
        "wasmtel:exporter/types" => "types only",
        "wasi:cli/stdout" | "wasi:cli/stderr" => "lines into the host's log",
        "wasi:cli/stdin" => "empty",
        "wasi:cli/environment" => "empty: no variables, no arguments",
        "wasi:cli/exit" => "exiting is a fault",
        "wasi:http/outgoing-handler" | "wasi:http/types" => {
            "requests to sandbox.allow_hosts only (none unless granted)"
        }
        _ if interface.starts_with("wasi:cli/terminal") => "not a terminal",
        _ if interface.starts_with("wasi:filesystem/") => {
            "sandbox.dir only (no directory unless granted)"
        }
        _ if interface.starts_with("wasi:sockets/") => "refused: TCP, UDP and name lookup are off",
        _ if interface.starts_with("wasi:clocks/")
            || interface.starts_with("wasi:random/")
            || interface.starts_with("wasi:io/") =>
        {
            "granted"
        }
        _ => "not provided by this host: the plugin will not load",
    }
}

impl Inspection {
    /// Whether this host runs it: `Ok` with what was found, or why not.
    pub fn compatibility(&self) -> Result<String, String> {
        let host = wasmtel_sdk::WIT_VERSION;
        let Some(version) = &self.wit_version else {
            return Err(format!(
                "it exports no wasmtel:exporter/exporter: it is not an exporter plugin (this \
                 host runs wasmtel:exporter@{host})"
            ));
        };
        let missing: Vec<&str> = self
            .imports
            .iter()
            .filter(|i| i.grant.starts_with("not provided"))
            .map(|i| i.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "it imports what this host does not provide: {}",
                missing.join(", ")
            ));
        }
        // 0.x follows semver's rule for 0.x: the minor version is the breaking one.
        let series = |v: &str| {
            let mut parts = v.split('.');
            (
                parts.next().map(str::to_string),
                parts.next().map(str::to_string),
            )
        };
        if series(version) == series(host) {
            Ok(format!(
                "wasmtel:exporter@{version}: this host implements {host}, the same series"
            ))
        } else if series(version) == series(super::v0_1::VERSION) {
            Ok(format!(
                "wasmtel:exporter@{version}: this host implements {host} and adapts 0.1 \
                 plugins (each batch split by signal into 0.1's typed batches)"
            ))
        } else {
            Err(format!(
                "it targets wasmtel:exporter@{version}; this host implements {host}"
            ))
        }
    }
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = self.bytes as f64 / (1 << 20) as f64;
        writeln!(f, "size:      {} bytes ({size:.1} MiB)", self.bytes)?;
        match self.compatibility() {
            Ok(fits) => writeln!(f, "targets:   {fits}")?,
            Err(why) => writeln!(f, "targets:   does not load here: {why}")?,
        }
        let language = self.language.as_deref().unwrap_or("unknown");
        writeln!(f, "language:  {language}")?;
        if !self.tools.is_empty() {
            writeln!(f, "made by:   {}", self.tools.join(", "))?;
        }
        writeln!(f, "exports:")?;
        for export in &self.exports {
            writeln!(f, "  {export}")?;
        }
        writeln!(f, "imports (what it asks for, and what this host grants):")?;
        let width = self.imports.iter().map(|i| i.name.len()).max().unwrap_or(0);
        for import in &self.imports {
            writeln!(f, "  {:width$}  {}", import.name, import.grant)?;
        }
        Ok(())
    }
}
