//! An exporter built against `wasmtel:exporter@0.2.0` as released (the frozen copy in `wit/released/0.2.0`):
//! it imports `log@0.2.0` and exports `exporter@0.2.0`, counts the records of each batch (by the
//! 0.2.0 layout: a kind byte and a size each) and logs the count, so a later host is seen to run
//! it, its imports linked, its batches read.

wit_bindgen::generate!({
    path: "../../../wit/released/0.2.0",
    world: "plugin",
});

use exports::wasmtel::exporter::exporter::{Context, Error, Guest};
use wasmtel::exporter::log::{Level, log};

struct Released;

impl Guest for Released {
    fn init(_config: String, context: Context) -> Result<(), Error> {
        log(
            Level::Info,
            &format!("0.2.0 plugin up for {}", context.exporter_name),
        );
        Ok(())
    }

    fn export_batch(batch: Vec<u8>) -> Result<(), Error> {
        let mut records = 0u64;
        let mut at = 0usize;
        while at + 5 <= batch.len() {
            let size = u32::from_le_bytes(batch[at + 1..at + 5].try_into().expect("4 bytes"));
            if batch[at] != 0 {
                records += 1;
            }
            at += 5 + size as usize;
        }
        if at != batch.len() {
            return Err(Error::Permanent(format!(
                "a batch of {} bytes ends mid-record",
                batch.len()
            )));
        }
        log(Level::Info, &format!("0.2.0 plugin got {records} records"));
        Ok(())
    }

    fn flush() -> Result<(), Error> {
        Ok(())
    }

    fn shutdown() -> Result<(), Error> {
        Ok(())
    }
}

export!(Released);
