//! The build without the `runtime` feature offers the host's recording API call for call:
//! `src/off.rs` and `src/codex/off.rs` stand in for the host's types, and this test reads the
//! sources and fails on a public type, or a method's name, of the host that they lack (or have
//! beyond it). Signatures and traits are checked by compiling `examples/optional-telemetry`'s
//! tests in both builds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What only the host has, left out of the build without it (the crate's documentation says so).
const HOST_ONLY: &[&str] = &[
    "Signal",
    "Signals",
    "default_cache_dir",
    "ReplaySummary",
    "check",
    "check_fixture",
    "Checked",
    "replay",
    "SpoolStatus",
    "SlotStatus",
    "spool_status",
    "drain_spools",
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
    // An `impl` header being read (it may span lines), and its indent.
    let mut header: Option<(String, usize)> = None;
    // Whether the attributes above the current line include a `cfg`.
    let mut gated = false;
    for line in source.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if let Some((so_far, at)) = &mut header {
            so_far.push(' ');
            so_far.push_str(text);
            if text.contains('{') {
                open = impl_type(so_far).map(|ty| (ty, *at));
                header = None;
            }
            continue;
        }
        if text.starts_with("#[cfg(") {
            gated = true;
            continue;
        }
        if text.starts_with("#[") || text.starts_with("///") {
            continue;
        }
        if open.is_none() && (text.starts_with("impl ") || text.starts_with("impl<")) {
            if text.contains('{') {
                open = impl_type(text).map(|ty| (ty, indent));
            } else {
                header = Some((text.to_string(), indent));
            }
        } else if let Some((ty, at)) = &open {
            if text == "}" && indent == *at {
                open = None;
            } else if let Some(name) = fn_name(text)
                && indent == at + 4
                && !gated
            {
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
        gated = false;
    }
}

/// The name of the `pub fn` (`const`, `async` or `unsafe` as well) that `line` declares.
fn fn_name(line: &str) -> Option<String> {
    let mut rest = line.strip_prefix("pub ")?;
    for qualifier in ["const ", "async ", "unsafe "] {
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    Some(
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
            .collect(),
    )
}

/// The type of an inherent `impl` header (`impl Type {`, `impl<'a, T: Into<U>> Type<'a> where
/// ... {`); none for a trait's (`impl Trait for Type`).
fn impl_type(header: &str) -> Option<String> {
    let rest = header.strip_prefix("impl")?;
    // Past the generics, nested brackets included.
    let rest = match rest.strip_prefix('<') {
        Some(generics) => {
            let mut depth = 1;
            let end = generics.find(|c| {
                depth += match c {
                    '<' => 1,
                    '>' => -1,
                    _ => 0,
                };
                depth == 0
            })?;
            &generics[end + 1..]
        }
        None => rest,
    };
    let head = rest.split('{').next()?.split(" where").next()?.trim();
    if head.is_empty() || head.split_whitespace().any(|token| token == "for") {
        return None;
    }
    Some(head.split('<').next()?.trim().to_string())
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

/// The names of every `pub use` right under `attribute` in `source`.
fn uses(source: &str, attribute: &str) -> BTreeSet<String> {
    source
        .split(&format!("{attribute}\npub use "))
        .skip(1)
        .flat_map(|rest| names(&rest[..rest.find(';').expect("a `;`")]))
        .collect()
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
    let (with, without) = (
        "#[cfg(feature = \"runtime\")]",
        "#[cfg(not(feature = \"runtime\"))]",
    );
    let off_names: BTreeSet<String> = uses(&lib, without)
        .into_iter()
        .chain(uses(&codex, without))
        .collect();
    let host_names: BTreeSet<String> = uses(&lib, with)
        .into_iter()
        .chain(uses(&codex, with))
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
    let source = "impl<'a> A<'a> {\n    pub fn one(&self) {}\n    #[cfg(x)]\n    #[inline]\n    pub fn two() {}\n    pub const fn three() {}\n}\n\
                  impl<T: Into<Vec<u8>>> D<T>\nwhere\n    T: Clone,\n{\n    pub fn four() {}\n}\n\
                  impl Drop for A<'_> {\n    pub fn no() {}\n}\n\
                  macro_rules! instruments {\n    () => {\n        impl $ty {\n            pub fn $method() {}\n            pub fn with() {}\n        }\n    };\n}\n\
                  instruments! {\n    /// doc\n    B, add, u64;\n    C, record, f64;\n}\n";
    let mut found = BTreeMap::new();
    methods(source, &mut found);
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(found.get("A"), Some(&set(&["one", "three"])));
    assert_eq!(found.get("D"), Some(&set(&["four"])));
    assert_eq!(found.get("B"), Some(&set(&["add", "with"])));
    assert_eq!(found.get("C"), Some(&set(&["record", "with"])));
    assert_eq!(found.len(), 4, "{found:?}");
}
