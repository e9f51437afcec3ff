//! Forward progress: starting a transaction, dispatching a step (queued
//! or in-process, with its timer) and taking a step's result.

use bytes::Bytes;
use serde_json::Value;

use super::super::api::{AttemptRecord, SagaStatus, StepKind};
use super::super::messages::{Command, Outcome, StepResult, Timer, TimerPurpose};
use super::{Deadline, Effects, Ending, GUARD_KEPT_SIXTHS, QUEUE_GUARD_SLACK_MS, SagaState, Stage, Waiting};
use crate::scheduler::millis;
use crate::workflow::WorkflowDef;

impl SagaState {
    pub(crate) fn start(&mut self, wf: &WorkflowDef, now: u64, fx: &mut Effects) {
        self.event(fx, "workflow.started", None, None, now);
        self.advance(wf, 0, now, fx);
    }

    pub(super) fn advance(&mut self, wf: &WorkflowDef, from: usize, now: u64, fx: &mut Effects) {
        if self.cancel_requested {
            return self.begin_compensation(wf, Ending::Cancel, now, fx);
        }
        for (i, step) in wf.steps.iter().enumerate().skip(from) {
            if let Some(condition) = &step.condition {
                match condition.evaluate(self.input.get(), self.context.get()) {
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
        self.output = Some(self.context.shared());
        self.event(fx, "workflow.completed", None, None, now);
    }

    pub(super) fn dispatch(
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
        // Encoded once: the state write copies these bytes in.
        let input = self.context.cbor().unwrap_or_else(|e| {
            // A serde_json::Value always encodes; keep the saga moving anyway.
            tracing::error!(tx = %self.tx, error = %e, "cannot encode the workflow context");
            Bytes::new()
        });
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

    pub(super) fn finish_attempt(
        &mut self,
        step: &str,
        kind: StepKind,
        attempt: u32,
        outcome: String,
        now: u64,
    ) {
        self.history.finish(step, kind, attempt, outcome, now);
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
                            merge(self.context.get_mut(), &name, output);
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
}

/// Shallow-merges a step's output into the context: an object's keys
/// replace the context's; anything else is stored under the step's name.
pub(super) fn merge(context: &mut Value, step: &str, output: Value) {
    match (context, output) {
        (Value::Object(ctx), Value::Object(out)) => ctx.extend(out),
        (Value::Object(ctx), other) => {
            ctx.insert(step.to_string(), other);
        }
        (ctx, out) => *ctx = out,
    }
}
