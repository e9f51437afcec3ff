//! Timers: the store's timers (the scheduler contract), claimed by a poll
//! loop and judged against the state's [`Deadline`](super::saga::Deadline);
//! or, for a store without timers, timer messages on the transport
//! (redelivered with `nack(delay)` until due) judged by their fence.
//!
//! Either way a timer acts only while the state still waits for what it
//! guards (a retry's backoff, a queue timeout, an in-process run's guard),
//! so a timer that fires twice, late, or after its wait ended does nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::Shared;
use super::coordinator::Advanced;
use super::engine::{After, now_ms};
use super::executor::{EARLY_NAP, orphaned};
use super::instance::Tasks;
use super::messages::Timer;
use super::saga::{Fence, SagaState};
use crate::error::Result;
use crate::profile::{Op, Profiler};
use crate::scheduler::{DueTimer, Scheduler, Settle};

/// How long a claimed timer stays with its claimer before it fires again
/// (for another instance, if the claimer died handling it).
const LEASE: Duration = Duration::from_secs(10);
/// Timers claimed per poll.
const CLAIM_BATCH: usize = 256;
/// Timers handled at once by one instance.
const MAX_IN_FLIGHT: usize = 1024;
/// How soon a timer whose handling failed comes back.
const FAILED_NAP: u64 = 1_000;
/// Longest sleep of the poll loop: a timer armed by another instance is
/// found within this (the instance that arms one wakes its own loop).
const MAX_NAP_MS: u64 = 1_000;

/// When the poll loop looks next, and how a write arming an earlier timer
/// wakes it: an idle instance looks about once a second, not every poll
/// interval.
#[derive(Default)]
pub(crate) struct Wake {
    /// When the loop plans to look next (ms since the epoch).
    at: std::sync::atomic::AtomicU64,
    notify: tokio::sync::Notify,
}

impl Wake {
    /// A write of this instance armed a timer due at `due_ms`.
    pub(crate) fn armed(&self, due_ms: u64) {
        if due_ms < self.at.load(std::sync::atomic::Ordering::Acquire) {
            self.notify.notify_one();
        }
    }

    fn plan(&self, at: u64) {
        self.at.store(at, std::sync::atomic::Ordering::Release);
    }
}

impl Shared {
    /// A due timer: acted on when the state waits for it, kept when its
    /// state write is not in yet, dropped when stale.
    pub(crate) async fn handle_timer(&self, t: Timer) -> Result<After> {
        let profiler = self.host.profiler();
        lag(profiler, t.due_ms);
        profiler.time(Op::Coordinate, "timer", self.act_on_timer(t)).await
    }

    async fn act_on_timer(&self, t: Timer) -> Result<After> {
        let want = SagaState::timer_wait(&t);
        let mut verdict = Fence::Stale;
        let advanced = self
            .advance(&t.tx, |state, version, wf, now, fx| {
                verdict = Fence::judge(Some((state.waiting, version)), want, t.basis);
                Ok(verdict == Fence::Current && state.on_timer(wf, &t, now, fx))
            })
            .await?;
        if advanced == Advanced::Absent {
            verdict = Fence::judge(None, want, t.basis);
        }
        Ok(match (advanced, verdict) {
            (Advanced::Written, _) | (_, Fence::Stale | Fence::Current) => After::Ack,
            (_, Fence::Early) if orphaned(t.created_ms) => {
                tracing::warn!(tx = %t.tx, step = t.step, attempt = t.attempt,
                    "dropping a timer whose state write never landed");
                After::Ack
            }
            (_, Fence::Early) => After::Retry(EARLY_NAP),
        })
    }

    /// A claimed timer of a saga key: acts on the state's deadline when it
    /// is due, moves the timer to it when it is not, and settles a timer
    /// the state no longer needs. A state write that acts re-arms or clears
    /// the timer itself (that supersedes the claim).
    pub(crate) async fn handle_due(&self, sched: &dyn Scheduler, t: DueTimer) -> Result<()> {
        let profiler = self.host.profiler();
        lag(profiler, t.due_ms);
        profiler
            .time(Op::Coordinate, "timer", self.act_on_due(sched, t))
            .await
    }

