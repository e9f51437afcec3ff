//! The way back: a failed attempt (retried, or the transaction fails),
//! compensation in reverse order, the end of a transaction and cancelling.

use super::super::api::{SagaStatus, StepKind};
use super::super::messages::{Timer, TimerPurpose};
use super::{Deadline, Effects, Ending, SagaState, Stage, Waiting};
use crate::error::{Error, ErrorKind, Result};
use crate::scheduler::millis;
use crate::workflow::WorkflowDef;

fn seed(tx: &str, step: usize, attempt: u32) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (tx, step, attempt).hash(&mut h);
    h.finish()
}

impl SagaState {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fail_attempt(
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

    pub(super) fn compensations(&self, wf: &WorkflowDef) -> Vec<usize> {
        self.completed
            .iter()
            .rev()
            .copied()
            .filter(|&i| wf.steps[i].compensation.is_some())
            .collect()
    }

    pub(super) fn begin_compensation(
        &mut self,
        wf: &WorkflowDef,
        ending: Ending,
        now: u64,
        fx: &mut Effects,
    ) {
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

    pub(super) fn next_compensation(&mut self, wf: &WorkflowDef, now: u64, fx: &mut Effects) {
        match self.compensations(wf).get(self.comp_pos) {
            Some(&i) => self.dispatch(wf, i, StepKind::Compensate, 1, now, fx),
            None => self.end(self.ending.unwrap_or(Ending::Failure), true, now, fx),
        }
    }

    pub(super) fn end(&mut self, ending: Ending, compensated: bool, now: u64, fx: &mut Effects) {
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
}
