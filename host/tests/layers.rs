//! The host's modules are layers: `src/lib.rs` declares them bottom first, and a module's code
//! (its tests aside) names only modules declared before it, through `crate::MODULE` paths. This
//! test reads the sources and fails on a path that points up (or to the crate root).

use std::path::Path;

/// The modules of `lib.rs`, in declaration order.
fn layers(src: &Path) -> Vec<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or(line.strip_prefix("mod "))?;
            Some(rest.strip_suffix(';')?.to_string())
        })
        .collect()
}

/// The text of a module's files, without comments and without its tests.
fn code(src: &Path, module: &str) -> String {
    let file = src.join(format!("{module}.rs"));
    let files: Vec<_> = if file.exists() {
        vec![file]
    } else {
        std::fs::read_dir(src.join(module))
            .unwrap_or_else(|e| panic!("module {module}: {e}"))
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .collect()
    };
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("read");
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            text.lines()
                .map(|l| l.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// The first names after `crate::` in `code`: `crate::a::b` and `crate::{a, b::c}` give a, b.
fn crate_paths(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name = part.trim().split("::").next().unwrap_or_default().trim();
                if !name.is_empty() {
                    names.push(name.to_string());
                }
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            names.push(rest[..end].to_string());
        }
    }
    names
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers = layers(&src);
    assert!(layers.len() > 10, "the modules of lib.rs: {layers:?}");
    let mut upward = Vec::new();
    for (i, module) in layers.iter().enumerate() {
        for name in crate_paths(&code(&src, module)) {
            match layers.iter().position(|m| *m == name) {
                Some(j) if j < i => {}
                Some(j) if j == i => upward.push(format!("{module} names itself as crate::{name}")),
                Some(_) => {
                    upward.push(format!("{module} (layer {i}) uses crate::{name}, above it"))
                }
                None => upward.push(format!("{module} uses crate::{name}, the crate root")),
            }
        }
    }
    assert!(upward.is_empty(), "{}", upward.join("\n"));
}

#[test]
fn the_check_finds_an_upward_path() {
    assert_eq!(
        crate_paths("use crate::{a::X, b};\nfn f() { crate::c::g() }"),
        ["a", "b", "c"]
    );
}
