//! `sleep`: waits for the requested time without using CPU, then returns.
//!
//! Input `{ "ms": 250 }` (CBOR map; `ms` defaults to 100). Output
//! `{ "slept_ms": <measured> }`. It blocks in `wasi:clocks` / `wasi:io/poll`,
//! so it exercises the host's timeout on a *waiting* guest (the `spin`
//! fixture covers a busy one) and lets concurrency tests hold permits cheaply.

use std::time::{Duration, Instant};

use multiagents_worker::prelude::*;

#[derive(Deserialize)]
struct In {
    #[serde(default = "default_ms")]
    ms: u64,
}

fn default_ms() -> u64 {
    100
}

#[derive(Serialize)]
struct Out {
    slept_ms: u64,
}

fn sleep(_call: &Call, input: In) -> Result<Out, WorkerError> {
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(input.ms));
    let slept_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(Out { slept_ms })
}

multiagents_worker::export_worker!(sleep);
