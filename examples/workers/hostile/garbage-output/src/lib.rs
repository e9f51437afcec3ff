//! Hostile fixture `garbage-output`: returns bytes that are not CBOR.
//!
//! The output starts with `0xff` (the CBOR "break" code, never valid at the
//! start of a data item) followed by text. Expected host behaviour: the call
//! "succeeds" at the component level, but the host's output check fails the
//! step with a fatal "bad output: not valid CBOR" error.

use multiagents_worker::{Call, WorkerError};

fn garbage(_call: &Call, _input: Vec<u8>) -> Result<Vec<u8>, WorkerError> {
    let mut out = vec![0xff];
    out.extend_from_slice(b"this is not CBOR \x00\x01\x02");
    Ok(out)
}

multiagents_worker::export_worker!(raw: garbage);
