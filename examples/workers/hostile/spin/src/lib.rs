//! Hostile fixture `spin`: never returns — a busy loop with no imports
//! called.
//!
//! Expected host behaviour: the call is interrupted by the worker's timeout
//! (epoch interruption → `Trap::Interrupt`, or fuel → `Trap::OutOfFuel`) and
//! reported as a typed timeout; the instance is discarded and the runtime
//! stays healthy (other calls keep running on the other threads).

use multiagents_worker::{Call, WorkerError};

fn spin(_call: &Call, _input: Vec<u8>) -> Result<Vec<u8>, WorkerError> {
    let mut n: u64 = 0;
    loop {
        // black_box: the optimiser must not prove the loop side-effect free.
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

multiagents_worker::export_worker!(raw: spin);
