//! Hostile fixture `huge-output`: returns a 64 MiB output (one CBOR byte
//! string of zeros, so it *is* valid CBOR — only its size is hostile).
//!
//! Input: optionally a CBOR unsigned integer, the payload size in bytes
//! (default 64 MiB), to probe a host's output cap from both sides. Expected
//! host behaviour: an output above the registration's cap fails the step
//! with a fatal "output too large" error without the host buffering it
//! further; if the memory cap is below ~64 MiB the guest traps out of memory
//! first (also acceptable: typed, runtime healthy).

use multiagents_worker::{Call, WorkerError};

const DEFAULT_SIZE: usize = 64 << 20;

fn huge(_call: &Call, input: Vec<u8>) -> Result<Vec<u8>, WorkerError> {
    let size = multiagents_worker::codec::from_cbor::<u64>(&input)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(DEFAULT_SIZE);
    let len = u32::try_from(size).map_err(|_| WorkerError::fatal("size must fit in 32 bits"))?;
    // CBOR major type 2 (byte string) with a 4-byte length, then the bytes:
    // built in place so the guest holds a single copy.
    let mut out = Vec::with_capacity(5 + size);
    out.push(0x5a);
    out.extend_from_slice(&len.to_be_bytes());
    out.resize(5 + size, 0);
    Ok(out)
}

multiagents_worker::export_worker!(raw: huge);
