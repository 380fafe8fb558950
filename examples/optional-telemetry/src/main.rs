//! `optional-telemetry [DIR]`: records one turn into `DIR/app.jsonl` (default `DIR`: `logs`) and
//! prints each exporter's figures; built without its `telemetry` feature, records nothing.

fn main() -> Result<(), wasmtel::Error> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "logs".into());
    let exporters = optional_telemetry::run(std::path::Path::new(&dir))?;
    if exporters.is_empty() {
        println!("no exporter ran: nothing recorded");
    }
    for exporter in exporters {
        println!("{exporter}");
    }
    Ok(())
}
