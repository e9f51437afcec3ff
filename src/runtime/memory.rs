//! The runtime's memory guard: how [`RuntimeBuilder`](super::RuntimeBuilder)
//! sets one up (on by default, from `[memory]` in a config file) and hands
//! it to the orchestrator.

use std::sync::Arc;

use multiagents_core::orchestrator::Orchestrator;
use multiagents_core::resilience::{MemoryGuard, MemoryGuardConfig, ProcessProbe};
use multiagents_core::store::CachedStore;
use multiagents_core::{Result, StateStore};

/// What the builder was told about memory.
#[derive(Debug, Clone)]
pub(super) enum MemorySetting {
    /// No guard.
    Off,
    /// A guard over this process's memory, against `limit` (bytes) when
    /// given, else the cgroup's or the machine's.
    Process {
        config: MemoryGuardConfig,
        limit: Option<u64>,
    },
    /// A guard made by the caller (tests inject readings this way).
    Given(Arc<MemoryGuard>),
}

impl Default for MemorySetting {
    fn default() -> Self {
        MemorySetting::Process {
            config: MemoryGuardConfig::default(),
            limit: None,
        }
    }
}

/// Sets up the guard `setting` asks for on `orchestrator`; returns it.
pub(super) fn install(
    setting: MemorySetting,
    orchestrator: &Orchestrator,
    cache: Option<&CachedStore<Arc<dyn StateStore>>>,
) -> Result<Option<Arc<MemoryGuard>>> {
    let guard = match setting {
        MemorySetting::Off => return Ok(None),
        MemorySetting::Given(guard) => guard,
        MemorySetting::Process { config, limit } => {
            let host = orchestrator.host().clone();
            let mut probe = ProcessProbe::new(limit).with_wasm(Arc::new(move || host.memory_bytes() as u64));
            if let Some(cache) = cache.cloned() {
                probe = probe.with_cache(Arc::new(move || cache.stats().cached_bytes));
            }
            if probe.limit().is_none() {
                tracing::warn!(
                    "no memory limit found (cgroup or /proc/meminfo): the memory guard never sheds; set [memory] limit_mb"
                );
            }
            Arc::new(MemoryGuard::new(config, probe)?)
        }
    };
    orchestrator.guard_memory(guard.clone())?;
    Ok(Some(guard))
}
