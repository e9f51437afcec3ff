//! The persisted state of one transaction and its transitions.
//!
//! Transitions are plain functions of (state, definition, event, now): they
//! change the state and list the [`Effects`] to publish. The engine writes
//! the new state with compare-and-swap and publishes the effects; nothing
//! here does I/O, so every saga path is testable without a backend.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{AttemptRecord, SagaSnapshot, SagaStatus, StepKind, TransactionId};
use super::messages::{Command, Event, Outcome, StepResult, Timer, TimerPurpose};
use crate::error::{Error, ErrorKind, Result};
use crate::scheduler::millis;
use crate::trace::TraceParent;
use crate::workflow::WorkflowDef;

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

/// What one state change publishes: commands and timers before the write
/// (fenced by `basis` and `token`), events after it, and the steps this
/// instance runs itself once it is written.
#[derive(Default)]
pub(crate) struct Effects {
    /// The version the write replaces (0: it creates the state).
    pub(crate) basis: u64,
    /// The fencing token of this write attempt (see [`Waiting::token`]).
    pub(crate) token: u64,
    /// Commands for the queue.
    pub(crate) commands: Vec<Command>,
    /// Commands this instance runs in-process after the write (their guard
    /// timer is the crash record).
    pub(crate) local: Vec<Command>,
    /// Timer messages (for a store without timers; with one, the state's
    /// [`Deadline`] is written with it instead).
    pub(crate) timers: Vec<Timer>,
    pub(crate) events: Vec<Event>,
    /// Where a dispatch may run in-process (`None`: every step is queued).
    pub(crate) placement: Option<Placement>,
    /// Where the transaction's guard timer stands, when the input is the
    /// result of an in-process run that knows (its last renewal). A step
    /// this write dispatches in-process keeps that timer while it is at
    /// least [`GUARD_KEPT_SIXTHS`] sixths of the slack away, so a chain of
    /// fast steps costs the store no timer write per step; the step's
    /// runner renews it from there.
    pub(crate) guard: Option<u64>,
}

impl std::fmt::Debug for Effects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effects")
            .field("basis", &self.basis)
            .field("token", &self.token)
            .field("commands", &self.commands)
            .field("local", &self.local)
            .field("timers", &self.timers)
            .field("events", &self.events)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl Effects {
    /// Effects of a write attempt over `basis`, with a fresh token.
    pub(crate) fn over(basis: u64) -> Self {
        Effects {
            basis,
            token: fresh_token(),
            ..Effects::default()
        }
    }
}

