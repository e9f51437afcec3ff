//! Hostile fixture `wrong-world`: a worker that also imports
//! `evil:net/raw@0.1.0`, an interface no multiagents host provides.
//!
//! It is otherwise a valid worker (it exports `handle` like any other), and
//! its `handle` calls the extra import so the component really keeps it.
//! Expected host behaviour: registration (or at the latest instantiation)
//! fails with a typed error naming the unsatisfied import
//! `evil:net/raw@0.1.0`; `handle` is never entered.

use multiagents_worker::{Call, WorkerError};

mod evil {
    // A second `generate!` for the extra import only; wit-component merges its
    // type information with the SDK's world.
    wit_bindgen::generate!({
        path: "wit",
        world: "evil:net/smuggler",
    });
}

fn handle(_call: &Call, input: Vec<u8>) -> Result<Vec<u8>, WorkerError> {
    let fd = evil::evil::net::raw::connect("127.0.0.1:9").map_err(WorkerError::fatal)?;
    Err(WorkerError::fatal(format!(
        "the host linked evil:net/raw and returned socket {fd} for {} input bytes",
        input.len()
    )))
}

multiagents_worker::export_worker!(raw: handle);
