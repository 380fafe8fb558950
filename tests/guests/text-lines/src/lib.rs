//! An exporter of the `text-plugin` world, bound from `wit/` alone (its WASI imports from
//! `wit/deps`): it appends the lines of every batch to `lines.jsonl` in its sandbox directory,
//! leaving out a resource line equal to the last one written, as file-jsonl does; so for the same
//! records the two files are the same.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "wasmtel:exporter/text-plugin",
    generate_all,
});

use std::io::Write;
use std::sync::Mutex;

use exports::wasmtel::exporter::exporter::{Context, Error, Guest};
use exports::wasmtel::exporter::text_batches::Guest as TextGuest;

/// The last resource line written.
static RESOURCE: Mutex<String> = Mutex::new(String::new());

struct Lines;

impl Guest for Lines {
    fn init(_config: String, _context: Context) -> Result<(), Error> {
        Ok(())
    }
    fn export_batch(_batch: Vec<u8>) -> Result<(), Error> {
        Err(Error::Permanent("this plugin takes batches as text".into()))
    }
    fn flush() -> Result<(), Error> {
        Ok(())
    }
    fn shutdown() -> Result<(), Error> {
        Ok(())
    }
}

impl TextGuest for Lines {
    fn export_lines(lines: String) -> Result<(), Error> {
        let failed = |e: std::io::Error| Error::Permanent(format!("lines.jsonl: {e}"));
        let (resource, records) = lines.split_at(lines.find('\n').map_or(lines.len(), |n| n + 1));
        let mut last = RESOURCE.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        if *last != resource {
            resource.clone_into(&mut last);
            out.push_str(resource);
        }
        out.push_str(records);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open("lines.jsonl")
            .and_then(|mut f| f.write_all(out.as_bytes()))
            .map_err(failed)
    }
}

export!(Lines);
