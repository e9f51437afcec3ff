//! Integration tests of the `multiagents` crate: one test binary with
//! modules (cheaper to link than one binary per file).

mod adaptive;
#[cfg(feature = "admin")]
mod admin;
#[cfg(feature = "admin")]
mod admin_cli;
mod backends;
mod backpressure;
mod cli_runtime;
mod cli_worker;
mod client;
mod config;
mod crash_windows;
#[cfg(feature = "redis")]
mod dead_letters;
mod demo;
mod doctor;
mod faults;
mod fuse;
mod languages;
mod loadtest;
mod local;
mod local_guard;
mod memory_guard;
mod orchestrator;
mod profile;
#[cfg(feature = "redis")]
mod redis_cli;
#[cfg(feature = "redis")]
mod redis_process;
#[cfg(feature = "redis")]
mod redis_runtime;
mod runtime;
mod shutdown;
mod spread;
mod state_quota;
#[allow(dead_code)] // some helpers serve only the memory binary
mod support;
mod timers;
mod under_load;
mod wasm_examples;
mod wasm_hostile;
mod wasm_limits;
mod wit_compat;
mod worker_lease;
