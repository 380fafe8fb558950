//! A complete wasmtel exporter that also imports `test:extra/telepathy`, which no host provides.

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package test:extra;
        interface telepathy {
            read-mind: func() -> string;
        }
        world plugin {
            import telepathy;
            export wasmtel:exporter/exporter@0.2.2;
        }
    ",
    world: "test:extra/plugin",
    generate_all,
});

use exports::wasmtel::exporter::exporter::{Context, Error, Guest};

struct Telepath;

impl Guest for Telepath {
    fn init(_config: String, _context: Context) -> Result<(), Error> {
        Err(Error::Permanent(test::extra::telepathy::read_mind()))
    }
    fn export_batch(_batch: Vec<u8>) -> Result<(), Error> {
        Ok(())
    }
    fn flush() -> Result<(), Error> {
        Ok(())
    }
    fn shutdown() -> Result<(), Error> {
        Ok(())
    }
}

export!(Telepath);
