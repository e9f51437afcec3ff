//! The executor: runs commands (step attempts) on the [`WorkerHost`].
//!
//! Before it runs anything it checks, with a fresh read, that the state
//! still waits for exactly this dispatch ([`Fence`]): a superseded attempt
//! (a backlog drained late, a duplicate) is dropped unrun, and a command
//! that arrived before the write that dispatched it waits for that write.
//! The step's `timeout` is start-to-close: it is counted from here, not
//! from dispatch, so time spent queued never makes an attempt run twice.
//! A worker that refuses the run for now (`Overloaded`, breaker open) is
//! backpressure, not failure: the command is handed back and the attempt
//! is not spent. While it runs, the delivery is kept in progress (see
//! [`Delivery::progress`]), so a run longer than the transport's ack
//! timeout is not handed to another consumer. A second delivery of a
//! command that is running here (`running`) is handed back, not run beside
//! the first; one this instance already ran and answered is acked unrun.
//! A command the transport dead-letters (too many deliveries that ended
//! without an ack or nack) fails its attempt, retryably
//! ([`dead_letter_hook`]): the saga retries or compensates the step instead
//! of waiting for a result that will never come.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::engine::{After, now_ms, topic};
use super::messages::{Command, Outcome, StepResult};
use super::running::Seen;
use super::saga::{Fence, Stage, Waiting, WaitingOnly};
use crate::envelope::Envelope;
use crate::error::{ErrorKind, Result};
use crate::profile::Op;
use crate::trace;
use crate::transport::{DeadLetterHook, Delivery};
use crate::worker::{CallInfo, Lease};

/// How long an executor waits in place for a command's state write before
/// it hands the command back.
const EARLY_WAIT: Duration = Duration::from_millis(500);
/// How long a command refused by a full worker (`Overloaded`) stays away.
const OVERLOADED_NAP: Duration = Duration::from_millis(50);
/// How long a second delivery of a command already running here stays
/// away (by then the first copy has usually written its result, and the
/// fence drops the second).
const DUPLICATE_NAP: Duration = Duration::from_secs(1);
/// How long a command refused by an open breaker stays away.
const BREAKER_NAP: Duration = Duration::from_millis(500);
/// How long a handed-back early message (command or timer) stays away.
pub(crate) const EARLY_NAP: Duration = Duration::from_millis(100);
/// A command or timer whose state write has not landed this long after it
/// was published never will (its writer lost the race or died, and its
/// trigger was redone): it is dropped. A writer gives up a write this old.
pub(crate) const ORPHAN_GRACE: Duration = Duration::from_secs(120);

impl Shared {
    /// Reads the state fresh and judges `want` (published over `basis`) against it.
    async fn fence(&self, tx: &str, want: Waiting, basis: u64) -> Result<Fence> {
        let read = self.store.get_fresh(&self.saga_key(tx)).await?;
        Ok(match read {
            None => Fence::judge(None, want, basis),
            Some(v) => {
                let state: WaitingOnly = self.codec.decode(&v.value)?;
                Fence::judge(Some((state.waiting, v.version.0)), want, basis)
            }
        })
    }

    /// Waits (briefly) until the state write that dispatched `cmd` is in.
    async fn fence_command(&self, cmd: &Command) -> Result<Fence> {
        let want = Waiting {
            step: cmd.step,
            kind: cmd.kind,
            attempt: cmd.attempt,
            stage: Stage::Running,
            token: cmd.token,
        };
        let deadline = tokio::time::Instant::now() + EARLY_WAIT;
        let mut nap = Duration::from_millis(1);
        loop {
            // A change of this transaction by this instance: let it finish.
            self.gate.idle(&cmd.tx, EARLY_WAIT).await;
            let verdict = self.fence(&cmd.tx, want, cmd.basis).await?;
            let now = tokio::time::Instant::now();
            if verdict != Fence::Early || now >= deadline {
                return Ok(verdict);
            }
            // Written by another instance: poll.
            tokio::time::sleep(nap.min(deadline - now)).await;
            nap = (nap * 2).min(Duration::from_millis(50));
        }
    }

