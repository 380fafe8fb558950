//! The host's integration tests, as modules of one test binary (it links once).

mod cli;
mod codex_metrics;
mod in_memory;
mod layers;
