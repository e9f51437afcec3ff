//! The persisted state of one transaction and its transitions.
//!
//! Transitions are plain functions of (state, definition, event, now): they
//! change the state and list the [`Effects`] to publish. The engine writes
//! the new state with compare-and-swap and publishes the effects; nothing
//! here does I/O, so every saga path is testable without a backend.
//!
//! * this file: the state, its waits and how a fenced message stands
//!   against it;
//! * [`effects`]: what one change publishes, and where its steps may run;
//! * [`forward`]: starting, dispatching steps and taking their results;
//! * [`timers`]: timeouts, retries and guards coming due, and a step handed
//!   over to the queue;
//! * [`undo`]: failed attempts, compensation, the end and cancelling;
//! * [`encoded`]: the state's encoding, which does not encode again what a
//!   change left as it was (the context, the finished attempts).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{SagaSnapshot, SagaStatus, StepKind, TransactionId};
#[cfg(test)]
use super::messages::{Command, Outcome, StepResult, Timer};
use super::messages::{Event, TimerPurpose};
use crate::trace::TraceParent;
use crate::workflow::WorkflowDef;

mod effects;
mod encoded;
mod forward;
mod timers;
mod undo;

pub(crate) use effects::{Effects, Placement};
use encoded::{CborValue, History};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Stage {
    /// The command is out; its result (or timeout timer) is awaited.
    Running,
    /// A retry's backoff timer is pending.
    Backoff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Waiting {
    pub(crate) step: usize,
    pub(crate) kind: StepKind,
    pub(crate) attempt: u32,
    pub(crate) stage: Stage,
    /// The fencing token of the write that started this wait: random per
    /// write attempt, so two writers racing from the same state (one wins
    /// the compare-and-swap) never dispatch the same token. Its command and
    /// timers carry it.
    #[serde(default)]
    pub(crate) token: u64,
}

/// Where a fenced message (command or timer) stands against the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fence {
    /// The state waits for exactly this message: act on it.
    Current,
    /// The write that publishes it is not in yet (the state is still at
    /// the message's basis, or absent for a creating write): keep it.
    Early,
    /// The state has moved past it (superseded, finished or expired): drop it.
    Stale,
}

impl Fence {
    /// Judges a message for `want`, published by a write over `basis`,
    /// against the state's `waiting` read at `version` (`None`: no state).
    pub(crate) fn judge(read: Option<(Option<Waiting>, u64)>, want: Waiting, basis: u64) -> Fence {
        match read {
            None if basis == 0 => Fence::Early,
            None => Fence::Stale,
            Some((waiting, _)) if waiting == Some(want) => Fence::Current,
            Some((_, version)) if version == basis => Fence::Early,
            Some(_) => Fence::Stale,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Ending {
    Failure,
    Cancel,
}

/// Only what a fence needs of a stored state: decoding it skips the rest.
#[derive(Debug, Deserialize)]
pub(crate) struct WaitingOnly {
    pub(crate) waiting: Option<Waiting>,
}

/// When the state's current wait needs attention without a message: the
/// due time of its timer (kept with the state in a store with timers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Deadline {
    pub(crate) due_ms: u64,
    pub(crate) purpose: TimerPurpose,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SagaState {
    pub(crate) tx: String,
    pub(crate) workflow: String,
    pub(crate) status: SagaStatus,
    pub(crate) input: CborValue,
    pub(crate) context: CborValue,
    /// Indices of completed (not skipped) forward steps, in order.
    pub(crate) completed: Vec<usize>,
    pub(crate) waiting: Option<Waiting>,
    pub(crate) ending: Option<Ending>,
    /// Next position in the compensation list.
    pub(crate) comp_pos: usize,
    pub(crate) cancel_requested: bool,
    pub(crate) error: Option<String>,
    pub(crate) output: Option<CborValue>,
    pub(crate) history: History,
    pub(crate) created_ms: u64,
    pub(crate) updated_ms: u64,
    /// The current wait's timer, if it has one.
    #[serde(default)]
    pub(crate) deadline: Option<Deadline>,
    /// The transaction's trace: its id, and the span that submitted it
    /// (the parent of every step's span, on any instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) trace: Option<TraceParent>,
}

/// How much of the guard slack must be left on a guard timer for the next
/// in-process step to keep it, in sixths. Its runner renews it when a third
/// of the slack has gone (two thirds left), as it does a fresh guard, so the
/// margins against a late renewal and a claimer's clock are the same as a
/// fresh guard's; five sixths leave the runner about a sixth of the slack before
/// that first renewal (one kept with two thirds or less would be renewed at
/// once).
const GUARD_KEPT_SIXTHS: u64 = 5;

/// How long a queue-timeout timer waits past the attempt's own limits, so
/// that a result sent just in time lands first.
const QUEUE_GUARD_SLACK_MS: u64 = 1_000;

impl SagaState {
    pub(crate) fn new(tx: &TransactionId, wf: &WorkflowDef, input: Value, now: u64) -> Self {
        // The context starts as the input: one encoding for both.
        let mut input = CborValue::new(input);
        let context = input.shared();
        SagaState {
            tx: tx.0.clone(),
            workflow: wf.name.clone(),
            status: SagaStatus::Running,
            context,
            input,
            completed: Vec::new(),
            waiting: None,
            ending: None,
            comp_pos: 0,
            cancel_requested: false,
            error: None,
            output: None,
            history: History::default(),
            created_ms: now,
            updated_ms: now,
            deadline: None,
            trace: None,
        }
    }

    fn event(
        &self,
        fx: &mut Effects,
        name: &str,
        step: Option<(&str, u32)>,
        detail: Option<String>,
        now: u64,
    ) {
        fx.events.push(Event {
            tx: self.tx.clone(),
            workflow: self.workflow.clone(),
            name: name.to_string(),
            step: step.map(|(s, _)| s.to_string()),
            attempt: step.map(|(_, a)| a),
            status: name.starts_with("workflow.").then_some(self.status),
            detail,
            at_ms: now,
        });
    }

    /// Whether the state waits for exactly this dispatch at this stage.
    pub(crate) fn expects(
        &self,
        step: usize,
        kind: StepKind,
        attempt: u32,
        stage: Stage,
        token: u64,
    ) -> bool {
        self.waiting
            == Some(Waiting {
                step,
                kind,
                attempt,
                stage,
                token,
            })
    }

    pub(crate) fn snapshot(&self, wf: Option<&WorkflowDef>, with_history: bool) -> SagaSnapshot {
        SagaSnapshot {
            tx: TransactionId(self.tx.clone()),
            workflow: self.workflow.clone(),
            status: self.status,
            current_step: self
                .waiting
                .and_then(|w| wf.and_then(|wf| wf.steps.get(w.step)).map(|s| s.name.clone())),
            output: self.output.as_ref().map(|o| o.get().clone()),
            error: self.error.clone(),
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            history: if with_history {
                self.history.to_vec()
            } else {
                Vec::new()
            },
            pending: self.status == SagaStatus::Running
                && self.history.iter().all(|h| h.finished_ms.is_none()),
            trace_id: self.trace.map(|t| t.trace_id_hex()),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;

#[cfg(test)]
mod props_model;

#[cfg(test)]
mod table;
