//! The bottleneck profiler: where a runtime's time goes, by component and
//! operation, and a ranked report of what to change.
//!
//! | module | owns |
//! |---|---|
//! | this file | [`Profiler`] (the switch and the timings), [`Op`] (what is timed) |
//! | `histogram` | the log-bucket histogram of relaxed atomics behind each timing |
//! | `wrap` | [`ProfiledStore`] and [`ProfiledTransport`]: backend calls timed at the trait boundary |
//! | `report` | [`ProfileReport`], [`Timing`], [`Facts`]: the ranking and the shares |
//! | `advice` | the rules that turn timings into [`Recommendation`]s |
//! | `render` | the report as a terminal table |
//!
//! A [`Profiler`] is off until [`Profiler::set_enabled`]; while off,
//! recording is one relaxed atomic load. On, a timing is two clock reads,
//! a shared read lock of its operation's map, a hash of its label and a
//! few relaxed atomic adds (the first timing of a label takes the write
//! lock once). The runtime installs the store and
//! transport wrappers only when it is built with profiling, so a runtime
//! without it pays nothing for them.

mod advice;
mod histogram;
mod render;
mod report;
mod wrap;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use std::time::{Duration, Instant};

use histogram::Histogram;
pub use report::{Facts, ProfileReport, Recommendation, Timing};
pub use wrap::{ProfiledStore, ProfiledTransport, SENT_HEADER};

/// What is timed. Each names its component and operation (`queue:wait`);
/// the label of a timing says of what (a topic, a worker, a store call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Op {
    /// A queued message, from its publish to its delivery here; label: the
    /// topic.
    QueueWait,
    /// Before a queued command runs: the fresh state read that checks it is
    /// still wanted; label: the worker.
    Dispatch,
    /// Waiting for a permit of the worker's (and the global) concurrency
    /// limit; label: the worker.
    PermitWait,
    /// The worker's call, from its permit to its answer: instantiation and
    /// host calls included; label: the worker.
    Call,
    /// A fresh WebAssembly instance for a call; label: the worker.
    Instantiate,
    /// The guest's run: its `handle` export, from the call into the
    /// instance to its answer (its host calls included, instantiation
    /// not); label: the worker.
    GuestRun,
    /// The state (`wasi:keyvalue`) and `emit` calls a worker made; label:
    /// the worker.
    HostCalls,
    /// A state change: starting a transaction (its first write, which
    /// dispatches the first step), handling a step result or a due timer
    /// (reading the state, deciding, the conditional write that advances
    /// it); label: `submit`, `result` or `timer`.
    Coordinate,
    /// One store call of the runtime itself; label: the call (`get`,
    /// `get_fresh`, `cas`, `cas_timed`, `put`, `put_batch`, `delete`, `scan`).
    Store,
    /// One publish; label: the topic (`mixed` for a batch to several).
    Publish,
    /// How late a timer fired after it was due; label: empty.
    TimerLag,
}

impl Op {
    /// Every op, in the order of a step's path.
    pub const ALL: [Op; 11] = [
        Op::QueueWait,
        Op::Dispatch,
        Op::PermitWait,
        Op::Call,
        Op::Instantiate,
        Op::GuestRun,
        Op::HostCalls,
        Op::Coordinate,
        Op::Store,
        Op::Publish,
        Op::TimerLag,
    ];

    /// The component (`queue`, `executor`, `worker`, `coordinator`,
    /// `store`, `transport`, `timer`).
    pub fn component(self) -> &'static str {
        match self {
            Op::QueueWait => "queue",
            Op::Dispatch => "executor",
            Op::PermitWait | Op::Call | Op::Instantiate | Op::GuestRun | Op::HostCalls => "worker",
            Op::Coordinate => "coordinator",
            Op::Store => "store",
            Op::Publish => "transport",
            Op::TimerLag => "timer",
        }
    }

    /// The operation within its component.
    pub fn operation(self) -> &'static str {
        match self {
            Op::QueueWait => "wait",
            Op::Dispatch => "dispatch",
            Op::PermitWait => "permit_wait",
            Op::Call => "call",
            Op::Instantiate => "instantiate",
            Op::GuestRun => "run",
            Op::HostCalls => "host_calls",
            Op::Coordinate => "coordinate",
            Op::Store => "call",
            Op::Publish => "publish",
            Op::TimerLag => "lag",
        }
    }

    /// The stage whose time already includes this one's (it is shown, but
    /// not added twice to the step path), if any.
    pub fn within(self) -> Option<&'static str> {
        match self {
            Op::Instantiate | Op::GuestRun => Some("worker:call"),
            Op::HostCalls => Some("worker:run"),
            Op::Store | Op::Publish => Some("the stage that made the call, if any"),
            Op::TimerLag => Some("no stage: a delay, not work"),
            _ => None,
        }
    }
}

