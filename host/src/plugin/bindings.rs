//! The one place where the host bindings of `wit/` are generated.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    exports: { default: async },
    with: { "wasmtel:exporter/files.lock": super::files::HeldFile },
});

pub use self::wasmtel::exporter::log::Level;
pub use exports::wasmtel::exporter::exporter::{Context, Error};

/// The released `wasmtel:exporter@0.1.1` (its frozen copy in `wit/released/0.1.1`), whose
/// plugins this host adapts (`super::v0_1`).
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/released/0.1.1",
        world: "plugin",
        exports: { default: async },
        with: { "wasmtel:exporter/files.lock": super::super::files::HeldFile },
    });

    pub use self::wasmtel::exporter::types;
    pub use exports::wasmtel::exporter::exporter::{Context, Error};
}
