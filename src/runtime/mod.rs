//! [`Runtime`]: a transport, a (cached) state store, a worker host and an
//! orchestrator, put together — from code with [`Runtime::builder`] or from
//! a config file with [`Runtime::from_config`].
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//! use multiagents::Runtime;
//! use multiagents::worker::WorkerSpec;
//! use multiagents::workflow::{StepDef, WorkflowDef};
//!
//! # #[tokio::main] async fn main() -> multiagents::Result<()> {
//! let runtime = Runtime::builder()
//!     .worker_wasm("validate-order", Path::new("target/workers/out/validate-order.wasm"), WorkerSpec::default())
//!     .workflow(WorkflowDef::builder("check").step(StepDef::new("validate", "validate-order")).build())
//!     .build()
//!     .await?;
//! let tx = runtime.execute("check", serde_json::json!({"id": "o-1"})).await?;
//! let done = runtime.wait(&tx, Duration::from_secs(10)).await?;
//! println!("{} {}", done.tx, done.status);
//! runtime.shutdown(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use multiagents_core::orchestrator::{
    AttemptRecord, Event, Orchestrator, OrchestratorConfig, SagaPage, SagaSnapshot, TransactionId,
};
use multiagents_core::profile::Profiler;
use multiagents_core::worker::wasm::{EngineConfig, WasmSource};
use multiagents_core::worker::{Worker, WorkerHost, WorkerSpec};
use multiagents_core::workflow::WorkflowDef;
use multiagents_core::{
    CacheConfig, CacheStats, CachedStore, Error, QueueDepth, Result, StateStore, Subscription, Transport,
};

use crate::backend;
use crate::config::Config;

mod memory;
mod profile;

use memory::MemorySetting;
pub use multiagents_core::resilience::{MemoryGuard, MemoryGuardConfig};
use profile::ProfileSettings;

type Register = Box<dyn FnOnce(&WorkerHost) -> Result<()> + Send>;

enum PendingWorker {
    Wasm {
        name: String,
        source: WasmSource,
        spec: Box<WorkerSpec>,
    },
    Native(Register),
}

enum Backend<T: ?Sized> {
    Given(Arc<T>),
    Url(String),
}

