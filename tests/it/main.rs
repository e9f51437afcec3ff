//! Integration tests of the `multiagents` crate: one test binary with
//! modules (cheaper to link than one binary per file).

mod cli_runtime;
mod cli_worker;
mod config;
mod demo;
mod orchestrator;
mod redis_faults;
mod runtime;
#[allow(dead_code)] // some helpers serve only the memory binary
mod support;
mod wasm_examples;
mod wasm_hostile;
mod wasm_limits;
