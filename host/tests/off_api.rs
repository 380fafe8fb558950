//! The build without the `runtime` feature offers the host's recording API call for call:
//! `src/off.rs` and `src/codex/off.rs` stand in for the host's types, and this test reads the sources and
//! fails on a public type or method of the host they lack (or have beyond it). Signatures are
//! checked by compiling `examples/optional-telemetry`'s tests in both builds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What only the host has, left out of the build without it (the crate's documentation says so).
const HOST_ONLY: &[&str] = &[
    "Signal",
    "Signals",
    "default_cache_dir",
    "ReplaySummary",
    "check",
    "replay",
];

/// The `pub fn`s of each type's inherent `impl` blocks in `source`, leaving out those under a
/// `cfg` attribute (the `testing` feature's). An `impl $ty` in the body of the `instruments!`
/// macro counts for every type the macro is invoked with, `$method` as that type's own.
fn methods(source: &str, into: &mut BTreeMap<String, BTreeSet<String>>) {
    // The invocation's `Type, method, ...` entries.
    let invoked: Vec<(String, String)> = source
        .split("\ninstruments! {\n")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .into_iter()
        .flat_map(str::lines)
        .filter_map(|line| {
            let entry = line.strip_prefix("    ")?;
            let mut parts = entry.split(", ");
            let (ty, method) = (parts.next()?, parts.next()?);
            let word =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
            (word(ty) && word(method) && ty.starts_with(char::is_uppercase))
                .then(|| (ty.to_string(), method.to_string()))
        })
        .collect();
    let mut open: Option<(String, usize)> = None;
    let mut previous = "";
    for line in source.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if let Some(ty) = impl_type(text) {
            open = Some((ty, indent));
        } else if let Some((ty, at)) = &open {
            if text == "}" && indent == *at {
                open = None;
            } else if let Some(rest) = text.strip_prefix("pub fn ")
                && indent == at + 4
                && !previous.starts_with("#[cfg")
            {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
                    .collect();
                if ty == "$ty" {
                    for (invoked_ty, method) in &invoked {
                        let name = if name == "$method" { method } else { &name };
                        into.entry(invoked_ty.clone())
                            .or_default()
                            .insert(name.clone());
                    }
                } else {
                    into.entry(ty.clone()).or_default().insert(name);
                }
            }
        }
        previous = text;
    }
}

/// The type of an inherent `impl` line (`impl Type {`, `impl<'a> Type<'a> {`), none for a trait's.
fn impl_type(line: &str) -> Option<String> {
    let rest = line.strip_prefix("impl")?.strip_suffix('{')?.trim();
    let rest = match rest.strip_prefix('<') {
        Some(generics) => generics.split_once('>')?.1.trim(),
        None => rest,
    };
    if rest.contains(" for ") || rest.is_empty() {
        return None;
    }
    Some(rest.split('<').next()?.to_string())
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            files.push(path);
        }
    }
    files
}

/// The names a `pub use` list brings in (`a::{B, c::D}` gives B and D).
fn names(list: &str) -> BTreeSet<String> {
    list.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter_map(|token| token.rsplit("::").next())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// The list of the first `pub use` after `attribute` in `source`, up to its `;`.
fn use_list<'s>(source: &'s str, attribute: &str) -> &'s str {
    let at = source
        .find(&format!("{attribute}\npub use "))
        .unwrap_or_else(|| panic!("no `pub use` under {attribute}"));
    let rest = &source[at + attribute.len()..];
    &rest[..rest.find(';').expect("a `;`")]
}

#[test]
fn the_build_without_the_host_has_every_method_of_its_types() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let off_files = [src.join("off.rs"), src.join("codex/off.rs")];
    let (mut host, mut off) = (BTreeMap::new(), BTreeMap::new());
    for file in sources(&src) {
        let text = std::fs::read_to_string(&file).expect("read");
        // The test of a module is not its API.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let into = if off_files.contains(&file) {
            &mut off
        } else {
            &mut host
        };
        methods(text, into);
    }

    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let codex = std::fs::read_to_string(src.join("codex/mod.rs")).expect("codex/mod.rs");
    let off_names: BTreeSet<String> = names(use_list(&lib, "#[cfg(not(feature = \"runtime\"))]"))
        .into_iter()
        .chain(names(use_list(
            &codex,
            "#[cfg(not(feature = \"runtime\"))]",
        )))
        .collect();
    let host_names: BTreeSet<String> = names(use_list(&lib, "#[cfg(feature = \"runtime\")]"))
        .into_iter()
        .chain(
            codex
                .split("#[cfg(feature = \"runtime\")]\npub use ")
                .skip(1)
                .flat_map(|rest| names(&rest[..rest.find(';').expect("a `;`")])),
        )
        .filter(|name| !HOST_ONLY.contains(&name.as_str()))
        .collect();
    assert_eq!(
        off_names, host_names,
        "the types of the build without the host"
    );
    assert!(off_names.len() > 15, "{off_names:?}");

    let mut differences = Vec::new();
    for ty in &off_names {
        let (h, o) = (host.get(ty), off.get(ty));
        if h != o {
            differences.push(format!("{ty}: the host's {h:?}, without it {o:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn the_reader_finds_methods_in_blocks_and_in_the_macro() {
    let source = "impl<'a> A<'a> {\n    pub fn one(&self) {}\n    #[cfg(x)]\n    pub fn two() {}\n}\n\
                  impl Drop for A<'_> {\n    pub fn no() {}\n}\n\
                  macro_rules! instruments {\n    () => {\n        impl $ty {\n            pub fn $method() {}\n            pub fn with() {}\n        }\n    };\n}\n\
                  instruments! {\n    /// doc\n    B, add, u64;\n    C, record, f64;\n}\n";
    let mut found = BTreeMap::new();
    methods(source, &mut found);
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(found.get("A"), Some(&set(&["one"])));
    assert_eq!(found.get("B"), Some(&set(&["add", "with"])));
    assert_eq!(found.get("C"), Some(&set(&["record", "with"])));
    assert_eq!(found.len(), 3, "{found:?}");
}
