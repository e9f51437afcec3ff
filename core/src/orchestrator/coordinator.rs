//! The coordinator: a state change as a compare-and-swap advance loop
//! (read or take the kept decoded state, apply a transition, write it with
//! its effects), and the handler of step results. Timers come due through
//! `timers.rs`; cancels through `client.rs`; both advance here.

use std::sync::atomic::Ordering;

use tracing::Instrument;

use super::Shared;
use super::engine::{After, now_ms};
use super::executor::ORPHAN_GRACE;
use super::messages::StepResult;
use super::saga::{Deadline, Effects, SagaState, Stage};
use crate::error::{Error, ErrorKind, Result};
use crate::profile::Op;
use crate::scheduler::TimerChange;
use crate::store::Expected;
use crate::workflow::WorkflowDef;

/// Most CAS rounds one event may take before it is handed back (nack).
const MAX_CAS_ROUNDS: usize = 64;

/// What [`Shared::commit`] did.
pub(crate) enum Committed {
    /// The state is written and its effects are out.
    Written,
    /// The state was not as expected: nothing written.
    Conflict(Error),
    /// Its effects went out too long ago to land the write (see
    /// [`ORPHAN_GRACE`]): nothing written.
    TooLate,
}

/// What [`Shared::advance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Advanced {
    /// The new state is written and its effects published.
    Written,
    /// The transition had nothing to do.
    Skipped,
    /// No state under that transaction (unknown, not written yet, or
    /// finished and expired).
    Absent,
}

impl Shared {
    /// Effects of a write attempt over `basis`, placing steps in-process
    /// where this instance may (not while it sheds load: they go to the
    /// queue, for instances with memory to spare).
    pub(crate) fn effects(&self, basis: u64) -> Effects {
        let mut fx = Effects::over(basis);
        if self.accepting.load(Ordering::Acquire) && !self.shedding() {
            fx.placement = self.placement.clone();
        }
        fx
    }

    /// Writes `state` (its deadline `before` the change) over `expected`,
    /// with its effects: commands and timer messages before the write, the
    /// state and (in a store with timers) its timer in one step, then
    /// events, commands that follow the write, and in-process steps. A
    /// written state is kept decoded (`decoded`) before any step it
    /// dispatches can start, so that step's result finds it.
    pub(crate) async fn commit(
        &self,
        expected: Expected,
        before: Option<Deadline>,
        mut state: SagaState,
        fx: Effects,
    ) -> Result<Committed> {
        // Encoded first: a state that cannot be written (too large) sends
        // none of its commands.
        let value = self.codec.encode_with(&mut state, SagaState::write_cbor)?;
        let key = self.saga_key(&state.tx);
        let _entered = self.gate.enter(&state.tx);
        let published = std::time::Instant::now();
        self.publish_effects_before(&fx).await?;
        let ttl = state.status.is_final().then_some(self.config.retention);
        if published.elapsed() > ORPHAN_GRACE / 2 {
            // Readers drop what waited ORPHAN_GRACE for its write: never
            // land a write that late; its effects are dropped as orphans.
            return Ok(Committed::TooLate);
        }
        let timer = match (&self.scheduler, state.deadline) {
            (None, _) => TimerChange::Keep,
            (Some(_), now) if now == before => TimerChange::Keep,
            (Some(_), Some(d)) => TimerChange::At(d.due_ms),
            (Some(_), None) => TimerChange::Clear,
        };
        let armed = match timer {
            TimerChange::At(due) => Some(due),
            _ => None,
        };
        let write = self
            .store
            .compare_and_swap_timed(&key, expected, value, ttl, timer);
        let version = match write
            .instrument(tracing::debug_span!("state.write", tx = %state.tx))
            .await
        {
            Ok(v) => v,
            Err(e) if e.kind() == ErrorKind::Conflict => return Ok(Committed::Conflict(e)),
            Err(e) => return Err(e),
        };
        if state.status.is_final() {
            let secs = state.updated_ms.saturating_sub(state.created_ms) as f64 / 1000.0;
            metrics::histogram!("multiagents_workflow_duration_seconds",
                "workflow" => state.workflow.clone(), "status" => state.status.as_str())
            .record(secs);
        }
        if let Some(due) = armed {
            self.wake.armed(due);
        }
        self.decoded.put(version.0, state);
        self.publish_effects_after(fx).await?;
        self.changed.notify_waiters();
        Ok(Committed::Written)
    }

    /// Reads, transforms and compare-and-swaps one saga until it sticks.
    /// `f` gets the state and the version it was read at, and returns
    /// `Ok(false)` when there is nothing to do.
    pub(crate) async fn advance<F>(&self, tx: &str, mut f: F) -> Result<Advanced>
    where
        F: FnMut(&mut SagaState, u64, &WorkflowDef, u64, &mut Effects) -> Result<bool>,
    {
        let key = self.saga_key(tx);
        // The state this instance wrote last, if kept (no read, no decode);
        // then a cached read. Either may be stale when other instances
        // share the store: a conflict re-reads, and nothing is dropped as
        // stale before a fresh read agrees.
        let mut kept = self.decoded.take(tx);
        let mut fresh = false;
        for _ in 0..MAX_CAS_ROUNDS {
            let (version, mut state) = match kept.take() {
                Some(k) => k,
                None => {
                    let read = if fresh {
                        self.store.get_fresh(&key).await?
                    } else {
                        self.store.get(&key).await?
                    };
                    let Some(current) = read else {
                        if fresh {
                            return Ok(Advanced::Absent); // unknown, or finished and expired
                        }
                        fresh = true;
                        continue;
                    };
                    let state: SagaState = self.codec.decode(&current.value)?;
                    (current.version.0, state)
                }
            };
            let before = state.deadline;
            let wf = self.workflow(&state.workflow)?;
            let now = now_ms();
            let mut fx = self.effects(version);
            if !f(&mut state, version, &wf, now, &mut fx)? {
                if fresh {
                    return Ok(Advanced::Skipped);
                }
                fresh = true;
                continue;
            }
            state.updated_ms = now;
            match self
                .commit(
                    Expected::Version(crate::store::Version(version)),
                    before,
                    state,
                    fx,
                )
                .await?
            {
                Committed::Written => return Ok(Advanced::Written),
                Committed::Conflict(_) | Committed::TooLate => continue,
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            "transaction state kept changing under this instance",
        )
        .with_context("tx", tx))
    }

    pub(crate) async fn handle_result(&self, r: StepResult) -> Result<After> {
        let advance = self.advance(&r.tx, |state, _, wf, now, fx| {
            if !state.expects(r.step, r.kind, r.attempt, Stage::Running, r.token) {
                return Ok(false);
            }
            state.on_result(wf, &r, now, fx);
            Ok(true)
        });
        let applied = self
            .host
            .profiler()
            .time(Op::Coordinate, "result", advance)
            .await?;
        if applied != Advanced::Written {
            tracing::debug!(tx = %r.tx, step = r.step, attempt = r.attempt, "duplicate or late result dropped");
        }
        Ok(After::Ack)
    }
}
