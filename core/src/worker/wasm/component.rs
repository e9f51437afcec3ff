//! [`WasmWorker`]: a compiled component ready to serve calls, each in a
//! fresh instance (default) or in a reused one (opt-in, for hot stateless
//! workers).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use wasmtime::component::Component;
use wasmtime::{Engine, Store};

use super::WasmEngine;
use super::bindings::multiagents::worker::types::{CallInfo as WitCallInfo, WorkerError as WitWorkerError};
use super::bindings::{Worker as WitWorker, WorkerPre};
use super::errors::call_error;
use super::inspect::{ComponentInfo, world_mismatch};
use super::state::{HostState, WorkerEnv};
use crate::error::{Error, ErrorKind, Result};
use crate::worker::host::Services;
use crate::worker::{CallInfo, Worker, WorkerSpec};

/// Fuel slice between async yields when fuel metering is on.
const FUEL_YIELD_INTERVAL: u64 = 100_000;

struct Pooled {
    store: Store<HostState>,
    instance: WitWorker,
    calls: u32,
}

/// A registered WebAssembly worker.
pub struct WasmWorker {
    engine: Engine,
    fuel_enabled: bool,
    pre: WorkerPre<HostState>,
    env: Arc<WorkerEnv>,
    info: ComponentInfo,
    idle: Mutex<Vec<Pooled>>,
}

impl std::fmt::Debug for WasmWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmWorker")
            .field("name", &self.env.name)
            .field("info", &self.info)
            .finish()
    }
}

impl WasmWorker {
    pub(crate) fn new(
        engine: &WasmEngine,
        name: &str,
        component: &Component,
        spec: WorkerSpec,
        services: Services,
    ) -> Result<Self> {
        let info = ComponentInfo::of(engine.engine(), component);
        let instance_pre = engine
            .linker()
            .instantiate_pre(component)
            .map_err(|e| world_mismatch(name, &e, &info))?;
        let pre = WorkerPre::new(instance_pre).map_err(|e| world_mismatch(name, &e, &info))?;
        let namespace = spec.namespace.clone().unwrap_or_else(|| name.to_string());
        Ok(WasmWorker {
            engine: engine.engine().clone(),
            fuel_enabled: engine.config().fuel,
            pre,
            env: Arc::new(WorkerEnv {
                name: name.to_string(),
                spec,
                namespace,
                services,
                memory: Arc::default(),
                allowance: Default::default(),
            }),
            info,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The component's imports and exports.
    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }

    fn new_store(&self, call: &CallInfo) -> Result<Store<HostState>> {
        let mut store = Store::new(&self.engine, HostState::new(Arc::clone(&self.env), call.clone()));
        store.limiter(|s| &mut s.limiter);
        if self.fuel_enabled {
            let fuel = self.env.spec.fuel.unwrap_or(u64::MAX);
            store
                .set_fuel(fuel)
                .and_then(|()| store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL)))
                .map_err(|e| Error::new(ErrorKind::Unexpected, format!("cannot set fuel: {e:#}")))?;
        }
        Ok(store)
    }

    /// Arms the per-call settings of a store: yield to tokio at every epoch
    /// tick, so the guard's timeout can cancel a busy guest.
    fn arm(store: &mut Store<HostState>, call: &CallInfo) {
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let data = store.data_mut();
        data.call = call.clone();
        data.emitted = 0;
    }

    async fn instantiate(&self, call: &CallInfo) -> Result<Pooled> {
        let mut store = self.new_store(call)?;
        Self::arm(&mut store, call);
        match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => Ok(Pooled {
                store,
                instance,
                calls: 0,
            }),
            Err(e) => {
                let stderr = store.data_mut().drain_output();
                Err(call_error(&self.env.name, &e, &stderr, "worker.instantiate"))
            }
        }
    }

    /// The floor of a call: a fresh store and instance from the
    /// `InstancePre`, then `handle` — no limits, no output check, no guard.
    /// For benchmarks only.
    #[doc(hidden)]
    pub async fn call_bare(&self, call: &CallInfo, input: &[u8]) -> Result<Vec<u8>> {
        let mut store = Store::new(&self.engine, HostState::new(Arc::clone(&self.env), call.clone()));
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| call_error(&self.env.name, &e, "", "worker.instantiate"))?;
        let wit_call = WitCallInfo {
            transaction_id: call.transaction_id.clone(),
            workflow: call.workflow.clone(),
            step: call.step.clone(),
            attempt: call.attempt,
        };
        match instance.call_handle(&mut store, &wit_call, input).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(_)) => Err(Error::new(ErrorKind::Worker, "worker returned an error")),
            Err(e) => Err(call_error(&self.env.name, &e, "", "worker.invoke")),
        }
    }

    fn take_idle(&self) -> Option<Pooled> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn check_output(&self, output: Vec<u8>) -> Result<Bytes> {
        let spec = &self.env.spec;
        if output.len() > spec.max_output {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "worker output of {} bytes exceeds the limit of {} bytes",
                    output.len(),
                    spec.max_output
                ),
            )
            .with_context("worker", &self.env.name)
            .with_context("size", output.len())
            .with_context("max", spec.max_output));
        }
        if spec.check_output
            && let Err(why) = crate::codec::check_one_cbor_item(&output)
        {
            return Err(Error::new(ErrorKind::Codec, format!("worker output {why}"))
                .with_context("worker", &self.env.name)
                .with_context("len", output.len()));
        }
        Ok(Bytes::from(output))
    }
}

#[async_trait]
impl Worker for WasmWorker {
    fn memory_bytes(&self) -> Option<usize> {
        Some(self.env.memory.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn call(&self, call: &CallInfo, input: Bytes) -> Result<Bytes> {
        let spec = &self.env.spec;
        crate::validate::size("worker input", input.len(), spec.max_input)
            .map_err(|e| e.with_context("worker", &self.env.name))?;
        let mut pooled = match spec.reuse.and_then(|_| self.take_idle()) {
            Some(mut p) => {
                Self::arm(&mut p.store, call);
                p
            }
            None => {
                let profiler = &self.env.services.profiler;
                let started = profiler.start();
                let fresh = self.instantiate(call).await?;
                profiler.finish(crate::profile::Op::Instantiate, &self.env.name, started);
                fresh
            }
        };
        let wit_call = WitCallInfo {
            transaction_id: call.transaction_id.clone(),
            workflow: call.workflow.clone(),
            step: call.step.clone(),
            attempt: call.attempt,
        };
        let profiler = &self.env.services.profiler;
        let started = profiler.start();
        let result = pooled
            .instance
            .call_handle(&mut pooled.store, &wit_call, &input)
            .await;
        profiler.finish(crate::profile::Op::GuestRun, &self.env.name, started);
        let stderr = pooled.store.data_mut().drain_output();
        let name = &self.env.name;
        let outcome = match result {
            Ok(Ok(output)) => self.check_output(output),
            Ok(Err(WitWorkerError::Retryable(m))) => {
                Err(crate::worker::retryable(m).with_context("worker", name))
            }
            Ok(Err(WitWorkerError::Fatal(m))) => Err(crate::worker::fatal(m).with_context("worker", name)),
            Err(e) => return Err(call_error(name, &e, &stderr, "worker.invoke")),
        };
        // Reuse only instances whose call ended normally.
        if let Some(max) = spec.reuse {
            pooled.calls += 1;
            if outcome.is_ok() && pooled.calls < max {
                self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(pooled);
            }
        }
        outcome
    }
}
