//! Hostile fixture `panic`: panics with the message
//! "hostile worker panicked on purpose".
//!
//! Expected host behaviour: the guest prints
//! `panicked at ...: hostile worker panicked on purpose` to its stderr and
//! aborts (`Trap::UnreachableCodeReached`); the host reports a typed trap
//! whose message includes that captured stderr, discards the instance, and
//! the next call of this worker gets a fresh instance.

use multiagents_worker::{Call, WorkerError};

fn explode(_call: &Call, _input: Vec<u8>) -> Result<Vec<u8>, WorkerError> {
    panic!("hostile worker panicked on purpose");
}

multiagents_worker::export_worker!(raw: explode);