/// Builds a [`Runtime`]. Defaults: `memory://` transport and store, the
/// default cache in front of the store, default engine and orchestrator
/// settings.
pub struct RuntimeBuilder {
    transport: Backend<dyn Transport>,
    store: Backend<dyn StateStore>,
    cache: Option<CacheConfig>,
    engine: EngineConfig,
    config: OrchestratorConfig,
    workers: Vec<PendingWorker>,
    workflows: Vec<WorkflowDef>,
    client: bool,
    memory: MemorySetting,
    profile: bool,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("config", &self.config)
            .field("workers", &self.workers.len())
            .field("workflows", &self.workflows.len())
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// Uses `transport` for commands, results and events.
    #[must_use]
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Backend::Given(transport);
        self
    }

    /// Opens the transport named by `url` at build (see [`backend`]).
    #[must_use]
    pub fn transport_url(mut self, url: impl Into<String>) -> Self {
        self.transport = Backend::Url(url.into());
        self
    }

    /// Uses `store` for saga and worker state (the cache goes in front,
    /// unless it is the in-memory store: see [`cache`](Self::cache)).
    #[must_use]
    pub fn store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Backend::Given(store);
        self
    }

    /// Opens the store named by `url` at build (see [`backend`]).
    #[must_use]
    pub fn store_url(mut self, url: impl Into<String>) -> Self {
        self.store = Backend::Url(url.into());
        self
    }

    /// The cache in front of the store; `None` for no cache. The in-memory
    /// store gets none whatever this says: it is in memory already, and a
    /// cache in front of it only copies each write (it cost 15% of the
    /// in-memory e2e throughput with instance reuse, BENCHMARKS.md).
    #[must_use]
    pub fn cache(mut self, cache: Option<CacheConfig>) -> Self {
        self.cache = cache;
        self
    }

    /// WebAssembly engine settings.
    #[must_use]
    pub fn engine(mut self, engine: EngineConfig) -> Self {
        self.engine = engine;
        self
    }

    /// Orchestrator settings (prefix, retention, input cap).
    #[must_use]
    pub fn config(mut self, config: OrchestratorConfig) -> Self {
        self.config = config;
        self
    }

    /// Registers a WebAssembly component (a path or bytes) as worker `name`.
    #[must_use]
    pub fn worker_wasm(
        mut self,
        name: impl Into<String>,
        source: impl Into<WasmSource>,
        spec: WorkerSpec,
    ) -> Self {
        self.workers.push(PendingWorker::Wasm {
            name: name.into(),
            source: source.into(),
            spec: Box::new(spec),
        });
        self
    }

    /// Registers a native Rust worker as `name` (only `spec.guard` applies).
    #[must_use]
    pub fn worker_native(mut self, name: impl Into<String>, worker: impl Worker, spec: WorkerSpec) -> Self {
        let name = name.into();
        self.workers
            .push(PendingWorker::Native(Box::new(move |host: &WorkerHost| {
                host.register_native(&name, worker, spec)
            })));
        self
    }

    /// Adds a workflow (validated against the workers at build).
    ///
    /// A serving runtime built with none only runs steps
    /// ([`Orchestrator::start_workers`]): it takes its workers' commands,
    /// no results or timers, opens a URL's store as a client's, and
    /// refuses a workflow registered on its orchestrator later.
    #[must_use]
    pub fn workflow(mut self, def: WorkflowDef) -> Self {
        self.workflows.push(def);
        self
    }

    /// Builds a client of the instances serving the backend instead
    /// ([`Orchestrator::connect`]): it submits, reads, cancels and watches
    /// transactions but takes no work, and loads no worker (the workers
    /// given are ignored; workflows are checked for shape only).
    #[must_use]
    pub fn client(mut self) -> Self {
        self.client = true;
        self
    }

    /// Sheds load near the memory limit (on by default for a serving
    /// runtime, off for a [`client`](Self::client), with
    /// [`MemoryGuardConfig::default`]): `config` sets the thresholds,
    /// `limit` the bytes they are fractions of (default: the cgroup's
    /// limit, else the machine's memory). `None` turns the guard off. See
    /// [`Orchestrator::guard_memory`] for what shedding does.
    #[must_use]
    pub fn memory(mut self, config: Option<MemoryGuardConfig>, limit: Option<u64>) -> Self {
        self.memory = match config {
            Some(config) => MemorySetting::Process { config, limit },
            None => MemorySetting::Off,
        };
        self
    }

    /// Uses `guard` (with a probe of the caller's) as the memory guard.
    #[must_use]
    pub fn memory_guard(mut self, guard: Arc<MemoryGuard>) -> Self {
        self.memory = MemorySetting::Given(guard);
        self
    }

    /// Opens the backends, registers the workers, starts the orchestrator
    /// and registers the workflows.
    ///
    /// # Errors
    /// `Config` for a bad backend URL, worker spec or workflow (naming it);
    /// the worker host's errors for a component that cannot be loaded.
    pub async fn build(self) -> Result<Runtime> {
        // What the runtime opens from a URL it closes at shutdown; what it
        // was given belongs to the caller.
        let owns = Owns {
            transport: matches!(self.transport, Backend::Url(_)),
            store: matches!(self.store, Backend::Url(_)),
        };
        let transport = match self.transport {
            Backend::Given(t) => t,
            Backend::Url(url) => backend::transport(&url).await?,
        };
        // A client runs no work: nothing of it to profile.
        let profiler = (self.profile && !self.client).then(Profiler::enabled_now);
        let local_dispatch = self.config.local_dispatch;
        let raw_store = match self.store {
            Backend::Given(s) => s,
            // An instance without a workflow advances nothing, so it
            // takes no share of the store's work either: on Kafka, the
            // owner of a partition claims its timers, and such an
            // instance would never claim them.
            Backend::Url(url) if self.client || self.workflows.is_empty() => {
                backend::client_store(&url).await?
            }
            Backend::Url(url) => backend::store(&url).await?,
        };
        let in_memory = raw_store.capabilities().name == "memory";
        let (store, cache): (Arc<dyn StateStore>, _) = match self.cache {
            Some(_) if in_memory => (raw_store, None),
            Some(config) => {
                // Transaction states stay out: the orchestrator keeps the
                // last one it wrote decoded, and reads the store otherwise.
                let config = config.with_uncached_prefix(self.config.saga_key_prefix());
                let cached = CachedStore::new(raw_store, config)?;
                (Arc::new(cached.clone()), Some(cached))
            }
            None => (raw_store, None),
        };
        let timed = profile::wrap(profiler.as_ref(), &transport, &store);
        let orchestrator = if self.client {
            let orchestrator = Orchestrator::connect(transport.clone(), store.clone(), self.config).await?;
            for def in self.workflows {
                orchestrator.register_workflow(def)?;
            }
            orchestrator
        } else {
            Self::serve(
                timed,
                (transport.clone(), store.clone()),
                profiler,
                self.engine,
                self.workers,
                self.workflows,
                self.config,
            )
            .await?
        };
        let host = orchestrator.host().clone();
        let facts = ProfileSettings {
            built: self.profile && !self.client,
            cache: cache.is_some(),
            local_dispatch,
        };
        // A client runs no work: its own memory is no reason to refuse a
        // submission to the cluster (unless it was given a guard).
        let setting = match self.memory {
            MemorySetting::Process { .. } if self.client => MemorySetting::Off,
            other => other,
        };
        let memory = match memory::install(setting, &orchestrator, cache.as_ref()) {
            Ok(guard) => guard,
            Err(e) => {
                orchestrator.shutdown(Duration::from_secs(1)).await;
                return Err(e);
            }
        };
        Ok(Runtime {
            inner: Arc::new(Inner {
                orchestrator,
                transport,
                store,
                cache,
                host,
                owns,
                memory,
                profile: facts,
            }),
        })
    }

    /// Loads the workers, then starts a serving orchestrator with the
    /// workflows. The orchestrator gets the `timed` backends; the worker
    /// host the `plain` ones (with a profiler, it times each worker's calls
    /// itself).
    async fn serve(
        (transport, store): (Arc<dyn Transport>, Arc<dyn StateStore>),
        plain: (Arc<dyn Transport>, Arc<dyn StateStore>),
        profiler: Option<Profiler>,
        engine: EngineConfig,
        workers: Vec<PendingWorker>,
        workflows: Vec<WorkflowDef>,
        config: OrchestratorConfig,
    ) -> Result<Orchestrator> {
        let mut host = WorkerHost::builder()
            .engine(engine)
            .store(plain.1)
            .events(plain.0);
        if let Some(p) = profiler {
            host = host.profiler(p);
        }
        let host = host.build()?;
        for worker in workers {
            match worker {
                PendingWorker::Wasm { name, source, spec } => {
                    host.register_wasm(&name, source, *spec).await.map_err(|e| {
                        // Most of the host's errors name the worker already:
                        // said once, not three times over.
                        if e.context_value("worker") == Some(name.as_str()) {
                            return e;
                        }
                        let why = format!("worker {name:?}: {}", e.message());
                        Error::new(e.kind(), why)
                            .with_context("worker", &name)
                            .with_source(e)
                    })?
                }
                PendingWorker::Native(register) => register(&host)?,
            }
        }
        // Validate before starting, so a bad definition starts nothing.
        for def in &workflows {
            def.validate(&|w| host.contains(w))?;
        }
        // Without a workflow this instance only adds worker capacity: a
        // result it took could only be handed back to one that knows it.
        let orchestrator = if workflows.is_empty() {
            Orchestrator::start_workers(transport, store, host, config).await?
        } else {
            Orchestrator::start(transport, store, host, config).await?
        };
        for def in workflows {
            if let Err(e) = orchestrator.register_workflow(def) {
                orchestrator.shutdown(Duration::from_secs(1)).await;
                return Err(e);
            }
        }
        Ok(orchestrator)
    }
}

