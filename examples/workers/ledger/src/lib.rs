//! `ledger`: a worker whose only side effect is an entry in an idempotency
//! ledger, so a checker can count how often each step's effect was applied.
//! The chaos harness (`tests/it/faults/chaos/`) registers it for every step
//! and compensation of its workflow, all in one state namespace.
//!
//! A call serving step `s` of transaction `t`, attempt `a`:
//! 1. fails, before applying anything, when `s` is the configured
//!    `fail_step` and [`fails`]`(t, fail_one_in)` (a fatal error: the saga
//!    compensates);
//! 2. sleeps `delay_ms` (so a process frozen mid-call can wake up to a
//!    step taken over and compensated elsewhere);
//! 3. applies its effect: `n = increment("<t>/seq")`, then sets
//!    `"<t>/<n>"` (bucket `ledger`) to `"<role> <s> <a> <instance> <unix ms>"`;
//! 4. sleeps `work_ms`, so a process killed while steps run leaves applied
//!    effects whose results were never recorded (their redelivery applies
//!    them again: the duplicates the checker must explain by a crash).
//!
//! Settings (`wasi:config`, all optional): `role` (default `do`; a
//! compensation's call names the step it undoes, so the registration that
//! compensates says `undo`), `instance` (default `-`: which process applied
//! it, from the config each process of the harness gets), `fail_step`
//! (default `c`), `fail_one_in` (default 0: never fail), `delay_ms` and
//! `work_ms` (default 0).
//! Output: `{ "seq": n }`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use multiagents_worker::prelude::*;
use multiagents_worker::{config, state};

#[derive(Serialize)]
struct Out {
    seq: u64,
}

/// Whether transaction `tx` fails at the `fail_step`: its 64-bit FNV-1a
/// hash is a multiple of `one_in` (never when `one_in` is 0). The checker
/// computes the same to know which transactions must end compensated.
pub fn fails(tx: &str, one_in: u64) -> bool {
    let hash = tx.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    one_in != 0 && hash % one_in == 0
}

fn apply(call: &Call, _input: serde::de::IgnoredAny) -> Result<Out, WorkerError> {
    let fail_step = config::get("fail_step")?.unwrap_or_else(|| "c".to_owned());
    let fail_one_in: u64 = config::parse_or("fail_one_in", 0)?;
    let work_ms: u64 = config::parse_or("work_ms", 0)?;
    let role = config::get("role")?.unwrap_or_else(|| "do".to_owned());
    let instance = config::get("instance")?.unwrap_or_else(|| "-".to_owned());
    if role == "do" && call.step == fail_step && fails(&call.transaction_id, fail_one_in) {
        return Err(WorkerError::fatal(format!(
            "{} fails at step {} by the ledger's rule",
            call.transaction_id, call.step
        )));
    }
    let delay_ms: u64 = config::parse_or("delay_ms", 0)?;
    if delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(delay_ms));
    }
    let ledger = state::open("ledger")?;
    let seq = ledger.increment(&format!("{}/seq", call.transaction_id), 1)?;
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let entry = format!("{role} {} {} {instance} {at_ms}", call.step, call.attempt);
    ledger.set(&format!("{}/{seq}", call.transaction_id), entry.as_bytes())?;
    if work_ms > 0 {
        std::thread::sleep(Duration::from_millis(work_ms));
    }
    Ok(Out { seq })
}

multiagents_worker::export_worker!(apply);
