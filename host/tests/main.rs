//! The host's integration tests, as modules of one test binary (it links once).

mod cli;
mod in_memory;
mod layers;
