//! [`WorkerHost`]: the registry of workers and the one way to call them.
//!
//! Every call goes through the worker's [`Guard`]: breaker → per-worker
//! limit → global limit → timeout → the worker (DESIGN.md §3), inside a
//! `tracing` span naming the worker and the call.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tracing::Instrument;

use super::{CallInfo, Worker, WorkerSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::profile::{ProfiledStore, ProfiledTransport, Profiler};
use crate::resilience::{BreakerState, CallStatsSnapshot, Clock, ConcurrencyLimit, Guard, SystemClock};
use crate::store::StateStore;
use crate::transport::Transport;
use crate::validate;

#[cfg(feature = "wasm")]
use super::wasm::{EngineConfig, WasmEngine, WasmSource};

/// What the host gives workers: state for `wasi:keyvalue`, a transport for
/// `emit`.
#[derive(Clone)]
#[cfg_attr(not(feature = "wasm"), allow(dead_code))] // only WebAssembly workers use them
pub(crate) struct Services {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) events: Option<Arc<dyn Transport>>,
    pub(crate) profiler: Profiler,
}

impl Services {
    /// What worker `name` is given: with profiling, its state and `emit`
    /// calls are timed as its host calls.
    #[cfg_attr(not(feature = "wasm"), allow(dead_code))]
    fn for_worker(&self, name: &str, profiled: bool) -> Services {
        if !profiled {
            return self.clone();
        }
        let p = &self.profiler;
        Services {
            store: Arc::new(ProfiledStore::for_worker(self.store.clone(), p.clone(), name)),
            events: self
                .events
                .clone()
                .map(|t| Arc::new(ProfiledTransport::for_worker(t, p.clone(), name)) as Arc<dyn Transport>),
            profiler: p.clone(),
        }
    }
}

struct Entry {
    worker: Arc<dyn Worker>,
    guard: Guard,
    kind: &'static str,
}

/// Statistics of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// `"wasm"` or `"native"`.
    pub kind: &'static str,
    /// Counts and latency percentiles.
    pub calls: CallStatsSnapshot,
    /// The breaker's state.
    pub breaker: BreakerState,
    /// Calls running now.
    pub in_flight: usize,
    /// Calls waiting for a slot now.
    pub queued: usize,
    /// Most calls ever running at once.
    pub high_water: usize,
    /// The most calls it may run at once, as configured (an adaptive
    /// limit's ceiling).
    pub max_concurrent: usize,
    /// The limit in force: `max_concurrent`, or where an adaptive limit
    /// has moved to.
    pub limit: usize,
    /// Whether that limit adapts to the calls' outcomes (AIMD).
    pub adaptive: bool,
    /// Memory held for its instances, when the worker can tell: a
    /// WebAssembly worker's linear memory of live instances (running, or
    /// kept for reuse).
    pub memory_bytes: Option<usize>,
}

/// Builds a [`WorkerHost`].
pub struct WorkerHostBuilder {
    global_limit: Option<(usize, usize)>,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn StateStore>>,
    events: Option<Arc<dyn Transport>>,
    profiler: Option<Profiler>,
    #[cfg(feature = "wasm")]
    engine: EngineConfig,
}

impl WorkerHostBuilder {
    /// Times calls into `profiler` (see [`crate::profile`]): permit waits,
    /// instantiation, guest time, and each WebAssembly worker's state and
    /// `emit` calls. Without it the host keeps a profiler that is off.
    #[must_use]
    pub fn profiler(mut self, profiler: Profiler) -> Self {
        self.profiler = Some(profiler);
        self
    }

    /// A runtime-wide bound on calls running at once across all workers,
    /// with a wait queue of `max_queued`.
    #[must_use]
    pub fn global_limit(mut self, max_concurrent: usize, max_queued: usize) -> Self {
        self.global_limit = Some((max_concurrent, max_queued));
        self
    }

