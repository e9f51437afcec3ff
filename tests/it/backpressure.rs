//! A worker that refuses a run for now is backpressure, not failure: the
//! command is handed back and the attempt is not spent (memory backend; the
//! mechanism is the executor's, the same on every transport).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use multiagents::orchestrator::{Orchestrator, OrchestratorConfig, SagaStatus};
use multiagents::resilience::{BreakerConfig, GuardConfig};
use multiagents::worker::{CallInfo, WorkerHost, WorkerSpec, native, retryable};
use multiagents::workflow::{RetryPolicy, StepDef, WorkflowDef};
use multiagents::{MemoryStore, MemoryTransport};
use serde_json::json;

fn empty_map() -> Bytes {
    Bytes::from_static(&[0xa0])
}

/// Runs per transaction.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<String, u32>>>);

impl Runs {
    fn bump(&self, call: &CallInfo) {
        *self
            .0
            .lock()
            .expect("runs")
            .entry(call.transaction_id.clone())
            .or_default() += 1;
    }
    fn total(&self) -> u32 {
        self.0.lock().expect("runs").values().sum()
    }
}

async fn orchestrator(host: WorkerHost, workflows: Vec<WorkflowDef>) -> Orchestrator {
    let orch = Orchestrator::start(
        Arc::new(MemoryTransport::new()),
        Arc::new(MemoryStore::new()),
        host,
        OrchestratorConfig::default(),
    )
    .await
    .expect("start");
    for wf in workflows {
        orch.register_workflow(wf).expect("workflow");
    }
    orch
}

/// Two workers share a runtime-wide limit of one call and no queue, and no
/// step may retry: every refusal (`Overloaded`) must come back, not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_worker_hands_commands_back_without_spending_attempts() {
    let host = WorkerHost::builder().global_limit(1, 0).build().expect("host");
    let runs = Runs::default();
    for name in ["x", "y"] {
        let runs = runs.clone();
        let worker = native(move |call: CallInfo, _input: Bytes| {
            let runs = runs.clone();
            async move {
                runs.bump(&call);
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(empty_map())
            }
        });
        let guard = GuardConfig::default().with_breaker(None);
        host.register_native(name, worker, WorkerSpec::default().with_guard(guard))
            .expect("register");
    }
    let wf = |name: &str| {
        WorkflowDef::builder(name)
            .step(StepDef::new("only", name).retry(RetryPolicy::none()))
            .build()
    };
    let orch = orchestrator(host, vec![wf("x"), wf("y")]).await;
    let mut txs = Vec::new();
    for i in 0..40 {
        let wf = if i % 2 == 0 { "x" } else { "y" };
        txs.push(orch.execute(wf, json!({})).await.expect("execute"));
    }
    for tx in &txs {
        let snap = orch.wait(tx, Duration::from_secs(20)).await.expect("wait");
        assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
        assert_eq!(snap.history.len(), 1, "one attempt: {snap:?}");
    }
    assert_eq!(runs.total(), 40, "each step ran once");
}

/// A worker fails its first three calls; its breaker (threshold 3) opens.
/// Commands that meet the open breaker wait for it instead of failing, so
/// with two attempts per step every transaction completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_hands_commands_back_until_it_closes() {
    let host = WorkerHost::builder().build().expect("host");
    let runs = Runs::default();
    let calls = Arc::new(AtomicU32::new(0));
    let worker = {
        let (runs, calls) = (runs.clone(), calls.clone());
        native(move |call: CallInfo, _input: Bytes| {
            let (runs, calls) = (runs.clone(), calls.clone());
            async move {
                runs.bump(&call);
                if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                    return Err(retryable("warming up"));
                }
                Ok(empty_map())
            }
        })
    };
    let breaker = BreakerConfig::default()
        .with_failure_threshold(3)
        .with_cool_down(Duration::from_millis(200));
    let guard = GuardConfig::default()
        .with_breaker(Some(breaker))
        .with_max_concurrent(1);
    host.register_native("z", worker, WorkerSpec::default().with_guard(guard))
        .expect("register");
    let wf = WorkflowDef::builder("z")
        // Retries wait 100 ms: the three failures are three transactions' first attempts.
        .step(
            StepDef::new("only", "z")
                .retry(RetryPolicy::attempts(2, Duration::from_millis(100)).without_jitter()),
        )
        .build();
    let orch = orchestrator(host, vec![wf]).await;
    let mut txs = Vec::new();
    for _ in 0..10 {
        txs.push(orch.execute("z", json!({})).await.expect("execute"));
    }
    for tx in &txs {
        let snap = orch.wait(tx, Duration::from_secs(20)).await.expect("wait");
        assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
    }
    // Three failed runs, then one good run per transaction.
    assert_eq!(runs.total(), 13);
}
