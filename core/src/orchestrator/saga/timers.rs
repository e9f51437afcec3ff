//! Timers coming due (a queue timeout, a retry's backoff, an in-process
//! run's guard) and a step handed over from in-process to the queue.

use super::super::messages::{Command, Timer, TimerPurpose};
use super::{Effects, SagaState, Stage, Waiting};
use crate::workflow::WorkflowDef;

impl SagaState {
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
        self.history
            .remove_unfinished(&cmd.step_name, cmd.kind, cmd.attempt);
        fx.placement = None;
        self.dispatch(wf, cmd.step, cmd.kind, cmd.attempt, now, fx);
    }
}
