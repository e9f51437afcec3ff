//! What travels on the orchestrator's topics (CBOR through the
//! [`PayloadCodec`](crate::codec::PayloadCodec)).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::api::{SagaStatus, StepKind};
use crate::codec::PayloadCodec;
use crate::error::Result;
use crate::resilience::{MemoryChange, MemoryLevel};
use crate::trace::TraceParent;

/// Run one step (or compensation) attempt. Queue topic `<prefix>.cmd.<worker>`.
///
/// Published *before* the state write that dispatches it, so it can never
/// be missing once that write is in; the executor runs it only while the
/// state waits for exactly this dispatch (see [`super::saga::Fence`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Command {
    pub(crate) tx: String,
    pub(crate) workflow: String,
    pub(crate) step: usize,
    pub(crate) step_name: String,
    pub(crate) kind: StepKind,
    pub(crate) attempt: u32,
    pub(crate) worker: String,
    /// The step's input, CBOR (the transaction's context, encoded once).
    pub(crate) input: Bytes,
    /// The store version the dispatching write replaces (0: the write that
    /// creates the state): still there means the write is not in yet.
    #[serde(default)]
    pub(crate) basis: u64,
    /// The dispatching write's fencing token (`Waiting::token`).
    #[serde(default)]
    pub(crate) token: u64,
    /// Start-to-close: how long one run may take, from its start (ms).
    #[serde(default)]
    pub(crate) timeout_ms: u64,
    /// Not started by then (ms since the epoch): the attempt times out
    /// without running (the step's `queue_timeout`).
    #[serde(default)]
    pub(crate) queue_deadline_ms: Option<u64>,
    /// When it was dispatched (ms since the epoch).
    #[serde(default)]
    pub(crate) created_ms: u64,
    /// For a step run in-process: when its guard timer is due (the runner
    /// renews it while the step runs, where the store keeps timers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) guard_due_ms: Option<u64>,
    /// The trace context this attempt runs under: the transaction's when
    /// dispatched, the running span's once it runs (its result's parent).
    /// Travels in the envelope's `traceparent` header, not the payload.
    #[serde(skip)]
    pub(crate) trace: Option<TraceParent>,
}

impl Command {
    /// The result of this attempt with `outcome`.
    pub(crate) fn result(&self, outcome: Outcome) -> StepResult {
        StepResult {
            tx: self.tx.clone(),
            step: self.step,
            kind: self.kind,
            attempt: self.attempt,
            outcome,
            token: self.token,
            guard_due_ms: None,
            trace: self.trace,
        }
    }
}

/// How an attempt ended. Queue topic `<prefix>.results`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StepResult {
    pub(crate) tx: String,
    pub(crate) step: usize,
    pub(crate) kind: StepKind,
    pub(crate) attempt: u32,
    pub(crate) outcome: Outcome,
    /// The command's [`token`](Command::token).
    #[serde(default)]
    pub(crate) token: u64,
    /// Of a step run in-process: where its guard timer stands as it ends
    /// (its due time after the last renewal). A step the result dispatches
    /// in-process may keep that timer instead of moving it
    /// ([`Effects::guard`](super::saga::Effects::guard)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) guard_due_ms: Option<u64>,
    /// The span that ran the attempt (envelope header `traceparent`).
    #[serde(skip)]
    pub(crate) trace: Option<TraceParent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Outcome {
    Ok(#[serde(with = "serde_bytes")] Vec<u8>),
    Err {
        kind: String,
        retryable: bool,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TimerPurpose {
    /// The attempt's result is overdue (its queue timeout plus its step
    /// timeout have passed): if it has not come, the attempt timed out.
    Timeout,
    /// The backoff before the next attempt is over: dispatch it.
    Retry,
    /// A step run in-process has not reported by its timeout plus a slack:
    /// the instance running it died; dispatch the attempt again.
    Guard,
}

/// A deferred check. Queue topic `<prefix>.timers`, redelivered with
/// `nack(delay)` until `due_ms`. Published before the state write that
/// schedules it, like a [`Command`], and fenced the same way.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Timer {
    pub(crate) tx: String,
    pub(crate) step: usize,
    pub(crate) kind: StepKind,
    pub(crate) attempt: u32,
    pub(crate) due_ms: u64,
    pub(crate) purpose: TimerPurpose,
    /// The store version the scheduling write replaces.
    #[serde(default)]
    pub(crate) basis: u64,
    /// The scheduling write's fencing token.
    #[serde(default)]
    pub(crate) token: u64,
    /// When it was scheduled (ms since the epoch).
    #[serde(default)]
    pub(crate) created_ms: u64,
}

/// A lifecycle event on the broadcast topic `<prefix>.events`
/// (at-most-once: for watching and metrics, not for control).
///
/// Most are a transaction's; `instance.*` events are an instance's (the
/// memory guard's level changing) and have empty `tx` and `workflow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The transaction (empty for `instance.*`).
    pub tx: String,
    /// Its workflow (empty for `instance.*`).
    pub workflow: String,
    /// `workflow.started`, `workflow.completed`, `workflow.failed`,
    /// `workflow.compensating`, `workflow.compensated`, `workflow.cancelled`,
    /// `workflow.compensation_failed`, `workflow.cancel_requested`,
    /// `step.dispatched`, `step.completed`, `step.failed`, `step.skipped`,
    /// `step.retrying`, `step.timed_out`, `step.lost` (an in-process run
    /// whose instance died: dispatched again), `compensation.dispatched`,
    /// `compensation.completed`, `compensation.failed`; and for the
    /// instance that sends it, when its memory guard changes level:
    /// `instance.memory_warn` (above `warn`, or back below `resume` but
    /// still above `warn`), `instance.shedding` (above `shed`: new work
    /// refused), `instance.memory_normal` (below `warn`). Shedding ends
    /// with the next `instance.memory_warn` or `instance.memory_normal`.
    pub name: String,
    /// The step, for `step.*` and `compensation.*`.
    pub step: Option<String>,
    /// The attempt, for `step.*` and `compensation.*`.
    pub attempt: Option<u32>,
    /// The status after the event, for `workflow.*`.
    pub status: Option<SagaStatus>,
    /// An error message or other detail; for `instance.*`, the reading
    /// (resident set, limit, percentage, WebAssembly and cache shares, the
    /// exact bytes) and the level before.
    pub detail: Option<String>,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

impl Event {
    /// The event of a memory guard's level change (`instance.*`).
    pub(crate) fn memory(change: &MemoryChange, at_ms: u64) -> Event {
        let name = match change.to {
            MemoryLevel::Shed => "instance.shedding",
            MemoryLevel::Warn => "instance.memory_warn",
            MemoryLevel::Normal => "instance.memory_normal",
        };
        let r = &change.reading;
        Event {
            tx: String::new(),
            workflow: String::new(),
            name: name.to_string(),
            step: None,
            attempt: None,
            status: None,
            detail: Some(format!(
                "{r}; {} of {} bytes; was {}",
                r.rss,
                r.limit,
                change.from.as_str()
            )),
            at_ms,
        }
    }

    /// Decodes an event payload.
    pub fn decode(bytes: &[u8]) -> Result<Event> {
        PayloadCodec::default().decode(bytes)
    }
}