    /// Runs one command if the state still waits for it, and publishes its
    /// result. Returns how to settle the delivery.
    pub(crate) async fn handle_command(&self, cmd: Command) -> Result<After> {
        let fence = self.fence_command(&cmd);
        match self
            .host
            .profiler()
            .time(Op::Dispatch, &cmd.worker, fence)
            .await?
        {
            Fence::Current => {}
            Fence::Stale => {
                metrics::counter!("multiagents_commands_superseded_total", "worker" => cmd.worker.clone())
                    .increment(1);
                tracing::debug!(tx = %cmd.tx, step = %cmd.step_name, attempt = cmd.attempt,
                    "superseded command dropped unrun");
                return Ok(After::Ack);
            }
            Fence::Early if orphaned(cmd.created_ms) => {
                tracing::warn!(tx = %cmd.tx, step = %cmd.step_name, attempt = cmd.attempt,
                    "dropping a command whose state write never landed");
                return Ok(After::Ack);
            }
            Fence::Early => return Ok(After::Retry(EARLY_NAP)),
        }
        let claim = match self.running.claim(&cmd) {
            Ok(claim) => claim,
            Err(Seen::Running) => {
                tracing::debug!(tx = %cmd.tx, step = %cmd.step_name, attempt = cmd.attempt,
                    "a second delivery of a command running here; handed back");
                return Ok(After::Retry(DUPLICATE_NAP));
            }
            Err(Seen::Finished) => {
                metrics::counter!("multiagents_commands_repeated_total", "worker" => cmd.worker.clone())
                    .increment(1);
                tracing::debug!(tx = %cmd.tx, step = %cmd.step_name, attempt = cmd.attempt,
                    "another delivery of a command this instance ran and answered; acked unrun");
                return Ok(After::Ack);
            }
        };
        let outcome = match cmd.queue_deadline_ms {
            Some(deadline) if now_ms() > deadline => {
                let waited = Duration::from_millis(now_ms().saturating_sub(cmd.created_ms));
                let limit = Duration::from_millis(deadline.saturating_sub(cmd.created_ms));
                Outcome::Err {
                    kind: "timeout".into(),
                    retryable: true,
                    message: format!(
                        "not started within the queue timeout of {limit:?} (waited {waited:?}); not run"
                    ),
                }
            }
            _ => match self.run(&cmd).await {
                Ran::Done(outcome) => outcome,
                Ran::Busy(kind, delay) => {
                    // Backpressure, not failure: the attempt is not spent;
                    // the command comes back later (here or elsewhere).
                    metrics::counter!("multiagents_commands_handed_back_total",
                        "worker" => cmd.worker.clone(), "reason" => kind.as_str())
                    .increment(1);
                    tracing::debug!(tx = %cmd.tx, step = %cmd.step_name, attempt = cmd.attempt,
                        reason = kind.as_str(), "worker busy; command handed back");
                    return Ok(After::Retry(delay));
                }
            },
        };
        if let Err(e) = crate::worker::lease::check_current() {
            // Frozen or cut off past the ack timeout while it ran: the
            // command may be running elsewhere, under a hold that is valid.
            // Its result must not count (a failure caused by the refused
            // writes would spend the other run's attempt), and an ack
            // could settle the other holder's delivery. Unclaimed (not
            // `finished`): if it comes back here, it runs.
            metrics::counter!("multiagents_commands_superseded_total", "worker" => cmd.worker.clone())
                .increment(1);
            tracing::warn!(tx = %cmd.tx, step = %cmd.step_name, attempt = cmd.attempt, error = %e,
                "a run outlived its hold on the command; its result is dropped and the delivery left to its ack timeout");
            drop(claim);
            return Ok(After::Forget);
        }
        self.publish_result(cmd.result(outcome)).await?;
        claim.finished();
        Ok(After::Ack)
    }

