//! Builds the misbehaving test plugins (`tests/guests`) for wasm32-wasip2 into OUT_DIR.

#[path = "../host/wasm_build.rs"]
mod wasm_build;

fn main() {
    wasm_build::build_workspace("guests");
}
