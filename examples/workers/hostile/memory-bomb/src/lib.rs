//! Hostile fixture `memory-bomb`: allocates (and touches) 1 MiB blocks until
//! an allocation fails.
//!
//! Expected host behaviour: linear memory hits the worker's memory cap
//! (`StoreLimits`); the failed `memory.grow` makes Rust's allocator abort
//! the guest — a trap (`Trap::UnreachableCodeReached`) with
//! "memory allocation of 1048576 bytes failed" on stderr — or, with
//! `trap_on_grow_failure(true)`, a host "forcing trap when growing memory"
//! error. Either way a typed out-of-memory failure; the runtime's own memory
//! is unaffected. Without a cap it stops at the 4 GiB wasm32 address space.

use multiagents_worker::{Call, WorkerError};

const BLOCK: usize = 1 << 20;

fn bomb(_call: &Call, _input: Vec<u8>) -> Result<Vec<u8>, WorkerError> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; BLOCK];
        // Touch every page so the memory is really committed.
        for i in (0..BLOCK).step_by(4096) {
            block[i] = 0xa5;
        }
        blocks.push(std::hint::black_box(block));
    }
}

multiagents_worker::export_worker!(raw: bomb);
