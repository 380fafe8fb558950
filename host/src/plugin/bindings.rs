//! The one place where the host bindings of `wit/` are generated.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    exports: { default: async },
});

pub use exports::wasmtel::exporter::exporter::{Context, Error};
pub use wasmtel::exporter::log::Level;
pub use wasmtel::exporter::types;
