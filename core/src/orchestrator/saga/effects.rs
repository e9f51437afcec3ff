//! What one state change publishes ([`Effects`]), and where the steps it
//! dispatches may run ([`Placement`]).

use super::super::messages::{Command, Event, Timer};

/// What one state change publishes: commands and timers before the write
/// (fenced by `basis` and `token`), events after it, and the steps this
/// instance runs itself once it is written.
#[derive(Default)]
pub(crate) struct Effects {
    /// The version the write replaces (0: it creates the state).
    pub(crate) basis: u64,
    /// The fencing token of this write attempt (see [`Waiting::token`]).
    pub(crate) token: u64,
    /// Commands for the queue.
    pub(crate) commands: Vec<Command>,
    /// Commands this instance runs in-process after the write (their guard
    /// timer is the crash record).
    pub(crate) local: Vec<Command>,
    /// Timer messages (for a store without timers; with one, the state's
    /// [`Deadline`] is written with it instead).
    pub(crate) timers: Vec<Timer>,
    pub(crate) events: Vec<Event>,
    /// Where a dispatch may run in-process (`None`: every step is queued).
    pub(crate) placement: Option<Placement>,
    /// Where the transaction's guard timer stands, when the input is the
    /// result of an in-process run that knows (its last renewal). A step
    /// this write dispatches in-process keeps that timer while it is at
    /// least [`GUARD_KEPT_SIXTHS`] sixths of the slack away, so a chain of
    /// fast steps costs the store no timer write per step; the step's
    /// runner renews it from there.
    pub(crate) guard: Option<u64>,
}

impl std::fmt::Debug for Effects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effects")
            .field("basis", &self.basis)
            .field("token", &self.token)
            .field("commands", &self.commands)
            .field("local", &self.local)
            .field("timers", &self.timers)
            .field("events", &self.events)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl Effects {
    /// Effects of a write attempt over `basis`, with a fresh token.
    pub(crate) fn over(basis: u64) -> Self {
        Effects {
            basis,
            token: fresh_token(),
            ..Effects::default()
        }
    }
}

/// Whether a step may run in the instance that dispatches it.
#[derive(Clone)]
pub(crate) struct Placement {
    /// Whether this instance takes a step of this worker now (it has the
    /// worker and a free permit).
    pub(crate) run_here: std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// How long the guard of an in-process run waits past the step timeout
    /// (or, renewed, past its last renewal) for its result before it
    /// dispatches the step again.
    pub(crate) guard_slack_ms: u64,
    /// The guard is renewed while the step runs (the store keeps timers):
    /// it is due `guard_slack_ms` after the dispatch, not after the step
    /// timeout, and a step without a timeout may run in-process too.
    pub(crate) renewed: bool,
}

/// A random, non-zero 64-bit token.
fn fresh_token() -> u64 {
    crate::kit::random_u64() | 1
}