    async fn act_on_due(&self, sched: &dyn Scheduler, t: DueTimer) -> Result<()> {
        let saga_prefix = self.saga_key("");
        let Some(tx) = t.key.strip_prefix(&saga_prefix) else {
            tracing::warn!(key = %t.key, "dropping a timer of a key that is not a transaction");
            sched.settle(&t.key, t.claim, Settle::Done).await?;
            return Ok(());
        };
        let mut later = None;
        let advanced = self
            .advance(tx, |state, _, wf, now, fx| {
                later = None;
                let Some(timer) = state.due_timer() else {
                    return Ok(false);
                };
                if timer.due_ms > now {
                    later = Some(timer.due_ms);
                    return Ok(false);
                }
                Ok(state.on_timer(wf, &timer, now, fx))
            })
            .await?;
        let how = match (advanced, later) {
            (Advanced::Written, _) => return Ok(()),
            (_, Some(due)) => Settle::At(due),
            (_, None) => Settle::Done,
        };
        sched.settle(&t.key, t.claim, how).await?;
        Ok(())
    }
}

/// Records how late a timer due at `due_ms` fired (while profiling).
fn lag(profiler: &Profiler, due_ms: u64) {
    if profiler.enabled() {
        profiler.record(
            Op::TimerLag,
            "",
            Duration::from_millis(now_ms().saturating_sub(due_ms)),
        );
    }
}

/// Claims due timers of this instance's prefix from `sched` until stopped,
/// handling each in a task of its own (at most [`MAX_IN_FLIGHT`] at once),
/// and sleeps until the next one is due (see [`Wake`]).
pub(super) fn spawn_poller(shared: &Arc<Shared>, tasks: &Arc<Tasks>, sched: Arc<dyn Scheduler>) {
    let (s, t) = (shared.clone(), tasks.clone());
    let poll = sched.capabilities().poll_interval;
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let poll_ms = crate::scheduler::millis(poll).max(1);
    tasks.tracker.spawn(async move {
        let scope = s.config.prefix.clone();
        loop {
            // While it claims, only a timer due sooner than a poll wakes it.
            s.wake.plan(now_ms().saturating_add(poll_ms));
            let room = slots.available_permits().min(CLAIM_BATCH);
            let claimed = if room == 0 {
                Ok(Vec::new())
            } else {
                sched.claim_due(&scope, now_ms(), room, LEASE).await
            };
            let full = match claimed {
                Ok(due) => {
                    let full = room > 0 && due.len() == room;
                    for timer in due {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            break; // cannot happen: claimed at most `room`
                        };
                        let (s, sched, abort) = (s.clone(), sched.clone(), t.abort.clone());
                        t.tracker.spawn(async move {
                            let _slot = slot;
                            let (key, claim) = (timer.key.clone(), timer.claim);
                            tokio::select! {
                                handled = s.handle_due(sched.as_ref(), timer) => {
                                    if let Err(e) = handled {
                                        tracing::warn!(error = %e, key = %key, "handling a timer failed; it comes back");
                                        let again = Settle::At(now_ms() + FAILED_NAP);
                                        let _ = sched.settle(&key, claim, again).await;
                                    }
                                }
                                () = abort.cancelled() => {}
                            }
                        });
                    }
                    full
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim due timers; retrying");
                    false
                }
            };
            if full {
                continue;
            }
            // Sleep until the next timer is due (at least a poll, at most
            // MAX_NAP_MS), or until this instance arms an earlier one.
            let now = now_ms();
            let next = sched.next_due(&scope).await.ok().flatten();
            let (least, most) = (now + poll_ms, now + MAX_NAP_MS.max(poll_ms));
            let until = next.map_or(most, |d| d.clamp(least, most));
            s.wake.plan(until);
            tokio::select! {
                () = t.stop.cancelled() => break,
                () = tokio::time::sleep(Duration::from_millis(until - now)) => {}
                () = s.wake.notify.notified() => {}
            }
        }
    });
}
