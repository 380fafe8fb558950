//! Exports `wasmtel:exporter/exporter@9.0.0`, a version no host implements yet.

wit_bindgen::generate!({
    inline: "
        package wasmtel:exporter@9.0.0;
        interface exporter {
            init: func(config: string) -> result<_, string>;
        }
        world plugin {
            export exporter;
        }
    ",
    world: "plugin",
});

struct Future;

impl exports::wasmtel::exporter::exporter::Guest for Future {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }
}

export!(Future);