struct Inner {
    orchestrator: Orchestrator,
    transport: Arc<dyn Transport>,
    store: Arc<dyn StateStore>,
    cache: Option<CachedStore<Arc<dyn StateStore>>>,
    host: WorkerHost,
    owns: Owns,
    memory: Option<Arc<MemoryGuard>>,
    profile: ProfileSettings,
}

/// Which backends the runtime opened itself (and so closes).
#[derive(Debug, Clone, Copy)]
struct Owns {
    transport: bool,
    store: bool,
}

/// A running multiagents instance. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.inner.host.names())
            .field("workflows", &self.workflows())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A builder with the defaults (`memory://` backends, default cache).
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            transport: Backend::Url(backend::MEMORY_URL.into()),
            store: Backend::Url(backend::MEMORY_URL.into()),
            cache: Some(CacheConfig::default()),
            engine: EngineConfig::default(),
            config: OrchestratorConfig::default(),
            workers: Vec::new(),
            workflows: Vec::new(),
            client: false,
            memory: MemorySetting::default(),
            profile: false,
        }
    }

    /// Loads `path` (see [`Config::load`]) and builds the runtime it
    /// describes.
    pub async fn from_config(path: impl AsRef<Path>) -> Result<Runtime> {
        let config = Config::load(path)?;
        Self::from_config_struct(config).await
    }

    /// Builds the runtime `config` describes (validated first).
    pub async fn from_config_struct(config: Config) -> Result<Runtime> {
        config.validate()?;
        Self::builder_from_config(&config)?.build().await
    }

    /// A builder preset from `config`, to add native workers or more
    /// workflows before [`build`](RuntimeBuilder::build).
    pub fn builder_from_config(config: &Config) -> Result<RuntimeBuilder> {
        let mut b = Runtime::builder()
            .transport_url(config.transport.url.clone())
            .store_url(config.store.url.clone())
            .cache(config.cache.cache_config())
            .engine(config.engine.engine_config())
            .config(
                config
                    .runtime
                    .orchestrator_config()
                    .with_local_dispatch(config.engine.local_dispatch)
                    .with_guard_slack(config.engine.guard_slack),
            )
            .memory(config.memory.guard_config(), config.memory.limit_bytes())
            .profile(config.profile.enabled);
        for (name, worker) in &config.workers {
            b = b.worker_wasm(name.clone(), PathBuf::from(&worker.path), worker.spec());
        }
        for def in config.workflow_defs()? {
            b = b.workflow(def);
        }
        Ok(b)
    }

    /// Starts a transaction of `workflow`; `input` (a JSON object) is the
    /// initial context.
    ///
    /// # Errors
    /// `NotFound` for an unknown workflow, `InvalidInput` for an input that
    /// is not an object, `TooLarge` above `runtime.max_input`, `Closed`
    /// after shutdown.
    pub async fn execute(&self, workflow: &str, input: serde_json::Value) -> Result<TransactionId> {
        self.inner.orchestrator.execute(workflow, input).await
    }

    /// [`execute`](Self::execute) within the caller's trace: `parent` is
    /// the W3C `traceparent` it received (parse one with `str::parse`);
    /// every span of the transaction, on every instance, joins that trace.
    pub async fn execute_in_trace(
        &self,
        workflow: &str,
        input: serde_json::Value,
        parent: Option<multiagents_core::trace::TraceParent>,
    ) -> Result<TransactionId> {
        self.inner
            .orchestrator
            .execute_in_trace(workflow, input, parent)
            .await
    }

    /// The depth of every queue this instance consumes, as
    /// `(topic, group, depth)`, asked of the transport all at once; `None`
    /// when the answers do not all come `within`. Queues the transport
    /// cannot tell (or fails to) are left out.
    pub async fn queue_depths(&self, within: Duration) -> Option<Vec<(String, String, QueueDepth)>> {
        let queues = self.inner.orchestrator.queues();
        let transport = &self.inner.transport;
        let asks = queues
            .iter()
            .map(|(topic, group)| transport.queue_depth(topic, group));
        let answers = tokio::time::timeout(within, futures_util::future::join_all(asks))
            .await
            .ok()?;
        let mut depths = Vec::with_capacity(queues.len());
        for ((topic, group), answer) in queues.into_iter().zip(answers) {
            match answer {
                Ok(Some(depth)) => depths.push((topic, group, depth)),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, topic, "cannot read a queue's depth"),
            }
        }
        Some(depths)
    }

    /// The memory guard (unless turned off): its level and last reading.
    pub fn memory_guard(&self) -> Option<&Arc<MemoryGuard>> {
        self.inner.memory.as_ref()
    }

    /// Waits until `tx` is final, at most `timeout` (`Timeout` otherwise).
    pub async fn wait(&self, tx: &TransactionId, timeout: Duration) -> Result<SagaSnapshot> {
        self.inner.orchestrator.wait(tx, timeout).await
    }

    /// `execute` then `wait`.
    pub async fn run(
        &self,
        workflow: &str,
        input: serde_json::Value,
        timeout: Duration,
    ) -> Result<SagaSnapshot> {
        let tx = self.execute(workflow, input).await?;
        self.wait(&tx, timeout).await
    }

    /// The state of `tx`, with its history (`NotFound` if unknown or expired).
    pub async fn status(&self, tx: &TransactionId) -> Result<SagaSnapshot> {
        self.inner.orchestrator.status(tx).await
    }

    /// Every attempt of every step of `tx`, in order.
    pub async fn history(&self, tx: &TransactionId) -> Result<Vec<AttemptRecord>> {
        Ok(self.status(tx).await?.history)
    }

    /// Cancels `tx`: its completed steps are compensated, newest first.
    /// `InvalidInput` if it has already ended.
    pub async fn cancel(&self, tx: &TransactionId) -> Result<()> {
        self.inner.orchestrator.cancel(tx).await
    }

    /// A page of transactions (without history).
    pub async fn list(&self, cursor: Option<&str>, limit: usize) -> Result<SagaPage> {
        self.inner.orchestrator.list(cursor, limit).await
    }

    /// Lifecycle events (`workflow.*`, `step.*`, `compensation.*`, and
    /// `instance.*` when a memory guard changes level), decoded.
    pub async fn events(&self) -> Result<EventStream> {
        Ok(EventStream {
            inner: self.inner.orchestrator.events().await?,
        })
    }

    /// Registered workflow names, sorted.
    pub fn workflows(&self) -> Vec<String> {
        self.inner.orchestrator.workflows()
    }

    /// Registered worker names, sorted.
    pub fn workers(&self) -> Vec<String> {
        self.inner.host.names()
    }

    /// The orchestrator.
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.inner.orchestrator
    }

    /// The worker host (statistics per worker).
    pub fn host(&self) -> &WorkerHost {
        &self.inner.host
    }

    /// The transport (to subscribe to topics workers emit to).
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner.transport
    }

    /// The state store, behind the cache when there is one.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.inner.store
    }

    /// The cache's counters, when there is a cache.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.inner.cache.as_ref().map(CachedStore::stats)
    }

    /// Graceful shutdown: stops intake, lets in-flight work finish (at most
    /// `deadline`; the rest is redelivered to other instances on a shared
    /// backend), stops the loops, flushes write-behind cache writes, then
    /// closes the backends it opened from URLs (not those it was given).
    /// When it returns, none of the runtime's tasks runs any more.
    pub async fn shutdown(&self, deadline: Duration) -> Result<()> {
        let inner = &self.inner;
        inner.orchestrator.shutdown(deadline).await;
        // The cache's pending writes go out even when the store behind it
        // is the caller's (then only the cache stops).
        // Both at once: each waits for its backend's last words.
        let flushed = async {
            match (&inner.cache, inner.owns.store) {
                (_, true) => inner.store.close().await,
                (Some(cache), false) => cache.shutdown().await,
                (None, false) => Ok(()),
            }
        };
        let closed = async {
            match inner.owns.transport {
                true => inner.transport.close().await,
                false => Ok(()),
            }
        };
        let (flushed, closed) = tokio::join!(flushed, closed);
        flushed.and(closed)
    }
}

/// Decoded lifecycle events; see [`Runtime::events`].
#[derive(Debug)]
pub struct EventStream {
    inner: Subscription,
}

impl EventStream {
    /// The next event; `None` when the subscription ends. An undecodable
    /// payload is a `Codec` error (the stream goes on).
    pub async fn next(&mut self) -> Option<Result<Event>> {
        let delivery = match self.inner.next().await? {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        Some(Event::decode(delivery.payload()))
    }

    /// The raw subscription.
    pub fn into_inner(self) -> Subscription {
        self.inner
    }
}
