//! Hostile fixture `state-filler`: tries to fill the store.
//!
//! Writes keys `k/0`, `k/1`, … of `value_bytes` bytes each into the bucket
//! `fill` until a write fails or `limit` keys are written, and reports how
//! far it got and how it was stopped, so a test can check that the host's
//! state quota stops it with the typed error.
//!
//! Input `{ "value_bytes": 100, "limit": 1000, "start": 0 }` (all optional).
//! Output `{ "written": n, "quota_exceeded": bool, "error": "…" | null }`.

use multiagents_worker::prelude::*;
use multiagents_worker::state::{self, StateError};

#[derive(Deserialize)]
struct In {
    #[serde(default = "default_value_bytes")]
    value_bytes: usize,
    #[serde(default = "default_limit")]
    limit: u64,
    #[serde(default)]
    start: u64,
}

fn default_value_bytes() -> usize {
    100
}

fn default_limit() -> u64 {
    1000
}

#[derive(Serialize)]
struct Out {
    written: u64,
    quota_exceeded: bool,
    error: Option<String>,
}

fn fill(_call: &Call, input: In) -> Result<Out, WorkerError> {
    let bucket = state::open("fill")?;
    let value = vec![b'x'; input.value_bytes];
    let mut written = 0;
    for n in input.start..input.start + input.limit {
        match bucket.set(&format!("k/{n}"), &value) {
            Ok(()) => written += 1,
            Err(e) => {
                return Ok(Out {
                    written,
                    quota_exceeded: matches!(e, StateError::QuotaExceeded(_)),
                    error: Some(e.to_string()),
                });
            }
        }
    }
    Ok(Out {
        written,
        quota_exceeded: false,
        error: None,
    })
}

multiagents_worker::export_worker!(fill);
