//! Local execution: the instance that dispatches a step runs it itself
//! when it has the worker and a free permit (`saga::Placement`), on any
//! backend. No command or result crosses the transport: the state write
//! that dispatches the step is the record, and its guard timer (written
//! with it) is the crash guard: if no result is written by the guard's
//! due time, whoever claims the timer dispatches the attempt again (at
//! least once under a crash; once without one). Where the store keeps
//! timers, the guard is due one guard slack after the dispatch and the
//! runner renews it while the step runs (like a lease): a dead runner's
//! step runs again within a slack, however long its timeout. With timer
//! messages (no renewal), it is due at the step timeout plus the slack.
//! The runner reports where it left the guard with its result, so that the
//! next step run in-process can keep it (`Effects::guard`).
//!
//! A step that cannot run here after all (the permit went to another call,
//! the worker refused it, the instance is shutting down past its deadline)
//! is handed over: a state write dispatches the same attempt to the queue.
//! A result that cannot be applied here (store trouble) goes to the
//! results queue, where the normal path retries it; if even that fails,
//! the guard covers it.

use std::time::Duration;

use tracing::Instrument;

use super::Shared;
use super::engine::now_ms;
use super::executor::Ran;
use super::messages::Command;
use super::saga::Stage;
use crate::scheduler::{Scheduler, millis};
use crate::worker::Lease;

impl Shared {
    /// Starts `cmd` in-process (its dispatch is written).
    pub(crate) fn spawn_local(&self, mut cmd: Command) {
        let (Some((tracker, abort)), Some(me)) = (&self.local, self.me.upgrade()) else {
            // Placement is only set where `local` is: unreachable, and the
            // guard would cover it.
            tracing::error!(tx = %cmd.tx, step = %cmd.step_name, "no in-process runner; the guard will dispatch it");
            return;
        };
        let abort = abort.clone();
        let span = super::executor::step_span(&mut cmd);
        tracker.spawn(
            async move {
                tokio::select! {
                    () = me.run_local(&cmd) => {}
                    () = abort.cancelled() => me.hand_over(&cmd).await,
                }
            }
            .instrument(span),
        );
    }

    async fn run_local(&self, cmd: &Command) {
        let slack = self.config.guard_slack;
        let lease = cmd.guard_due_ms.map(|due| Lease::new(instant_of(due), slack));
        let run = async {
            match &lease {
                Some(lease) => lease.clone().scope(self.run(cmd)).await,
                None => self.run(cmd).await,
            }
        };
        // Where the guard stands when the run ends: known only where this
        // runner moves it (the store keeps timers).
        let (ran, guard) = match (&self.scheduler, cmd.guard_due_ms, &lease) {
            (Some(sched), Some(due), Some(lease)) => {
                self.renewing(sched.as_ref(), cmd, due, lease, run).await
            }
            _ => (run.await, None),
        };
        if let Some(Err(e)) = lease.as_ref().map(Lease::check) {
            // Frozen or cut off past the guard: the guard fired (or will),
            // and the step may be running elsewhere. This run's result must
            // not count.
            tracing::warn!(tx = %cmd.tx, step = %cmd.step_name, attempt = cmd.attempt, error = %e,
                "a local run outlived its guard; its result is dropped (the guard dispatches the step again)");
            return;
        }
        let outcome = match ran {
            Ran::Done(outcome) => outcome,
            Ran::Busy(..) => return self.hand_over(cmd).await,
        };
        let mut result = cmd.result(outcome);
        result.guard_due_ms = guard;
        if let Err(e) = self.handle_result(result.clone()).await {
            tracing::warn!(error = %e, tx = %cmd.tx, step = %cmd.step_name,
                "cannot apply a local result; it goes to the results queue");
            if let Err(e) = self.publish_result(result).await {
                tracing::error!(error = %e, tx = %cmd.tx, step = %cmd.step_name,
                    "cannot report a local result; its guard timer will dispatch the step again");
            }
        }
    }

