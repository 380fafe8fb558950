//! The one place where the host bindings of `wit/` are generated.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    exports: { default: async },
    with: { "wasmtel:exporter/files.lock": super::files::HeldFile },
});

pub use self::wasmtel::exporter::log::Level;
pub use exports::wasmtel::exporter::exporter::{Context, Error};