/// The timings of one op, by label.
type Labels = RwLock<HashMap<Box<str>, Histogram>>;

/// Timings of one runtime. Cheap to clone; clones share them.
#[derive(Clone, Default)]
pub struct Profiler {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    on: AtomicBool,
    /// Indexed by `Op as usize`.
    timings: [Labels; Op::ALL.len()],
    since: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiler")
            .field("enabled", &self.enabled())
            .finish()
    }
}

impl Profiler {
    /// A profiler, off.
    pub fn new() -> Self {
        Self::default()
    }

    /// A profiler, on.
    pub fn enabled_now() -> Self {
        let p = Self::new();
        p.set_enabled(true);
        p
    }

    /// Whether it records.
    pub fn enabled(&self) -> bool {
        self.inner.on.load(Ordering::Relaxed)
    }

    /// Starts or stops recording (what was recorded is kept).
    pub fn set_enabled(&self, on: bool) {
        if on {
            let mut since = self.inner.since.lock().unwrap_or_else(|p| p.into_inner());
            since.get_or_insert_with(Instant::now);
        }
        self.inner.on.store(on, Ordering::Relaxed);
    }

    /// Forgets every timing; the window starts again now.
    pub fn reset(&self) {
        for labels in &self.inner.timings {
            labels.write().unwrap_or_else(|p| p.into_inner()).clear();
        }
        *self.inner.since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// `Some(now)` when recording: the start of a timing for
    /// [`finish`](Self::finish).
    pub fn start(&self) -> Option<Instant> {
        self.enabled().then(Instant::now)
    }

    /// Records the time since `started` (from [`start`](Self::start));
    /// nothing when it is `None`.
    pub fn finish(&self, op: Op, label: &str, started: Option<Instant>) {
        if let Some(started) = started {
            self.record(op, label, started.elapsed());
        }
    }

    /// Records one timing of `op` for `label` (nothing while off).
    pub fn record(&self, op: Op, label: &str, took: Duration) {
        if !self.enabled() {
            return;
        }
        let labels = &self.inner.timings[op as usize];
        {
            let known = labels.read().unwrap_or_else(|p| p.into_inner());
            if let Some(h) = known.get(label) {
                h.record(took);
                return;
            }
        }
        let mut all = labels.write().unwrap_or_else(|p| p.into_inner());
        all.entry(Box::from(label)).or_default().record(took);
    }

    /// Awaits `work`, timing it as `op` for `label` however it ends (an
    /// error too); only awaits it while off.
    pub async fn time<T>(&self, op: Op, label: &str, work: impl Future<Output = T>) -> T {
        let started = self.start();
        let out = work.await;
        self.finish(op, label, started);
        out
    }

    /// Every timing recorded so far, and how long the window has run.
    pub fn timings(&self) -> (Vec<Timing>, Duration) {
        let mut rows = Vec::new();
        for op in Op::ALL {
            let labels = self.inner.timings[op as usize]
                .read()
                .unwrap_or_else(|p| p.into_inner());
            rows.extend(
                labels
                    .iter()
                    .map(|(label, h)| Timing::new(op, label, h.summary()))
                    .filter(|t| t.count > 0),
            );
        }
        let since = *self.inner.since.lock().unwrap_or_else(|p| p.into_inner());
        (rows, since.map_or(Duration::ZERO, |s| s.elapsed()))
    }

    /// The ranked report of what was recorded; `facts` are the settings
    /// the recommendations name.
    pub fn report(&self, facts: &Facts) -> ProfileReport {
        let (timings, window) = self.timings();
        ProfileReport::new(timings, window, self.enabled(), facts)
    }
}

#[cfg(test)]
mod tests;
