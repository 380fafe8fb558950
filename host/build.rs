//! Builds the built-in plugins (the `plugins/` workspace) for wasm32-wasip2 and puts the
//! components in OUT_DIR, where `src/builtin.rs` embeds them; without the `runtime` feature
//! there is no host to embed them in, and nothing is built.

#[path = "wasm_build.rs"]
mod wasm_build;

fn main() {
    if std::env::var_os("CARGO_FEATURE_RUNTIME").is_none() {
        println!("cargo:rerun-if-changed=build.rs");
        return;
    }
    wasm_build::build_workspace("../plugins");
}
