//! The host's integration tests, as modules of one test binary (it links once).

mod cli;
mod codex_metrics;
mod codex_session;
mod example;
mod in_memory;
mod layers;
mod off_api;
mod tracing_layer;

/// A running telemetry whose one exporter is the in-memory one, which it returns.
fn start() -> (wasmtel::Telemetry, wasmtel::testing::InMemoryExporter) {
    let exporter = wasmtel::testing::InMemoryExporter::new();
    let telemetry = wasmtel::Telemetry::builder(wasmtel::Config::empty())
        .in_memory("memory", wasmtel::Signals::ALL, &exporter)
        .start()
        .expect("start");
    (telemetry, exporter)
}
