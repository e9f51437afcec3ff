//! The orchestrator: runs workflows as sagas over a [`Transport`] and a
//! [`StateStore`].
//!
//! # How a transaction moves
//!
//! * Its state ([`saga::SagaState`]) lives in the store under
//!   `<prefix>/saga/<tx>`, written only with compare-and-swap: of two
//!   instances handling the same event, one wins and the other re-reads and
//!   finds nothing left to do.
//! * A step runs **in the instance that dispatches it** when that instance
//!   has its worker and a free permit (`local`): the dispatching state
//!   write is the record, and it arms the step's **guard** timer, which
//!   the runner renews while the step runs; if the instance dies, the guard
//!   fires and the step is dispatched again.
//! * Otherwise a step is dispatched as a **command** on the queue topic
//!   `<prefix>.cmd.<worker>`; whichever instance serves that worker invokes
//!   it and publishes a **result** on `<prefix>.results`. Results are matched
//!   to the `(transaction, step, kind, attempt, token)` the state expects —
//!   never to "the current step" — so a duplicate or late result is
//!   recognised and dropped.
//! * **Timers** (retry backoff, the optional queue timeout, guards) are kept
//!   with the state: the write that starts a wait arms its timer in the same
//!   atomic step and the write that ends it clears it
//!   ([`crate::scheduler`]); a poll loop claims due ones (`timers`). A
//!   store without timers falls back to timer messages on the transport.
//! * A state change publishes its commands (and timer messages) *before*
//!   its state write, each
//!   carrying the version the write replaces (its *basis*) and the write
//!   attempt's random fencing *token*: once the write is in, nothing it
//!   promised can be missing, whatever crashes next. A reader judges each
//!   one against a fresh read (`saga::Fence`): the state waits for exactly
//!   its token (act), the state is
//!   still at its basis (too early: wait, the write is on its way), or the
//!   state has moved on (stale: drop it, unrun). One whose write never
//!   lands is dropped after a grace period. Events go out after the write.
//! * The step `timeout` is start-to-close: the executor counts it from the
//!   moment it starts the attempt, so a backlog drained late runs each step
//!   once. A `queue_timeout` (schedule-to-start) is opt-in.
//! * A delivery being worked on is kept in progress
//!   ([`crate::Delivery::progress`]), so a step longer than the transport's
//!   ack timeout is not redelivered while it runs; only a dead (or frozen)
//!   holder's work goes to another instance.
//! * Every queue message is acked only after its effects are durable (state
//!   written, follow-up messages published), so an instance that dies
//!   mid-way leaves its messages to be redelivered to another instance.
//! * Events (`workflow.*`, `step.*`) go to the broadcast topic
//!   `<prefix>.events`.
//!
//! | module | owns |
//! |---|---|
//! | [`api`] | ids, statuses, snapshots |
//! | `saga` | the persisted state, its pure transitions (forward, timers, undo) and its encoding |
//! | `messages` | commands, results, timers, events on the wire |
//! | `client` | execute, status, wait, cancel, list, events (all a client does) |
//! | `coordinator` | state changes: the compare-and-swap advance loop, the write with its effects, results |
//! | `engine` | what the roles share: the clock, topics, publishing a change's effects |
//! | `instance` | an instance's life: open (serving all, steps only, or client), register, memory guard, shutdown |
//! | `decoded` | the states this instance wrote last, decoded (its next change skips the read) |
//! | `serve` | the consumer loops of a serving instance (commands; results and timers unless it runs steps only) |
//! | `events` | the queue and sender task of this instance's lifecycle events |
//! | `executor` | commands: the fence, the start-to-close timeout, running the worker |
//! | `gate` | which transactions this instance is advancing (in-process ordering) |
//! | `running` | which dispatches the executor runs (a second delivery is handed back) |
//! | `local` | running a step in-process instead of through the queue, guarded by a timer |
//! | `timers` | the store's timers (claimed by a poll loop) or timer messages: retries, queue timeouts, guards |
//! | `needs` | the backend capabilities it requires, checked at start |

pub mod api;
#[doc(hidden)]
pub mod bench_support;
mod client;
mod coordinator;
mod decoded;
mod engine;
mod events;
mod executor;
mod gate;
mod instance;
mod local;
mod messages;
mod needs;
mod running;
mod saga;
mod serve;
mod timers;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use api::{AttemptRecord, SagaPage, SagaSnapshot, SagaStatus, StepKind, TransactionId};
pub use engine::now_ms;
pub use messages::Event;

use crate::codec::PayloadCodec;
use crate::error::{Error, ErrorKind, Result};
use crate::store::StateStore;
use crate::transport::Transport;
use crate::worker::WorkerHost;
use crate::workflow::WorkflowDef;