    /// Fails the attempt a dead-lettered command carried (see
    /// [`dead_letter_hook`]).
    async fn fail_dead_letter(&self, envelope: Envelope, deliveries: u32) -> Result<()> {
        let mut cmd = match self.codec.decode::<Command>(&envelope.payload) {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::error!(error = %e, topic = %envelope.topic, "a dead-lettered command cannot be decoded; nothing to fail");
                return Ok(());
            }
        };
        cmd.trace = trace::read(&envelope);
        tracing::warn!(tx = %cmd.tx, step = %cmd.step_name, attempt = cmd.attempt, deliveries,
            "a command was dead-lettered; its attempt fails");
        metrics::counter!("multiagents_commands_dead_lettered_total", "worker" => cmd.worker.clone())
            .increment(1);
        let outcome = Outcome::Err {
            kind: ErrorKind::Unavailable.as_str().into(),
            retryable: true,
            message: format!(
                "the command was dead-lettered after {deliveries} deliveries, too many of which ended \
                 without an ack or nack (instances killed or paused past the ack timeout, or the \
                 backend unreachable); the attempt may not have run"
            ),
        };
        self.publish_result(cmd.result(outcome)).await
    }

    /// Publishes a result on the results queue (with its run's trace
    /// context in the `traceparent` header).
    pub(crate) async fn publish_result(&self, result: StepResult) -> Result<()> {
        let t = topic(&self.config.prefix, "results");
        let envelope = Envelope::new(t, result.tx.clone(), self.encode(&result)?);
        self.transport.publish(trace::stamp(envelope, result.trace)).await
    }

    /// Invokes the worker, bounded by the step's start-to-close timeout.
    pub(crate) async fn run(&self, cmd: &Command) -> Ran {
        let call = CallInfo::new(
            cmd.tx.clone(),
            cmd.workflow.clone(),
            cmd.step_name.clone(),
            cmd.attempt,
        );
        let started = std::time::Instant::now();
        let invoke = self.host.invoke(&cmd.worker, &call, cmd.input.clone());
        let invoked = if cmd.timeout_ms == 0 {
            Some(invoke.await)
        } else {
            tokio::time::timeout(Duration::from_millis(cmd.timeout_ms), invoke)
                .await
                .ok()
        };
        metrics::histogram!("multiagents_step_duration_seconds",
            "workflow" => cmd.workflow.clone(), "step" => cmd.step_name.clone(), "worker" => cmd.worker.clone(),
            "kind" => if cmd.kind == super::api::StepKind::Forward { "forward" } else { "compensate" })
        .record(started.elapsed().as_secs_f64());
        Ran::Done(match invoked {
            Some(Err(e)) if e.kind() == ErrorKind::Overloaded => return Ran::Busy(e.kind(), OVERLOADED_NAP),
            Some(Err(e)) if e.kind() == ErrorKind::CircuitOpen => return Ran::Busy(e.kind(), BREAKER_NAP),
            Some(Ok(out)) => Outcome::Ok(out.to_vec()),
            Some(Err(e)) => Outcome::Err {
                kind: e.kind().as_str().into(),
                retryable: e.is_retryable(),
                message: e.to_string(),
            },
            None => Outcome::Err {
                kind: "timeout".into(),
                retryable: true,
                message: format!(
                    "no result within the step timeout of {:?}",
                    Duration::from_millis(cmd.timeout_ms)
                ),
            },
        })
    }
}

/// The span of one attempt's run, joined to its transaction's trace. The
/// command then carries the span's own context: its result's parent.
pub(crate) fn step_span(cmd: &mut Command) -> tracing::Span {
    let kind = if cmd.kind == super::api::StepKind::Forward {
        "forward"
    } else {
        "compensate"
    };
    let span = tracing::debug_span!(target: trace::TARGET, "step", tx = %cmd.tx, workflow = %cmd.workflow,
        step = %cmd.step_name, kind, attempt = cmd.attempt, worker = %cmd.worker,
        trace_id = tracing::field::Empty, span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty);
    if let Some(parent) = cmd.trace {
        cmd.trace = Some(trace::join(&span, &parent));
    }
    span
}

/// The span of landing one result, a child of the run that produced it.
pub(crate) fn result_span(r: &mut StepResult) -> tracing::Span {
    let span = tracing::debug_span!(target: trace::TARGET, "result", tx = %r.tx, step = r.step,
        attempt = r.attempt, trace_id = tracing::field::Empty, span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty);
    if let Some(parent) = r.trace {
        r.trace = Some(trace::join(&span, &parent));
    }
    span
}

/// How a run ended.
pub(crate) enum Ran {
    /// With an outcome to report.
    Done(Outcome),
    /// Not at all: the worker refused it for now (`Overloaded`, or its
    /// breaker is open). Hand the command back for this long.
    Busy(ErrorKind, Duration),
}

