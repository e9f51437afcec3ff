//! The coordinator's compare-and-swap advance loop, its handlers of results
//! and timers, and the public operations. The executor (commands → worker
//! host) is in `executor.rs`, the consumer loops in `serve.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::executor::ORPHAN_GRACE;
use super::messages::{Command, StepResult};
use super::saga::{Deadline, Effects, Placement, SagaState, Stage};
use super::{Orchestrator, OrchestratorConfig, Shared};
use crate::codec::PayloadCodec;
use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind, Result};
use crate::profile::Op;
use crate::scheduler::TimerChange;
use crate::store::{Expected, StateStore};
use crate::transport::Transport;
use crate::worker::WorkerHost;
use crate::workflow::WorkflowDef;

/// Most CAS rounds one event may take before it is handed back (nack).
const MAX_CAS_ROUNDS: usize = 64;

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

/// Every task of one orchestrator instance (consumer loops and the
/// handler of each delivery), and the two signals that end them.
pub(crate) struct Tasks {
    pub(crate) tracker: TaskTracker,
    /// Stops the consumer loops (no new deliveries are taken).
    pub(crate) stop: CancellationToken,
    /// Tells handlers still running after the shutdown deadline to give up
    /// (their deliveries are dropped unsettled, hence redelivered).
    pub(crate) abort: CancellationToken,
    /// The events sender task (not tracked: it ends after every handler).
    pub(crate) sender: super::events::Sender,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.stop.cancel();
        self.abort.cancel();
        self.tracker.close();
        self.sender.drain.cancel();
    }
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
        state: SagaState,
        fx: Effects,
    ) -> Result<Committed> {
        let key = self.saga_key(&state.tx);
        let _entered = self.gate.enter(&state.tx);
        let published = std::time::Instant::now();
        self.publish_effects_before(&fx).await?;
        let ttl = state.status.is_final().then_some(self.config.retention);
        let value = self.encode(&state)?;
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

impl Orchestrator {
    /// Starts an instance: serves every worker registered in `host` now,
    /// and the results and timers of every transaction on this backend.
    pub async fn start(
        transport: Arc<dyn Transport>,
        store: Arc<dyn StateStore>,
        host: WorkerHost,
        config: OrchestratorConfig,
    ) -> Result<Orchestrator> {
        Self::open(transport, store, host, config, true).await
    }

    /// A client of the instances serving this backend: it submits, reads,
    /// waits for, cancels and lists transactions and watches their events,
    /// but takes no work (no command, result or timer). Register the
    /// workflows it submits (their workers need not be registered here).
    pub async fn connect(
        transport: Arc<dyn Transport>,
        store: Arc<dyn StateStore>,
        config: OrchestratorConfig,
    ) -> Result<Orchestrator> {
        let host = WorkerHost::builder().build()?;
        Self::open(transport, store, host, config, false).await
    }

    async fn open(
        transport: Arc<dyn Transport>,
        store: Arc<dyn StateStore>,
        host: WorkerHost,
        config: OrchestratorConfig,
        serve: bool,
    ) -> Result<Orchestrator> {
        crate::validate::group(&config.prefix).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("invalid orchestrator prefix: {}", e.message()),
            )
            .with_context("prefix", &config.prefix)
        })?;
        if config.guard_slack < Duration::from_millis(100) {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "guard_slack must be at least 100ms (got {:?}): a guard renewed that often would fire while its step runs",
                    config.guard_slack
                ),
            )
            .with_operation("orchestrator.start"));
        }
        let caps = transport.capabilities();
        let scheduler = store.scheduler();
        super::needs::check_transport(&caps, scheduler.is_some())?;
        let (events, sender) = super::events::start(transport.clone());
        let tasks = Arc::new(Tasks {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
            sender,
        });
        let local = (serve && config.local_dispatch).then(|| (tasks.tracker.clone(), tasks.abort.clone()));
        let placement = local.as_ref().map(|_| {
            let host = host.clone();
            Placement {
                run_here: Arc::new(move |worker: &str| host.has_free_permit(worker)),
                guard_slack_ms: crate::scheduler::millis(config.guard_slack),
                renewed: scheduler.is_some(),
            }
        });
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            ack_wait: caps.hold(),
            local,
            placement,
            scheduler,
            decoded: Default::default(),
            wake: Default::default(),
            gate: Default::default(),
            running: Default::default(),
            memory: Default::default(),
            transport,
            store,
            host,
            workflows: Default::default(),
            codec: PayloadCodec::default(),
            config,
            changed: tokio::sync::Notify::new(),
            events,
            accepting: AtomicBool::new(true),
            serving: serve,
        });
        if serve {
            super::serve::spawn_all(&shared, &tasks).await?;
        }

        Ok(Orchestrator { shared, tasks })
    }

    /// Registers a workflow after validating it against the host's workers
    /// (a client checks its shape only: the serving instances run it).
    pub fn register_workflow(&self, def: WorkflowDef) -> Result<()> {
        let host = &self.shared.host;
        if self.shared.serving {
            def.validate(&|w| host.contains(w))?;
        } else {
            def.validate(&|_| true)?;
        }
        let mut workflows = self.shared.workflows.write().unwrap_or_else(|p| p.into_inner());
        if workflows.contains_key(&def.name) {
            return Err(Error::new(
                ErrorKind::Config,
                format!("workflow {:?} is defined twice", def.name),
            )
            .with_context("workflow", &def.name));
        }
        workflows.insert(def.name.clone(), Arc::new(def));
        Ok(())
    }

    /// Sheds load when memory runs short: from now on `guard` is sampled
    /// every `guard.config().interval`, and while it sheds, `execute`
    /// answers a retryable `Overloaded`, this instance takes no new
    /// commands (they stay queued for others) and runs no step in-process.
    /// Results and timers still land: finishing work is what frees memory.
    /// Each change of level goes out as an event on the events topic
    /// (`instance.memory_warn`, `instance.shedding`,
    /// `instance.memory_normal`; see [`Event`](super::Event)).
    ///
    /// # Errors
    /// `Conflict` if a guard is already set.
    pub fn guard_memory(&self, guard: Arc<crate::resilience::MemoryGuard>) -> Result<()> {
        let first = guard.sample_change();
        self.shared.memory.set(guard.clone()).map_err(|_| {
            Error::new(
                ErrorKind::Conflict,
                "this orchestrator already has a memory guard",
            )
            .with_operation("guard_memory")
        })?;
        if let Some(change) = first {
            self.shared.announce_memory(&change);
        }
        let stop = self.tasks.stop.clone();
        let shared = self.shared.clone();
        self.tasks.tracker.spawn(async move {
            let mut ticker = tokio::time::interval(guard.config().interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticker.tick() => {
                        if let Some(change) = guard.sample_change() {
                            shared.announce_memory(&change);
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// The memory guard, if one is set ([`guard_memory`](Self::guard_memory)).
    pub fn memory_guard(&self) -> Option<&Arc<crate::resilience::MemoryGuard>> {
        self.shared.memory.get()
    }

    /// Registered workflow names, sorted.
    pub fn workflows(&self) -> Vec<String> {
        let workflows = self.shared.workflows.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = workflows.keys().cloned().collect();
        names.sort();
        names
    }

    /// Stops intake and the consumer loops, lets in-flight handlers finish
    /// (up to `deadline`), then makes the rest give up: their messages go
    /// back to their groups for another instance. When it returns, no task
    /// of this instance runs any more.
    pub async fn shutdown(&self, deadline: Duration) {
        self.shared.accepting.store(false, Ordering::Release);
        let tasks = &self.tasks;
        tasks.stop.cancel();
        tasks.tracker.close();
        if tokio::time::timeout(deadline, tasks.tracker.wait())
            .await
            .is_err()
        {
            tasks.abort.cancel();
            // Dropping a handler is immediate; this bounds a pathological one.
            if tokio::time::timeout(Duration::from_secs(5), tasks.tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!(tasks = tasks.tracker.len(), "tasks still running after shutdown");
            }
        }
        // Every handler is done: the events they made go out, then the
        // sender ends.
        tasks.sender.finish(Duration::from_secs(5)).await;
    }

    /// Tasks of this instance still alive (consumer loops and handlers).
    pub fn running_tasks(&self) -> usize {
        self.tasks.tracker.len()
    }

    /// The worker host this instance serves.
    pub fn host(&self) -> &WorkerHost {
        &self.shared.host
    }
}