    /// Awaits `run` while renewing the step's guard timer (due at `due`)
    /// every third of the guard slack, from when two thirds are left, so
    /// that only a dead (or frozen) runner's step is dispatched again;
    /// each renewal extends `lease` (the run's writes stop a margin before
    /// the guard can fire). A renewal that finds the timer moved (claimed,
    /// or the state went on) stops renewing and ends the lease. Returns
    /// `run`'s output and where the guard stands (`None` when that is not
    /// known: it was found moved, or the last renewal failed and may have
    /// landed unseen).
    async fn renewing<F: Future>(
        &self,
        sched: &dyn Scheduler,
        cmd: &Command,
        due: u64,
        lease: &Lease,
        run: F,
    ) -> (F::Output, Option<u64>) {
        let slack = self.config.guard_slack;
        let beat = beat_of(slack);
        let key = self.saga_key(&cmd.tx);
        tokio::pin!(run);
        let mut due = due;
        let first = first_beat(due, now_ms(), slack);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + first, beat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewing = true;
        let mut known = true;
        loop {
            tokio::select! {
                out = &mut run => return (out, (renewing && known).then_some(due)),
                _ = ticker.tick(), if renewing => {
                    let asked = std::time::Instant::now();
                    let next = now_ms().saturating_add(millis(slack));
                    // Not cut short: a move that landed unseen would make
                    // the next one miss, and the guard fire on a live run.
                    match sched.move_if(&key, due, next).await {
                        Ok(true) => {
                            due = next;
                            known = true;
                            // By this clock: a wall clock stepped back must
                            // not stretch the lease past the guard.
                            if let Some(takeover) = asked.checked_add(slack) {
                                lease.renewed(asked, takeover);
                            }
                            // Renewed too late: the result will be dropped,
                            // so let the guard fire.
                            renewing = lease.is_valid();
                        }
                        Ok(false) => {
                            tracing::warn!(tx = %cmd.tx, step = %cmd.step_name,
                                "the guard of a running step fired or moved; it may run again elsewhere");
                            lease.lose();
                            renewing = false;
                        }
                        Err(e) => {
                            known = false;
                            tracing::warn!(error = %e, tx = %cmd.tx, "cannot renew a step's guard; retrying");
                        }
                    }
                }
            }
        }
    }

    /// Dispatches `cmd`'s attempt again, to the queue, if the state still
    /// waits for this run.
    async fn hand_over(&self, cmd: &Command) {
        let handed = self
            .advance(&cmd.tx, |state, _, wf, now, fx| {
                if !state.expects(cmd.step, cmd.kind, cmd.attempt, Stage::Running, cmd.token) {
                    return Ok(false);
                }
                state.hand_over(wf, cmd, now, fx);
                Ok(true)
            })
            .await;
        if let Err(e) = handed {
            tracing::warn!(error = %e, tx = %cmd.tx, step = %cmd.step_name,
                "cannot hand a step over to the queue; its guard timer will dispatch it again");
        }
    }
}

/// How often a runner renews its guard: every third of the slack.
pub(crate) fn beat_of(slack: Duration) -> Duration {
    (slack / 3).max(Duration::from_millis(10))
}

/// How long after `now_ms` a runner first renews its guard, due at
/// `due_ms`: when a beat's worth less than a slack is left. That is a beat
/// after the dispatch for a fresh guard, and sooner for one kept from the
/// step before (`Effects::guard`), so that either is renewed with the same
/// margin left (at once when less is left already). Never later than a
/// beat: a wall clock stepped back must not put the renewal off.
pub(crate) fn first_beat(due_ms: u64, now_ms: u64, slack: Duration) -> Duration {
    let beat = beat_of(slack);
    let left = Duration::from_millis(due_ms.saturating_sub(now_ms));
    left.saturating_sub(slack.saturating_sub(beat)).min(beat)
}

/// The monotonic instant of wall-clock time `ms` (ms since the epoch; now
/// when it is past).
fn instant_of(ms: u64) -> std::time::Instant {
    std::time::Instant::now() + Duration::from_millis(ms.saturating_sub(now_ms()))
}

#[cfg(test)]
#[path = "guard_props.rs"]
mod props;
