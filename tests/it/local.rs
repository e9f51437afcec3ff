//! Local dispatch on the in-memory transport: the instance that writes a
//! dispatch runs the step itself (no command, no result on the queues)
//! when it can; otherwise, or with `local_dispatch` off, through the queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use multiagents::orchestrator::{Orchestrator, OrchestratorConfig, SagaStatus};
use multiagents::worker::WorkerHost;
use multiagents::workflow::{StepDef, WorkflowDef};
use multiagents::{
    Envelope, MemoryStore, MemoryTransport, Result, SubscribeMode, SubscribeOptions, Subscription, Transport,
};
use serde_json::json;

use multiagents_core::conformance::orchestrator::{Behave, Journal, register};

/// Counts what is published on command and result topics.
struct Counting(MemoryTransport, Arc<AtomicUsize>);

impl Counting {
    fn count(&self, es: &[Envelope]) {
        let n = es
            .iter()
            .filter(|e| e.topic.contains(".cmd.") || e.topic.ends_with(".results"))
            .count();
        self.1.fetch_add(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl Transport for Counting {
    fn capabilities(&self) -> multiagents::Capabilities {
        self.0.capabilities()
    }
    async fn publish(&self, e: Envelope) -> Result<()> {
        self.count(std::slice::from_ref(&e));
        self.0.publish(e).await
    }
    async fn publish_batch(&self, es: Vec<Envelope>) -> Result<()> {
        self.count(&es);
        self.0.publish_batch(es).await
    }
    async fn subscribe(&self, t: &str, m: SubscribeMode, o: SubscribeOptions) -> Result<Subscription> {
        self.0.subscribe(t, m, o).await
    }
}

async fn run(local: bool) -> (usize, Vec<String>) {
    let queued = Arc::new(AtomicUsize::new(0));
    let journal = Journal::default();
    let host = WorkerHost::builder().build().expect("host");
    for name in ["a", "b", "c"] {
        register(&host, &journal, name, Behave::Ok);
    }
    let tx = run_abc(
        Arc::new(Counting(MemoryTransport::new(), queued.clone())),
        Arc::new(MemoryStore::new()),
        host,
        OrchestratorConfig::default().with_local_dispatch(local),
    )
    .await;
    (queued.load(Ordering::SeqCst), journal.for_tx(&tx))
}

/// Starts an orchestrator, runs workflow a → b → c (workers `a`, `b`,
/// `c` of `host`) to completion, shuts down; returns the transaction.
pub(crate) async fn run_abc(
    transport: Arc<dyn Transport>,
    store: Arc<dyn multiagents::StateStore>,
    host: WorkerHost,
    config: OrchestratorConfig,
) -> multiagents::orchestrator::TransactionId {
    let orch = Orchestrator::start(transport, store, host, config)
        .await
        .expect("start");
    let wf = WorkflowDef::builder("abc")
        .step(StepDef::new("a", "a"))
        .step(StepDef::new("b", "b"))
        .step(StepDef::new("c", "c"))
        .build();
    orch.register_workflow(wf).expect("workflow");
    let tx = orch.execute("abc", json!({})).await.expect("execute");
    let snap = orch.wait(&tx, Duration::from_secs(20)).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
    orch.shutdown(Duration::from_secs(1)).await;
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_run_in_process_without_queue_messages_unless_turned_off() {
    let (queued, ran) = run(true).await;
    assert_eq!(ran, ["a", "b", "c"]);
    assert_eq!(queued, 0, "local dispatch: no command or result on the queues");
    let (queued, ran) = run(false).await;
    assert_eq!(ran, ["a", "b", "c"]);
    assert_eq!(queued, 6, "through the queues: a command and a result per step");
}
