//! The runtime's profiler: how [`RuntimeBuilder::profile`] wraps the
//! backends and the worker host, and [`Runtime::profile`], the ranked
//! report (see [`multiagents_core::profile`]).

use std::sync::Arc;

use multiagents_core::profile::{Facts, ProfileReport, ProfiledStore, ProfiledTransport, Profiler};
use multiagents_core::{StateStore, Transport};

use super::{Runtime, RuntimeBuilder};

/// What the runtime was built with, for the report's recommendations.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProfileSettings {
    /// Built with [`RuntimeBuilder::profile`]: the backends are wrapped.
    pub(super) built: bool,
    pub(super) cache: bool,
    pub(super) local_dispatch: bool,
}

/// The transport and store the orchestrator uses: timed when profiling.
/// (The runtime's own accessors and the worker host keep the plain ones:
/// only the orchestrator's calls are its `store` and `transport` rows.)
pub(super) fn wrap(
    profiler: Option<&Profiler>,
    transport: &Arc<dyn Transport>,
    store: &Arc<dyn StateStore>,
) -> (Arc<dyn Transport>, Arc<dyn StateStore>) {
    match profiler {
        Some(p) => (
            Arc::new(ProfiledTransport::new(transport.clone(), p.clone())),
            Arc::new(ProfiledStore::new(store.clone(), p.clone())),
        ),
        None => (transport.clone(), store.clone()),
    }
}

impl RuntimeBuilder {
    /// Builds with the bottleneck profiler recording from the start
    /// (default off; `[profile] enabled` in a config): store calls,
    /// publishes, queue waits, permit waits, worker calls, instantiation,
    /// workers' host calls, state transitions and timer lag are timed.
    /// Read it with [`Runtime::profile`]. A client runtime
    /// ([`client`](RuntimeBuilder::client)) runs no work and ignores it. On,
    /// a timed operation costs two clock reads, a read lock and a few
    /// atomic adds; off, nothing is wrapped.
    #[must_use]
    pub fn profile(mut self, on: bool) -> Self {
        self.profile = on;
        self
    }
}

impl Runtime {
    /// The profiler (pause it with `set_enabled(false)`, start a new
    /// window with `reset()`). Built without [`RuntimeBuilder::profile`],
    /// it is off, and enabling it later times permit waits, worker calls,
    /// instantiation and the orchestrator's stages, but not store calls,
    /// publishes, queue waits or workers' host calls (their wrappers are
    /// installed only at build).
    pub fn profiler(&self) -> &Profiler {
        self.inner.host.profiler()
    }

    /// Where this instance's time went since profiling started (or its
    /// last reset): timings by component and operation, the largest first,
    /// and recommendations naming the setting to change. Empty, saying so,
    /// when it was built without profiling.
    pub fn profile(&self) -> ProfileReport {
        let settings = self.inner.profile;
        let store = self.inner.store.capabilities().name;
        let mut facts = Facts::new(settings.cache, settings.local_dispatch, store);
        for name in self.inner.host.names() {
            if let Some(stats) = self.inner.host.stats(&name) {
                facts = facts.with_worker(name, stats.max_concurrent);
            }
        }
        self.profiler().report(&facts)
    }

    /// Whether it was built with [`RuntimeBuilder::profile`].
    pub fn is_profiled(&self) -> bool {
        self.inner.profile.built
    }
}