/// Whether a message published at `created_ms` has waited past
/// [`ORPHAN_GRACE`] for its state write.
pub(crate) fn orphaned(created_ms: u64) -> bool {
    now_ms().saturating_sub(created_ms) > ORPHAN_GRACE.as_millis() as u64
}

/// Awaits `work` while keeping `delivery` in progress every third of the
/// transport's ack timeout (`ack_wait`; nothing to do when unknown), under
/// a [`Lease`] that lasts while the hold does: no other consumer takes the
/// delivery over before an ack timeout after its receipt, or after a kept
/// progress (counted from when it was asked). A worker call in `work` cannot write
/// its state once the lease lapsed (a process frozen past the ack timeout
/// wakes up to find its delivery taken over). A progress the backend
/// could not answer (in a beat) is tried again at the next beat; one that
/// finds the delivery gone, or is answered after the lease lapsed, ends
/// the lease (and the keeping). Returns `work`'s output and whether the
/// hold lasted to the end ([`Held`]).
pub(crate) async fn kept_in_progress<F: Future>(
    delivery: &Delivery,
    ack_wait: Option<Duration>,
    work: F,
) -> (F::Output, Held) {
    let Some(ack_wait) = ack_wait else {
        return (work.await, Held::Yes);
    };
    // An ack timeout too long to add to an instant: no hold to count.
    let Some(takeover) = delivery.received().checked_add(ack_wait) else {
        return (work.await, Held::Yes);
    };
    let lease = Lease::held(takeover, ack_wait, delivery.holder());
    let beat = (ack_wait / 3).max(Duration::from_millis(10));
    let work = lease.clone().scope(work);
    tokio::pin!(work);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut keeping = true;
    loop {
        tokio::select! {
            out = &mut work => {
                let held = if lease.is_valid() { Held::Yes } else { Held::Lapsed };
                return (out, held);
            }
            _ = ticker.tick(), if keeping => {
                let asked = std::time::Instant::now();
                // Bounded by a beat: the run is not polled meanwhile.
                let progress = tokio::time::timeout(beat, delivery.progress())
                    .await
                    .unwrap_or_else(|_| Err(crate::Error::new(crate::ErrorKind::Timeout,
                        format!("no answer within {beat:?}")).with_operation("delivery.progress")));
                match progress {
                    Ok(()) => {
                        if let Some(takeover) = asked.checked_add(ack_wait) {
                            lease.renewed(asked, takeover);
                        }
                        // Renewed too late: lost, and kept no longer (the
                        // run's result will be dropped; let the hold go).
                        keeping = lease.is_valid();
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(error = %e, "cannot keep a delivery in progress; trying again");
                    }
                    Err(e) => {
                        // Expired already: the message is someone else's now.
                        tracing::warn!(error = %e, "cannot keep a delivery in progress; its lease ends");
                        lease.lose();
                        keeping = false;
                    }
                }
            }
        }
    }
}

/// Whether a delivery's hold lasted while it was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// To the end (or there was no hold to lose).
    Yes,
    /// Not: the delivery may be another consumer's now, and must not be
    /// settled by this one ([`After::Forget`]).
    Lapsed,
}

/// How to settle a delivery handled to `after`, given whether its hold
/// lasted: one whose hold lapsed is forgotten, whatever the handler said
/// (its ack or nack could settle another consumer's delivery).
pub(crate) fn settle_held(after: Result<After>, held: Held) -> Result<After> {
    match (held, after) {
        (Held::Yes, after) => after,
        // The handler saw it and said so (a command's run, logged there).
        (Held::Lapsed, Ok(After::Forget)) => Ok(After::Forget),
        (Held::Lapsed, _) => {
            tracing::warn!("a delivery's hold lapsed while it was handled; it is left to its ack timeout");
            Ok(After::Forget)
        }
    }
}

/// The hook the command subscriptions give their transport: a dead-lettered
/// command fails its attempt with a retryable `unavailable` result on the
/// results queue (fenced like any result: one for an attempt the state no
/// longer waits for changes nothing). The transport awaits it before it
/// settles the original, so a crash in between calls it again.
pub(crate) fn dead_letter_hook(shared: Arc<super::Shared>) -> DeadLetterHook {
    DeadLetterHook::new(move |envelope: Envelope, deliveries: u32| {
        let s = shared.clone();
        async move { s.fail_dead_letter(envelope, deliveries).await }
    })
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod lease_tests;