    /// The clock driving breakers (tests inject a manual one).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The store behind workers' `wasi:keyvalue` state (default: a fresh
    /// in-memory store). Pass the runtime's `CachedStore`.
    #[must_use]
    pub fn store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The transport `emit` publishes to (broadcast). Without one, `emit`
    /// fails with a message saying so.
    #[must_use]
    pub fn events(mut self, transport: Arc<dyn Transport>) -> Self {
        self.events = Some(transport);
        self
    }

    /// WebAssembly engine settings (pool size, cache directory, fuel).
    #[cfg(feature = "wasm")]
    #[must_use]
    pub fn engine(mut self, config: EngineConfig) -> Self {
        self.engine = config;
        self
    }

    /// Builds the host.
    pub fn build(self) -> Result<WorkerHost> {
        let services = Services {
            store: self
                .store
                .unwrap_or_else(|| Arc::new(crate::store::MemoryStore::new())),
            events: self.events,
            profiler: self.profiler.clone().unwrap_or_default(),
        };
        Ok(WorkerHost {
            inner: Arc::new(Inner {
                workers: RwLock::new(HashMap::new()),
                global: self
                    .global_limit
                    .map(|(n, q)| Arc::new(ConcurrencyLimit::new("global", n, q))),
                clock: self.clock,
                #[cfg(feature = "wasm")]
                engine: WasmEngine::new(self.engine)?,
                services,
                profiled: self.profiler.is_some(),
            }),
        })
    }
}

struct Inner {
    workers: RwLock<HashMap<String, Arc<Entry>>>,
    global: Option<Arc<ConcurrencyLimit>>,
    clock: Arc<dyn Clock>,
    #[cfg(feature = "wasm")]
    engine: WasmEngine,
    services: Services,
    /// Whether a profiler was given (then workers' host calls are timed).
    #[cfg_attr(not(feature = "wasm"), allow(dead_code))]
    profiled: bool,
}

/// Registered workers and the way to call them. Cheap to clone.
#[derive(Clone)]
pub struct WorkerHost {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorkerHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHost")
            .field("workers", &self.names())
            .finish()
    }
}

impl WorkerHost {
    /// A builder with defaults: no global limit, system clock, in-memory
    /// state, no event transport.
    pub fn builder() -> WorkerHostBuilder {
        WorkerHostBuilder {
            global_limit: None,
            clock: Arc::new(SystemClock),
            store: None,
            events: None,
            profiler: None,
            #[cfg(feature = "wasm")]
            engine: EngineConfig::default(),
        }
    }

    /// The profiler its calls are timed into (off unless the host was
    /// built with one and it was enabled).
    pub fn profiler(&self) -> &Profiler {
        &self.inner.services.profiler
    }

