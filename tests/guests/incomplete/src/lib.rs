//! Exports `wasmtel:exporter/exporter@0.2.0` with `init` alone: the export functions are missing.

wit_bindgen::generate!({
    inline: "
        package wasmtel:exporter@0.2.0;
        interface exporter {
            init: func(config: string) -> result<_, string>;
        }
        world plugin {
            export exporter;
        }
    ",
    world: "plugin",
});

struct Incomplete;

impl exports::wasmtel::exporter::exporter::Guest for Incomplete {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }
}

export!(Incomplete);
