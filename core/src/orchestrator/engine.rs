//! What the three roles share: the clock, topic names, how a handled
//! delivery is settled, and publishing a state change's effects (commands
//! and timer messages before its write, events after it, then the steps it
//! runs in-process). The roles: `client.rs` (what a client does),
//! `coordinator.rs` (state changes), `executor.rs` (commands → worker host);
//! an instance's life is `instance.rs`, its consumer loops `serve.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;

use super::Shared;
use super::messages::Command;
use super::saga::Effects;
use crate::envelope::Envelope;
use crate::error::Result;

/// Milliseconds since the Unix epoch: the clock of every timestamp in
/// states, snapshots, events and timers.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How a handled delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// Done with it.
    Ack,
    /// Not yet: bring it back after this long.
    Retry(Duration),
    /// Leave it to the ack timeout, unsettled: this holder's hold lapsed,
    /// and the delivery may be another consumer's now
    /// ([`Delivery::forget`](crate::Delivery::forget)).
    Forget,
}

pub(crate) fn topic(prefix: &str, rest: &str) -> String {
    format!("{prefix}.{rest}")
}

/// The queue topic of `worker`'s commands.
pub(crate) fn command_topic(prefix: &str, worker: &str) -> String {
    format!("{prefix}.cmd.{worker}")
}

impl Shared {
    pub(crate) fn saga_key(&self, tx: &str) -> String {
        let mut key = self.config.saga_key_prefix();
        key.push_str(tx);
        key
    }

    pub(crate) fn encode<T: Serialize>(&self, v: &T) -> Result<Bytes> {
        self.codec.encode(v)
    }

    /// Publishes a state change's commands and timers, in one batch,
    /// *before* its state write: once the write is in, nothing it promises
    /// can be missing, whatever crashes next. Each carries the write's basis
    /// version and fencing token, so a reader tells one that came too early
    /// (the write is not in yet) from one that is stale ([`Fence`]).
    ///
    /// In a store with timers, no timer message goes out: the timer is
    /// written with the state.
    pub(crate) async fn publish_effects_before(&self, fx: &Effects) -> Result<()> {
        let commands = fx.commands.len();
        let timers = if self.scheduler.is_none() {
            fx.timers.len()
        } else {
            0
        };
        if timers == 0 && commands == 0 {
            return Ok(());
        }
        let mut envs = Vec::with_capacity(timers + commands);
        let topic_timers = topic(&self.config.prefix, "timers");
        for t in fx.timers.iter().take(timers) {
            envs.push(Envelope::new(topic_timers.clone(), t.tx.clone(), self.encode(t)?));
        }
        for c in &fx.commands {
            envs.push(self.command_envelope(c)?);
        }
        self.transport.publish_batch(envs).await
    }

    /// A command on its worker's queue topic.
    pub(crate) fn command_envelope(&self, c: &Command) -> Result<Envelope> {
        let t = command_topic(&self.config.prefix, &c.worker);
        let envelope = Envelope::new(t, c.tx.clone(), self.encode(c)?).with_attempt(c.attempt);
        Ok(crate::trace::stamp(envelope, c.trace))
    }

    /// Hands the events of a written state change (never before: an event
    /// tells what happened) to the sender, then starts the steps this
    /// instance runs itself.
    pub(crate) async fn publish_effects_after(&self, fx: Effects) -> Result<()> {
        let mut envs = Vec::with_capacity(fx.events.len());
        let events = topic(&self.config.prefix, "events");
        for e in &fx.events {
            // Events are at-most-once: one that cannot be encoded is logged
            // and left out.
            match self.encode(e) {
                Ok(p) => envs.push(Envelope::new(events.clone(), e.tx.clone(), p)),
                Err(err) => tracing::warn!(error = %err, event = %e.name, "cannot encode a workflow event"),
            }
        }
        record_metrics(&fx);
        // Only watchers read events: no stream, no backlog (on Redis a
        // `PUBLISH` instead of `XADD` + `PUBLISH`).
        // Queued for the sender task (`events.rs`): in order, at most once,
        // and without waiting, so the steps started below run at once.
        if !envs.is_empty() {
            self.events.send(envs);
        }
        // Last, so the events of this change are queued before any of the
        // steps it starts here can queue theirs.
        for c in fx.local {
            self.spawn_local(c);
        }
        Ok(())
    }

    /// Announces a change of the memory guard's level as an `instance.*`
    /// event (at most once, like every event).
    pub(crate) fn announce_memory(&self, change: &crate::resilience::MemoryChange) {
        let e = super::Event::memory(change, now_ms());
        match self.encode(&e) {
            // Envelope keys must not be empty; this event has no transaction.
            Ok(p) => self.events.send(vec![Envelope::new(
                topic(&self.config.prefix, "events"),
                "instance",
                p,
            )]),
            Err(err) => tracing::warn!(error = %err, event = %e.name, "cannot encode an instance event"),
        }
    }

    /// Whether the memory guard sheds load now.
    pub(crate) fn shedding(&self) -> bool {
        self.memory.get().is_some_and(|g| g.shedding())
    }
}

/// Counts what happened, from the events of one state change.
fn record_metrics(fx: &Effects) {
    for e in &fx.events {
        let wf = e.workflow.clone();
        match e.name.as_str() {
            "workflow.started" => {
                metrics::counter!("multiagents_workflows_started_total", "workflow" => wf).increment(1)
            }
            "workflow.completed"
            | "workflow.failed"
            | "workflow.compensated"
            | "workflow.cancelled"
            | "workflow.compensation_failed" => {
                let status = e.status.map_or("unknown", |s| s.as_str());
                metrics::counter!("multiagents_workflows_finished_total", "workflow" => wf, "status" => status)
                    .increment(1)
            }
            name @ ("step.completed"
            | "step.failed"
            | "step.retrying"
            | "step.timed_out"
            | "step.skipped"
            | "compensation.completed"
            | "compensation.failed") => {
                let step = e.step.clone().unwrap_or_default();
                metrics::counter!("multiagents_steps_total", "workflow" => wf, "step" => step, "event" => name.to_string())
                    .increment(1)
            }
            _ => {}
        }
    }
}
