//! Hostile fixture `counter`: makes the host's concurrency observable.
//!
//! Each call atomically counts itself in (`started`), busy-waits, counts
//! itself out (`finished`), all in the state bucket `counter` (or the
//! input's `bucket`). `wasi:keyvalue` atomics can only add, so the calls in
//! flight are `started - finished`; the worker samples that at start, every
//! millisecond while it works, and returns the highest value it saw:
//!
//! Input `{ "work_ms": 20, "bucket": "counter" }` (both optional).
//! Output `{ "started": n, "in_flight_at_start": k, "max_in_flight_seen": m }`.
//!
//! A concurrency-limit test runs many calls at once and asserts
//! `max(max_in_flight_seen) <= limit` (and `== limit` under enough load, to
//! show the calls really overlapped). The bucket must be granted to the
//! worker, and must be fresh (or reset) per test. It busy-waits rather than
//! sleeping so it also holds a CPU, as a real worker would.

use std::time::{Duration, Instant};

use multiagents_worker::prelude::*;
use multiagents_worker::state::Bucket;

#[derive(Deserialize)]
struct In {
    #[serde(default = "default_work_ms")]
    work_ms: u64,
    #[serde(default = "default_bucket")]
    bucket: String,
}

fn default_work_ms() -> u64 {
    20
}

fn default_bucket() -> String {
    "counter".to_owned()
}

#[derive(Serialize)]
struct Out {
    started: u64,
    in_flight_at_start: u64,
    max_in_flight_seen: u64,
}

fn in_flight(bucket: &Bucket) -> Result<u64, WorkerError> {
    // `started` first: a call finishing between the two reads can only make
    // this an under-count, never an over-count of the calls in flight.
    let started = bucket.counter("started")?;
    let finished = bucket.counter("finished")?;
    Ok(started.saturating_sub(finished))
}

fn count(_call: &Call, input: In) -> Result<Out, WorkerError> {
    let bucket = state::open(&input.bucket)?;
    let started = bucket.increment("started", 1)?;
    let at_start = in_flight(&bucket)?;
    let mut max_seen = at_start;
    let deadline = Instant::now() + Duration::from_millis(input.work_ms);
    let mut next_sample = Instant::now();
    while Instant::now() < deadline {
        if Instant::now() >= next_sample {
            max_seen = max_seen.max(in_flight(&bucket)?);
            next_sample += Duration::from_millis(1);
        }
        std::hint::spin_loop();
    }
    max_seen = max_seen.max(in_flight(&bucket)?);
    bucket.increment("finished", 1)?;
    Ok(Out {
        started,
        in_flight_at_start: at_start,
        max_in_flight_seen: max_seen,
    })
}

multiagents_worker::export_worker!(count);
