//! Correctness under load, on every backend: no transaction strands and no
//! step runs twice without a crash to explain it.
//!
//! * short retry backoffs over a slow store (every compare-and-swap lands
//!   after the retry timer is due);
//! * a backlog older than the step timeout, served later;
//! * a step that runs longer than the transport's ack timeout;
//! * the opt-in queue timeout (schedule-to-start).
//!
//! The workers count their own runs per (worker, transaction): those counts
//! are the side effects the tests judge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use multiagents::orchestrator::{Orchestrator, OrchestratorConfig, SagaStatus, TransactionId};
use multiagents::resilience::GuardConfig;
use multiagents::store::{Expected, PutEntry, ScanPage, StoreCapabilities, Version, Versioned};
use multiagents::worker::{CallInfo, WorkerHost, WorkerSpec, native, retryable};
use multiagents::workflow::{DEFAULT_STEP_TIMEOUT, RetryPolicy, StepDef, WorkflowDef};
use multiagents::{Envelope, Result, StateStore, SubscribeMode, SubscribeOptions, Subscription, Transport};
use serde_json::json;

use crate::backends::{Site, on_every_backend};

on_every_backend!(
    short_retry_backoffs_over_a_slow_store_strand_nothing,
    a_backlog_older_than_the_step_timeout_runs_each_step_once,
    a_step_longer_than_the_ack_timeout_runs_once,
    a_queue_timeout_fails_attempts_left_waiting,
);

/// Runs per `"<worker>:<tx>"`.
#[derive(Clone, Default)]
pub(crate) struct Runs(Arc<Mutex<HashMap<String, u32>>>);

impl Runs {
    pub(crate) fn count(&self, worker: &str, tx: &TransactionId) -> u32 {
        let runs = self.0.lock().expect("runs");
        runs.get(&format!("{worker}:{tx}")).copied().unwrap_or(0)
    }
}

/// How a worker behaves.
#[derive(Clone, Copy)]
pub(crate) enum Act {
    Ok,
    /// Fails retryably on the first attempt of one transaction in `n`
    /// (chosen by the transaction's `i` input).
    FlakyOneIn(u64),
    /// Sleeps this long, then ok.
    Sleep(Duration),
}

pub(crate) fn register(host: &WorkerHost, runs: &Runs, name: &'static str, act: Act) {
    let runs = runs.clone();
    let worker = native(move |call: CallInfo, input: Bytes| {
        let runs = runs.clone();
        async move {
            *runs
                .0
                .lock()
                .expect("runs")
                .entry(format!("{name}:{}", call.transaction_id))
                .or_default() += 1;
            match act {
                Act::Ok => {}
                Act::FlakyOneIn(n) => {
                    let ctx: serde_json::Value = ciborium::from_reader(&input[..]).expect("cbor input");
                    let i = ctx["i"].as_u64().unwrap_or(0);
                    if i.is_multiple_of(n) && call.attempt == 1 {
                        return Err(retryable(format!("{name} flaked")));
                    }
                }
                Act::Sleep(d) => tokio::time::sleep(d).await,
            }
            let mut out = Vec::new();
            ciborium::into_writer(&json!({ name: true }), &mut out).expect("cbor");
            Ok(Bytes::from(out))
        }
    });
    let guard = GuardConfig::default()
        .with_breaker(None)
        .with_timeout(None)
        .with_max_concurrent(4096);
    host.register_native(name, worker, WorkerSpec::default().with_guard(guard))
        .expect("register");
}

