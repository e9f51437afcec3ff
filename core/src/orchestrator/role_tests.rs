//! What each kind of instance takes from the backend (a full instance
//! its workers' commands, the results and the timers; one started with
//! `start_workers` only the commands; a client nothing), and how many of
//! a worker's commands it holds at once (its prefetch).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::super::{Orchestrator, OrchestratorConfig};
use crate::envelope::Envelope;
use crate::error::{ErrorKind, Result};
use crate::resilience::GuardConfig;
use crate::store::{
    Expected, MemoryStore, PutEntry, ScanPage, StateStore, StoreCapabilities, Version, Versioned,
};
use crate::transport::{
    Capabilities, MemoryTransport, SubscribeMode, SubscribeOptions, Subscription, Transport,
};
use crate::worker::{CallInfo, WorkerHost, WorkerSpec, native};
use crate::workflow::{StepDef, WorkflowDef};

/// The memory transport, noting every topic subscribed to, with the
/// subscription's in-flight bound.
#[derive(Default)]
struct Noted {
    inner: MemoryTransport,
    topics: Mutex<Vec<(String, usize)>>,
}

#[async_trait]
impl Transport for Noted {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn publish(&self, e: Envelope) -> Result<()> {
        self.inner.publish(e).await
    }
    async fn publish_batch(&self, es: Vec<Envelope>) -> Result<()> {
        self.inner.publish_batch(es).await
    }
    async fn subscribe(&self, t: &str, m: SubscribeMode, o: SubscribeOptions) -> Result<Subscription> {
        let noted = (t.to_string(), o.max_in_flight);
        self.topics.lock().unwrap_or_else(|p| p.into_inner()).push(noted);
        self.inner.subscribe(t, m, o).await
    }
}

/// The memory store, keeping no timers: an orchestrator on it falls back
/// to timer messages on the transport.
#[derive(Default)]
struct NoTimers(MemoryStore);

#[async_trait]
impl StateStore for NoTimers {
    fn capabilities(&self) -> StoreCapabilities {
        self.0.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        self.0.get(key).await
    }
    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version> {
        self.0.put(key, value, ttl).await
    }
    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        self.0.put_batch(entries).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.0.delete(key).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version> {
        self.0.compare_and_swap(key, expected, value, ttl).await
    }
    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        self.0.scan(prefix, cursor, limit).await
    }
}

