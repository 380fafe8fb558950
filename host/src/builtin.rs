//! The built-in plugins, embedded at build time (see build.rs).

/// `file-jsonl`: the record format, into the sandbox directory.
const FILE_JSONL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/file_jsonl.wasm"));

/// The component of the built-in plugin `name` (one of `config::BUILTIN_PLUGINS`).
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    match name {
        "file-jsonl" => Some(FILE_JSONL),
        _ => None,
    }
}
