//! The data of one instance's `Store`: WASI context (granting nothing),
//! resource table, memory limiter, and the call being served.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::super::host::Services;
use super::super::{CallInfo, WorkerSpec};

/// Most bytes of a guest's stdout/stderr kept per instance.
pub(crate) const OUTPUT_CAPTURE: usize = 64 * 1024;

/// What every instance of one worker shares.
pub(crate) struct WorkerEnv {
    pub(crate) name: String,
    pub(crate) spec: WorkerSpec,
    pub(crate) namespace: String,
    pub(crate) services: Services,
    /// Linear memory of this worker's live instances (running or pooled
    /// for reuse), in bytes: grown by [`Limiter`], given back when an
    /// instance's store is dropped.
    pub(crate) memory: Arc<AtomicUsize>,
    /// State quota this process has reserved in the namespace's usage
    /// record and not used yet (`super::quota::Allowance`).
    pub(crate) allowance: super::quota::Allowance,
}

/// The entry points of WASI capabilities the host never grants. A call to
/// one traps with [`CapabilityDenied`], which the host reports as
/// `PermissionDenied` naming the interface: the operator learns that the
/// worker *tried*, instead of the guest quietly seeing "not found".
const DENIED: &[(&str, &str, &str)] = &[
    (
        "wasi:filesystem/preopens@0.2.12",
        "get-directories",
        "the filesystem",
    ),
    (
        "wasi:sockets/instance-network@0.2.12",
        "instance-network",
        "the network",
    ),
    (
        "wasi:sockets/tcp-create-socket@0.2.12",
        "create-tcp-socket",
        "the network",
    ),
    (
        "wasi:sockets/udp-create-socket@0.2.12",
        "create-udp-socket",
        "the network",
    ),
    (
        "wasi:sockets/ip-name-lookup@0.2.12",
        "resolve-addresses",
        "the network",
    ),
];

/// A worker called a WASI function of a capability the host does not grant.
#[derive(Debug)]
pub(crate) struct CapabilityDenied {
    pub(crate) what: &'static str,
    pub(crate) import: String,
}

impl std::fmt::Display for CapabilityDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "worker tried to use {} ({}), which the host does not grant",
            self.what, self.import
        )
    }
}

impl std::error::Error for CapabilityDenied {}

/// Replaces the granted-nothing WASI entry points with trapping ones.
pub(crate) fn deny_capabilities(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    for (interface, func, what) in DENIED {
        let import = format!("{interface}#{func}");
        linker
            .instance(interface)?
            .func_new(func, move |_store, _ty, _params, _results| {
                Err(CapabilityDenied {
                    what,
                    import: import.clone(),
                }
                .into())
            })?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// The error a guest gets (as a trap) when it grows memory past its cap.
#[derive(Debug)]
pub(crate) struct MemoryLimitExceeded {
    pub(crate) desired: usize,
    pub(crate) limit: usize,
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "linear memory of {} bytes requested, the worker's limit is {} bytes",
            self.desired, self.limit
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

pub(crate) struct Limiter {
    memory_limit: usize,
    /// The worker's total ([`WorkerEnv::memory`]).
    total: Arc<AtomicUsize>,
    /// This instance's share of it.
    own: usize,
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.total.fetch_sub(self.own, Ordering::Relaxed);
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(MemoryLimitExceeded {
                desired,
                limit: self.memory_limit,
            }
            .into());
        }
        // The engine says how big the memory really is (`current`): a
        // growth counted last time that the engine then failed (past the
        // module's maximum or the pool's capacity) is taken back here, so
        // a guest retrying a failing `memory.grow` cannot inflate the count.
        // (One linear memory per instance, as compiled guests have.)
        if self.own > current {
            self.total.fetch_sub(self.own - current, Ordering::Relaxed);
        } else {
            self.total.fetch_add(current - self.own, Ordering::Relaxed);
        }
        self.total
            .fetch_add(desired.saturating_sub(current), Ordering::Relaxed);
        self.own = desired.max(current);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Store data of one instance.
pub(crate) struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) env: Arc<WorkerEnv>,
    pub(crate) call: CallInfo,
    pub(crate) emitted: u32,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
    /// Bytes of stdout/stderr already forwarded to `tracing` (reuse mode).
    pub(crate) forwarded: (usize, usize),
}

impl HostState {
    pub(crate) fn new(env: Arc<WorkerEnv>, call: CallInfo) -> Self {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPTURE);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPTURE);
        // No preopens, no network, no env, no args, stdin at EOF.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_limit: env.spec.memory_limit,
                total: Arc::clone(&env.memory),
                own: 0,
            },
            env,
            call,
            emitted: 0,
            stdout,
            stderr,
            forwarded: (0, 0),
        }
    }

    /// Forwards new guest stdout/stderr to `tracing`; returns the stderr
    /// written since the last call (for trap reports).
    pub(crate) fn drain_output(&mut self) -> String {
        let out = self.stdout.contents();
        let err = self.stderr.contents();
        let new_out = out.get(self.forwarded.0..).unwrap_or_default();
        let new_err = err.get(self.forwarded.1..).unwrap_or_default();
        let worker = self.env.name.as_str();
        for line in String::from_utf8_lossy(new_out).lines() {
            tracing::info!(target: "multiagents::worker::stdout", worker, tx = %self.call.transaction_id, "{line}");
        }
        let stderr = String::from_utf8_lossy(new_err).into_owned();
        for line in stderr.lines() {
            tracing::warn!(target: "multiagents::worker::stderr", worker, tx = %self.call.transaction_id, "{line}");
        }
        self.forwarded = (out.len(), err.len());
        stderr
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
