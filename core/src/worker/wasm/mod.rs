//! The WebAssembly worker host (wasmtime 48, component model).
//!
//! | module | owns |
//! |---|---|
//! | this file | [`EngineConfig`], [`WasmEngine`]: one engine per host, pooling allocator, epoch ticker, the linker |
//! | `bindings` | `bindgen!` over `workers-sdk/wit` (the same files the SDK reads) |
//! | `cache` | compiled components on disk, keyed by content hash and engine settings |
//! | `inspect` | a component's imports/exports, checked against the `worker` world |
//! | `state` | the per-instance store data: WASI context, limits, call info |
//! | `imports` | host side of `wasi:logging`, `wasi:config`, `emit` |
//! | `keyvalue` | host side of `wasi:keyvalue` over the runtime's state store |
//! | `component` | [`WasmWorker`]: a fresh instance per call, or opt-in reuse |
//! | `errors` | wasmtime errors and traps → [`crate::ErrorKind`], in one place |
//!
//! # Isolation
//!
//! Each call gets a fresh instance from an `InstancePre` (pooling allocator:
//! ~20 µs on this kind of machine), so nothing in linear memory survives a
//! call. WASI is linked with an empty context: no preopened directories, no
//! sockets, no environment, no arguments; stdout and stderr are captured and
//! forwarded into `tracing` (stderr is attached to trap errors — that is
//! where a Rust guest's panic message goes).
//!
//! # Limits
//!
//! Timeout: the engine's epoch is bumped every 10 ms by a ticker thread and a
//! running guest yields to tokio at each tick, so the guard's timeout can drop
//! the call (at most ~one tick late). Memory: a `ResourceLimiter` refuses
//! growth past the worker's cap with a typed `ResourceLimit` error. Fuel:
//! optional, when the engine is built with fuel.

mod bindings;
mod cache;
mod component;
mod errors;
mod imports;
pub mod inspect;
mod keyvalue;
mod quota;
mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use component::WasmWorker;
pub use inspect::ComponentInfo;

use self::state::HostState;
use super::WorkerSpec;
use super::host::Services;
use crate::error::{Error, ErrorKind, Result};

/// What [`WasmEngine::inspect`] found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Imports and exports.
    pub info: ComponentInfo,
    /// `Ok` when the component fits the worker world, else why not.
    pub fits: std::result::Result<(), String>,
}

/// How often the epoch ticks: the granularity of timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Where a component comes from.
#[derive(Debug, Clone)]
pub enum WasmSource {
    /// A `.wasm` file.
    Path(PathBuf),
    /// Component bytes.
    Bytes(Bytes),
}

impl From<PathBuf> for WasmSource {
    fn from(p: PathBuf) -> Self {
        WasmSource::Path(p)
    }
}
impl From<&Path> for WasmSource {
    fn from(p: &Path) -> Self {
        WasmSource::Path(p.to_path_buf())
    }
}
impl From<&str> for WasmSource {
    /// A path to a `.wasm` file.
    fn from(p: &str) -> Self {
        WasmSource::Path(PathBuf::from(p))
    }
}
impl From<Bytes> for WasmSource {
    fn from(b: Bytes) -> Self {
        WasmSource::Bytes(b)
    }
}
impl From<Vec<u8>> for WasmSource {
    fn from(b: Vec<u8>) -> Self {
        WasmSource::Bytes(b.into())
    }
}

/// Engine settings, shared by every worker of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Component instances alive at once across all workers (pool size).
    /// Calls beyond it wait on the concurrency limits, so size it at least
    /// to the sum of the workers' `max_concurrent`. Default 1000.
    pub max_instances: u32,
    /// Largest linear memory any worker may be given, in bytes (the pool
    /// reserves address space per slot). Default 256 MiB.
    pub max_memory: usize,
    /// Linear memory kept resident (and reset by `pagemap_scan` where the
    /// kernel has it) when a slot is reused: the main lever on per-call cost.
    /// Default 2 MiB.
    pub keep_resident: usize,
    /// Directory for compiled components (`None`: no disk cache).
    pub cache_dir: Option<PathBuf>,
    /// Enables fuel metering (needed for `WorkerSpec::fuel`; ~10–30% slower).
    pub fuel: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_instances: 1000,
            max_memory: 256 << 20,
            keep_resident: 2 << 20,
            cache_dir: None,
            fuel: false,
        }
    }
}

impl EngineConfig {
    /// Sets the pool size.
    #[must_use]
    pub fn with_max_instances(mut self, n: u32) -> Self {
        self.max_instances = n;
        self
    }
    /// Sets the largest linear memory of any worker.
    #[must_use]
    pub fn with_max_memory(mut self, bytes: usize) -> Self {
        self.max_memory = bytes;
        self
    }
    /// Sets the compiled-component cache directory.
    #[must_use]
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }
    /// Enables fuel metering.
    #[must_use]
    pub fn with_fuel(mut self, fuel: bool) -> Self {
        self.fuel = fuel;
        self
    }
    /// Sets how much linear memory stays resident between uses of a slot.
    #[must_use]
    pub fn with_keep_resident(mut self, bytes: usize) -> Self {
        self.keep_resident = bytes;
        self
    }
}

struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// One wasmtime engine with its linker and compiled-component cache.
#[derive(Clone)]
pub struct WasmEngine {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    config: Arc<EngineConfig>,
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("config", &self.config)
            .finish()
    }
}

fn engine_error(e: wasmtime::Error) -> Error {
    Error::new(
        ErrorKind::Config,
        format!("cannot create the WebAssembly engine: {e:#}"),
    )
    .with_operation("wasm.engine")
}

impl WasmEngine {
    /// Creates the engine, its linker and the epoch ticker thread.
    pub fn new(config: EngineConfig) -> Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_instances.max(1);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(4))
            .total_memories(n)
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memory_size(config.max_memory)
            .linear_memory_keep_resident(config.keep_resident)
            .table_keep_resident(config.keep_resident)
            .pagemap_scan(Enabled::Auto);
        let mut wt = Config::new();
        wt.wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(config.fuel)
            .parallel_compilation(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wt).map_err(engine_error)?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        state::deny_capabilities(&mut linker).map_err(engine_error)?;
        bindings::Worker::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(engine_error)?;

        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = Arc::clone(&stop);
            let engine = engine.clone();
            std::thread::Builder::new()
                .name("multiagents-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| {
                    Error::new(ErrorKind::Unexpected, "cannot start the epoch ticker thread").with_source(e)
                })?;
        }
        Ok(WasmEngine {
            engine,
            linker: Arc::new(linker),
            config: Arc::new(config),
            _ticker: Arc::new(Ticker { stop }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Compiles (or loads from the disk cache) a component after checking
    /// its world. CPU-heavy work runs on the blocking pool.
    pub async fn compile(&self, name: &str, source: WasmSource) -> Result<Component> {
        let bytes = match source {
            WasmSource::Bytes(b) => b,
            WasmSource::Path(p) => tokio::fs::read(&p).await.map(Bytes::from).map_err(|e| {
                let kind = if e.kind() == std::io::ErrorKind::NotFound {
                    ErrorKind::NotFound
                } else {
                    ErrorKind::Unavailable
                };
                Error::new(kind, format!("cannot read component file {}", p.display()))
                    .with_operation("worker.register")
                    .with_context("worker", name)
                    .with_context("path", p.display())
                    .with_source(e)
            })?,
        };
        inspect::check_worker_world(name, &bytes)?;
        let engine = self.engine.clone();
        let cache_dir = self.config.cache_dir.clone();
        let name_owned = name.to_string();
        tokio::task::spawn_blocking(move || {
            cache::compile_cached(&engine, cache_dir.as_deref(), &name_owned, &bytes)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Unexpected, "compile task failed").with_source(e))?
    }

    /// Compiles a component and reports its imports/exports and whether it
    /// fits the `multiagents:worker` world (`fits: Err(reason)` if not).
    /// Not being a component at all is an `Err` of the call itself.
    pub async fn inspect(&self, source: WasmSource) -> Result<Inspection> {
        let component = self.compile("inspected", source).await?;
        let info = ComponentInfo::of(&self.engine, &component);
        let fits = self
            .linker
            .instantiate_pre(&component)
            .and_then(bindings::WorkerPre::new)
            .map(|_| ())
            .map_err(|e| {
                inspect::world_mismatch("inspected", &e, &info)
                    .message()
                    .to_string()
            });
        Ok(Inspection { info, fits })
    }

    /// Compiles and prepares a worker.
    pub(crate) async fn load(
        &self,
        name: &str,
        source: WasmSource,
        spec: WorkerSpec,
        services: Services,
    ) -> Result<WasmWorker> {
        if spec.memory_limit > self.config.max_memory {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "worker {name:?}: memory_limit {} exceeds the engine's max_memory {}",
                    spec.memory_limit, self.config.max_memory
                ),
            )
            .with_context("worker", name));
        }
        if spec.fuel.is_some() && !self.config.fuel {
            return Err(Error::new(
                ErrorKind::Config,
                format!("worker {name:?} sets fuel but the engine was built without fuel (EngineConfig::with_fuel)"),
            )
            .with_context("worker", name));
        }
        let component = self.compile(name, source).await?;
        WasmWorker::new(self, name, &component, spec, services)
    }

    /// Loads a worker outside any host (no guard, in-memory state, no
    /// events): for benchmarks that measure the bare call path.
    #[doc(hidden)]
    pub async fn load_unguarded(
        &self,
        name: &str,
        source: WasmSource,
        spec: WorkerSpec,
    ) -> Result<WasmWorker> {
        let services = Services {
            store: Arc::new(crate::store::MemoryStore::new()),
            events: None,
            profiler: crate::profile::Profiler::new(),
        };
        self.load(name, source, spec, services).await
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }
}
