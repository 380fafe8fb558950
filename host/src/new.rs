//! `wasmtel new`: a plugin project from a template, in Rust, JavaScript or Python, that builds
//! with one command and passes its fixture test as made. Each writes the same CSV rows (those of
//! `examples/plugins`), and comes with the WIT package, the recorded session of the tests and
//! the expected directory they pass.

use std::path::Path;

use anyhow::{Context as _, bail};

/// The templates' files: (language, or `all`; path in the project; bytes; whether `{{name}}`,
/// `{{crate}}` and `{{version}}` are filled in). Listed by the build script.
const FILES: &[(&str, &str, &[u8], bool)] = include!(concat!(env!("OUT_DIR"), "/templates.rs"));

/// The languages there are templates for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with wasmtel's SDK (copied into the project), built by cargo.
    Rust,
    /// JavaScript, with wasmtel's helper library, built by ComponentizeJS.
    Js,
    /// Python, with wasmtel's helper library, built by componentize-py.
    Python,
}

impl Lang {
    fn key(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
        }
    }
}

/// Whether `name` can name the project: a package for cargo, npm and a `.wasm` file alike (and
/// not a name cargo keeps for itself or for the SDK the project depends on).
fn valid(name: &str) -> bool {
    let reserved = [
        "test",
        "core",
        "std",
        "alloc",
        "proc_macro",
        "proc-macro",
        "self",
        "super",
        "crate",
        "build",
        "deps",
        "examples",
        "incremental",
        "wasmtel_sdk",
        "wasmtel-sdk",
    ];
    !reserved.contains(&name)
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Writes the project `name` of `lang` into the new directory `dir`; returns the paths written.
pub fn new(name: &str, lang: Lang, dir: &Path) -> anyhow::Result<Vec<String>> {
    if !valid(name) {
        bail!(
            "`{name}` cannot name a plugin: use lowercase letters, digits, `-` and `_`, starting \
             with a letter (at most 64)"
        );
    }
    if std::fs::symlink_metadata(dir).is_ok()
        && std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_some())
    {
        bail!(
            "{} exists and is not an empty directory: nothing was written",
            dir.display()
        );
    }
    let made = std::fs::symlink_metadata(dir).is_err();
    let written = write(name, lang, dir);
    if written.is_err() && made {
        // Nothing half-made is left behind.
        let _ = std::fs::remove_dir_all(dir);
    }
    written
}

fn write(name: &str, lang: Lang, dir: &Path) -> anyhow::Result<Vec<String>> {
    let crate_name = name.replace('-', "_");
    let mut written = Vec::new();
    for &(of, path, bytes, fill) in FILES {
        if of != "all" && of != lang.key() {
            continue;
        }
        let mut bytes = bytes.to_vec();
        if fill {
            let text = String::from_utf8(bytes).context("a template is UTF-8")?;
            bytes = text
                .replace("{{name}}", name)
                .replace("{{crate}}", &crate_name)
                .replace("{{version}}", env!("CARGO_PKG_VERSION"))
                .into_bytes();
        }
        if path == "plugin.js" {
            // The example imports the helper from the repository; the project has its copy.
            let text = String::from_utf8(bytes).context("plugin.js is UTF-8")?;
            bytes = text
                .replace("'../../../sdk/js/wasmtel.js'", "'./wasmtel.js'")
                .into_bytes();
        }
        let to = dir.join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot make {}", parent.display()))?;
        }
        std::fs::write(&to, &bytes).with_context(|| format!("cannot write {}", to.display()))?;
        written.push(path.to_string());
    }
    Ok(written)
}
