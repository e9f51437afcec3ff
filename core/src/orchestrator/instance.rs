//! One orchestrator instance's life: opening it (serving everything,
//! running steps only, or as a client), what it registers, its memory
//! guard, and shutting it down with every task it started.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::saga::Placement;
use super::{Orchestrator, OrchestratorConfig, Role, Shared};
use crate::codec::PayloadCodec;
use crate::error::{Error, ErrorKind, Result};
use crate::store::StateStore;
use crate::transport::Transport;
use crate::worker::WorkerHost;
use crate::workflow::WorkflowDef;

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

impl Orchestrator {
    /// Starts an instance: serves every worker registered in `host` now,
    /// and the results and timers of every transaction on this backend.
    pub async fn start(
        transport: Arc<dyn Transport>,
        store: Arc<dyn StateStore>,
        host: WorkerHost,
        config: OrchestratorConfig,
    ) -> Result<Orchestrator> {
        Self::open(transport, store, host, config, Role::Full).await
    }

    /// Starts an instance that only runs steps: it serves every worker
    /// registered in `host` now, but takes no result or timer, so it
    /// advances no transaction and registers no workflow. For instances
    /// that add worker capacity to a cluster whose other instances know
    /// the workflows: a result taken by an instance that does not know its
    /// workflow could only be handed back, late.
    ///
    /// Give it a store opened as a client's
    /// ([`Backend::client_store`](crate::registry::Backend::client_store)):
    /// a store whose serving instances share its work hands this one a
    /// share it never does. On Kafka the owner of a partition claims its
    /// timers, and this instance claims none. `Runtime` does so for an
    /// instance configured without workflows.
    pub async fn start_workers(
        transport: Arc<dyn Transport>,
        store: Arc<dyn StateStore>,
        host: WorkerHost,
        config: OrchestratorConfig,
    ) -> Result<Orchestrator> {
        Self::open(transport, store, host, config, Role::Workers).await
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
        Self::open(transport, store, host, config, Role::Client).await
    }

    async fn open(
        transport: Arc<dyn Transport>,
        store: Arc<dyn StateStore>,
        host: WorkerHost,
        config: OrchestratorConfig,
        role: Role,
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
        let local = (role.coordinates() && config.local_dispatch)
            .then(|| (tasks.tracker.clone(), tasks.abort.clone()));
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
            role,
        });
        if role.runs_steps() {
            super::serve::spawn_all(&shared, &tasks).await?;
        }

        Ok(Orchestrator { shared, tasks })
    }

    /// Registers a workflow after validating it against the host's workers
    /// (a client checks its shape only: the serving instances run it).
    ///
    /// # Errors
    /// `Config` if the definition is invalid, names a worker this instance
    /// lacks, is registered twice, or this instance runs steps only
    /// ([`start_workers`](Self::start_workers)).
    pub fn register_workflow(&self, def: WorkflowDef) -> Result<()> {
        let host = &self.shared.host;
        match self.shared.role {
            Role::Full => def.validate(&|w| host.contains(w))?,
            Role::Client => def.validate(&|_| true)?,
            Role::Workers => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "workflow {:?}: this instance runs steps only (started with start_workers) and takes no results, so it cannot advance a workflow",
                        def.name
                    ),
                )
                .with_context("workflow", &def.name));
            }
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

#[cfg(test)]
#[path = "role_tests.rs"]
mod role_tests;