/// Starts an instance running `workers`. With `runs_steps` false it runs
/// no step: its command subscriptions never deliver (`NoCommands`) and it
/// runs nothing in-process, but it accepts transactions and serves results
/// and timers (a front with the workers' instances down).
async fn start(
    transport: Arc<dyn Transport>,
    store: Arc<dyn StateStore>,
    runs: &Runs,
    workers: &[(&'static str, Act)],
    wf: WorkflowDef,
    runs_steps: bool,
) -> Orchestrator {
    let transport: Arc<dyn Transport> = if runs_steps {
        transport
    } else {
        Arc::new(NoCommands(transport))
    };
    let host = WorkerHost::builder().build().expect("host");
    for (name, act) in workers {
        register(&host, runs, name, *act);
    }
    let config = OrchestratorConfig::default().with_local_dispatch(runs_steps);
    let orch = Orchestrator::start(transport, store, host, config)
        .await
        .expect("start");
    orch.register_workflow(wf).expect("workflow");
    orch
}

/// Waits for every transaction to end; returns those not final by then.
async fn stuck(orch: &Orchestrator, txs: &[TransactionId], within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut left = Vec::new();
    for tx in txs {
        let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
        match orch.wait(tx, rest.max(Duration::from_millis(1))).await {
            Ok(snap) if snap.status == SagaStatus::Completed => {}
            Ok(snap) => left.push(format!("{tx}: ended {} ({:?})", snap.status, snap.error)),
            Err(e) => left.push(format!("{tx}: {e}")),
        }
    }
    left
}

/// A store whose every compare-and-swap takes 5–40 ms more: a state write
/// lands long after the 1 ms retry timers it scheduled are due.
struct SlowCas(Arc<dyn StateStore>, std::sync::atomic::AtomicU64);

#[async_trait]
impl StateStore for SlowCas {
    fn capabilities(&self) -> StoreCapabilities {
        self.0.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        self.0.get(key).await
    }
    async fn get_fresh(&self, key: &str) -> Result<Option<Versioned>> {
        self.0.get_fresh(key).await
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
        let n = self.1.fetch_add(7919, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(5 + n % 36)).await;
        self.0.compare_and_swap(key, expected, value, ttl).await
    }
    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        self.0.scan(prefix, cursor, limit).await
    }
}

/// Transactions of the slow-store run.
const TRANSACTIONS: u64 = 2000;

/// Two instances over a slow store; step `b` fails its first attempt for
/// one transaction in four and is retried after 1 ms. Every transaction
/// completes; `a` and `c` ran once each, `b` once more exactly where it failed.
async fn short_retry_backoffs_over_a_slow_store_strand_nothing(site: Site) {
    let runs = Runs::default();
    let wf = || {
        let retry = RetryPolicy::attempts(3, Duration::from_millis(1)).without_jitter();
        WorkflowDef::builder("flaky")
            .step(StepDef::new("a", "a"))
            .step(StepDef::new("b", "b").retry(retry))
            .step(StepDef::new("c", "c"))
            .build()
    };
    let workers = [("a", Act::Ok), ("b", Act::FlakyOneIn(4)), ("c", Act::Ok)];
    let mut instances = Vec::new();
    for _ in 0..2 {
        let (transport, store) = site.connect().await;
        let slow: Arc<dyn StateStore> = Arc::new(SlowCas(store, Default::default()));
        instances.push(start(transport, slow, &runs, &workers, wf(), true).await);
    }
    // 64 submitters at a time: every submission is a slow write too.
    let mut txs = Vec::new();
    for chunk in (0..TRANSACTIONS).collect::<Vec<_>>().chunks(64) {
        let submitted = futures_util::future::join_all(chunk.iter().map(|&i| {
            let orch = &instances[(i % 2) as usize];
            orch.execute("flaky", json!({ "i": i }))
        }))
        .await;
        txs.extend(submitted.into_iter().map(|r| r.expect("execute")));
    }
    // Stuck: not final after 3× the longest timeout (the default 30 s).
    let left = stuck(&instances[0], &txs, 3 * DEFAULT_STEP_TIMEOUT).await;
    assert!(
        left.is_empty(),
        "{} of {TRANSACTIONS} stuck: {:?}",
        left.len(),
        &left[..left.len().min(5)]
    );
    for (i, tx) in txs.iter().enumerate() {
        let b = if i.is_multiple_of(4) { 2 } else { 1 };
        let got = (runs.count("a", tx), runs.count("b", tx), runs.count("c", tx));
        assert_eq!(got, (1, b, 1), "runs of a, b, c for transaction {i}");
    }
}

/// A transport whose command subscriptions never deliver: an instance on it
/// accepts transactions and serves results and timers, but runs no step.
struct NoCommands(Arc<dyn Transport>);

#[async_trait]
impl Transport for NoCommands {
    fn capabilities(&self) -> multiagents::Capabilities {
        self.0.capabilities()
    }
    async fn publish(&self, e: Envelope) -> Result<()> {
        self.0.publish(e).await
    }
    async fn publish_batch(&self, es: Vec<Envelope>) -> Result<()> {
        self.0.publish_batch(es).await
    }
    async fn subscribe(&self, t: &str, m: SubscribeMode, o: SubscribeOptions) -> Result<Subscription> {
        if t.contains(".cmd.") {
            return Ok(Subscription::new(futures_util::stream::pending()));
        }
        self.0.subscribe(t, m, o).await
    }
}

fn abc(timeout: Duration, queue_timeout: Option<Duration>) -> WorkflowDef {
    let step = |name: &str| {
        let s = StepDef::new(name, name).timeout(timeout);
        match queue_timeout {
            Some(q) => s.queue_timeout(q),
            None => s,
        }
    };
    WorkflowDef::builder("abc")
        .step(step("a"))
        .step(step("b"))
        .step(step("c"))
        .build()
}

/// 1 000 transactions wait in the queue ten times longer than the step
/// timeout, with an instance serving results and timers meanwhile; then an
/// instance that runs steps starts. Each step runs exactly once.
async fn a_backlog_older_than_the_step_timeout_runs_each_step_once(site: Site) {
    let runs = Runs::default();
    let workers = [("a", Act::Ok), ("b", Act::Ok), ("c", Act::Ok)];
    let timeout = Duration::from_millis(100);
    let (transport, store) = site.connect().await;
    let front = start(transport, store, &runs, &workers, abc(timeout, None), false).await;
    let mut txs = Vec::new();
    for i in 0..1000 {
        txs.push(front.execute("abc", json!({ "i": i })).await.expect("execute"));
    }
    tokio::time::sleep(timeout * 10).await;
    let running = front.status(&txs[0]).await.expect("status");
    assert_eq!(running.status, SagaStatus::Running, "{running:?}");
    let (transport, store) = site.connect().await;
    let _back = start(transport, store, &runs, &workers, abc(timeout, None), true).await;
    let left = stuck(&front, &txs, Duration::from_secs(60)).await;
    assert!(
        left.is_empty(),
        "{} not completed: {:?}",
        left.len(),
        &left[..left.len().min(5)]
    );
    for tx in &txs {
        for w in ["a", "b", "c"] {
            assert_eq!(runs.count(w, tx), 1, "runs of {w} for {tx}");
        }
    }
}

/// A step of 3 s on a transport whose ack timeout is 1 s, with a second
/// instance waiting for work: it runs once, and the workflow completes.
async fn a_step_longer_than_the_ack_timeout_runs_once(site: Site) {
    let site = site.with_ack_timeout(Duration::from_secs(1));
    let runs = Runs::default();
    let wf = || {
        WorkflowDef::builder("long")
            .step(StepDef::new("long", "long").timeout(Duration::from_secs(30)))
            .build()
    };
    let workers = [("long", Act::Sleep(Duration::from_secs(3)))];
    let (transport, store) = site.connect().await;
    let one = start(transport, store, &runs, &workers, wf(), true).await;
    let (transport, store) = site.connect().await;
    let _two = start(transport, store, &runs, &workers, wf(), true).await;
    let txs = vec![
        one.execute("long", json!({})).await.expect("execute"),
        one.execute("long", json!({})).await.expect("execute"),
    ];
    let left = stuck(&one, &txs, Duration::from_secs(30)).await;
    assert!(left.is_empty(), "{left:?}");
    for tx in &txs {
        assert_eq!(runs.count("long", tx), 1, "runs of the long step of {tx}");
    }
}

/// With `queue_timeout` on step `a`, an attempt left waiting is not run
/// late: served after its queue timeout, attempt 1 fails unrun and a later
/// attempt runs; with no instance serving the step at all, the durable
/// timers time the attempts out and the transaction fails.
async fn a_queue_timeout_fails_attempts_left_waiting(site: Site) {
    let runs = Runs::default();
    let workers = [("a", Act::Ok), ("b", Act::Ok), ("c", Act::Ok)];
    let wf = || {
        let a = StepDef::new("a", "a")
            .timeout(Duration::from_millis(200))
            .queue_timeout(Duration::from_millis(100))
            .retry(RetryPolicy::attempts(3, Duration::from_millis(1)).without_jitter());
        WorkflowDef::builder("abc")
            .step(a)
            .step(StepDef::new("b", "b"))
            .step(StepDef::new("c", "c"))
            .build()
    };
    let (transport, store) = site.connect().await;
    let front = start(transport, store, &runs, &workers, wf(), false).await;
    let late = front.execute("abc", json!({})).await.expect("execute");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (transport, store) = site.connect().await;
    let back = start(transport, store, &runs, &workers, wf(), true).await;
    let snap = front.wait(&late, Duration::from_secs(20)).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
    assert_eq!(runs.count("a", &late), 1, "attempt 1 of a must not run late");
    let a: Vec<_> = snap.history.iter().filter(|h| h.step == "a").collect();
    assert_eq!(a[0].outcome.as_deref(), Some("timeout"), "{a:?}");
    assert_eq!(a.last().and_then(|h| h.outcome.as_deref()), Some("ok"), "{a:?}");
    assert_eq!((runs.count("b", &late), runs.count("c", &late)), (1, 1));
    back.shutdown(Duration::from_secs(1)).await;
    drop(back);

    // Nobody serves the steps now: the durable queue-timeout timers end it.
    let lost = front.execute("abc", json!({})).await.expect("execute");
    let snap = front.wait(&lost, Duration::from_secs(20)).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Failed, "{snap:?}");
    assert!(
        snap.error.as_deref().is_some_and(|e| e.contains("queue timeout")),
        "{snap:?}"
    );
    assert_eq!(runs.count("a", &lost), 0);
}