/// Orchestrator settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OrchestratorConfig {
    /// Prefix of every topic and store key (several runtimes with different
    /// prefixes can share one backend without seeing each other).
    pub prefix: String,
    /// How long finished transactions stay readable (`status`, `history`).
    pub retention: Duration,
    /// Largest workflow input, in bytes (as CBOR).
    pub max_input: usize,
    /// Results handled at once by this instance.
    pub max_in_flight_results: usize,
    /// Run a step in-process when this instance has its worker and a free
    /// permit, instead of sending its command through the queue. The state
    /// write that dispatches it is the record, and a guard timer dispatches
    /// it again if the instance dies before its result is written (see
    /// [`guard_slack`](Self::guard_slack)).
    pub local_dispatch: bool,
    /// How long the guard of an in-process run waits without word from it.
    /// In a store that keeps timers (memory, Redis, Kafka) the running
    /// instance renews the guard while the step runs, so a crashed
    /// instance's step runs again about this long after its last renewal;
    /// with timer messages (a store without timers) the guard is due this
    /// long after the step's timeout. Longer is safer under overload (a live
    /// but slow instance is never taken for a dead one), shorter recovers
    /// sooner. At least 100 ms.
    pub guard_slack: Duration,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            prefix: "ma".into(),
            retention: Duration::from_secs(24 * 3600),
            max_input: 1 << 20,
            max_in_flight_results: 256,
            local_dispatch: true,
            guard_slack: Duration::from_secs(10),
        }
    }
}

impl OrchestratorConfig {
    /// Where transaction states are kept in the store: `<prefix>/saga/`,
    /// then the transaction id.
    pub fn saga_key_prefix(&self) -> String {
        format!("{}/saga/", self.prefix)
    }

    /// Sets the prefix.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// Sets the retention of finished transactions.
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }
    /// Sets the input cap.
    #[must_use]
    pub fn with_max_input(mut self, bytes: usize) -> Self {
        self.max_input = bytes;
        self
    }
    /// Sets [`local_dispatch`](Self::local_dispatch).
    #[must_use]
    pub fn with_local_dispatch(mut self, on: bool) -> Self {
        self.local_dispatch = on;
        self
    }
    /// Sets [`guard_slack`](Self::guard_slack).
    #[must_use]
    pub fn with_guard_slack(mut self, slack: Duration) -> Self {
        self.guard_slack = slack;
        self
    }
}

/// What an instance takes from the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Commands, results and timers ([`Orchestrator::start`]).
    Full,
    /// Its workers' commands only ([`Orchestrator::start_workers`]).
    Workers,
    /// Nothing: it submits and reads ([`Orchestrator::connect`]).
    Client,
}

impl Role {
    /// Runs steps (takes commands, may run a step in-process).
    pub(crate) fn runs_steps(self) -> bool {
        self != Role::Client
    }

    /// Advances transactions (takes results and timers).
    pub(crate) fn coordinates(self) -> bool {
        self == Role::Full
    }
}

pub(crate) struct Shared {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) host: WorkerHost,
    pub(crate) workflows: RwLock<HashMap<String, Arc<WorkflowDef>>>,
    pub(crate) codec: PayloadCodec,
    pub(crate) config: OrchestratorConfig,
    pub(crate) changed: tokio::sync::Notify,
    /// Where this instance's events go out (in order, at most once).
    pub(crate) events: events::Events,
    pub(crate) accepting: std::sync::atomic::AtomicBool,
    /// What this instance takes from the backend.
    pub(crate) role: Role,
    /// Transactions this instance is advancing right now.
    pub(crate) gate: gate::Gate,
    /// Dispatches this instance's executor is running right now.
    pub(crate) running: running::Running,
    /// How long a delivery stays this instance's without progress (the
    /// transport's ack timeout, or its group hold: `Capabilities::hold`):
    /// long handlers report progress within it, and it bounds their lease.
    pub(crate) ack_wait: Option<Duration>,
    /// This instance itself, for the tasks it spawns.
    pub(crate) me: std::sync::Weak<Shared>,
    /// The instance's task tracker and abort signal (clones of its
    /// `Tasks`), for steps run in-process.
    pub(crate) local: Option<(tokio_util::task::TaskTracker, tokio_util::sync::CancellationToken)>,
    /// Where a dispatch may run in-process (`None`: every step is queued).
    pub(crate) placement: Option<saga::Placement>,
    /// The store's timers; `None`: timer messages on the transport.
    pub(crate) scheduler: Option<Arc<dyn crate::scheduler::Scheduler>>,
    /// The states this instance wrote last, decoded.
    pub(crate) decoded: decoded::Decoded,
    /// Wakes the timer poll loop when this instance arms an earlier timer.
    pub(crate) wake: timers::Wake,
    /// Sheds load when memory runs short ([`Orchestrator::guard_memory`]).
    pub(crate) memory: std::sync::OnceLock<Arc<crate::resilience::MemoryGuard>>,
}

impl Shared {
    pub(crate) fn workflow(&self, name: &str) -> Result<Arc<WorkflowDef>> {
        let workflows = self.workflows.read().unwrap_or_else(|p| p.into_inner());
        workflows.get(name).cloned().ok_or_else(|| {
            let mut known: Vec<&String> = workflows.keys().collect();
            known.sort();
            Error::new(
                ErrorKind::NotFound,
                format!("unknown workflow {name:?} (known: {known:?})"),
            )
            .with_context("workflow", name)
        })
    }
}

/// Runs workflows. Cheap to clone; clones share one instance.
#[derive(Clone)]
pub struct Orchestrator {
    shared: Arc<Shared>,
    tasks: Arc<instance::Tasks>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}
