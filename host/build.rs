//! Builds the built-in plugins (the `plugins/` workspace) for wasm32-wasip2 and puts the
//! components in OUT_DIR, where `src/builtin.rs` embeds them.

#[path = "wasm_build.rs"]
mod wasm_build;

fn main() {
    wasm_build::build_workspace("../plugins");
}