    fn insert(
        &self,
        name: &str,
        worker: Arc<dyn Worker>,
        spec: &WorkerSpec,
        kind: &'static str,
    ) -> Result<()> {
        let guard = Guard::new(
            name,
            &spec.guard,
            self.inner.global.clone(),
            self.inner.clock.clone(),
        )
        .with_profiler(self.inner.services.profiler.clone());
        let mut workers = self.inner.workers.write().unwrap_or_else(|p| p.into_inner());
        if workers.contains_key(name) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("a worker named {name:?} is already registered"),
            )
            .with_operation("worker.register")
            .with_context("worker", name));
        }
        workers.insert(name.to_string(), Arc::new(Entry { worker, guard, kind }));
        Ok(())
    }

    fn check_name(name: &str) -> Result<()> {
        validate::group(name).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("invalid worker name {name:?}: {}", e.message()),
            )
            .with_operation("worker.register")
            .with_context("worker", name)
        })
    }

    /// Registers a native worker under `name` (only `spec.guard` applies).
    pub fn register_native(&self, name: &str, worker: impl Worker, spec: WorkerSpec) -> Result<()> {
        Self::check_name(name)?;
        spec.validate(name)?;
        self.insert(name, Arc::new(worker), &spec, "native")
    }

    /// Registers a WebAssembly component under `name`: checks it is a
    /// component of the `multiagents:worker` world, compiles it (or loads
    /// it from the disk cache) and prepares instantiation.
    ///
    /// Errors: not a component, or a component whose imports/exports do not
    /// fit the world → `InvalidInput` naming what is wrong; unreadable file
    /// → `NotFound`/`Unavailable`; a bad spec → `Config`.
    #[cfg(feature = "wasm")]
    pub async fn register_wasm(
        &self,
        name: &str,
        source: impl Into<WasmSource>,
        spec: WorkerSpec,
    ) -> Result<()> {
        Self::check_name(name)?;
        spec.validate(name)?;
        let worker = self
            .inner
            .engine
            .load(
                name,
                source.into(),
                spec.clone(),
                self.inner.services.for_worker(name, self.inner.profiled),
            )
            .await?;
        self.insert(name, Arc::new(worker), &spec, "wasm")
    }

    /// Calls worker `name` through its guard.
    ///
    /// Errors: unknown worker → `NotFound`; `CircuitOpen`, `Overloaded`,
    /// `Timeout` from the guard; the worker's own errors.
    pub async fn invoke(&self, name: &str, call: &CallInfo, input: Bytes) -> Result<Bytes> {
        let entry = self.entry(name)?;
        let span = tracing::debug_span!("invoke", worker = name, tx = %call.transaction_id, step = %call.step, attempt = call.attempt);
        entry
            .guard
            .call(entry.worker.call(call, input))
            .instrument(span)
            .await
            .map_err(|e| {
                if e.operation().is_empty() {
                    e.with_operation("worker.invoke")
                } else {
                    e
                }
            })
    }

    fn entry(&self, name: &str) -> Result<Arc<Entry>> {
        let workers = self.inner.workers.read().unwrap_or_else(|p| p.into_inner());
        workers.get(name).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("no worker named {name:?} is registered"),
            )
            .with_operation("worker.invoke")
            .with_context("worker", name)
        })
    }

    /// Whether a worker named `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.entry(name).is_ok()
    }

    /// Registered worker names, sorted.
    pub fn names(&self) -> Vec<String> {
        let workers = self.inner.workers.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = workers.keys().cloned().collect();
        names.sort();
        names
    }

    /// How many commands of worker `name` one instance should hold at once:
    /// its concurrency, plus as many waiting (at most its queue bound), so
    /// it never takes work it would refuse as `Overloaded` and leaves the
    /// rest to other instances. `None` for an unknown worker.
    pub fn prefetch(&self, name: &str) -> Option<usize> {
        let entry = self.entry(name).ok()?;
        let limit = entry.guard.limit();
        Some(limit.max_concurrent() + limit.max_queued().min(limit.max_concurrent()))
    }

    /// Whether worker `name` could start a call now without waiting (a
    /// permit of its own limit is free). `false` for an unknown worker.
    pub fn has_free_permit(&self, name: &str) -> bool {
        self.entry(name)
            .is_ok_and(|e| e.guard.limit().in_use() < e.guard.limit().current())
    }

    /// Memory its workers hold for their instances, in bytes (the sum of
    /// what each can tell: WebAssembly linear memory).
    pub fn memory_bytes(&self) -> usize {
        let workers = self.inner.workers.read().unwrap_or_else(|p| p.into_inner());
        workers.values().filter_map(|e| e.worker.memory_bytes()).sum()
    }

    /// Statistics of worker `name`.
    pub fn stats(&self, name: &str) -> Option<WorkerStats> {
        let entry = self.entry(name).ok()?;
        let limit = entry.guard.limit();
        Some(WorkerStats {
            kind: entry.kind,
            calls: entry.guard.stats(),
            breaker: entry.guard.breaker_state(),
            in_flight: limit.in_use(),
            queued: limit.queued(),
            high_water: limit.high_water(),
            max_concurrent: limit.max_concurrent(),
            limit: limit.current(),
            adaptive: limit.is_adaptive(),
            memory_bytes: entry.worker.memory_bytes(),
        })
    }

    /// The WebAssembly engine (for inspection and benchmarks).
    #[cfg(feature = "wasm")]
    pub fn engine(&self) -> &WasmEngine {
        &self.inner.engine
    }
}
