//! The one place where the guest bindings of `wit/` are generated. Private to the SDK: plugin
//! authors use the re-exports and views of the crate root.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    pub_export_macro: true,
    export_macro_name: "__export_plugin",
    default_bindings_module: "wasmtel_sdk::__bindings",
    runtime_path: "wasmtel_sdk::__rt",
});
