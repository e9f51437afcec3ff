//! `echo`: returns its input bytes unchanged.
//!
//! The cheapest possible worker — no decoding, no imports called — so a
//! benchmark of it measures the host's per-call cost (instantiation, the
//! canonical-ABI copy in and out, the output check). Input must be CBOR like
//! any step input, and the output is then CBOR too.

use multiagents_worker::{Call, WorkerError};

fn echo(_call: &Call, input: Vec<u8>) -> Result<Vec<u8>, WorkerError> {
    Ok(input)
}

multiagents_worker::export_worker!(raw: echo);
