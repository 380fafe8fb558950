//! wasmtel's integration tests, with real plugins and misbehaving guests, as modules of one test
//! binary: it links once, and takes a fraction of the disk of a binary per file. A test that needs
//! a process to itself (its peak memory measured, or the process's log subscriber set) runs itself
//! again, alone, through `wasmtel_tests::in_own_process`.

mod catalog;
mod check;
mod cli_summary;
mod config_layers;
mod csv_examples;
mod disabled;
mod faults;
mod feedback;
mod harness;
mod file_jsonl;
mod helpers;
mod idle;
mod inspect;
mod limits;
mod loading;
mod log_rate;
mod metrics_burst;
mod native;
mod otel_config;
mod otel_sdk;
mod otlp;
mod otlp_differential;
mod network;
mod prune_property;
mod record_api;
mod replay;
mod sandbox;
mod self_telemetry;
mod sessions;
mod spool;
mod stable_replay;
mod templates;
mod text_batches;
mod versions;