fn noted(transport: &Noted) -> Vec<(String, usize)> {
    transport.topics.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn host_with(worker: &str) -> WorkerHost {
    let host = WorkerHost::builder().build().expect("host");
    let echo = native(|_c: CallInfo, input: Bytes| async move { Ok(input) });
    host.register_native(worker, echo, WorkerSpec::default())
        .expect("worker");
    host
}

/// Starts an instance of `role` on a noting transport and a store with
/// timers of its own (or, `timers` false, without), and says what it
/// subscribed to (sorted).
async fn subscribed(role: &str, timers: bool) -> (Orchestrator, Vec<String>) {
    let transport = Arc::new(Noted::default());
    let store: Arc<dyn StateStore> = if timers {
        Arc::new(MemoryStore::new())
    } else {
        Arc::new(NoTimers::default())
    };
    let config = OrchestratorConfig::default();
    let t: Arc<dyn Transport> = transport.clone();
    let orch = match role {
        "full" => Orchestrator::start(t, store, host_with("a"), config).await,
        "workers" => Orchestrator::start_workers(t, store, host_with("a"), config).await,
        _ => Orchestrator::connect(t, store, config).await,
    }
    .expect("started");
    let mut topics: Vec<String> = noted(&transport).into_iter().map(|(t, _)| t).collect();
    topics.sort();
    (orch, topics)
}

#[tokio::test]
async fn a_full_instance_takes_commands_and_results() {
    let (orch, topics) = subscribed("full", true).await;
    assert_eq!(topics, ["ma.cmd.a", "ma.results"]);
    let queues: Vec<String> = orch.queues().into_iter().map(|(t, _)| t).collect();
    assert_eq!(queues, ["ma.cmd.a", "ma.results"]);
    // The command loop, the results loop and the timer poller.
    assert_eq!(orch.running_tasks(), 3);
    orch.shutdown(Duration::from_secs(1)).await;

    // A store without timers: timer messages instead of the poller.
    let (orch, topics) = subscribed("full", false).await;
    assert_eq!(topics, ["ma.cmd.a", "ma.results", "ma.timers"]);
    assert_eq!(orch.running_tasks(), 3);
    orch.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_instance_started_with_start_workers_takes_its_commands_only() {
    for timers in [true, false] {
        let (orch, topics) = subscribed("workers", timers).await;
        assert_eq!(topics, ["ma.cmd.a"], "no results, no timer messages");
        let queues: Vec<String> = orch.queues().into_iter().map(|(t, _)| t).collect();
        assert_eq!(queues, ["ma.cmd.a"]);
        assert_eq!(orch.running_tasks(), 1, "the command loop only: no timer poller");
        orch.shutdown(Duration::from_secs(1)).await;
    }
    let (orch, _) = subscribed("workers", true).await;
    let err = orch
        .register_workflow(WorkflowDef::builder("w").step(StepDef::new("a", "a")).build())
        .expect_err("a steps-only instance registers no workflow");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("runs steps only"), "{err}");
    orch.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_client_takes_nothing() {
    let (orch, topics) = subscribed("client", true).await;
    assert!(topics.is_empty(), "{topics:?}");
    orch.shutdown(Duration::from_secs(1)).await;
}

fn limits(concurrent: usize, queued: usize) -> WorkerSpec {
    WorkerSpec::default().with_guard(GuardConfig {
        max_concurrent: concurrent,
        max_queued: queued,
        ..GuardConfig::default()
    })
}

#[tokio::test]
async fn each_worker_s_commands_are_prefetched_as_far_as_its_limits_go() {
    let host = WorkerHost::builder().build().expect("host");
    let echo = || native(|_c: CallInfo, input: Bytes| async move { Ok(input) });
    // Its concurrency, plus as many queued (at most its queue bound).
    host.register_native("a", echo(), limits(3, 1)).expect("a");
    host.register_native("b", echo(), limits(5, 50)).expect("b");
    let transport = Arc::new(Noted::default());
    let orch = Orchestrator::start_workers(
        transport.clone(),
        Arc::new(MemoryStore::new()),
        host,
        OrchestratorConfig::default(),
    )
    .await
    .expect("started");
    let mut bounds = noted(&transport);
    bounds.sort();
    assert_eq!(
        bounds,
        [("ma.cmd.a".to_string(), 4), ("ma.cmd.b".to_string(), 10)]
    );
    orch.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_instance_holds_no_more_commands_than_its_worker_can_take() {
    // One permit, no queue: this instance holds one `slow` command at a
    // time; the others stay ready on the queue for any instance (here,
    // none), not taken and handed back.
    let host = WorkerHost::builder().build().expect("host");
    let slow = native(|_c: CallInfo, input: Bytes| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(input)
    });
    host.register_native("slow", slow, limits(1, 0)).expect("slow");
    let transport = Arc::new(Noted::default());
    let config = OrchestratorConfig {
        local_dispatch: false,
        ..OrchestratorConfig::default()
    };
    let orch = Orchestrator::start(transport.clone(), Arc::new(MemoryStore::new()), host, config)
        .await
        .expect("started");
    orch.register_workflow(WorkflowDef::builder("w").step(StepDef::new("s", "slow")).build())
        .expect("workflow");
    let mut txs = Vec::new();
    for _ in 0..6 {
        txs.push(orch.execute("w", serde_json::json!({})).await.expect("execute"));
    }
    // While the first runs, sample what this instance holds.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let depth = transport
            .inner
            .queue_depth("ma.cmd.slow", "workers")
            .await
            .expect("depth")
            .expect("the group exists");
        assert!(
            depth.in_flight + depth.delayed <= 1,
            "held more than the worker can take: {depth:?}"
        );
    }
    for tx in &txs {
        let done = orch.wait(tx, Duration::from_secs(10)).await.expect("completes");
        assert_eq!(done.status, super::super::SagaStatus::Completed, "{done:?}");
    }
    orch.shutdown(Duration::from_secs(1)).await;
}
