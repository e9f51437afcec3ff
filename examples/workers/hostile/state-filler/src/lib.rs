//! Hostile fixture `state-filler`: tries to fill the store.
//!
//! Writes keys `k/0`, `k/1`, … of `value_bytes` bytes each into the bucket
//! `fill` until a write fails or `limit` keys are written, and reports how
//! far it got and how it was stopped, so a test can check that the host's
//! state quota stops it with the typed error.
//!
//! Input `{ "value_bytes": 100, "limit": 1000, "start": 0 }` (all optional).
//! Output `{ "written": n, "quota_exceeded": bool, "error": "…" | null }`.
//!
//! Or a script, `{ "ops": [op, …] }`, run in order, each op one of
//! `{"set": key, "bytes": n}`, `{"set_many": [key, …], "bytes": n}` (one
//! batch), `{"delete": key}`, `{"incr": key, "by": n}`. Output
//! `{ "results": ["ok" | "quota" | "error: …", …] }`, one per op.

use multiagents_worker::prelude::*;
use multiagents_worker::state::{self, StateError};

#[derive(Deserialize)]
struct Op {
    set: Option<String>,
    set_many: Option<Vec<String>>,
    delete: Option<String>,
    incr: Option<String>,
    #[serde(default)]
    bytes: usize,
    #[serde(default = "one")]
    by: u64,
}

fn one() -> u64 {
    1
}

#[derive(Deserialize)]
struct In {
    #[serde(default)]
    ops: Option<Vec<Op>>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<Vec<String>>,
    written: u64,
    quota_exceeded: bool,
    error: Option<String>,
}

fn run(bucket: &state::Bucket, op: &Op) -> Result<(), StateError> {
    let value = vec![b'x'; op.bytes];
    if let Some(key) = &op.set {
        bucket.set(key, &value)
    } else if let Some(keys) = &op.set_many {
        let pairs: Vec<(String, Vec<u8>)> = keys.iter().map(|k| (k.clone(), value.clone())).collect();
        bucket.set_many(&pairs)
    } else if let Some(key) = &op.delete {
        bucket.delete(key)
    } else if let Some(key) = &op.incr {
        bucket.increment(key, op.by).map(|_| ())
    } else {
        Ok(())
    }
}

fn fill(_call: &Call, input: In) -> Result<Out, WorkerError> {
    let bucket = state::open("fill")?;
    if let Some(ops) = &input.ops {
        let results = ops
            .iter()
            .map(|op| match run(&bucket, op) {
                Ok(()) => "ok".to_owned(),
                Err(StateError::QuotaExceeded(_)) => "quota".to_owned(),
                Err(e) => format!("error: {e}"),
            })
            .collect();
        return Ok(Out {
            results: Some(results),
            written: 0,
            quota_exceeded: false,
            error: None,
        });
    }
    let value = vec![b'x'; input.value_bytes];
    let mut written = 0;
    for n in input.start..input.start + input.limit {
        match bucket.set(&format!("k/{n}"), &value) {
            Ok(()) => written += 1,
            Err(e) => {
                return Ok(Out {
                    results: None,
                    written,
                    quota_exceeded: matches!(e, StateError::QuotaExceeded(_)),
                    error: Some(e.to_string()),
                });
            }
        }
    }
    Ok(Out {
        results: None,
        written,
        quota_exceeded: false,
        error: None,
    })
}

multiagents_worker::export_worker!(fill);