/// Whether a step may run in the instance that dispatches it.
#[derive(Clone)]
pub(crate) struct Placement {
    /// Whether this instance takes a step of this worker now (it has the
    /// worker and a free permit).
    pub(crate) run_here: std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// How long the guard of an in-process run waits past the step timeout
    /// (or, renewed, past its last renewal) for its result before it
    /// dispatches the step again.
    pub(crate) guard_slack_ms: u64,
    /// The guard is renewed while the step runs (the store keeps timers):
    /// it is due `guard_slack_ms` after the dispatch, not after the step
    /// timeout, and a step without a timeout may run in-process too.
    pub(crate) renewed: bool,
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
    pub(crate) input: Value,
    pub(crate) context: Value,
    /// Indices of completed (not skipped) forward steps, in order.
    pub(crate) completed: Vec<usize>,
    pub(crate) waiting: Option<Waiting>,
    pub(crate) ending: Option<Ending>,
    /// Next position in the compensation list.
    pub(crate) comp_pos: usize,
    pub(crate) cancel_requested: bool,
    pub(crate) error: Option<String>,
    pub(crate) output: Option<Value>,
    pub(crate) history: Vec<AttemptRecord>,
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

/// A random, non-zero 64-bit token.
fn fresh_token() -> u64 {
    crate::kit::random_u64() | 1
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

fn seed(tx: &str, step: usize, attempt: u32) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (tx, step, attempt).hash(&mut h);
    h.finish()
}

impl SagaState {
    pub(crate) fn new(tx: &TransactionId, wf: &WorkflowDef, input: Value, now: u64) -> Self {
        SagaState {
            tx: tx.0.clone(),
            workflow: wf.name.clone(),
            status: SagaStatus::Running,
            context: input.clone(),
            input,
            completed: Vec::new(),
            waiting: None,
            ending: None,
            comp_pos: 0,
            cancel_requested: false,
            error: None,
            output: None,
            history: Vec::new(),
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

    pub(crate) fn start(&mut self, wf: &WorkflowDef, now: u64, fx: &mut Effects) {
        self.event(fx, "workflow.started", None, None, now);
        self.advance(wf, 0, now, fx);
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

    fn advance(&mut self, wf: &WorkflowDef, from: usize, now: u64, fx: &mut Effects) {
        if self.cancel_requested {
            return self.begin_compensation(wf, Ending::Cancel, now, fx);
        }
        for (i, step) in wf.steps.iter().enumerate().skip(from) {
            if let Some(condition) = &step.condition {
                match condition.evaluate(&self.input, &self.context) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.history.push(AttemptRecord {
                            step: step.name.clone(),
                            kind: StepKind::Forward,
                            attempt: 0,
                            worker: step.worker.clone(),
                            started_ms: now,
                            finished_ms: Some(now),
                            outcome: Some("skipped".into()),
                        });
                        let detail = format!("condition {:?} is false", condition.source());
                        self.event(fx, "step.skipped", Some((&step.name, 0)), Some(detail), now);
                        continue;
                    }
                    Err(e) => {
                        self.error = Some(format!("step {:?}: {}", step.name, e.message()));
                        return self.begin_compensation(wf, Ending::Failure, now, fx);
                    }
                }
            }
            return self.dispatch(wf, i, StepKind::Forward, 1, now, fx);
        }
        self.status = SagaStatus::Completed;
        self.waiting = None;
        self.deadline = None;
        self.output = Some(self.context.clone());
        self.event(fx, "workflow.completed", None, None, now);
    }

    fn dispatch(
        &mut self,
        wf: &WorkflowDef,
        i: usize,
        kind: StepKind,
        attempt: u32,
        now: u64,
        fx: &mut Effects,
    ) {
        let step = &wf.steps[i];
        let worker = match kind {
            StepKind::Forward => step.worker.clone(),
            StepKind::Compensate => step.compensation.clone().unwrap_or_default(),
        };
        let mut input = Vec::with_capacity(256);
        if let Err(e) = ciborium::into_writer(&self.context, &mut input) {
            // A serde_json::Value always encodes; keep the saga moving anyway.
            tracing::error!(tx = %self.tx, error = %e, "cannot encode the workflow context");
        }
        let (basis, token) = (fx.basis, fx.token);
        self.waiting = Some(Waiting {
            step: i,
            kind,
            attempt,
            stage: Stage::Running,
            token,
        });
        self.history.push(AttemptRecord {
            step: step.name.clone(),
            kind,
            attempt,
            worker: worker.clone(),
            started_ms: now,
            finished_ms: None,
            outcome: None,
        });
        let timeout_ms = millis(step.timeout);
        // In-process when this instance takes it now and the run is bounded
        // (its guard must not fire while it runs).
        let here = fx
            .placement
            .as_ref()
            .filter(|p| (p.renewed || timeout_ms > 0) && (p.run_here)(&worker))
            .map(|p| {
                let bound = if p.renewed { 0 } else { timeout_ms };
                let fresh = now.saturating_add(bound).saturating_add(p.guard_slack_ms);
                let left = p.guard_slack_ms / 6 * GUARD_KEPT_SIXTHS;
                fx.guard
                    .filter(|&due| p.renewed && due <= fresh && due.saturating_sub(now) >= left)
                    .unwrap_or(fresh)
            });
        // The step timeout is start-to-close, enforced by the executor; a
        // queued step needs a durable timer only for a queue timeout (it
        // also covers a command nobody serves). Its slack keeps it behind a
        // result sent in time. A step run in-process has a guard: no result
        // (nor renewal) by then means the instance died; it runs again.
        let timer = match (here, step.queue_timeout) {
            (Some(guard), _) => Some((guard, TimerPurpose::Guard)),
            (None, Some(queue)) => Some((
                now.saturating_add(millis(queue))
                    .saturating_add(timeout_ms)
                    .saturating_add(QUEUE_GUARD_SLACK_MS),
                TimerPurpose::Timeout,
            )),
            (None, None) => None,
        };
        self.deadline = timer.map(|(due_ms, purpose)| Deadline { due_ms, purpose });
        if let Some((due_ms, purpose)) = timer {
            fx.timers.push(Timer {
                tx: self.tx.clone(),
                step: i,
                kind,
                attempt,
                due_ms,
                purpose,
                basis,
                token,
                created_ms: now,
            });
        }
        let command = Command {
            tx: self.tx.clone(),
            workflow: self.workflow.clone(),
            step: i,
            step_name: step.name.clone(),
            kind,
            attempt,
            worker,
            input,
            basis,
            token,
            timeout_ms,
            queue_deadline_ms: step
                .queue_timeout
                .filter(|_| here.is_none())
                .map(|q| now.saturating_add(millis(q))),
            created_ms: now,
            guard_due_ms: here,
            trace: self.trace,
        };
        if here.is_some() {
            fx.local.push(command);
        } else {
            fx.commands.push(command);
        }
        let name = match kind {
            StepKind::Forward => "step.dispatched",
            StepKind::Compensate => "compensation.dispatched",
        };
        self.event(fx, name, Some((&step.name, attempt)), None, now);
    }

    fn finish_attempt(&mut self, step: &str, kind: StepKind, attempt: u32, outcome: String, now: u64) {
        if let Some(r) = self
            .history
            .iter_mut()
            .rev()
            .find(|r| r.step == step && r.kind == kind && r.attempt == attempt && r.finished_ms.is_none())
        {
            r.finished_ms = Some(now);
            r.outcome = Some(outcome);
        }
    }

    /// A result the state expects (check [`expects`](Self::expects) first).
    pub(crate) fn on_result(&mut self, wf: &WorkflowDef, r: &StepResult, now: u64, fx: &mut Effects) {
        fx.guard = r.guard_due_ms;
        let name = wf.steps[r.step].name.clone();
        match &r.outcome {
            Outcome::Ok(bytes) => {
                self.finish_attempt(&name, r.kind, r.attempt, "ok".into(), now);
                match r.kind {
                    StepKind::Forward => match ciborium::from_reader::<Value, _>(bytes.as_slice()) {
                        Ok(output) => {
                            merge(&mut self.context, &name, output);
                            self.completed.push(r.step);
                            self.event(fx, "step.completed", Some((&name, r.attempt)), None, now);
                            self.advance(wf, r.step + 1, now, fx);
                        }
                        Err(e) => {
                            let message = format!("output is not CBOR data the orchestrator can read: {e}");
                            self.fail_attempt(wf, r.step, r.kind, r.attempt, false, message, now, fx);
                        }
                    },
                    StepKind::Compensate => {
                        self.event(fx, "compensation.completed", Some((&name, r.attempt)), None, now);
                        self.comp_pos += 1;
                        self.next_compensation(wf, now, fx);
                    }
                }
            }
            Outcome::Err {
                kind,
                retryable,
                message,
            } if kind == "timeout" => {
                self.finish_attempt(&name, r.kind, r.attempt, "timeout".into(), now);
                self.event(
                    fx,
                    "step.timed_out",
                    Some((&name, r.attempt)),
                    Some(message.clone()),
                    now,
                );
                let message = format!("timeout: {message}");
                self.fail_attempt(wf, r.step, r.kind, r.attempt, *retryable, message, now, fx);
            }
            Outcome::Err {
                kind,
                retryable,
                message,
            } => {
                self.finish_attempt(&name, r.kind, r.attempt, format!("{kind}: {message}"), now);
                self.fail_attempt(
                    wf,
                    r.step,
                    r.kind,
                    r.attempt,
                    *retryable,
                    message.clone(),
                    now,
                    fx,
                );
            }
        }
    }

    /// The wait a timer belongs to (for [`Fence::judge`]).
    pub(crate) fn timer_wait(t: &Timer) -> Waiting {
        Waiting {
            step: t.step,
            kind: t.kind,
            attempt: t.attempt,
            stage: match t.purpose {
                TimerPurpose::Timeout | TimerPurpose::Guard => Stage::Running,
                TimerPurpose::Retry => Stage::Backoff,
            },
            token: t.token,
        }
    }

    /// A timer the state may or may not still expect; `false` if it does
    /// not (judge it with [`Fence::judge`] first to tell early from stale).
    pub(crate) fn on_timer(&mut self, wf: &WorkflowDef, t: &Timer, now: u64, fx: &mut Effects) -> bool {
        match t.purpose {
            TimerPurpose::Timeout if self.expects(t.step, t.kind, t.attempt, Stage::Running, t.token) => {
                let step = &wf.steps[t.step];
                let message = format!(
                    "timeout: no result within the queue timeout of {:?} plus the step timeout of {:?}",
                    step.queue_timeout.unwrap_or_default(),
                    step.timeout
                );
                let name = step.name.clone();
                self.finish_attempt(&name, t.kind, t.attempt, "timeout".into(), now);
                self.event(fx, "step.timed_out", Some((&name, t.attempt)), None, now);
                self.fail_attempt(wf, t.step, t.kind, t.attempt, true, message, now, fx);
                true
            }
            TimerPurpose::Retry if self.expects(t.step, t.kind, t.attempt, Stage::Backoff, t.token) => {
                self.dispatch(wf, t.step, t.kind, t.attempt, now, fx);
                true
            }
            TimerPurpose::Guard if self.expects(t.step, t.kind, t.attempt, Stage::Running, t.token) => {
                // The instance running it in-process reported nothing by its
                // timeout and slack: it died (or lost the store). The same
                // attempt runs again (at least once); its retries are kept.
                let name = wf.steps[t.step].name.clone();
                let detail = "no result from the instance running it in-process by its guard deadline; dispatched again";
                self.finish_attempt(&name, t.kind, t.attempt, "lost".into(), now);
                self.event(
                    fx,
                    "step.lost",
                    Some((&name, t.attempt)),
                    Some(detail.into()),
                    now,
                );
                self.dispatch(wf, t.step, t.kind, t.attempt, now, fx);
                true
            }
            _ => false,
        }
    }

    /// The timer of the state's current wait, built from its [`Deadline`]
    /// (a store with timers keeps only that, not a message).
    pub(crate) fn due_timer(&self) -> Option<Timer> {
        let (w, d) = (self.waiting?, self.deadline?);
        Some(Timer {
            tx: self.tx.clone(),
            step: w.step,
            kind: w.kind,
            attempt: w.attempt,
            due_ms: d.due_ms,
            purpose: d.purpose,
            basis: 0,
            token: w.token,
            created_ms: self.updated_ms,
        })
    }

    /// Hands a step this instance was to run in-process over to the queue
    /// (it had no free permit after all): the same attempt is dispatched
    /// again, queued. Check [`expects`](Self::expects) first.
    pub(crate) fn hand_over(&mut self, wf: &WorkflowDef, cmd: &Command, now: u64, fx: &mut Effects) {
        // The run never started: its record goes, the new dispatch adds one.
        if let Some(pos) = self.history.iter().rposition(|r| {
            r.step == cmd.step_name
                && r.kind == cmd.kind
                && r.attempt == cmd.attempt
                && r.finished_ms.is_none()
        }) {
            self.history.remove(pos);
        }
        fx.placement = None;
        self.dispatch(wf, cmd.step, cmd.kind, cmd.attempt, now, fx);
    }

    #[allow(clippy::too_many_arguments)]
    fn fail_attempt(
        &mut self,
        wf: &WorkflowDef,
        i: usize,
        kind: StepKind,
        attempt: u32,
        retryable: bool,
        message: String,
        now: u64,
        fx: &mut Effects,
    ) {
        let step = &wf.steps[i];
        let cancelling = kind == StepKind::Forward && self.cancel_requested;
        if retryable && step.retry.can_retry(attempt) && !cancelling {
            let wait = step.retry.backoff(attempt, seed(&self.tx, i, attempt));
            let (basis, token) = (fx.basis, fx.token);
            self.waiting = Some(Waiting {
                step: i,
                kind,
                attempt: attempt + 1,
                stage: Stage::Backoff,
                token,
            });
            let due_ms = now.saturating_add(millis(wait));
            self.deadline = Some(Deadline {
                due_ms,
                purpose: TimerPurpose::Retry,
            });
            fx.timers.push(Timer {
                tx: self.tx.clone(),
                step: i,
                kind,
                attempt: attempt + 1,
                due_ms,
                purpose: TimerPurpose::Retry,
                basis,
                token,
                created_ms: now,
            });
            let detail = format!("attempt {attempt} failed ({message}); retrying in {wait:?}");
            self.event(
                fx,
                "step.retrying",
                Some((&step.name, attempt)),
                Some(detail),
                now,
            );
            return;
        }
        match kind {
            StepKind::Forward => {
                self.error = Some(format!(
                    "step {:?} failed after {attempt} attempt(s): {message}",
                    step.name
                ));
                self.event(fx, "step.failed", Some((&step.name, attempt)), Some(message), now);
                let ending = if self.cancel_requested {
                    Ending::Cancel
                } else {
                    Ending::Failure
                };
                self.begin_compensation(wf, ending, now, fx);
            }
            StepKind::Compensate => {
                let first = self
                    .error
                    .take()
                    .map(|e| format!("; the workflow had failed: {e}"))
                    .unwrap_or_default();
                self.error = Some(format!(
                    "compensation of step {:?} failed after {attempt} attempt(s): {message}{first}",
                    step.name
                ));
                self.event(
                    fx,
                    "compensation.failed",
                    Some((&step.name, attempt)),
                    Some(message),
                    now,
                );
                self.status = SagaStatus::CompensationFailed;
                self.waiting = None;
                self.deadline = None;
                self.event(fx, "workflow.compensation_failed", None, self.error.clone(), now);
            }
        }
    }

    fn compensations(&self, wf: &WorkflowDef) -> Vec<usize> {
        self.completed
            .iter()
            .rev()
            .copied()
            .filter(|&i| wf.steps[i].compensation.is_some())
            .collect()
    }

    fn begin_compensation(&mut self, wf: &WorkflowDef, ending: Ending, now: u64, fx: &mut Effects) {
        self.ending = Some(ending);
        self.comp_pos = 0;
        self.waiting = None;
        self.deadline = None;
        if self.compensations(wf).is_empty() {
            return self.end(ending, false, now, fx);
        }
        self.status = SagaStatus::Compensating;
        self.event(fx, "workflow.compensating", None, self.error.clone(), now);
        self.next_compensation(wf, now, fx);
    }

    fn next_compensation(&mut self, wf: &WorkflowDef, now: u64, fx: &mut Effects) {
        match self.compensations(wf).get(self.comp_pos) {
            Some(&i) => self.dispatch(wf, i, StepKind::Compensate, 1, now, fx),
            None => self.end(self.ending.unwrap_or(Ending::Failure), true, now, fx),
        }
    }

    fn end(&mut self, ending: Ending, compensated: bool, now: u64, fx: &mut Effects) {
        self.waiting = None;
        self.deadline = None;
        let (status, name) = match (ending, compensated) {
            (Ending::Cancel, _) => (SagaStatus::Cancelled, "workflow.cancelled"),
            (Ending::Failure, true) => (SagaStatus::Compensated, "workflow.compensated"),
            (Ending::Failure, false) => (SagaStatus::Failed, "workflow.failed"),
        };
        self.status = status;
        self.event(fx, name, None, self.error.clone(), now);
    }

    /// Cancels: compensation starts now, or as soon as the running step's
    /// result is in (its effect must be known before it can be undone).
    pub(crate) fn cancel(&mut self, wf: &WorkflowDef, now: u64, fx: &mut Effects) -> Result<()> {
        if self.status.is_final() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("transaction {} has already finished ({})", self.tx, self.status),
            )
            .with_context("tx", &self.tx)
            .with_context("status", self.status));
        }
        if self.cancel_requested {
            return Ok(());
        }
        self.cancel_requested = true;
        self.event(fx, "workflow.cancel_requested", None, None, now);
        match self.waiting {
            Some(Waiting {
                kind: StepKind::Forward,
                stage: Stage::Backoff,
                ..
            }) => {
                self.begin_compensation(wf, Ending::Cancel, now, fx);
            }
            // A forward step is running: wait for its result. A compensation
            // is running: the saga is already being undone; it will end as
            // cancelled.
            Some(Waiting {
                kind: StepKind::Compensate,
                ..
            }) => self.ending = Some(Ending::Cancel),
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn snapshot(&self, wf: Option<&WorkflowDef>, with_history: bool) -> SagaSnapshot {
        SagaSnapshot {
            tx: TransactionId(self.tx.clone()),
            workflow: self.workflow.clone(),
            status: self.status,
            current_step: self
                .waiting
                .and_then(|w| wf.and_then(|wf| wf.steps.get(w.step)).map(|s| s.name.clone())),
            output: self.output.clone(),
            error: self.error.clone(),
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            history: if with_history {
                self.history.clone()
            } else {
                Vec::new()
            },
            pending: self.status == SagaStatus::Running
                && self.history.iter().all(|h| h.finished_ms.is_none()),
            trace_id: self.trace.map(|t| t.trace_id_hex()),
        }
    }
}

/// Shallow-merges a step's output into the context: an object's keys
/// replace the context's; anything else is stored under the step's name.
fn merge(context: &mut Value, step: &str, output: Value) {
    match (context, output) {
        (Value::Object(ctx), Value::Object(out)) => ctx.extend(out),
        (Value::Object(ctx), other) => {
            ctx.insert(step.to_string(), other);
        }
        (ctx, out) => *ctx = out,
    }
}

#[cfg(test)]
#[path = "saga_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "saga_props.rs"]
mod props;

#[cfg(test)]
#[path = "saga_table.rs"]
mod table;
