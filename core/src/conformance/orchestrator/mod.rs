//! The orchestrator suite: sagas, compensation, conditions, retries,
//! timeouts, cancel, duplicated results, two instances sharing the work
//! (each step once) and an instance gone mid-step, run with native workers
//! that record what ran, over a backend [`Site`].
//!
//! A backend crate stamps it with
//! [`orchestrator_conformance!`](crate::orchestrator_conformance), giving a
//! [`Site`]: where instances connect (each [`connect`](Site::connect) is a
//! new transport and store, as another process would open) and how to get
//! a fresh, empty namespace on the same backend.
//!
//! The helpers ([`Journal`], [`Behave`], [`register`], [`rig_on`]) are
//! public for tests of a host crate that need the same workers.

mod instances;
mod sagas;
mod traces;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Value, json};

pub use instances::*;
pub use sagas::*;
pub use traces::*;

use crate::MemoryTransportConfig;
use crate::orchestrator::{Orchestrator, OrchestratorConfig, TransactionId};
use crate::resilience::GuardConfig;
use crate::worker::{CallInfo, WorkerHost, WorkerSpec, fatal, native, retryable};
use crate::workflow::{RetryPolicy, StepDef, WorkflowDef};
use crate::{MemoryStore, MemoryTransport, StateStore, Transport};

/// How long a behaviour waits for a transaction to end.
pub const WAIT: Duration = Duration::from_secs(10);

/// A backend namespace the suite's instances connect to.
#[async_trait]
pub trait Site: Send + Sync {
    /// A new transport and store on this namespace: new connections for a
    /// server backend (as a second process would open), the same objects
    /// for an in-process one.
    async fn connect(&self) -> (Arc<dyn Transport>, Arc<dyn StateStore>);

    /// A new, empty namespace on the same backend; its transport's ack
    /// timeout is `ack_timeout` when given.
    async fn fresh(&self, ack_timeout: Option<Duration>) -> Box<dyn Site>;
}

/// The in-memory backends as a [`Site`].
pub struct MemorySite {
    transport: Arc<MemoryTransport>,
    store: Arc<MemoryStore>,
}

impl MemorySite {
    /// Fresh in-memory backends, with `ack_timeout` for the transport.
    pub fn new(ack_timeout: Option<Duration>) -> MemorySite {
        let mut config = MemoryTransportConfig::default();
        if let Some(ack) = ack_timeout {
            config = config.with_ack_timeout(ack);
        }
        MemorySite {
            transport: Arc::new(MemoryTransport::with_config(config)),
            store: Arc::new(MemoryStore::new()),
        }
    }
}

#[async_trait]
impl Site for MemorySite {
    async fn connect(&self) -> (Arc<dyn Transport>, Arc<dyn StateStore>) {
        (self.transport.clone(), self.store.clone())
    }

    async fn fresh(&self, ack_timeout: Option<Duration>) -> Box<dyn Site> {
        Box::new(MemorySite::new(ack_timeout))
    }
}

/// What ran, in order: `"<worker>:<tx>"`.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, s: String) {
        if let Ok(mut entries) = self.0.lock() {
            entries.push(s);
        }
    }

    /// The workers that ran for `tx`, in order.
    pub fn for_tx(&self, tx: &TransactionId) -> Vec<String> {
        let suffix = format!(":{tx}");
        self.0
            .lock()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e.ends_with(&suffix))
                    .map(|e| e.trim_end_matches(&suffix).to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How often each `"<worker>:<tx>"` ran.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        if let Ok(entries) = self.0.lock() {
            for e in entries.iter() {
                *m.entry(e.clone()).or_default() += 1;
            }
        }
        m
    }
}

/// How a test worker behaves.
#[derive(Clone, Copy, Debug)]
pub enum Behave {
    /// Returns `{"<name>": true}`.
    Ok,
    /// Fatal error.
    Fail,
    /// Retryable error for the first `n` attempts, then ok.
    FlakyUntil(u32),
    /// Sleeps that many milliseconds, then ok.
    Slow(u64),
    /// Records `"<name>-started"`, then never returns (a worker stuck
    /// inside an instance that goes away).
    Stuck,
}

fn cbor(v: &Value) -> Bytes {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("cbor");
    out.into()
}

/// Registers worker `name` behaving `how` on `host`, recording in `journal`.
pub fn register(host: &WorkerHost, journal: &Journal, name: &'static str, how: Behave) {
    let journal = journal.clone();
    let worker = native(move |call: CallInfo, _input: Bytes| {
        let journal = journal.clone();
        async move {
            match how {
                Behave::Ok => {}
                Behave::Fail => return Err(fatal(format!("{name} says no"))),
                Behave::FlakyUntil(n) if call.attempt <= n => {
                    return Err(retryable(format!("{name} flaked")));
                }
                Behave::FlakyUntil(_) => {}
                Behave::Slow(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Behave::Stuck => {
                    journal.push(format!("{name}-started:{}", call.transaction_id));
                    std::future::pending::<()>().await;
                }
            }
            journal.push(format!("{name}:{}", call.transaction_id));
            Ok(cbor(&json!({ name: true })))
        }
    });
    let guard = GuardConfig::default().with_breaker(None);
    host.register_native(name, worker, WorkerSpec::default().with_guard(guard))
        .expect("register");
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::attempts(attempts, Duration::from_millis(5)).without_jitter()
}

/// An orchestrator with recording workers.
pub struct Rig {
    /// The instance.
    pub orch: Orchestrator,
    /// What its workers ran.
    pub journal: Journal,
}

/// An instance on `transport` and `store` with `workers` (recording into
/// `journal`) and `workflows` registered.
pub async fn rig_on(
    transport: Arc<dyn Transport>,
    store: Arc<dyn StateStore>,
    workers: &[(&'static str, Behave)],
    workflows: Vec<WorkflowDef>,
    journal: Journal,
) -> Rig {
    let host = WorkerHost::builder().build().expect("host");
    for (name, how) in workers {
        register(&host, &journal, name, *how);
    }
    let orch = Orchestrator::start(transport, store, host, OrchestratorConfig::default())
        .await
        .expect("start");
    for wf in workflows {
        orch.register_workflow(wf).expect("workflow");
    }
    Rig { orch, journal }
}

/// A rig on a new connection to `site`.
async fn rig(site: &dyn Site, workers: &[(&'static str, Behave)], workflows: Vec<WorkflowDef>) -> Rig {
    let (transport, store) = site.connect().await;
    rig_on(transport, store, workers, workflows, Journal::default()).await
}

/// a (undo-a) → b (undo-b) → c (undo-c)
fn abc() -> WorkflowDef {
    let step = |name: &str| {
        StepDef::new(name, name)
            .compensate_with(format!("undo-{name}"))
            .retry(fast_retry(1))
    };
    WorkflowDef::builder("abc")
        .step(step("a"))
        .step(step("b"))
        .step(step("c"))
        .build()
}

fn workers_with(fail: &str) -> Vec<(&'static str, Behave)> {
    ["a", "b", "c", "undo-a", "undo-b", "undo-c"]
        .into_iter()
        .map(|w| (w, if w == fail { Behave::Fail } else { Behave::Ok }))
        .collect()
}
